//! DDPM ancestral sampling over a discrete schedule (Ho et al. 2020).

use ndarray::Array2;

use super::{affine_update, Ctx, Sampler};
use crate::error::{Error, Result};
use crate::sde::{check_steps, DiscreteSchedule, Sde, SdeConfig};

/// Which discrete beta schedule DDPM walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DdpmSchedule {
    /// score_sde's discretisation of the VP SDE (SPEC.md); the model is
    /// evaluated at t_i = (i + 1)/N.
    Linear,
    /// The cosine schedule; the model is evaluated at the VP time whose
    /// alpha(t)² equals alpha_bar_i, so any VP-trained model can use it.
    Cosine,
}

/// DDPM ancestral sampler, for a VP model:
///
/// ```text
///   ε̂ = −sigma(t_i) s(x_i, t_i)
///   x_{i−1} = (x_i − beta_i / sqrt(1 − alpha_bar_i) ε̂) / sqrt(1 − beta_i) + sqrt(beta_i) z
/// ```
///
/// for i = N−1 … 0, with no noise on the last step (i = 0). NFE = N.
#[derive(Clone, Debug)]
pub struct Ddpm {
    pub steps: usize,
    pub schedule: DdpmSchedule,
}

impl Ddpm {
    /// The SPEC.md sampler: N steps of the linear VP discretisation.
    pub fn linear(steps: usize) -> Self {
        Ddpm {
            steps,
            schedule: DdpmSchedule::Linear,
        }
    }

    fn discrete(&self, sde: &dyn Sde) -> Result<DiscreteSchedule> {
        match (self.schedule, sde.config()) {
            (DdpmSchedule::Linear, SdeConfig::Vp { beta_min, beta_max, .. }) => {
                DiscreteSchedule::vp_linear(self.steps, beta_min, beta_max)
            }
            (DdpmSchedule::Cosine, SdeConfig::Vp { .. }) => DiscreteSchedule::cosine(self.steps),
            (_, other) => Err(Error::invalid(
                "sde",
                other.name(),
                "vp (DDPM ancestral sampling is the discrete VP process; use euler_maruyama for other SDEs)",
            )),
        }
    }

    /// Continuous model time of discrete step i.
    fn model_time(&self, sde: &dyn Sde, sched: &DiscreteSchedule, i: usize) -> f64 {
        match self.schedule {
            DdpmSchedule::Linear => sched.time(i),
            DdpmSchedule::Cosine => {
                let ab = sched.alpha_bars[i];
                let lambda = 0.5 * (ab.ln() - (-ab).ln_1p());
                sde.t_of_lambda(lambda).clamp(sde.t_eps(), sde.t_max())
            }
        }
    }
}

impl Sampler for Ddpm {
    fn name(&self) -> String {
        match self.schedule {
            DdpmSchedule::Linear => format!("ddpm({})", self.steps),
            DdpmSchedule::Cosine => format!("ddpm_cosine({})", self.steps),
        }
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)?;
        self.discrete(sde).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) {
        let sde = ctx.sde;
        let Ok(sched) = self.discrete(sde) else {
            return; // unreachable: `sample` validates first
        };
        let n = sched.len();
        let mut score = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for (k, i) in (0..n).rev().enumerate() {
            let t = self.model_time(sde, &sched, i);
            ctx.score(x.view(), t, score.view_mut());
            let (beta, ab) = (sched.betas[i], sched.alpha_bars[i]);
            // ε̂ = −σ(t) s, so  x − β/sqrt(1−ᾱ) ε̂ = x + β σ(t)/sqrt(1−ᾱ) s.
            let inv_sqrt_keep = 1.0 / (1.0 - beta).sqrt();
            let c_x = inv_sqrt_keep as f32;
            let c_s = (inv_sqrt_keep * beta * sde.sigma(t) / (1.0 - ab).sqrt()) as f32;
            let noise = (i > 0).then(|| beta.sqrt() as f32);
            affine_update(ctx, x, &score, &mut z, c_x, c_s, noise);
            let t_next = if i == 0 {
                sde.t_eps()
            } else {
                self.model_time(sde, &sched, i - 1)
            };
            ctx.record(k + 1, n, t_next, x.view());
        }
    }
}
