//! The fixed-step samplers whose parameters are N steps over a schedule,
//! a noise source (stochastic ones) and at most a few keys of their own
//! (`em`, `reverse-diffusion`, `ddim`, `dpm-solver++`, `lms`, `ipndm`,
//! `deis`) are one generic [`Stepper`]: it holds the shared parameters and
//! implements [`Sampler`] once (spec, label, validation, registry entry); a
//! [`Rule`] adds its own keys and its loop over the grid.
//!
//! The spec a stepper writes is `name:steps=N,<rule keys>,schedule=…,noise=…`
//! (keys at their default left out), the order [`Stepper`]'s parser reads.

use ndarray::Array2;

use super::params::SpecWriter;
use super::{Ctx, Entry, Nfe, Noise, Params, Sampler, Schedule};
use crate::error::Result;
use crate::sde::Sde;

/// What names a rule and its defaults.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    /// Spec name that [`super::by_name`] parses.
    pub spec: &'static str,
    /// Base of the display label.
    pub label: &'static str,
    pub default_schedule: &'static Schedule,
    /// Whether the rule draws noise (takes `noise=`).
    pub noisy: bool,
}

/// The update rule of a [`Stepper`]: its own keys and its loop.
pub trait Rule: Clone + std::fmt::Debug + Send + Sync + 'static {
    const INFO: Info;

    /// Read the rule's own keys (before `schedule` and `noise`).
    fn parse(p: &mut Params) -> Result<Self>;

    /// Write them back, as [`Rule::parse`] reads them.
    fn spec(&self, w: SpecWriter) -> SpecWriter {
        w
    }

    /// Display label, by default `label(N)` with the schedule when it is not
    /// the default one, e.g. `euler_maruyama(10, karras)`.
    fn label(&self, steps: usize, schedule: &Schedule) -> String {
        let info = Self::INFO;
        let suffix = schedule.label_suffix(info.default_schedule);
        format!("{}({steps}{suffix})", info.label)
    }

    /// Reject values of the rule's own keys it cannot use.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Advance `x` over the `steps` steps of `schedule`, as [`Sampler::run`].
    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>, grid: (&Schedule, usize)) -> Result<()>;
}

/// N steps over `schedule` with the noise source `noise` (used by noisy
/// rules only) and the rule's own parameters. One model evaluation a step.
#[derive(Clone, Debug)]
pub struct Stepper<R> {
    pub steps: usize,
    pub schedule: Schedule,
    pub noise: Noise,
    pub rule: R,
}

impl<R: Rule> Stepper<R> {
    /// N steps over the rule's default schedule, per-step noise streams.
    pub fn with_rule(steps: usize, rule: R) -> Self {
        Stepper {
            steps,
            schedule: R::INFO.default_schedule.clone(),
            noise: Noise::Steps,
            rule,
        }
    }
}

impl<R: Rule + Default> Stepper<R> {
    /// N steps over the rule's default schedule with its default parameters.
    pub fn new(steps: usize) -> Self {
        Stepper::with_rule(steps, R::default())
    }
}

/// The registry entry of rule `R`.
pub(super) const fn entry<R: Rule>(aliases: &'static [&'static str], help: &'static str) -> Entry {
    Entry {
        name: R::INFO.spec,
        aliases,
        help,
        build: build::<R>,
    }
}

fn build<R: Rule>(p: &mut Params, steps: usize) -> Result<Box<dyn Sampler>> {
    let rule = R::parse(p)?;
    let schedule = p.schedule(R::INFO.default_schedule.clone())?;
    let noise = if R::INFO.noisy {
        p.noise()?
    } else {
        Noise::Steps
    };
    Ok(Box::new(Stepper {
        steps,
        schedule,
        noise,
        rule,
    }))
}

impl<R: Rule> Sampler for Stepper<R> {
    fn name(&self) -> String {
        let info = R::INFO;
        let w = self.rule.spec(SpecWriter::new(info.spec, self.steps));
        let w = w.schedule(&self.schedule, info.default_schedule);
        match info.noisy {
            true => w.noise(self.noise),
            false => w,
        }
        .done()
    }

    fn label(&self) -> String {
        self.rule.label(self.steps, &self.schedule)
    }

    fn cost(&self) -> Nfe {
        Nfe::ONE
    }

    fn noise(&self) -> Noise {
        match R::INFO.noisy {
            true => self.noise,
            false => Noise::Steps,
        }
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        self.rule.check()?;
        self.schedule.grid(sde, self.steps).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()> {
        self.rule.run(ctx, x, (&self.schedule, self.steps))
    }
}
