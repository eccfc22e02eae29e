//! Training and evaluating the image classifier
//! ([`crate::nn::classifier::Classifier`]) on an [`ImageSet`]: the data
//! side of the classifier, kept out of `nn` (which knows no data sets).

use ndarray::Array2;

use crate::data::images::ImageSet;
use crate::error::{Error, Result};
use crate::nn::classifier::{argmax, Classifier, ClassifierConfig};
use crate::nn::graph::GraphCache;
use crate::nn::{Adam, Network};

impl Classifier {
    /// Fraction of rows whose arg-max class equals the label.
    pub fn accuracy(&self, set: &ImageSet) -> Result<f64> {
        let labels = set
            .labels
            .as_ref()
            .ok_or_else(|| Error::Mismatch("accuracy needs a labelled set".into()))?;
        let (p, _) = self.predict(set.pixels.view());
        let correct = p
            .rows()
            .into_iter()
            .zip(labels)
            .filter(|(r, &y)| argmax(r.as_slice().unwrap()) == y as usize)
            .count();
        Ok(correct as f64 / labels.len().max(1) as f64)
    }
}

/// Options of [`train_classifier`].
#[derive(Clone, Debug)]
pub struct ClassifierTraining {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Random translation augmentation: each training image is shifted by
    /// (dy, dx) ∈ [−shift, shift]² (drawn from the epoch's stream), the
    /// uncovered border filled with the image's corner value (background).
    pub shift: usize,
}

impl Default for ClassifierTraining {
    fn default() -> Self {
        ClassifierTraining {
            epochs: 8,
            batch: 64,
            lr: 2e-3,
            seed: 0,
            shift: 2,
        }
    }
}

/// Train a classifier on a labelled set with Adam (learning rate halved
/// for the last quarter of epochs); epoch e visits the images in a
/// permutation drawn from stream `(seed, TRAIN, e)`. `log` receives
/// (epoch, mean loss) after each epoch.
pub fn train_classifier(
    set: &ImageSet,
    cfg: ClassifierConfig,
    opts: &ClassifierTraining,
    mut log: impl FnMut(usize, f64),
) -> Result<Classifier> {
    use rand::RngExt;
    let labels = set
        .labels
        .as_ref()
        .ok_or_else(|| Error::Mismatch("training a classifier needs labels".into()))?;
    if opts.batch == 0 || opts.epochs == 0 {
        return Err(Error::invalid(
            "batch/epochs",
            format!("{}/{}", opts.batch, opts.epochs),
            "both >= 1",
        ));
    }
    let mut net = Classifier::new(cfg, opts.seed)?;
    let mut adam = Adam::new(opts.lr, net.num_params());
    let mut grads = vec![0.0; net.num_params()];
    let mut cache = GraphCache::default();
    let n = set.len();
    let d = set.dim();
    for e in 0..opts.epochs {
        if e == opts.epochs - opts.epochs / 4 {
            adam.lr *= 0.5;
        }
        let mut r = crate::rng::stream(opts.seed, crate::rng::domain::TRAIN, e as u64);
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = r.random_range(0..=i);
            perm.swap(i, j);
        }
        let (mut sum, mut cnt) = (0.0, 0);
        for chunk in perm.chunks(opts.batch) {
            let mut xb = Array2::zeros((chunk.len(), d));
            let mut yb = Vec::with_capacity(chunk.len());
            for (k, &i) in chunk.iter().enumerate() {
                let src = set.pixels.row(i);
                let s = opts.shift as i64;
                let (dy, dx) = if s > 0 {
                    (r.random_range(-s..=s), r.random_range(-s..=s))
                } else {
                    (0, 0)
                };
                let (h, w) = (set.height as i64, set.width as i64);
                let hw = (h * w) as usize;
                let mut dst = xb.row_mut(k);
                for ch in 0..set.channels {
                    let bg = src[ch * hw];
                    for y in 0..h {
                        for x in 0..w {
                            let (sy, sx) = (y - dy, x - dx);
                            let v = if sy >= 0 && sy < h && sx >= 0 && sx < w {
                                src[ch * hw + (sy * w + sx) as usize]
                            } else {
                                bg
                            };
                            dst[ch * hw + (y * w + x) as usize] = v;
                        }
                    }
                }
                yb.push(labels[i]);
            }
            sum += net.loss_and_grad(xb.view(), &yb, &mut cache, &mut grads);
            cnt += 1;
            adam.update(net.params_mut(), &grads);
        }
        log(e, sum / cnt as f64);
    }
    Ok(net)
}
