//! Dropout (Srivastava et al. 2014) with inverted scaling, as in the DDPM
//! residual block (before the second convolution):
//!
//! ```text
//!   training:   y = x · m / (1 − p),   m ~ Bernoulli(1 − p) per element     E[y] = x
//!   inference:  y = x
//!   backward:   dx = dy · m / (1 − p)
//! ```
//!
//! The mask is counter-based: element `e` of image `i` in dropout layer `l`
//! at training step `k` keeps its value iff `u ≥ p`, where `u` is the top 53
//! bits of
//!
//! ```text
//!   u64 = sm(K_li + e·γ),   K_li = sm(K_k ^ sm(l·2⁴⁰ ^ i)),   K_k = sm(sm(sm(seed) ^ DROPOUT) ^ k)
//! ```
//!
//! (`sm` = SplitMix64's finaliser, `γ` its increment, so `sm(K + e·γ)` is
//! the e-th output of a SplitMix64 generator started at `K`). The mask is a
//! function of (seed, step, layer, image, element) alone: it does not depend
//! on the batch size, on how a batch is split (a part starting at image `i0`
//! passes `first_image = i0`), on the thread count, and a resumed run draws
//! the same masks. The backward recomputes the mask instead of storing it.

use rayon::prelude::*;

use crate::rng::domain::DROPOUT;
use crate::rng::splitmix64;

/// SplitMix64's increment γ (the golden-ratio constant).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Which masks a training forward draws: the run's seed, the training
/// step, and the index (in the step's batch) of the first image passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey {
    pub seed: u64,
    pub step: u64,
    pub first_image: u64,
}

impl DropoutKey {
    /// Images `first_image..` of step `step` of the run seeded `seed`.
    pub fn new(seed: u64, step: u64) -> Self {
        DropoutKey {
            seed,
            step,
            first_image: 0,
        }
    }

    /// Key of layer `layer` for image `image` of the call (0-based).
    fn image_key(&self, layer: usize, image: usize) -> u64 {
        let ks = splitmix64(splitmix64(splitmix64(self.seed) ^ DROPOUT) ^ self.step);
        let idx = ((layer as u64) << 40) ^ (self.first_image + image as u64);
        splitmix64(ks ^ splitmix64(idx))
    }
}

/// Whether element `e` under image key `k` is kept at drop rate `p`.
#[inline]
fn kept(k: u64, e: usize, p: f64) -> bool {
    let bits = splitmix64(k.wrapping_add((e as u64).wrapping_mul(GAMMA)));
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64) >= p
}

/// `y = x · m / (1 − p)` per image (`per` values each) under `key`, or
/// `y = x` without a key (inference). `layer` numbers the dropout layers of
/// a network (their masks are independent).
pub fn dropout_forward(
    x: &[f32],
    y: &mut [f32],
    per: usize,
    p: f64,
    layer: usize,
    key: Option<DropoutKey>,
) {
    let Some(key) = key else {
        y.copy_from_slice(&x[..y.len()]);
        return;
    };
    let scale = (1.0 / (1.0 - p)) as f32;
    y.par_chunks_mut(per)
        .zip(x.par_chunks(per))
        .enumerate()
        .for_each(|(i, (yi, xi))| {
            let k = key.image_key(layer, i);
            for (e, (o, &v)) in yi.iter_mut().zip(xi).enumerate() {
                *o = if kept(k, e, p) { v * scale } else { 0.0 };
            }
        });
}

/// `dx (=|+=) dy · m / (1 − p)` for the masks of [`dropout_forward`] with
/// the same `key` (`set`: overwrite `dx`, else add); without a key `dx
/// (=|+=) dy`.
pub fn dropout_backward(
    dy: &[f32],
    dx: &mut [f32],
    per: usize,
    p: f64,
    layer: usize,
    key: Option<DropoutKey>,
    set: bool,
) {
    let scale = match key {
        Some(_) => (1.0 / (1.0 - p)) as f32,
        None => 1.0,
    };
    dx[..dy.len()]
        .par_chunks_mut(per)
        .zip(dy.par_chunks(per))
        .enumerate()
        .for_each(|(i, (di, gi))| {
            let k = key.map(|key| key.image_key(layer, i));
            for (e, (d, &g)) in di.iter_mut().zip(gi).enumerate() {
                let v = match k {
                    Some(k) if !kept(k, e, p) => 0.0,
                    Some(_) => g * scale,
                    None => g,
                };
                if set {
                    *d = 0.0 + v;
                } else {
                    *d += v;
                }
            }
        });
}

/// The kept-element mask (1 kept, 0 dropped) of image `image` in layer
/// `layer` under `key`, `per` elements, at rate `p` (for tests and
/// statistics; training never materialises it).
pub fn dropout_mask(key: DropoutKey, layer: usize, image: usize, per: usize, p: f64) -> Vec<u8> {
    let k = key.image_key(layer, image);
    (0..per).map(|e| kept(k, e, p) as u8).collect()
}

/// A dropout rate must lie in [0, 1).
pub fn check_rate(p: f64) -> crate::error::Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(crate::error::Error::invalid(
            "dropout",
            p,
            "a rate in [0, 1)",
        ));
    }
    Ok(())
}
