//! Checkpoint directories: format, checksums and the crash-safe save protocol.
//!
//! A checkpoint directory holds
//!
//! - `model.safetensors`: the EMA weights under PyTorch names (MLP:
//!   `nn.Sequential`'s `net.0.weight` …; U-Net: `down.0.res.0.conv1.weight`
//!   …, see [`crate::nn::unet`]), loadable by `safetensors.torch.load_file`;
//!   the config's `net` is the MLP's or the U-Net's shape; metadata
//!   `config` (the [`ModelConfig`] JSON), `step`, `format_version` and
//!   `tensors_fnv1a64` (a checksum of its tensors, see [`tensor_checksum`]).
//! - `train_state.safetensors` (written by training): the raw weights
//!   `params.<name>`, Adam's moments `adam_m.<name>` / `adam_v.<name>` in
//!   the same names and shapes; metadata `step`, `adam_step`, `train` (the
//!   training section of `config.json`) and `tensors_fnv1a64`. With the EMA
//!   weights of `model.safetensors` this is everything a run needs to resume
//!   bit-identically.
//! - `config.json`, written last: the model config, the training config and,
//!   for every other file, its size and the 64-bit FNV-1a hash of its bytes.
//!   It is the commit record of a save.
//! - `prev/`: the complete checkpoint before the latest save.
//!
//! Save protocol ([`save`]): (1) if the directory holds a complete checkpoint
//! (every file matches `config.json`), copy it into a fresh, exclusively
//! created `prev.<pid>.<n>.tmp/`, fsync, and
//! rename that to `prev/` (replacing the older `prev/`); (2) write each data file
//! atomically (`<name>.tmp`, flush, fsync, rename); (3) write `config.json`
//! atomically; (4) fsync the directory. A crash at any point leaves a
//! complete checkpoint either at the top level or in `prev/`: before (3)
//! completes, the top-level files disagree with `config.json`, which
//! [`load`] detects, and `prev/` still holds the last good set. A kill while
//! `prev/` itself is replaced leaves the top level complete. [`load_latest`] (used
//! by `--resume`) falls back to `prev/` when the top level is incomplete.
//!
//! Layout: [`format`] (file names, the manifest, checksums), [`save`] (the
//! protocol above), [`load`] (reading and verifying). The checkpoint layer
//! sits above the model ([`crate::model`]) and below training: it stores a
//! training state through the [`RunState`] trait (its `config.json`
//! section, its tensors) without knowing its type; `crate::train::checkpoint`
//! implements it for the trainer's state.

pub mod classifier;
mod format;
mod load;
mod save;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::fsutil::{fnv1a64, Fnv1a64};
pub use format::{
    existing_checkpoint_file, parse_manifest, read_manifest, read_manifest_as, tensor_checksum,
    FileDigest, Manifest, CONFIG_FILE, MODEL_FILE, PREV_DIR, TRAIN_STATE_FILE,
};
pub use load::{load, load_from_bytes, load_latest, load_model, verify_files};
pub use save::save;

use crate::error::Result;
use crate::model::{ModelConfig, ScoreModel};
use crate::nn::ScoreNet;
use crate::tensors::{NamedTensor, TensorFile, TensorShape};

/// The training section of `config.json` (and the `train` metadata of the
/// state file): parsed strictly (it must round-trip through serde).
pub trait RunConfig: Serialize + DeserializeOwned + PartialEq + Clone + Debug {
    /// The `(channels, height, width)` of the images it trained on, when
    /// only the section records them (a folder of images).
    fn data_shape(&self) -> Option<(usize, usize, usize)>;
}

/// Untyped: the image shape of a recorded folder fingerprint, if any.
impl RunConfig for serde_json::Value {
    fn data_shape(&self) -> Option<(usize, usize, usize)> {
        let fp: crate::data::fingerprint::DataFingerprint =
            serde_json::from_value(self.get("data")?.clone()).ok()?;
        Some((fp.channels, fp.image_size, fp.image_size))
    }
}

/// A state file's tensors (borrowed) and its own metadata.
pub type StateTensors<'a> = (Vec<NamedTensor<&'a [f32]>>, BTreeMap<String, String>);

/// A training state the checkpoint stores beside the EMA model: its
/// `config.json` section and the tensors of `train_state.safetensors`.
pub trait RunState: Sized {
    type Config: RunConfig;
    /// Tensor sets of the network's size the state file holds (bounds the
    /// file size read).
    const PARAM_SETS: u64;
    fn config(&self) -> &Self::Config;
    /// Names and shapes of the state file's tensors for `net`.
    fn tensor_specs(net: &ScoreNet) -> Vec<TensorShape>;
    /// The tensors to write, and metadata beyond `format_version`, `step`,
    /// `train` and `tensors_fnv1a64` (which the checkpoint adds).
    fn to_tensors<'a>(&'a self, net: &ScoreNet) -> Result<StateTensors<'a>>;
    /// The state from a verified file (names, shapes, checksums, finite
    /// values, `train` metadata equal to `config`) at checkpoint `step`;
    /// `path` names errors.
    fn from_tensors(
        config: &Self::Config,
        file: &TensorFile,
        net: &ScoreNet,
        step: u64,
        path: &Path,
    ) -> Result<Self>;
}

/// A loaded checkpoint with its training state of type `S`.
#[derive(Debug)]
pub struct Checkpoint<S> {
    /// The EMA model.
    pub model: ScoreModel,
    /// Present when the checkpoint was written by training.
    pub state: Option<S>,
    /// The directory it was loaded from (`dir` or `dir/prev`).
    pub dir: PathBuf,
}

impl ScoreModel {
    /// Save the model (without training state) into checkpoint directory
    /// `dir` with the crash-safe protocol of [`save`].
    pub fn save(&self, dir: &Path) -> Result<()> {
        save::save_set::<serde_json::Value>(dir, self, None)
    }

    /// Load the model of a checkpoint directory written by
    /// [`ScoreModel::save`] or by training, with the checks of
    /// [`load_model`].
    pub fn load(dir: &Path) -> Result<Self> {
        load_model(dir)
    }
}

/// Read and check `config.json` of a checkpoint directory (not the weights).
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    Ok(read_manifest(dir)?.model_config())
}
