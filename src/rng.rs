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
//!
//! Some tasks do not open a stream themselves but hand a *seed* to a
//! function that does (a data set's `sample(n, seed)`, a sampler run's
//! `SampleOptions::new(n, seed)`). Those seeds come from [`derive()`] with a
//! named [`SeedDomain`] of [`domain`], never from an ad-hoc constant at the
//! call site. Each seed domain records the mixing it has always used, so
//! the derived seeds (and every output built on them) are the same bits as
//! before the scheme was named.

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
    /// Hutchinson probes of the likelihood estimate: point i owns stream
    /// `(seed, LIKELIHOOD_PROBE, i)` ("LIKE").
    pub const LIKELIHOOD_PROBE: u64 = 0x4c49_4b45;
    /// Per-sample noise of the inpainting driver (`guidance::repaint`):
    /// sample i owns stream `(seed, INPAINT, i)` ("INPT").
    pub const INPAINT: u64 = 0x494e_5054;
    /// The pixels of a `random:P` inpainting mask ("MASK").
    pub const MASK: u64 = 0x4d41_534b;
    /// Label dropout of conditional training: step k's stream
    /// `(seed, LABEL_DROP, k)` ("LDRP").
    pub const LABEL_DROP: u64 = 0x4c44_5250;
    /// Dropout masks of the U-Net's residual blocks: step k's masks are
    /// keyed by `(seed, DROPOUT, k)` and the image and element
    /// (counter-based, see `nn::dropout`) ("DROP").
    pub const DROPOUT: u64 = 0x4452_4f50;
    /// The label of sample i of a class-conditional model sampled without
    /// a class (`guidance::labels`): stream `(seed, SAMPLE_LABEL, i)` ("SLBL").
    pub const SAMPLE_LABEL: u64 = 0x534c_424c;

    use super::{Mix, SeedDomain};

    /// The data batch of training step k: `derive(seed, TRAIN_DATA, k)`
    /// is the data seed of that step (its t and ε come from the stream
    /// `(seed, TRAIN, k)`).
    pub const TRAIN_DATA: SeedDomain = SeedDomain::new(0, Mix::XorMixedIndex);
    /// The demo's reference and floor data draws: draw k of a
    /// `Reference` has data seed `derive(seed, REFERENCE, k)` ("D47A" << 8).
    pub const REFERENCE: SeedDomain = SeedDomain::new(0xD47A << 8, Mix::XorIndex);
    /// The `sample` command's reference draws: the `Reference` seed is
    /// `derive(seed, SAMPLE_REFERENCE, 0)` ("5EED"), so they differ from
    /// the sampling seed's own streams.
    pub const SAMPLE_REFERENCE: SeedDomain = SeedDomain::new(0x5EED, Mix::Xor);
    /// `compare`'s reference draw for seed s: `derive(seed, COMPARE_REFERENCE, s)`
    /// ("REF\0").
    pub const COMPARE_REFERENCE: SeedDomain = SeedDomain::new(0x5245_4600, Mix::MixedOffset);
    /// `compare`'s floor draw for seed s (a second, independent data draw):
    /// `derive(seed, COMPARE_FLOOR, s)` ("FLOR").
    pub const COMPARE_FLOOR: SeedDomain = SeedDomain::new(0x464c_4f52, Mix::MixedOffset);
    /// `compare`'s sampling seed of run s of a cell:
    /// `derive(seed, COMPARE_SAMPLING, s)` ("SAMP").
    pub const COMPARE_SAMPLING: SeedDomain = SeedDomain::new(0x5341_4d50, Mix::Offset);
    /// The sampling seed of class k's run when a class-conditional model is
    /// sampled with a label per sample (`guidance::labels`):
    /// `derive(seed, SAMPLE_CLASS, k)` ("SCLS").
    pub const SAMPLE_CLASS: SeedDomain = SeedDomain::new(0x5343_4c53, Mix::XorIndex);
}

/// A named family of derived seeds: a tag and the way seed, tag and index
/// are mixed (see [`derive()`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedDomain {
    pub tag: u64,
    pub mix: Mix,
}

/// How [`derive()`] combines `seed`, a domain's `tag` and an `index`
/// (`sm` is [`splitmix64`], `+` wraps). Every domain keeps the mixing its
/// seeds were first drawn with, so outputs stay byte-identical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// `seed ^ tag ^ index`, unmixed: for a seed that is mixed again by
    /// a further derivation ([`domain::SAMPLE_REFERENCE`]).
    Xor,
    /// `sm(seed ^ tag ^ index)`.
    XorIndex,
    /// `sm(seed ^ tag ^ sm(index))`.
    XorMixedIndex,
    /// `sm(sm(seed ^ tag) + index)`.
    MixedOffset,
    /// `sm(seed ^ tag) + index`.
    Offset,
}

impl SeedDomain {
    pub const fn new(tag: u64, mix: Mix) -> Self {
        SeedDomain { tag, mix }
    }
}

/// The seed number `index` of `domain` under `seed`.
pub fn derive(seed: u64, domain: SeedDomain, index: u64) -> u64 {
    let SeedDomain { tag, mix } = domain;
    match mix {
        Mix::Xor => seed ^ tag ^ index,
        Mix::XorIndex => splitmix64(seed ^ tag ^ index),
        Mix::XorMixedIndex => splitmix64(seed ^ tag ^ splitmix64(index)),
        Mix::MixedOffset => splitmix64(splitmix64(seed ^ tag).wrapping_add(index)),
        Mix::Offset => splitmix64(seed ^ tag).wrapping_add(index),
    }
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
