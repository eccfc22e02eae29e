//! The k-diffusion-style stochastic samplers (`euler-ancestral`, `dpm2`,
//! `dpm2-ancestral`, `dpmpp-sde`, `dpmpp-2s-ancestral`, `dpmpp-2m-sde`,
//! `dpmpp-3m(-sde)`) share one set of parameters — N steps over a schedule,
//! the noise level eta, the noise scale s_noise and the noise source — and
//! differ only in their update rule. [`AncestralParams`] holds the shared
//! parameters; a sampler of the family describes itself by a [`Family`]
//! (spec name, label, NFE, the largest eta it accepts) and implements
//! [`Ancestral`] with its own `run`, and gets [`Sampler`] from that.

use ndarray::Array2;

use super::params::SpecWriter;
use super::scaled::{check_eta, Levels};
use super::{Ctx, Nfe, Noise, Params, Sampler, Schedule};
use crate::error::Result;
use crate::sde::Sde;

/// N steps over `schedule`; the step noise has std s_noise σ_up with σ_up set
/// by eta (eta = 0: deterministic, eta = 1: the reverse SDE).
#[derive(Clone, Debug)]
pub struct AncestralParams {
    pub steps: usize,
    pub schedule: Schedule,
    pub eta: f64,
    pub s_noise: f64,
    pub noise: Noise,
}

/// Which spec keys a family member takes, in the order its spec lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// `schedule` only (the deterministic members: eta, s_noise, noise fixed).
    Schedule,
    /// `eta`, `s_noise`, `schedule`, `noise`.
    EtaFirst,
    /// `schedule`, `eta`, `s_noise`, `noise`.
    ScheduleFirst,
}

/// How the display label shows the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// `label(N)`.
    Steps,
    /// `label(N, eta=…)`.
    Eta,
    /// `label(N)` at eta = s_noise = 1, else `label(N, eta=…, s_noise=…)`.
    EtaSNoise,
}

/// What tells one member of the family from another, apart from its update
/// rule.
#[derive(Debug)]
pub struct Family {
    /// Spec name that [`super::by_name`] parses.
    pub spec: &'static str,
    /// Base of the display label.
    pub label: &'static str,
    pub label_style: Label,
    pub keys: Keys,
    pub default_schedule: Schedule,
    pub cost: Nfe,
    /// Largest accepted eta (`f64::INFINITY`: no bound).
    pub eta_max: f64,
}

impl AncestralParams {
    /// N steps over `schedule`, eta = 1, s_noise = 1, per-step noise streams.
    pub fn new(steps: usize, schedule: Schedule) -> Self {
        AncestralParams {
            steps,
            schedule,
            eta: 1.0,
            s_noise: 1.0,
            noise: Noise::Steps,
        }
    }

    /// The parameters of a `family` spec, in the order of its [`Keys`];
    /// the ones it does not take keep the values of `base`.
    pub(crate) fn parse(p: &mut Params, family: &Family, base: Self) -> Result<Self> {
        let schedule = |p: &mut Params| p.schedule(family.default_schedule.clone());
        Ok(match family.keys {
            Keys::Schedule => AncestralParams {
                schedule: schedule(p)?,
                ..base
            },
            Keys::EtaFirst => AncestralParams {
                eta: p.f64("eta", 1.0)?,
                s_noise: p.f64("s_noise", 1.0)?,
                schedule: schedule(p)?,
                noise: p.noise()?,
                steps: base.steps,
            },
            Keys::ScheduleFirst => AncestralParams {
                schedule: schedule(p)?,
                eta: p.f64("eta", 1.0)?,
                s_noise: p.f64("s_noise", 1.0)?,
                noise: p.noise()?,
                steps: base.steps,
            },
        })
    }

    /// The spec [`AncestralParams::parse`] reads back (defaults left out).
    pub(crate) fn spec(&self, family: &Family) -> String {
        let w = SpecWriter::new(family.spec, self.steps);
        let sched = |w: SpecWriter| w.schedule(&self.schedule, &family.default_schedule);
        let noise = |w: SpecWriter| {
            w.f64("eta", self.eta, 1.0)
                .f64("s_noise", self.s_noise, 1.0)
        };
        match family.keys {
            Keys::Schedule => sched(w),
            Keys::EtaFirst => sched(noise(w)).noise(self.noise),
            Keys::ScheduleFirst => noise(sched(w)).noise(self.noise),
        }
        .done()
    }

    pub(crate) fn label(&self, family: &Family) -> String {
        let (base, n) = (family.label, self.steps);
        match family.label_style {
            Label::Steps => format!("{base}({n})"),
            Label::Eta => format!("{base}({n}, eta={})", self.eta),
            Label::EtaSNoise if self.eta == 1.0 && self.s_noise == 1.0 => format!("{base}({n})"),
            Label::EtaSNoise => format!("{base}({n}, eta={}, s_noise={})", self.eta, self.s_noise),
        }
    }

    /// eta in [0, `eta_max`], s_noise ≥ 0, and a schedule that gives N steps
    /// on `sde`.
    pub(crate) fn validate(&self, sde: &dyn Sde, eta_max: f64) -> Result<()> {
        check_eta(self.eta, eta_max, self.s_noise)?;
        self.schedule.grid(sde, self.steps).map(|_| ())
    }

    /// The grid's times, σ̃ and lambda = −ln σ̃ on `sde`.
    pub(crate) fn levels(&self, sde: &dyn Sde) -> Result<Levels> {
        Ok(Levels::new(&self.schedule.grid(sde, self.steps)?))
    }
}

/// A member of the family: its [`Family`], its parameters and its update
/// rule.
pub trait Ancestral: Send + Sync {
    fn family(&self) -> &'static Family;
    fn params(&self) -> &AncestralParams;
    /// As [`Sampler::run`].
    fn solve(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()>;
}

impl<T: Ancestral> Sampler for T {
    fn name(&self) -> String {
        self.params().spec(self.family())
    }

    fn label(&self) -> String {
        self.params().label(self.family())
    }

    fn cost(&self) -> Nfe {
        self.family().cost
    }

    fn noise(&self) -> Noise {
        self.params().noise
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        self.params().validate(sde, self.family().eta_max)
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()> {
        self.solve(ctx, x)
    }
}
