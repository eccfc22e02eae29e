//! `compare` on images: a trained image model or the empirical-score
//! oracle of an image set, scored with fidelity / diversity metrics.
//!
//! Same sampler specs, schedules, budgets and budget → steps rule as the
//! 2-D comparison (see the parent module). For every seed s the sampler
//! draws `n` images with sampling seed s; they are scored against a
//! reference draw R_s of `n` held-out images (a seeded random subset), and
//! every metric is reported as mean ± SE over the seeds next to its floor:
//! the same metric for a draw T_s of `n` *training* images against R_s
//! (real images at the same n, so both carry the same finite-sample bias).
//!
//! - **Feature space.** MNIST and mnist16: the penultimate features (128)
//!   of the bundled MNIST classifier (98.4% test accuracy; 16×16 images
//!   are brought back to 28×28 first), as an FID analogue. Digits, emoji and
//!   folders: raw pixels in [−1, 1]. No classifier trained on these sets
//!   exists here, and one trained on MNIST would measure the wrong things on
//!   emoji; at 8×8 and 16×16 pixel L2 distances are meaningful (they are what
//!   the empirical score and the memorisation check are defined in), and
//!   pixels are what `scoresde eval` uses, so the figures agree with it.
//! - **Metrics** in that feature space: Fréchet distance, unbiased KID,
//!   precision / recall (k = 3) and density / coverage (k = 5); in pixels:
//!   the mean nearest-neighbour L2 distance to the whole training split
//!   (floor: held-out images R_s); with the classifier: mean max-probability
//!   and the entropy of the predicted-label histogram.
//! - **Splits.** MNIST: train (10k) and test; digits, emoji and folders: the
//!   even and odd rows (`imaging::eval_sets`). A model trained on the whole
//!   set has seen the odd rows too, so there the floor is a yardstick. The
//!   empirical oracle is built from the training split only.
//!
//! Image models sample with x̂0 clipped to [−1, 1] (as `sample` does, see
//! `ClipX0`); the oracle's x̂0 is a mean of training images and needs none.

use std::path::PathBuf;

use ndarray::{Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;

use super::{check_options, run_cells, Cell, CompareOptions, Setup};
use crate::data::images::ImageSet;
use crate::error::{Error, Result};
use crate::guidance::labels::ScoreSource;
use crate::metrics::image::{classifier_scores, FrechetReference};
use crate::metrics::{self, MeanSe, RealBalls, DC_K, PR_K};
use crate::nn::classifier::Classifier;
use crate::report::Table;
use crate::rng::{self, domain};
use crate::sde::Sde;

use super::image_output as output;

/// Default NFE budgets for images.
pub const DEFAULT_NFE_IMAGE: [usize; 6] = [5, 10, 20, 50, 100, 250];
/// Default images per run: the default digits grid (27 samplers on VP ×
/// 435 NFE × 3 seeds ≈ 35,000 evaluations per image) at 0.125 ms of CPU per
/// 8×8 U-Net evaluation (measured: DDIM over the default budgets, 300
/// images, 3 seeds, 49 s CPU) is about 1,100 s of CPU at 250 images, i.e.
/// about 9 minutes on 2 cores.
pub const DEFAULT_N_IMAGE: usize = 250;
/// Images per thumbnail cell: the first this many of the first seed (the
/// same per-sample seeds in every cell).
pub const THUMB_IMAGES: usize = 4;
/// Nearest-neighbour distances use the first this many images of a set.
pub const NN_SUBSET: usize = 1000;
/// Rows per sampling chunk (output does not depend on it).
const BATCH: usize = 50;

/// Files an image comparison writes.
pub(super) const FILES_IMAGE: [&str; 6] = [
    "results.csv",
    "results.md",
    "quality_vs_nfe.png",
    "quality_vs_time.png",
    "memorisation_vs_nfe.png",
    "thumbnails.png",
];

/// The image set of a comparison and how images are turned into features.
pub struct ImageData {
    /// Data set name (`digits`, `mnist`, … or a folder path).
    pub name: String,
    pub train: ImageSet,
    pub held_out: ImageSet,
    /// The MNIST classifier for `mnist` / `mnist16` (None: pixel features).
    pub classifier: Option<Classifier>,
}

impl ImageData {
    /// The training and held-out splits of `name` (see the module docs) and,
    /// for MNIST, the bundled classifier. A folder is split into even and
    /// odd rows like the digits.
    pub fn load(name: &str, folder: Option<&ImageSet>) -> Result<Self> {
        let (train, held_out) = match folder {
            Some(all) => crate::imaging::split_even_odd(all),
            None => crate::imaging::eval_sets(name)?,
        };
        let classifier = if name == "mnist" || name == "mnist16" {
            let path = crate::data::source::data_dir().join("mnist-classifier.safetensors");
            Some(Classifier::load(&path)?)
        } else {
            None
        };
        Ok(ImageData {
            name: name.to_string(),
            train,
            held_out,
            classifier,
        })
    }

    /// "classifier" or "pixels".
    pub fn feature_space(&self) -> &'static str {
        if self.classifier.is_some() {
            "MNIST-classifier features"
        } else {
            "pixels"
        }
    }

    /// Features of images `x` and, with a classifier, class probabilities.
    fn features(&self, x: ArrayView2<f32>) -> (Array2<f32>, Option<Array2<f64>>) {
        match &self.classifier {
            None => (x.to_owned(), None),
            Some(clf) => {
                let (p, f) = if self.name == "mnist16" {
                    clf.predict(crate::data::images::resample::mnist16_to_28(&x.to_owned()).view())
                } else {
                    clf.predict(x)
                };
                (f, Some(p))
            }
        }
    }
}

/// Metrics of one set of images against one reference draw.
#[derive(Clone, Copy, Debug)]
pub struct ImageQuality {
    pub fd: f64,
    pub kid: f64,
    pub precision: f64,
    pub recall: f64,
    pub density: f64,
    pub coverage: f64,
    /// Mean NN L2 distance to the training split.
    pub nn: f64,
    /// (mean max-probability, label entropy) with a classifier.
    pub labels: Option<(f64, f64)>,
}

/// Mean ± SE over seeds of every [`ImageQuality`] field.
#[derive(Clone, Copy, Debug)]
pub struct ImageSummary {
    pub fd: MeanSe,
    pub kid: MeanSe,
    pub precision: MeanSe,
    pub recall: MeanSe,
    pub density: MeanSe,
    pub coverage: MeanSe,
    pub nn: MeanSe,
    pub labels: Option<[MeanSe; 2]>,
}

fn summarise(qs: &[ImageQuality]) -> ImageSummary {
    let ms = |f: &dyn Fn(&ImageQuality) -> f64| {
        MeanSe::from_samples(&qs.iter().map(f).collect::<Vec<_>>())
    };
    ImageSummary {
        fd: ms(&|q| q.fd),
        kid: ms(&|q| q.kid),
        precision: ms(&|q| q.precision),
        recall: ms(&|q| q.recall),
        density: ms(&|q| q.density),
        coverage: ms(&|q| q.coverage),
        nn: ms(&|q| q.nn),
        labels: qs[0].labels.map(|_| {
            [
                ms(&|q| q.labels.map_or(f64::NAN, |l| l.0)),
                ms(&|q| q.labels.map_or(f64::NAN, |l| l.1)),
            ]
        }),
    }
}

/// One (sampler, budget) cell of an image comparison; its `samples` are
/// the first [`THUMB_IMAGES`] images of the first seed.
pub type ImageCell = Cell<ImageSummary>;

/// What an image comparison produced.
#[derive(Clone, Debug)]
pub struct ImageCompareReport {
    pub out_dir: PathBuf,
    /// Training images against held-out images at the same n; its `nn` is
    /// the held-out images' distance to the training split.
    pub floor: ImageSummary,
    pub cells: Vec<ImageCell>,
    pub skipped_cells: Vec<(String, usize, String)>,
    pub skipped_samplers: Vec<(String, String)>,
    pub table: Table,
}

/// Per-seed reference: held-out draw R_s and what is reused for every cell.
struct Reference {
    features: Array2<f32>,
    frechet: FrechetReference,
    balls: RealBalls,
}

/// `n` distinct row indices of `0..len`, a seeded shuffle's prefix.
fn subset(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    idx.shuffle(&mut rng::stream(seed, domain::DATA, 0));
    idx.truncate(n);
    idx
}

/// Compare samplers driven by `score` under `sde` on the image set `data`;
/// results go to `opts.out/<name>/`. `shape` is the images' (c, h, w).
pub fn run_images(
    score: ScoreSource<'_>,
    sde: &dyn Sde,
    data: &ImageData,
    name: &str,
    label: &str,
    opts: &CompareOptions,
) -> Result<ImageCompareReport> {
    check_options(opts)?;
    let (train, held) = (&data.train, &data.held_out);
    if score.dim() != train.dim() {
        return Err(Error::Mismatch(format!(
            "the score has dimension {} but {} images are {}x{}x{} = {}",
            score.dim(),
            data.name,
            train.channels,
            train.height,
            train.width,
            train.dim()
        )));
    }
    let n = opts.n;
    let most = train.len().min(held.len());
    if n <= DC_K || n > most {
        return Err(Error::invalid(
            "n",
            n,
            format!(
                "{}..={most} for {} (each seed compares n held-out with n training images; \
                 k-NN metrics need more than {DC_K})",
                DC_K + 1,
                data.name
            ),
        ));
    }
    let Setup {
        out_dir,
        budgets,
        plans,
        skipped_samplers,
        _lock,
    } = Setup::new(opts, sde, name, &FILES_IMAGE)?;

    let train_nn = train.pixels.view();
    let draw = |set: &ImageSet, dom, s: usize| -> Array2<f32> {
        let idx = subset(set.len(), n, rng::derive(opts.seed, dom, s as u64));
        set.pixels.select(Axis(0), &idx)
    };
    let held_draws: Vec<Array2<f32>> = (0..opts.seeds)
        .map(|s| draw(held, domain::COMPARE_REFERENCE, s))
        .collect();
    let refs: Vec<Reference> = held_draws
        .iter()
        .map(|x| {
            let (features, _) = data.features(x.view());
            Ok(Reference {
                frechet: FrechetReference::new(features.view()),
                balls: RealBalls::new(features.view(), DC_K)?,
                features,
            })
        })
        .collect::<Result<_>>()?;
    let nn_rows = n.min(NN_SUBSET);
    let evaluate = |x: ArrayView2<f32>, s: usize| -> Result<ImageQuality> {
        let r = &refs[s];
        let (f, probs) = data.features(x);
        let (precision, recall) = metrics::precision_recall(r.features.view(), f.view(), PR_K)?;
        let (density, coverage) =
            metrics::density_coverage_with(r.features.view(), &r.balls, f.view())?;
        Ok(ImageQuality {
            fd: r.frechet.distance(f.view()),
            kid: metrics::kid(f.view(), r.features.view())?,
            precision,
            recall,
            density,
            coverage,
            nn: metrics::nearest::mean_nn_l2(x.slice(ndarray::s![..nn_rows, ..]), train_nn),
            labels: probs.as_ref().map(classifier_scores),
        })
    };
    let floor_q: Vec<ImageQuality> = (0..opts.seeds)
        .map(|s| {
            let mut q = evaluate(draw(train, domain::COMPARE_FLOOR, s).view(), s)?;
            q.nn = metrics::nearest::mean_nn_l2(
                held_draws[s].slice(ndarray::s![..nn_rows, ..]),
                train_nn,
            );
            Ok(q)
        })
        .collect::<Result<_>>()?;
    let floor = summarise(&floor_q);

    let (mut cells, skipped_cells) = run_cells(
        &plans,
        &budgets,
        (sde, score),
        opts,
        Some(BATCH),
        &evaluate,
        summarise,
    )?;
    // Only the first few images are kept, for the thumbnails.
    for c in &mut cells {
        c.samples = c
            .samples
            .slice(ndarray::s![..THUMB_IMAGES.min(n), ..])
            .to_owned();
    }

    let table = output::results_table(&cells, &floor);
    output::results_csv(&cells, &skipped_cells, &floor, &budgets, &plans)
        .write_csv(&out_dir.join("results.csv"))?;
    let md = output::results_markdown(
        label,
        data,
        sde,
        opts,
        &table,
        &skipped_cells,
        &skipped_samplers,
    );
    crate::fsutil::write_atomic(&out_dir.join("results.md"), md.as_bytes())?;
    output::write_figures(&out_dir, label, data, &plans, &budgets, &cells, &floor)?;
    Ok(ImageCompareReport {
        out_dir,
        floor,
        cells,
        skipped_cells,
        skipped_samplers,
        table,
    })
}
