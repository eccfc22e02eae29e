//! Samplers: from prior noise at t = T to data at t = ε.
//!
//! Every sampler implements [`Sampler`]: a short function over the time grid
//! of its [`Schedule`] that advances one chunk of samples, asking a [`Ctx`]
//! for scores and denoised estimates (which counts model evaluations), for
//! per-sample noise, and to record the trajectory. The driver [`sample`]
//! splits the requested samples into chunks, runs chunks in parallel with
//! rayon, and gives sample i its own random stream `rng::stream(seed,
//! SAMPLER, i)` (its prior draw, then every step's noise) or its own Brownian
//! motion ([`Noise::Brownian`]), so the output is the same for any batch size
//! or thread count.
//!
//! Each algorithm file registers its spec names in a `REGISTRY` table
//! ([`Entry`]); [`by_name`], [`SAMPLER_NAMES`], [`help`] and `compare`'s
//! default list are all generated from those tables.

mod ancestral;
mod brownian;
mod ctx;
mod multistep;
mod params;
mod phi;
mod quadrature;
mod scaled;
pub mod schedule;
mod stepper;
mod steps;

mod ald;
mod ddim;
mod ddpm;
mod dpm_solver;
mod dpmpp_2m_sde;
mod dpmpp_2s_ancestral;
mod dpmpp_3m;
mod dpmpp_sde;
mod edm;
mod euler_maruyama;
mod ode;
mod pc;
mod restart;
mod reverse_diffusion;
mod rk45;
mod unipc;

mod deis;
mod dpm2;
mod euler_ancestral;
mod ipndm;
mod lms;

pub use ald::AnnealedLangevin;
pub use ancestral::AncestralParams;
pub use ctx::Ctx;
pub use ddim::Ddim;
pub use ddpm::{Ddpm, DdpmSchedule};
pub use dpm_solver::DpmSolverPP;
pub use dpmpp_2m_sde::{DpmPP2MSde, TwoMSolver};
pub use dpmpp_2s_ancestral::DpmPP2SAncestral;
pub use dpmpp_3m::DpmPP3M;
pub use dpmpp_sde::DpmPPSde;
pub use edm::Edm;
pub use euler_maruyama::EulerMaruyama;
pub use ode::{OdeMethod, ProbabilityFlowOde};
pub use params::Params;
pub use pc::{CorrectorStep, Predictor, PredictorCorrector};
pub use restart::Restart;
pub use reverse_diffusion::ReverseDiffusion;
pub use rk45::Rk45;
pub use schedule::{Grid, Schedule};
pub use unipc::{UniPc, Variant as UniPcVariant};

pub use deis::Deis;
pub use dpm2::Dpm2;
pub use euler_ancestral::EulerAncestral;
pub use ipndm::Ipndm;
pub use lms::Lms;

use std::sync::LazyLock;

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::score::Score;
use crate::sde::Sde;
use ctx::{BadValues, Recorder};

/// A sampling algorithm over a fixed schedule.
pub trait Sampler: Send + Sync {
    /// The spec that [`by_name`] parses back into this sampler, e.g.
    /// `edm:steps=10,churn=40` (parameters at their default are left out).
    fn name(&self) -> String;
    /// Short display name for tables and figures, e.g. `ddpm(1000)`.
    fn label(&self) -> String;
    /// Model evaluations per sample, as a function of the step count.
    fn cost(&self) -> Nfe;
    /// Where the per-step noise comes from (deterministic samplers: unused).
    fn noise(&self) -> Noise {
        Noise::Steps
    }
    /// Reject parameters or SDEs the sampler cannot use, before any work.
    fn validate(&self, sde: &dyn Sde) -> Result<()>;
    /// Advance `x` (prior draws, one row per sample) to samples at t = ε.
    /// Calls `ctx.record` after each step so the trajectory can be kept.
    /// Called only after [`Sampler::validate`] accepted `ctx.sde`.
    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()>;
}

/// What a sampler costs in model evaluations per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nfe {
    /// `per_step · steps + offset` (e.g. Heun-type EDM: 2N − 1).
    Fixed { per_step: usize, offset: isize },
    /// Depends on the tolerance and the score (adaptive step size).
    Adaptive,
}

impl Nfe {
    /// One evaluation per step.
    pub const ONE: Nfe = Nfe::Fixed {
        per_step: 1,
        offset: 0,
    };

    /// Two evaluations per step.
    pub const TWO: Nfe = Nfe::Fixed {
        per_step: 2,
        offset: 0,
    };

    /// NFE at `steps` steps (None: adaptive).
    pub fn at(&self, steps: usize) -> Option<usize> {
        match *self {
            Nfe::Fixed { per_step, offset } => {
                Some((per_step * steps).saturating_add_signed(offset))
            }
            Nfe::Adaptive => None,
        }
    }
}

/// Where a stochastic sampler's per-step noise comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Noise {
    /// The next draws of each sample's stream (`noise=steps`, the default).
    #[default]
    Steps,
    /// Increments of each sample's own Brownian motion (`noise=brownian`):
    /// the same seed at 50 and at 500 steps follows nearly the same path.
    Brownian,
}

/// One spec name in a sampler file's registry.
pub struct Entry {
    /// Canonical spec name.
    pub name: &'static str,
    /// Other accepted spellings.
    pub aliases: &'static [&'static str],
    /// One line: what it does, its NFE and its parameters with defaults.
    pub help: &'static str,
    /// Build from the remaining parameters and the step count.
    pub build: fn(&mut Params, usize) -> Result<Box<dyn Sampler>>,
}

/// Every sampler file's registry, in the order of [`SAMPLER_NAMES`].
const REGISTRIES: &[&[Entry]] = &[
    ddpm::REGISTRY,
    euler_maruyama::REGISTRY,
    reverse_diffusion::REGISTRY,
    pc::REGISTRY,
    ald::REGISTRY,
    ddim::REGISTRY,
    edm::REGISTRY,
    ode::REGISTRY,
    rk45::REGISTRY,
    dpm_solver::REGISTRY,
    euler_ancestral::REGISTRY,
    dpm2::REGISTRY,
    lms::REGISTRY,
    ipndm::REGISTRY,
    deis::REGISTRY,
    dpmpp_3m::REGISTRY,
    dpmpp_2m_sde::REGISTRY,
    dpmpp_sde::REGISTRY,
    dpmpp_2s_ancestral::REGISTRY,
    unipc::REGISTRY,
    restart::REGISTRY,
];

/// Every registered entry.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    REGISTRIES.iter().flat_map(|r| r.iter())
}

/// Names accepted by [`by_name`] (each may take `:key=value,...` parameters).
pub static SAMPLER_NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| entries().map(|e| e.name).collect());

/// The `--sampler` help: one line per registered sampler, then the shared
/// keys and the schedules.
pub fn help() -> String {
    let mut s = String::from("Sampler spec NAME[:key=value,...]. Samplers:\n");
    for e in entries() {
        s.push_str(&format!("  {:<18} {}\n", e.name, e.help));
    }
    s.push_str("Every fixed-step sampler takes steps=N and schedule=S; stochastic ones noise=steps|brownian.\nSchedules: ");
    let names: Vec<String> = schedule::SCHEDULES
        .iter()
        .map(|(n, d)| format!("{n} ({d})"))
        .collect();
    s.push_str(&names.join(", "));
    s.push_str(", a comma list of times, or a .json file.");
    s
}

/// Split a comma-separated list of sampler specs: a token whose name (the
/// part before `:`) is a registered sampler starts a new spec, any other
/// token continues the one before it, so `em,edm:churn=10,s_noise=1.003,ddim`
/// is three specs.
pub fn split_specs(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tok in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let name = tok.split(':').next().unwrap_or("").trim();
        let is_name = entries().any(|e| e.name == name || e.aliases.contains(&name));
        match out.last_mut() {
            Some(prev) if !is_name => {
                prev.push(',');
                prev.push_str(tok);
            }
            _ => out.push(tok.to_string()),
        }
    }
    out
}

/// Build a sampler from a spec `name` or `name:key=value,key=value` and a
/// step count (overridden by a `steps=` key), e.g. `ddpm`, `em`,
/// `dpm-solver++:schedule=karras`. Unknown names list the valid ones;
/// unknown or malformed parameters are errors.
pub fn by_name(spec: &str, steps: usize) -> Result<Box<dyn Sampler>> {
    let mut p = Params::parse(spec)?;
    let steps = p.usize("steps", steps)?;
    crate::sde::check_steps(steps)?;
    let entry = entries()
        .find(|e| e.name == p.name || e.aliases.contains(&p.name.as_str()))
        .ok_or_else(|| {
            Error::invalid(
                "sampler",
                &p.name,
                format!("one of: {}", SAMPLER_NAMES.join(", ")),
            )
        })?;
    let sampler = (entry.build)(&mut p, steps)?;
    p.finish(entry.help)?;
    Ok(sampler)
}

/// How many samples to draw and how.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Number of samples.
    pub n: usize,
    /// Seed of the per-sample streams.
    pub seed: u64,
    /// Rows per chunk (work unit of one thread). Does not change the output.
    pub batch: usize,
    /// Keep the state every this many steps (None: no trajectory).
    pub record_every: Option<usize>,
    /// Keep the trajectory of only the first this many samples.
    pub record_rows: usize,
    /// Called with the number of samples of every finished chunk.
    pub progress: Option<crate::progress::Progress>,
}

impl SampleOptions {
    /// `n` samples with `seed`, default batch 500, no trajectory.
    pub fn new(n: usize, seed: u64) -> Self {
        SampleOptions {
            n,
            seed,
            batch: 500,
            record_every: None,
            record_rows: 0,
            progress: None,
        }
    }
}

/// A trajectory: the states of the first rows at the recorded times (the
/// prior draw at t = T first).
#[derive(Clone, Debug, Default)]
pub struct Trajectory {
    pub times: Vec<f64>,
    pub frames: Vec<Array2<f32>>,
}

/// Samples, the model evaluations per sample, and optionally the trajectory.
#[derive(Clone, Debug)]
pub struct SampleOutput {
    pub samples: Array2<f32>,
    pub nfe: usize,
    pub trajectory: Option<Trajectory>,
}

/// Draw `opts.n` samples with `sampler`. Output is a function of
/// (sampler, sde, score, n, seed) only.
pub fn sample(
    sampler: &dyn Sampler,
    sde: &dyn Sde,
    score: &dyn Score,
    opts: &SampleOptions,
) -> Result<SampleOutput> {
    if opts.n == 0 {
        return Err(Error::invalid("samples", opts.n, "an integer >= 1"));
    }
    if opts.batch == 0 {
        return Err(Error::invalid("batch", opts.batch, "an integer >= 1"));
    }
    if opts.record_every == Some(0) {
        return Err(Error::invalid("record-every", 0, "an integer >= 1"));
    }
    sampler.validate(sde)?;
    let d = score.dim();
    let n_chunks = opts.n.div_ceil(opts.batch);
    let prior_std = sde.prior_std() as f32;

    // Each chunk writes its finished rows straight into the preallocated
    // output, so memory is the output plus one chunk's buffers per thread
    // (flat in the number of samples beyond the output itself).
    let mut samples = Array2::<f32>::zeros((opts.n, d));
    let out = samples
        .as_slice_mut()
        .expect("a fresh Array2 is contiguous");
    let noise = sampler.noise();
    let results: Vec<(usize, usize, Recorder, BadValues)> = out
        .par_chunks_mut(opts.batch.saturating_mul(d).max(1))
        .enumerate()
        .map(|(c, dst)| -> Result<(usize, usize, Recorder, BadValues)> {
            let start = c * opts.batch;
            let rows = dst.len() / d.max(1);
            let rec = Recorder {
                every: opts.record_every,
                rows: opts.record_rows.saturating_sub(start).min(rows),
                times: Vec::new(),
                frames: Vec::new(),
            };
            let mut ctx = Ctx::new(sde, score, opts.seed, start, rows, noise, rec);
            let mut x = Array2::<f32>::zeros((rows, d));
            ctx.normal(&mut x);
            x.mapv_inplace(|v| v * prior_std);
            ctx.record(0, 1, sde.t_max(), x.view());
            sampler.run(&mut ctx, &mut x)?;
            for (o, &v) in dst.iter_mut().zip(x.iter()) {
                *o = v;
            }
            if let Some(p) = &opts.progress {
                p.advance(rows as u64);
            }
            let nfe = ctx.nfe();
            Ok((rows, nfe, ctx.rec, ctx.bad))
        })
        .collect::<Result<Vec<_>>>()?;
    debug_assert_eq!(results.len(), n_chunks);
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        let row = i / d.max(1);
        let bad = results[row / opts.batch].3;
        let at = match bad {
            BadValues {
                state: Some((step, n, t)),
                ..
            } => format!("the state first became non-finite at step {step} of {n} (t = {t:.6})"),
            BadValues {
                score: Some((k, t)),
                ..
            } => format!(
                "the score first returned a non-finite value at model evaluation {k} (t = {t:.6})"
            ),
            _ => "in the last step".to_string(),
        };
        return Err(Error::NonFiniteSample(format!(
            "sample {row} holds {} after {}; {at}",
            samples.iter().nth(i).copied().unwrap_or(f32::NAN),
            sampler.label()
        )));
    }

    let nfe_total: usize = results.iter().map(|(rows, nfe, _, _)| nfe * rows).sum();
    let trajectory = opts.record_every.map(|_| merge_trajectories(&results));
    Ok(SampleOutput {
        samples,
        nfe: nfe_total.div_ceil(opts.n),
        trajectory,
    })
}

/// Stack the recorded rows of every chunk, frame by frame. Chunks that
/// recorded nothing are skipped; frame times come from the first chunk.
fn merge_trajectories<B>(results: &[(usize, usize, Recorder, B)]) -> Trajectory {
    let recs: Vec<&Recorder> = results
        .iter()
        .map(|r| &r.2)
        .filter(|r| !r.frames.is_empty())
        .collect();
    let Some(first) = recs.first() else {
        return Trajectory::default();
    };
    let n_frames = recs.iter().map(|r| r.frames.len()).min().unwrap_or(0);
    let frames = (0..n_frames)
        .map(|k| {
            let views: Vec<ArrayView2<f32>> = recs.iter().map(|r| r.frames[k].view()).collect();
            ndarray::concatenate(Axis(0), &views).unwrap_or_else(|_| first.frames[k].clone())
        })
        .collect();
    Trajectory {
        times: first.times[..n_frames].to_vec(),
        frames,
    }
}
