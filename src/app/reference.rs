//! Reference data draws of a 2-D toy set and the quality of samples
//! against them: shared by `demo` and the `sample` command.

use ndarray::Array2;

use crate::data::Toy;
use crate::metrics::{self, MeanSe};
use crate::rng;

/// Quality figures of one sampler's output against fresh data.
#[derive(Clone, Debug)]
pub struct Quality {
    /// SWD against `REF_DRAWS` independent data draws: mean ± SE.
    pub swd: MeanSe,
    /// Unbiased RBF MMD² against the first data draw (can be slightly negative).
    pub mmd: f64,
    /// Fraction of points inside the data's support, the 8 filled squares
    /// (checkerboard only).
    pub in_support: Option<f64>,
    /// Fraction of points inside the board's box [-4, 4]², what docs/SPEC.md
    /// calls the support (checkerboard only).
    pub in_box: Option<f64>,
}

/// Number of independent reference draws (and of floor pairs).
pub const REF_DRAWS: usize = 8;
/// Projection directions for SWD (docs/SPEC.md).
pub const SWD_PROJECTIONS: usize = 256;

/// Reference data draws and the SWD noise floor.
pub struct Reference {
    /// `REF_DRAWS` independent draws that samples are scored against.
    pub draws: Vec<Array2<f32>>,
    /// SWD between `REF_DRAWS` disjoint pairs of further independent data
    /// draws: mean ± SE.
    pub floor: MeanSe,
}

impl Reference {
    /// Draw 3 × `REF_DRAWS` independent sets of `n` points: the first
    /// `REF_DRAWS` are references, the rest form the floor's disjoint pairs.
    pub fn new(data: Toy, n: usize, seed: u64) -> Self {
        let draw = |k: u64| data.sample(n, rng::derive(seed, rng::domain::REFERENCE, k));
        let floors: Vec<f64> = (0..REF_DRAWS as u64)
            .map(|k| {
                let (a, b) = (draw(100 + 2 * k), draw(101 + 2 * k));
                metrics::swd(a.view(), b.view(), SWD_PROJECTIONS, k)
            })
            .collect();
        Reference {
            draws: (0..REF_DRAWS as u64).map(draw).collect(),
            floor: MeanSe::from_samples(&floors),
        }
    }

    /// SWD (mean ± SE over the draws), MMD and support fraction of `x`.
    pub fn quality(&self, data: Toy, x: &Array2<f32>) -> Quality {
        let swds: Vec<f64> = self
            .draws
            .iter()
            .enumerate()
            .map(|(k, r)| metrics::swd(x.view(), r.view(), SWD_PROJECTIONS, k as u64))
            .collect();
        Quality {
            swd: MeanSe::from_samples(&swds),
            mmd: metrics::mmd_rbf(x.view(), self.draws[0].view()),
            in_support: data.in_support_fraction(x.view()),
            in_box: data.in_box_fraction(x.view()),
        }
    }
}
