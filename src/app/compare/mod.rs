//! `scoresde compare`: sample quality against cost for several samplers at
//! several NFE budgets, with an exact-score oracle or a trained model.
//!
//! Layout: `options.rs` (settings, defaults, checks), `plan.rs` (budget →
//! steps), this file (the run loop and the cell types), `output.rs` (tables
//! and figures); `image.rs` and `image_output.rs` for image data.
//!
//! For every sampler spec (taken by [`samplers::by_name`], so any registered
//! sampler works) and every NFE budget, the sampler runs `seeds` times with
//! different sampling seeds; each run is scored against its own independent
//! data draw. Every metric is reported as mean ± standard error over the
//! seeds, next to the same metric between two independent data draws (the
//! noise floor).
//!
//! **Budget → steps.** Every sampler declares its cost
//! ([`Sampler::cost`](crate::samplers::Sampler::cost)): NFE is
//! `per_step · steps + offset` (EM/DDPM: 1 and 0; Heun-type EDM 2N − 1: 2 and
//! −1; RK4: 4 and 0; PC with c corrector steps: 1 + c and 0), or adaptive. A
//! budget B then runs `steps = max(1, ⌊(B − offset) / per_step⌋)`; a cell
//! whose NFE `offset + per_step · steps` would exceed 2 B is skipped (left
//! empty). An adaptive sampler runs once per budget with a tolerance `rtol`
//! appended to its spec, log-spaced from 1e-1 (smallest budget) to 1e-6
//! (largest), and its actual NFE is reported.

use std::path::{Path, PathBuf};

use ndarray::{s, Array2, ArrayView2};

use crate::data::Toy;
use crate::error::{Error, Result};
use crate::guidance::labels::{Labelled, ScoreSource};
use crate::guidance::ConditionalScore;
use crate::metrics::{self, MeanSe};
use crate::model::ScoreModel;
use crate::report::Table;
use crate::rng::{self, domain};
use crate::samplers;
use crate::score::Score;
use crate::sde::Sde;
use crate::viz;

mod cells;
pub mod image;
mod image_output;
mod options;
mod output;
mod plan;
use cells::{run_cells, Setup};
pub use image::{
    run_images, ImageCell, ImageCompareReport, ImageData, ImageSummary, DEFAULT_NFE_IMAGE,
    DEFAULT_N_IMAGE,
};
use options::{check_options, FILES_2D};
pub use options::{
    default_specs, CompareOptions, Source, DEFAULT_N, DEFAULT_NFE, DEFAULT_N_MODEL, DEFAULT_SEEDS,
    IMAGE_ORACLES, PAIRWISE_SUBSET, RTOL_RANGE, SWD_PROJECTIONS,
};
use output::{
    indistinguishable_notes, results_csv, results_markdown, results_table, write_figures,
};
use plan::Plan;

/// What a comparison produced: 2-D or images.
#[derive(Clone, Debug)]
pub enum Report {
    Points(CompareReport),
    Images(ImageCompareReport),
}

/// Run a 2-D or an image comparison, whichever the source makes.
pub fn run_any(opts: &CompareOptions) -> Result<Report> {
    let image_source = || -> Result<()> {
        if opts.data.is_some() {
            return Err(Error::invalid(
                "data",
                opts.data.map(|d| d.name()).unwrap_or_default(),
                "none for an image comparison (the images' own set is the reference)",
            ));
        }
        Ok(())
    };
    match &opts.source {
        Source::Model(dir) => {
            let model = ScoreModel::load(dir)?;
            let Some((c, h, w)) = crate::imaging::image_shape_of(&model.config) else {
                return run(opts).map(Report::Points);
            };
            image_source()?;
            let name = model.config.data.clone();
            let folder = if IMAGE_ORACLES.contains(&name.as_str()) {
                None
            } else {
                let mode = if c == 1 {
                    crate::data::images::ColorMode::Grey
                } else {
                    crate::data::images::ColorMode::Rgb
                };
                if h != w {
                    return Err(Error::invalid(
                        "image shape",
                        format!("{h}x{w}"),
                        "square images",
                    ));
                }
                Some(crate::data::images::load_folder(
                    std::path::Path::new(&name),
                    h,
                    mode,
                )?)
            };
            let data = ImageData::load(&name, folder.as_ref())?;
            let clip = |inner| crate::score::ClipX0 {
                inner,
                sde: model.sde(),
                clip: 1.0,
            };
            let clipped = clip(&model);
            // A class-conditional model is compared as its data mixture:
            // each sample's label drawn from the training labels.
            let weights = data.train.labels.as_ref().map(|l| {
                crate::guidance::labels::label_frequencies(
                    &l.iter().map(|&y| y as usize).collect::<Vec<_>>(),
                    model.config.net.n_classes(),
                )
            });
            let conds = (0..model.config.net.n_classes())
                .map(|k| model.with_condition(crate::guidance::Condition::Class(k)))
                .collect::<Result<Vec<_>>>()?;
            let clipped_conds: Vec<_> = conds.iter().map(|c| clip(c.as_ref())).collect();
            let classes: Vec<&dyn Score> = clipped_conds.iter().map(|c| c as &dyn Score).collect();
            let (source, labels) = match &weights {
                Some(w) if !classes.is_empty() => (
                    ScoreSource::Labelled(Labelled::new(w, &classes)?),
                    ", labels drawn from the training labels",
                ),
                _ => (ScoreSource::One(&clipped), ""),
            };
            let label = format!(
                "model {} ({} SDE, x̂0 clipped to ±1{labels})",
                dir.display(),
                model.config.sde.name()
            );
            run_images(
                source,
                model.sde(),
                &data,
                &folder_name(opts, dir),
                &label,
                opts,
            )
            .map(Report::Images)
        }
        Source::Oracle { .. } => run(opts).map(Report::Points),
        Source::ImageOracle { data: set, sde } => {
            if !IMAGE_ORACLES.contains(&set.as_str()) {
                return Err(Error::invalid(
                    "oracle",
                    format!("{set}-empirical"),
                    format!(
                        "one of: {}",
                        IMAGE_ORACLES.map(|s| format!("{s}-empirical")).join(", ")
                    ),
                ));
            }
            let data = ImageData::load(set, None)?;
            let oracle = crate::oracle::EmpiricalScore::new(data.train.pixels.view(), sde)?;
            image_source()?;
            let name = opts
                .name
                .clone()
                .unwrap_or_else(|| format!("{set}-empirical-{}", sde.name()));
            let label = format!(
                "exact score of the {} {set} training images ({} SDE)",
                data.train.len(),
                sde.name()
            );
            run_images(
                ScoreSource::One(&oracle),
                oracle.sde(),
                &data,
                &name,
                &label,
                opts,
            )
            .map(Report::Images)
        }
    }
}

/// `opts.name`, or the last component of the model folder.
fn folder_name(opts: &CompareOptions, dir: &Path) -> String {
    opts.name.clone().unwrap_or_else(|| {
        dir.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    })
}

/// Metrics of one set of points against one reference draw.
#[derive(Clone, Copy, Debug)]
struct Quality {
    swd: f64,
    mmd: f64,
    energy: f64,
    mixture: Option<metrics::MixtureMetrics>,
    in_support: Option<f64>,
    /// Precision, recall (k-NN manifolds, k = 3), density, coverage (k = 5).
    prdc: [f64; 4],
}

/// Mean ± SE over seeds of every metric.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub swd: MeanSe,
    /// Unbiased RBF MMD² with one bandwidth for the whole comparison.
    pub mmd: MeanSe,
    pub energy: MeanSe,
    /// Mode coverage, high-quality fraction, mean true log-density (mixtures).
    pub mixture: Option<[MeanSe; 3]>,
    /// Fraction inside the support (checkerboard).
    pub in_support: Option<MeanSe>,
    /// Precision and recall (k-NN manifolds, k = [`metrics::PR_K`]),
    /// density and coverage (k = [`metrics::DC_K`]), on the first
    /// [`PAIRWISE_SUBSET`] points of each set.
    pub prdc: [MeanSe; 4],
}

fn summarise(qs: &[Quality]) -> Summary {
    let ms =
        |f: &dyn Fn(&Quality) -> f64| MeanSe::from_samples(&qs.iter().map(f).collect::<Vec<_>>());
    Summary {
        swd: ms(&|q| q.swd),
        mmd: ms(&|q| q.mmd),
        energy: ms(&|q| q.energy),
        mixture: qs[0].mixture.map(|_| {
            [
                ms(&|q| q.mixture.map_or(f64::NAN, |m| m.mode_coverage)),
                ms(&|q| q.mixture.map_or(f64::NAN, |m| m.high_quality)),
                ms(&|q| q.mixture.map_or(f64::NAN, |m| m.mean_log_prob)),
            ]
        }),
        in_support: qs[0]
            .in_support
            .map(|_| ms(&|q| q.in_support.unwrap_or(f64::NAN))),
        prdc: [0, 1, 2, 3].map(|i| ms(&|q| q.prdc[i])),
    }
}

/// One (sampler, budget) cell, with its quality summary `Q` (2-D:
/// [`Summary`]; images: [`ImageSummary`]).
#[derive(Clone, Debug)]
pub struct Cell<Q = Summary> {
    /// The sampler spec as given (e.g. `em`).
    pub spec: String,
    /// The sampler's own name at this budget (e.g. `euler_maruyama(20)`).
    pub sampler: String,
    pub budget: usize,
    /// Steps run (None for adaptive samplers).
    pub steps: Option<usize>,
    /// Tolerance given to an adaptive sampler.
    pub rtol: Option<f64>,
    /// Model evaluations per sample (of the first seed's run).
    pub nfe: usize,
    /// Wall time of one run, mean ± SE over seeds.
    pub seconds: MeanSe,
    pub quality: Q,
    /// Samples of the first seed (images: the first few, for thumbnails).
    pub samples: Array2<f32>,
}

/// What a comparison produced.
#[derive(Clone, Debug)]
pub struct CompareReport {
    pub out_dir: PathBuf,
    /// The same metrics between independent data draws (SWD: the noise floor).
    pub floor: Summary,
    pub cells: Vec<Cell>,
    /// (spec, budget, reason) of cells left empty.
    pub skipped_cells: Vec<(String, usize, String)>,
    /// (spec, reason) of default samplers that cannot run here.
    pub skipped_samplers: Vec<(String, String)>,
    /// Per budget: the samplers within 2 combined SE of the best SWD.
    pub notes: Vec<String>,
    pub table: Table,
}

/// Run a comparison from a [`Source`]: load the model or build the oracle,
/// then [`run_with`].
pub fn run(opts: &CompareOptions) -> Result<CompareReport> {
    match &opts.source {
        Source::Model(dir) => {
            let model = ScoreModel::load(dir)?;
            let data = match opts.data {
                Some(d) => d,
                None => Toy::from_name(&model.config.data)?,
            };
            let name = folder_name(opts, dir);
            let label = format!("model {} ({} SDE)", dir.display(), model.config.sde.name());
            run_with(&model, model.sde(), data, &name, &label, opts)
        }
        Source::ImageOracle { data, .. } => Err(Error::invalid(
            "oracle",
            format!("{data}-empirical"),
            "a 2-D oracle here (image oracles run through run_any)",
        )),
        Source::Oracle { data, sde } => {
            let (oracle, oracle_sde) = crate::oracle::for_toy(*data, sde)?;
            let name = opts
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", data.name(), sde.name()));
            let label = format!("exact score of {} ({} SDE)", data.name(), sde.name());
            run_with(
                oracle.as_ref(),
                oracle_sde.as_ref(),
                opts.data.unwrap_or(*data),
                &name,
                &label,
                opts,
            )
        }
    }
}

/// Compare samplers driven by `score` under `sde` against `data`; results go
/// to `opts.out/<name>/`. `label` describes the score source in the report.
pub fn run_with(
    score: &dyn Score,
    sde: &dyn Sde,
    data: Toy,
    name: &str,
    label: &str,
    opts: &CompareOptions,
) -> Result<CompareReport> {
    check_options(opts)?;
    if score.dim() != 2 {
        return Err(Error::Mismatch(format!(
            "the score has dimension {} but the data set {} is 2-D",
            score.dim(),
            data.name()
        )));
    }
    let Setup {
        out_dir,
        budgets,
        plans,
        skipped_samplers,
        _lock,
    } = Setup::new(opts, sde, name, &FILES_2D)?;

    // Reference and floor draws, one pair per seed.
    let n = opts.n;
    let refs: Vec<Array2<f32>> = (0..opts.seeds)
        .map(|s| {
            data.sample(
                n,
                rng::derive(opts.seed, domain::COMPARE_REFERENCE, s as u64),
            )
        })
        .collect();
    let floor_draws: Vec<Array2<f32>> = (0..opts.seeds)
        .map(|s| data.sample(n, rng::derive(opts.seed, domain::COMPARE_FLOOR, s as u64)))
        .collect();
    let sub =
        |a: &Array2<f32>| -> Array2<f32> { a.slice(s![..n.min(PAIRWISE_SUBSET), ..]).to_owned() };
    let bandwidth = metrics::median_bandwidth(sub(&refs[0]).view(), sub(&floor_draws[0]).view());
    let mixture = data.mixture();
    let ref_subs: Vec<Array2<f32>> = refs.iter().map(sub).collect();
    let balls: Vec<metrics::RealBalls> = ref_subs
        .iter()
        .map(|r| metrics::RealBalls::new(r.view(), metrics::DC_K))
        .collect::<Result<_>>()?;
    let evaluate = |x: ArrayView2<f32>, s: usize| -> Result<Quality> {
        let (xs, rs) = (x.slice(s![..n.min(PAIRWISE_SUBSET), ..]), sub(&refs[s]));
        let (p, r) = metrics::precision_recall(ref_subs[s].view(), xs, metrics::PR_K)?;
        let (d, c) = metrics::density_coverage_with(ref_subs[s].view(), &balls[s], xs)?;
        Ok(Quality {
            swd: metrics::swd(x, refs[s].view(), SWD_PROJECTIONS, s as u64),
            mmd: metrics::mmd_rbf_with_bandwidth(xs, rs.view(), bandwidth),
            energy: metrics::energy_distance(xs, rs.view()),
            mixture: mixture.as_ref().map(|gm| metrics::mixture_metrics(gm, x)),
            in_support: data.in_support_fraction(x),
            prdc: [p, r, d, c],
        })
    };
    let floor_q: Vec<Quality> = floor_draws
        .iter()
        .enumerate()
        .map(|(s, f)| evaluate(f.view(), s))
        .collect::<Result<_>>()?;
    let floor = summarise(&floor_q);

    let (cells, skipped_cells) = run_cells(
        &plans,
        &budgets,
        (sde, crate::guidance::labels::ScoreSource::One(score)),
        opts,
        None,
        &evaluate,
        summarise,
    )?;

    let notes = indistinguishable_notes(&cells, &budgets);
    let table = results_table(&cells, &floor, mixture.is_some(), data == Toy::Checkerboard);
    let csv = results_csv(&cells, &skipped_cells, &floor, &budgets, &plans);
    csv.write_csv(&out_dir.join("results.csv"))?;
    let md = results_markdown(
        label,
        data,
        sde,
        opts,
        &floor,
        &table,
        &notes,
        &skipped_cells,
        &skipped_samplers,
    );
    crate::fsutil::write_atomic(&out_dir.join("results.md"), md.as_bytes())?;
    write_figures(&out_dir, label, &plans, &budgets, &cells, &floor, &refs[0])?;
    Ok(CompareReport {
        out_dir,
        floor,
        cells,
        skipped_cells,
        skipped_samplers,
        notes,
        table,
    })
}
