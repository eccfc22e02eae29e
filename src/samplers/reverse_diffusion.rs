//! Reverse-diffusion predictor (score_sde's `ReverseDiffusionPredictor`):
//! the reverse of the forward process's own discretisation.

use ndarray::Array2;

use super::stepper::{entry, Info, Rule, Stepper};
use super::steps::{reverse_diffusion_update, run_score_steps, DiscreteStep};
use super::{Ctx, Entry, Params, Schedule};
use crate::error::Result;

pub(super) const REGISTRY: &[Entry] = &[entry::<ReverseDiffusionStep>(
    &["reverse_diffusion"],
    "reverse of the forward process's discretisation (score_sde's predictor); NFE N; schedule (uniform), noise",
)];

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
pub type ReverseDiffusion = Stepper<ReverseDiffusionStep>;

/// The update of [`ReverseDiffusion`] (no keys of its own).
#[derive(Clone, Debug, Default)]
pub struct ReverseDiffusionStep;

impl Rule for ReverseDiffusionStep {
    const INFO: Info = Info {
        spec: "reverse-diffusion",
        label: "reverse_diffusion",
        default_schedule: &Schedule::Uniform,
        noisy: true,
    };

    fn parse(_: &mut Params) -> Result<Self> {
        Ok(ReverseDiffusionStep)
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>, grid: (&Schedule, usize)) -> Result<()> {
        run_score_steps(ctx, x, grid, |ctx, x, score, z, (t, t_next), last| {
            let step = DiscreteStep::new(ctx.sde, t, t_next);
            reverse_diffusion_update(ctx, x, score, z, step, last)
        })
    }
}
