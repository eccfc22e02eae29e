//! Class 1 (no data loss without --force), class 8 (one writer per output
//! directory) and "rejected commands create nothing", through the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scoresde");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-outputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: '{n}' not in {err}");
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn small_train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--hidden",
        "16",
        "--depth",
        "1",
        "--batch",
        "16",
        "--steps",
        "10",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// A way to damage a copy of a checkpoint directory.
type Damage = Box<dyn Fn(&Path)>;

#[test]
fn a_fresh_train_never_replaces_any_part_of_a_checkpoint() {
    let base = tmpdir("fresh");
    let good = base.join("good");
    assert!(small_train(&good, &[]).status.success());
    let g = good.to_str().unwrap();
    let r = run(&["train", "--resume", g, "--steps", "20"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(good.join("prev/config.json").exists());

    // Variants: config.json of another format version, unreadable JSON,
    // removed (only the weights left), and an unrelated prev/ alone.
    let cases: Vec<(&str, Damage)> = vec![
        (
            "version3",
            Box::new(|d: &Path| {
                let p = d.join("config.json");
                let s = std::fs::read_to_string(&p).unwrap();
                std::fs::write(
                    &p,
                    s.replace("\"format_version\": 2", "\"format_version\": 3"),
                )
                .unwrap();
            }),
        ),
        (
            "garbage",
            Box::new(|d: &Path| std::fs::write(d.join("config.json"), b"{not json").unwrap()),
        ),
        (
            "no-config",
            Box::new(|d: &Path| std::fs::remove_file(d.join("config.json")).unwrap()),
        ),
        (
            "prev-only",
            Box::new(|d: &Path| {
                for f in [
                    "config.json",
                    "model.safetensors",
                    "train_state.safetensors",
                ] {
                    std::fs::remove_file(d.join(f)).unwrap();
                }
                std::fs::write(d.join("prev/notes.txt"), b"mine").unwrap();
            }),
        ),
    ];
    for (name, damage) in cases {
        let d = base.join(name);
        std::fs::create_dir_all(d.join("prev")).unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "train_state.safetensors",
        ] {
            std::fs::copy(good.join(f), d.join(f)).unwrap();
            std::fs::copy(good.join("prev").join(f), d.join("prev").join(f)).unwrap();
        }
        damage(&d);
        let before = snapshot(&d);
        let out = small_train(&d, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: train replaced it");
        assert!(
            err.contains("--force") && err.contains("--resume"),
            "{name}: {err}"
        );
        assert_eq!(snapshot(&d), before, "{name}: files changed");
        // --force is the explicit way to start over.
        let out = small_train(&d, &["--force"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_second_demo_never_replaces_the_first() {
    let d = tmpdir("demo");
    let out = d.join("demo");
    let o = out.to_str().unwrap();
    let demo = |extra: &[&str]| {
        let mut a = vec![
            "demo",
            "--train-steps",
            "10",
            "--sample-steps",
            "5",
            "-n",
            "64",
            "--out",
            o,
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    assert!(demo(&[]).status.success());
    let before = snapshot(&out);
    fails_with(
        &[
            "demo",
            "--train-steps",
            "10",
            "--sample-steps",
            "5",
            "-n",
            "64",
            "--seed",
            "3",
            "--out",
            o,
        ],
        &["--force", "exists"],
    );
    assert_eq!(snapshot(&out), before);
    // Only the model of an earlier demo present still counts.
    for f in ["results.md", "results.csv", "samples.png", "reverse.gif"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    fails_with(&["demo", "--train-steps", "10", "--out", o], &["model"]);
    assert!(demo(&["--force"]).status.success());
}

#[test]
fn rejected_commands_create_no_directory() {
    let d = tmpdir("nodir");
    let model = d.join("model");
    assert!(small_train(&model, &[]).status.success());
    let m = model.to_str().unwrap();
    let target = d.join("a/b/c");
    let t = target.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["train", "--batch", "0", "--out", t],
        vec!["train", "--data", "nope", "--out", t],
        vec!["train", "--batch", "100000000000", "--out", t],
        vec!["sample", "--model", "/nonexistent", "--out", t],
        vec!["sample", "--model", m, "--sampler", "ald", "--out", t],
        vec!["sample", "--model", m, "-n", "10000000000000", "--out", t],
        vec!["demo", "--sample-steps", "1000000000000", "--out", t],
    ];
    for args in cases {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            !d.join("a").exists(),
            "{args:?} created {}",
            d.join("a").display()
        );
    }
}

/// Wait until `cond` holds (at most 60 s).
fn wait_for(cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_writers_into_one_directory_the_second_is_refused() {
    let d = tmpdir("lock");
    let out = d.join("run");
    let o = out.to_str().unwrap();
    // A long first writer (killed below), holding the lock.
    let mut first = Command::new(BIN)
        .args([
            "train",
            "--hidden",
            "16",
            "--depth",
            "1",
            "--batch",
            "16",
            "--steps",
            "100000000",
            "--checkpoint-every",
            "50",
            "--out",
            o,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| out.join("config.json").exists());
    // Second writers: a fresh run with --force, a resume, a sample and a
    // demo into the same folder; all refused with the lock's message.
    let lock_msg = ["in use by another scoresde process"];
    fails_with(
        &["train", "--steps", "10", "--force", "--out", o],
        &lock_msg,
    );
    fails_with(&["train", "--resume", o, "--steps", "100"], &lock_msg);
    // In-process, the library refuses a second lock the same way.
    let e = scoresde::fsutil::lock_dir(&out).unwrap_err();
    assert!(matches!(e, scoresde::Error::Locked { .. }), "{e}");
    first.kill().unwrap();
    first.wait().unwrap();
    // Once the first writer is gone (killed: the kernel drops its lock),
    // the run resumes.
    let _l = scoresde::fsutil::lock_dir(&out).unwrap();
    drop(_l);
    let r = run(&["train", "--resume", o, "--steps", "1"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!err.contains("in use"), "{err}");
}

/// True once process `pid` holds an flock (Linux `/proc/locks`).
fn holds_lock(pid: u32) -> bool {
    std::fs::read_to_string("/proc/locks")
        .map(|s| {
            s.lines().any(|l| {
                l.contains("FLOCK") && l.split_whitespace().nth(4) == Some(&pid.to_string())
            })
        })
        .unwrap_or(false)
}

#[cfg(target_os = "linux")]
#[test]
fn two_samplers_or_compares_into_one_directory_the_second_is_refused() {
    let d = tmpdir("lock2");
    let model = d.join("model");
    assert!(small_train(&model, &[]).status.success());
    let m = model.to_str().unwrap();
    let out = d.join("s");
    let o = out.to_str().unwrap();
    let cmp = d.join("c");
    let c = cmp.to_str().unwrap();
    let long: [&[&str]; 2] = [
        &[
            "sample", "--model", m, "-n", "1000000", "--steps", "1000", "--out", o,
        ],
        &[
            "compare",
            "--oracle",
            "checkerboard",
            "-n",
            "200000",
            "--seeds",
            "5",
            "--out",
            c,
            "--name",
            "x",
        ],
    ];
    let second: [&[&str]; 2] = [
        &[
            "sample", "--model", m, "-n", "10", "--steps", "2", "--force", "--out", o,
        ],
        &[
            "compare",
            "--oracle",
            "checkerboard",
            "-n",
            "10",
            "--seeds",
            "1",
            "--nfe",
            "5",
            "--samplers",
            "em",
            "--force",
            "--out",
            c,
            "--name",
            "x",
        ],
    ];
    for (first, second) in long.iter().zip(second) {
        let mut child = Command::new(BIN)
            .args(*first)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        wait_for(|| holds_lock(pid));
        fails_with(second, &["in use by another scoresde process"]);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
