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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use crate::nn::{self, NetConfig, ScoreNet, TensorFile};
use crate::sde::SdeConfig;

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
const MAX_FILE_BYTES: u64 = 4 << 30;

/// 64-bit FNV-1a: h ← (h ⊕ byte) · 0x100000001b3, starting at
/// 0xcbf29ce484222325.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a64 {
    /// Feed `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// The hash so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::default();
    h.update(bytes);
    h.finish()
}

/// Checksum of named f32 tensors, in name order: FNV-1a 64 over, for each
/// tensor, its name bytes, 0, its rank and dimensions as u64 LE, and its
/// values as f32 LE.
pub fn tensor_checksum<D: AsRef<[f32]>>(tensors: &[(String, Vec<usize>, D)]) -> u64 {
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

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

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
}

/// Size and hash of one file of the set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub bytes: u64,
    pub fnv1a64: String,
}

/// The contents of `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub sde: SdeConfig,
    pub parameterization: Parameterization,
    pub net: NetConfig,
    pub data: String,
    pub step: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
    pub files: BTreeMap<String, FileDigest>,
}

impl Manifest {
    /// The model part.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            format_version: self.format_version,
            sde: self.sde,
            parameterization: self.parameterization,
            net: self.net.clone(),
            data: self.data.clone(),
            step: self.step,
        }
    }
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

fn ckpt_err(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.into(),
        msg: msg.into(),
    }
}

/// Save `model` (EMA weights) and optionally the training `state` into `dir`
/// with the protocol in the module docs.
pub fn save(dir: &Path, model: &ScoreModel, state: Option<&TrainState>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    snapshot_previous(dir)?;
    let config = &model.config;
    let config_json = serde_json::to_string_pretty(config)
        .map_err(|e| ckpt_err(dir.join(CONFIG_FILE), e.to_string()))?;
    let mut files = BTreeMap::new();

    let model_tensors = model.net.named_tensors();
    let mut meta = BTreeMap::new();
    meta.insert("config".to_string(), config_json);
    meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("step".to_string(), config.step.to_string());
    meta.insert(
        "tensors_fnv1a64".into(),
        hex(tensor_checksum(&model_tensors)),
    );
    let path = dir.join(MODEL_FILE);
    write_tensors(&path, &model_tensors, &meta)?;
    files.insert(MODEL_FILE.to_string(), digest_of(&path)?);

    let state_path = dir.join(TRAIN_STATE_FILE);
    if let Some(s) = state {
        let tensors = state_tensors(&model.net, s)?;
        let mut meta = BTreeMap::new();
        meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        meta.insert("step".to_string(), config.step.to_string());
        meta.insert("adam_step".to_string(), s.adam_step.to_string());
        meta.insert(
            "train".to_string(),
            serde_json::to_string(&s.train).map_err(|e| ckpt_err(&state_path, e.to_string()))?,
        );
        meta.insert("tensors_fnv1a64".into(), hex(tensor_checksum(&tensors)));
        write_tensors(&state_path, &tensors, &meta)?;
        files.insert(TRAIN_STATE_FILE.to_string(), digest_of(&state_path)?);
    }

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        sde: config.sde,
        parameterization: config.parameterization,
        net: config.net.clone(),
        data: config.data.clone(),
        step: config.step,
        train: state.map(|s| s.train.clone()),
        files,
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| ckpt_err(dir.join(CONFIG_FILE), e.to_string()))?;
    fsutil::write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())?;
    if state.is_none() && state_path.exists() {
        // A stale state from an older save is not part of this set.
        let _ = std::fs::remove_file(&state_path);
    }
    fsutil::sync_dir(dir);
    Ok(())
}

/// The bytes of a safetensors file holding `tensors` as F32 and `metadata`,
/// deterministic (JSON keys sorted, tensors laid out in name order) so that
/// the same state always gives the same bytes:
///
/// ```text
///   [u64 LE header length n][n bytes of JSON, space-padded to 8-byte alignment][data]
///   JSON = {"__metadata__": {..}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ..}
/// ```
pub fn encode_safetensors(
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0usize;
    for &i in &order {
        let (name, shape, data) = &tensors[i];
        let end = offset + 4 * data.len();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
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

/// Write [`encode_safetensors`] bytes atomically to `path`.
fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    for (name, shape, data) in tensors {
        if shape.iter().product::<usize>() != data.len() {
            return Err(ckpt_err(
                path,
                format!(
                    "tensor '{name}' of shape {shape:?} holds {} values",
                    data.len()
                ),
            ));
        }
    }
    fsutil::write_atomic(path, &encode_safetensors(tensors, metadata))
}

/// A named tensor borrowing its values.
type TensorRef<'a> = (String, Vec<usize>, &'a [f32]);

fn state_tensors<'a>(net: &ScoreNet, s: &'a TrainState) -> Result<Vec<TensorRef<'a>>> {
    let n = net.num_params();
    for (what, v) in [
        ("params", &s.params),
        ("adam_m", &s.adam_m),
        ("adam_v", &s.adam_v),
    ] {
        if v.len() != n {
            return Err(Error::Mismatch(format!(
                "training state {what} has {} values, the network has {n}",
                v.len()
            )));
        }
    }
    let mut out = Vec::new();
    for (prefix, flat) in [
        ("params", &s.params),
        ("adam_m", &s.adam_m),
        ("adam_v", &s.adam_v),
    ] {
        for (name, shape, data) in net.named_slices(flat) {
            out.push((format!("{prefix}.{name}"), shape, data));
        }
    }
    Ok(out)
}

fn digest_of(path: &Path) -> Result<FileDigest> {
    let bytes = fsutil::read_regular(path, MAX_FILE_BYTES, "a checkpoint file")?;
    Ok(FileDigest {
        bytes: bytes.len() as u64,
        fnv1a64: hex(fnv1a64(&bytes)),
    })
}

/// If `dir` holds a complete checkpoint, make `dir/prev` a copy of it. An incomplete top level is
/// left alone so that a good `prev/` is never replaced by a bad set.
fn snapshot_previous(dir: &Path) -> Result<()> {
    let Ok(manifest) = verify_files(dir) else {
        return Ok(());
    };
    let prev = dir.join(PREV_DIR);
    let io = |p: &Path, e| Error::io(p, e);
    // A fresh, uniquely named folder: create_dir fails rather than reuse
    // or follow anything already there.
    let tmp = fsutil::tmp_path(&prev);
    std::fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
    let names = manifest
        .files
        .keys()
        .map(String::as_str)
        .chain([CONFIG_FILE]);
    for name in names {
        // Copies, not hard links: a later in-place change to a top-level
        // file must not reach the backup.
        let (src, dst) = (dir.join(name), tmp.join(name));
        std::fs::copy(&src, &dst).map_err(|e| io(&dst, e))?;
        std::fs::File::open(&dst)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&dst, e))?;
    }
    fsutil::sync_dir(&tmp);
    if prev.exists() {
        std::fs::remove_dir_all(&prev).map_err(|e| io(&prev, e))?;
    }
    std::fs::rename(&tmp, &prev).map_err(|e| io(&prev, e))?;
    fsutil::sync_dir(dir);
    Ok(())
}

/// Read and parse `config.json` of `dir` (no file checks).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
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
pub fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest> {
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
    let m: Manifest = serde_json::from_value(value.clone())
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
fn check_net_fits_data(path: &Path, m: &Manifest) -> Result<()> {
    let shape = if crate::data::Toy::from_name(&m.data).is_ok() {
        if !matches!(m.net, NetConfig::Mlp(_)) || m.net.data_dim() != 2 {
            return Err(ckpt_err(
                path,
                format!(
                    "the {} network takes {} values per point, but data set {} is 2-D",
                    m.net.kind(),
                    m.net.data_dim(),
                    m.data
                ),
            ));
        }
        return Ok(());
    } else if let Some(shape) = crate::data::source::bundled_shape(&m.data) {
        shape
    } else if let Some(fp) = m.train.as_ref().and_then(|t| t.data.as_ref()) {
        (fp.channels, fp.image_size, fp.image_size)
    } else {
        return Ok(());
    };
    let (c, h, w) = shape;
    let fits = match &m.net {
        NetConfig::Mlp(mlp) => mlp.data_dim == c * h * w,
        NetConfig::UNet(u) => (u.channels, u.height, u.width) == shape,
    };
    if !fits {
        return Err(ckpt_err(
            path,
            format!(
                "the {} network ({} values per point) does not fit data set {} of {c}x{h}x{w} images",
                m.net.kind(),
                m.net.data_dim(),
                m.data
            ),
        ));
    }
    Ok(())
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
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    fsutil::read_regular(path, max, "a checkpoint file").map_err(|e| match e {
        Error::Format { path, msg } => ckpt_err(path, msg),
        e => e,
    })
}

/// Check that every file `config.json` lists has the recorded size and hash.
pub fn verify_files(dir: &Path) -> Result<Manifest> {
    let m = read_manifest(dir)?;
    for (name, d) in &m.files {
        let bytes = read_listed(dir, name, d)?;
        check_digest(&dir.join(name), &bytes, d)?;
    }
    Ok(m)
}

fn read_listed(dir: &Path, name: &str, d: &FileDigest) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let len = fsutil::check_regular(&path).map_err(|e| {
        ckpt_err(
            &path,
            format!("listed in {CONFIG_FILE} but unreadable: {}", inner_msg(&e)),
        )
    })?;
    if len != d.bytes {
        return Err(ckpt_err(
            &path,
            format!(
                "{len} bytes, {CONFIG_FILE} records {} (truncated, or an interrupted save)",
                d.bytes
            ),
        ));
    }
    // At most the recorded size (+1 to notice growth) is ever read.
    read_bounded(&path, d.bytes.min(MAX_FILE_BYTES))
}

/// The message of `e` without the path it names.
fn inner_msg(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => source.to_string(),
        Error::Format { msg, .. } | Error::Checkpoint { msg, .. } => msg.clone(),
        e => e.to_string(),
    }
}

fn check_digest(path: &Path, bytes: &[u8], d: &FileDigest) -> Result<()> {
    if bytes.len() as u64 != d.bytes {
        return Err(ckpt_err(
            path,
            format!("{} bytes, {CONFIG_FILE} records {}", bytes.len(), d.bytes),
        ));
    }
    let got = hex(fnv1a64(bytes));
    if got != d.fnv1a64 {
        return Err(ckpt_err(
            path,
            format!(
                "FNV-1a checksum {got} differs from {} recorded in {CONFIG_FILE} \
                 (the file is corrupt, or a save was interrupted)",
                d.fnv1a64
            ),
        ));
    }
    Ok(())
}

/// Load the checkpoint in `dir`, checking everything: the config, every
/// file's size and checksum, every tensor's name, shape and dtype, the
/// tensor checksums and that every value is finite. Fails if anything
/// differs, naming the file, tensor and values.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let mut files = BTreeMap::new();
    let manifest = read_manifest(dir)?;
    // A file can hold no more than its tensors plus a header: a recorded
    // size beyond what the config's network needs is refused unread.
    let n = manifest.net.num_params().unwrap_or(usize::MAX) as u64;
    for (name, d) in &manifest.files {
        let sets = if name == TRAIN_STATE_FILE { 3 } else { 1 };
        let most = n.saturating_mul(4 * sets).saturating_add(MAX_HEADER_BYTES);
        if d.bytes > most {
            return Err(ckpt_err(
                dir.join(CONFIG_FILE),
                format!(
                    "records {} bytes for {name}, more than its {n}-parameter network can need ({most})",
                    d.bytes
                ),
            ));
        }
        files.insert(name.clone(), read_listed(dir, name, d)?);
    }
    load_parts(dir, &manifest, &files).map_err(|e| add_prev_hint(dir, e))
}

/// Room for a safetensors header (names, shapes, metadata with the config).
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// [`load`] from bytes already in memory: `files` maps file names
/// (`config.json`, `model.safetensors`, `train_state.safetensors`) to their
/// contents; `dir` only names errors. Used by the fuzz targets.
pub fn load_from_bytes(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<Checkpoint> {
    let config = files
        .get(CONFIG_FILE)
        .ok_or_else(|| ckpt_err(dir.join(CONFIG_FILE), "missing"))?;
    let manifest = parse_manifest(&dir.join(CONFIG_FILE), config)?;
    load_parts(dir, &manifest, files)
}

fn add_prev_hint(dir: &Path, e: Error) -> Error {
    let prev = dir.join(PREV_DIR);
    match e {
        Error::Checkpoint { path, msg } if prev.join(CONFIG_FILE).exists() => Error::Checkpoint {
            path,
            msg: format!("{msg}; the previous checkpoint is in {}", prev.display()),
        },
        e => e,
    }
}

fn load_parts(
    dir: &Path,
    manifest: &Manifest,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Checkpoint> {
    let config = manifest.model_config();
    let get = |name: &str| -> Result<(&Vec<u8>, &FileDigest)> {
        let d = manifest
            .files
            .get(name)
            .ok_or_else(|| ckpt_err(dir.join(CONFIG_FILE), format!("does not list {name}")))?;
        let b = files
            .get(name)
            .ok_or_else(|| ckpt_err(dir.join(name), "missing"))?;
        Ok((b, d))
    };

    // model.safetensors: EMA weights.
    let path = dir.join(MODEL_FILE);
    let (bytes, digest) = get(MODEL_FILE)?;
    // Allocate for the network only once the file is big enough to hold it
    // (no huge allocation from a small config naming a huge network).
    let n_params = config.net.num_params().unwrap_or(usize::MAX);
    if n_params.saturating_mul(4) > bytes.len() {
        return Err(ckpt_err(
            &path,
            format!(
                "{} bytes cannot hold the {n_params} parameters the config describes",
                bytes.len()
            ),
        ));
    }
    let mut net = ScoreNet::zeros(config.net.clone())?;
    let file = nn::io::parse_tensors(&path, bytes)?;
    check_file(&path, &file, &net.tensor_specs(), manifest.step)?;
    check_digest(&path, bytes, digest)?;
    let saved: ModelConfig = file
        .metadata
        .get("config")
        .ok_or_else(|| ckpt_err(&path, "metadata has no 'config'"))
        .and_then(|s| {
            serde_json::from_str(s)
                .map_err(|e| ckpt_err(&path, format!("metadata 'config' is not valid: {e}")))
        })?;
    if saved != config {
        return Err(ckpt_err(
            dir.join(CONFIG_FILE),
            format!("differs from the config stored in {MODEL_FILE}: {config:?} vs {saved:?}"),
        ));
    }
    net.load_named(&file.tensors)
        .map_err(|e| ckpt_err(&path, e.to_string()))?;

    // train_state.safetensors: raw weights and Adam moments.
    let state = match &manifest.train {
        None => None,
        Some(train) => {
            let path = dir.join(TRAIN_STATE_FILE);
            let (bytes, digest) = get(TRAIN_STATE_FILE)?;
            let file = nn::io::parse_tensors(&path, bytes)?;
            let specs: Vec<(String, Vec<usize>)> = ["params", "adam_m", "adam_v"]
                .iter()
                .flat_map(|p| {
                    net.tensor_specs()
                        .into_iter()
                        .map(move |(n, s)| (format!("{p}.{n}"), s))
                })
                .collect();
            check_file(&path, &file, &specs, manifest.step)?;
            check_digest(&path, bytes, digest)?;
            let saved: TrainConfig = file
                .metadata
                .get("train")
                .and_then(|t| serde_json::from_str(t).ok())
                .ok_or_else(|| ckpt_err(&path, "metadata has no valid 'train'"))?;
            if &saved != train {
                return Err(ckpt_err(
                    dir.join(CONFIG_FILE),
                    format!("train {train:?} differs from {saved:?} stored in {TRAIN_STATE_FILE}"),
                ));
            }
            let adam_step = file
                .metadata
                .get("adam_step")
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ckpt_err(&path, "metadata has no integer 'adam_step'"))?;
            if adam_step > manifest.step {
                return Err(ckpt_err(
                    &path,
                    format!("adam_step {adam_step} exceeds the step {}", manifest.step),
                ));
            }
            let mut flats = Vec::new();
            for prefix in ["params", "adam_m", "adam_v"] {
                let p = format!("{prefix}.");
                let part: Vec<(String, Vec<usize>, &[f32])> = file
                    .tensors
                    .iter()
                    .filter_map(|(n, s, v)| {
                        n.strip_prefix(&p)
                            .map(|n| (n.to_string(), s.clone(), v.as_slice()))
                    })
                    .collect();
                let mut flat = vec![0.0f32; net.num_params()];
                net.unflatten_named(&part, &mut flat)
                    .map_err(|e| ckpt_err(&path, e.to_string()))?;
                flats.push(flat);
            }
            let adam_v = flats.pop().unwrap_or_default();
            let adam_m = flats.pop().unwrap_or_default();
            let params = flats.pop().unwrap_or_default();
            if let Some(i) = adam_v.iter().position(|&v| v < 0.0) {
                return Err(ckpt_err(
                    &path,
                    format!(
                        "adam_v holds a negative value {} at flat index {i}",
                        adam_v[i]
                    ),
                ));
            }
            Some(TrainState {
                train: train.clone(),
                params,
                adam_m,
                adam_v,
                adam_step,
            })
        }
    };
    Ok(Checkpoint {
        model: ScoreModel::new(config, net)?,
        state,
        dir: dir.to_path_buf(),
    })
}

/// Names, shapes (dtype F32 is checked by the parser), tensor checksum,
/// step and finiteness of one safetensors file of the set.
fn check_file(
    path: &Path,
    file: &TensorFile,
    specs: &[(String, Vec<usize>)],
    step: u64,
) -> Result<()> {
    nn::check_tensors(path, file, specs)?;
    let meta = |k: &str| {
        file.metadata
            .get(k)
            .ok_or_else(|| ckpt_err(path, format!("metadata has no '{k}'")))
    };
    let version = meta("format_version")?;
    if version != &FORMAT_VERSION.to_string() {
        return Err(ckpt_err(
            path,
            format!("format version {version}, expected {FORMAT_VERSION}"),
        ));
    }
    let file_step = meta("step")?;
    if file_step != &step.to_string() {
        return Err(ckpt_err(
            path,
            format!(
                "holds step {file_step} but {CONFIG_FILE} names step {step} (an interrupted save?)"
            ),
        ));
    }
    let want = meta("tensors_fnv1a64")?;
    let got = hex(tensor_checksum(&file.tensors));
    if &got != want {
        return Err(ckpt_err(
            path,
            format!("tensor checksum {got} differs from {want} recorded in its metadata"),
        ));
    }
    for (name, _, values) in &file.tensors {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(ckpt_err(
                path,
                format!("tensor '{name}' holds {} at flat index {i}", values[i]),
            ));
        }
    }
    Ok(())
}

/// The newest complete checkpoint under `dir`: `dir` itself, or `dir/prev`
/// when the top level fails to load (e.g. a save was killed part way).
/// Returns the checkpoint and, on fallback, why the top level was skipped.
pub fn load_latest(dir: &Path) -> Result<(Checkpoint, Option<Error>)> {
    match load(dir) {
        Ok(c) => Ok((c, None)),
        Err(top) => {
            let prev = dir.join(PREV_DIR);
            if !prev.join(CONFIG_FILE).exists() {
                return Err(top);
            }
            match load(&prev) {
                Ok(c) => Ok((c, Some(top))),
                Err(e) => Err(ckpt_err(
                    dir,
                    format!(
                        "no loadable checkpoint: {top}; and in {}: {e}",
                        prev.display()
                    ),
                )),
            }
        }
    }
}
