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
//!   [`TrainConfig`] JSON) and `tensors_fnv1a64`. With the EMA weights of
//!   `model.safetensors` this is everything a run needs to resume
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
//! sits above the model ([`crate::model`]) and the training-state types
//! ([`crate::train::state`]); neither imports it.

mod format;
mod load;
mod save;

use std::path::{Path, PathBuf};

pub use crate::fsutil::{fnv1a64, Fnv1a64};
pub use crate::tensors::encode_safetensors;
pub use crate::train::state::{TrainConfig, TrainState};
pub use format::{
    existing_checkpoint_file, parse_manifest, read_manifest, tensor_checksum, FileDigest, Manifest,
    CONFIG_FILE, MODEL_FILE, PREV_DIR, TRAIN_STATE_FILE,
};
pub use load::{load, load_from_bytes, load_latest, verify_files};
pub use save::save;

use crate::error::Result;
use crate::model::{ModelConfig, ScoreModel};

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The EMA model.
    pub model: ScoreModel,
    /// Present when the checkpoint was written by training.
    pub state: Option<TrainState>,
    /// The directory it was loaded from (`dir` or `dir/prev`).
    pub dir: PathBuf,
}

impl ScoreModel {
    /// Save the model (without training state) into checkpoint directory
    /// `dir` with the crash-safe protocol of [`save`].
    pub fn save(&self, dir: &Path) -> Result<()> {
        save(dir, self, None)
    }

    /// Load a checkpoint directory written by [`ScoreModel::save`] or by
    /// training, with every check of [`load`].
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(load(dir)?.model)
    }
}

/// Read and check `config.json` of a checkpoint directory (not the weights).
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    Ok(read_manifest(dir)?.model_config())
}
