//! The checkpoint format: file names, the `config.json` manifest and its
//! strict parser, and the checksums (FNV-1a 64 of file bytes and of named
//! tensors) that [`super::load`] verifies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::convert::Output;
use crate::error::{Error, Result};
use crate::fsutil::{self, Fnv1a64};
use crate::model::{ModelConfig, Parameterization, FORMAT_VERSION};
use crate::nn::NetConfig;
use crate::sde::SdeConfig;
use crate::tensors::NamedTensor;

use super::RunConfig;

/// Weights used for sampling (EMA), PyTorch names.
pub const MODEL_FILE: &str = "model.safetensors";
/// Raw weights and Adam state for resuming.
pub const TRAIN_STATE_FILE: &str = "train_state.safetensors";
/// The commit record, written last.
pub const CONFIG_FILE: &str = "config.json";
/// The previous complete checkpoint.
pub const PREV_DIR: &str = "prev";

/// Largest file a checkpoint may hold (4 bytes × the network's parameter
/// cap × 3 tensors sets, plus headers); bigger claims are refused unread.
pub(super) const MAX_FILE_BYTES: u64 = 4 << 30;

/// Checksum of named f32 tensors, in name order: FNV-1a 64 over, for each
/// tensor, its name bytes, 0, its rank and dimensions as u64 LE, and its
/// values as f32 LE.
pub fn tensor_checksum<D: AsRef<[f32]>>(tensors: &[NamedTensor<D>]) -> u64 {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    let mut h = Fnv1a64::default();
    for i in order {
        let (name, shape, data) = &tensors[i];
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(&(shape.len() as u64).to_le_bytes());
        for &s in shape {
            h.update(&(s as u64).to_le_bytes());
        }
        for v in data.as_ref() {
            h.update(&v.to_le_bytes());
        }
    }
    h.finish()
}

pub(super) fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// Size and hash of one file of the set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub bytes: u64,
    pub fnv1a64: String,
}

/// The contents of `config.json`; `C` is the training section's type
/// ([`RunConfig`]; by default untyped JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "C: Deserialize<'de>"))]
pub struct Manifest<C = serde_json::Value> {
    pub format_version: u32,
    pub sde: SdeConfig,
    pub parameterization: Parameterization,
    pub net: NetConfig,
    pub data: String,
    pub step: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<C>,
    pub files: BTreeMap<String, FileDigest>,
}

impl<C> Manifest<C> {
    /// The model part.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            format_version: self.format_version,
            sde: self.sde,
            parameterization: self.parameterization,
            net: self.net.clone(),
            data: self.data.clone(),
            step: self.step,
            output: self.output,
        }
    }
}

pub(super) fn ckpt_err(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.into(),
        msg: msg.into(),
    }
}

/// Read and parse `config.json` of `dir` (no file checks), its training
/// section as untyped JSON.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    read_manifest_as(dir)
}

/// [`read_manifest`] with the training section parsed (strictly) as `C`.
pub fn read_manifest_as<C: RunConfig>(dir: &Path) -> Result<Manifest<C>> {
    let path = dir.join(CONFIG_FILE);
    let bytes = read_bounded(&path, 1 << 20).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ckpt_err(
            &path,
            "not found; is this a directory written by `scoresde train`?",
        ),
        e => e,
    })?;
    parse_manifest(&path, &bytes)
}

/// Parse the bytes of a `config.json` (`path` only names errors).
pub fn parse_manifest<C: RunConfig>(path: &Path, bytes: &[u8]) -> Result<Manifest<C>> {
    // Check the version first so an old or future format gets a clear message.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ckpt_err(path, format!("not valid JSON: {e}")))?;
    match value.get("format_version").map(|v| (v, v.as_u64())) {
        Some((_, Some(v))) if v == FORMAT_VERSION as u64 => {}
        Some((_, Some(v))) => {
            return Err(ckpt_err(
                path,
                format!("format version {v} is not supported (expected {FORMAT_VERSION})"),
            ))
        }
        Some((v, None)) => {
            return Err(ckpt_err(
                path,
                format!("'format_version' is {v}, expected the integer {FORMAT_VERSION}"),
            ))
        }
        None => return Err(ckpt_err(path, "missing integer field 'format_version'")),
    }
    let m: Manifest<C> = serde_json::from_value(value.clone())
        .map_err(|e| ckpt_err(path, format!("invalid config: {e}")))?;
    // Nested structs accept unknown keys and fill defaults; a checkpoint
    // must say exactly what it means, so it must round-trip.
    let canonical = serde_json::to_value(&m).map_err(|e| ckpt_err(path, e.to_string()))?;
    if canonical != value {
        return Err(ckpt_err(
            path,
            format!(
                "unexpected or missing keys: {}",
                json_diff("", &value, &canonical)
            ),
        ));
    }
    for name in m.files.keys() {
        if name != MODEL_FILE && name != TRAIN_STATE_FILE {
            return Err(ckpt_err(path, format!("lists unknown file '{name}'")));
        }
    }
    if !m.files.contains_key(MODEL_FILE) {
        return Err(ckpt_err(path, format!("does not list {MODEL_FILE}")));
    }
    if m.train.is_some() != m.files.contains_key(TRAIN_STATE_FILE) {
        return Err(ckpt_err(
            path,
            format!("'train' and the {TRAIN_STATE_FILE} entry must come together"),
        ));
    }
    m.net
        .validate()
        .map_err(|e| ckpt_err(path, e.to_string()))?;
    m.sde.build().map_err(|e| ckpt_err(path, e.to_string()))?;
    check_net_fits_data(path, &m)?;
    Ok(m)
}

/// The network must take the data set's points: 2 values for a toy, the
/// bundled set's image shape, or a folder run's recorded size and channels.
fn check_net_fits_data<C: RunConfig>(path: &Path, m: &Manifest<C>) -> Result<()> {
    let shape = if crate::data::Toy::from_name(&m.data).is_ok() {
        if !matches!(m.net, NetConfig::Mlp(_)) || m.net.data_dim() != 2 {
            return Err(net_misfit(path, m, |n, data| {
                format!("takes {n} values per point, but data set {data} is 2-D")
            }));
        }
        return Ok(());
    } else if let Some(shape) = crate::data::source::bundled_shape(&m.data) {
        shape
    } else if let Some(shape) = m.train.as_ref().and_then(RunConfig::data_shape) {
        shape
    } else {
        return Ok(());
    };
    let (c, h, w) = shape;
    let fits = match &m.net {
        NetConfig::Mlp(mlp) => mlp.data_dim == c * h * w,
        NetConfig::UNet(u) => (u.channels, u.height, u.width) == shape,
    };
    if !fits {
        return Err(net_misfit(path, m, |n, data| {
            format!("({n} values per point) does not fit data set {data} of {c}x{h}x{w} images")
        }));
    }
    Ok(())
}

/// The error of a checkpoint whose network does not take the points of its
/// data set: `the <kind> network <how>`, with `how(values per point, data
/// set)` saying how.
fn net_misfit<C: RunConfig>(
    path: &Path,
    m: &Manifest<C>,
    how: impl FnOnce(usize, &str) -> String,
) -> Error {
    let how = how(m.net.data_dim(), &m.data);
    ckpt_err(path, format!("the {} network {how}", m.net.kind()))
}

/// The first file or folder of `dir` that belongs to a checkpoint
/// (`config.json`, the weights, the training state, `prev/`, the previews
/// in `samples/`, or a temporary copy of `prev/`), if any: a directory
/// holding any of them counts as a checkpoint, whole or not, and is never
/// replaced without `--force`.
pub fn existing_checkpoint_file(dir: &Path) -> Option<PathBuf> {
    for name in [
        CONFIG_FILE,
        MODEL_FILE,
        TRAIN_STATE_FILE,
        PREV_DIR,
        "samples",
    ] {
        let p = dir.join(name);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Some(p);
        }
    }
    let entries = std::fs::read_dir(dir).ok()?;
    entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".tmp") || n.starts_with("prev."))
    })
}

/// First place where `got` differs from `want`, as `path: got vs want`.
fn json_diff(at: &str, got: &serde_json::Value, want: &serde_json::Value) -> String {
    use serde_json::Value::Object;
    if let (Object(g), Object(w)) = (got, want) {
        for k in g.keys().chain(w.keys()) {
            match (g.get(k), w.get(k)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => return json_diff(&format!("{at}.{k}"), a, b),
                (Some(_), None) => return format!("unknown key '{at}.{k}'"),
                (None, _) => return format!("missing key '{at}.{k}'"),
            }
        }
    }
    format!("'{at}' is {got}, expected {want}")
}

/// Read a regular file of at most `max` bytes, counting the bytes actually
/// read (devices, FIFOs and larger files are refused).
pub(super) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    fsutil::read_regular(path, max, "a checkpoint file").map_err(|e| match e {
        Error::Format { path, msg } => ckpt_err(path, msg),
        e => e,
    })
}
