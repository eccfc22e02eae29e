//! Running a comparison's cells: the output folder set up and locked, then
//! every (sampler, budget) cell run once per seed and scored.

use std::time::Instant;

use super::options::check_out_dir;
use super::plan::{plan_cell, plan_samplers, CellPlan};
use super::*;
use crate::app::bars::sample_bar;
use crate::guidance::labels::ScoreSource;
use crate::samplers::SampleOptions;

/// The output folder of a comparison (checked, created and locked for the
/// run), its NFE budgets in increasing order and its sampler plans.
pub(super) struct Setup {
    pub out_dir: PathBuf,
    pub budgets: Vec<usize>,
    pub plans: Vec<(String, Plan)>,
    /// Samplers left out, with the reason.
    pub skipped_samplers: Vec<(String, String)>,
    pub _lock: crate::fsutil::DirLock,
}

impl Setup {
    /// `files` are the outputs the comparison writes into `<out>/<name>/`.
    pub(super) fn new(
        opts: &CompareOptions,
        sde: &dyn Sde,
        name: &str,
        files: &[&str],
    ) -> Result<Setup> {
        let out_dir = check_out_dir(opts, name, files)?;
        let mut budgets = opts.nfe.clone();
        budgets.sort_unstable();
        let (plans, skipped_samplers) = plan_samplers(opts, sde)?;
        std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
        let _lock = crate::fsutil::lock_dir(&out_dir)?;
        Ok(Setup {
            out_dir,
            budgets,
            plans,
            skipped_samplers,
            _lock,
        })
    }
}

/// What [`run_cells`] returns: the cells run, in plan and budget order, and
/// the cells skipped as (spec, budget, reason).
type CellRuns<S> = (Vec<Cell<S>>, Vec<(String, usize, String)>);

/// Run every cell of `plans` × `budgets` that its plan allows, over the
/// seeds (with `batch` as the sampling batch if given), each seed scored by
/// `evaluate` and the seeds summarised by `summarise`.
pub(super) fn run_cells<Q, S>(
    plans: &[(String, Plan)],
    budgets: &[usize],
    (sde, score): (&dyn Sde, ScoreSource<'_>),
    opts: &CompareOptions,
    batch: Option<usize>,
    evaluate: &dyn Fn(ArrayView2<f32>, usize) -> Result<Q>,
    summarise: fn(&[Q]) -> S,
) -> Result<CellRuns<S>> {
    let mut cells = Vec::new();
    let mut skipped_cells = Vec::new();
    for (spec, plan) in plans {
        for (bi, &budget) in budgets.iter().enumerate() {
            let (sampler, steps, rtol) = match plan_cell(spec, plan, bi, budget, budgets.len())? {
                CellPlan::Run {
                    sampler,
                    steps,
                    rtol,
                } => (sampler, steps, rtol),
                CellPlan::Skip(why) => {
                    skipped_cells.push((spec.clone(), budget, why));
                    continue;
                }
            };
            let (qs, secs, samples, nfe) = run_seeds(
                sampler.as_ref(),
                sde,
                score,
                opts,
                batch,
                &format!("{spec} @ {budget}"),
                evaluate,
            )?;
            cells.push(Cell {
                spec: spec.clone(),
                sampler: sampler.label(),
                budget,
                steps,
                rtol,
                nfe,
                seconds: MeanSe::from_samples(&secs),
                quality: summarise(&qs),
                samples,
            });
        }
    }
    Ok((cells, skipped_cells))
}

/// What [`run_seeds`] returns: per-seed metrics, per-seed seconds, the
/// first seed's samples and their NFE.
type SeedRuns<Q> = (Vec<Q>, Vec<f64>, Array2<f32>, usize);

/// Run one cell's sampler once per seed (sampling seed s scored by
/// `evaluate(samples, s)`), with a progress bar if asked.
fn run_seeds<Q>(
    sampler: &dyn samplers::Sampler,
    sde: &dyn Sde,
    score: ScoreSource<'_>,
    opts: &CompareOptions,
    batch: Option<usize>,
    what: &str,
    evaluate: &dyn Fn(ArrayView2<f32>, usize) -> Result<Q>,
) -> Result<SeedRuns<Q>> {
    let n = opts.n;
    let pb = opts
        .progress
        .then(|| sample_bar((n * opts.seeds) as u64, what.to_string(), 24));
    let mut qs = Vec::with_capacity(opts.seeds);
    let mut secs = Vec::with_capacity(opts.seeds);
    let mut first: Option<(Array2<f32>, usize)> = None;
    for s in 0..opts.seeds {
        let mut so = SampleOptions::new(
            n,
            rng::derive(opts.seed, domain::COMPARE_SAMPLING, s as u64),
        );
        if let Some(b) = batch {
            so.batch = b;
        }
        so.progress = pb.as_ref().map(|(_, p)| p.clone());
        let start = Instant::now();
        let out = score.sample(sampler, sde, &so)?;
        secs.push(start.elapsed().as_secs_f64());
        qs.push(evaluate(out.samples.view(), s)?);
        if first.is_none() {
            first = Some((out.samples, out.nfe));
        }
    }
    if let Some((pb, _)) = &pb {
        pb.finish_and_clear();
    }
    let (samples, nfe) = first.expect("seeds >= 1");
    Ok((qs, secs, samples, nfe))
}
