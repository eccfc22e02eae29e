//! DDPM ancestral sampling over a discrete schedule (Ho et al. 2020).

use ndarray::Array2;

use super::ctx::affine_update;
use super::params::SpecWriter;
use super::{Ctx, Entry, Nfe, Noise, Params, Sampler, Schedule};
use crate::error::{Error, Result};
use crate::sde::{check_steps, DiscreteSchedule, Sde, SdeConfig};

pub(super) const REGISTRY: &[Entry] = &[
    Entry {
        name: "ddpm",
        aliases: &[],
        help: "DDPM ancestral sampling on score_sde's linear VP discretisation (docs/SPEC.md), VP only; NFE N; schedule (the discrete betas), noise",
        build: |p: &mut Params, steps| {
            let schedule = match p.has("schedule") {
                true => DdpmSchedule::Grid(p.schedule(Schedule::Uniform)?),
                false => DdpmSchedule::Linear,
            };
            Ok(Box::new(Ddpm {
                steps,
                schedule,
                noise: p.noise()?,
            }))
        },
    },
    Entry {
        name: "ddpm-cosine",
        aliases: &["ddpm_cosine"],
        help: "DDPM ancestral sampling on the cosine schedule, VP only; NFE N; noise",
        build: |p: &mut Params, steps| {
            Ok(Box::new(Ddpm {
                steps,
                schedule: DdpmSchedule::Cosine,
                noise: p.noise()?,
            }))
        },
    },
];

/// Which discrete beta schedule DDPM walks.
#[derive(Clone, Debug, PartialEq)]
pub enum DdpmSchedule {
    /// score_sde's discretisation of the VP SDE (docs/SPEC.md); the model is
    /// evaluated at t_i = (i + 1)/N.
    Linear,
    /// The cosine schedule; the model is evaluated at the VP time whose
    /// alpha(t)² equals alpha_bar_i, so any VP-trained model can use it.
    Cosine,
    /// The discrete process of a time grid: alpha_bar_i = alpha(t_i)² at the
    /// grid times, beta_i = 1 − alpha_bar_i / alpha_bar_{i−1} (capped at
    /// [`crate::sde::MAX_BETA`]), the model evaluated at t_i.
    Grid(Schedule),
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
    pub noise: Noise,
}

impl Ddpm {
    /// The docs/SPEC.md sampler: N steps of the linear VP discretisation.
    pub fn linear(steps: usize) -> Self {
        Ddpm {
            steps,
            schedule: DdpmSchedule::Linear,
            noise: Noise::Steps,
        }
    }

    fn discrete(&self, sde: &dyn Sde) -> Result<(DiscreteSchedule, Vec<f64>)> {
        let sched = match (&self.schedule, sde.config()) {
            (DdpmSchedule::Linear, SdeConfig::Vp { beta_min, beta_max, .. }) => {
                DiscreteSchedule::vp_linear(self.steps, beta_min, beta_max)
            }
            (DdpmSchedule::Cosine, SdeConfig::Vp { .. }) => DiscreteSchedule::cosine(self.steps),
            (DdpmSchedule::Grid(g), SdeConfig::Vp { .. }) => {
                let grid = g.grid(sde, self.steps)?;
                // Discrete index i = 0..N−1 is grid point N − 1 − i (sampling
                // walks i downwards from N − 1, i.e. the grid from t_0 = T).
                let ab: Vec<f64> = grid.times()[..self.steps]
                    .iter()
                    .rev()
                    .map(|&t| sde.alpha(t).powi(2))
                    .collect();
                let times = grid.times()[..self.steps].iter().rev().copied().collect();
                return Ok((DiscreteSchedule::from_alpha_bars(&ab), times));
            }
            (_, other) => Err(Error::invalid(
                "sde",
                other.name(),
                "vp (DDPM ancestral sampling is the discrete VP process; use euler_maruyama for other SDEs)",
            )),
        }?;
        let times = (0..sched.len())
            .map(|i| self.model_time(sde, &sched, i))
            .collect();
        Ok((sched, times))
    }

    /// Continuous model time of discrete step i.
    fn model_time(&self, sde: &dyn Sde, sched: &DiscreteSchedule, i: usize) -> f64 {
        match self.schedule {
            DdpmSchedule::Linear | DdpmSchedule::Grid(_) => sched.time(i),
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
        let w = match &self.schedule {
            DdpmSchedule::Linear => SpecWriter::new("ddpm", self.steps),
            DdpmSchedule::Cosine => SpecWriter::new("ddpm-cosine", self.steps),
            DdpmSchedule::Grid(g) => SpecWriter::new("ddpm", self.steps).schedule_always(g),
        };
        w.noise(self.noise).done()
    }

    fn label(&self) -> String {
        match &self.schedule {
            DdpmSchedule::Linear => format!("ddpm({})", self.steps),
            DdpmSchedule::Cosine => format!("ddpm_cosine({})", self.steps),
            DdpmSchedule::Grid(g) => format!("ddpm({}, {})", self.steps, g.short()),
        }
    }

    fn cost(&self) -> Nfe {
        Nfe::ONE
    }

    fn noise(&self) -> Noise {
        self.noise
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)?;
        self.discrete(sde).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()> {
        let sde = ctx.sde;
        let (sched, times) = self.discrete(sde)?;
        let n = sched.len();
        let mut score = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for (k, i) in (0..n).rev().enumerate() {
            let t = times[i];
            ctx.score(x.view(), t, score.view_mut());
            let (beta, ab) = (sched.betas[i], sched.alpha_bars[i]);
            // ε̂ = −σ(t) s, so  x − β/sqrt(1−ᾱ) ε̂ = x + β σ(t)/sqrt(1−ᾱ) s.
            let inv_sqrt_keep = 1.0 / (1.0 - beta).sqrt();
            let c_x = inv_sqrt_keep as f32;
            let c_s = (inv_sqrt_keep * beta * sde.sigma(t) / (1.0 - ab).sqrt()) as f32;
            let noise = (i > 0).then(|| beta.sqrt() as f32);
            let t_next = if i == 0 { sde.t_eps() } else { times[i - 1] };
            affine_update(ctx, x, &score, &mut z, c_x, c_s, noise, (t, t_next));
            ctx.record(k + 1, n, t_next, x.view());
        }
        Ok(())
    }
}
