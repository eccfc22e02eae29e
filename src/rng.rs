//! Seeded random streams.
//!
//! Every random quantity is drawn from a stream named by `(seed, domain,
//! index)`: sample `i` of a sampler run owns stream `(seed, SAMPLER, i)`,
//! training step `k` owns `(seed, TRAIN, k)`, and so on. Because a stream
//! depends only on its name, results do not depend on batch size, thread
//! count, or the order in which work is scheduled.
//!
//! The generator is Xoshiro256++ (named, so values are stable across `rand`
//! versions); the three-part name is hashed with SplitMix64.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The generator behind every stream.
pub type StreamRng = rand_xoshiro::Xoshiro256PlusPlus;

/// Stream domains: independent families of streams under one seed.
pub mod domain {
    /// Per-sample noise of a sampler (prior draw and every step's noise).
    pub const SAMPLER: u64 = 0x5a4d_504c;
    /// Per-step training noise (data batch, t, ε).
    pub const TRAIN: u64 = 0x5452_4e00;
    /// Network initialisation.
    pub const INIT: u64 = 0x494e_4954;
    /// Data set draws.
    pub const DATA: u64 = 0x4441_5441;
    /// Metric randomness (projection directions, subsets).
    pub const METRIC: u64 = 0x4d45_5452;
}

/// SplitMix64 finaliser: a bijective 64-bit mix.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream named `(seed, domain, index)`.
pub fn stream(seed: u64, domain: u64, index: u64) -> StreamRng {
    let key = splitmix64(splitmix64(splitmix64(seed) ^ domain) ^ index);
    StreamRng::seed_from_u64(key)
}

/// Fill `out` with independent N(0, 1) draws from `rng`.
pub fn fill_normal(rng: &mut StreamRng, out: &mut [f32]) {
    for v in out {
        *v = StandardNormal.sample(rng);
    }
}
