//! Reverse-SDE Euler–Maruyama solver.

use ndarray::Array2;

use super::params::SpecWriter;
use super::steps::{euler_maruyama_update, run_score_steps};
use super::{Ctx, Entry, Nfe, Noise, Params, Sampler, Schedule};
use crate::error::Result;
use crate::sde::Sde;

pub(super) const REGISTRY: &[Entry] = &[Entry {
    name: "em",
    aliases: &["euler-maruyama", "euler_maruyama"],
    help: "Euler–Maruyama on the reverse SDE; NFE N; schedule (uniform), noise",
    build: |p: &mut Params, steps| {
        Ok(Box::new(EulerMaruyama {
            steps,
            schedule: p.schedule(Schedule::Uniform)?,
            noise: p.noise()?,
        }))
    },
}];

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
#[derive(Clone, Debug)]
pub struct EulerMaruyama {
    pub steps: usize,
    pub schedule: Schedule,
    pub noise: Noise,
}

impl EulerMaruyama {
    /// N uniform steps, per-step noise streams.
    pub fn new(steps: usize) -> Self {
        EulerMaruyama {
            steps,
            schedule: Schedule::Uniform,
            noise: Noise::Steps,
        }
    }
}

impl Sampler for EulerMaruyama {
    fn name(&self) -> String {
        SpecWriter::new("em", self.steps)
            .schedule(&self.schedule, &Schedule::Uniform)
            .noise(self.noise)
            .done()
    }

    fn label(&self) -> String {
        format!(
            "euler_maruyama({}{})",
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
            euler_maruyama_update(ctx, x, score, z, (t, t - t_next), last)
        })
    }
}
