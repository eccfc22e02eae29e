//! Class 9: messages say exactly what is wrong, once; flags that do not
//! apply are refused; outputs never mix runs; big toy samples are scored
//! on a subsample, saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_scoresde");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-msgs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// One `error:` line with every needle and none of the `absent`.
fn one_line(args: &[&str], needles: &[&str], absent: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: '{n}' not in {err}");
    }
    for n in absent {
        assert!(!lines[0].contains(n), "{args:?}: '{n}' in {err}");
    }
    err
}

fn small_model(dir: &Path) {
    let out = run(&[
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
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn io_errors_name_the_os_error_once() {
    let d = tmpdir("io");
    let missing = d.join("missing.npy");
    for args in [
        vec![
            "eval",
            "--samples",
            missing.to_str().unwrap(),
            "--data",
            "digits",
        ],
        vec![
            "sample",
            "--model",
            d.to_str().unwrap(),
            "--out",
            d.to_str().unwrap(),
        ],
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        for needle in ["os error", "No such file"] {
            assert!(err.matches(needle).count() <= 1, "{args:?}: twice: {err}");
        }
    }
}

#[test]
fn numbers_and_keys_are_named() {
    let d = tmpdir("nums");
    let m = d.join("model");
    small_model(&m);
    let m = m.to_str().unwrap();
    let o = d.join("o");
    let o = o.to_str().unwrap();
    one_line(
        &["sample", "--model", m, "--steps", "-5", "--out", o],
        &["--steps", "-5"],
        &[],
    );
    one_line(
        &["train", "--batch", "-3", "--out", o],
        &["--batch", "-3"],
        &[],
    );
    one_line(
        &["compare", "--oracle", "checkerboard", "--nfe", "5,-1"],
        &["--nfe", "-1"],
        &[],
    );
    // A duplicated sampler key is called duplicated, not unknown.
    for spec in ["pc:snr=0.1,snr=0.2", "edm:rho=7,churn=0,rho=5"] {
        one_line(
            &["sample", "--model", m, "--sampler", spec, "--out", o],
            &["given twice"],
            &["a parameter this sampler takes"],
        );
    }
    // format_version of the wrong JSON type says so.
    let cfg = Path::new(m).join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    for bad in ["\"2\"", "2.5", "null"] {
        std::fs::write(
            &cfg,
            text.replace(
                "\"format_version\": 2",
                &format!("\"format_version\": {bad}"),
            ),
        )
        .unwrap();
        one_line(
            &["sample", "--model", m, "--out", o],
            &["'format_version' is", "expected the integer 2"],
            &["missing"],
        );
    }
    std::fs::write(&cfg, text).unwrap();
}

#[test]
fn on_nonfinite_skip_is_only_suggested_when_it_helps() {
    let d = tmpdir("skip");
    // lr 1e39 overflows the weights: not skippable, so never suggested.
    for policy in ["stop", "skip"] {
        let out = d.join(policy);
        let err = one_line(
            &[
                "train",
                "--hidden",
                "16",
                "--depth",
                "1",
                "--batch",
                "16",
                "--steps",
                "5",
                "--lr",
                "1e39",
                // The SPEC recipe's constant rate (a warm-up would start lower).
                "--recipe",
                "spec",
                "--on-nonfinite",
                policy,
                "--out",
                out.to_str().unwrap(),
            ],
            &["non-finite", "cannot be skipped", "lower --lr"],
            &["--on-nonfinite skip"],
        );
        assert_eq!(err.matches("lower --lr").count(), 1, "{err}");
        assert!(
            !out.exists(),
            "a run that saved nothing left {}",
            out.display()
        );
    }
}

#[test]
fn flags_that_do_not_apply_are_refused() {
    let d = tmpdir("flags");
    let m = d.join("model");
    small_model(&m);
    let o = d.join("o");
    let o = o.to_str().unwrap();
    let m = m.to_str().unwrap();
    one_line(
        &["train", "--data", "digits", "--channels", "3", "--out", o],
        &["channels = 3", "digits"],
        &[],
    );
    one_line(
        &["train", "--data", "mnist", "--image-size", "28", "--out", o],
        &["image-size = 28"],
        &[],
    );
    one_line(
        &["train", "--image-size", "8", "--out", o],
        &["image-size = 8"],
        &[],
    );
    one_line(
        &[
            "train",
            "--data",
            "moons",
            "--sample-every",
            "5",
            "--out",
            o,
        ],
        &["sample-every = 5"],
        &[],
    );
    one_line(
        &["sample", "--model", m, "--grid", "16", "--out", o],
        &["grid = 16"],
        &[],
    );
    assert!(!Path::new(o).exists());
}

/// A `.npy` with a raw header of any shape (values zero).
fn npy_shape(path: &Path, shape: &[usize]) {
    let n: usize = shape.iter().product();
    let a = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(shape));
    assert_eq!(a.len(), n);
    scoresde::npy::write(path, a.view()).unwrap();
}

#[test]
fn sample_arrays_of_the_wrong_layout_are_named() {
    let d = tmpdir("npy");
    let cases: [(&[usize], &str, &[&str]); 5] = [
        (&[], "digits", &["shape []"]),
        (&[4, 8, 8, 1], "digits", &["channels-last"]),
        (&[4, 16, 16, 3], "emoji", &["channels-last", "transpose"]),
        (&[4, 3, 8, 8], "digits", &["[4, 3, 8, 8]", "1x8x8"]),
        (&[4], "digits", &["shape [4]"]),
    ];
    for (i, (shape, data, needles)) in cases.iter().enumerate() {
        let p = d.join(format!("{i}.npy"));
        npy_shape(&p, shape);
        one_line(
            &["eval", "--samples", p.to_str().unwrap(), "--data", data],
            needles,
            &["ShapeError"],
        );
    }
}

#[test]
fn sample_force_leaves_no_old_gif_and_big_toy_runs_are_subsampled() {
    let d = tmpdir("gif");
    let m = d.join("model");
    small_model(&m);
    let m = m.to_str().unwrap();
    let o = d.join("o");
    let os = o.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    ok(&[
        "sample", "--model", m, "-n", "32", "--steps", "4", "--gif", "--out", os,
    ]);
    assert!(o.join("reverse.gif").exists());
    ok(&[
        "sample", "--model", m, "-n", "32", "--steps", "4", "--force", "--out", os,
    ]);
    assert!(
        !o.join("reverse.gif").exists(),
        "old GIF beside new samples"
    );
    // 20,000 points: metrics on the first 10,000, and the output says so.
    let stdout = ok(&[
        "sample", "--model", m, "-n", "20000", "--steps", "2", "--force", "--out", os,
    ]);
    assert!(stdout.contains("first 10000 of 20000"), "{stdout}");
    let a = scoresde::npy::read2(o.join("samples.npy")).unwrap();
    assert_eq!(a.nrows(), 20000, "all samples are still written");
}
