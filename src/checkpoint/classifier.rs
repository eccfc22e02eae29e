//! Classifier checkpoints: a directory holding `classifier.safetensors`,
//! the noise-conditional classifier's weights under the names of
//! [`crate::nn::noisy`] (`net.0.weight` … / `conv1.weight` …), with metadata
//! `classifier` (the [`NoisyClassifierConfig`] JSON), `format_version` and
//! `tensors_fnv1a64` (the checksum of [`tensor_checksum`], as in model
//! checkpoints). It is written by the one safetensors writer
//! ([`crate::tensors::save_tensors_as`]: `.tmp`, fsync, rename), so a
//! crash leaves the old file or the new one, never a mix. A score-model
//! checkpoint directory is never taken for one: it has no
//! `classifier.safetensors`, and [`save_classifier`] refuses a directory
//! that holds (part of) a model checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use super::format::{ckpt_err, existing_checkpoint_file, hex, tensor_checksum};
use crate::error::Result;
use crate::guidance::trained::{
    NoisyClassifierConfig, TrainedClassifier, CLASSIFIER_FORMAT_VERSION,
};
use crate::nn::noisy::NoisyNet;
use crate::tensors::{self, Layout};

/// The weights file of a classifier checkpoint.
pub const CLASSIFIER_FILE: &str = "classifier.safetensors";

/// Write `clf` into `dir` (created if missing) as `classifier.safetensors`.
/// Errors, writing nothing, if `dir` holds a score-model checkpoint.
pub fn save_classifier(dir: &Path, clf: &TrainedClassifier) -> Result<()> {
    if let Some(p) = existing_checkpoint_file(dir) {
        return Err(ckpt_err(
            dir,
            format!(
                "holds a score-model checkpoint ({} exists); a classifier goes into a folder of its own",
                p.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    let path = dir.join(CLASSIFIER_FILE);
    let named = clf.net.named_slices(clf.net.params());
    let mut meta = BTreeMap::new();
    meta.insert(
        "classifier".to_string(),
        serde_json::to_string_pretty(&clf.config).map_err(|e| ckpt_err(&path, e.to_string()))?,
    );
    meta.insert(
        "format_version".to_string(),
        CLASSIFIER_FORMAT_VERSION.to_string(),
    );
    meta.insert("tensors_fnv1a64".to_string(), hex(tensor_checksum(&named)));
    tensors::save_tensors_as(&path, &named, &meta, Layout::Sorted)?;
    crate::fsutil::sync_dir(dir);
    Ok(())
}

/// Load the classifier of checkpoint directory `dir`, checking the config,
/// every tensor's name and shape, the checksum and that every value is
/// finite.
pub fn load_classifier(dir: &Path) -> Result<TrainedClassifier> {
    let path = dir.join(CLASSIFIER_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        let hint = if existing_checkpoint_file(dir).is_some() {
            " (it holds a score model; train a classifier with `scoresde train-classifier`)"
        } else {
            ""
        };
        return Err(ckpt_err(
            dir,
            format!("is not a classifier checkpoint: no {CLASSIFIER_FILE}{hint}"),
        ));
    }
    let file = tensors::load_tensors(&path)?;
    let meta = |key: &str| {
        file.metadata
            .get(key)
            .ok_or_else(|| ckpt_err(&path, format!("no '{key}' metadata")))
    };
    let version = meta("format_version")?;
    if version != &CLASSIFIER_FORMAT_VERSION.to_string() {
        return Err(ckpt_err(
            &path,
            format!("format_version {version}, expected {CLASSIFIER_FORMAT_VERSION}"),
        ));
    }
    let config: NoisyClassifierConfig = serde_json::from_str(meta("classifier")?)
        .map_err(|e| ckpt_err(&path, format!("invalid classifier config: {e}")))?;
    config.net.validate()?;
    let mut net = NoisyNet::new(config.net.clone(), 0)?;
    tensors::check_tensors(&path, &file, &net.tensor_specs())?;
    let want = meta("tensors_fnv1a64")?;
    let got = hex(tensor_checksum(&file.tensors));
    if &got != want {
        return Err(ckpt_err(
            &path,
            format!("tensor checksum {got} differs from the recorded {want} (the file is corrupt)"),
        ));
    }
    if file
        .tensors
        .iter()
        .any(|(_, _, d)| d.iter().any(|v| !v.is_finite()))
    {
        return Err(ckpt_err(&path, "holds non-finite weights"));
    }
    let slices: Vec<_> = file
        .tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), s.clone(), &d[..]))
        .collect();
    net.load_named(&slices)
        .map_err(|e| ckpt_err(&path, e.to_string()))?;
    TrainedClassifier::new(config, net)
}
