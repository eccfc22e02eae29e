//! Named f32 tensors and their one on-disk format, `.safetensors` (the
//! Hugging Face format, so `safetensors.numpy.load_file` /
//! `safetensors.torch.load_file` read them: `net.0.weight` comes back as a
//! `[256, 34]` float32 array).
//!
//! - [`NamedTensor`]: the one named-tensor type, `(name, shape, values)`;
//!   the values are owned (`Vec<f32>`, what a file gives back), borrowed
//!   (`&[f32]`, a network's parameters) or an offset into a flat vector
//!   (`usize`, a network's layout).
//! - [`encode_safetensors`]: the one writer, deterministic (tensors in
//!   name order, metadata keys sorted) in one of two pinned [`Layout`]s
//!   that differ only in the key order of the header (checkpoints:
//!   [`Layout::Sorted`]; every other file: [`Layout::Torch`], the order the
//!   `safetensors` crate and PyTorch write); [`save_tensors`] /
//!   [`save_tensors_as`] write it atomically after the checks of
//!   [`check_writable`].
//! - [`parse_tensors`] / [`load_tensors`]: the one reader (bounded, never
//!   panics; every problem is an [`Error::Format`] or an
//!   [`Error::Checkpoint`] naming the file, the tensor and what differs).
//! - [`check_tensors`]: a file holds exactly the expected names and shapes.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A named tensor: name, shape and row-major values `D` (`Vec<f32>`
/// owned, `&[f32]` borrowed, `usize` an offset into a flat vector).
pub type NamedTensor<D = Vec<f32>> = (String, Vec<usize>, D);

/// Name and shape of a tensor a network expects.
pub type TensorShape = (String, Vec<usize>);

/// Largest safetensors file read (4 GiB); only regular files are read.
pub const MAX_TENSOR_FILE_BYTES: u64 = 4 << 30;

/// Contents of a safetensors file: tensors sorted by name, and the header's
/// `__metadata__` string map.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorFile {
    pub tensors: Vec<NamedTensor>,
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

/// The key order of a safetensors header. Both are pinned: checkpoint
/// bytes are recorded in their manifests, and the PyTorch order is what
/// other tools write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Every JSON object's keys sorted (`__metadata__` among the tensor
    /// names; each entry `data_offsets`, `dtype`, `shape`), `__metadata__`
    /// always present: the checkpoint files.
    Sorted,
    /// `__metadata__` first (left out when empty), then the tensors in name
    /// order, each entry `dtype`, `shape`, `data_offsets`: the layout of
    /// the `safetensors` crate and of `safetensors.torch.save_file`.
    Torch,
}

/// The bytes of a safetensors file holding `tensors` as F32 and `metadata`,
/// deterministic (tensors laid out in name order, metadata keys sorted) so
/// that the same state always gives the same bytes:
///
/// ```text
///   [u64 LE header length n][n bytes of JSON, space-padded to 8-byte alignment][data]
///   JSON (Torch) = {"__metadata__": {..}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ..}
/// ```
pub fn encode_safetensors(
    tensors: &[NamedTensor<&[f32]>],
    metadata: &BTreeMap<String, String>,
    layout: Layout,
) -> Vec<u8> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    let mut offsets = Vec::with_capacity(order.len());
    let mut offset = 0usize;
    for &i in &order {
        let end = offset + 4 * tensors[i].2.len();
        offsets.push((offset, end));
        offset = end;
    }
    let mut json = match layout {
        Layout::Sorted => {
            let mut header = serde_json::Map::new();
            header.insert("__metadata__".into(), serde_json::json!(metadata));
            for (&i, (b, e)) in order.iter().zip(&offsets) {
                let (name, shape, _) = &tensors[i];
                header.insert(
                    name.clone(),
                    serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [b, e]}),
                );
            }
            serde_json::Value::Object(header).to_string()
        }
        Layout::Torch => {
            let quote = |s: &str| serde_json::Value::from(s).to_string();
            let mut entries = Vec::with_capacity(order.len() + 1);
            if !metadata.is_empty() {
                entries.push(format!("\"__metadata__\":{}", serde_json::json!(metadata)));
            }
            for (&i, (b, e)) in order.iter().zip(&offsets) {
                let (name, shape, _) = &tensors[i];
                entries.push(format!(
                    "{}:{{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[{b},{e}]}}",
                    quote(name),
                    serde_json::json!(shape)
                ));
            }
            format!("{{{}}}", entries.join(","))
        }
    }
    .into_bytes();
    while !(8 + json.len()).is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for &i in &order {
        for v in tensors[i].2 {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Fail unless every tensor's value count matches its shape and no two
/// tensors share a name.
pub fn check_writable(path: &Path, tensors: &[NamedTensor<&[f32]>]) -> Result<()> {
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
    }
    Ok(())
}

/// Write `tensors` as f32 plus `metadata` to `path` atomically (write
/// `<name>.tmp`, flush, fsync, rename, fsync the folder) in
/// [`Layout::Torch`]. Fails if a tensor's value count differs from its
/// shape or two tensors share a name.
pub fn save_tensors(
    path: &Path,
    tensors: &[NamedTensor<&[f32]>],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_tensors_as(path, tensors, metadata, Layout::Torch)
}

/// [`save_tensors`] in the given header [`Layout`].
pub fn save_tensors_as(
    path: &Path,
    tensors: &[NamedTensor<&[f32]>],
    metadata: &BTreeMap<String, String>,
    layout: Layout,
) -> Result<()> {
    check_writable(path, tensors)?;
    crate::fsutil::write_atomic(path, &encode_safetensors(tensors, metadata, layout))
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
pub fn check_tensors(path: &Path, file: &TensorFile, expected: &[TensorShape]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// The PyTorch layout is byte for byte what the `safetensors` crate
    /// writes (no or one metadata key: the crate orders several keys as a
    /// `HashMap` does), and both layouts read back the same tensors.
    #[test]
    fn torch_layout_is_the_crates_bytes_and_both_layouts_read_back() {
        let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b = [f32::MIN_POSITIVE, -0.0, 1e30];
        let tensors: Vec<NamedTensor<&[f32]>> = vec![
            ("net.2.weight \"q\"".into(), vec![3, 4], &a[..]),
            ("net.0.bias".into(), vec![3], &b[..]),
            ("Z".into(), vec![0], &[][..]),
        ];
        for meta in [
            BTreeMap::new(),
            BTreeMap::from([("config".to_string(), "{\"a\": [1, 2]}\n".to_string())]),
        ] {
            let bytes: Vec<Vec<u8>> = tensors
                .iter()
                .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
                .collect();
            let views = tensors.iter().zip(&bytes).map(|((n, s, _), b)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            });
            let m = (!meta.is_empty()).then(|| meta.clone().into_iter().collect());
            let want = safetensors::serialize(views, m).unwrap();
            let got = encode_safetensors(&tensors, &meta, Layout::Torch);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
            for layout in [Layout::Torch, Layout::Sorted] {
                let bytes = encode_safetensors(&tensors, &meta, layout);
                let file = parse_tensors(Path::new("t"), &bytes).unwrap();
                assert_eq!(file.metadata, meta);
                let mut names: Vec<_> = tensors.iter().map(|t| t.0.clone()).collect();
                names.sort();
                let back: Vec<_> = file.tensors.iter().map(|t| t.0.clone()).collect();
                assert_eq!(back, names);
                for (n, s, d) in &tensors {
                    let t = file.tensors.iter().find(|t| &t.0 == n).unwrap();
                    assert_eq!((&t.1, bits(&t.2)), (s, bits(d)));
                }
            }
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }
}
