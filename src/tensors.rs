//! Named f32 tensors ⇄ `.safetensors` files (the Hugging Face format, so
//! `safetensors.numpy.load_file` / `safetensors.torch.load_file` read them:
//! `net.0.weight` comes back as a `[256, 34]` float32 array).
//!
//! Saving is atomic: the bytes go to `<file name>.tmp` in the same folder,
//! are flushed and fsynced, then renamed over the target, so a crash leaves
//! either the old file or the new one. Loading never panics: every problem
//! is an [`Error::Format`] (not a readable f32 safetensors file) or an
//! [`Error::Checkpoint`] (readable, but not what was expected), naming the
//! file, the tensor and what differs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::mlp::{Mlp, MlpConfig};
use crate::error::{Error, Result};

/// Largest safetensors file read (4 GiB); only regular files are read.
pub const MAX_TENSOR_FILE_BYTES: u64 = 4 << 30;

/// A tensor read from a file: name, shape, values (row-major).
pub type OwnedTensor = (String, Vec<usize>, Vec<f32>);

/// Contents of a safetensors file: tensors sorted by name, and the header's
/// `__metadata__` string map.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorFile {
    pub tensors: Vec<OwnedTensor>,
    pub metadata: BTreeMap<String, String>,
}

fn checkpoint_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s))
}

/// Write `tensors` (name, shape, row-major values) as f32 plus `metadata`
/// to `path` atomically (write `<name>.tmp`, flush, fsync, rename, fsync the
/// folder). Fails if a tensor's value count differs from its shape or two
/// tensors share a name.
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut bytes: Vec<Vec<u8>> = Vec::with_capacity(tensors.len());
    let mut names = std::collections::BTreeSet::new();
    for (name, shape, data) in tensors {
        if !names.insert(name.as_str()) {
            return Err(checkpoint_err(path, format!("tensor '{name}' given twice")));
        }
        if element_count(shape) != Some(data.len()) {
            return Err(checkpoint_err(
                path,
                format!(
                    "tensor '{name}' of shape {shape:?} holds {} values",
                    data.len()
                ),
            ));
        }
        bytes.push(data.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.clone(), b)
            .map_err(|e| checkpoint_err(path, format!("tensor '{name}': {e}")))?;
        views.push((name.clone(), view));
    }
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let meta = if meta.is_empty() { None } else { Some(meta) };
    let buf = safetensors::serialize(views, meta)
        .map_err(|e| checkpoint_err(path, format!("cannot serialise: {e}")))?;

    crate::fsutil::write_atomic(path, &buf)
}

/// Read every tensor of a safetensors file. All tensors must be F32.
pub fn load_tensors(path: &Path) -> Result<TensorFile> {
    let bytes = crate::fsutil::read_regular(path, MAX_TENSOR_FILE_BYTES, "a safetensors file")?;
    parse_tensors(path, &bytes)
}

/// [`load_tensors`] on bytes already in memory (`path` only names errors).
pub fn parse_tensors(path: &Path, bytes: &[u8]) -> Result<TensorFile> {
    let bad = |e: safetensors::SafeTensorError| {
        Error::format(path, format!("not a valid safetensors file: {e}"))
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut tensors = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::format(
                path,
                format!("tensor '{name}' has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let shape = view.shape().to_vec();
        let data = view.data();
        let want = element_count(&shape).and_then(|n| n.checked_mul(4));
        if want != Some(data.len()) {
            return Err(Error::format(
                path,
                format!(
                    "tensor '{name}' of shape {shape:?} has {} bytes of data",
                    data.len()
                ),
            ));
        }
        let values: Vec<f32> = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push((name, shape, values));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(TensorFile { tensors, metadata })
}

/// Check `file` holds exactly the tensors `expected` (name, shape): no
/// missing, extra or misshapen tensor. Errors are [`Error::Checkpoint`].
pub fn check_tensors(
    path: &Path,
    file: &TensorFile,
    expected: &[(String, Vec<usize>)],
) -> Result<()> {
    for (name, shape) in expected {
        match file.tensors.iter().find(|t| &t.0 == name) {
            None => {
                return Err(checkpoint_err(
                    path,
                    format!("missing tensor '{name}' (expected shape {shape:?})"),
                ))
            }
            Some((_, got, _)) if got != shape => {
                return Err(checkpoint_err(
                    path,
                    format!("tensor '{name}' has shape {got:?}, expected {shape:?}"),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some((name, shape, _)) = file
        .tensors
        .iter()
        .find(|t| !expected.iter().any(|(n, _)| n == &t.0))
    {
        return Err(checkpoint_err(
            path,
            format!("unexpected tensor '{name}' of shape {shape:?}"),
        ));
    }
    Ok(())
}

/// Save a network's parameters (PyTorch names, see [`Mlp::named_tensors`])
/// with `metadata`, atomically.
pub fn save_mlp(path: &Path, net: &Mlp, metadata: &BTreeMap<String, String>) -> Result<()> {
    save_tensors(path, &net.named_tensors(), metadata)
}

/// Load a network of shape `cfg` from a file written by [`save_mlp`] (or by
/// PyTorch `save_file(model.state_dict())` for the same architecture).
/// Returns the network and the file's metadata.
pub fn load_mlp(path: &Path, cfg: MlpConfig) -> Result<(Mlp, BTreeMap<String, String>)> {
    let file = load_tensors(path)?;
    let mut net = Mlp::zeros(cfg)?;
    check_tensors(path, &file, &net.tensor_specs())?;
    net.load_named(&file.tensors)
        .map_err(|e| checkpoint_err(path, e.to_string()))?;
    Ok((net, file.metadata))
}
