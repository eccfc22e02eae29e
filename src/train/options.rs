//! The options of a training run ([`TrainOptions`]): what it trains, for
//! how long, where it saves, and their checks before any work starts.

use std::path::PathBuf;

use super::{Recipe, TrainConfig};
use crate::data::{Toy, TrainData};
use crate::error::{Error, Result};
use crate::nn::{MlpConfig, NetConfig};
use crate::sde::SdeConfig;

/// Everything a training run needs.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub data: TrainData,
    pub sde: SdeConfig,
    pub net: NetConfig,
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    pub ema_decay: f64,
    pub seed: u64,
    /// Checkpoint directory (EMA weights + config), written every
    /// `checkpoint_every` steps and at the end.
    pub out_dir: Option<PathBuf>,
    pub checkpoint_every: u64,
    /// Without an observer of its own ([`run_with`]): print a line with
    /// step, loss and it/s to stderr every 5% of the run.
    pub progress: bool,
    /// What to do when the loss or a gradient is NaN or Inf.
    pub on_nonfinite: OnNonFinite,
    /// For image data with an `out_dir`: every this many steps (0 = never)
    /// write `out_dir/samples/step_NNNNNNN.png`, a grid of
    /// [`PREVIEW_IMAGES`] EMA samples ([`PREVIEW_SAMPLER`], fixed seed).
    pub sample_every: u64,
    /// Target, schedules and augmentation ([`Recipe::default`]: the SPEC's).
    pub recipe: Recipe,
    /// For a class-conditional network: the probability that a label is
    /// replaced by ∅ (default [`DEFAULT_LABEL_DROPOUT`]); unused otherwise.
    pub label_dropout: f64,
}

/// Label dropout of a conditional run that sets none.
pub const DEFAULT_LABEL_DROPOUT: f64 = 0.1;

/// Steps between checkpoints of a run that sets no interval.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1_000;

/// Images in a training preview grid.
pub const PREVIEW_IMAGES: usize = 64;
/// Sampler spec and step count of the training previews.
pub const PREVIEW_SAMPLER: (&str, usize) = ("ddpm", 100);

/// Policy for a non-finite loss or gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnNonFinite {
    /// Stop with an error naming the step; checkpoints on disk stay as they were.
    #[default]
    Stop,
    /// Leave the weights, Adam and EMA untouched for that step, count it, go on.
    Skip,
}

impl OnNonFinite {
    /// `stop` or `skip`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "stop" => Ok(OnNonFinite::Stop),
            "skip" => Ok(OnNonFinite::Skip),
            other => Err(Error::invalid("on-nonfinite", other, "one of: stop, skip")),
        }
    }
}

impl TrainOptions {
    /// docs/SPEC.md's recipe on `data`: VP SDE, 3x256 MLP, batch 512, Adam 1e-3,
    /// EMA 0.999, 20,000 steps, seed 0, a checkpoint every
    /// [`DEFAULT_CHECKPOINT_EVERY`] steps. These are the defaults of every
    /// setting a run leaves unset (`app::options::resolve_train`).
    pub fn spec(data: Toy) -> Self {
        TrainOptions {
            data: TrainData::Toy(data),
            sde: SdeConfig::by_name("vp").expect("vp is a valid SDE name"),
            net: MlpConfig::new(2).into(),
            steps: 20_000,
            batch: 512,
            lr: 1e-3,
            ema_decay: 0.999,
            seed: 0,
            out_dir: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            progress: false,
            on_nonfinite: OnNonFinite::Stop,
            sample_every: 0,
            recipe: Recipe::default(),
            label_dropout: DEFAULT_LABEL_DROPOUT,
        }
    }

    /// Reject invalid settings before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > crate::limits::MAX_TRAIN_STEPS {
            return Err(Error::invalid(
                "steps",
                self.steps,
                format!(
                    "an integer >= 1 and <= {} (the total training steps)",
                    crate::limits::MAX_TRAIN_STEPS
                ),
            ));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", self.batch, "an integer >= 1"));
        }
        crate::limits::check_cap(
            "batch",
            self.batch,
            crate::limits::MAX_BATCH,
            "the largest training batch",
        )?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid("lr", self.lr, "a finite number > 0"));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(Error::invalid("ema", self.ema_decay, "0 <= ema < 1"));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::invalid("checkpoint-every", 0, "an integer >= 1"));
        }
        self.net.validate()?;
        if self.net.data_dim() != self.data.dim() {
            return Err(Error::Mismatch(format!(
                "the {} network takes {} values per point, data set {} has {}",
                self.net.kind(),
                self.net.data_dim(),
                self.data.name(),
                self.data.dim()
            )));
        }
        if let (NetConfig::UNet(u), Some(shape)) = (&self.net, self.data.image_shape()) {
            if (u.channels, u.height, u.width) != shape {
                return Err(Error::Mismatch(format!(
                    "the U-Net is for {}x{}x{} images, data set {} has {}x{}x{}",
                    u.channels,
                    u.height,
                    u.width,
                    self.data.name(),
                    shape.0,
                    shape.1,
                    shape.2
                )));
            }
        }
        let classes = self.net.n_classes();
        if classes > 0 {
            match self.data.n_classes() {
                Some(k) if k == classes => {}
                Some(k) => {
                    return Err(Error::Mismatch(format!(
                        "the network has {classes} classes, data set {} has {k}",
                        self.data.name()
                    )))
                }
                None => {
                    return Err(Error::invalid(
                        "data set",
                        self.data.name(),
                        "a labelled set for a class-conditional network (mnist, mnist16, \
                         digits, checkerboard, 8gaussians, 25gaussians)",
                    ))
                }
            }
            if !(0.0..1.0).contains(&self.label_dropout) {
                return Err(Error::invalid(
                    "label-dropout",
                    self.label_dropout,
                    "0 <= p < 1 (the probability a label is replaced by the null label)",
                ));
            }
        }
        self.sde.build()?;
        self.recipe.validate()?;
        if self.recipe.flip && self.data.image_shape().is_none() {
            return Err(Error::invalid(
                "flip",
                "true",
                format!(
                    "no flips: they are for image data, and {} is 2-D",
                    self.data.name()
                ),
            ));
        }
        // Batch buffers and activations, estimated per point (see
        // `activation_floats`), before any of them is allocated.
        // Parameters: weights, gradients, Adam's two moments, the EMA and
        // the copies a checkpoint save makes (8 sets).
        let per_point = activation_floats(&self.net) as f64;
        let params = self.net.num_params().unwrap_or(usize::MAX) as f64;
        crate::limits::check_memory(
            "batch",
            self.batch,
            4.0 * (self.batch as f64 * per_point + 8.0 * params),
            "training buffers and the network's parameters",
        )
    }

    /// The settings a resumed run must share with the saved one.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            batch: self.batch,
            lr: self.lr,
            ema_decay: self.ema_decay,
            seed: self.seed,
            data: self.data.fingerprint().cloned(),
            recipe: (!self.recipe.is_spec()).then(|| self.recipe.clone()),
            label_dropout: (self.net.n_classes() > 0).then_some(self.label_dropout),
        }
    }
}

/// A generous estimate of the f32 values training keeps per batch point:
/// inputs, targets and gradients, plus every layer's cached activations.
fn activation_floats(net: &NetConfig) -> usize {
    match net {
        NetConfig::Mlp(m) => {
            8 * m.data_dim + 4 * m.hidden.saturating_mul(m.depth + 1) + 4 * m.emb_dim
        }
        NetConfig::UNet(u) => {
            let pixels = u.height.saturating_mul(u.width);
            let widths: usize = u.widths.iter().sum();
            8 * u.channels * pixels
                + 12usize
                    .saturating_mul(pixels)
                    .saturating_mul(widths)
                    .saturating_mul(u.res_blocks + 1)
        }
    }
}
