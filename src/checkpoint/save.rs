//! The crash-safe save protocol (see the [module docs](super)): back up
//! the complete set into `prev/`, write each data file atomically, then the
//! commit record `config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::format::{ckpt_err, hex, tensor_checksum, FileDigest, Manifest, MAX_FILE_BYTES};
use super::load::verify_files;
use super::{RunState, CONFIG_FILE, MODEL_FILE, PREV_DIR, TRAIN_STATE_FILE};
use crate::error::{Error, Result};
use crate::fsutil::{self, fnv1a64};
use crate::model::{ScoreModel, FORMAT_VERSION};
use crate::tensors::{self, Layout, NamedTensor};

/// Save `model` (EMA weights) and optionally the training `state` into `dir`
/// with the protocol in the module docs.
pub fn save<S: RunState>(dir: &Path, model: &ScoreModel, state: Option<&S>) -> Result<()> {
    match state {
        None => save_set::<S::Config>(dir, model, None),
        Some(s) => {
            let (tensors, meta) = s.to_tensors(&model.net)?;
            save_set(dir, model, Some((s.config(), tensors, meta)))
        }
    }
}

/// A training state as written: its `config.json` section, its tensors and
/// its own metadata.
pub(super) type StateParts<'a, C> = (&'a C, Vec<NamedTensor<&'a [f32]>>, BTreeMap<String, String>);

/// [`save`] with the state already mapped to tensors.
pub(super) fn save_set<C: Serialize>(
    dir: &Path,
    model: &ScoreModel,
    state: Option<StateParts<'_, C>>,
) -> Result<()> {
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
    tensors::save_tensors_as(&path, &model_tensors, &meta, Layout::Sorted)?;
    files.insert(MODEL_FILE.to_string(), digest_of(&path)?);

    let state_path = dir.join(TRAIN_STATE_FILE);
    let mut train = None;
    if let Some((train_config, tensors, mut meta)) = state {
        meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        meta.insert("step".to_string(), config.step.to_string());
        meta.insert(
            "train".to_string(),
            serde_json::to_string(train_config)
                .map_err(|e| ckpt_err(&state_path, e.to_string()))?,
        );
        meta.insert("tensors_fnv1a64".into(), hex(tensor_checksum(&tensors)));
        tensors::save_tensors_as(&state_path, &tensors, &meta, Layout::Sorted)?;
        files.insert(TRAIN_STATE_FILE.to_string(), digest_of(&state_path)?);
        train = Some(train_config);
    }

    let has_state = train.is_some();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        sde: config.sde,
        parameterization: config.parameterization,
        net: config.net.clone(),
        data: config.data.clone(),
        step: config.step,
        output: config.output,
        train,
        files,
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| ckpt_err(dir.join(CONFIG_FILE), e.to_string()))?;
    fsutil::write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())?;
    if !has_state && state_path.exists() {
        // A stale state from an older save is not part of this set.
        let _ = std::fs::remove_file(&state_path);
    }
    fsutil::sync_dir(dir);
    Ok(())
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
