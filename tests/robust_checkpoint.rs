//! Checkpoint corruption: every byte of every file of a small checkpoint is
//! corrupted (and every file truncated at every length) in turn; each load
//! fails cleanly and the previous good checkpoint still loads. An
//! interrupted save (new weights, old config.json) is detected and resume
//! falls back to `prev/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use scoresde::data::Toy;
use scoresde::error::Error;
use scoresde::nn::MlpConfig;
use scoresde::train::checkpoint::{self, CONFIG_FILE, MODEL_FILE, PREV_DIR, TRAIN_STATE_FILE};
use scoresde::train::{TrainOptions, Trainer};

const FILES: [&str; 3] = [CONFIG_FILE, MODEL_FILE, TRAIN_STATE_FILE];

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "scoresde-robust-ckpt-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_trainer() -> Trainer {
    let mut opts = TrainOptions::spec(Toy::Checkerboard);
    opts.net = MlpConfig {
        hidden: 4,
        depth: 1,
        ..MlpConfig::new(2)
    }
    .into();
    opts.batch = 8;
    opts.steps = 10;
    Trainer::new(opts).unwrap()
}

/// A checkpoint at step 2 in `dir/prev` and one at step 4 at the top level.
fn two_saves(dir: &Path) -> Trainer {
    let mut t = tiny_trainer();
    for _ in 0..2 {
        t.train_step().unwrap();
    }
    t.save_checkpoint(dir).unwrap();
    for _ in 0..2 {
        t.train_step().unwrap();
    }
    t.save_checkpoint(dir).unwrap();
    assert_eq!(
        checkpoint::load(&dir.join(PREV_DIR))
            .unwrap()
            .model
            .config
            .step,
        2
    );
    t
}

fn assert_clean_failure(dir: &Path, what: &str) {
    match checkpoint::load(dir) {
        Ok(c) => panic!("{what}: loaded step {}", c.model.config.step),
        Err(Error::Checkpoint { msg, .. } | Error::Format { msg, .. }) => assert!(!msg.is_empty()),
        Err(Error::InvalidArgument { .. } | Error::Io { .. } | Error::Mismatch(_)) => {}
        Err(e) => panic!("{what}: unexpected error kind {e}"),
    }
}

#[test]
fn every_corrupted_byte_and_truncation_fails_and_prev_still_loads() {
    let dir = tmpdir("bytes");
    let t = two_saves(&dir);
    let good = checkpoint::load(&dir).unwrap();
    assert_eq!(good.model.config.step, 4);
    assert_eq!(good.model.net.params(), &t.ema.shadow[..]);
    let state = good.state.as_ref().unwrap();
    assert_eq!(state.params, t.net.params());
    assert_eq!(
        (state.adam_m.as_slice(), state.adam_step),
        (t.adam.m.as_slice(), 4)
    );
    let mut tried = 0;
    let originals: BTreeMap<String, Vec<u8>> = FILES
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect();
    assert!(checkpoint::load_from_bytes(&dir, &originals).is_ok());
    for f in FILES {
        let path = dir.join(f);
        let orig = originals[f].clone();
        // Every byte and every truncation through the in-memory loader (the
        // same checks as `load` after reading) ...
        for i in 0..orig.len() {
            let mut variants = vec![orig[..i].to_vec()];
            for flip in [0x01u8, 0x80] {
                let mut b = orig.clone();
                b[i] ^= flip;
                variants.push(b);
            }
            for b in variants {
                let mut files = originals.clone();
                files.insert(f.to_string(), b.clone());
                let what = format!("{f} at byte {i}");
                match checkpoint::load_from_bytes(&dir, &files) {
                    Ok(_) => panic!(
                        "{what}: loaded {:?}",
                        String::from_utf8_lossy(&b[i.saturating_sub(20)..(i + 5).min(b.len())])
                    ),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
                tried += 1;
            }
        }
        // ... and a stride of them on disk.
        for i in (0..orig.len()).step_by(97) {
            let mut b = orig.clone();
            b[i] ^= 0x01;
            std::fs::write(&path, &b).unwrap();
            assert_clean_failure(&dir, &format!("{f} byte {i}"));
            std::fs::write(&path, &orig[..i]).unwrap();
            assert_clean_failure(&dir, &format!("{f} truncated to {i}"));
        }
        std::fs::remove_file(&path).unwrap();
        assert_clean_failure(&dir, &format!("{f} removed"));
        // The previous good checkpoint is untouched and still loads, and
        // resume falls back to it.
        let (c, why) = checkpoint::load_latest(&dir).unwrap();
        assert_eq!((c.model.config.step, c.dir), (2, dir.join(PREV_DIR)));
        assert!(why.is_some());
        std::fs::write(&path, &orig).unwrap();
    }
    assert!(tried > 4000, "only {tried} corruptions");
    assert_eq!(checkpoint::load(&dir).unwrap().model.config.step, 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A kill between files of a save leaves new weights beside the old
/// `config.json`: detected at load, naming the file; resume uses `prev/`.
#[test]
fn interrupted_save_is_detected_and_prev_survives() {
    let dir = tmpdir("interrupted");
    let mut t = two_saves(&dir);
    let other = tmpdir("interrupted-next");
    t.train_step().unwrap();
    t.save_checkpoint(&other).unwrap();
    std::fs::copy(other.join(MODEL_FILE), dir.join(MODEL_FILE)).unwrap();
    let err = checkpoint::load(&dir).unwrap_err().to_string();
    assert!(err.contains(MODEL_FILE), "{err}");
    assert!(err.contains("step 5") && err.contains("step 4"), "{err}");
    assert!(err.contains("previous checkpoint is in"), "{err}");
    let (c, _) = checkpoint::load_latest(&dir).unwrap();
    assert_eq!(c.model.config.step, 2);
    // A new save over the broken top level keeps the good prev/ (step 2),
    // rather than backing up the broken set.
    t.save_checkpoint(&dir).unwrap();
    assert_eq!(
        checkpoint::load(&dir.join(PREV_DIR))
            .unwrap()
            .model
            .config
            .step,
        2
    );
    assert_eq!(checkpoint::load(&dir).unwrap().model.config.step, 5);
    for d in [dir, other] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A tensor whose shape differs from the config is named with both shapes.
#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let dir = tmpdir("shape");
    let t = tiny_trainer();
    t.save_checkpoint(&dir).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(CONFIG_FILE)).unwrap()).unwrap();
    m["net"]["hidden"] = 5.into();
    std::fs::write(dir.join(CONFIG_FILE), m.to_string()).unwrap();
    let err = checkpoint::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("net.0.weight") && err.contains("[4, 34]") && err.contains("[5, 34]"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The writer's bytes are a valid safetensors file for the reference parser,
/// and the same state always gives the same bytes.
#[test]
fn written_files_parse_with_safetensors_and_are_deterministic() {
    let (a, b) = (tmpdir("det-a"), tmpdir("det-b"));
    tiny_trainer().save_checkpoint(&a).unwrap();
    tiny_trainer().save_checkpoint(&b).unwrap();
    for f in FILES {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let file = scoresde::tensors::load_tensors(&a.join(MODEL_FILE)).unwrap();
    let names: Vec<&str> = file.tensors.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        names,
        ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight"]
    );
    for d in [a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}
