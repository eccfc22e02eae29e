//! EDM sampler (Karras et al. 2022, Algorithm 2): Heun's method on the
//! probability-flow ODE in the scaled variable, with optional churn.

use ndarray::{Array2, Zip};

use super::{Ctx, Sampler};
use crate::error::{Error, Result};
use crate::sde::{check_steps, Sde};

/// EDM's second-order sampler on any SDE here, in the scaled variable
///
/// ```text
///   x̃ = x / alpha(t),   σ̃ = sigma(t) / alpha(t) = exp(−lambda(t)),
/// ```
///
/// where the PF-ODE is dx̃/dσ̃ = (x̃ − D(x̃; σ̃))/σ̃ (Karras et al. eq. 4 with
/// s(t) = 1 after the change of variable). The denoiser D is Tweedie's x̂0 at
/// the SDE time t = t_of_lambda(−ln σ̃):
///
/// ```text
///   D(x̃; σ̃) = (x + sigma(t)² s(x, t)) / alpha(t),   x = alpha(t) x̃,
/// ```
///
/// so (x̃ − D)/σ̃ = −sigma(t) s(x, t) = ε̂. For VE, alpha = 1 and σ̃ = sigma.
///
/// Schedule (σ̃_min = σ̃(ε), σ̃_max = σ̃(T)), i = 0..N−1, then σ̃_N = 0:
///
/// ```text
///   σ̃_i = (σ̃_max^{1/rho} + i/(N−1) (σ̃_min^{1/rho} − σ̃_max^{1/rho}))^rho
/// ```
///
/// (N = 1: σ̃_0 = σ̃_max). Step i, with gamma_i = min(churn/N, sqrt(2) − 1) if
/// s_min ≤ σ̃_i ≤ s_max, else 0:
///
/// ```text
///   σ̂ = min(σ̃_i (1 + gamma_i), σ̃_max)
///   x̂ = x̃ + sqrt(σ̂² − σ̃_i²) s_noise z           (only if σ̂ > σ̃_i)
///   d = (x̂ − D(x̂; σ̂))/σ̂;  x̃' = x̂ + (σ̃_{i+1} − σ̂) d
///   if σ̃_{i+1} > 0:  d' = (x̃' − D(x̃'; σ̃_{i+1}))/σ̃_{i+1},
///                   x̃' = x̂ + (σ̃_{i+1} − σ̂)(d + d')/2
/// ```
///
/// σ̂ is capped at σ̃_max because a time-conditioned score exists only up to
/// t = T (Karras et al. can evaluate their network at any sigma). The
/// prior draw x_T is mapped to x̃ = x_T / alpha(T); the result, at σ̃ = 0,
/// is x̃ = x0 (data scaling). NFE = 2N − 1 (Euler on the last step).
/// Defaults churn = 0, s_min = 0, s_max = ∞, s_noise = 1, rho = 7
/// (deterministic).
#[derive(Clone, Debug)]
pub struct Edm {
    pub steps: usize,
    pub rho: f64,
    pub churn: f64,
    pub s_min: f64,
    pub s_max: f64,
    pub s_noise: f64,
}

impl Edm {
    /// Deterministic EDM with rho = 7.
    pub fn new(steps: usize) -> Self {
        Edm {
            steps,
            rho: 7.0,
            churn: 0.0,
            s_min: 0.0,
            s_max: f64::INFINITY,
            s_noise: 1.0,
        }
    }

    /// σ̃_0 … σ̃_N (the last is 0).
    pub fn sigmas(&self, sde: &dyn Sde) -> Vec<f64> {
        let n = self.steps;
        let scaled = |t: f64| sde.sigma(t) / sde.alpha(t);
        let (sigma_max, sigma_min) = (scaled(sde.t_max()), scaled(sde.t_eps()));
        // (hi + frac (lo − hi))^rho with hi = σ̃_max^{1/rho}, lo = σ̃_min^{1/rho},
        // written as σ̃_max exp(rho ln(1 + frac (r − 1))), r = (σ̃_min/σ̃_max)^{1/rho},
        // so no power overflows for any rho > 0; mathematically σ̃_i ∈ [σ̃_min, σ̃_max].
        let r_minus_1 = ((sigma_min / sigma_max).ln() / self.rho).exp_m1();
        let mut sig: Vec<f64> = (0..n)
            .map(|i| {
                let frac = if n == 1 {
                    0.0
                } else {
                    i as f64 / (n - 1) as f64
                };
                // Clamped: rounding at tiny rho (r − 1 = −1) would give 0 at frac = 1.
                (sigma_max * (self.rho * (frac * r_minus_1).ln_1p()).exp()).max(sigma_min)
            })
            .collect();
        sig.push(0.0);
        sig
    }
}

impl Sampler for Edm {
    fn name(&self) -> String {
        if self.churn == 0.0 {
            format!("edm({}, rho={})", self.steps, self.rho)
        } else {
            format!(
                "edm({}, rho={}, churn={}, s_min={}, s_max={}, s_noise={})",
                self.steps, self.rho, self.churn, self.s_min, self.s_max, self.s_noise
            )
        }
    }

    fn validate(&self, _sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)?;
        if !(self.rho > 0.0 && self.rho.is_finite()) {
            return Err(Error::invalid(
                "rho",
                self.rho,
                "0 < rho < inf (EDM uses 7)",
            ));
        }
        if !(self.churn >= 0.0 && self.churn.is_finite()) {
            return Err(Error::invalid("churn", self.churn, "0 <= churn < inf"));
        }
        if !(self.s_min >= 0.0 && self.s_max >= self.s_min) {
            return Err(Error::invalid(
                "s_min/s_max",
                format!("{}/{}", self.s_min, self.s_max),
                "0 <= s_min <= s_max",
            ));
        }
        if !(self.s_noise >= 0.0 && self.s_noise.is_finite()) {
            return Err(Error::invalid(
                "s_noise",
                self.s_noise,
                "0 <= s_noise < inf",
            ));
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) {
        let sde = ctx.sde;
        let n = self.steps;
        let sig = self.sigmas(sde);
        let sigma_max = sig[0];
        let gamma_max = (self.churn / n as f64).min(std::f64::consts::SQRT_2 - 1.0);
        let mut den = Denoiser {
            x_sde: Array2::zeros(x.raw_dim()),
            score: Array2::zeros(x.raw_dim()),
        };
        let mut d = Array2::<f32>::zeros(x.raw_dim());
        let mut d2 = Array2::<f32>::zeros(x.raw_dim());
        let mut x_hat = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        // x̃ = x_T / alpha(T).
        let inv_alpha_t = (1.0 / sde.alpha(sde.t_max())) as f32;
        x.mapv_inplace(|v| v * inv_alpha_t);
        for i in 0..n {
            let (sigma_i, sigma_next) = (sig[i], sig[i + 1]);
            let gamma = if self.s_min <= sigma_i && sigma_i <= self.s_max {
                gamma_max
            } else {
                0.0
            };
            let sigma_hat = (sigma_i * (1.0 + gamma)).min(sigma_max);
            x_hat.assign(x);
            if sigma_hat > sigma_i {
                ctx.normal(&mut z);
                let c = ((sigma_hat * sigma_hat - sigma_i * sigma_i).sqrt() * self.s_noise) as f32;
                Zip::from(&mut x_hat)
                    .and(&z)
                    .for_each(|xv, &zv| *xv += c * zv);
            }
            den.eps_hat(ctx, &x_hat, sigma_hat, &mut d);
            let h = (sigma_next - sigma_hat) as f32;
            Zip::from(&mut *x)
                .and(&x_hat)
                .and(&d)
                .for_each(|xv, &xh, &dv| *xv = xh + h * dv);
            if sigma_next > 0.0 {
                den.eps_hat(ctx, x, sigma_next, &mut d2);
                let h2 = 0.5 * h;
                Zip::from(&mut *x)
                    .and(&x_hat)
                    .and(&d)
                    .and(&d2)
                    .for_each(|xv, &xh, &dv, &d2v| *xv = xh + h2 * (dv + d2v));
                // Record in the SDE's own scaling, x = alpha(t) x̃.
                let t = den.time(sde, sigma_next);
                let a = sde.alpha(t) as f32;
                Zip::from(&mut den.x_sde)
                    .and(&*x)
                    .for_each(|o, &xv| *o = a * xv);
                ctx.record(i + 1, n, t, den.x_sde.view());
            } else {
                ctx.record(i + 1, n, sde.t_eps(), x.view());
            }
        }
    }
}

/// Scratch for the denoiser D(x̃; σ̃) evaluated through a time-conditioned score.
struct Denoiser {
    x_sde: Array2<f32>,
    score: Array2<f32>,
}

impl Denoiser {
    /// SDE time whose σ̃(t) = sigma/alpha equals `sigma_tilde`.
    fn time(&self, sde: &dyn Sde, sigma_tilde: f64) -> f64 {
        sde.t_of_lambda(-sigma_tilde.ln())
            .clamp(sde.t_eps(), sde.t_max())
    }

    /// d = (x̃ − D(x̃; σ̃))/σ̃ = −(sigma(t)²/(alpha(t) σ̃)) s(alpha(t) x̃, t)
    /// into `out` (one NFE). With σ̃ = sigma(t)/alpha(t) this is ε̂ = −sigma(t) s.
    fn eps_hat(
        &mut self,
        ctx: &mut Ctx,
        x_tilde: &Array2<f32>,
        sigma_tilde: f64,
        out: &mut Array2<f32>,
    ) {
        let sde = ctx.sde;
        let t = self.time(sde, sigma_tilde);
        let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
        let a = alpha as f32;
        Zip::from(&mut self.x_sde)
            .and(x_tilde)
            .for_each(|o, &xv| *o = a * xv);
        ctx.score(self.x_sde.view(), t, self.score.view_mut());
        let c = (-sigma * sigma / (alpha * sigma_tilde)) as f32;
        Zip::from(out).and(&self.score).for_each(|o, &s| *o = c * s);
    }
}
