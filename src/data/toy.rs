//! The 2-D toy distributions of FFJORD (Grathwohl et al. 2019, `toy_data.py`),
//! redrawn per point so that every point has its own seeded stream.
//!
//! FFJORD builds some sets (rings, pinwheel, moons) by splitting a batch into
//! equal class blocks and shuffling; here each point instead picks its class
//! uniformly at random, which has the same distribution and keeps the prefix
//! property (the first `k` points of a draw of `n` are the same for any
//! `n >= k`). All sets lie roughly within [-4, 4]².

use ndarray::{Array2, ArrayView2};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::f64::consts::{PI, SQRT_2};

use super::mixture::GaussianMixture;
use crate::error::{Error, Result};
use crate::rng::{self, domain, StreamRng};

/// A 2-D toy distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toy {
    /// FFJORD checkerboard, exactly as in `docs/SPEC.md`:
    /// x1 ~ U(-2, 2); x2 = U(0, 1) − 2·Bernoulli(1/2) + (⌊x1⌋ mod 2);
    /// point = 2·(x1, x2). Support: the 8 squares of side 2 in [-4, 4)² with
    /// ⌊X/2⌋ + ⌊Y/2⌋ even.
    Checkerboard,
    /// Two interleaved half circles (sklearn `make_moons`, noise 0.1), then
    /// scaled as FFJORD does: point = 2·m + (−1, −0.2).
    TwoMoons,
    /// Swiss roll (sklearn `make_swiss_roll`, noise 1.0, coordinates x and z)
    /// divided by 5: t = 1.5π(1 + 2u), point = (t cos t + ε1, t sin t + ε2) / 5.
    SwissRoll,
    /// 8 Gaussians on a circle: centres 2√2·(cos kπ/4, sin kπ/4), k = 0..7,
    /// std √2/4 ≈ 0.354, equal weights. This is FFJORD's "scale 4, std 0.5,
    /// then divide by 1.414" with 1.414 replaced by √2.
    EightGaussians,
    /// 25 Gaussians on the grid {−4, −2, 0, 2, 4}², std 0.2 (a tenth of the
    /// grid spacing), equal weights.
    TwentyFiveGaussians,
    /// FFJORD "rings": 4 concentric circles of radii 3·{1.0, 0.8, 0.55, 0.25}
    /// (ring chosen uniformly, angle uniform) plus N(0, 0.08²) noise.
    Rings,
    /// FFJORD "2spirals": n = 3π√u, d = (−n cos n + U(0,0.5), n sin n + U(0,0.5)),
    /// point = ±d / 3 + N(0, 0.1²) (sign chosen uniformly).
    TwoSpirals,
    /// FFJORD "pinwheel": 5 arms; class c uniform, f = (1 + 0.3 z1, 0.1 z2),
    /// a = 2πc/5 + 0.25·exp(f0), point = 2·(f0 cos a + f1 sin a, −f0 sin a + f1 cos a).
    Pinwheel,
}

/// Names accepted by [`Toy::from_name`], in [`Toy::ALL`] order.
const NAMES: [&str; 8] = [
    "checkerboard",
    "moons",
    "swissroll",
    "8gaussians",
    "25gaussians",
    "rings",
    "spirals",
    "pinwheel",
];

impl Toy {
    /// Every toy set, in a fixed order.
    pub const ALL: [Toy; 8] = [
        Toy::Checkerboard,
        Toy::TwoMoons,
        Toy::SwissRoll,
        Toy::EightGaussians,
        Toy::TwentyFiveGaussians,
        Toy::Rings,
        Toy::TwoSpirals,
        Toy::Pinwheel,
    ];

    /// Parse a set name (one of checkerboard, moons, swissroll, 8gaussians,
    /// 25gaussians, rings, spirals, pinwheel).
    pub fn from_name(name: &str) -> Result<Toy> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Toy::ALL[i])
            .ok_or_else(|| {
                Error::invalid("data set", name, format!("one of: {}", NAMES.join(", ")))
            })
    }

    /// The set's name, as accepted by [`Toy::from_name`].
    pub fn name(&self) -> &'static str {
        NAMES[Toy::ALL.iter().position(|t| t == self).expect("in ALL")]
    }

    /// The exact mixture behind 8 and 25 Gaussians (`None` for other sets).
    /// [`Toy::sample`] draws from exactly this mixture.
    pub fn mixture(&self) -> Option<GaussianMixture> {
        match self {
            Toy::EightGaussians => {
                let r = 2.0 * SQRT_2;
                let means = (0..8)
                    .map(|k| {
                        let a = k as f64 * PI / 4.0;
                        vec![r * a.cos(), r * a.sin()]
                    })
                    .collect();
                Some(GaussianMixture::uniform(means, SQRT_2 / 4.0))
            }
            Toy::TwentyFiveGaussians => {
                let grid = [-4.0, -2.0, 0.0, 2.0, 4.0];
                let means = grid
                    .iter()
                    .flat_map(|&x| grid.iter().map(move |&y| vec![x, y]))
                    .collect();
                Some(GaussianMixture::uniform(means, 0.2))
            }
            _ => None,
        }
    }

    /// Draw `n` points, shape [n, 2]. Point i uses its own stream
    /// `rng::stream(seed, DATA, i)`.
    pub fn sample(&self, n: usize, seed: u64) -> Array2<f32> {
        if let Some(gm) = self.mixture() {
            return gm.sample(n, seed);
        }
        let mut buf = vec![0f32; 2 * n];
        buf.par_chunks_mut(2).enumerate().for_each(|(i, row)| {
            let mut r = rng::stream(seed, domain::DATA, i as u64);
            let (x, y) = self.point(&mut r);
            row[0] = x;
            row[1] = y;
        });
        Array2::from_shape_vec((n, 2), buf).expect("shape matches buffer")
    }

    /// Fraction of rows of `x` (shape [n, 2]) inside the set's support, for
    /// sets with a bounded support: the checkerboard's support is
    /// { (X, Y) ∈ [-4, 4)² : ⌊X/2⌋ + ⌊Y/2⌋ even } (from docs/SPEC.md's definition:
    /// in unscaled units x2 ∈ [k, k+1) ∪ [k−2, k−1) with k = ⌊x1⌋ mod 2).
    /// `None` for other sets or if `x` does not have 2 columns; NaN for n = 0.
    pub fn in_support_fraction(&self, x: ArrayView2<f32>) -> Option<f64> {
        self.checkerboard_fraction(x, in_checkerboard)
    }

    /// Fraction of rows of `x` inside the checkerboard's bounding box
    /// [-4, 4]², the range docs/SPEC.md calls "the support" ("point = 2·(x1, x2),
    /// so the support is [-4,4]^2"). It only catches points thrown outside
    /// the board; [`Toy::in_support_fraction`] also counts points that fall
    /// into the empty squares. `None` for other sets or if `x` does not have
    /// 2 columns; NaN for n = 0.
    pub fn in_box_fraction(&self, x: ArrayView2<f32>) -> Option<f64> {
        self.checkerboard_fraction(x, in_board_box)
    }

    /// Fraction of rows (X, Y) of `x` with `inside(X, Y)`, for the
    /// checkerboard only.
    fn checkerboard_fraction(
        &self,
        x: ArrayView2<f32>,
        inside: fn(f32, f32) -> bool,
    ) -> Option<f64> {
        if *self != Toy::Checkerboard || x.ncols() != 2 {
            return None;
        }
        let count = x.rows().into_iter().filter(|p| inside(p[0], p[1])).count();
        Some(count as f64 / x.nrows() as f64)
    }

    fn point(&self, r: &mut StreamRng) -> (f32, f32) {
        let normal = |r: &mut StreamRng| -> f64 { StandardNormal.sample(r) };
        match self {
            Toy::Checkerboard => {
                // Uniforms on a 2^-25 (x1) and 2^-23 (x2) grid so that every
                // f64 value below is exactly representable in f32: the stored
                // point never rounds across a cell boundary.
                let u1 = (r.next_u64() >> 39) as f64 * (-25f64).exp2();
                let u2 = (r.next_u64() >> 41) as f64 * (-23f64).exp2();
                let b = (r.next_u64() >> 63) as f64;
                let x1 = 4.0 * u1 - 2.0;
                let x2 = u2 - 2.0 * b + x1.floor().rem_euclid(2.0);
                ((2.0 * x1) as f32, (2.0 * x2) as f32)
            }
            Toy::TwoMoons => {
                let theta = PI * r.random::<f64>();
                let (mx, my) = if r.random::<bool>() {
                    (theta.cos(), theta.sin())
                } else {
                    (1.0 - theta.cos(), 1.0 - theta.sin() - 0.5)
                };
                let mx = mx + 0.1 * normal(r);
                let my = my + 0.1 * normal(r);
                ((2.0 * mx - 1.0) as f32, (2.0 * my - 0.2) as f32)
            }
            Toy::SwissRoll => {
                let t = 1.5 * PI * (1.0 + 2.0 * r.random::<f64>());
                let x = t * t.cos() + normal(r);
                let y = t * t.sin() + normal(r);
                ((x / 5.0) as f32, (y / 5.0) as f32)
            }
            Toy::Rings => {
                const RADII: [f64; 4] = [1.0, 0.8, 0.55, 0.25];
                let rad = 3.0 * RADII[r.random_range(0..4usize)];
                let a = 2.0 * PI * r.random::<f64>();
                let x = rad * a.cos() + 0.08 * normal(r);
                let y = rad * a.sin() + 0.08 * normal(r);
                (x as f32, y as f32)
            }
            Toy::TwoSpirals => {
                let n = r.random::<f64>().sqrt() * 540.0 * (2.0 * PI) / 360.0;
                let dx = -n.cos() * n + 0.5 * r.random::<f64>();
                let dy = n.sin() * n + 0.5 * r.random::<f64>();
                let s = if r.random::<bool>() { 1.0 } else { -1.0 };
                let x = s * dx / 3.0 + 0.1 * normal(r);
                let y = s * dy / 3.0 + 0.1 * normal(r);
                (x as f32, y as f32)
            }
            Toy::Pinwheel => {
                let c = r.random_range(0..5usize) as f64;
                let f0 = 1.0 + 0.3 * normal(r);
                let f1 = 0.1 * normal(r);
                let a = 2.0 * PI * c / 5.0 + 0.25 * f0.exp();
                let (s, co) = a.sin_cos();
                (
                    (2.0 * (f0 * co + f1 * s)) as f32,
                    (2.0 * (-f0 * s + f1 * co)) as f32,
                )
            }
            Toy::EightGaussians | Toy::TwentyFiveGaussians => {
                unreachable!("mixtures are sampled through GaussianMixture")
            }
        }
    }
}

/// Whether (X, Y) lies in the checkerboard's support
/// { (X, Y) ∈ [-4, 4)² : ⌊X/2⌋ + ⌊Y/2⌋ even }.
pub fn in_checkerboard(x: f32, y: f32) -> bool {
    if !in_board_box(x, y) {
        return false;
    }
    let (x, y) = (x as f64, y as f64);
    ((x / 2.0).floor() + (y / 2.0).floor()).rem_euclid(2.0) == 0.0
}

/// Whether (X, Y) lies in the checkerboard's bounding box [-4, 4)².
pub fn in_board_box(x: f32, y: f32) -> bool {
    (-4.0..4.0).contains(&x) && (-4.0..4.0).contains(&y)
}

impl std::fmt::Display for Toy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Toy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Toy> {
        Toy::from_name(s)
    }
}
