//! Reverse-diffusion predictor (score_sde's `ReverseDiffusionPredictor`):
//! the reverse of the forward process's own discretisation.

use ndarray::Array2;

use super::params::SpecWriter;
use super::steps::{reverse_diffusion_update, run_score_steps, DiscreteStep};
use super::{Ctx, Entry, Nfe, Noise, Params, Sampler, Schedule};
use crate::error::Result;
use crate::sde::Sde;

pub(super) const REGISTRY: &[Entry] = &[Entry {
    name: "reverse-diffusion",
    aliases: &["reverse_diffusion"],
    help: "reverse of the forward process's discretisation (score_sde's predictor); NFE N; schedule (uniform), noise",
    build: |p: &mut Params, steps| {
        Ok(Box::new(ReverseDiffusion {
            steps,
            schedule: p.schedule(Schedule::Uniform)?,
            noise: p.noise()?,
        }))
    },
}];

/// Reverse-diffusion predictor over the N steps of a schedule (default
/// uniform t). The forward process between t_next = t_{k+1} and t = t_k is
/// the exact Gaussian kernel x_t = a x_{t_next} + G z with
/// a = alpha(t)/alpha(t_next) and G² = sigma(t)² − a² sigma(t_next)², i.e.
/// the discrete step x_{i+1} = x_i + f_i(x_i) + G z with f_i(x) = (a − 1) x.
/// Its reverse is
///
/// ```text
///   x ← x − f_i(x) + G² s(x, t) + G z = (2 − a) x + G² s(x, t) + G z,   z ~ N(0, I)
/// ```
///
/// with no noise on the last step (to t = ε). VE: SMLD's G² = sigma_i² −
/// sigma_{i−1}²; VP: G² = 1 − a², the exact form of score_sde's beta(t)/N.
/// NFE = N.
#[derive(Clone, Debug)]
pub struct ReverseDiffusion {
    pub steps: usize,
    pub schedule: Schedule,
    pub noise: Noise,
}

impl ReverseDiffusion {
    /// N uniform steps, per-step noise streams.
    pub fn new(steps: usize) -> Self {
        ReverseDiffusion {
            steps,
            schedule: Schedule::Uniform,
            noise: Noise::Steps,
        }
    }
}

impl Sampler for ReverseDiffusion {
    fn name(&self) -> String {
        SpecWriter::new("reverse-diffusion", self.steps)
            .schedule(&self.schedule, &Schedule::Uniform)
            .noise(self.noise)
            .done()
    }

    fn label(&self) -> String {
        format!(
            "reverse_diffusion({}{})",
            self.steps,
            self.schedule.label_suffix(&Schedule::Uniform)
        )
    }

    fn cost(&self) -> Nfe {
        Nfe::ONE
    }

    fn noise(&self) -> Noise {
        self.noise
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        self.schedule.grid(sde, self.steps).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()> {
        let grid = (&self.schedule, self.steps);
        run_score_steps(ctx, x, grid, |ctx, x, score, z, (t, t_next), last| {
            let step = DiscreteStep::new(ctx.sde, t, t_next);
            reverse_diffusion_update(ctx, x, score, z, step, last)
        })
    }
}
