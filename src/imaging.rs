//! Image models end to end: writing image samples (PNG grid, `.npy`, GIF of the
//! trajectory) and scoring them ([`evaluate`]).
//!
//! Scores ([`EvalReport`]) of n generated images:
//!
//! - Fréchet distance FD(generated, reference) of features, against the
//!   whole reference set: the MNIST classifier's penultimate layer for
//!   `mnist`/`mnist16` (16×16 rows are brought back to 28×28 by
//!   [`resample::mnist16_to_28`]), raw pixels for other sets. Its floor is
//!   FD(train[..n], reference): real images at the same count n, so both
//!   carry the same finite-sample bias (which grows as n shrinks), with the
//!   training images passed through the same resolution change.
//! - MNIST only: the classifier's mean max-probability, the entropy of the
//!   predicted-label histogram (ln 10 ≈ 2.303 when balanced) and the number
//!   of classes predicted at least once; the same for train[..n].
//! - Mean / min nearest-neighbour L2 from the first min(n, 1000) generated
//!   images to the training set, and the same for held-out images (copies
//!   of training images would sit far below that).
//!
//! Reference and training sets: MNIST test and train(10k); for `digits`
//! and `emoji`, which have no test split, the odd and even rows of the set
//! (so n ≤ the even half). A model trained on the whole set has seen the
//! reference half too, so for these the floor is a yardstick, not a bound.

use std::path::{Path, PathBuf};

use ndarray::{s, Array2, ArrayView2};

use crate::data::images::{self, resample, ColorMode, ImageSet, Split};
use crate::data::source::{data_dir, load_image_set};
use crate::error::{Error, Result};
use crate::metrics::image::{classifier_scores, frechet_distance_features, nearest_neighbor_l2};
use crate::nn::classifier::{argmax, Classifier};
use crate::nn::NetConfig;
use crate::samplers::Trajectory;
use crate::viz::grid::{image_grid_gif, image_grid_png, GridOptions};

/// `(channels, height, width)` of the images a model makes: from the U-Net
/// config, or for an MLP on a named image set from that set's shape
/// (`None` for toy models).
pub fn image_shape_of(cfg: &crate::model::ModelConfig) -> Option<(usize, usize, usize)> {
    match &cfg.net {
        NetConfig::UNet(u) => Some((u.channels, u.height, u.width)),
        NetConfig::Mlp(m) => {
            crate::data::source::bundled_shape(&cfg.data)
                .filter(|&(c, h, w)| c * h * w == m.data_dim)
                .or_else(|| {
                    // A folder of square images: grey if data_dim is a square, else RGB.
                    if crate::data::Toy::from_name(&cfg.data).is_ok() {
                        return None;
                    }
                    [1, 3].into_iter().find_map(|c| {
                        let side = ((m.data_dim / c) as f64).sqrt().round() as usize;
                        (c * side * side == m.data_dim).then_some((c, side, side))
                    })
                })
        }
    }
}

/// Grid layout for showing `c×h×w` images about 48–64 px large.
pub fn grid_options(c: usize, h: usize, w: usize) -> GridOptions {
    let mut g = GridOptions::new(c, h, w);
    g.scale = (64 / h.max(w)).clamp(1, 8);
    g
}

/// Write `samples.npy` (all rows), `samples.png` (the first `grid` rows)
/// and, if a trajectory is given, `reverse.gif` (the grid along it) into
/// `out`; returns the paths written.
pub fn write_image_samples(
    out: &Path,
    samples: ArrayView2<f32>,
    shape: (usize, usize, usize),
    grid: usize,
    trajectory: Option<&Trajectory>,
) -> Result<Vec<PathBuf>> {
    let (c, h, w) = shape;
    let g = grid_options(c, h, w);
    let k = grid.clamp(1, samples.nrows());
    let npy = out.join("samples.npy");
    crate::npy::write(&npy, samples)?;
    let png = out.join("samples.png");
    image_grid_png(&png, samples.slice(s![..k, ..]), &g)?;
    let mut paths = vec![npy, png];
    if let Some(tr) = trajectory {
        let frames: Vec<_> = tr
            .frames
            .iter()
            .map(|f| f.slice(s![..k.min(f.nrows()), ..]))
            .collect();
        let gif = out.join("reverse.gif");
        image_grid_gif(&gif, &frames, &g, 40, 80, 1500)?;
        paths.push(gif);
    }
    Ok(paths)
}

/// Generated images from a `.npy` file (`[n, c·h·w]`, or `[n, c, h, w]`)
/// or a folder of PNG/JPEG files resized to `shape`.
pub fn load_samples(path: &Path, shape: (usize, usize, usize)) -> Result<Array2<f32>> {
    let (c, h, w) = shape;
    let x = if path.is_dir() {
        let mode = if c == 1 {
            ColorMode::Grey
        } else {
            ColorMode::Rgb
        };
        if h != w {
            return Err(Error::invalid(
                "image shape",
                format!("{h}x{w}"),
                "square images",
            ));
        }
        images::load_folder(path, h, mode)?.pixels
    } else {
        let a = crate::npy::read(path)?;
        let shape = a.shape().to_vec();
        let want = format!("[n, {}] or [n, {c}, {h}, {w}]", c * h * w);
        let ok = match shape[..] {
            [_, d] => d == c * h * w,
            [_, s1, s2, s3] => {
                if (s1, s2, s3) != (c, h, w) && (s1, s2, s3) == (h, w, c) {
                    return Err(Error::format(
                        path,
                        format!(
                            "array of shape {shape:?} looks channels-last [n, h, w, c]; expected \
                             channels-first {want} (numpy: x.transpose(0, 3, 1, 2))"
                        ),
                    ));
                }
                (s1, s2, s3) == (c, h, w)
            }
            [_, sh, sw] => c == 1 && (sh, sw) == (h, w),
            _ => false,
        };
        if !ok {
            return Err(Error::format(
                path,
                format!("array of shape {shape:?} is not images of {c}x{h}x{w}: expected {want}"),
            ));
        }
        let (n, d) = (shape[0], c * h * w);
        a.into_shape_with_order((n, d)).map_err(|e| {
            Error::format(
                path,
                format!("cannot view shape {shape:?} as [{n}, {d}]: {e}"),
            )
        })?
    };
    if x.ncols() != c * h * w {
        return Err(Error::Mismatch(format!(
            "{}: rows have {} values, {c}x{h}x{w} images need {}",
            path.display(),
            x.ncols(),
            c * h * w
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(
            path,
            format!(
                "value {} at flat index {i} is not finite",
                x.iter().nth(i).copied().unwrap_or(0.0)
            ),
        ));
    }
    Ok(x)
}

/// Scores of generated images against a data set (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub n: usize,
    /// "classifier" or "pixels".
    pub features: &'static str,
    pub fd: f64,
    pub fd_floor: f64,
    /// (mean max-probability, label entropy, classes present): generated, train.
    pub labels: Option<[(f64, f64, usize); 2]>,
    /// (mean, min) NN L2 to the training set: generated, held-out.
    pub nn: [(f64, f64); 2],
    pub nn_count: usize,
}

/// The training and reference sets used by [`evaluate`] for `data`.
pub fn eval_sets(data: &str) -> Result<(ImageSet, ImageSet)> {
    match data {
        "mnist" | "mnist16" => {
            let (train, test) = (
                load_image_set(data, Split::Train)?,
                load_image_set(data, Split::Test)?,
            );
            let shape = |s: &ImageSet| (s.channels, s.height, s.width);
            if shape(&train) != shape(&test) {
                let ((a, b, c), (d, e, f)) = (shape(&train), shape(&test));
                return Err(Error::Mismatch(format!(
                    "the {data} test split has {d}x{e}x{f} images but the training split {a}x{b}x{c} \
                     (data folder {})",
                    data_dir().join("mnist").display()
                )));
            }
            Ok((train, test))
        }
        _ => {
            let all = if crate::data::source::IMAGE_SETS.contains(&data) {
                load_image_set(data, Split::Train)?
            } else {
                return Err(Error::invalid(
                    "data",
                    data,
                    format!("one of: {}", crate::data::source::IMAGE_SETS.join(", ")),
                ));
            };
            Ok(split_even_odd(&all))
        }
    }
}

/// The even rows (a training split) and the odd rows (a held-out split) of
/// a set: the bundled files are ordered by writer or category, so
/// contiguous halves would differ in distribution.
pub fn split_even_odd(all: &ImageSet) -> (ImageSet, ImageSet) {
    let pick = |parity: usize| {
        let rows: Vec<usize> = (parity..all.len()).step_by(2).collect();
        ImageSet {
            pixels: all.pixels.select(ndarray::Axis(0), &rows),
            labels: all
                .labels
                .as_ref()
                .map(|l| rows.iter().map(|&i| l[i]).collect()),
            ..all.clone()
        }
    };
    (pick(0), pick(1))
}

fn label_stats(clf: &Classifier, x: ArrayView2<f32>) -> (f64, f64, usize) {
    let (p, _) = clf.predict(x);
    let (conf, ent) = classifier_scores(&p);
    let mut seen = [false; 10];
    for r in p.rows() {
        seen[argmax(r.as_slice().expect("contiguous")) % 10] = true;
    }
    (conf, ent, seen.iter().filter(|&&b| b).count())
}

fn nn_stats(x: ArrayView2<f32>, train: ArrayView2<f32>) -> (f64, f64) {
    let d = nearest_neighbor_l2(x, train);
    let mean = d.iter().sum::<f64>() / d.len().max(1) as f64;
    (mean, d.iter().cloned().fold(f64::INFINITY, f64::min))
}

/// Score `samples` (rows in the data set's shape, values in [−1, 1]) against
/// data set `data` (see the module docs). `n = samples.nrows()` must be at
/// least 2 and at most the training set's size (the floor uses n of them).
pub fn evaluate(samples: ArrayView2<f32>, data: &str) -> Result<EvalReport> {
    let (train, reference) = eval_sets(data)?;
    let n = samples.nrows();
    let max = train.len();
    if n < 2 || n > max {
        return Err(Error::invalid(
            "sample count",
            n,
            format!(
                "2..={max} (the floor compares as many training images of {data} as samples, and there are {max})"
            ),
        ));
    }
    if samples.ncols() != train.dim() {
        return Err(Error::Mismatch(format!(
            "samples have {} values per row, {data} images are {}x{}x{} = {}",
            samples.ncols(),
            train.channels,
            train.height,
            train.width,
            train.dim()
        )));
    }
    let train_n = train.pixels.slice(s![..n, ..]);
    let nn_count = n.min(1000);
    let nn = [
        nn_stats(samples.slice(s![..nn_count, ..]), train.pixels.view()),
        nn_stats(
            reference
                .pixels
                .slice(s![..nn_count.min(reference.len()), ..]),
            train.pixels.view(),
        ),
    ];
    if data == "mnist" || data == "mnist16" {
        let clf = Classifier::load(&data_dir().join("mnist-classifier.safetensors"))?;
        let to28 = |x: ArrayView2<f32>| -> Array2<f32> {
            if data == "mnist16" {
                resample::mnist16_to_28(&x.to_owned())
            } else {
                x.to_owned()
            }
        };
        let (gen28, train28) = (to28(samples), to28(train_n));
        let test28 = images::load_mnist_dir(&data_dir().join("mnist"), Split::Test)?;
        // The classifier's input shape must be the images' (a data folder
        // may hold other images than the classifier was trained for).
        let cfg = clf.config();
        let want = (cfg.channels, cfg.height, cfg.width);
        let sets = [
            ("test split", (test28.channels, test28.height, test28.width)),
            ("samples (at 28x28)", (1, 28, gen28.ncols() / 28)),
        ];
        for (what, got) in sets {
            if got != want {
                return Err(Error::Mismatch(format!(
                    "the MNIST classifier takes {}x{}x{} images, the {what} has {}x{}x{}",
                    want.0, want.1, want.2, got.0, got.1, got.2
                )));
            }
        }
        let (_, f_gen) = clf.predict(gen28.view());
        let (_, f_train) = clf.predict(train28.view());
        let (_, f_test) = clf.predict(test28.pixels.view());
        Ok(EvalReport {
            n,
            features: "classifier",
            fd: frechet_distance_features(f_gen.view(), f_test.view()),
            fd_floor: frechet_distance_features(f_train.view(), f_test.view()),
            labels: Some([
                label_stats(&clf, gen28.view()),
                label_stats(&clf, train28.view()),
            ]),
            nn,
            nn_count,
        })
    } else {
        let reference = reference.pixels.view();
        Ok(EvalReport {
            n,
            features: "pixels",
            fd: frechet_distance_features(samples, reference),
            fd_floor: frechet_distance_features(train_n, reference),
            labels: None,
            nn,
            nn_count,
        })
    }
}

impl EvalReport {
    /// A Markdown table of the scores with their floors.
    pub fn to_markdown(&self, data: &str) -> String {
        let mut s = format!(
            "| metric ({n} images, {data}) | generated | floor ({n} training images) |\n|---|---|---|\n",
            n = self.n
        );
        s += &format!(
            "| Fréchet distance ({} features) | {:.4} | {:.4} |\n",
            self.features, self.fd, self.fd_floor
        );
        if let Some([g, t]) = self.labels {
            s += &format!(
                "| classifier mean max-probability | {:.4} | {:.4} |\n",
                g.0, t.0
            );
            s += &format!(
                "| label-histogram entropy (nats, ln 10 = 2.303) | {:.4} | {:.4} |\n",
                g.1, t.1
            );
            s += &format!("| classes present | {} | {} |\n", g.2, t.2);
        }
        s += &format!(
            "| NN L2 to train, mean / min (first {}) | {:.3} / {:.3} | {:.3} / {:.3} (held-out) |\n",
            self.nn_count, self.nn[0].0, self.nn[0].1, self.nn[1].0, self.nn[1].1
        );
        s
    }
}
