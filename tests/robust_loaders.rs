//! Every loader under random and mutated bytes: it returns `Ok` or a clean
//! `Err`, never panics or allocates from an absurd header; checksummed
//! formats reject every change. Adding a loader is one line in `LOADERS`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use scoresde::train::checkpoint::{self, CONFIG_FILE, MODEL_FILE, TRAIN_STATE_FILE};

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
    Loader {
        name: "idx images (raw)",
        valid: idx_valid,
        load: |b| {
            via_file("images-idx3-ubyte", b, |p| {
                scoresde::data::images::load_idx_images(p).map(|s| s.len().to_string())
            })
        },
        changes_detected: false,
    },
    Loader {
        name: "idx images (gzip)",
        valid: || gzip(&idx_valid()),
        load: |b| {
            via_file("images-idx3-ubyte.gz", b, |p| {
                scoresde::data::images::load_idx_images(p).map(|s| s.len().to_string())
            })
        },
        changes_detected: false,
    },
    Loader {
        name: "digits csv",
        valid: || {
            b"0,16,3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,7\n".to_vec()
        },
        load: |b| {
            via_file("digits.csv", b, |p| {
                scoresde::data::images::load_digits_csv(p).map(|s| s.len().to_string())
            })
        },
        changes_detected: false,
    },
];

/// A 2-image 3x2 IDX image file (magic 0x00000803).
fn idx_valid() -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2];
    b.extend((0..12u8).map(|v| v * 20));
    b
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Run a path-based loader on `bytes` written to a fresh temporary file.
fn via_file(
    name: &str,
    bytes: &[u8],
    load: impl Fn(&Path) -> Result<String, scoresde::Error>,
) -> Result<String, scoresde::Error> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "scoresde-loader-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = load(&path);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

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
