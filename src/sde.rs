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

mod linear;
pub use linear::{LinearSde, LINEAR_T_GAP};

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

/// A discrete DDPM noise schedule: beta_i for i = 0..N-1 and
/// alpha_bar_i = prod_{j<=i} (1 - beta_j). Step i corresponds to continuous
/// time t_i = (i + 1) / N of the VP SDE, where alpha_bar_i ≈ alpha(t_i)².
#[derive(Clone, Debug)]
pub struct DiscreteSchedule {
    pub betas: Vec<f64>,
    pub alpha_bars: Vec<f64>,
}

/// Largest beta a discrete step may take, so that sqrt(1 - beta) stays
/// positive (as in the cosine schedule of Nichol & Dhariwal).
pub const MAX_BETA: f64 = 0.999;

impl DiscreteSchedule {
    fn from_betas(betas: Vec<f64>) -> Self {
        let mut acc = 1.0;
        let alpha_bars = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        DiscreteSchedule { betas, alpha_bars }
    }

    /// The discrete process with the given alpha_bar_i (increasing in
    /// noise, each in (0, 1]): beta_i = 1 − alpha_bar_i / alpha_bar_{i−1}
    /// (alpha_bar_{−1} = 1), capped at [`MAX_BETA`].
    pub fn from_alpha_bars(alpha_bars: &[f64]) -> Self {
        let mut prev = 1.0;
        let betas = alpha_bars
            .iter()
            .map(|&ab| {
                let b = (1.0 - ab / prev).clamp(0.0, MAX_BETA);
                prev = ab;
                b
            })
            .collect();
        Self::from_betas(betas)
    }

    /// The score_sde discretisation of the VP SDE (docs/SPEC.md):
    /// beta_i = beta_min/N + i/(N(N-1)) (beta_max - beta_min), i = 0..N-1,
    /// i.e. `linspace(beta_min/N, beta_max/N, N)`. For N < beta_max the last
    /// betas would exceed 1; they are clipped at [`MAX_BETA`].
    pub fn vp_linear(n: usize, beta_min: f64, beta_max: f64) -> Result<Self> {
        check_steps(n)?;
        let nf = n as f64;
        let betas = (0..n)
            .map(|i| {
                let frac = if n == 1 { 0.0 } else { i as f64 / (nf - 1.0) };
                ((beta_min + frac * (beta_max - beta_min)) / nf).min(MAX_BETA)
            })
            .collect();
        Ok(Self::from_betas(betas))
    }

    /// Cosine schedule (Nichol & Dhariwal 2021): alpha_bar(u) =
    /// cos²(π/2 · (u + s)/(1 + s)) / cos²(π/2 · s/(1 + s)) at u = (i+1)/N, s = 0.008,
    /// beta_i = min(1 - alpha_bar_i / alpha_bar_{i-1}, 0.999).
    pub fn cosine(n: usize) -> Result<Self> {
        check_steps(n)?;
        let s = 0.008;
        let f = |u: f64| {
            (std::f64::consts::FRAC_PI_2 * (u + s) / (1.0 + s))
                .cos()
                .powi(2)
        };
        let f0 = f(0.0);
        let betas = (0..n)
            .map(|i| {
                let prev = f(i as f64 / n as f64) / f0;
                let cur = f((i + 1) as f64 / n as f64) / f0;
                (1.0 - cur / prev).clamp(0.0, MAX_BETA)
            })
            .collect();
        Ok(Self::from_betas(betas))
    }

    /// Number of steps N.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Always false: a schedule has at least one step.
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// Continuous time t_i = (i + 1) / N at which the model is evaluated.
    pub fn time(&self, i: usize) -> f64 {
        (i + 1) as f64 / self.len() as f64
    }
}

/// Validate a user-chosen step count.
/// Validate a user-chosen step count: 1..=[`crate::limits::MAX_SAMPLER_STEPS`]
/// (schedules are allocated per step).
pub fn check_steps(n: usize) -> Result<()> {
    let max = crate::limits::MAX_SAMPLER_STEPS;
    if n == 0 || n > max {
        Err(Error::invalid(
            "steps",
            n,
            format!("an integer >= 1 and <= {max}"),
        ))
    } else {
        Ok(())
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
