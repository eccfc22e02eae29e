//! The k-diffusion-style stochastic samplers (`euler-ancestral`, `dpm2`,
//! `dpm2-ancestral`, `dpmpp-sde`, `dpmpp-2s-ancestral`, `dpmpp-2m-sde`,
//! `dpmpp-3m(-sde)`) share one set of parameters — N steps over a schedule,
//! the noise level eta, the noise scale s_noise and the noise source — and
//! differ only in their update rule. They are one generic [`Ancestral`]:
//! [`AncestralParams`] holds the shared parameters, [`Ancestral`]
//! implements [`Sampler`] once (spec, label, validation, the loop over the
//! grid in the data-scaled variables), and a [`Rule`] names its family
//! member ([`Family`]: spec name, label, NFE, the largest eta it accepts)
//! and moves x̃ over one step with the helpers of [`Step`] (the denoised
//! estimate D(x̃; σ̃), the σ̃_down / σ̃_up split, the step noise),
//! [`data_step`] (x̃ ← c_x x̃ + c_d D) and [`Denoised`] (the history of a
//! multistep rule).

use ndarray::{Array2, Ix2, Zip};

use super::params::SpecWriter;
use super::scaled::{
    add_noise, ancestral_split, check_eta, run_scaled, time_of_sigma, to_d, Levels,
};
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

/// The update rule of an [`Ancestral`] sampler: which family member it is
/// and one step over the grid.
pub trait Rule: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// What the rule keeps from step to step (buffers, history).
    type State;

    /// The family member whose spec and label the parameters `p` make of
    /// this rule.
    fn family(&self, p: &AncestralParams) -> &'static Family;

    /// A fresh state for a chunk whose x̃ has shape `dim`.
    fn state(&self, dim: Ix2) -> Self::State;

    /// Move x̃ from level `s.i` to level `s.i + 1` in place.
    fn step(&self, s: &mut Step, state: &mut Self::State, x: &mut Array2<f64>);
}

/// A member of the family: the shared parameters and the update rule.
#[derive(Clone, Debug)]
pub struct Ancestral<R> {
    pub params: AncestralParams,
    pub rule: R,
}

impl<R: Rule> Ancestral<R> {
    /// `rule` with N steps over `family`'s default schedule, eta = 1,
    /// s_noise = 1, per-step noise streams.
    pub fn on(family: &Family, steps: usize, rule: R) -> Self {
        Ancestral {
            params: AncestralParams::new(steps, family.default_schedule.clone()),
            rule,
        }
    }

    fn family(&self) -> &'static Family {
        self.rule.family(&self.params)
    }
}

/// The registry's builder: `base` with the parameters of a `family` spec.
pub(super) fn build<R: Rule>(
    p: &mut Params,
    family: &Family,
    base: Ancestral<R>,
) -> Result<Box<dyn Sampler>> {
    let params = AncestralParams::parse(p, family, base.params)?;
    Ok(Box::new(Ancestral {
        params,
        rule: base.rule,
    }))
}

impl<R: Rule> Sampler for Ancestral<R> {
    fn name(&self) -> String {
        self.params.spec(self.family())
    }

    fn label(&self) -> String {
        self.params.label(self.family())
    }

    fn cost(&self) -> Nfe {
        self.family().cost
    }

    fn noise(&self) -> Noise {
        self.params.noise
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        self.params.validate(sde, self.family().eta_max)
    }

    /// The rule's steps over the levels of the schedule, in x̃ (see
    /// [`run_scaled`]).
    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) -> Result<()> {
        let lv = self.params.levels(ctx.sde)?;
        let mut state = self.rule.state(x32.raw_dim());
        let mut z = Array2::<f32>::zeros(x32.raw_dim());
        run_scaled(ctx, x32, &lv, |ctx, i, x| {
            let mut s = Step {
                ctx,
                lv: &lv,
                i,
                p: &self.params,
                z: &mut z,
            };
            self.rule.step(&mut s, &mut state, x);
        })
    }
}

/// Step i of a run, from σ̃_i (time t_i) to σ̃_{i+1} (time t_{i+1}): the
/// grid, the parameters, and the denoiser and noise the step uses.
pub struct Step<'s, 'c> {
    pub(super) ctx: &'s mut Ctx<'c>,
    lv: &'s Levels,
    /// The step's index, 0-based.
    pub i: usize,
    pub p: &'s AncestralParams,
    z: &'s mut Array2<f32>,
}

impl Step<'_, '_> {
    /// σ̃_i.
    pub fn sigma(&self) -> f64 {
        self.lv.sigma[self.i]
    }

    /// σ̃_{i+1}.
    pub fn sigma_next(&self) -> f64 {
        self.lv.sigma[self.i + 1]
    }

    /// t_i and t_{i+1}.
    pub fn times(&self) -> (f64, f64) {
        (self.lv.t[self.i], self.lv.t[self.i + 1])
    }

    /// h = lambda_{i+1} − lambda_i = ln(σ̃_i / σ̃_{i+1}).
    pub fn h(&self) -> f64 {
        self.lv.lambda[self.i + 1] - self.lv.lambda[self.i]
    }

    /// Number of steps N.
    pub fn steps(&self) -> usize {
        self.lv.steps()
    }

    /// The SDE time of a noise level σ̃ (see [`time_of_sigma`]).
    pub fn time_of(&self, sigma: f64) -> f64 {
        time_of_sigma(self.ctx.sde, sigma)
    }

    /// D(x̃; σ̃_i) into `out`. One NFE.
    pub fn denoise(&mut self, x: &Array2<f64>, out: &mut Array2<f64>) {
        self.ctx.denoise_scaled(x, self.lv.t[self.i], out);
    }

    /// D(x̃; σ̃) at the noise level σ̃ (evaluated at its SDE time) into
    /// `out`. One NFE.
    pub fn denoise_at(&mut self, x: &Array2<f64>, sigma: f64, out: &mut Array2<f64>) {
        let t = self.time_of(sigma);
        self.ctx.denoise_scaled(x, t, out);
    }

    /// ε̂ = (x̃ − D(x̃; σ̃_i))/σ̃_i into `d`, with D in `den`. One NFE.
    pub fn eps(&mut self, x: &Array2<f64>, den: &mut Array2<f64>, d: &mut Array2<f64>) {
        self.denoise(x, den);
        to_d(x, den, self.sigma(), d);
    }

    /// ε̂ = (x̃ − D(x̃; σ̃))/σ̃ at the noise level σ̃ into `d`, with D in
    /// `den`. One NFE.
    pub fn eps_at(
        &mut self,
        x: &Array2<f64>,
        sigma: f64,
        den: &mut Array2<f64>,
        d: &mut Array2<f64>,
    ) {
        self.denoise_at(x, sigma, den);
        to_d(x, den, sigma, d);
    }

    /// The ancestral split (σ̃_down, σ̃_up) of the step from σ̃_i to σ̃_to
    /// at the parameters' eta (see [`ancestral_split`]).
    pub fn split(&self, sigma_to: f64) -> (f64, f64) {
        ancestral_split(self.sigma(), sigma_to, self.p.eta)
    }

    /// The std s_noise σ̃_{i+1} sqrt(1 − e^{−2 eta h}) of the noise an exact
    /// step of the reverse SDE in lambda adds over h.
    pub fn sde_noise_std(&self, h: f64) -> f64 {
        self.p.s_noise * self.sigma_next() * (-(-2.0 * self.p.eta * h).exp_m1()).sqrt()
    }

    /// x̃ += c z with z the noise of the step t_i → t_{i+1}; draws nothing
    /// when c = 0.
    pub fn add_noise(&mut self, x: &mut Array2<f64>, c: f64) {
        let times = self.times();
        add_noise(self.ctx, x, self.z, times, c);
    }
}

/// `K` zero buffers of shape `dim` (a rule's state).
pub fn zeros<const K: usize>(dim: Ix2) -> [Array2<f64>; K] {
    std::array::from_fn(|_| Array2::zeros(dim))
}

/// x̃ ← c_x x̃ + c_d D: the exact step of the probability-flow ODE in lambda
/// with D frozen (and its multistep relatives' leading terms).
pub fn data_step(x: &mut Array2<f64>, (c_x, c_d): (f64, f64), d: &Array2<f64>) {
    Zip::from(x)
        .and(d)
        .for_each(|xv, &dv| *xv = c_x * *xv + c_d * dv);
}

/// out ← c_x x̃ + c_d D, as [`data_step`] into another buffer.
pub fn data_step_into(
    out: &mut Array2<f64>,
    x: &Array2<f64>,
    (c_x, c_d): (f64, f64),
    d: &Array2<f64>,
) {
    Zip::from(out)
        .and(x)
        .and(d)
        .for_each(|o, &xv, &dv| *o = c_x * xv + c_d * dv);
}

/// The history of a multistep rule: the denoised estimates D_i, D_{i−1},
/// …, D_{i−k} (newest first) and the step sizes h_{i−1}, …, h_{i−k} of the
/// k previous steps; the buffers are recycled.
pub struct Denoised {
    d: Vec<Array2<f64>>,
    h: Vec<f64>,
}

impl Denoised {
    /// Room for D_i and `k` ≥ 1 previous estimates of shape `dim`.
    pub fn new(k: usize, dim: Ix2) -> Self {
        Denoised {
            d: (0..=k).map(|_| Array2::zeros(dim)).collect(),
            h: vec![0.0; k],
        }
    }

    /// D_i (to be filled by the step) and D_{i−1}, …, D_{i−k}.
    pub fn split(&mut self) -> (&mut Array2<f64>, &[Array2<f64>]) {
        let (newest, prev) = self.d.split_first_mut().expect("D_i has a buffer");
        (newest, prev)
    }

    /// h_{i−j}, 1 ≤ j ≤ k.
    pub fn h(&self, j: usize) -> f64 {
        self.h[j - 1]
    }

    /// After step i of size h: D_i becomes D_{i−1}, h becomes h_{i−1}, and
    /// the oldest buffer is the next D_i.
    pub fn push(&mut self, h: f64) {
        self.d.rotate_right(1);
        self.h.rotate_right(1);
        self.h[0] = h;
    }
}
