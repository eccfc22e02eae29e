//! Training the noise-conditional classifier p_θ(y | x_t, t) of classifier
//! guidance ([`crate::guidance::TrainedClassifier`]) by cross-entropy on
//! noised labelled data. Step k:
//!
//! ```text
//!   x₀, y  ← B points of the data and their labels        data seed derive(seed, TRAIN_DATA, k)
//!   t ~ U(t_eps, T),  ε ~ N(0, I)                          stream (seed, TRAIN, k), row by row
//!   x_t = α(t) x₀ + σ(t) ε,   u = c_in(t) x_t
//!   L = mean_i −ln p_θ(y_i | u_i, t_i)                     Adam on ∂L/∂θ
//! ```
//!
//! the same data draws, time density and noise as DSM training
//! ([`super::Trainer`]), so the classifier sees the x_t the sampler visits.
//! The learning rate is halved for the last quarter of the steps. A run is
//! a function of its options: the same seed gives the same bytes for any
//! thread count.

use ndarray::Array2;

use crate::data::TrainData;
use crate::error::{Error, Result};
use crate::guidance::trained::{
    NoisyClassifierConfig, TrainedClassifier, CLASSIFIER_FORMAT_VERSION,
};
use crate::nn::graph::GraphCache;
use crate::nn::noisy::{NoisyConfig, NoisyNet};
use crate::nn::Adam;
use crate::rng;
use crate::sde::SdeConfig;

/// Options of [`train_noisy_classifier`].
#[derive(Clone, Debug)]
pub struct NoisyTraining {
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for NoisyTraining {
    fn default() -> Self {
        NoisyTraining {
            steps: 2000,
            batch: 256,
            lr: 2e-3,
            seed: 0,
        }
    }
}

/// Largest step count and batch accepted.
const MAX_STEPS: u64 = 10_000_000;
const MAX_BATCH: usize = 65_536;

impl NoisyTraining {
    /// Check every option.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return Err(Error::invalid(
                "steps",
                self.steps,
                format!("1..={MAX_STEPS}"),
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(Error::invalid(
                "batch",
                self.batch,
                format!("1..={MAX_BATCH}"),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return Err(Error::invalid("lr", self.lr, "a number in (0, 1]"));
        }
        Ok(())
    }
}

/// The classifier shape for `data`: the MLP for points, the CNN for
/// images, with `data`'s class count. Errors for unlabelled data.
pub fn default_config(data: &TrainData) -> Result<NoisyConfig> {
    let classes = data.n_classes().ok_or_else(|| {
        Error::invalid(
            "data",
            data.name(),
            "a labelled set for a classifier (8gaussians, 25gaussians, checkerboard, digits, mnist, mnist16, emoji)",
        )
    })?;
    Ok(match data.image_shape() {
        None => NoisyConfig::mlp(data.dim(), classes),
        Some((c, h, w)) => NoisyConfig::cnn(c, h, w, classes),
    })
}

/// Train a classifier of shape `net` on `data` noised by `sde` (see the
/// module docs). `log` receives (step, loss) after every step.
pub fn train_noisy_classifier(
    data: &TrainData,
    sde: SdeConfig,
    net: NoisyConfig,
    opts: &NoisyTraining,
    mut log: impl FnMut(u64, f64),
) -> Result<TrainedClassifier> {
    opts.validate()?;
    net.validate()?;
    let classes = default_config(data)?.classes();
    if net.classes() != classes || net.input_dim() != data.dim() {
        return Err(Error::Mismatch(format!(
            "classifier for {} inputs and {} classes, but {} has {} values per point and {classes} classes",
            net.input_dim(),
            net.classes(),
            data.name(),
            data.dim()
        )));
    }
    let process = sde.build()?;
    let mut model = NoisyNet::new(net.clone(), opts.seed)?;
    let mut adam = Adam::new(opts.lr, model.num_params());
    let mut grads = vec![0.0f32; model.num_params()];
    let mut cache = GraphCache::default();
    let (b, d) = (opts.batch, data.dim());
    let mut u = Array2::<f32>::zeros((b, d));
    let mut t = vec![0.0f64; b];
    let mut eps = vec![0.0f32; d];
    let mut recent = std::collections::VecDeque::with_capacity(100);
    let (t_eps, t_max) = (process.t_eps(), process.t_max());
    for k in 0..opts.steps {
        if k == opts.steps - opts.steps / 4 {
            adam.lr *= 0.5;
        }
        let data_seed = rng::derive(opts.seed, rng::domain::TRAIN_DATA, k);
        let x0 = data.sample(b, data_seed);
        let labels = data
            .labels(&x0, data_seed)
            .expect("default_config checked that the data is labelled");
        let mut r = rng::stream(opts.seed, rng::domain::TRAIN, k);
        for i in 0..b {
            use rand::RngExt;
            let ti = t_eps + (t_max - t_eps) * r.random::<f64>();
            rng::fill_normal(&mut r, &mut eps);
            let (a, s) = (process.alpha(ti), process.sigma(ti));
            let c = TrainedClassifier::input_scale(process.as_ref(), ti);
            for (j, o) in u.row_mut(i).iter_mut().enumerate() {
                *o = ((a * x0[[i, j]] as f64 + s * eps[j] as f64) * c) as f32;
            }
            t[i] = ti;
        }
        let loss = model.loss_and_grad(u.view(), &t, &labels, &mut cache, &mut grads);
        if !loss.is_finite() || grads.iter().any(|g| !g.is_finite()) {
            return Err(Error::NonFinite {
                step: k + 1,
                what: format!("classifier loss ({loss}) or gradient"),
                hint: "nothing was saved; lower --lr".into(),
            });
        }
        adam.update(model.params_mut(), &grads);
        if recent.len() == 100 {
            recent.pop_front();
        }
        recent.push_back(loss);
        log(k, loss);
    }
    let final_loss = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
    let config = NoisyClassifierConfig {
        format_version: CLASSIFIER_FORMAT_VERSION,
        sde,
        data: data.name().to_string(),
        net,
        step: opts.steps,
        batch: opts.batch,
        lr: opts.lr,
        seed: opts.seed,
        final_loss,
    };
    TrainedClassifier::new(config, model)
}
