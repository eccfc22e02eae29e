//! The conditional-generation flags of the binary (`train --conditional
//! --label-dropout`, `sample --class --guidance --guidance-interval`,
//! `inpaint`): each bad value is one `error:` line naming it and the valid
//! range, and the good paths run (a tiny conditional checkerboard model;
//! the digits oracle keeps the known pixels).

use std::path::{Path, PathBuf};

#[path = "common/cli.rs"]
mod cli;
use cli::{assert_fails, run};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "scoresde-robust-cond-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `base` followed by `extra`, as owned arguments.
fn cat(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn train(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "train", "--hidden", "16", "--depth", "1", "--batch", "32", "--steps", "20", "--out",
    ];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn conditional_training_and_sampling_flags() {
    let d = tmpdir("flags");
    let cond = d.join("cond");
    let plain = d.join("plain");
    train(&cond, &["--conditional", "--label-dropout", "0.2"]);
    train(&plain, &[]);
    let (c, p) = (cond.to_str().unwrap(), plain.to_str().unwrap());
    let cfg = std::fs::read_to_string(cond.join("config.json")).unwrap();
    assert!(cfg.contains("\"n_classes\": 8"), "{cfg}");
    let plain_cfg = std::fs::read_to_string(plain.join("config.json")).unwrap();
    assert!(!plain_cfg.contains("n_classes"), "{plain_cfg}");
    let out = d.join("s");
    let o = out.to_str().unwrap();
    let base = ["sample", "--steps", "10", "-n", "20", "--out", o, "--force"];
    let with = |extra: &[&str], model: &str| {
        let mut v = cat(&base, &["--model", model]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // Good: a class, guided, with an interval; without a class, labels
    // from the data, uniform or none, guided per sample.
    for extra in [
        &["--class", "3"][..],
        &[],
        &["--labels", "uniform", "--guidance", "1"],
        &["--labels", "data"],
        &["--labels", "null"],
        &["--class", "7", "--guidance", "1.5"],
        &[
            "--class",
            "0",
            "--guidance",
            "2",
            "--guidance-interval",
            "0.1,5",
        ],
    ] {
        let r = run(&with(extra, c));
        assert!(
            r.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    // Bad values, one clear line each: (arguments, model, what the line says).
    let bad: [(&[&str], &str, &[&str]); 9] = [
        (&["--class", "8"], c, &["class = 8", "0..=7"]),
        (&["--class", "1"], p, &["class = 1", "unconditional"]),
        (
            &["--class", "1", "--guidance", "-1"],
            c,
            &["guidance = -1", ">= 0"],
        ),
        (&["--guidance", "1"], p, &["guidance = 1", "unconditional"]),
        (
            &["--guidance", "1", "--labels", "null"],
            c,
            &["guidance = 1", "--labels null"],
        ),
        (
            &["--labels", "some"],
            c,
            &["labels = some", "data, uniform or null"],
        ),
        (
            &["--labels", "data"],
            p,
            &["labels = data", "unconditional"],
        ),
        (
            &["--labels", "data", "--class", "2"],
            c,
            &["labels = data", "--class 2"],
        ),
        (
            &["--class", "1", "--guidance-interval", "0.1,1"],
            c,
            &["guidance-interval", "--guidance"],
        ),
    ];
    for (extra, model, says) in bad {
        assert_fails(&with(extra, model), says);
    }
    for bad in ["5,1", "-1,2", "1", "a,b", "0.5,0.5"] {
        assert_fails(
            &with(
                &[
                    "--class",
                    "1",
                    "--guidance",
                    "1",
                    "--guidance-interval",
                    bad,
                ],
                c,
            ),
            &["guidance-interval", bad, "lo < hi"],
        );
    }
    // Training flags.
    let t = d.join("t");
    let t = t.to_str().unwrap();
    let tr = |extra: &[&str]| cat(&["train", "--steps", "5", "--out", t], extra);
    assert_fails(
        &tr(&["--data", "moons", "--conditional"]),
        &["moons", "labelled"],
    );
    assert_fails(
        &tr(&["--conditional", "--label-dropout", "1.5"]),
        &["label-dropout = 1.5", "0 <= p < 1"],
    );
    assert_fails(
        &tr(&["--label-dropout", "0.1"]),
        &["label-dropout = 0.1", "conditional"],
    );
    assert_fails(&tr(&["--conditional", "maybe"]), &["maybe", "on or off"]);
    // Resuming a conditional run keeps its classes and dropout.
    let r = run(&["train", "--resume", c, "--steps", "30"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // --conditional must agree with the run being resumed.
    for (dir, value, says) in [(c, "off", "class-conditional"), (p, "on", "unconditional")] {
        let args = [
            "train",
            "--resume",
            dir,
            "--steps",
            "40",
            "--conditional",
            value,
        ];
        assert_fails(&args, &["conditional", value, says]);
    }
    assert_fails(
        &[
            "train",
            "--resume",
            c,
            "--steps",
            "40",
            "--conditional",
            "--label-dropout",
            "0.3",
        ],
        &["label-dropout", "0.3", "0.2"],
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn inpaint_with_the_digits_oracle_and_its_flag_errors() {
    let d = tmpdir("inpaint");
    let o = d.join("out");
    let o = o.to_str().unwrap();
    let r = run(&[
        "inpaint",
        "--oracle",
        "digits-empirical",
        "--data",
        "digits",
        "--index",
        "3,40",
        "--mask",
        "bottom",
        "--steps",
        "30",
        "--jump",
        "5",
        "--resample",
        "2",
        "-n",
        "2",
        "--out",
        o,
    ]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(Path::new(o).join("inpaint.png").exists());
    // "known pixels: max |error| E": E ≤ 2e-3 (1e-3 of the data range).
    let err: f64 = text
        .split("max |error| ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no known-pixel error in: {text}"));
    assert!(err <= 2e-3, "{text}");
    assert!(text.contains("nearest training image"), "{text}");
    let r = run(&[
        "inpaint",
        "--oracle",
        "digits-empirical",
        "--index",
        "5",
        "--method",
        "replacement",
        "--sampler",
        "ddpm",
        "--steps",
        "20",
        "-n",
        "1",
        "--out",
        o,
        "--force",
        "--mask",
        "random:0.5",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let base = [
        "inpaint",
        "--oracle",
        "digits-empirical",
        "--out",
        o,
        "--force",
    ];
    let with = |extra: &[&str]| cat(&base, extra);
    assert_fails(&with(&["--index", "1797"]), &["index = 1797", "0..=1796"]);
    assert_fails(&with(&["--index", "-1"]), &["index = -1", "0..=1796"]);
    assert_fails(&with(&["--mask", "top"]), &["top"]);
    assert_fails(
        &with(&["--mask", "random:1.5"]),
        &["random fraction = 1.5", "(0, 1)"],
    );
    assert_fails(
        &with(&["--method", "magic"]),
        &["method = magic", "repaint"],
    );
    assert_fails(
        &with(&["--sampler", "em"]),
        &["sampler = em", "replacement"],
    );
    assert_fails(
        &[
            "inpaint",
            "--oracle",
            "mnist-empirical",
            "--data",
            "digits",
            "--out",
            o,
            "--force",
        ],
        &["oracle = mnist-empirical", "digits-empirical"],
    );
    // A mask PNG of the wrong size.
    let png = d.join("mask.png");
    image::GrayImage::from_pixel(5, 8, image::Luma([255u8]))
        .save(&png)
        .unwrap();
    assert_fails(&with(&["--mask", png.to_str().unwrap()]), &["8x8"]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn trained_classifier_guidance_flags() {
    let d = tmpdir("classifier");
    let (clf, clf_cb, model) = (d.join("clf"), d.join("clf-cb"), d.join("model"));
    let (k, kb, m) = (
        clf.to_str().unwrap(),
        clf_cb.to_str().unwrap(),
        model.to_str().unwrap(),
    );
    let tc = |extra: &[&str]| {
        cat(
            &[
                "train-classifier",
                "--steps",
                "20",
                "--batch",
                "32",
                "--hidden",
                "16",
            ],
            extra,
        )
    };
    for (out, data) in [(k, "8gaussians"), (kb, "checkerboard")] {
        let r = run(&tc(&["--data", data, "--out", out]));
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    assert!(clf.join("classifier.safetensors").exists());
    train(&model, &["--data", "8gaussians"]);
    let out = d.join("s");
    let o = out.to_str().unwrap();
    let base = [
        "sample", "--steps", "10", "-n", "20", "--out", o, "--force", "--model", m,
    ];
    let with = |extra: &[&str]| cat(&base, extra);
    // Good: the default scale (1) and an explicit one.
    for extra in [
        &["--classifier", k, "--class", "3"][..],
        &[
            "--classifier",
            k,
            "--class",
            "7",
            "--classifier-scale",
            "2.5",
        ],
    ] {
        let r = run(&with(extra));
        assert!(
            r.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    // Bad values, one clear line each.
    assert_fails(
        &with(&["--classifier", k, "--class", "8"]),
        &["class = 8", "0..=7", "classifier has 8 classes"],
    );
    assert_fails(
        &with(&[
            "--classifier",
            k,
            "--class",
            "1",
            "--classifier-scale",
            "-1",
        ]),
        &["classifier-scale = -1", ">= 0"],
    );
    assert_fails(&with(&["--classifier", k]), &["classifier = ", "--class K"]);
    assert_fails(
        &with(&["--class", "1", "--classifier-scale", "2"]),
        &["classifier-scale = 2", "--classifier DIR"],
    );
    assert_fails(
        &with(&["--classifier", k, "--class", "1", "--guidance", "1"]),
        &["guidance = 1", "--classifier"],
    );
    assert_fails(
        &with(&["--classifier", kb, "--class", "1"]),
        &["classifier = ", "8gaussians", "checkerboard"],
    );
    assert_fails(
        &with(&["--classifier", m, "--class", "1"]),
        &["not a classifier checkpoint", "score model"],
    );
    // A classifier of another SDE.
    let ve = d.join("clf-ve");
    let r = run(&tc(&[
        "--data",
        "8gaussians",
        "--sde",
        "ve",
        "--out",
        ve.to_str().unwrap(),
    ]));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_fails(
        &with(&["--classifier", ve.to_str().unwrap(), "--class", "1"]),
        &["classifier = ", "vp SDE"],
    );
    // Training flags.
    assert_fails(
        &tc(&["--data", "moons", "--out", k, "--force"]),
        &["data = moons", "labelled"],
    );
    assert_fails(
        &tc(&["--data", "8gaussians", "--out", k]),
        &["classifier.safetensors exists", "--force"],
    );
    assert_fails(
        &tc(&["--data", "8gaussians", "--out", m]),
        &["score-model checkpoint"],
    );
    assert_fails(
        &tc(&[
            "--data",
            "8gaussians",
            "--out",
            k,
            "--force",
            "--widths",
            "4,4,4",
        ]),
        &["widths = 4,4,4", "points"],
    );
    assert_fails(
        &tc(&["--data", "8gaussians", "--out", k, "--force", "--lr", "-1"]),
        &["lr = -1"],
    );
    assert_fails(
        &["train-classifier", "--steps", "0", "--out", k, "--force"],
        &["steps = 0"],
    );
    assert_fails(
        &tc(&["--data", "digits", "--out", k, "--force"]),
        &["hidden = 16", "images"],
    );
    // The failed runs left the classifier in place.
    assert!(clf.join("classifier.safetensors").exists());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn colorize_mask_needs_colour_images() {
    let d = tmpdir("colorize");
    let o = d.join("out");
    let o = o.to_str().unwrap();
    assert_fails(
        &[
            "inpaint",
            "--oracle",
            "digits-empirical",
            "--mask",
            "colorize",
            "--out",
            o,
        ],
        &["mask = colorize", "3-channel", "1 channel"],
    );
    let r = run(&[
        "inpaint",
        "--oracle",
        "emoji-empirical",
        "--data",
        "emoji",
        "--mask",
        "colorize",
        "--index",
        "7",
        "--steps",
        "10",
        "--jump",
        "5",
        "--resample",
        "2",
        "-n",
        "1",
        "--out",
        o,
    ]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(text.contains("known grey levels"), "{text}");
    std::fs::remove_dir_all(&d).ok();
}
