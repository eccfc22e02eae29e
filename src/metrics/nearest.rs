//! Nearest-neighbour distance to the training set (memorisation).
//!
//! For each generated image g: `NN(g) = min_j ‖g − y_j‖₂` over the training
//! images y_j (pixels, f64 accumulation). Its floor is the same figure for
//! held-out real images: a model that copies training images sits far
//! below the floor (at 0 for exact copies), one that generalises near it.
//! The empirical-score oracle memorises by construction, so its samples
//! should reach 0 as the discretisation error vanishes.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::knn::sq_dist;

/// For each row of `gen`, the L2 distance to its nearest row of `train`.
pub fn nearest_neighbor_l2(gen: ArrayView2<f32>, train: ArrayView2<f32>) -> Vec<f64> {
    (0..gen.nrows())
        .into_par_iter()
        .map(|i| {
            let g = gen.row(i);
            train
                .rows()
                .into_iter()
                .map(|t| sq_dist(g, t))
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect()
}

/// Mean of [`nearest_neighbor_l2`] over the rows of `gen` (NaN if empty).
pub fn mean_nn_l2(gen: ArrayView2<f32>, train: ArrayView2<f32>) -> f64 {
    let d = nearest_neighbor_l2(gen, train);
    d.iter().sum::<f64>() / d.len() as f64
}
