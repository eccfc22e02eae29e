//! Image training end to end through the library: train a tiny U-Net on
//! the 8x8 digits, sample, write the grid / npy / GIF, score; image
//! checkpoints round-trip bit-identically and resume bit-identically; MLP
//! checkpoints written before the U-Net existed still load and resume; bad
//! inputs give one clear error.

use std::path::PathBuf;

use ndarray::s;
use scoresde::data::images::resample;
use scoresde::data::{Toy, TrainData};
use scoresde::imaging;
use scoresde::model::ScoreModel;
use scoresde::nn::{MlpConfig, NetConfig, UNetConfig};
use scoresde::samplers::{self, SampleOptions};
use scoresde::train::checkpoint;
use scoresde::train::{self, TrainOptions, Trainer};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-imgtrain-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_unet() -> UNetConfig {
    UNetConfig {
        widths: vec![8, 8],
        emb_dim: 8,
        time_dim: 16,
        ..UNetConfig::new(1, 8, 8)
    }
}

fn digits_opts(steps: u64) -> TrainOptions {
    let mut o = TrainOptions::spec(Toy::Checkerboard);
    o.data = TrainData::by_name("digits", None, None).unwrap();
    o.net = tiny_unet().into();
    o.batch = 8;
    o.steps = steps;
    o.lr = 2e-3;
    o
}

#[test]
fn digits_train_sample_eval_round_trip() {
    let dir = tmpdir("roundtrip");
    let run = dir.join("run");
    let mut opts = digits_opts(20);
    opts.out_dir = Some(run.clone());
    opts.checkpoint_every = 10;
    opts.sample_every = 10;
    let (model, summary) = train::train(&opts).unwrap();
    assert!(summary.final_loss.is_finite());
    for step in [10, 20] {
        let p = run.join(format!("samples/step_{step:07}.png"));
        assert!(p.metadata().unwrap().len() > 100, "{}", p.display());
    }
    let loaded = ScoreModel::load(&run).unwrap();
    assert_eq!(loaded.net.params(), model.net.params());
    assert_eq!(imaging::image_shape_of(&loaded.config), Some((1, 8, 8)));

    let sampler = samplers::by_name("ddim", 8).unwrap();
    let mut so = SampleOptions::new(40, 1);
    so.record_every = Some(2);
    so.record_rows = 16;
    let out = samplers::sample(sampler.as_ref(), loaded.sde(), &loaded, &so).unwrap();
    assert_eq!(out.samples.dim(), (40, 64));
    assert!(out.samples.iter().all(|v| v.is_finite()));
    let paths = imaging::write_image_samples(
        &dir,
        out.samples.view(),
        (1, 8, 8),
        16,
        out.trajectory.as_ref(),
    )
    .unwrap();
    assert_eq!(paths.len(), 3);
    for p in &paths {
        assert!(p.metadata().unwrap().len() > 100, "{}", p.display());
    }
    let back = imaging::load_samples(&dir.join("samples.npy"), (1, 8, 8)).unwrap();
    assert_eq!(back, out.samples);

    // 20 steps of a tiny net: far from the data, so well above the floor.
    let r = imaging::evaluate(back.view(), "digits").unwrap();
    assert_eq!((r.n, r.features, r.nn_count), (40, "pixels", 40));
    assert!(r.fd.is_finite() && r.fd_floor.is_finite() && r.fd_floor > 0.0);
    assert!(r.fd > 2.0 * r.fd_floor, "fd {} floor {}", r.fd, r.fd_floor);
    assert!(r.nn.iter().all(|(m, lo)| m.is_finite() && lo <= m));
    assert!(r.to_markdown("digits").contains("Fréchet"));
}

#[test]
fn eval_of_the_training_half_equals_the_floor() {
    // The floor is FD(train[..n], reference[..n]); scoring train[..n] as if
    // generated must reproduce it exactly, and its NN distance is 0.
    let (train, _) = imaging::eval_sets("digits").unwrap();
    let x = train.pixels.slice(s![..50, ..]);
    let r = imaging::evaluate(x, "digits").unwrap();
    assert_eq!(r.fd, r.fd_floor);
    assert_eq!(r.nn[0], (0.0, 0.0));
    assert!(r.nn[1].1 > 0.0, "held-out images are not copies");
}

#[test]
fn image_checkpoint_round_trip_and_resume_are_bit_identical() {
    let dir = tmpdir("resume");
    let straight = {
        let mut t = Trainer::new(digits_opts(6)).unwrap();
        for _ in 0..6 {
            t.train_step().unwrap();
        }
        t
    };
    let mut t = Trainer::new(digits_opts(6)).unwrap();
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    t.save_checkpoint(&dir).unwrap();
    let ck = checkpoint::load(&dir).unwrap();
    assert!(matches!(ck.model.config.net, NetConfig::UNet(_)));
    assert_eq!(ck.model.net.params(), &t.ema.shadow[..]);
    let state = ck.state.as_ref().unwrap();
    assert_eq!(state.params, t.net.params());
    assert_eq!((&state.adam_m, &state.adam_v), (&t.adam.m, &t.adam.v));
    let mut r = Trainer::resume(digits_opts(6), ck).unwrap();
    for _ in 0..3 {
        r.train_step().unwrap();
    }
    assert_eq!(r.net.params(), straight.net.params());
    assert_eq!(r.ema.shadow, straight.ema.shadow);
}

/// `tests/fixtures/mlp_v2_checkpoint` was written by `scoresde train --data
/// moons --steps 3 --hidden 8 --depth 1 --batch 16` before the network
/// became `ScoreNet`.
#[test]
fn mlp_checkpoint_from_before_the_unet_loads_and_resumes() {
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlp_v2_checkpoint");
    let ck = checkpoint::load(&fixture).unwrap();
    let mlp = MlpConfig {
        hidden: 8,
        depth: 1,
        ..MlpConfig::new(2)
    };
    assert_eq!(ck.model.config.net, NetConfig::Mlp(mlp.clone()));
    assert_eq!(ck.model.config.step, 3);
    let names: Vec<String> = ck
        .model
        .net
        .named_tensors()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(
        names,
        ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    );
    let mut opts = TrainOptions::spec(Toy::from_name("moons").unwrap());
    opts.net = mlp.into();
    opts.batch = 16;
    opts.steps = 5;
    let mut fresh = Trainer::new(opts.clone()).unwrap();
    for _ in 0..5 {
        fresh.train_step().unwrap();
    }
    let mut resumed = Trainer::resume(opts, ck).unwrap();
    for _ in 0..2 {
        resumed.train_step().unwrap();
    }
    // The fixture's 3 steps ran with the Adam arithmetic of its time
    // (before the update used FMAs), so the runs agree to rounding, not
    // bit for bit. A lost Adam state or step count would move parameters
    // by about lr = 1e-3 (Adam's first steps move each by ≈ lr).
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let dp = max_diff(resumed.net.params(), fresh.net.params());
    let de = max_diff(&resumed.ema.shadow, &fresh.ema.shadow);
    assert!(dp < 1e-6 && de < 1e-6, "params differ by {dp}, EMA by {de}");
    assert_eq!(resumed.step, fresh.step);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let e = TrainData::by_name("cifar", None, None)
        .unwrap_err()
        .to_string();
    for name in [
        "cifar",
        "mnist",
        "mnist16",
        "digits",
        "emoji",
        "checkerboard",
        "folder",
    ] {
        assert!(e.contains(name), "{e}");
    }
    // 28 is not divisible by 2^(4-1) = 8.
    let mut o = TrainOptions::spec(Toy::Checkerboard);
    o.data = TrainData::by_name("mnist", None, None).unwrap();
    o.net = UNetConfig {
        widths: vec![8, 8, 8, 8],
        ..UNetConfig::new(1, 28, 28)
    }
    .into();
    let e = Trainer::new(o.clone()).err().unwrap().to_string();
    assert!(e.contains("28") && e.contains("divisible by 8"), "{e}");
    // A network for the wrong image shape.
    o.net = tiny_unet().into();
    let e = Trainer::new(o).err().unwrap().to_string();
    assert!(e.contains("64") && e.contains("784"), "{e}");
    // As many samples as the training half (899), one more than the
    // reference half (898): scored, not a panic.
    let x = ndarray::Array2::<f32>::zeros((899, 64));
    let r = imaging::evaluate(x.view(), "digits").unwrap();
    assert!(r.fd.is_finite() && r.fd_floor.is_finite());
    // More samples than the training half holds (the floor needs as many).
    let x = ndarray::Array2::<f32>::zeros((1000, 64));
    let e = imaging::evaluate(x.view(), "digits")
        .unwrap_err()
        .to_string();
    assert!(e.contains("1000") && e.contains("899"), "{e}");
    let e = imaging::evaluate(x.view(), "moons")
        .unwrap_err()
        .to_string();
    assert!(e.contains("moons") && e.contains("digits"), "{e}");
}

#[test]
fn resampling_keeps_constants_and_means() {
    let x = ndarray::Array2::from_shape_fn((3, 256), |(i, j)| {
        ((i * 7 + j * 13) % 17) as f32 / 8.0 - 1.0
    });
    let pooled = resample::mean_pool(&x, 1, 16, 16, 2);
    for (a, b) in x.rows().into_iter().zip(pooled.rows()) {
        assert!((a.mean().unwrap() - b.mean().unwrap()).abs() < 1e-5);
    }
    let c = ndarray::Array2::from_elem((2, 256), 0.25f32);
    let up = resample::mnist16_to_28(&c);
    assert_eq!(up.dim(), (2, 784));
    assert!(up.iter().all(|&v| (v - 0.25).abs() < 1e-6));
    // Bilinear ×2 of a horizontal ramp v = x is the ramp at (x + 0.5)/2 − 0.5
    // away from the clamped border.
    let ramp = ndarray::Array2::from_shape_fn((1, 64), |(_, j)| (j % 8) as f32);
    let up = resample::upsample2_bilinear(&ramp, 1, 8, 8);
    for xx in 1..15 {
        assert!((up[[0, 5 * 16 + xx]] - ((xx as f32 + 0.5) / 2.0 - 0.5)).abs() < 1e-6);
    }
}
