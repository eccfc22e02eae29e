//! The linear (rectified-flow / flow-matching) path as a process:
//!
//! ```text
//!   x_t = (1 − t) x0 + t ε,       α(t) = 1 − t,   σ(t) = t,
//!   f(t) = α'/α = −1/(1 − t),     g(t)² = dσ²/dt − 2 f σ² = 2t/(1 − t)
//! ```
//!
//! It is VP-like (the prior is N(0, I) at t = 1) and its probability-flow
//! velocity is u = ε − x0 = f x − ½ g² s, so a network trained on the
//! velocity target converts exactly to a score ([`crate::convert`]) and
//! every sampler runs on it. f and g diverge at t = 1, so the process stops
//! at T = 1 − δ, where the prior N(0, σ(T)² I) differs from p_T by the
//! α(T) x0 = δ x0 it leaves out (δ = [`LINEAR_T_GAP`] = 1e-3).

use super::{Sde, SdeConfig};

/// Default δ with T = 1 − δ and default time cut-off ε.
pub const LINEAR_T_GAP: f64 = 1e-3;

/// The linear path α = 1 − t, σ = t on [eps, t_max].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearSde {
    pub eps: f64,
    pub t_max: f64,
}

impl Default for LinearSde {
    fn default() -> Self {
        LinearSde {
            eps: LINEAR_T_GAP,
            t_max: 1.0 - LINEAR_T_GAP,
        }
    }
}

impl Sde for LinearSde {
    fn t_max(&self) -> f64 {
        self.t_max
    }
    fn t_eps(&self) -> f64 {
        self.eps
    }
    fn drift_coef(&self, t: f64) -> f64 {
        -1.0 / (1.0 - t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        (2.0 * t / (1.0 - t)).sqrt()
    }
    fn alpha(&self, t: f64) -> f64 {
        1.0 - t
    }
    fn sigma(&self, t: f64) -> f64 {
        t
    }
    fn prior_std(&self) -> f64 {
        self.t_max
    }
    fn config(&self) -> SdeConfig {
        SdeConfig::Linear {
            eps: self.eps,
            t_max: self.t_max,
        }
    }
}
