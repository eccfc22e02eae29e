//! Loading a checkpoint and verifying every part of it: the manifest, each
//! file's size and checksum (read bounded by what `config.json` records and
//! by what the network can need), every tensor's name, shape, checksum and
//! finiteness, and the training state's file (its meaning is the
//! [`RunState`]'s).

use std::collections::BTreeMap;
use std::path::Path;

use super::format::{
    ckpt_err, hex, parse_manifest, read_bounded, read_manifest, read_manifest_as, tensor_checksum,
    FileDigest, Manifest, MAX_FILE_BYTES,
};
use super::{fnv1a64, Checkpoint, RunState, CONFIG_FILE, MODEL_FILE, PREV_DIR, TRAIN_STATE_FILE};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::{ModelConfig, ScoreModel, FORMAT_VERSION};
use crate::nn::ScoreNet;
use crate::tensors::{self, TensorFile};

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
    check_len(&path, d)?;
    // At most the recorded size (+1 to notice growth) is ever read.
    read_bounded(&path, d.bytes.min(MAX_FILE_BYTES))
}

/// The file at `path` is a regular file of the size `d` records.
fn check_len(path: &Path, d: &FileDigest) -> Result<()> {
    let len = fsutil::check_regular(path).map_err(|e| {
        ckpt_err(
            path,
            format!("listed in {CONFIG_FILE} but unreadable: {}", inner_msg(&e)),
        )
    })?;
    if len != d.bytes {
        return Err(ckpt_err(
            path,
            format!(
                "{len} bytes, {CONFIG_FILE} records {} (truncated, or an interrupted save)",
                d.bytes
            ),
        ));
    }
    Ok(())
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

/// Load the checkpoint in `dir` with its training state `S`, checking
/// everything: the config, every file's size and checksum, every tensor's
/// name, shape and dtype, the tensor checksums and that every value is
/// finite. Fails if anything differs, naming the file, tensor and values.
pub fn load<S: RunState>(dir: &Path) -> Result<Checkpoint<S>> {
    let manifest = read_manifest_as::<S::Config>(dir)?;
    let files = read_files(dir, &manifest, S::PARAM_SETS, true)?;
    load_parts(dir, &manifest, &files).map_err(|e| add_prev_hint(dir, e))
}

/// The model of the checkpoint in `dir`, with every check of [`load`] on
/// `config.json` and the weights; the training state, which sampling does
/// not use, is only checked to have its recorded size.
pub fn load_model(dir: &Path) -> Result<ScoreModel> {
    let manifest = read_manifest(dir)?;
    let files = read_files(dir, &manifest, 1, false)?;
    let f = || -> Result<ScoreModel> {
        let net = load_net(dir, &manifest, &files)?;
        ScoreModel::new(manifest.model_config(), net)
    };
    f().map_err(|e| add_prev_hint(dir, e))
}

/// Read the files `manifest` lists (the training state only if
/// `with_state`; otherwise its size is checked), refusing unread a recorded
/// size beyond what the config's network can need (`state_sets` tensor sets
/// for the state file).
fn read_files<C>(
    dir: &Path,
    manifest: &Manifest<C>,
    state_sets: u64,
    with_state: bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    // A file can hold no more than its tensors plus a header: a recorded
    // size beyond what the config's network needs is refused unread.
    let n = manifest.net.num_params().unwrap_or(usize::MAX) as u64;
    for (name, d) in &manifest.files {
        let is_state = name == TRAIN_STATE_FILE;
        if is_state && !with_state {
            check_len(&dir.join(name), d)?;
            continue;
        }
        let sets = if is_state { state_sets } else { 1 };
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
    Ok(files)
}

/// Room for a safetensors header (names, shapes, metadata with the config).
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// [`load`] from bytes already in memory: `files` maps file names
/// (`config.json`, `model.safetensors`, `train_state.safetensors`) to their
/// contents; `dir` only names errors. Used by the fuzz targets.
pub fn load_from_bytes<S: RunState>(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Checkpoint<S>> {
    let config = files
        .get(CONFIG_FILE)
        .ok_or_else(|| ckpt_err(dir.join(CONFIG_FILE), "missing"))?;
    let manifest = parse_manifest::<S::Config>(&dir.join(CONFIG_FILE), config)?;
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

fn load_parts<S: RunState>(
    dir: &Path,
    manifest: &Manifest<S::Config>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Checkpoint<S>> {
    let net = load_net(dir, manifest, files)?;
    // train_state.safetensors: what the run needs beyond the EMA weights.
    let state = match &manifest.train {
        None => None,
        Some(train) => {
            let path = dir.join(TRAIN_STATE_FILE);
            let (bytes, digest) = listed(dir, manifest, files, TRAIN_STATE_FILE)?;
            let file = tensors::parse_tensors(&path, bytes)?;
            check_file(&path, &file, &S::tensor_specs(&net), manifest.step)?;
            check_digest(&path, bytes, digest)?;
            let saved: S::Config = file
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
            Some(S::from_tensors(train, &file, &net, manifest.step, &path)?)
        }
    };
    Ok(Checkpoint {
        model: ScoreModel::new(manifest.model_config(), net)?,
        state,
        dir: dir.to_path_buf(),
    })
}

/// The bytes of `name` and its recorded digest.
fn listed<'a, C>(
    dir: &Path,
    manifest: &'a Manifest<C>,
    files: &'a BTreeMap<String, Vec<u8>>,
    name: &str,
) -> Result<(&'a Vec<u8>, &'a FileDigest)> {
    let d = manifest
        .files
        .get(name)
        .ok_or_else(|| ckpt_err(dir.join(CONFIG_FILE), format!("does not list {name}")))?;
    let b = files
        .get(name)
        .ok_or_else(|| ckpt_err(dir.join(name), "missing"))?;
    Ok((b, d))
}

/// The EMA network of `model.safetensors`, checked against the manifest.
fn load_net<C>(
    dir: &Path,
    manifest: &Manifest<C>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<ScoreNet> {
    let config = manifest.model_config();
    let path = dir.join(MODEL_FILE);
    let (bytes, digest) = listed(dir, manifest, files, MODEL_FILE)?;
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
    let file = tensors::parse_tensors(&path, bytes)?;
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
    Ok(net)
}

/// Names, shapes (dtype F32 is checked by the parser), tensor checksum,
/// step and finiteness of one safetensors file of the set.
fn check_file(
    path: &Path,
    file: &TensorFile,
    specs: &[(String, Vec<usize>)],
    step: u64,
) -> Result<()> {
    tensors::check_tensors(path, file, specs)?;
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
pub fn load_latest<S: RunState>(dir: &Path) -> Result<(Checkpoint<S>, Option<Error>)> {
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
