//! EDM sampler (Karras et al. 2022, Algorithm 2): Heun's method on the
//! probability-flow ODE in the scaled variable, with optional churn.

use ndarray::{Array2, Zip};

use super::params::SpecWriter;
use super::{Ctx, Entry, Nfe, Noise, Params, Sampler, Schedule};
use crate::error::{Error, Result};
use crate::sde::{check_steps, Sde};

pub(super) const REGISTRY: &[Entry] = &[Entry {
    name: "edm",
    aliases: &[],
    help: "Karras et al. Heun sampler with optional churn; NFE 2N-1; schedule (karras:rho=7; rho=R is short for it), churn (0), s_min (0), s_max (inf), s_noise (1), noise",
    build: |p: &mut Params, steps| {
        let d = Edm::new(steps);
        let rho = p.f64("rho", 7.0)?;
        let schedule = p.schedule(Schedule::Karras { rho })?;
        Ok(Box::new(Edm {
            schedule,
            churn: p.f64("churn", d.churn)?,
            s_min: p.f64("s_min", d.s_min)?,
            s_max: p.f64("s_max", d.s_max)?,
            s_noise: p.f64("s_noise", d.s_noise)?,
            noise: p.noise()?,
            ..d
        }))
    },
}];

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
/// Schedule: the N points of an (N − 1)-step grid, then σ̃_N = 0; by default
/// Karras ρ = 7 (σ̃_min = σ̃(ε), σ̃_max = σ̃(T)), i = 0..N−1:
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
/// Defaults churn = 0, s_min = 0, s_max = ∞, s_noise = 1, Karras rho = 7
/// (deterministic). The churn noise is the step's noise (`noise=`).
#[derive(Clone, Debug)]
pub struct Edm {
    pub steps: usize,
    pub schedule: Schedule,
    pub churn: f64,
    pub s_min: f64,
    pub s_max: f64,
    pub s_noise: f64,
    pub noise: Noise,
}

impl Edm {
    /// Deterministic EDM with Karras rho = 7.
    pub fn new(steps: usize) -> Self {
        Edm {
            steps,
            schedule: Schedule::Karras { rho: 7.0 },
            churn: 0.0,
            s_min: 0.0,
            s_max: f64::INFINITY,
            s_noise: 1.0,
            noise: Noise::Steps,
        }
    }

    /// (t_i, σ̃_i) for i = 0..N−1; σ̃_N = 0 follows.
    pub fn grid(&self, sde: &dyn Sde) -> Result<(Vec<f64>, Vec<f64>)> {
        check_steps(self.steps)?;
        if self.steps == 1 {
            let t = sde.t_max();
            self.schedule.validate(sde)?;
            return Ok((vec![t], vec![sde.sigma(t) / sde.alpha(t)]));
        }
        let g = self.schedule.grid(sde, self.steps - 1)?;
        Ok((g.times().to_vec(), g.sigmas().to_vec()))
    }

    /// σ̃_0 … σ̃_N (the last is 0); empty if the schedule does not fit `sde`.
    pub fn sigmas(&self, sde: &dyn Sde) -> Vec<f64> {
        let mut sig = self.grid(sde).map(|g| g.1).unwrap_or_default();
        sig.push(0.0);
        sig
    }
}

impl Sampler for Edm {
    fn name(&self) -> String {
        SpecWriter::new("edm", self.steps)
            .schedule(&self.schedule, &Schedule::Karras { rho: 7.0 })
            .f64("churn", self.churn, 0.0)
            .f64("s_min", self.s_min, 0.0)
            .f64("s_max", self.s_max, f64::INFINITY)
            .f64("s_noise", self.s_noise, 1.0)
            .noise(self.noise)
            .done()
    }

    fn label(&self) -> String {
        let sched = match self.schedule {
            Schedule::Karras { rho } => format!("rho={rho}"),
            ref other => other.spec(),
        };
        if self.churn == 0.0 {
            format!("edm({}, {sched})", self.steps)
        } else {
            format!(
                "edm({}, {sched}, churn={}, s_min={}, s_max={}, s_noise={})",
                self.steps, self.churn, self.s_min, self.s_max, self.s_noise
            )
        }
    }

    fn cost(&self) -> Nfe {
        Nfe::Fixed {
            per_step: 2,
            offset: -1,
        }
    }

    fn noise(&self) -> Noise {
        self.noise
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
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
        self.grid(sde).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()> {
        let sde = ctx.sde;
        let n = self.steps;
        let (times, mut sig) = self.grid(sde)?;
        sig.push(0.0);
        let sigma_max = sig[0];
        let gamma_max = (self.churn / n as f64).min(std::f64::consts::SQRT_2 - 1.0);
        let mut x_sde = Array2::<f32>::zeros(x.raw_dim());
        // SDE time of a noise level: the grid's own time on the grid.
        let time_of = |i: usize, sigma_tilde: f64| -> f64 {
            if i < times.len() && sig[i] == sigma_tilde {
                times[i]
            } else {
                sde.t_of_lambda(-sigma_tilde.ln())
                    .clamp(sde.t_eps(), sde.t_max())
            }
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
                let (t_i, t_hat) = (time_of(i, sigma_i), time_of(usize::MAX, sigma_hat));
                ctx.noise(t_hat, t_i, &mut z);
                let c = ((sigma_hat * sigma_hat - sigma_i * sigma_i).sqrt() * self.s_noise) as f32;
                Zip::from(&mut x_hat)
                    .and(&z)
                    .for_each(|xv, &zv| *xv += c * zv);
            }
            ctx.eps_scaled(&x_hat, time_of(i, sigma_hat), sigma_hat, &mut d);
            let h = (sigma_next - sigma_hat) as f32;
            Zip::from(&mut *x)
                .and(&x_hat)
                .and(&d)
                .for_each(|xv, &xh, &dv| *xv = xh + h * dv);
            if sigma_next > 0.0 {
                let t = time_of(i + 1, sigma_next);
                ctx.eps_scaled(x, t, sigma_next, &mut d2);
                let h2 = 0.5 * h;
                Zip::from(&mut *x)
                    .and(&x_hat)
                    .and(&d)
                    .and(&d2)
                    .for_each(|xv, &xh, &dv, &d2v| *xv = xh + h2 * (dv + d2v));
                // Record in the SDE's own scaling, x = alpha(t) x̃.
                let a = sde.alpha(t) as f32;
                Zip::from(&mut x_sde)
                    .and(&*x)
                    .for_each(|o, &xv| *o = a * xv);
                ctx.record(i + 1, n, t, x_sde.view());
            } else {
                ctx.record(i + 1, n, sde.t_eps(), x.view());
            }
        }
        Ok(())
    }
}
