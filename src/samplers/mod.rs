//! Samplers: from prior noise at t = T to data at t = ε.
//!
//! Every sampler implements [`Sampler`]: a short function over its schedule
//! that advances one chunk of samples, asking a [`Ctx`] for scores (which
//! counts model evaluations), for per-sample Gaussian noise, and to record the
//! trajectory. The driver [`sample`] splits the requested samples into chunks,
//! runs chunks in parallel with rayon, and gives sample i its own random
//! stream `rng::stream(seed, SAMPLER, i)` (its prior draw, then every step's
//! noise), so the output is the same for any batch size or thread count.

mod ddim;
mod ddpm;
mod dpm_solver;
mod edm;
mod euler_maruyama;
mod langevin;
mod ode;
mod reverse_diffusion;
mod rk45;

pub use ddim::Ddim;
pub use ddpm::{Ddpm, DdpmSchedule};
pub use dpm_solver::DpmSolverPP;
pub use edm::Edm;
pub use euler_maruyama::EulerMaruyama;
pub use langevin::{AnnealedLangevin, CorrectorStep, Predictor, PredictorCorrector};
pub use ode::{OdeMethod, ProbabilityFlowOde};
pub use reverse_diffusion::ReverseDiffusion;
pub use rk45::{dopri5, Dopri5Options, Dopri5Stats, Dopri5Status, Rk45};

use indicatif::ProgressBar;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::{self, StreamRng};
use crate::score::Score;
use crate::sde::Sde;

/// A sampling algorithm over a fixed schedule.
pub trait Sampler: Send + Sync {
    /// Name with its main parameters, e.g. `ddpm(1000)`.
    fn name(&self) -> String;
    /// Reject parameters or SDEs the sampler cannot use, before any work.
    fn validate(&self, sde: &dyn Sde) -> Result<()>;
    /// Advance `x` (prior draws, one row per sample) to samples at t = ε.
    /// Calls `ctx.record` after each step so the trajectory can be kept.
    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>);
}

/// What a sampler sees while it runs one chunk of samples.
pub struct Ctx<'a> {
    pub sde: &'a dyn Sde,
    score: &'a dyn Score,
    rngs: Vec<StreamRng>,
    nfe: usize,
    rec: Recorder,
    /// First non-finite state offered to `record` (step, steps, t) and
    /// first non-finite score output (evaluation, t), for the error of
    /// [`sample`] when the samples end non-finite.
    bad_state: Option<(usize, usize, f64)>,
    bad_score: Option<(usize, f64)>,
}

impl<'a> Ctx<'a> {
    /// s(x, t) into `out`; counts one model evaluation per sample.
    pub fn score(&mut self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.nfe += 1;
        self.score.score(x, t, out.view_mut());
        if self.bad_score.is_none() && out.iter().any(|v| !v.is_finite()) {
            self.bad_score = Some((self.nfe, t));
        }
    }

    /// Fill `z` with N(0, 1) noise, row i from sample i's own stream.
    pub fn normal(&mut self, z: &mut Array2<f32>) {
        for (mut row, rng) in z.outer_iter_mut().zip(self.rngs.iter_mut()) {
            if let Some(sl) = row.as_slice_mut() {
                rng::fill_normal(rng, sl);
            } else {
                let mut buf = row.to_vec();
                rng::fill_normal(rng, &mut buf);
                row.assign(&ndarray::ArrayView1::from(&buf));
            }
        }
    }

    /// Record the state after step `step` of `n_steps` (1-based) at time `t`.
    /// Kept every `record_every` steps and always at the last step.
    pub fn record(&mut self, step: usize, n_steps: usize, t: f64, x: ArrayView2<f32>) {
        if self.bad_state.is_none() && x.iter().any(|v| !v.is_finite()) {
            self.bad_state = Some((step, n_steps, t));
        }
        self.rec.offer(step, n_steps, t, x);
    }

    /// Model evaluations per sample used so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }
}

/// The update every first-order sampler step shares:
///
/// ```text
///   x ← c_x x + c_s s + c_z z,   z ~ N(0, I) from each sample's stream
/// ```
///
/// With `c_z = None` (the last step) no noise is drawn at all.
pub(crate) fn affine_update(
    ctx: &mut Ctx,
    x: &mut Array2<f32>,
    score: &Array2<f32>,
    z: &mut Array2<f32>,
    c_x: f32,
    c_s: f32,
    c_z: Option<f32>,
) {
    match c_z {
        None => ndarray::Zip::from(&mut *x)
            .and(score)
            .for_each(|xv, &s| *xv = c_x * *xv + c_s * s),
        Some(c_z) => {
            ctx.normal(z);
            ndarray::Zip::from(&mut *x)
                .and(score)
                .and(&*z)
                .for_each(|xv, &s, &zv| *xv = c_x * *xv + c_s * s + c_z * zv);
        }
    }
}

/// Keeps every k-th state of the first `rows` rows of a chunk.
struct Recorder {
    every: Option<usize>,
    rows: usize,
    times: Vec<f64>,
    frames: Vec<Array2<f32>>,
}

impl Recorder {
    fn offer(&mut self, step: usize, n_steps: usize, t: f64, x: ArrayView2<f32>) {
        let Some(every) = self.every else { return };
        if self.rows == 0 || !(step.is_multiple_of(every) || step == n_steps) {
            return;
        }
        self.times.push(t);
        self.frames.push(x.slice(s![..self.rows, ..]).to_owned());
    }
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
    /// Progress bar advanced by the number of finished samples.
    pub progress: Option<ProgressBar>,
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
    type Bad = (Option<(usize, usize, f64)>, Option<(usize, f64)>);
    let results: Vec<(usize, usize, Recorder, Bad)> = out
        .par_chunks_mut(opts.batch.saturating_mul(d).max(1))
        .enumerate()
        .map(|(c, dst)| {
            let start = c * opts.batch;
            let rows = dst.len() / d.max(1);
            let end = start + rows;
            let rngs = (start..end)
                .map(|i| rng::stream(opts.seed, rng::domain::SAMPLER, i as u64))
                .collect();
            let rec = Recorder {
                every: opts.record_every,
                rows: opts.record_rows.saturating_sub(start).min(rows),
                times: Vec::new(),
                frames: Vec::new(),
            };
            let mut ctx = Ctx {
                sde,
                score,
                rngs,
                nfe: 0,
                rec,
                bad_state: None,
                bad_score: None,
            };
            let mut x = Array2::<f32>::zeros((rows, d));
            ctx.normal(&mut x);
            x.mapv_inplace(|v| v * prior_std);
            ctx.record(0, 1, sde.t_max(), x.view());
            sampler.run(&mut ctx, &mut x);
            for (o, &v) in dst.iter_mut().zip(x.iter()) {
                *o = v;
            }
            if let Some(pb) = &opts.progress {
                pb.inc(rows as u64);
            }
            (rows, ctx.nfe, ctx.rec, (ctx.bad_state, ctx.bad_score))
        })
        .collect();
    debug_assert_eq!(results.len(), n_chunks);
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        let row = i / d.max(1);
        let chunk = &results[row / opts.batch].3;
        let at = match chunk {
            (Some((step, n, t)), _) => {
                format!("the state first became non-finite at step {step} of {n} (t = {t:.6})")
            }
            (None, Some((k, t))) => format!(
                "the score first returned a non-finite value at model evaluation {k} (t = {t:.6})"
            ),
            (None, None) => "in the last step".to_string(),
        };
        return Err(Error::NonFiniteSample(format!(
            "sample {row} holds {} after {}; {at}",
            samples.iter().nth(i).copied().unwrap_or(f32::NAN),
            sampler.name()
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

/// Names accepted by [`by_name`] (each may take `:key=value,...` parameters).
pub const SAMPLER_NAMES: &[&str] = &[
    "ddpm",
    "ddpm-cosine",
    "em",
    "reverse-diffusion",
    "pc",
    "pc-em",
    "ald",
    "ddim",
    "edm",
    "ode-euler",
    "ode-heun",
    "ode-rk4",
    "ode-rk45",
    "dpm-solver++",
];

/// Build a sampler from a spec `name` or `name:key=value,key=value` and a
/// step count, e.g. `ddpm`, `em`. Unknown names list the valid ones;
/// unknown or malformed parameters are errors.
pub fn by_name(spec: &str, steps: usize) -> Result<Box<dyn Sampler>> {
    crate::sde::check_steps(steps)?;
    let mut p = Params::parse(spec)?;
    let sampler: Box<dyn Sampler> = match p.name.as_str() {
        "ddpm" => Box::new(Ddpm::linear(steps)),
        "ddpm-cosine" => Box::new(Ddpm {
            steps,
            schedule: DdpmSchedule::Cosine,
        }),
        "em" | "euler-maruyama" | "euler_maruyama" => Box::new(EulerMaruyama { steps }),
        "reverse-diffusion" | "reverse_diffusion" => Box::new(ReverseDiffusion { steps }),
        name @ ("pc" | "pc-em" | "pc_em") => {
            let predictor = if name == "pc" {
                Predictor::ReverseDiffusion
            } else {
                Predictor::EulerMaruyama
            };
            let d = PredictorCorrector::new(steps, predictor);
            let per_sample = p.usize("per_sample", 0)?;
            Box::new(PredictorCorrector {
                snr: p.f64("snr", d.snr)?,
                corrector_steps: p.usize("corrector_steps", d.corrector_steps)?,
                step_rule: match per_sample {
                    0 => CorrectorStep::NoiseScale,
                    1 => CorrectorStep::PerSampleNorms,
                    v => return Err(Error::invalid("per_sample", v, "0 or 1")),
                },
                ..d
            })
        }
        "ald" => {
            let d = AnnealedLangevin::new(steps);
            let denoise = p.usize("denoise", 1)?;
            if denoise > 1 {
                return Err(Error::invalid("denoise", denoise, "0 or 1"));
            }
            Box::new(AnnealedLangevin {
                inner: p.usize("inner", d.inner)?,
                // Absent: None (sigma(eps)²); parsed values are always finite.
                lr: Some(p.f64("lr", f64::NAN)?).filter(|v| !v.is_nan()),
                denoise: denoise == 1,
                ..d
            })
        }
        "ddim" => Box::new(Ddim {
            steps,
            eta: p.f64("eta", 0.0)?,
        }),
        "edm" => {
            let d = Edm::new(steps);
            Box::new(Edm {
                rho: p.f64("rho", d.rho)?,
                churn: p.f64("churn", d.churn)?,
                s_min: p.f64("s_min", d.s_min)?,
                s_max: p.f64("s_max", d.s_max)?,
                s_noise: p.f64("s_noise", d.s_noise)?,
                ..d
            })
        }
        "ode-euler" => Box::new(ProbabilityFlowOde {
            steps,
            method: OdeMethod::Euler,
        }),
        "ode-heun" => Box::new(ProbabilityFlowOde {
            steps,
            method: OdeMethod::Heun,
        }),
        "ode-rk4" => Box::new(ProbabilityFlowOde {
            steps,
            method: OdeMethod::Rk4,
        }),
        // Adaptive: `steps` is not used (see `Rk45`); max_steps caps attempts per sample.
        "ode-rk45" => {
            let d = Dopri5Options::DEFAULT;
            let rtol = p.f64("rtol", d.rtol)?;
            let atol = p.f64("atol", d.atol)?;
            let max_steps = p.usize("max_steps", d.max_steps)?;
            Box::new(Rk45::new(rtol, atol, max_steps)?)
        }
        "dpm-solver++" | "dpmpp-2m" => Box::new(DpmSolverPP { steps }),
        other => {
            return Err(Error::invalid(
                "sampler",
                other,
                format!("one of: {}", SAMPLER_NAMES.join(", ")),
            ))
        }
    };
    p.finish()?;
    Ok(sampler)
}

/// The `key=value` parameters of a sampler spec. Each sampler takes the keys
/// it knows with [`Params::f64`] / [`Params::usize`]; [`Params::finish`]
/// rejects any key left over.
#[derive(Debug)]
pub struct Params {
    pub name: String,
    values: Vec<(String, String)>,
}

impl Params {
    /// Split `name:key=value,key=value`.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, rest) = match spec.split_once(':') {
            Some((n, r)) => (n.trim(), r),
            None => (spec.trim(), ""),
        };
        let mut values = Vec::new();
        for kv in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(Error::invalid(
                    "sampler parameter",
                    kv,
                    format!("key=value in `{spec}`"),
                ));
            };
            let k = k.trim();
            if values.iter().any(|(seen, _): &(String, String)| seen == k) {
                return Err(Error::invalid(
                    "sampler parameter",
                    kv,
                    format!("each key once in `{spec}` ({k} is given twice)"),
                ));
            }
            values.push((k.to_string(), v.trim().to_string()));
        }
        Ok(Params {
            name: name.to_string(),
            values,
        })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.values.iter().position(|(k, _)| k == key)?;
        Some(self.values.remove(i).1)
    }

    /// A finite real parameter, `default` if absent.
    pub fn f64(&mut self, key: &str, default: f64) -> Result<f64> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| Error::invalid(key, v, "a finite number")),
        }
    }

    /// A non-negative integer parameter, `default` if absent.
    pub fn usize(&mut self, key: &str, default: usize) -> Result<usize> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => {
                let max = crate::limits::MAX_SAMPLER_STEPS;
                match v.parse::<usize>() {
                    Ok(k) if k <= max => Ok(k),
                    _ => Err(Error::invalid(
                        key,
                        v,
                        format!("a non-negative integer <= {max}"),
                    )),
                }
            }
        }
    }

    /// Error if any parameter was not used by the sampler.
    pub fn finish(self) -> Result<()> {
        match self.values.first() {
            None => Ok(()),
            Some((k, v)) => Err(Error::invalid(
                format!("parameter of sampler {}", self.name),
                format!("{k}={v}"),
                "a parameter this sampler takes (see `scoresde sample --help`)",
            )),
        }
    }
}
