//! Metrics against a known [`GaussianMixture`] (8 / 25 Gaussians): mode
//! coverage, fraction of high-quality samples, mean true log-density.

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::data::GaussianMixture;

/// A sample counts as belonging to its nearest mode μ_k when
/// ‖x − μ_k‖ ≤ `MODE_RADIUS_STDS`·σ (in 2-D a component puts
/// 1 − e^{−9/2} ≈ 98.9% of its mass inside this radius).
pub const MODE_RADIUS_STDS: f64 = 3.0;

/// Sample quality against a known mixture, for samples x_1..x_n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixtureMetrics {
    /// Number of mixture components K.
    pub n_modes: usize,
    /// Number of modes with at least one sample assigned to them.
    pub modes_covered: usize,
    /// modes_covered / K.
    pub mode_coverage: f64,
    /// Fraction of samples within 3σ of their nearest mode (the
    /// "high-quality" samples).
    pub high_quality: f64,
    /// (1/n) Σ_i log p(x_i) under the true mixture (f64).
    pub mean_log_prob: f64,
}

/// Evaluate `x` ([n, d], d = the mixture's dimension) against `gm`.
/// Each sample is assigned to its nearest mean k* = argmin_k ‖x − μ_k‖ if
/// ‖x − μ_k*‖ ≤ 3σ, else to no mode. A mode is covered if at least one sample
/// is assigned to it. With n = 0 the fractions and the mean are NaN and
/// coverage is 0.
///
/// # Panics
/// If `x.ncols()` differs from the mixture's dimension.
pub fn mixture_metrics(gm: &GaussianMixture, x: ArrayView2<f32>) -> MixtureMetrics {
    assert_eq!(
        x.ncols(),
        gm.dim(),
        "mixture_metrics: samples of dimension {} for a mixture of dimension {}",
        x.ncols(),
        gm.dim()
    );
    let n = x.nrows();
    let radius = MODE_RADIUS_STDS * gm.std;
    let per_row: Vec<(Option<usize>, f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let p: Vec<f64> = x.row(i).iter().map(|&v| v as f64).collect();
            let (k, dist) = gm.nearest(&p);
            ((dist <= radius).then_some(k), gm.log_prob(&p))
        })
        .collect();
    let mut hit = vec![false; gm.n_modes()];
    let mut good = 0usize;
    let mut lp = 0.0;
    for (k, l) in &per_row {
        if let Some(k) = k {
            hit[*k] = true;
            good += 1;
        }
        lp += l;
    }
    let modes_covered = hit.iter().filter(|h| **h).count();
    MixtureMetrics {
        n_modes: gm.n_modes(),
        modes_covered,
        mode_coverage: modes_covered as f64 / gm.n_modes() as f64,
        high_quality: good as f64 / n as f64,
        mean_log_prob: lp / n as f64,
    }
}
