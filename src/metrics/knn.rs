//! k-nearest-neighbour radii and ball-membership counts shared by the
//! manifold metrics ([`super::precision_recall`], [`super::density_coverage`]).
//!
//! Distances are squared Euclidean, summed in f64 from f32 features:
//! `d²(a, b) = Σ_i (a_i − b_i)²`. The k-NN radius of row i of a set X is
//! `NND_k(X_i)² = ` the k-th smallest `d²(X_i, X_j)` over `j ≠ i` (the point
//! itself excluded, as in both papers and their reference code). Every
//! comparison is made on squared distances, so no square root can turn a
//! strict inequality into a tie.
//!
//! Work is split by row and every row is reduced sequentially, so results do
//! not depend on the thread count.

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Squared Euclidean distance in f64.
#[inline]
pub fn sq_dist(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// Check `x` and `y` are non-empty sets of equal dimension and that `x` has
/// more than `k` rows (a k-NN radius needs k other points).
pub fn check_sets(x: ArrayView2<f32>, y: ArrayView2<f32>, k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid("k", 0, "an integer >= 1"));
    }
    if x.ncols() != y.ncols() {
        return Err(Error::Mismatch(format!(
            "feature sets of dimension {} and {}",
            x.ncols(),
            y.ncols()
        )));
    }
    for (what, n) in [("real", x.nrows()), ("generated", y.nrows())] {
        if n <= k {
            return Err(Error::invalid(
                format!("{what} feature count"),
                n,
                format!("more than k = {k} rows (the k-NN radius needs k other points)"),
            ));
        }
    }
    Ok(())
}

/// `NND_k(X_i)²` for every row of `x` (needs `x.nrows() > k >= 1`).
pub fn kth_nn_sq_radii(x: ArrayView2<f32>, k: usize) -> Vec<f64> {
    assert!(
        k >= 1 && x.nrows() > k,
        "kth_nn_sq_radii needs rows > k >= 1"
    );
    (0..x.nrows())
        .into_par_iter()
        .map(|i| {
            let xi = x.row(i);
            let mut d: Vec<f64> = x
                .rows()
                .into_iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, xj)| sq_dist(xi, xj))
                .collect();
            let (_, kth, _) = d.select_nth_unstable_by(k - 1, f64::total_cmp);
            *kth
        })
        .collect()
}

/// For every row q of `queries`: how many balls `B(c_i, r_i)` (centres the
/// rows of `centres`, squared radii `sq_radii`) contain it, `d²(q, c_i) ≤ r_i²`.
pub fn ball_counts(
    queries: ArrayView2<f32>,
    centres: ArrayView2<f32>,
    sq_radii: &[f64],
) -> Vec<usize> {
    (0..queries.nrows())
        .into_par_iter()
        .map(|j| {
            let q = queries.row(j);
            centres
                .rows()
                .into_iter()
                .zip(sq_radii)
                .filter(|(c, &r)| sq_dist(q, c.view()) <= r)
                .count()
        })
        .collect()
}

/// For every row of `x`, the smallest squared distance to a row of `y`.
pub fn nn_sq_dist(x: ArrayView2<f32>, y: ArrayView2<f32>) -> Vec<f64> {
    (0..x.nrows())
        .into_par_iter()
        .map(|i| {
            let xi = x.row(i);
            y.rows()
                .into_iter()
                .map(|yj| sq_dist(xi, yj))
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}
