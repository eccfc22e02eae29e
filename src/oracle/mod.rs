//! Exact-score oracles: scores known in closed form, used to test samplers
//! apart from any training error and to compare samplers (`scoresde compare`).
//!
//! * [`CheckerboardScore`]: the docs/SPEC.md checkerboard (8 uniform squares),
//!   whose noised density is a sum of products of normal-CDF differences.
//!
//! The first two are Gaussian mixtures pushed through an SDE with the
//! perturbation kernel p_t(x | x0) = N(alpha(t) x0, sigma(t)² I):
//!
//! * [`MixtureScore`]: data p_0 = Σ_k w_k N(mu_k, s² I) (8 / 25 Gaussians or
//!   any user mixture), so p_t = Σ_k w_k N(alpha mu_k, (alpha² s² + sigma²) I).
//! * [`EmpiricalScore`]: data p_0 = (1/M) Σ_j δ(y_j) (a finite training set),
//!   so p_t = (1/M) Σ_j N(alpha y_j, sigma² I). A sampler driven by it
//!   reproduces training points as ε → 0 (it memorises by construction).
//!
//! Conditionals (the `guidance` module's traits): [`MixtureScore`] with a
//! class label per component and [`CheckerboardScore`] with its 8 squares
//! give the exact conditional score and the exact ∇ ln p_t(y | x_t);
//! [`LabelledEmpirical`] conditions the empirical distribution on a label,
//! [`KnownPixelsScore`] on known pixels.
//!
//! Responsibilities are a softmax over components computed with the max-shift
//! log-sum-exp in f64, so far-away points and tiny t give finite scores.

pub mod checkerboard;
mod conditional;
mod empirical;
mod mixture;

pub use checkerboard::CheckerboardScore;
pub use conditional::{KnownPixelsScore, LabelledEmpirical};
pub use empirical::EmpiricalScore;
pub use mixture::MixtureScore;

use crate::data::Toy;
use crate::error::{Error, Result};
use crate::score::Score;
use crate::sde::{Sde, SdeConfig};

/// Toy data sets with an exact-score oracle.
pub const ORACLE_DATA: &[&str] = &["checkerboard", "8gaussians", "25gaussians"];

/// The exact-score oracle of a toy data set pushed through `sde`, as a
/// `(score, sde)` pair: [`CheckerboardScore`] or the [`MixtureScore`] of
/// 8 / 25 Gaussians.
pub fn for_toy(data: Toy, sde: &SdeConfig) -> Result<(Box<dyn Score>, Box<dyn Sde>)> {
    if data == Toy::Checkerboard {
        return Ok((Box::new(CheckerboardScore::new(sde)?), sde.build()?));
    }
    match data.mixture() {
        Some(gm) => Ok((Box::new(MixtureScore::new(gm, sde)?), sde.build()?)),
        None => Err(Error::invalid(
            "oracle",
            data.name(),
            format!("a data set with an exact score: {}", ORACLE_DATA.join(", ")),
        )),
    }
}

/// Logit gap below the maximum beyond which a softmax term is taken as 0.
pub const SOFTMAX_CUTOFF: f64 = 37.0;

/// Softmax in place with the max shift: r_k = exp(l_k − max_j l_j) / Σ_j exp(l_j − max_j l_j).
/// Every term is ≤ 1 and the largest is exactly 1, so the sum is in [1, K]
/// and nothing overflows or divides by zero (for finite logits).
///
/// Terms with l_k − max < −[`SOFTMAX_CUTOFF`] are set to 0 without calling
/// `exp`: each would be below e^−37 ≈ 1e−16 of the largest, i.e. under half
/// an f64 ulp of the sum, so the result changes by at most K·1e−16
/// relative. At small t only the nearest few components survive, which
/// makes the oracles several times faster.
pub(crate) fn softmax_in_place(logits: &mut [f64]) {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for l in logits.iter_mut() {
        let z = *l - m;
        *l = if z < -SOFTMAX_CUTOFF { 0.0 } else { z.exp() };
        total += *l;
    }
    for l in logits.iter_mut() {
        *l /= total;
    }
}
