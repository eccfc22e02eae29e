//! Forward noise processes (SDEs) and the discrete DDPM schedule.
//!
//! Every process here has an affine drift and a Gaussian perturbation kernel:
//!
//! ```text
//!   dx = f(t) x dt + g(t) dw,        p_t(x | x0) = N(alpha(t) x0, sigma(t)^2 I)
//! ```
//!
//! so a process is described by the scalars `drift_coef(t) = f(t)`,
//! `diffusion(t) = g(t)`, `alpha(t)` and `sigma(t)`. The reverse-time SDE is
//! `dx = [f(t) x - g(t)^2 s(x,t)] dt + g(t) dw̄` and the probability-flow ODE
//! is `dx/dt = f(t) x - ½ g(t)^2 s(x,t)`, with `s(x,t) = ∇ log p_t(x)`.
//! Defaults follow score_sde (Song et al. 2021).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod discrete;
mod linear;
mod ve;
mod vp;
pub use discrete::{check_steps, DiscreteSchedule, MAX_BETA};
pub use linear::{LinearSde, LINEAR_T_GAP};
pub use ve::VeSde;
pub use vp::{LinearBeta, SubVpSde, VpSde};

/// A forward noise process with affine drift `f(x,t) = drift_coef(t) · x`.
pub trait Sde: Send + Sync + std::fmt::Debug {
    /// Final time T (the prior lives there).
    fn t_max(&self) -> f64 {
        1.0
    }
    /// Smallest time a sampler integrates to (the time cut-off ε).
    fn t_eps(&self) -> f64;
    /// f(t) in the drift f(x,t) = f(t) x.
    fn drift_coef(&self, t: f64) -> f64;
    /// Diffusion coefficient g(t).
    fn diffusion(&self, t: f64) -> f64;
    /// Mean scale of the perturbation kernel: E[x_t | x0] = alpha(t) x0.
    fn alpha(&self, t: f64) -> f64;
    /// Standard deviation of the perturbation kernel.
    fn sigma(&self, t: f64) -> f64;
    /// Standard deviation of the prior N(0, prior_std^2 I) at t = T.
    fn prior_std(&self) -> f64;
    /// Serializable description (for checkpoints and reports).
    fn config(&self) -> SdeConfig;

    /// log N(x; 0, prior_std^2 I), accumulated in f64.
    fn prior_log_prob(&self, x: &[f32]) -> f64 {
        let s = self.prior_std();
        let d = x.len() as f64;
        let sq: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        -0.5 * d * (2.0 * std::f64::consts::PI * s * s).ln() - 0.5 * sq / (s * s)
    }

    /// Half log signal-to-noise ratio, lambda(t) = ln(alpha(t) / sigma(t)).
    fn lambda(&self, t: f64) -> f64 {
        self.alpha(t).ln() - self.sigma(t).ln()
    }

    /// Inverse of `lambda` on [0, T] (lambda decreases in t), by bisection to
    /// machine precision. Used by solvers that step in lambda (DPM-Solver).
    fn t_of_lambda(&self, lambda: f64) -> f64 {
        let (mut lo, mut hi) = (0.0_f64, self.t_max());
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if self.lambda(mid) > lambda {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

/// Which process, with its parameters; serialised into checkpoint configs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SdeConfig {
    /// Variance-preserving SDE (DDPM in continuous time).
    Vp {
        beta_min: f64,
        beta_max: f64,
        eps: f64,
    },
    /// Sub-variance-preserving SDE.
    SubVp {
        beta_min: f64,
        beta_max: f64,
        eps: f64,
    },
    /// Variance-exploding SDE (SMLD / NCSN in continuous time).
    Ve {
        sigma_min: f64,
        sigma_max: f64,
        eps: f64,
    },
    /// The linear flow-matching path α = 1 − t, σ = t on [eps, t_max]
    /// ([`LinearSde`]).
    Linear { eps: f64, t_max: f64 },
}

/// `v` for a message: exponent form when very large or very small.
fn num(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// Smallest accepted eps: sigma(eps) of VP/sub-VP is about sqrt(beta_min·eps),
/// and the score divides by it.
pub const MIN_EPS: f64 = 1e-8;
/// Smallest accepted beta_min of VP/sub-VP (sigma(eps) must not vanish).
pub const MIN_BETA: f64 = 1e-6;
/// Largest accepted beta_max of VP/sub-VP: exp(±½∫beta) stays far inside
/// f64 and alpha(t) stays representable.
pub const MAX_BETA_MAX: f64 = 1e3;
/// Smallest sigma_min and largest sigma_max of VE: sigma² and the prior's
/// samples stay finite in f32.
pub const MIN_SIGMA: f64 = 1e-6;
/// See [`MIN_SIGMA`].
pub const MAX_SIGMA: f64 = 1e6;

impl SdeConfig {
    /// score_sde defaults for `"vp"`, `"subvp"` or `"ve"`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "vp" => Ok(SdeConfig::Vp {
                beta_min: 0.1,
                beta_max: 20.0,
                eps: 1e-3,
            }),
            "subvp" | "sub-vp" | "sub_vp" => Ok(SdeConfig::SubVp {
                beta_min: 0.1,
                beta_max: 20.0,
                eps: 1e-3,
            }),
            "ve" => Ok(SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 50.0,
                eps: 1e-5,
            }),
            "linear" => Ok(LinearSde::default().config()),
            other => Err(Error::invalid(
                "sde",
                other,
                "one of: vp, subvp, ve, linear",
            )),
        }
    }

    /// Short name: `vp`, `subvp`, `ve` or `linear`.
    pub fn name(&self) -> &'static str {
        match self {
            SdeConfig::Vp { .. } => "vp",
            SdeConfig::SubVp { .. } => "subvp",
            SdeConfig::Ve { .. } => "ve",
            SdeConfig::Linear { .. } => "linear",
        }
    }

    /// Check the parameters and build the process.
    pub fn build(&self) -> Result<Box<dyn Sde>> {
        let check_eps = |eps: f64| {
            if (MIN_EPS..1.0).contains(&eps) {
                Ok(())
            } else {
                Err(Error::invalid(
                    "eps",
                    num(eps),
                    format!("{MIN_EPS:e} <= eps < T = 1 (smaller eps make sigma(eps) and the score overflow)"),
                ))
            }
        };
        match *self {
            SdeConfig::Vp {
                beta_min,
                beta_max,
                eps,
            }
            | SdeConfig::SubVp {
                beta_min,
                beta_max,
                eps,
            } => {
                check_eps(eps)?;
                if !(beta_min >= MIN_BETA && beta_max > beta_min && beta_max <= MAX_BETA_MAX) {
                    return Err(Error::invalid(
                        "beta_min/beta_max",
                        format!("{}/{}", num(beta_min), num(beta_max)),
                        format!("{MIN_BETA:e} <= beta_min < beta_max <= {MAX_BETA_MAX:e} (where the closed forms stay finite)"),
                    ));
                }
                let beta = LinearBeta { beta_min, beta_max };
                Ok(if matches!(self, SdeConfig::Vp { .. }) {
                    Box::new(VpSde { beta, eps })
                } else {
                    Box::new(SubVpSde { beta, eps })
                })
            }
            SdeConfig::Ve {
                sigma_min,
                sigma_max,
                eps,
            } => {
                check_eps(eps)?;
                if !(sigma_min >= MIN_SIGMA && sigma_max > sigma_min && sigma_max <= MAX_SIGMA) {
                    return Err(Error::invalid(
                        "sigma_min/sigma_max",
                        format!("{}/{}", num(sigma_min), num(sigma_max)),
                        format!(
                            "{MIN_SIGMA:e} <= sigma_min < sigma_max <= {MAX_SIGMA:e} (where the closed forms stay finite)"
                        ),
                    ));
                }
                Ok(Box::new(VeSde {
                    sigma_min,
                    sigma_max,
                    eps,
                }))
            }
            SdeConfig::Linear { eps, t_max } => {
                check_eps(eps)?;
                if !(t_max > eps && t_max <= 1.0 - MIN_EPS) {
                    return Err(Error::invalid(
                        "t_max",
                        num(t_max),
                        format!("eps < t_max <= 1 - {MIN_EPS:e} (f and g diverge at t = 1)"),
                    ));
                }
                Ok(Box::new(LinearSde { eps, t_max }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central-difference check that g(t)² matches the marginal variance:
    /// for an affine SDE, d/dt sigma² = 2 f sigma² + g², d/dt ln alpha = f.
    #[test]
    fn coefficients_match_marginal() {
        for cfg in ["vp", "subvp", "ve", "linear"] {
            let sde = SdeConfig::by_name(cfg).unwrap().build().unwrap();
            for &t in &[0.01, 0.1, 0.5, 0.9] {
                let h = 1e-6;
                let dlna = (sde.alpha(t + h).ln() - sde.alpha(t - h).ln()) / (2.0 * h);
                assert!(
                    (dlna - sde.drift_coef(t)).abs() < 1e-5 * (1.0 + dlna.abs()),
                    "{cfg}"
                );
                let v = |t: f64| sde.sigma(t).powi(2);
                let dv = (v(t + h) - v(t - h)) / (2.0 * h);
                let rhs = 2.0 * sde.drift_coef(t) * v(t) + sde.diffusion(t).powi(2);
                assert!(
                    (dv - rhs).abs() < 1e-5 * (1.0 + rhs.abs()),
                    "{cfg} t={t}: {dv} vs {rhs}"
                );
            }
        }
    }

    #[test]
    fn lambda_inverse_round_trips() {
        for cfg in ["vp", "subvp", "ve", "linear"] {
            let sde = SdeConfig::by_name(cfg).unwrap().build().unwrap();
            for &t in &[1e-3, 0.05, 0.5, 0.99] {
                let back = sde.t_of_lambda(sde.lambda(t));
                assert!((back - t).abs() < 1e-9, "{cfg}: {t} -> {back}");
            }
        }
    }

    #[test]
    fn tiny_steps_stay_finite() {
        for n in 1..30 {
            for s in [
                DiscreteSchedule::vp_linear(n, 0.1, 20.0).unwrap(),
                DiscreteSchedule::cosine(n).unwrap(),
            ] {
                assert!(s.betas.iter().all(|b| *b > 0.0 && *b <= MAX_BETA));
                assert!(s.alpha_bars.iter().all(|a| a.is_finite() && *a > 0.0));
            }
        }
        assert!(DiscreteSchedule::vp_linear(0, 0.1, 20.0).is_err());
    }
}
