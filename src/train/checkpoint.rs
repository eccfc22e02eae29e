//! The trainer's side of a checkpoint: [`TrainState`] ↔ the tensors of
//! `train_state.safetensors` (`params.<name>`, `adam_m.<name>`,
//! `adam_v.<name>` in the network's names and shapes, metadata
//! `adam_step`), and the checkpoint functions of [`crate::checkpoint`]
//! with that state.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::{self as ckpt, RunConfig, RunState, StateTensors};
pub use crate::checkpoint::{
    existing_checkpoint_file, read_manifest, CONFIG_FILE, MODEL_FILE, PREV_DIR, TRAIN_STATE_FILE,
};
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::nn::ScoreNet;
use crate::tensors::{NamedTensor, TensorFile, TensorShape};

use super::{TrainConfig, TrainState};

/// A checkpoint with the trainer's state.
pub type Checkpoint = ckpt::Checkpoint<TrainState>;

/// The prefixes of the state file's three tensor sets.
const SETS: [&str; 3] = ["params", "adam_m", "adam_v"];

impl RunConfig for TrainConfig {
    fn data_shape(&self) -> Option<(usize, usize, usize)> {
        self.data
            .as_ref()
            .map(|fp| (fp.channels, fp.image_size, fp.image_size))
    }
}

fn state_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

impl RunState for TrainState {
    type Config = TrainConfig;
    const PARAM_SETS: u64 = SETS.len() as u64;

    fn config(&self) -> &TrainConfig {
        &self.train
    }

    fn tensor_specs(net: &ScoreNet) -> Vec<TensorShape> {
        SETS.iter()
            .flat_map(|p| {
                net.tensor_specs()
                    .into_iter()
                    .map(move |(n, s)| (format!("{p}.{n}"), s))
            })
            .collect()
    }

    fn to_tensors<'a>(&'a self, net: &ScoreNet) -> Result<StateTensors<'a>> {
        let n = net.num_params();
        let flats = [&self.params, &self.adam_m, &self.adam_v];
        for (what, v) in SETS.iter().zip(flats) {
            if v.len() != n {
                return Err(Error::Mismatch(format!(
                    "training state {what} has {} values, the network has {n}",
                    v.len()
                )));
            }
        }
        let mut out = Vec::new();
        for (prefix, flat) in SETS.iter().zip(flats) {
            for (name, shape, data) in net.named_slices(flat) {
                out.push((format!("{prefix}.{name}"), shape, data));
            }
        }
        let meta = BTreeMap::from([("adam_step".to_string(), self.adam_step.to_string())]);
        Ok((out, meta))
    }

    fn from_tensors(
        config: &TrainConfig,
        file: &TensorFile,
        net: &ScoreNet,
        step: u64,
        path: &Path,
    ) -> Result<Self> {
        let adam_step = file
            .metadata
            .get("adam_step")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| state_err(path, "metadata has no integer 'adam_step'"))?;
        if adam_step > step {
            return Err(state_err(
                path,
                format!("adam_step {adam_step} exceeds the step {step}"),
            ));
        }
        let mut flats = Vec::new();
        for prefix in SETS {
            let p = format!("{prefix}.");
            let part: Vec<NamedTensor<&[f32]>> = file
                .tensors
                .iter()
                .filter_map(|(n, s, v)| {
                    n.strip_prefix(&p)
                        .map(|n| (n.to_string(), s.clone(), v.as_slice()))
                })
                .collect();
            let mut flat = vec![0.0f32; net.num_params()];
            net.unflatten_named(&part, &mut flat)
                .map_err(|e| state_err(path, e.to_string()))?;
            flats.push(flat);
        }
        let adam_v = flats.pop().unwrap_or_default();
        let adam_m = flats.pop().unwrap_or_default();
        let params = flats.pop().unwrap_or_default();
        if let Some(i) = adam_v.iter().position(|&v| v < 0.0) {
            return Err(state_err(
                path,
                format!(
                    "adam_v holds a negative value {} at flat index {i}",
                    adam_v[i]
                ),
            ));
        }
        Ok(TrainState {
            train: config.clone(),
            params,
            adam_m,
            adam_v,
            adam_step,
        })
    }
}

/// Save the EMA `model` and the training `state` into `dir`
/// ([`crate::checkpoint::save`]: atomic, keeps the previous set in `dir/prev`).
pub fn save(dir: &Path, model: &ScoreModel, state: Option<&TrainState>) -> Result<()> {
    ckpt::save(dir, model, state)
}

/// Load and check a checkpoint with its training state
/// ([`crate::checkpoint::load`]).
pub fn load(dir: &Path) -> Result<Checkpoint> {
    ckpt::load(dir)
}

/// [`load`], or `dir/prev` when the top level fails to load
/// ([`crate::checkpoint::load_latest`]).
pub fn load_latest(dir: &Path) -> Result<(Checkpoint, Option<Error>)> {
    ckpt::load_latest(dir)
}

/// [`load`] from bytes in memory ([`crate::checkpoint::load_from_bytes`]).
pub fn load_from_bytes(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<Checkpoint> {
    ckpt::load_from_bytes(dir, files)
}
