//! The trained noise-conditional classifier p_θ(y | x_t, t) of classifier
//! guidance: its hand-written gradients against finite differences, its
//! checkpoint, and, trained briefly on 8 Gaussians, against the exact
//! classifier of `MixtureScore` and as the guide of the exact
//! unconditional score.
//!
//! Finite differences: the network runs in f32, the log-probabilities are
//! formed in f64 from its f32 logits, and the central difference
//! (f(θ + h v) − f(θ − h v)) / 2h is taken in f64. With h = 1e-2 the
//! truncation error is O(h² f''') ≈ 1e-4 relative and the f32 rounding of
//! the logits contributes O(ε_f32 |z| / h) ≈ 1e-5, so a 2% relative
//! tolerance (with a 1e-3 absolute floor for derivatives near zero)
//! passes a correct gradient and fails a wrong one: a dropped term, a
//! missing c_in factor or a transposed layout gives O(1) relative error.

use ndarray::{Array2, ArrayView2};
use rand::RngExt;
use scoresde::checkpoint::classifier::{load_classifier, save_classifier, CLASSIFIER_FILE};
use scoresde::data::TrainData;
use scoresde::guidance::{
    ClassifierGuidance, NoisyClassifier, NoisyClassifierConfig, TrainedClassifier,
};
use scoresde::nn::graph::GraphCache;
use scoresde::nn::noisy::{NoisyConfig, NoisyNet};
use scoresde::prelude::*;
use scoresde::train::noisy::{train_noisy_classifier, NoisyTraining};

fn rng(seed: u64) -> scoresde::rng::StreamRng {
    scoresde::rng::stream(seed, 0x4743_4b00, 0)
}

fn normal(r: &mut scoresde::rng::StreamRng, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
    let mut v = vec![0.0f32; rows * cols];
    scoresde::rng::fill_normal(r, &mut v);
    Array2::from_shape_vec((rows, cols), v.into_iter().map(|x| x * scale).collect()).unwrap()
}

fn bound(config: NoisyConfig, sde: &str, seed: u64) -> TrainedClassifier {
    let net = NoisyNet::new(config.clone(), seed).unwrap();
    let cfg = NoisyClassifierConfig {
        format_version: scoresde::guidance::trained::CLASSIFIER_FORMAT_VERSION,
        sde: SdeConfig::by_name(sde).unwrap(),
        data: "test".into(),
        net: config,
        step: 0,
        batch: 1,
        lr: 1e-3,
        seed,
        final_loss: 0.0,
    };
    TrainedClassifier::new(cfg, net).unwrap()
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / (a.abs().max(b.abs()) + 1e-3)
}

/// ∇_x ln p(y | x, t) against central differences of ln p along random
/// unit directions, for every row and two classes.
fn check_input_gradient(clf: &TrainedClassifier, x: &Array2<f32>, t: f64, name: &str) {
    let mut r = rng(5);
    let h = 1e-2f32;
    let d = x.ncols();
    let mut worst = 0f64;
    for y in [0, clf.label_count() - 1] {
        let mut g = Array2::<f32>::zeros(x.raw_dim());
        clf.log_prob_grad(x.view(), t, y, g.view_mut());
        for i in 0..x.nrows() {
            for _ in 0..3 {
                let mut v: Vec<f32> = (0..d).map(|_| r.random::<f32>() - 0.5).collect();
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                v.iter_mut().for_each(|a| *a /= norm);
                let analytic: f64 = g
                    .row(i)
                    .iter()
                    .zip(&v)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                let row = |sign: f32| {
                    let mut p = x.row(i).to_owned().insert_axis(ndarray::Axis(0));
                    p.iter_mut().zip(&v).for_each(|(a, &b)| *a += sign * h * b);
                    clf.log_probs(p.view(), t)[[0, y]]
                };
                let numeric = (row(1.0) - row(-1.0)) / (2.0 * h as f64);
                let e = rel_err(analytic, numeric);
                worst = worst.max(e);
                assert!(
                    e < 2e-2,
                    "{name}: row {i} class {y}: backward {analytic:.6e} vs finite difference {numeric:.6e}"
                );
            }
        }
    }
    eprintln!("{name}: worst input-gradient relative error {worst:.2e}");
}

/// ∂L/∂θ of the cross-entropy against central differences along a random
/// unit direction in each parameter tensor.
fn check_param_gradient(net: &NoisyNet, x: &Array2<f32>, t: &[f64], labels: &[u32], name: &str) {
    let mut cache = GraphCache::default();
    let mut grads = vec![0.0f32; net.num_params()];
    net.loss_and_grad(x.view(), t, labels, &mut cache, &mut grads);
    let loss = |p: &[f32]| {
        let mut m = net.clone();
        m.params_mut().copy_from_slice(p);
        let mut scratch = vec![0.0f32; p.len()];
        m.loss_and_grad(
            x.view(),
            t,
            labels,
            &mut GraphCache::default(),
            &mut scratch,
        )
    };
    let mut r = rng(9);
    let h = 1e-2f32;
    let mut off = 0;
    for (tname, shape) in net.tensor_specs() {
        let n: usize = shape.iter().product();
        let mut v: Vec<f32> = (0..n).map(|_| r.random::<f32>() - 0.5).collect();
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        let analytic: f64 = grads[off..off + n]
            .iter()
            .zip(&v)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let mut p = net.params().to_vec();
        p[off..off + n]
            .iter_mut()
            .zip(&v)
            .for_each(|(a, &b)| *a += h * b);
        let lp = loss(&p);
        p[off..off + n]
            .iter_mut()
            .zip(&v)
            .for_each(|(a, &b)| *a -= 2.0 * h * b);
        let lm = loss(&p);
        let numeric = (lp - lm) / (2.0 * h as f64);
        assert!(
            rel_err(analytic, numeric) < 2e-2,
            "{name}: tensor {tname}: backward {analytic:.6e} vs finite difference {numeric:.6e}"
        );
        off += n;
    }
    assert_eq!(
        off,
        net.num_params(),
        "tensors cover the flat layout in order"
    );
}

#[test]
fn gradients_match_finite_differences() {
    let mut r = rng(1);
    // Points: the MLP, under VP (c_in = 1) and VE (c_in = 1/√(1 + σ²) ≠ 1).
    let mlp = NoisyConfig::Mlp {
        dim: 2,
        hidden: 16,
        depth: 2,
        emb_dim: 8,
        classes: 4,
    };
    let x = normal(&mut r, 6, 2, 1.5);
    check_input_gradient(&bound(mlp.clone(), "vp", 3), &x, 0.3, "mlp/vp");
    let ve = bound(mlp.clone(), "ve", 3);
    let t_ve = 0.8;
    assert!(TrainedClassifier::input_scale(ve.sde(), t_ve) < 0.2);
    let x_ve = normal(&mut r, 6, 2, 8.0);
    check_input_gradient(&ve, &x_ve, t_ve, "mlp/ve");
    let times: Vec<f64> = (0..6).map(|i| 0.05 + 0.15 * i as f64).collect();
    check_param_gradient(
        &NoisyNet::new(mlp, 4).unwrap(),
        &x,
        &times,
        &[0, 1, 2, 3, 1, 2],
        "mlp",
    );
    // Images: the CNN (conv, the time projections, the dense head).
    let cnn = NoisyConfig::Cnn {
        channels: 2,
        height: 8,
        width: 8,
        widths: vec![3, 4, 4],
        hidden: 8,
        emb_dim: 8,
        classes: 3,
    };
    let xi = normal(&mut r, 3, 128, 0.7);
    check_input_gradient(&bound(cnn.clone(), "vp", 5), &xi, 0.6, "cnn/vp");
    check_param_gradient(
        &NoisyNet::new(cnn, 6).unwrap(),
        &xi,
        &[0.1, 0.5, 0.9],
        &[2, 0, 1],
        "cnn",
    );
}

#[test]
fn rows_do_not_depend_on_the_batch() {
    // 300 rows span two blocks of the network's 256-row pass.
    let clf = bound(NoisyConfig::mlp(2, 8), "vp", 2);
    let x = normal(&mut rng(3), 300, 2, 2.0);
    let mut all = Array2::<f32>::zeros((300, 2));
    clf.log_prob_grad(x.view(), 0.2, 5, all.view_mut());
    for i in [0, 17, 255, 256, 299] {
        let xi = x.slice(ndarray::s![i..i + 1, ..]);
        let mut one = Array2::<f32>::zeros((1, 2));
        clf.log_prob_grad(xi, 0.2, 5, one.view_mut());
        assert_eq!(one.row(0), all.row(i), "row {i}");
        assert_eq!(
            clf.log_probs(xi, 0.2).row(0),
            clf.log_probs(x.view(), 0.2).row(i)
        );
    }
}

/// 8 Gaussians, VP: the classifier trained by `train_noisy_classifier`.
fn trained_eight(steps: u64) -> TrainedClassifier {
    let data = TrainData::Toy(Toy::EightGaussians);
    let net = NoisyConfig::Mlp {
        dim: 2,
        hidden: 64,
        depth: 2,
        emb_dim: 32,
        classes: 8,
    };
    let opts = NoisyTraining {
        steps,
        batch: 256,
        lr: 3e-3,
        seed: 0,
    };
    train_noisy_classifier(
        &data,
        SdeConfig::by_name("vp").unwrap(),
        net,
        &opts,
        |_, _| {},
    )
    .unwrap()
}

fn oracle() -> MixtureScore {
    MixtureScore::new(
        Toy::EightGaussians.mixture().unwrap(),
        &SdeConfig::by_name("vp").unwrap(),
    )
    .unwrap()
}

/// Points of the noised marginal p_t: x_t = α x₀ + σ ε.
fn noised(n: usize, t: f64, seed: u64) -> Array2<f32> {
    let sde = VpSde::default();
    let x0 = Toy::EightGaussians.sample(n, seed);
    let eps = normal(&mut rng(seed + 100), n, 2, 1.0);
    (&x0 * sde.alpha(t) as f32) + &(&eps * sde.sigma(t) as f32)
}

/// Mean KL(exact ‖ trained) and argmax agreement over the rows of `x`.
fn compare(clf: &TrainedClassifier, m: &MixtureScore, x: ArrayView2<f32>, t: f64) -> (f64, f64) {
    let lp = clf.log_probs(x, t);
    let (mut kl, mut agree) = (0.0, 0usize);
    for (i, row) in x.outer_iter().enumerate() {
        let post = m.class_posterior(&[row[0] as f64, row[1] as f64], t);
        for (k, &p) in post.iter().enumerate() {
            if p > 0.0 {
                kl += p * (p.ln() - lp[[i, k]]);
            }
        }
        let arg = |v: &mut dyn Iterator<Item = f64>| {
            v.enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (k, p)| if p > b.1 { (k, p) } else { b },
                )
                .0
        };
        agree += usize::from(arg(&mut post.iter().copied()) == arg(&mut lp.row(i).iter().copied()));
    }
    let n = x.nrows() as f64;
    (kl / n, agree as f64 / n)
}

#[test]
fn trained_classifier_matches_the_exact_one_and_guides_the_exact_score() {
    let clf = trained_eight(1500);
    let m = oracle();
    // (1) Against the exact p_t(y | x): the mean KL over x_t ~ p_t is the
    // classifier's excess cross-entropy. A constant classifier (the prior)
    // has KL = I(y; x_t), ln 8 − H(y | x_t) ≈ 2.0 at t = 0.05; a
    // classifier that learned the posterior has KL ≈ 0.
    for &t in &[0.05, 0.2, 0.4, 0.7] {
        let x = noised(2000, t, 11);
        let (kl, agree) = compare(&clf, &m, x.view(), t);
        eprintln!("t = {t}: mean KL {kl:.4}, argmax agreement {agree:.4}");
        assert!(kl < 0.05, "t = {t}: mean KL(exact || trained) = {kl}");
        if t <= 0.2 {
            // Here the modes barely overlap, so the exact argmax is the
            // component the point came from and a good classifier agrees.
            assert!(agree > 0.97, "t = {t}: argmax agreement {agree}");
        }
    }
    // (2) The exact unconditional score guided by the trained classifier
    // samples the requested mode (the exact classifier at γ = 1 reaches
    // 99%, tests/guidance_oracle.rs).
    let sde = VpSde::default();
    let sampler = by_name("em", 200).unwrap();
    let gm = m.mixture().clone();
    for (k, gamma) in [(0, 1.0), (3, 1.0), (6, 2.0)] {
        let cg = ClassifierGuidance::new(&m, &clf, k, gamma).unwrap();
        let out = sample(
            sampler.as_ref(),
            &sde,
            &cg,
            &SampleOptions::new(500, k as u64),
        )
        .unwrap();
        let hits = out
            .samples
            .outer_iter()
            .filter(|r| gm.nearest(&[r[0] as f64, r[1] as f64]).0 == k)
            .count();
        eprintln!("mode {k}, gamma {gamma}: {hits}/500 in the requested mode");
        assert!(hits >= 475, "mode {k}, gamma {gamma}: {hits}/500");
        assert_eq!(out.nfe, 400);
    }
    // (3) The checkpoint round-trips bit for bit; a flipped weight is caught.
    let dir = std::env::temp_dir().join(format!("scoresde-clf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    save_classifier(&dir, &clf).unwrap();
    let back = load_classifier(&dir).unwrap();
    assert_eq!(back.config, clf.config);
    assert_eq!(back.net.params(), clf.net.params());
    let path = dir.join(CLASSIFIER_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = load_classifier(&dir).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
