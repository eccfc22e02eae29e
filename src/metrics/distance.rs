//! Two-sample distances over all pairs: kernel MMD with an RBF kernel and
//! the energy distance. Both are U-statistics (unbiased, can be slightly
//! negative when the two distributions are equal) accumulated in f64 and
//! parallelised over rows, reduced in row order (deterministic).
//!
//! Cost is O((m + n)² d); 10,000 vs 10,000 points in 2-D take well under a
//! second on two cores.

use ndarray::ArrayView2;
use rand::RngExt;
use rayon::prelude::*;

use crate::rng::{self, domain};

/// At most this many pooled points are used to pick the median bandwidth.
pub const MEDIAN_SUBSET: usize = 1000;

/// Stream index (under seed 0, domain METRIC) of the median-subset draw.
const MEDIAN_STREAM: u64 = 0x4d45_4449_414e;

/// Unbiased squared MMD with an RBF kernel and the median-heuristic
/// bandwidth h = [`median_bandwidth`]`(a, b)`:
///
/// ```text
///   k(x, y) = exp(−‖x − y‖² / (2 h²))
///   MMD²_u = 1/(m(m−1)) Σ_{i≠i'} k(a_i, a_i') + 1/(n(n−1)) Σ_{j≠j'} k(b_j, b_j')
///            − 2/(m n) Σ_{i,j} k(a_i, b_j)
/// ```
///
/// Its expectation is exactly MMD² (0 iff the distributions agree), so
/// estimates from equal distributions scatter around 0 and can be negative.
/// NaN if either set has fewer than 2 rows.
///
/// # Panics
/// If `a` and `b` have different numbers of columns.
pub fn mmd_rbf(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    let h = median_bandwidth(a, b);
    mmd_rbf_with_bandwidth(a, b, h)
}

/// [`mmd_rbf`] with a given bandwidth `h` (> 0), e.g. one fixed across a
/// comparison of several samplers against the same data.
pub fn mmd_rbf_with_bandwidth(a: ArrayView2<f32>, b: ArrayView2<f32>, h: f64) -> f64 {
    let (m, n) = (a.nrows(), b.nrows());
    let (xa, xb, d) = pooled_rows(a, b, "mmd_rbf");
    if m < 2 || n < 2 {
        return f64::NAN;
    }
    let gamma = 1.0 / (2.0 * h * h);
    let k = |d2: f64| (-gamma * d2).exp();
    let saa = 2.0 * within_sum(&xa, d, k);
    let sbb = 2.0 * within_sum(&xb, d, k);
    let sab = cross_sum(&xa, &xb, d, k);
    let (mf, nf) = (m as f64, n as f64);
    saa / (mf * (mf - 1.0)) + sbb / (nf * (nf - 1.0)) - 2.0 * sab / (mf * nf)
}

/// Energy distance (unbiased U-statistic form):
///
/// ```text
///   E = 2/(m n) Σ_{i,j} ‖a_i − b_j‖ − 1/(m(m−1)) Σ_{i≠i'} ‖a_i − a_i'‖
///       − 1/(n(n−1)) Σ_{j≠j'} ‖b_j − b_j'‖
/// ```
///
/// an estimate of 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ ≥ 0 (0 iff the
/// distributions agree). NaN if either set has fewer than 2 rows.
///
/// # Panics
/// If `a` and `b` have different numbers of columns.
pub fn energy_distance(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    let (m, n) = (a.nrows(), b.nrows());
    let (xa, xb, d) = pooled_rows(a, b, "energy_distance");
    if m < 2 || n < 2 {
        return f64::NAN;
    }
    let dist = |d2: f64| d2.sqrt();
    let saa = 2.0 * within_sum(&xa, d, dist);
    let sbb = 2.0 * within_sum(&xb, d, dist);
    let sab = cross_sum(&xa, &xb, d, dist);
    let (mf, nf) = (m as f64, n as f64);
    2.0 * sab / (mf * nf) - saa / (mf * (mf - 1.0)) - sbb / (nf * (nf - 1.0))
}

/// Median-heuristic bandwidth: the median of the pairwise Euclidean
/// distances ‖z_p − z_q‖ (p < q) within a subset of the pooled sample
/// z = a ∪ b. The subset is all points if m + n ≤ [`MEDIAN_SUBSET`] (1000),
/// otherwise 1000 points drawn without replacement (partial Fisher–Yates)
/// from the fixed stream `rng::stream(0, METRIC, MEDIAN_STREAM)`, so the
/// bandwidth is deterministic. For an even number of distances the median is
/// the mean of the two middle ones. Falls back to 1.0 if the median is 0 or
/// not finite (e.g. all points equal).
pub fn median_bandwidth(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    let (xa, xb, d) = pooled_rows(a, b, "median_bandwidth");
    let mut pool = xa;
    pool.extend_from_slice(&xb);
    let total = pool.len().checked_div(d).unwrap_or(0);
    let mut idx: Vec<usize> = (0..total).collect();
    let k = total.min(MEDIAN_SUBSET);
    if total > k {
        let mut r = rng::stream(0, domain::METRIC, MEDIAN_STREAM);
        for p in 0..k {
            let q = r.random_range(p..total);
            idx.swap(p, q);
        }
    }
    let sub: Vec<&[f64]> = idx[..k]
        .iter()
        .map(|&i| &pool[i * d..(i + 1) * d])
        .collect();
    let mut dists: Vec<f64> = Vec::with_capacity(k * k.saturating_sub(1) / 2);
    for p in 0..k {
        for q in p + 1..k {
            dists.push(sq_dist(sub[p], sub[q]).sqrt());
        }
    }
    let len = dists.len();
    if len == 0 {
        return 1.0;
    }
    let mid = len / 2;
    let (lo, &mut upper, _) = dists.select_nth_unstable_by(mid, f64::total_cmp);
    let med = if len % 2 == 1 {
        upper
    } else {
        0.5 * (upper + lo.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
    };
    if med > 0.0 && med.is_finite() {
        med
    } else {
        1.0
    }
}

/// Both sets as contiguous row-major f64 buffers, plus the dimension.
fn pooled_rows(a: ArrayView2<f32>, b: ArrayView2<f32>, who: &str) -> (Vec<f64>, Vec<f64>, usize) {
    assert_eq!(
        a.ncols(),
        b.ncols(),
        "{who}: point sets of different dimension ({} vs {})",
        a.ncols(),
        b.ncols()
    );
    let f = |x: ArrayView2<f32>| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    (f(a), f(b), a.ncols())
}

#[inline]
fn sq_dist(x: &[f64], y: &[f64]) -> f64 {
    if x.len() == 2 {
        let (u, v) = (x[0] - y[0], x[1] - y[1]);
        return u * u + v * v;
    }
    x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// Σ_{i<j} f(‖x_i − x_j‖²) over the rows of `x` (row length `d`).
fn within_sum(x: &[f64], d: usize, f: impl Fn(f64) -> f64 + Sync) -> f64 {
    if d == 0 {
        return 0.0;
    }
    let n = x.len() / d;
    let rows: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            x[(i + 1) * d..]
                .chunks_exact(d)
                .map(|xj| f(sq_dist(xi, xj)))
                .sum::<f64>()
        })
        .collect();
    rows.iter().sum()
}

/// Σ_{i,j} f(‖x_i − y_j‖²) over rows of `x` and `y` (row length `d`).
fn cross_sum(x: &[f64], y: &[f64], d: usize, f: impl Fn(f64) -> f64 + Sync) -> f64 {
    if d == 0 {
        return 0.0;
    }
    let rows: Vec<f64> = x
        .par_chunks(d)
        .map(|xi| y.chunks_exact(d).map(|yj| f(sq_dist(xi, yj))).sum::<f64>())
        .collect();
    rows.iter().sum()
}
