//! Class 6: a resumed folder run trains on the same data or refuses, names
//! what changed, works from another working directory and needs no
//! --image-size / --channels repeated.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_scoresde");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

/// A 8x8 grey PNG whose pixels are all `v`.
fn png(path: &Path, v: u8) {
    let img = image::GrayImage::from_pixel(8, 8, image::Luma([v]));
    img.save(path).unwrap();
}

/// A folder of four images and a 10-step MLP run on it (run from `base`
/// with relative paths, as a user would).
fn setup(name: &str) -> PathBuf {
    let base = tmpdir(name);
    std::fs::create_dir_all(base.join("imgs")).unwrap();
    for i in 0..4u8 {
        png(&base.join(format!("imgs/{i}.png")), 40 * i);
    }
    let out = run_in(
        &base,
        &[
            "train",
            "--data",
            "imgs",
            "--image-size",
            "8",
            "--channels",
            "1",
            "--net",
            "mlp",
            "--hidden",
            "16",
            "--depth",
            "1",
            "--batch",
            "8",
            "--steps",
            "10",
            "--out",
            "run",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    base
}

fn resume(cwd: &Path, dir: &str, steps: &str) -> Output {
    run_in(cwd, &["train", "--resume", dir, "--steps", steps])
}

#[test]
fn resume_refuses_changed_data_and_names_the_change() {
    let base = setup("changed");
    let imgs = base.join("imgs");
    let config_before = std::fs::read(base.join("run/config.json")).unwrap();
    let refused = |what: &str, needles: &[&str]| {
        let out = resume(&base, "run", "20");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: resumed on changed data");
        assert!(err.contains("training data changed"), "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: '{n}' not in {err}");
        }
        assert_eq!(
            std::fs::read(base.join("run/config.json")).unwrap(),
            config_before,
            "{what}: the checkpoint changed"
        );
    };
    // An image added.
    png(&imgs.join("9.png"), 200);
    refused("added", &["added", "9.png"]);
    std::fs::remove_file(imgs.join("9.png")).unwrap();
    // An image removed.
    let keep = std::fs::read(imgs.join("1.png")).unwrap();
    std::fs::remove_file(imgs.join("1.png")).unwrap();
    refused("removed", &["removed", "1.png"]);
    // An image changed in content but not in name (same size even).
    png(&imgs.join("1.png"), 41);
    refused("changed", &["changed", "1.png"]);
    // Grown by a byte.
    std::fs::write(imgs.join("1.png"), &keep).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(imgs.join("2.png"))
        .unwrap()
        .write_all(b"x")
        .unwrap();
    refused("grown", &["2.png"]);
    // Restored: the resume goes ahead.
    let mut b = std::fs::read(imgs.join("2.png")).unwrap();
    b.pop();
    std::fs::write(imgs.join("2.png"), b).unwrap();
    let out = resume(&base, "run", "20");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Naming the same folder again needs no size / channels either.
    let out = run_in(
        &base,
        &[
            "train", "--resume", "run", "--data", "imgs", "--steps", "30",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_folder_run_resumes_from_another_directory_without_repeating_flags() {
    let base = setup("cwd");
    let elsewhere = base.join("some/where");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // No --image-size / --channels, a different working directory, the
    // run named by a relative path from there.
    let out = resume(&elsewhere, "../../run", "20");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = std::fs::read_to_string(base.join("run/config.json")).unwrap();
    assert!(cfg.contains("\"step\": 20"), "{cfg}");
    let abs = std::fs::canonicalize(base.join("imgs")).unwrap();
    assert!(
        cfg.contains(&*abs.to_string_lossy()),
        "absolute data path stored: {cfg}"
    );
    // A flag that contradicts the stored one is refused, naming it.
    let out = run_in(
        &elsewhere,
        &[
            "train",
            "--resume",
            "../../run",
            "--steps",
            "30",
            "--channels",
            "3",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("channels = 3"),
        "{err}"
    );
    // The folder moved away: a clear error, not a silent other data set.
    std::fs::rename(base.join("imgs"), base.join("imgs-moved")).unwrap();
    let out = resume(&elsewhere, "../../run", "30");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is gone"), "{err}");
}

#[test]
fn a_bundled_run_refuses_a_data_directory_with_other_files() {
    let base = tmpdir("bundled");
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let data = base.join("data");
    std::fs::create_dir_all(data.join("digits")).unwrap();
    std::fs::copy(real.join("README.md"), data.join("README.md")).unwrap();
    let csv = data.join("digits/digits.csv.gz");
    std::fs::copy(real.join("digits/digits.csv.gz"), &csv).unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .current_dir(&base)
            .env("SCORESDE_DATA", &data)
            .args(args)
            .output()
            .unwrap()
    };
    let train = [
        "train", "--data", "digits", "--net", "mlp", "--hidden", "16", "--depth", "1", "--batch",
        "8", "--steps", "5", "--out", "run",
    ];
    let out = run(&train);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same files: the run resumes.
    let out = run(&["train", "--resume", "run", "--steps", "8"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // digits.csv.gz replaced by one with its first image dropped.
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&csv).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let fewer: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(fewer.as_bytes()).unwrap();
    std::fs::write(&csv, z.finish().unwrap()).unwrap();
    let out = run(&["train", "--resume", "run", "--steps", "12"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "resumed on other digits");
    assert!(
        err.contains("training data changed") && err.contains("digits.csv.gz"),
        "{err}"
    );
}
