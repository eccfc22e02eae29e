//! Where training batches come from: a 2-D toy distribution (fresh points
//! every step) or a fixed set of images (a batch of indices every step).
//!
//! Batch of step k: [`TrainData::sample`]`(b, data_seed)` with the trainer's
//! per-step `data_seed`; for images, row i is image
//! `U{0..n−1}` drawn from `rng::stream(data_seed, DATA, i)` (with
//! replacement), so a batch is a function of the seed and the step alone and
//! a resumed run draws the same batches as one that never stopped.
//!
//! Named image sets ([`TrainData::by_name`]), from the bundled `data/`
//! directory ([`data_dir`]):
//!
//! | name | images | shape |
//! |---|---|---|
//! | `mnist` | MNIST train 10k | 1×28×28 |
//! | `mnist16` | the same, padded to 32 and 2×2-averaged | 1×16×16 |
//! | `digits` | UCI digits, 1,797 | 1×8×8 |
//! | `emoji` | Noto emoji over white, 3,786, labelled by category (`emoji.json.gz`) | 3×16×16 |
//! | any folder | PNG/JPEG files resized | c×N×N |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;
use rand::RngExt;

use super::fingerprint::DataFingerprint;
use super::images::{self, ColorMode, ImageSet, Split};
use super::Toy;
use crate::error::{Error, Result};
use crate::rng;

/// Names of the bundled image sets.
pub const IMAGE_SETS: [&str; 4] = ["mnist", "mnist16", "digits", "emoji"];

/// A named image set (shared, so cloning options is cheap).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedImages {
    /// `mnist`, `mnist16`, `digits`, `emoji`, or the folder's path.
    pub name: String,
    pub set: ImageSet,
    /// For a folder or bundled set: what identifies its contents (stored
    /// in checkpoints).
    pub fingerprint: Option<DataFingerprint>,
}

/// `(channels, height, width)` of a bundled image set.
pub fn bundled_shape(name: &str) -> Option<(usize, usize, usize)> {
    match name {
        "digits" => Some((1, 8, 8)),
        "mnist16" => Some((1, 16, 16)),
        "mnist" => Some((1, 28, 28)),
        "emoji" => Some((3, 16, 16)),
        _ => None,
    }
}

/// Training data: toy points or images.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainData {
    Toy(Toy),
    Images(Arc<NamedImages>),
}

impl From<Toy> for TrainData {
    fn from(t: Toy) -> Self {
        TrainData::Toy(t)
    }
}

/// The bundled data directory: `$SCORESDE_DATA`, else `./data` if it holds
/// `README.md`, else the crate's own `data/`.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SCORESDE_DATA") {
        return PathBuf::from(d);
    }
    let local = Path::new("data");
    if local.join("README.md").exists() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Every valid name, for error messages.
fn valid_names() -> String {
    let toys: Vec<&str> = Toy::ALL.iter().map(|t| t.name()).collect();
    format!(
        "one of: {}, {}, or a folder of PNG/JPEG images (with an image size N and 1 or 3 channels)",
        IMAGE_SETS.join(", "),
        toys.join(", ")
    )
}

/// Load a bundled image set (`split` Test only exists for MNIST).
pub fn load_image_set(name: &str, split: Split) -> Result<ImageSet> {
    let dir = data_dir();
    match name {
        "mnist" => images::load_mnist_dir(&dir.join("mnist"), split),
        "mnist16" => {
            images::resample::mnist_to_16(&images::load_mnist_dir(&dir.join("mnist"), split)?)
        }
        "digits" => images::load_digits_csv(&dir.join("digits/digits.csv.gz")),
        "emoji" => images::load_emoji_sheet_labelled(
            &dir.join("emoji/noto-emoji-16.png"),
            &dir.join("emoji/emoji.json.gz"),
        ),
        other => Err(Error::invalid("data set", other, valid_names())),
    }
}

/// The files a bundled set's training split is read from.
fn bundled_files(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    Ok(match name {
        "mnist" | "mnist16" => {
            let (i, l) = images::find_idx_pair(&dir.join("mnist"), Split::Train)?;
            vec![i, l]
        }
        "digits" => vec![dir.join("digits/digits.csv.gz")],
        "emoji" => vec![dir.join("emoji/noto-emoji-16.png")],
        other => return Err(Error::invalid("data set", other, valid_names())),
    })
}

impl TrainData {
    /// A toy name, a bundled image set, or a folder (`image_size` pixels a
    /// side, `channels` 1 or 3, default 16 and 3). Unknown names list the
    /// valid ones.
    /// `--image-size` / `--channels` only apply to folders: given with a toy
    /// or bundled set, they are refused rather than ignored.
    pub fn by_name(name: &str, image_size: Option<usize>, channels: Option<usize>) -> Result<Self> {
        let is_folder = Toy::from_name(name).is_err()
            && !IMAGE_SETS.contains(&name)
            && Path::new(name).is_dir();
        if !is_folder {
            if let Some((flag, v)) = image_size
                .map(|v| ("image-size", v))
                .or(channels.map(|v| ("channels", v)))
            {
                return Err(Error::invalid(
                    flag,
                    v,
                    format!("no {flag}: it applies to folders of images, and {name} is not one"),
                ));
            }
        }
        if let Ok(t) = Toy::from_name(name) {
            return Ok(TrainData::Toy(t));
        }
        let (set, fingerprint) = if IMAGE_SETS.contains(&name) {
            let set = load_image_set(name, Split::Train)?;
            let dir = data_dir();
            let files = bundled_files(&dir, name)?;
            let shape = (set.channels, set.height, set.width);
            let fp = DataFingerprint::of_bundled(name, &dir, &files, shape)?;
            (set, Some(fp))
        } else if is_folder {
            let size = image_size.unwrap_or(16);
            if !(1..=256).contains(&size) {
                return Err(Error::invalid("image-size", size, "1..=256"));
            }
            let c = channels.unwrap_or(3);
            let mode = match c {
                1 => ColorMode::Grey,
                3 => ColorMode::Rgb,
                c => return Err(Error::invalid("channels", c, "1 or 3")),
            };
            let fp = DataFingerprint::of_folder(Path::new(name), size, c)?;
            (images::load_folder(Path::new(name), size, mode)?, Some(fp))
        } else {
            return Err(Error::invalid("data set", name, valid_names()));
        };
        if set.is_empty() {
            return Err(Error::invalid(
                "data set",
                name,
                "a set with at least one image",
            ));
        }
        Ok(TrainData::Images(Arc::new(NamedImages {
            name: name.to_string(),
            set,
            fingerprint,
        })))
    }

    /// The folder a checkpoint's fingerprint names, loaded from its absolute
    /// path with its recorded size and channels; `name` is the name stored
    /// in the checkpoint. The caller compares [`TrainData::fingerprint`]
    /// with the saved one.
    pub fn from_fingerprint(name: &str, fp: &DataFingerprint) -> Result<Self> {
        let dir = fp.dir();
        if !dir.is_dir() {
            return Err(Error::Mismatch(format!(
                "the training folder {} of this run is gone (it is not a directory any more)",
                dir.display()
            )));
        }
        let mode = match fp.channels {
            1 => ColorMode::Grey,
            3 => ColorMode::Rgb,
            c => return Err(Error::invalid("channels", c, "1 or 3")),
        };
        let now = DataFingerprint::of_folder(&dir, fp.image_size, fp.channels)?;
        let set = images::load_folder(&dir, fp.image_size, mode)?;
        Ok(TrainData::Images(Arc::new(NamedImages {
            name: name.to_string(),
            set,
            fingerprint: Some(now),
        })))
    }

    /// What identifies a folder's or bundled set's contents (`None` for toys).
    pub fn fingerprint(&self) -> Option<&DataFingerprint> {
        match self {
            TrainData::Images(i) => i.fingerprint.as_ref(),
            TrainData::Toy(_) => None,
        }
    }

    /// The name stored in checkpoints.
    pub fn name(&self) -> &str {
        match self {
            TrainData::Toy(t) => t.name(),
            TrainData::Images(i) => &i.name,
        }
    }

    /// Values per data point.
    pub fn dim(&self) -> usize {
        match self {
            TrainData::Toy(_) => 2,
            TrainData::Images(i) => i.set.dim(),
        }
    }

    /// `(channels, height, width)` for images.
    pub fn image_shape(&self) -> Option<(usize, usize, usize)> {
        match self {
            TrainData::Toy(_) => None,
            TrainData::Images(i) => Some((i.set.channels, i.set.height, i.set.width)),
        }
    }

    /// The toy distribution, if this is one.
    pub fn toy(&self) -> Option<Toy> {
        match self {
            TrainData::Toy(t) => Some(*t),
            TrainData::Images(_) => None,
        }
    }

    /// Classes of the labels [`TrainData::labels`] gives: the digit of
    /// MNIST and digits (10), the emoji's category (10, in
    /// [`images::emoji::CATEGORIES`] order), the component of 8 and 25 Gaussians, the
    /// square of the checkerboard (8, in `oracle::checkerboard::squares`
    /// order); `None` for unlabelled data.
    pub fn n_classes(&self) -> Option<usize> {
        match self {
            TrainData::Toy(Toy::Checkerboard) => Some(8),
            TrainData::Toy(t) => t.mixture().map(|m| m.n_modes()),
            TrainData::Images(i) => i
                .set
                .labels
                .as_ref()
                .map(|l| l.iter().map(|&y| y as usize + 1).max().unwrap_or(0)),
        }
    }

    /// The weight of each class of [`TrainData::labels`] in the data: the
    /// label counts of an image set, the mixture weights of 8 and 25
    /// Gaussians, equal for the checkerboard's squares; `None` for
    /// unlabelled data.
    pub fn class_weights(&self) -> Option<Vec<f64>> {
        match self {
            TrainData::Toy(Toy::Checkerboard) => Some(vec![1.0; 8]),
            TrainData::Toy(t) => t.mixture().map(|m| m.weights.clone()),
            TrainData::Images(i) => {
                let labels = i.set.labels.as_ref()?;
                let n = self.n_classes()?;
                let mut w = vec![0.0; n];
                for &y in labels {
                    w[y as usize] += 1.0;
                }
                Some(w)
            }
        }
    }

    /// The class of each point of [`TrainData::sample`]`(b, seed)` (see
    /// [`TrainData::n_classes`]); `None` for unlabelled data. Recomputed
    /// from the same streams (images, mixtures) or from the points
    /// (`x`, the checkerboard's square), so `sample` is unchanged.
    pub fn labels(&self, x: &Array2<f32>, seed: u64) -> Option<Vec<u32>> {
        match self {
            TrainData::Toy(Toy::Checkerboard) => {
                // Squares (i, j) ∈ [−2, 2)² with i + j even, i major (the
                // oracle's `squares()` order): index = 2(i + 2) + ⌊(j + 2)/2⌋.
                Some(
                    x.rows()
                        .into_iter()
                        .map(|p| {
                            let cell = |v: f32| ((v as f64 / 2.0).floor() as i64).clamp(-2, 1);
                            let (i, j) = (cell(p[0]), cell(p[1]));
                            (2 * (i + 2) + (j + 2) / 2) as u32
                        })
                        .collect(),
                )
            }
            TrainData::Toy(t) => {
                let m = t.mixture()?;
                Some(
                    (0..x.nrows())
                        .map(|i| m.component_of(seed, i) as u32)
                        .collect(),
                )
            }
            TrainData::Images(i) => {
                let labels = i.set.labels.as_ref()?;
                let n = i.set.len();
                Some(
                    (0..x.nrows())
                        .map(|k| {
                            let mut r = rng::stream(seed, rng::domain::DATA, k as u64);
                            labels[r.random_range(0..n)] as u32
                        })
                        .collect(),
                )
            }
        }
    }

    /// `b` training points for `seed` (see the module docs).
    pub fn sample(&self, b: usize, seed: u64) -> Array2<f32> {
        match self {
            TrainData::Toy(t) => t.sample(b, seed),
            TrainData::Images(i) => {
                let n = i.set.len();
                let mut out = Array2::zeros((b, i.set.dim()));
                for (k, mut row) in out.rows_mut().into_iter().enumerate() {
                    let mut r = rng::stream(seed, rng::domain::DATA, k as u64);
                    row.assign(&i.set.pixels.row(r.random_range(0..n)));
                }
                out
            }
        }
    }
}
