//! Checkpoint loader on arbitrary files: the input is split into
//! config.json, model.safetensors and train_state.safetensors by two
//! little-endian u16 lengths at its start.
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use scoresde::train::checkpoint::{load_from_bytes, CONFIG_FILE, MODEL_FILE, TRAIN_STATE_FILE};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let a = u16::from_le_bytes([data[0], data[1]]) as usize;
    let b = u16::from_le_bytes([data[2], data[3]]) as usize;
    let rest = &data[4..];
    let a = a.min(rest.len());
    let b = b.min(rest.len() - a);
    let mut files = BTreeMap::new();
    files.insert(CONFIG_FILE.to_string(), rest[..a].to_vec());
    files.insert(MODEL_FILE.to_string(), rest[a..a + b].to_vec());
    files.insert(TRAIN_STATE_FILE.to_string(), rest[a + b..].to_vec());
    let _ = load_from_bytes(std::path::Path::new("fuzz"), &files);
});
