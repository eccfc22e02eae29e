//! A job of `scoresde serve`: the checked request and what it computes.
//!
//! Every panel runs the same library calls as `scoresde sample`:
//! [`samplers::by_name`] on the spec, [`samplers::sample`] with
//! `SampleOptions::new(n, seed)` (the same seed for every panel, so all
//! panels start from the same prior draws), then for 2-D data
//! [`Reference::quality`] against `Reference::new(data, n,
//! derive(seed, SAMPLE_REFERENCE, 0))` and for images [`imaging::evaluate`].
//!
//! **Budget → steps.** A fixed-cost sampler (NFE = per_step · steps +
//! offset) runs `steps = max(1, ⌊(nfe − offset) / per_step⌋)`; an adaptive
//! one runs with its spec's tolerance and reports the NFE it used.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::jobs::{Cancellable, Job};
use super::sources::{Kind, Loaded, SourceSpec};
use super::Limits;
use crate::app::reference::Reference;
use crate::error::{Error, Result};
use crate::metrics::MeanSe;
use crate::rng::{self, domain};
use crate::samplers::{self, Nfe, SampleOptions, Sampler};
use crate::score::{ClipX0, Score};

/// Trajectory frames shown per panel (the prior draw and up to this many
/// more).
pub const FRAMES: usize = 40;
/// Points of the 2-D trajectory animation.
pub const FRAME_POINTS: usize = 1000;
/// Images of the image trajectory animation.
pub const FRAME_IMAGES: usize = 16;

/// `POST /api/jobs` body.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Source id from `GET /api/sources`.
    pub source: String,
    /// Noise process of an oracle: vp, subvp, ve (default vp).
    #[serde(default)]
    pub sde: Option<String>,
    /// One to four sampler specs `name[:key=value,...]`.
    pub samplers: Vec<String>,
    /// NFE budget per sample.
    pub nfe: usize,
    #[serde(default)]
    pub seed: u64,
    /// Number of samples.
    pub n: usize,
}

/// A request whose every value has been checked.
pub struct Checked {
    pub source: SourceSpec,
    pub samplers: Vec<(String, Box<dyn Sampler>, Option<usize>)>,
    pub nfe: usize,
    pub seed: u64,
    pub n: usize,
    pub images: bool,
}

/// Check a request without loading anything heavy: the source id (and a
/// checkpoint's config), the sizes against `limits`, and every sampler spec
/// with the library's own parser.
pub fn check(req: &JobRequest, limits: &Limits, runs: &std::path::Path) -> Result<Checked> {
    let source = SourceSpec::parse(&req.source, req.sde.as_deref(), runs)?;
    let images = match &source {
        SourceSpec::Oracle { .. } => false,
        SourceSpec::Empirical { .. } => true,
        SourceSpec::Checkpoint { dir, .. } => {
            crate::imaging::image_shape_of(&crate::checkpoint::read_config(dir)?).is_some()
        }
    };
    let max_n = if images {
        limits.max_n_images
    } else {
        limits.max_n_points
    };
    if req.n < 2 || req.n > max_n {
        return Err(Error::invalid(
            "n",
            req.n,
            format!(
                "an integer in 2..={max_n} for {} (the metrics need two samples)",
                if images { "images" } else { "2-D points" }
            ),
        ));
    }
    if req.nfe == 0 || req.nfe > limits.max_nfe {
        return Err(Error::invalid(
            "nfe",
            req.nfe,
            format!("an integer in 1..={}", limits.max_nfe),
        ));
    }
    if req.samplers.is_empty() || req.samplers.len() > limits.max_samplers {
        return Err(Error::invalid(
            "samplers",
            req.samplers.len(),
            format!("1..={} sampler specs", limits.max_samplers),
        ));
    }
    let mut samplers = Vec::new();
    for spec in &req.samplers {
        check_no_files(spec)?;
        if samplers::Params::parse(spec)?.has("steps") {
            return Err(Error::invalid(
                "sampler",
                spec,
                "a spec without steps= (the NFE budget sets the steps)",
            ));
        }
        let (sampler, steps) = match samplers::by_name(spec, 1)?.cost() {
            Nfe::Fixed { per_step, offset } => {
                let steps = (req.nfe as isize - offset).max(0) as usize / per_step.max(1);
                let steps = steps.max(1);
                (samplers::by_name(spec, steps)?, Some(steps))
            }
            Nfe::Adaptive => (samplers::by_name(spec, 1)?, None),
        };
        samplers.push((spec.clone(), sampler, steps));
    }
    Ok(Checked {
        source,
        samplers,
        nfe: req.nfe,
        seed: req.seed,
        n: req.n,
        images,
    })
}

/// Refuse a `schedule=` that names a file: the server reads no file a
/// request names outside the runs directory's checkpoints.
fn check_no_files(spec: &str) -> Result<()> {
    let Some(rest) = spec.split_once(':').map(|p| p.1) else {
        return Ok(());
    };
    let Some(at) = rest.find("schedule=") else {
        return Ok(());
    };
    let value = rest[at + "schedule=".len()..].trim();
    let first = value.split(',').next().unwrap_or("").trim();
    let name = first.split(':').next().unwrap_or("");
    let named = samplers::schedule::SCHEDULES
        .iter()
        .any(|(n, _)| *n == name)
        || name == "exponential";
    let times = first.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if value.contains(['/', '\\']) || value.contains(".json") || !(named || times) {
        return Err(Error::invalid(
            "schedule",
            value,
            "a named schedule or a list of times (the server reads no schedule files)",
        ));
    }
    if std::path::Path::new(first).exists() {
        return Err(Error::invalid(
            "schedule",
            first,
            "a schedule that is not also the name of a file",
        ));
    }
    Ok(())
}

/// Load the source and check that every sampler runs on its SDE.
pub fn load(c: &Checked) -> Result<Loaded> {
    let loaded = c.source.load()?;
    for (_, s, _) in &c.samplers {
        s.validate(loaded.sde.as_ref())?;
    }
    Ok(loaded)
}

/// Mean ± SE as JSON.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub se: f64,
    pub n: usize,
}

impl From<MeanSe> for Stat {
    fn from(m: MeanSe) -> Self {
        Stat {
            mean: m.mean,
            se: m.se,
            n: m.n,
        }
    }
}

/// What `scoresde sample` reports for 2-D points, or `eval` for images.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Metrics {
    Points {
        swd: Stat,
        floor: Stat,
        swd_over_floor: f64,
        mmd: f64,
        in_support: Option<f64>,
        in_box: Option<f64>,
    },
    Images {
        features: &'static str,
        fd: f64,
        fd_floor: f64,
        /// (mean max-probability, label entropy, classes present): samples, training images.
        labels: Option<[(f64, f64, usize); 2]>,
        /// (mean, min) nearest-neighbour L2 to the training set: samples, held-out images.
        nn: [(f64, f64); 2],
        nn_count: usize,
    },
    /// No reference data (a checkpoint of a data set that is not bundled).
    None,
}

/// The animation of one panel: frames of the first rows.
#[derive(Clone, Debug, Serialize)]
pub struct Frames {
    pub times: Vec<f64>,
    pub rows: usize,
    /// `f32` (little-endian floats) for points, `u8` (pixels 0..255) for images.
    pub encoding: &'static str,
    /// One base64 string per frame: the state x_t.
    pub x: Vec<String>,
    /// Images: the denoised estimate x̂0(x_t, t) of every frame.
    pub x0: Option<Vec<String>>,
}

/// One sampler's result.
#[derive(Clone, Debug, Serialize)]
pub struct Panel {
    pub spec: String,
    /// The sampler's label, e.g. `ddpm(20)`.
    pub label: String,
    /// The spec [`samplers::by_name`] parses back.
    pub name: String,
    pub steps: Option<usize>,
    pub nfe: usize,
    pub seconds: f64,
    /// All samples, little-endian f32, row-major [n, dim], base64.
    pub samples: String,
    pub frames: Frames,
    pub metrics: Metrics,
}

/// What a finished job returns.
#[derive(Clone, Debug, Serialize)]
pub struct JobResult {
    pub source: String,
    /// `points` or `images`.
    pub kind: &'static str,
    pub dim: usize,
    /// `[c, h, w]` of images.
    pub shape: Option<[usize; 3]>,
    pub n: usize,
    pub seed: u64,
    pub nfe_budget: usize,
    pub panels: Vec<Panel>,
}

fn b64_f32(x: ArrayView2<f32>) -> String {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64_u8(x: ArrayView2<f32>) -> String {
    let bytes: Vec<u8> = x
        .iter()
        .map(|&v| crate::data::images::unit_to_u8(v))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Indices of at most FRAMES + 1 frames of `k`, evenly spaced, first and last kept.
fn pick_frames(k: usize) -> Vec<usize> {
    if k <= FRAMES + 1 {
        return (0..k).collect();
    }
    let mut v: Vec<usize> = (0..=FRAMES).map(|i| i * (k - 1) / FRAMES).collect();
    v.dedup();
    v
}

/// Run every panel of a checked job on a loaded source. Returns `Ok(None)`
/// if the job was stopped (cancelled or out of time).
pub fn run(c: &Checked, src: &Loaded, job: &Arc<Job>) -> Result<Option<JobResult>> {
    let n = c.n;
    let clipped = src.clip_x0.map(|clip| ClipX0 {
        inner: src.score.as_ref(),
        sde: src.sde.as_ref(),
        clip,
    });
    let base: &dyn Score = match &clipped {
        Some(cl) => cl,
        None => src.score.as_ref(),
    };
    let score = Cancellable {
        inner: base,
        job: job.as_ref(),
    };
    let sde = src.sde.as_ref();
    let reference = match &src.kind {
        Kind::Points { data: Some(toy) } => Some((
            *toy,
            Reference::new(
                *toy,
                n.min(crate::limits::MAX_QUADRATIC_METRIC_N),
                rng::derive(c.seed, domain::SAMPLE_REFERENCE, 0),
            ),
        )),
        _ => None,
    };
    let (rows, shape) = match &src.kind {
        Kind::Points { .. } => (n.min(FRAME_POINTS), None),
        Kind::Images { shape, .. } => (n.min(FRAME_IMAGES), Some(*shape)),
    };
    let mut panels = Vec::new();
    for (spec, sampler, steps) in &c.samplers {
        if job.stopped() {
            return Ok(None);
        }
        let mut so = SampleOptions::new(n, c.seed);
        // Small chunks: finer progress (the output does not depend on it).
        so.batch = (n / 16).clamp(16, 500);
        so.record_every = Some((steps.unwrap_or(1) / FRAMES).max(1));
        so.record_rows = rows;
        let counter = job.clone();
        so.progress = Some(crate::progress::Progress::new(move |k| {
            counter
                .done
                .fetch_add(k, std::sync::atomic::Ordering::Relaxed);
        }));
        let start = Instant::now();
        let out = samplers::sample(sampler.as_ref(), sde, &score, &so)?;
        let seconds = start.elapsed().as_secs_f64();
        if job.stopped() {
            return Ok(None);
        }
        let tr = out.trajectory.unwrap_or_default();
        let idx = pick_frames(tr.frames.len());
        let enc = |f: &Array2<f32>| match shape {
            Some(_) => b64_u8(f.view()),
            None => b64_f32(f.view()),
        };
        let x0 = shape.map(|_| {
            idx.iter()
                .map(|&k| {
                    let f = &tr.frames[k];
                    let mut o = Array2::<f32>::zeros(f.raw_dim());
                    crate::score::x0_hat(base, sde, f.view(), tr.times[k], o.view_mut());
                    o.mapv_inplace(|v| if v.is_finite() { v } else { 0.0 });
                    enc(&o)
                })
                .collect()
        });
        let frames = Frames {
            times: idx.iter().map(|&k| tr.times[k]).collect(),
            rows: tr.frames.first().map_or(0, |f| f.nrows()),
            encoding: if shape.is_some() { "u8" } else { "f32" },
            x: idx.iter().map(|&k| enc(&tr.frames[k])).collect(),
            x0,
        };
        let metrics = match (&src.kind, &reference) {
            (Kind::Points { .. }, Some((toy, r))) => {
                let m = n.min(crate::limits::MAX_QUADRATIC_METRIC_N);
                let q = r.quality(*toy, &out.samples.slice(ndarray::s![..m, ..]).to_owned());
                Metrics::Points {
                    swd: q.swd.into(),
                    floor: r.floor.into(),
                    swd_over_floor: q.swd.mean / r.floor.mean,
                    mmd: q.mmd,
                    in_support: q.in_support,
                    in_box: q.in_box,
                }
            }
            (Kind::Images { data: Some(d), .. }, _) => {
                let e = crate::imaging::evaluate(out.samples.view(), d)?;
                Metrics::Images {
                    features: e.features,
                    fd: e.fd,
                    fd_floor: e.fd_floor,
                    labels: e.labels,
                    nn: e.nn,
                    nn_count: e.nn_count,
                }
            }
            _ => Metrics::None,
        };
        panels.push(Panel {
            spec: spec.clone(),
            label: sampler.label(),
            name: sampler.name(),
            steps: *steps,
            nfe: out.nfe,
            seconds,
            samples: b64_f32(out.samples.view()),
            frames,
            metrics,
        });
    }
    Ok(Some(JobResult {
        source: src.label.clone(),
        kind: if shape.is_some() { "images" } else { "points" },
        dim: src.score.dim(),
        shape: shape.map(|(c, h, w)| [c, h, w]),
        n,
        seed: c.seed,
        nfe_budget: c.nfe,
        panels,
    }))
}
