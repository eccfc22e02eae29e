//! The training state a checkpoint carries beyond the EMA weights: the
//! settings a resumed run must share ([`TrainConfig`]) and the raw weights
//! and Adam moments ([`TrainState`]). The trainer fills them;
//! [`super::checkpoint`] maps them to and from a checkpoint's files.

use serde::{Deserialize, Serialize};

/// Training settings a resumed run must share with the run that saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub batch: usize,
    pub lr: f64,
    pub ema_decay: f64,
    pub seed: u64,
    /// For a folder of images: its absolute path, the image size and
    /// channels, and a fingerprint of its files; for a bundled set, its
    /// source files (absent for toy data sets, so their checkpoints are
    /// unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<crate::data::fingerprint::DataFingerprint>,
    /// The recipe beyond the SPEC's (absent for the SPEC recipe, so its
    /// checkpoints are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<super::recipe::Recipe>,
    /// Label dropout of a class-conditional run (absent for unconditional
    /// runs, so their checkpoints are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_dropout: Option<f64>,
}

/// What training needs beyond the EMA weights to continue a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub train: TrainConfig,
    /// Raw (non-averaged) parameters, flat layout.
    pub params: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
    /// Adam's update count (its bias-correction k).
    pub adam_step: u64,
}
