//! Every loader under random and mutated bytes: it returns `Ok` or a clean
//! `Err`, never panics or allocates from an absurd header; checksummed
//! formats reject every change. Adding a loader is one line in `LOADERS`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use scoresde::checkpoint::{self, CONFIG_FILE, MODEL_FILE, TRAIN_STATE_FILE};

/// A loader under test: a valid input to mutate, the loader on bytes, and
/// whether any change to a valid input must be rejected or load to the same
/// thing (checksummed formats) rather than merely not panic.
struct Loader {
    name: &'static str,
    valid: fn() -> Vec<u8>,
    load: fn(&[u8]) -> Result<String, scoresde::Error>,
    changes_detected: bool,
}

const LOADERS: &[Loader] = &[
    Loader {
        name: "npy",
        valid: npy_valid,
        load: npy_load,
        changes_detected: false,
    },
    Loader {
        name: "checkpoint config.json",
        valid: || ckpt_file(CONFIG_FILE),
        load: |b| ckpt_load(CONFIG_FILE, b),
        changes_detected: true,
    },
    Loader {
        name: "checkpoint model.safetensors",
        valid: || ckpt_file(MODEL_FILE),
        load: |b| ckpt_load(MODEL_FILE, b),
        changes_detected: true,
    },
    Loader {
        name: "checkpoint train_state.safetensors",
        valid: || ckpt_file(TRAIN_STATE_FILE),
        load: |b| ckpt_load(TRAIN_STATE_FILE, b),
        changes_detected: true,
    },
];

fn npy_valid() -> Vec<u8> {
    let mut b = scoresde::npy::header_bytes(&[3, 2]);
    for i in 0..6 {
        b.extend_from_slice(&(i as f32 - 1.5).to_le_bytes());
    }
    b
}

fn npy_load(b: &[u8]) -> Result<String, scoresde::Error> {
    scoresde::npy::parse(Path::new("x.npy"), b).map(|a| format!("{:?}", a.shape()))
}

/// The files of a small trained checkpoint, built once.
fn ckpt_files() -> &'static BTreeMap<String, Vec<u8>> {
    static FILES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        use scoresde::train::{TrainOptions, Trainer};
        let mut opts = TrainOptions::spec(scoresde::data::Toy::Checkerboard);
        opts.net = scoresde::nn::MlpConfig {
            hidden: 4,
            depth: 1,
            ..scoresde::nn::MlpConfig::new(2)
        }
        .into();
        opts.batch = 4;
        let mut t = Trainer::new(opts).unwrap();
        t.train_step().unwrap();
        let dir =
            std::env::temp_dir().join(format!("scoresde-robust-loaders-{}", std::process::id()));
        t.save_checkpoint(&dir).unwrap();
        let files = [CONFIG_FILE, MODEL_FILE, TRAIN_STATE_FILE]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        files
    })
}

fn ckpt_file(name: &str) -> Vec<u8> {
    ckpt_files()[name].clone()
}

fn ckpt_load(name: &str, bytes: &[u8]) -> Result<String, scoresde::Error> {
    let mut files = ckpt_files().clone();
    files.insert(name.to_string(), bytes.to_vec());
    checkpoint::load_from_bytes(Path::new("ckpt"), &files).map(|c| {
        format!(
            "{:?} {:?} {:?}",
            c.model.config,
            c.model.net.params(),
            c.state
        )
    })
}

/// The valid input of every loader loads.
#[test]
fn valid_inputs_load() {
    for l in LOADERS {
        assert!((l.load)(&(l.valid)()).is_ok(), "{}", l.name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes (and random bytes behind a valid prefix) never panic.
    #[test]
    fn random_bytes_are_rejected_cleanly(
        which in 0..LOADERS.len(),
        prefix_len in 0usize..64,
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let l = &LOADERS[which];
        let valid = (l.valid)();
        let mut bytes = valid[..prefix_len.min(valid.len())].to_vec();
        bytes.extend_from_slice(&tail);
        let _ = (l.load)(&bytes);
    }

    /// Byte edits, insertions and truncations of a valid input never panic;
    /// for checksummed formats the result is an error or the same content.
    #[test]
    fn mutated_valid_inputs_are_rejected_cleanly(
        which in 0..LOADERS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let l = &LOADERS[which];
        let valid = (l.valid)();
        let mut b = valid.clone();
        for (at, byte, kind) in edits {
            if b.is_empty() { break; }
            let i = at.index(b.len());
            match kind {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                _ => b.truncate(i),
            }
        }
        let got = (l.load)(&b);
        if l.changes_detected && b != valid {
            if let Ok(desc) = got {
                prop_assert_eq!(desc, (l.load)(&valid).unwrap(), "{} accepted a changed file", l.name);
            }
        }
    }
}
