//! A trained noise-conditional classifier p_θ(y | x_t, t): the network
//! ([`NoisyNet`]) bound to the SDE it was trained on, as a
//! [`NoisyClassifier`] for [`super::ClassifierGuidance`].
//!
//! The network sees the input scaled to unit prior variance,
//!
//! ```text
//!   u = c_in(t) x,   c_in(t) = 1 / √(α(t)² + σ(t)²)      (1 for VP; 1/√(1 + σ²) for VE)
//!   ∇_x ln p_θ(y | x, t) = c_in(t) · ∇_u ln p_θ(y | u, t)
//! ```
//!
//! so VE inputs of size σ_max reach it at the scale of the data. It is
//! trained (`crate::train::noisy`) by cross-entropy on x_t = α(t) x₀ + σ(t) ε
//! with t ~ U(t_eps, T) as in DSM training; saved and loaded by
//! [`crate::checkpoint::classifier`].

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use super::NoisyClassifier;
use crate::error::{Error, Result};
use crate::nn::noisy::{NoisyConfig, NoisyNet};
use crate::sde::{Sde, SdeConfig};

/// Format version of a classifier checkpoint.
pub const CLASSIFIER_FORMAT_VERSION: u32 = 1;

/// What a classifier checkpoint records (its `classifier` metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoisyClassifierConfig {
    pub format_version: u32,
    /// The SDE whose noised data it was trained on.
    pub sde: SdeConfig,
    /// The data set's name (as in model checkpoints).
    pub data: String,
    pub net: NoisyConfig,
    /// Training steps taken.
    pub step: u64,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Mean cross-entropy over the last min(steps, 100) steps.
    pub final_loss: f64,
}

/// The classifier network bound to its SDE.
#[derive(Debug)]
pub struct TrainedClassifier {
    pub config: NoisyClassifierConfig,
    pub net: NoisyNet,
    sde: Box<dyn Sde>,
}

impl TrainedClassifier {
    /// Bind `net` to `config` (whose `net` must be `net`'s shape).
    pub fn new(config: NoisyClassifierConfig, net: NoisyNet) -> Result<Self> {
        if net.config() != &config.net {
            return Err(Error::Mismatch(format!(
                "classifier network {:?} differs from the config's {:?}",
                net.config(),
                config.net
            )));
        }
        let sde = config.sde.build()?;
        Ok(TrainedClassifier { config, net, sde })
    }

    /// The SDE it was trained with.
    pub fn sde(&self) -> &dyn Sde {
        self.sde.as_ref()
    }

    /// c_in(t) = 1 / √(α(t)² + σ(t)²).
    pub fn input_scale(sde: &dyn Sde, t: f64) -> f64 {
        let (a, s) = (sde.alpha(t), sde.sigma(t));
        1.0 / (a * a + s * s).sqrt()
    }

    fn scaled(&self, x: ArrayView2<f32>, t: f64) -> (Array2<f32>, f64) {
        let c = Self::input_scale(self.sde(), t);
        (x.mapv(|v| (v as f64 * c) as f32), c)
    }

    /// ln p_θ(k | x_i, t) for every row and class (`[n, K]`).
    pub fn log_probs(&self, x: ArrayView2<f32>, t: f64) -> Array2<f64> {
        let (u, _) = self.scaled(x, t);
        let mut out = Array2::zeros((x.nrows(), self.net.config().classes()));
        self.net
            .log_probs(u.view(), &vec![t; x.nrows()], out.view_mut());
        out
    }
}

impl NoisyClassifier for TrainedClassifier {
    fn input_dim(&self) -> usize {
        self.net.config().input_dim()
    }

    fn label_count(&self) -> usize {
        self.net.config().classes()
    }

    /// c_in(t) ∇_u ln p_θ(y | u, t) at u = c_in(t) x (one forward and one
    /// backward pass of the network).
    fn log_prob_grad(&self, x: ArrayView2<f32>, t: f64, y: usize, mut out: ArrayViewMut2<f32>) {
        let (u, c) = self.scaled(x, t);
        self.net
            .log_prob_grad(u.view(), &vec![t; x.nrows()], y, out.view_mut());
        let c = c as f32;
        out.mapv_inplace(|v| v * c);
    }
}
