//! The variance-exploding process of score_sde (SMLD's noise levels as an
//! SDE).

use super::{Sde, SdeConfig};

/// VE SDE: dx = sqrt(d sigma²/dt) dw with sigma(t) = sigma_min (sigma_max/sigma_min)^t,
/// so g(t) = sigma(t) sqrt(2 ln(sigma_max/sigma_min)) and alpha = 1.
#[derive(Clone, Copy, Debug)]
pub struct VeSde {
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub eps: f64,
}

impl Sde for VeSde {
    fn t_eps(&self) -> f64 {
        self.eps
    }
    fn drift_coef(&self, _t: f64) -> f64 {
        0.0
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.sigma(t) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt()
    }
    fn alpha(&self, _t: f64) -> f64 {
        1.0
    }
    fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(t)
    }
    fn prior_std(&self) -> f64 {
        self.sigma_max
    }
    fn config(&self) -> SdeConfig {
        SdeConfig::Ve {
            sigma_min: self.sigma_min,
            sigma_max: self.sigma_max,
            eps: self.eps,
        }
    }
}
