//! Reverse-SDE Euler–Maruyama solver.

use ndarray::Array2;

use super::stepper::{entry, Info, Rule, Stepper};
use super::steps::{euler_maruyama_update, run_score_steps};
use super::{Ctx, Entry, Params, Schedule};
use crate::error::Result;

pub(super) const REGISTRY: &[Entry] = &[entry::<EulerMaruyamaStep>(
    &["euler-maruyama", "euler_maruyama"],
    "Euler–Maruyama on the reverse SDE; NFE N; schedule (uniform), noise",
)];

/// Euler–Maruyama on the reverse-time SDE dx = [f(t) x − g(t)² s(x,t)] dt + g(t) dw̄
/// over the N steps of a schedule T = t_0 > … > t_N = ε (default uniform),
/// h_k = t_k − t_{k+1}:
///
/// ```text
///   x ← x − [f(t_k) x − g(t_k)² s(x, t_k)] h_k + g(t_k) sqrt(h_k) z,   z ~ N(0, I)
/// ```
///
/// with no noise on the last step (with `noise=brownian` the last step keeps
/// its noise, see [`Ctx::noisy_last_step`]). NFE = N.
pub type EulerMaruyama = Stepper<EulerMaruyamaStep>;

/// The update of [`EulerMaruyama`] (no keys of its own).
#[derive(Clone, Debug, Default)]
pub struct EulerMaruyamaStep;

impl Rule for EulerMaruyamaStep {
    const INFO: Info = Info {
        spec: "em",
        label: "euler_maruyama",
        default_schedule: &Schedule::Uniform,
        noisy: true,
    };

    fn parse(_: &mut Params) -> Result<Self> {
        Ok(EulerMaruyamaStep)
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>, grid: (&Schedule, usize)) -> Result<()> {
        run_score_steps(ctx, x, grid, |ctx, x, score, z, (t, t_next), last| {
            euler_maruyama_update(ctx, x, score, z, (t, t - t_next), last)
        })
    }
}
