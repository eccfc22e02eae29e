//! Exact score of the checkerboard (docs/SPEC.md) pushed through any SDE.
//!
//! The checkerboard is a uniform mixture of the 8 squares
//! [a_x, a_x + 2) × [a_y, a_y + 2) with ⌊a_x/2⌋ + ⌊a_y/2⌋ even, inside [−4, 4)².
//! With x_t = alpha x0 + sigma ε, each coordinate of a uniform square noised
//! is a difference of normal CDFs:
//!
//! ```text
//!   h(x; a, b) = [Φ(u_a) − Φ(u_b)] / (alpha (b − a)),   u_a = (x − alpha a)/sigma, u_b = (x − alpha b)/sigma
//!   p_t(x) = (1/8) Σ_squares h(x_1; a_1, b_1) h(x_2; a_2, b_2)
//!   ∂_x ln h = [φ(u_a) − φ(u_b)] / (sigma [Φ(u_a) − Φ(u_b)])
//!   s_j(x, t) = Σ_squares w_sq ∂_{x_j} ln h_j,    w_sq = softmax_sq(ln h_1 + ln h_2)
//! ```
//!
//! Everything is computed in log space in f64 (`ln_phi_diff`), so the score
//! stays finite at any t ≥ 0 and any distance from the squares.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::Result;
use crate::guidance::{Condition, ConditionalScore, NoisyClassifier};
use crate::score::Score;
use crate::sde::{Sde, SdeConfig};

/// ln(Φ(u_a) − Φ(u_b)) for u_a > u_b, accurate in both tails.
fn ln_phi_diff(u_a: f64, u_b: f64) -> f64 {
    if u_b > 0.0 {
        // Both in the upper tail: Q(u_b) − Q(u_a) with Q(u) = Φ(−u).
        let (la, lb) = (ln_q(u_a), ln_q(u_b));
        lb + (-(la - lb).exp()).ln_1p()
    } else if u_a < 0.0 {
        ln_phi_diff(-u_b, -u_a)
    } else {
        // Straddles 0: 1 − Q(u_a) − Q(−u_b), no cancellation.
        (1.0 - q(u_a) - q(-u_b)).ln()
    }
}

/// Upper tail Q(u) = P(Z > u) = erfc(u/√2)/2.
fn q(u: f64) -> f64 {
    0.5 * libm::erfc(u / std::f64::consts::SQRT_2)
}

/// ln Q(u), with the asymptotic series beyond the range of erfc.
fn ln_q(u: f64) -> f64 {
    if u < 25.0 {
        q(u).ln()
    } else {
        let u2 = u * u;
        -0.5 * u2 - u.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            + (-1.0 / u2 + 3.0 / (u2 * u2) - 15.0 / (u2 * u2 * u2)).ln_1p()
    }
}

/// ln φ(u), the standard normal log-density.
fn ln_pdf(u: f64) -> f64 {
    -0.5 * u * u - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// (ln h, ∂_x ln h) for one coordinate and one interval [a, a + 2).
fn coord(x: f64, a: f64, alpha: f64, sigma: f64) -> (f64, f64) {
    let b = a + 2.0;
    let (u_a, u_b) = ((x - alpha * a) / sigma, (x - alpha * b) / sigma);
    let ln_d = ln_phi_diff(u_a, u_b);
    let ln_h = ln_d - (2.0 * alpha).ln();
    // [φ(u_a) − φ(u_b)] / D, each term as exp(ln φ − ln D).
    let dlog = ((ln_pdf(u_a) - ln_d).exp() - (ln_pdf(u_b) - ln_d).exp()) / sigma;
    (ln_h, dlog)
}

/// Lower-left corners of the 8 squares of the checkerboard.
pub fn squares() -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(8);
    for i in -2i32..2 {
        for j in -2i32..2 {
            if (i + j).rem_euclid(2) == 0 {
                out.push((2.0 * i as f64, 2.0 * j as f64));
            }
        }
    }
    out
}

/// Exact score of the noised checkerboard for any SDE.
#[derive(Debug)]
pub struct CheckerboardScore {
    sde: Box<dyn Sde>,
}

impl CheckerboardScore {
    /// The oracle for the SDE `sde`.
    pub fn new(sde: &SdeConfig) -> Result<Self> {
        Ok(CheckerboardScore { sde: sde.build()? })
    }

    /// The SDE the data are pushed through.
    pub fn sde(&self) -> &dyn Sde {
        self.sde.as_ref()
    }

    /// ln p_t(x) (f64), for tests and likelihood checks.
    pub fn log_prob(&self, x: [f64; 2], t: f64) -> f64 {
        let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
        let terms: Vec<f64> = squares()
            .iter()
            .map(|&(ax, ay)| coord(x[0], ax, alpha, sigma).0 + coord(x[1], ay, alpha, sigma).0)
            .collect();
        log_sum_exp(&terms) - 8f64.ln()
    }
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

impl CheckerboardScore {
    /// s(x, t | square) (all 8 squares when `class` is None) for every row:
    /// the square's own product of ∂ ln h, or their softmax-weighted mean.
    fn score_class(
        &self,
        x: ArrayView2<f32>,
        t: f64,
        class: Option<usize>,
        mut out: ArrayViewMut2<f32>,
    ) {
        let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
        let sq = squares();
        let mut ln_w = [0.0f64; 8]; // log-weights, then softmax weights
        let mut d = [[0.0f64; 2]; 8];
        for (xr, mut or) in x.outer_iter().zip(out.outer_iter_mut()) {
            let (x1, x2) = (xr[0] as f64, xr[1] as f64);
            for (k, &(ax, ay)) in sq.iter().enumerate() {
                if class.is_some_and(|c| c != k) {
                    ln_w[k] = f64::NEG_INFINITY;
                    d[k] = [0.0, 0.0];
                    continue;
                }
                let (l1, d1) = coord(x1, ax, alpha, sigma);
                let (l2, d2) = coord(x2, ay, alpha, sigma);
                ln_w[k] = l1 + l2;
                d[k] = [d1, d2];
            }
            super::softmax_in_place(&mut ln_w);
            let (mut s0, mut s1) = (0.0f64, 0.0f64);
            for (w, dk) in ln_w.iter().zip(&d) {
                s0 += w * dk[0];
                s1 += w * dk[1];
            }
            or[0] = s0 as f32;
            or[1] = s1 as f32;
        }
    }
}

/// The checkerboard given one square (class k = `squares()[k]`): the
/// uniform square pushed through the SDE, whose score is the product rule's
/// (∂ ln h_1, ∂ ln h_2). With `None`, the whole board.
struct SquareScore<'a> {
    oracle: &'a CheckerboardScore,
    class: Option<usize>,
}

impl Score for SquareScore<'_> {
    fn dim(&self) -> usize {
        2
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.oracle.score_class(x, t, self.class, out);
    }

    fn describe(&self) -> String {
        match self.class {
            Some(k) => format!("exact checkerboard score given square {k}"),
            None => self.oracle.describe(),
        }
    }
}

/// Labels are the 8 squares of [`squares`], in that order.
impl ConditionalScore for CheckerboardScore {
    fn n_classes(&self) -> usize {
        8
    }

    fn with_condition(&self, c: Condition) -> Result<Box<dyn Score + '_>> {
        let class = match c.check(8)? {
            Condition::Null => None,
            Condition::Class(k) => Some(k),
        };
        Ok(Box::new(SquareScore {
            oracle: self,
            class,
        }))
    }
}

/// The exact p_t(square | x): ∇ ln p_t(k | x) = s(x, t | k) − s(x, t).
impl NoisyClassifier for CheckerboardScore {
    fn input_dim(&self) -> usize {
        2
    }

    fn label_count(&self) -> usize {
        8
    }

    fn log_prob_grad(&self, x: ArrayView2<f32>, t: f64, y: usize, out: ArrayViewMut2<f32>) {
        crate::guidance::bayes_grad(x, y, |c, o| self.score_class(x, t, c, o), out);
    }
}

impl Score for CheckerboardScore {
    fn dim(&self) -> usize {
        2
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.score_class(x, t, None, out);
    }

    fn describe(&self) -> String {
        "exact checkerboard score".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The score equals the gradient of ln p_t by central differences, for
    /// all three SDEs, near and far from the squares, at small and large t.
    #[test]
    fn score_is_gradient_of_log_density() {
        for name in ["vp", "subvp", "ve"] {
            let oracle = CheckerboardScore::new(&SdeConfig::by_name(name).unwrap()).unwrap();
            let sde = oracle.sde();
            for &t in &[0.01, 0.1, 0.5, 1.0] {
                for &p in &[
                    [0.3, 0.7],
                    [1.9, -2.1],
                    [-3.5, 3.9],
                    [6.0, -7.0],
                    [0.0, 0.0],
                ] {
                    let x = ndarray::arr2(&[[p[0] as f32, p[1] as f32]]);
                    let mut s = ndarray::Array2::<f32>::zeros((1, 2));
                    oracle.score(x.view(), t, s.view_mut());
                    let h = 1e-4 * (1.0 + sde.sigma(t));
                    for j in 0..2 {
                        let (mut up, mut dn) = (p, p);
                        up[j] += h;
                        dn[j] -= h;
                        let fd = (oracle.log_prob(up, t) - oracle.log_prob(dn, t)) / (2.0 * h);
                        let got = s[[0, j]] as f64;
                        assert!(
                            (got - fd).abs() <= 1e-3 * (1.0 + fd.abs()),
                            "{name} t={t} x={p:?} dim {j}: score {got} vs fd {fd}"
                        );
                    }
                }
            }
        }
    }

    /// At tiny sigma and far from the data the score stays finite and points
    /// back towards the support.
    #[test]
    fn finite_everywhere() {
        let oracle = CheckerboardScore::new(&SdeConfig::by_name("vp").unwrap()).unwrap();
        let x = ndarray::arr2(&[[50.0f32, -50.0], [1.0, 1.0], [2.5, 0.5], [-4.0, 0.0]]);
        let mut s = ndarray::Array2::<f32>::zeros((4, 2));
        for &t in &[0.0f64, 1e-9, 1e-5, 1e-3] {
            oracle.score(x.view(), t.max(1e-12), s.view_mut());
            assert!(s.iter().all(|v| v.is_finite()), "t={t}: {s:?}");
            assert!(s[[0, 0]] < 0.0 && s[[0, 1]] > 0.0);
        }
    }
}
