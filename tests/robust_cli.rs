//! The `scoresde` binary under bad arguments, SIGKILL and NaN: every failure
//! is one clear line naming the value and what was expected, no panic, and
//! no lost checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::{assert_fails, run, BIN};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-robust-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small trained checkpoint (hidden 16, 20 steps).
fn small_model(dir: &Path) {
    let out = run(&[
        "train",
        "--hidden",
        "16",
        "--depth",
        "1",
        "--batch",
        "32",
        "--steps",
        "20",
        "--checkpoint-every",
        "10",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_bad_argument_is_one_clear_line() {
    let dir = tmpdir("args");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("out");
    let under_file = under_file.to_str().unwrap();
    let model = dir.join("model");
    small_model(&model);
    let m = model.to_str().unwrap();
    let out = dir.join("o");
    let o = out.to_str().unwrap();
    let t = |extra: &[&'static str]| {
        let mut v = vec!["train", "--out", o];
        v.extend_from_slice(extra);
        if !extra.contains(&"--steps") {
            v.extend_from_slice(&["--steps", "5"]);
        }
        v
    };
    assert_fails(&t(&["--steps", "0"]), &["steps = 0", ">= 1"]);
    assert_fails(&t(&["--batch", "0"]), &["batch = 0", ">= 1"]);
    assert_fails(&t(&["--lr", "-1"]), &["lr = -1", "> 0"]);
    assert_fails(&t(&["--lr", "inf"]), &["lr = inf", "finite"]);
    assert_fails(&t(&["--ema", "1.5"]), &["ema = 1.5", "0 <= ema < 1"]);
    assert_fails(&t(&["--hidden", "0"]), &["hidden = 0", "at least 1"]);
    assert_fails(
        &t(&["--checkpoint-every", "0"]),
        &["checkpoint-every = 0", ">= 1"],
    );
    assert_fails(
        &t(&["--data", "nope"]),
        &["nope", "checkerboard", "moons", "pinwheel"],
    );
    assert_fails(&t(&["--sde", "xx"]), &["xx", "vp, subvp, ve"]);
    assert_fails(&t(&["--on-nonfinite", "maybe"]), &["maybe", "stop, skip"]);
    assert_fails(
        &["--threads", "0", "train", "--steps", "5", "--out", o],
        &["threads = 0", ">= 1"],
    );
    assert_fails(
        &["train", "--steps", "5", "--out", under_file],
        &[under_file, "writable directory"],
    );
    // A fresh run never overwrites an existing checkpoint.
    assert_fails(
        &["train", "--steps", "5", "--out", m],
        &["already holds a checkpoint", "--resume"],
    );

    let s = |extra: &[&'static str]| {
        let mut v = vec!["sample", "--model", m, "--out", o];
        v.extend_from_slice(extra);
        v
    };
    assert_fails(&s(&["--sampler", "rk9"]), &["rk9", "ddpm, ddpm-cosine, em"]);
    assert_fails(&s(&["--steps", "0"]), &["steps = 0"]);
    assert_fails(&s(&["-n", "0"]), &["n = 0", ">= 1"]);
    assert_fails(&s(&["--batch", "0"]), &["batch = 0", ">= 1"]);
    assert_fails(&s(&["--clip-x0", "-1"]), &["clip-x0 = -1", "> 0 or `off`"]);
    assert_fails(&s(&["--clip-x0", "nan"]), &["clip-x0 = nan"]);
    assert_fails(
        &["sample", "--model", m, "--out", under_file],
        &[under_file, "writable directory"],
    );
    let missing = dir.join("missing");
    assert_fails(
        &["sample", "--model", missing.to_str().unwrap(), "--out", o],
        &["missing/config.json", "not found"],
    );
    // Corrupt one byte of the weights: the checksum names the file.
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "train_state.safetensors",
    ] {
        std::fs::copy(model.join(f), bad.join(f)).unwrap();
    }
    let w = bad.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    std::fs::write(&w, bytes).unwrap();
    assert_fails(
        &["sample", "--model", bad.to_str().unwrap(), "--out", o],
        &["model.safetensors", "checksum"],
    );
    assert_fails(
        &["demo", "--train-steps", "0", "--out", o],
        &["train-steps = 0"],
    );
    assert_fails(&["demo", "-n", "0", "--out", o], &["n = 0"]);
    // Resume must match the saved run.
    assert_fails(
        &["train", "--resume", m, "--steps", "30", "--data", "moons"],
        &["--data moons", "checkerboard"],
    );
    assert_fails(
        &["train", "--resume", m, "--steps", "30", "--hidden", "8"],
        &["--hidden 8", "16"],
    );
    assert_fails(
        &["train", "--resume", m, "--steps", "10"],
        &["steps = 10", "20"],
    );
    assert!(!out.join("samples.npy").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn train_args(out: &Path, steps: &str) -> Vec<String> {
    [
        "--threads",
        "1",
        "train",
        "--hidden",
        "128",
        "--steps",
        steps,
        "--checkpoint-every",
        "50",
        "--seed",
        "7",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_str().unwrap().to_string()])
    .collect()
}

fn saved_step(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("step")?.as_u64()
}

/// SIGKILL part way, resume, and the final files are byte-identical to an
/// uninterrupted run (data order and noise come from streams indexed by step).
#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let dir = tmpdir("kill");
    let (full, killed) = (dir.join("full"), dir.join("killed"));

    let mut child = Command::new(BIN)
        .args(train_args(&killed, "400"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if saved_step(&killed).is_some_and(|s| s >= 100) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before step 100"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint at step >= 100"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "training finished before the kill"
    );
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let at_kill = saved_step(&killed).unwrap();
    assert!((100..400).contains(&at_kill), "killed at step {at_kill}");

    let out = run(&[
        "--threads",
        "1",
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--steps",
        "400",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(train_args(&full, "400"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "model.safetensors",
        "train_state.safetensors",
        "config.json",
    ] {
        let (a, b) = (
            std::fs::read(full.join(f)).unwrap(),
            std::fs::read(killed.join(f)).unwrap(),
        );
        assert!(
            a == b,
            "{f} differs between the uninterrupted and the resumed run"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An absurd learning rate makes the loss NaN: training stops, names the
/// step, and the checkpoint on disk is the last good one, unchanged.
#[test]
fn nan_stops_training_and_keeps_the_last_checkpoint() {
    let dir = tmpdir("nan").join("run");
    small_model(&dir);
    let before: Vec<Vec<u8>> = [
        "config.json",
        "model.safetensors",
        "train_state.safetensors",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect();
    let d = dir.to_str().unwrap();
    let out = run(&["train", "--resume", d, "--steps", "60", "--lr", "1e30"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("non-finite") && err.contains("at training step 2"),
        "{err}"
    );
    assert!(err.contains("step 20"), "{err}");
    let after: Vec<Vec<u8>> = [
        "config.json",
        "model.safetensors",
        "train_state.safetensors",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect();
    assert!(before == after, "the checkpoint changed");
    assert!(scoresde::model::ScoreModel::load(&dir).is_ok());
    // With --on-nonfinite skip the run finishes and counts the skipped steps.
    let out = run(&[
        "train",
        "--resume",
        d,
        "--steps",
        "30",
        "--lr",
        "1e30",
        "--on-nonfinite",
        "skip",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("non-finite steps skipped"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

/// `sample` without `-n` draws one grid's worth from an image model (the
/// 2-D default of 10,000 images at 1,000 steps would take the better part of
/// an hour), and as many as `--grid` asks for; `-n` still wins.
#[test]
fn image_models_default_to_one_grid_of_samples() {
    let d = tmpdir("grid-default");
    let m = d.join("model");
    let m = m.to_str().unwrap();
    let out = run(&[
        "train", "--data", "digits", "--steps", "2", "--batch", "8", "--out", m,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (extra, rows) in [
        (&[][..], 64),
        (&["--grid", "9"][..], 9),
        (&["--grid", "9", "-n", "12"][..], 12),
    ] {
        let o = d.join(format!("s{rows}"));
        let mut args = vec![
            "sample",
            "--model",
            m,
            "--steps",
            "3",
            "--out",
            o.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let x = scoresde::npy::read2(o.join("samples.npy")).unwrap();
        assert_eq!(x.dim(), (rows, 64), "{extra:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The library says which option keeps existing outputs (`force`, a value
/// name); the binary spells it as its flag. An image comparison takes no
/// reference data set; the message names the value given.
#[test]
fn compare_messages_name_the_flags() {
    let d = tmpdir("compare-force");
    let out = d.to_str().unwrap();
    let args = [
        "compare",
        "--oracle",
        "checkerboard",
        "-n",
        "20",
        "--seeds",
        "1",
        "--nfe",
        "5",
        "--samplers",
        "em",
        "--out",
        out,
        "--name",
        "x",
    ];
    let first = run(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let csv = std::fs::read(d.join("x/results.csv")).unwrap();
    assert_fails(&args, &["invalid name = x", "pass --force to replace them"]);
    assert_eq!(std::fs::read(d.join("x/results.csv")).unwrap(), csv);
    assert_fails(
        &[
            "compare",
            "--oracle",
            "digits-empirical",
            "--data",
            "checkerboard",
            "--out",
            out,
        ],
        &["invalid data = checkerboard", "image comparison"],
    );
    let _ = std::fs::remove_dir_all(&d);
}
