//! Improved precision and recall with k-NN manifolds (Kynkäänniemi et al.
//! 2019, "Improved precision and recall metric for assessing generative
//! models").
//!
//! The manifold of a feature set Φ is the union of the balls around each
//! point with radius its distance to its k-th nearest neighbour in Φ:
//!
//! ```text
//!   f(φ, Φ)   = 1  if  ‖φ − φ'‖ ≤ ‖φ' − NN_k(φ', Φ)‖  for some φ' ∈ Φ,  else 0
//!   precision = (1/|Φ_g|) Σ_{φ_g ∈ Φ_g} f(φ_g, Φ_r)     (generated on the real manifold)
//!   recall    = (1/|Φ_r|) Σ_{φ_r ∈ Φ_r} f(φ_r, Φ_g)     (real on the generated manifold)
//! ```
//!
//! Precision measures fidelity (how many samples look real), recall
//! diversity (how much of the real distribution the samples cover). The
//! paper uses k = 3 ([`PR_K`]).

use ndarray::ArrayView2;

use super::knn::{ball_counts, check_sets, kth_nn_sq_radii};
use crate::error::Result;

/// Neighbourhood size of the paper.
pub const PR_K: usize = 3;

/// (precision, recall) of `generated` against `real` with k-NN manifolds.
/// Errors if the dimensions differ or a set has at most `k` rows.
pub fn precision_recall(
    real: ArrayView2<f32>,
    generated: ArrayView2<f32>,
    k: usize,
) -> Result<(f64, f64)> {
    check_sets(real, generated, k)?;
    let frac =
        |counts: Vec<usize>| counts.iter().filter(|&&c| c > 0).count() as f64 / counts.len() as f64;
    let precision = frac(ball_counts(generated, real, &kth_nn_sq_radii(real, k)));
    let recall = frac(ball_counts(real, generated, &kth_nn_sq_radii(generated, k)));
    Ok((precision, recall))
}
