//! The variance-preserving processes of score_sde: VP and sub-VP, both on
//! the linear noise rate beta(t).

use super::{Sde, SdeConfig};

/// Linear noise rate beta(t) = beta_min + t (beta_max - beta_min).
#[derive(Clone, Copy, Debug)]
pub struct LinearBeta {
    pub beta_min: f64,
    pub beta_max: f64,
}

impl LinearBeta {
    /// beta(t).
    pub fn beta(&self, t: f64) -> f64 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }
    /// ∫_0^t beta(s) ds = beta_min t + ½ (beta_max - beta_min) t².
    pub fn integral(&self, t: f64) -> f64 {
        self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t
    }
}

/// VP SDE: dx = -½ beta(t) x dt + sqrt(beta(t)) dw;
/// alpha = exp(-½ ∫beta), sigma = sqrt(1 - exp(-∫beta)).
#[derive(Clone, Copy, Debug)]
pub struct VpSde {
    pub beta: LinearBeta,
    pub eps: f64,
}

impl Default for VpSde {
    fn default() -> Self {
        VpSde {
            beta: LinearBeta {
                beta_min: 0.1,
                beta_max: 20.0,
            },
            eps: 1e-3,
        }
    }
}

impl Sde for VpSde {
    fn t_eps(&self) -> f64 {
        self.eps
    }
    fn drift_coef(&self, t: f64) -> f64 {
        -0.5 * self.beta.beta(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.beta.beta(t).sqrt()
    }
    fn alpha(&self, t: f64) -> f64 {
        (-0.5 * self.beta.integral(t)).exp()
    }
    fn sigma(&self, t: f64) -> f64 {
        // -expm1 keeps full precision at tiny t, where 1 - exp(-x) cancels.
        (-(-self.beta.integral(t)).exp_m1()).sqrt()
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn config(&self) -> SdeConfig {
        SdeConfig::Vp {
            beta_min: self.beta.beta_min,
            beta_max: self.beta.beta_max,
            eps: self.eps,
        }
    }
}

/// Sub-VP SDE: dx = -½ beta(t) x dt + sqrt(beta(t) (1 - exp(-2∫beta))) dw;
/// alpha = exp(-½ ∫beta), sigma = 1 - exp(-∫beta).
#[derive(Clone, Copy, Debug)]
pub struct SubVpSde {
    pub beta: LinearBeta,
    pub eps: f64,
}

impl Sde for SubVpSde {
    fn t_eps(&self) -> f64 {
        self.eps
    }
    fn drift_coef(&self, t: f64) -> f64 {
        -0.5 * self.beta.beta(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        let discount = -(-2.0 * self.beta.integral(t)).exp_m1();
        (self.beta.beta(t) * discount).sqrt()
    }
    fn alpha(&self, t: f64) -> f64 {
        (-0.5 * self.beta.integral(t)).exp()
    }
    fn sigma(&self, t: f64) -> f64 {
        -(-self.beta.integral(t)).exp_m1()
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn config(&self) -> SdeConfig {
        SdeConfig::SubVp {
            beta_min: self.beta.beta_min,
            beta_max: self.beta.beta_max,
            eps: self.eps,
        }
    }
}
