//! Sampling a class-conditional model with a label per sample.
//!
//! Without a class to sample, a class-conditional model is sampled as the
//! mixture it was trained on: sample i gets label yᵢ drawn from the class
//! weights w_k (by default the training labels' frequencies, so the
//! samples follow the data distribution Σ_k w_k p(x | k)), and then a
//! sample of p(x | yᵢ).
//!
//! * Labels: yᵢ = min{k : Σ_{j≤k} w_j ≥ uᵢ Σ_j w_j}, uᵢ the first uniform
//!   draw of stream `(seed, SAMPLE_LABEL, i)`, so the labels of the first m
//!   of n samples are the labels of m samples.
//! * Samples: one sampler run per class k over the nₖ samples labelled k,
//!   in index order, with seed `derive(seed, SAMPLE_CLASS, k)`; run k's row
//!   r is the r-th sample labelled k. Each run is a function of (nₖ, seed)
//!   that is prefix-stable in its rows, so the output does not depend on
//!   the batch size or thread count, and the first m of n samples are the
//!   samples of m.
//! * NFE: every run takes the same steps, so the NFE per sample is one
//!   run's (the maximum over runs if an adaptive sampler differs).
//! * Trajectory: run k records its samples among the first `record_rows`
//!   overall, and the frames are put back in sample order.

use ndarray::Array2;
use rand::RngExt;

use crate::error::{Error, Result};
use crate::rng::{self, domain};
use crate::samplers::{self, SampleOptions, SampleOutput, Sampler, Trajectory};
use crate::score::Score;
use crate::sde::Sde;

/// Where the labels of a class-conditional model's samples come from when
/// no class is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelSource {
    /// The training labels' frequencies (the data's own mixture).
    Data,
    /// Every class equally often in expectation.
    Uniform,
    /// No label: the model's unconditional (null-label) score.
    Null,
}

impl LabelSource {
    /// The names `parse` takes.
    pub const NAMES: &'static str = "data, uniform or null";

    /// `data`, `uniform` or `null`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "data" => Ok(LabelSource::Data),
            "uniform" => Ok(LabelSource::Uniform),
            "null" => Ok(LabelSource::Null),
            other => Err(Error::invalid("labels", other, Self::NAMES)),
        }
    }
}

/// The label of each of `n` samples, drawn from the class `weights`
/// (non-negative, at least one positive; see the module docs).
pub fn draw_labels(weights: &[f64], n: usize, seed: u64) -> Result<Vec<usize>> {
    let total: f64 = weights.iter().sum();
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || total <= 0.0 {
        return Err(Error::invalid(
            "class weights",
            format!("{weights:?}"),
            "finite non-negative weights with a positive sum",
        ));
    }
    let last = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    Ok((0..n)
        .map(|i| {
            let u: f64 = rng::stream(seed, domain::SAMPLE_LABEL, i as u64).random::<f64>() * total;
            let mut acc = 0.0;
            for (k, &w) in weights.iter().enumerate() {
                acc += w;
                if w > 0.0 && u < acc {
                    return k;
                }
            }
            last
        })
        .collect())
}

/// The class frequencies of `labels` over `n_classes` classes.
pub fn label_frequencies(labels: &[usize], n_classes: usize) -> Vec<f64> {
    let mut counts = vec![0.0; n_classes];
    for &y in labels {
        if y < n_classes {
            counts[y] += 1.0;
        }
    }
    counts
}

/// `labels.len()` samples of dimension `dim` with label `labels[i]` for
/// sample i: `run_class(k, opts_k)` draws the `opts_k.n` samples of class
/// k (the caller builds the score of class k and runs its sampler);
/// `opts` gives the seed, batch, trajectory and progress of the whole run
/// (see the module docs).
pub fn sample_labelled(
    labels: &[usize],
    dim: usize,
    opts: &SampleOptions,
    mut run_class: impl FnMut(usize, &SampleOptions) -> Result<SampleOutput>,
) -> Result<SampleOutput> {
    let n = labels.len();
    if n == 0 {
        return Err(Error::invalid("samples", n, "an integer >= 1"));
    }
    let n_classes = labels.iter().max().map_or(0, |&k| k + 1);
    // members[k]: the sample indices labelled k, in order.
    let mut members = vec![Vec::new(); n_classes];
    for (i, &y) in labels.iter().enumerate() {
        members[y].push(i);
    }
    let recorded = opts.record_rows.min(n);
    let mut samples = Array2::zeros((n, dim));
    let mut evals = 0;
    let mut trajectory: Option<Trajectory> = None;
    for (k, rows) in members.iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let seed = rng::derive(opts.seed, domain::SAMPLE_CLASS, k as u64);
        let mut o = SampleOptions::new(rows.len(), seed);
        o.batch = opts.batch;
        o.record_every = opts.record_every;
        o.record_rows = rows.iter().take_while(|&&i| i < recorded).count();
        o.progress = opts.progress.clone();
        let run = run_class(k, &o)?;
        if run.samples.dim() != (rows.len(), dim) {
            return Err(Error::Mismatch(format!(
                "class {k} gave samples of shape {:?}, expected {:?}",
                run.samples.dim(),
                (rows.len(), dim)
            )));
        }
        for (r, &i) in rows.iter().enumerate() {
            samples.row_mut(i).assign(&run.samples.row(r));
        }
        evals += run.nfe * rows.len();
        let Some(tr) = run.trajectory.filter(|_| o.record_rows > 0) else {
            continue;
        };
        let merged = trajectory.get_or_insert_with(|| Trajectory {
            times: tr.times.clone(),
            frames: vec![Array2::zeros((recorded, dim)); tr.frames.len()],
        });
        if merged.times != tr.times {
            return Err(Error::Mismatch(
                "the class runs recorded their trajectories at different times".into(),
            ));
        }
        for (m, f) in merged.frames.iter_mut().zip(&tr.frames) {
            for (r, &i) in rows.iter().take(f.nrows()).enumerate() {
                m.row_mut(i).assign(&f.row(r));
            }
        }
    }
    Ok(SampleOutput {
        samples,
        nfe: evals.div_ceil(n),
        trajectory,
    })
}

/// What a sampler run draws from: one score, or the class scores of a
/// class-conditional model sampled as the mixture of the class weights
/// (labels from [`draw_labels`] with the run's seed, then
/// [`sample_labelled`]).
#[derive(Clone, Copy)]
pub enum ScoreSource<'a> {
    One(&'a dyn Score),
    Labelled(Labelled<'a>),
}

/// Class weights and one score per class, of equal count and dimension.
#[derive(Clone, Copy)]
pub struct Labelled<'a> {
    weights: &'a [f64],
    classes: &'a [&'a dyn Score],
}

impl<'a> Labelled<'a> {
    /// `classes[k]` is the score of class k, drawn with weight `weights[k]`.
    pub fn new(weights: &'a [f64], classes: &'a [&'a dyn Score]) -> Result<Self> {
        if weights.len() != classes.len() || classes.is_empty() {
            return Err(Error::Mismatch(format!(
                "{} class weights for {} class scores (expected as many, at least one)",
                weights.len(),
                classes.len()
            )));
        }
        let dim = classes[0].dim();
        if let Some(k) = classes.iter().position(|c| c.dim() != dim) {
            return Err(Error::Mismatch(format!(
                "class {k}'s score has dimension {}, class 0's {dim}",
                classes[k].dim()
            )));
        }
        draw_labels(weights, 0, 0)?;
        Ok(Labelled { weights, classes })
    }
}

impl ScoreSource<'_> {
    /// Dimension d of each point.
    pub fn dim(&self) -> usize {
        match self {
            ScoreSource::One(s) => s.dim(),
            ScoreSource::Labelled(l) => l.classes[0].dim(),
        }
    }

    /// `opts.n` samples with `sampler` under `sde`.
    pub fn sample(
        &self,
        sampler: &dyn Sampler,
        sde: &dyn Sde,
        opts: &SampleOptions,
    ) -> Result<SampleOutput> {
        match self {
            ScoreSource::One(s) => samplers::sample(sampler, sde, *s, opts),
            ScoreSource::Labelled(l) => {
                let labels = draw_labels(l.weights, opts.n, opts.seed)?;
                sample_labelled(&labels, self.dim(), opts, |k, o| {
                    samplers::sample(sampler, sde, l.classes[k], o)
                })
            }
        }
    }
}
