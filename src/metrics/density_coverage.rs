//! Density and coverage (Naeem et al. 2020, "Reliable fidelity and
//! diversity metrics for generative models").
//!
//! With real features X_1..X_N, generated Y_1..Y_M and the k-NN radius
//! NND_k(X_i) of each real point within the real set:
//!
//! ```text
//!   density  = 1/(k M) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))]
//!   coverage = 1/N Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))]
//! ```
//!
//! Both use only the real set's balls, so outlying real points do not
//! inflate them (unlike precision) and a few generated outliers do not
//! inflate coverage (unlike recall). For two sets from the same
//! distribution E[density] → 1 and E[coverage] → 1 − 2⁻ᵏ (0.969 at the
//! paper's k = 5, [`DC_K`]). Density can exceed 1.

use ndarray::ArrayView2;

use super::knn::{ball_counts, check_sets, kth_nn_sq_radii, nn_sq_dist};
use crate::error::{Error, Result};

/// Neighbourhood size of the paper.
pub const DC_K: usize = 5;

/// k-NN balls of a real feature set, computed once and reused for several
/// generated sets.
#[derive(Clone, Debug)]
pub struct RealBalls {
    pub k: usize,
    /// NND_k(X_i)² per real point.
    pub sq_radii: Vec<f64>,
}

impl RealBalls {
    /// The balls of `real` (needs more than `k >= 1` rows).
    pub fn new(real: ArrayView2<f32>, k: usize) -> Result<Self> {
        check_sets(real, real, k)?;
        Ok(RealBalls {
            k,
            sq_radii: kth_nn_sq_radii(real, k),
        })
    }
}

/// (density, coverage) of `generated` against `real` using its precomputed
/// `balls`. Errors if the dimensions differ or `generated` is empty.
pub fn density_coverage_with(
    real: ArrayView2<f32>,
    balls: &RealBalls,
    generated: ArrayView2<f32>,
) -> Result<(f64, f64)> {
    if real.ncols() != generated.ncols() || balls.sq_radii.len() != real.nrows() {
        return Err(Error::Mismatch(format!(
            "density/coverage: real set {}x{} with {} balls, generated set of dimension {}",
            real.nrows(),
            real.ncols(),
            balls.sq_radii.len(),
            generated.ncols()
        )));
    }
    if generated.nrows() == 0 {
        return Err(Error::invalid(
            "generated feature count",
            0,
            "at least 1 row",
        ));
    }
    let counts = ball_counts(generated, real, &balls.sq_radii);
    let density = counts.iter().sum::<usize>() as f64 / (balls.k * generated.nrows()) as f64;
    let nearest = nn_sq_dist(real, generated);
    let covered = nearest
        .iter()
        .zip(&balls.sq_radii)
        .filter(|(d, r)| d <= r)
        .count();
    Ok((density, covered as f64 / real.nrows() as f64))
}

/// (density, coverage) of `generated` against `real` with neighbourhood `k`.
pub fn density_coverage(
    real: ArrayView2<f32>,
    generated: ArrayView2<f32>,
    k: usize,
) -> Result<(f64, f64)> {
    check_sets(real, generated, k)?;
    density_coverage_with(real, &RealBalls::new(real, k)?, generated)
}
