//! Sliced Wasserstein-1 distance, as defined in `docs/SPEC.md`.

use ndarray::ArrayView2;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::rng::{self, domain};

/// Sliced Wasserstein-1 distance between the rows of `a` ([m, d]) and `b`
/// ([n, d]):
///
/// ```text
///   SWD = (1/P) Σ_{j<P} W1(a·u_j, b·u_j)
/// ```
///
/// with `P = n_proj` random unit directions u_j = z_j / ‖z_j‖, z_j ~ N(0, I_d)
/// drawn from `rng::stream(seed, METRIC, j)` (so uniform on the sphere). For
/// each direction both sets are projected, sorted, and compared: with equal
/// sizes W1 = (1/n) Σ_i |a_(i) − b_(i)| (mean absolute difference of the
/// sorted projections, docs/SPEC.md uses P = 256). With different sizes W1 is the
/// exact 1-D Wasserstein-1 distance of the two empirical distributions,
/// ∫_0^1 |F_a⁻¹(q) − F_b⁻¹(q)| dq, i.e. the quantile functions are compared
/// on the merged grid of breakpoints i/m and k/n (this reduces to the mean
/// absolute difference when m = n).
///
/// Directions are evaluated in parallel and summed in order j = 0..P, in f64.
/// Returns NaN if either set is empty or `n_proj` is 0.
///
/// # Panics
/// If `a` and `b` have different numbers of columns.
pub fn swd(a: ArrayView2<f32>, b: ArrayView2<f32>, n_proj: usize, seed: u64) -> f64 {
    assert_eq!(
        a.ncols(),
        b.ncols(),
        "swd: point sets of different dimension ({} vs {})",
        a.ncols(),
        b.ncols()
    );
    if a.nrows() == 0 || b.nrows() == 0 || n_proj == 0 {
        return f64::NAN;
    }
    let d = a.ncols();
    let per_dir: Vec<f64> = (0..n_proj)
        .into_par_iter()
        .map(|j| {
            let u = direction(d, seed, j as u64);
            let mut pa = project(a, &u);
            let mut pb = project(b, &u);
            pa.sort_unstable_by(f64::total_cmp);
            pb.sort_unstable_by(f64::total_cmp);
            wasserstein1_sorted(&pa, &pb)
        })
        .collect();
    per_dir.iter().sum::<f64>() / n_proj as f64
}

/// Unit direction j: z ~ N(0, I_d) from stream (seed, METRIC, j), u = z / ‖z‖
/// (redrawn in the same stream in the measure-zero case z = 0).
fn direction(d: usize, seed: u64, j: u64) -> Vec<f64> {
    let mut r = rng::stream(seed, domain::METRIC, j);
    loop {
        let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut r)).collect();
        let norm = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            return z.into_iter().map(|v| v / norm).collect();
        }
    }
}

fn project(x: ArrayView2<f32>, u: &[f64]) -> Vec<f64> {
    x.rows()
        .into_iter()
        .map(|r| r.iter().zip(u).map(|(&v, &w)| v as f64 * w).sum())
        .collect()
}

/// Exact 1-D Wasserstein-1 distance between the empirical distributions of
/// two sorted, non-empty samples `a` (size m) and `b` (size n):
/// W1 = ∫_0^1 |F_a⁻¹(q) − F_b⁻¹(q)| dq, where F_a⁻¹(q) = a_(i) for
/// q ∈ [i/m, (i+1)/m). For m = n this is (1/n) Σ_i |a_(i) − b_(i)|.
pub fn wasserstein1_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (m, n) = (a.len(), b.len());
    if m == n {
        return a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / n as f64;
    }
    // Walk the merged breakpoints in integer units of 1/(m n): a's step i
    // ends at (i+1)·n, b's step k ends at (k+1)·m.
    let (mut i, mut k, mut q) = (0usize, 0usize, 0u128);
    let mut acc = 0.0;
    while i < m && k < n {
        let ea = (i as u128 + 1) * n as u128;
        let eb = (k as u128 + 1) * m as u128;
        let e = ea.min(eb);
        acc += (e - q) as f64 * (a[i] - b[k]).abs();
        q = e;
        if ea == e {
            i += 1;
        }
        if eb == e {
            k += 1;
        }
    }
    acc / (m as f64 * n as f64)
}
