//! Class 2 (huge numbers are refused up front, in one line, before any
//! work) and class 7 (non-finite samples and SDE parameters outside the
//! finite range are errors, never NaN with exit 0).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ndarray::{ArrayView2, ArrayViewMut2};
use scoresde::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use scoresde::nn::{MlpConfig, NetConfig, ScoreNet};
use scoresde::samplers::{self, SampleOptions};
use scoresde::score::Score;
use scoresde::sde::SdeConfig;
use scoresde::Error;

const BIN: &str = env!("CARGO_BIN_EXE_scoresde");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-limits-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(BIN).args(args).output().unwrap();
    (out, start.elapsed())
}

/// One `error:` line naming every needle, quickly (nothing was trained or
/// allocated first), and no output folder.
fn refused_fast(args: &[&str], needles: &[&str], out_dir: &Path) {
    let (out, took) = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        out.status.code() != Some(134) && !err.contains("memory allocation"),
        "{args:?} aborted: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: '{n}' not in {err}");
    }
    assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
    assert!(!out_dir.exists(), "{args:?} created {}", out_dir.display());
}

fn tiny_model(dir: &Path, scale: f32) {
    let cfg = MlpConfig {
        hidden: 8,
        depth: 1,
        ..MlpConfig::new(2)
    };
    let mut net = ScoreNet::new(NetConfig::Mlp(cfg.clone()), 0).unwrap();
    for p in net.params_mut() {
        *p *= scale;
    }
    let sde = SdeConfig::by_name("vp").unwrap();
    let config = ModelConfig {
        format_version: FORMAT_VERSION,
        sde,
        parameterization: Parameterization::for_sde(&sde),
        net: NetConfig::Mlp(cfg),
        data: "checkerboard".into(),
        step: 1,
        output: None,
    };
    ScoreModel::new(config, net).unwrap().save(dir).unwrap();
}

#[test]
fn huge_sizes_are_refused_before_any_work() {
    let d = tmpdir("sizes");
    let model = d.join("model");
    tiny_model(&model, 1.0);
    let m = model.to_str().unwrap();
    let out = d.join("out");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["train", "--batch", "100000000000", "--out", o],
            vec!["batch = 100000000000"],
        ),
        (
            vec!["train", "--batch", "1e11", "--out", o],
            vec!["batch = 100000000000"],
        ),
        (
            // Under the cap, but the activations would not fit.
            vec![
                "train", "--batch", "1000000", "--hidden", "4096", "--out", o,
            ],
            vec!["batch = 1000000", "memory"],
        ),
        (
            vec!["sample", "--model", m, "-n", "1e13", "--out", o],
            vec!["n = 10000000000000", "memory"],
        ),
        (
            vec!["sample", "--model", m, "--steps", "1e12", "--out", o],
            vec!["steps = 1000000000000"],
        ),
        (
            vec![
                "compare",
                "--oracle",
                "checkerboard",
                "-n",
                "1e14",
                "--out",
                o,
            ],
            vec!["n = 100000000000000"],
        ),
        (
            vec![
                "compare",
                "--oracle",
                "checkerboard",
                "--nfe",
                "5,1e12",
                "--out",
                o,
            ],
            vec!["nfe = 1000000000000"],
        ),
        (
            vec![
                "compare",
                "--oracle",
                "checkerboard",
                "--seeds",
                "1e11",
                "--out",
                o,
            ],
            vec!["seeds = 100000000000"],
        ),
        (
            vec![
                "compare", "--model", m, "-n", "999999", "--seeds", "1000", "--out", o,
            ],
            vec!["n = 999999", "n x seeds"],
        ),
        // After training would have been too late: refused first.
        (
            vec!["demo", "--sample-steps", "1e12", "--out", o],
            vec!["sample-steps = 1000000000000"],
        ),
        (
            vec!["demo", "-n", "1e13", "--out", o],
            vec!["n = 10000000000000"],
        ),
        (
            vec!["--threads", "18446744073709551615", "train", "--out", o],
            vec!["threads = 18446744073709551615"],
        ),
        (
            vec!["--threads", "1e9", "sample", "--model", m, "--out", o],
            vec!["threads = 1000000000"],
        ),
        (
            vec!["sample", "--model", m, "-n", "1e30", "--out", o],
            vec!["-n", "too large"],
        ),
    ];
    for (args, needles) in cases {
        refused_fast(&args, &needles, &out);
    }
}

#[test]
fn sde_parameters_outside_the_finite_range_are_refused() {
    let vp = |beta_min, beta_max, eps| SdeConfig::Vp {
        beta_min,
        beta_max,
        eps,
    };
    let ve = |sigma_min, sigma_max, eps| SdeConfig::Ve {
        sigma_min,
        sigma_max,
        eps,
    };
    for bad in [
        vp(0.1, 1e300, 1e-3),
        vp(0.1, 20.0, 1e-300),
        vp(1e-300, 20.0, 1e-3),
        ve(0.01, 1e300, 1e-5),
        ve(1e-300, 50.0, 1e-5),
        ve(0.01, 50.0, 1e-300),
    ] {
        let e = bad.build().unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{bad:?}: {e}");
    }
    for good in [
        vp(0.1, 20.0, 1e-3),
        vp(1e-6, 1e3, 1e-8),
        ve(0.01, 50.0, 1e-5),
        ve(1e-6, 1e6, 1e-8),
    ] {
        good.build().unwrap();
    }
    // The same through a checkpoint's config.json.
    let d = tmpdir("sde");
    let model = d.join("model");
    tiny_model(&model, 1.0);
    let p = model.join("config.json");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replace("\"beta_max\": 20.0", "\"beta_max\": 1e300")).unwrap();
    let e = ScoreModel::load(&model).unwrap_err().to_string();
    assert!(e.contains("beta_max") && e.contains("config.json"), "{e}");
}

/// A score that is fine above `t_bad` and `value` below it.
struct Breaks {
    t_bad: f64,
    value: f32,
}

impl Score for Breaks {
    fn dim(&self) -> usize {
        2
    }
    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        let v = self.value;
        out.zip_mut_with(&x, |o, &x| *o = if t < self.t_bad { v } else { -x });
    }
}

#[test]
fn non_finite_samples_are_an_error_naming_step_and_time() {
    let sde = SdeConfig::by_name("vp").unwrap().build().unwrap();
    let opts = SampleOptions::new(64, 0);
    for (spec, value) in [
        ("em", f32::NAN),
        ("ddpm", f32::INFINITY),
        ("ode-euler", 3e38),
    ] {
        let sampler = samplers::by_name(spec, 100).unwrap();
        let score = Breaks { t_bad: 0.5, value };
        let e = samplers::sample(sampler.as_ref(), sde.as_ref(), &score, &opts).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, Error::NonFiniteSample(_)), "{spec}: {m}");
        // It breaks below t = 0.5: the step named is one of those.
        let t: f64 = m.split("t = ").nth(1).unwrap()[..8].parse().unwrap();
        assert!(m.contains("step") && t < 0.5, "{spec}: {m}");
    }
    // A finite score never trips it.
    let sampler = samplers::by_name("em", 100).unwrap();
    let score = Breaks {
        t_bad: -1.0,
        value: 0.0,
    };
    samplers::sample(sampler.as_ref(), sde.as_ref(), &score, &opts).unwrap();

    // Through the binary: absurd but finite weights give an error, not
    // NaN samples with exit 0, and no samples.npy.
    let d = tmpdir("nan");
    let model = d.join("model");
    tiny_model(&model, 1e30);
    let out = d.join("out");
    let (o, _) = run(&[
        "sample",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "20",
        "-n",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "exit 0 with NaN samples");
    assert!(err.contains("non-finite") && err.contains("t = "), "{err}");
    assert!(!out.join("samples.npy").exists());
}

#[test]
fn endless_work_is_refused_too() {
    let d = tmpdir("endless");
    let model = d.join("model");
    tiny_model(&model, 1.0);
    let m = model.to_str().unwrap();
    let out = d.join("out");
    let o = out.to_str().unwrap();
    for (args, needles) in [
        (
            vec!["train", "--steps", "1e18", "--out", o],
            vec!["steps = 1000000000000000000"],
        ),
        (
            vec!["demo", "--train-steps", "1e12", "--out", o],
            vec!["train-steps = 1000000000000"],
        ),
        (
            vec![
                "sample",
                "--model",
                m,
                "--sampler",
                "pc:corrector_steps=1000000000000",
                "--out",
                o,
            ],
            vec!["corrector_steps = 1000000000000"],
        ),
        (
            vec![
                "sample",
                "--model",
                m,
                "--sampler",
                "ald:inner=99999999",
                "--out",
                o,
            ],
            vec!["inner = 99999999"],
        ),
    ] {
        refused_fast(&args, &needles, &out);
    }
}
