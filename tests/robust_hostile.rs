//! Class 3 (consistent-looking inputs that used to panic), class 4 (devices,
//! FIFOs and symlinks to them are refused, never read) and class 5
//! (temporary files are created exclusively; planted symlinks are never
//! followed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scoresde::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use scoresde::nn::{MlpConfig, NetConfig, ScoreNet};
use scoresde::sde::SdeConfig;

const BIN: &str = env!("CARGO_BIN_EXE_scoresde");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run with a deadline (a FIFO read would block forever): killed and
/// reported as a failure after 30 s.
fn run_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("{args:?} hung (killed after 30 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// Fails without a panic, in one `error:` line containing every needle.
fn refused(out: &Output, what: &str, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: succeeded");
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{what}: '{n}' not in {err}");
    }
}

fn model(dir: &Path, data: &str, data_dim: usize) {
    let cfg = MlpConfig {
        hidden: 8,
        depth: 1,
        ..MlpConfig::new(data_dim)
    };
    let net = ScoreNet::new(NetConfig::Mlp(cfg.clone()), 0).unwrap();
    let sde = SdeConfig::by_name("vp").unwrap();
    let config = ModelConfig {
        format_version: FORMAT_VERSION,
        sde,
        parameterization: Parameterization::for_sde(&sde),
        net: NetConfig::Mlp(cfg),
        data: data.into(),
        step: 1,
        output: None,
    };
    ScoreModel::new(config, net).unwrap().save(dir).unwrap();
}

#[test]
fn a_network_that_does_not_fit_its_data_set_is_refused_at_load() {
    let d = tmpdir("fit");
    for (data, dim) in [
        ("checkerboard", 3),
        ("moons", 1),
        ("digits", 63),
        ("mnist", 64),
    ] {
        let m = d.join(format!("{data}-{dim}"));
        model(&m, data, dim);
        let e = ScoreModel::load(&m).unwrap_err().to_string();
        assert!(e.contains("values per point") && e.contains(data), "{e}");
        let out = d.join("out");
        let o = run(&[
            "sample",
            "--model",
            m.to_str().unwrap(),
            "-n",
            "8",
            "--steps",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]);
        refused(&o, data, &["values per point"]);
        let o = run(&[
            "compare",
            "--model",
            m.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        refused(&o, data, &["values per point"]);
    }
}

fn idx(dims: &[u32], fill: u8) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    b.extend(std::iter::repeat_n(fill, n as usize));
    b
}

/// A data folder whose MNIST train split is `train` px and test split
/// `test` px a side, with the bundled classifier.
fn data_dir(d: &Path, train: u32, test: u32) -> PathBuf {
    let data = d.join(format!("data-{train}-{test}"));
    let mnist = data.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    std::fs::write(data.join("README.md"), "test data").unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-classifier.safetensors");
    std::fs::copy(real, data.join("mnist-classifier.safetensors")).unwrap();
    for (prefix, side) in [("train", train), ("t10k", test)] {
        std::fs::write(
            mnist.join(format!("{prefix}-images-idx3-ubyte")),
            idx(&[12, side, side], 7),
        )
        .unwrap();
        std::fs::write(
            mnist.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[12], 3),
        )
        .unwrap();
    }
    data
}

/// A `[n, d]` f32 .npy of zeros.
fn npy(path: &Path, n: usize, d: usize) {
    let a = ndarray::Array2::<f32>::zeros((n, d));
    scoresde::npy::write(path, a.view()).unwrap();
}

#[test]
fn eval_refuses_splits_or_a_classifier_of_another_image_size() {
    let d = tmpdir("eval");
    // Test split 20x20, train 28x28: refused, not a panic in the classifier.
    let data = data_dir(&d, 28, 20);
    let s = d.join("s784.npy");
    npy(&s, 4, 784);
    let o = run_env(
        &["eval", "--samples", s.to_str().unwrap(), "--data", "mnist"],
        &[("SCORESDE_DATA", &data)],
    );
    refused(&o, "20x20 test split", &["test split", "20x20"]);
    // Both splits 20x20: the 28x28 classifier does not fit them.
    let data = data_dir(&d, 20, 20);
    let s = d.join("s400.npy");
    npy(&s, 4, 400);
    let o = run_env(
        &["eval", "--samples", s.to_str().unwrap(), "--data", "mnist"],
        &[("SCORESDE_DATA", &data)],
    );
    refused(&o, "20x20 splits", &["classifier", "28x28"]);
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn devices_fifos_and_links_to_them_are_refused_unread() {
    use std::os::unix::fs::symlink;
    let d = tmpdir("dev");
    let link = d.join("zero.npy");
    symlink("/dev/zero", &link).unwrap();
    let fifo = d.join("fifo.npy");
    mkfifo(&fifo);
    for (p, kind) in [
        (Path::new("/dev/zero"), "character device"),
        (link.as_path(), "character device"),
        (fifo.as_path(), "FIFO"),
    ] {
        let o = run(&["eval", "--samples", p.to_str().unwrap(), "--data", "digits"]);
        refused(&o, &p.display().to_string(), &[kind, "not a regular file"]);
    }
    // A checkpoint file replaced by a link to /dev/zero, or by a FIFO.
    for (name, what) in [
        ("model.safetensors", "zero"),
        ("config.json", "zero"),
        ("model.safetensors", "fifo"),
    ] {
        let m = d.join(format!("m-{what}-{name}"));
        model(&m, "checkerboard", 2);
        std::fs::remove_file(m.join(name)).unwrap();
        if what == "zero" {
            symlink("/dev/zero", m.join(name)).unwrap();
        } else {
            mkfifo(&m.join(name));
        }
        let out = d.join("out");
        let o = run(&[
            "sample",
            "--model",
            m.to_str().unwrap(),
            "-n",
            "4",
            "--out",
            out.to_str().unwrap(),
        ]);
        refused(&o, &format!("{what} {name}"), &["not a regular file"]);
    }
}

#[cfg(unix)]
#[test]
fn planted_temporary_file_symlinks_are_never_followed() {
    use std::os::unix::fs::symlink;
    let d = tmpdir("tmp");
    let secret = d.join("secret.txt");
    std::fs::write(&secret, b"keep me").unwrap();
    // (1) Through the binary: the old fixed temp names are planted as links.
    let m = d.join("model");
    model(&m, "checkerboard", 2);
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    for n in ["samples.npy.tmp", "samples.png.tmp", "config.json.tmp"] {
        symlink(&secret, out.join(n)).unwrap();
        symlink(&secret, m.join(n)).unwrap();
    }
    let o = run(&[
        "sample",
        "--model",
        m.to_str().unwrap(),
        "-n",
        "16",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep me");
    let meta = std::fs::symlink_metadata(out.join("samples.npy")).unwrap();
    assert!(meta.file_type().is_file(), "samples.npy is a regular file");

    // (2) A link at the final name is replaced, not followed.
    let target = d.join("final.bin");
    symlink(&secret, &target).unwrap();
    scoresde::fsutil::write_atomic(&target, b"new").unwrap();
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep me");
    assert!(std::fs::symlink_metadata(&target)
        .unwrap()
        .file_type()
        .is_file());
    assert_eq!(std::fs::read(&target).unwrap(), b"new");

    // (3) Exclusive create: links planted at every temporary name this
    // process can pick next make the write fail; none is ever opened.
    let path = d.join("victim.bin");
    let pid = std::process::id();
    for k in 0..4000 {
        let name = format!("victim.bin.{pid}.{k}.tmp");
        symlink(&secret, d.join(name)).unwrap();
    }
    let r = scoresde::fsutil::write_atomic(&path, b"x");
    assert!(r.is_err(), "wrote through a planted name");
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep me");
    assert!(!path.exists());

    // (4) Concurrent temporary files never share a name.
    let base = d.join("many.bin");
    let names: Vec<PathBuf> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..50)
                        .map(|_| scoresde::fsutil::create_tmp(&base).unwrap().0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 400);
}

#[test]
fn a_checkpoint_file_bigger_than_its_network_needs_is_refused_unread() {
    let d = tmpdir("sparse");
    let m = d.join("model");
    model(&m, "checkerboard", 2);
    // A 2 GiB sparse weights file, recorded as such in config.json.
    let big: u64 = 2 << 30;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(m.join("model.safetensors"))
        .unwrap();
    f.set_len(big).unwrap();
    let cfg = m.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["files"]["model.safetensors"]["bytes"] = big.into();
    std::fs::write(&cfg, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let start = Instant::now();
    let e = ScoreModel::load(&m).unwrap_err().to_string();
    assert!(e.contains("can need"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2), "it read the file");
}
