//! The U-Net learns: a tiny U-Net memorises the ε-targets of a handful of
//! noised 8×8 digits; and its weights round-trip through safetensors via
//! the ScoreNet seam.

use std::path::Path;

use ndarray::{Array1, Array2};
use rand::RngExt;
use scoresde::data::images::load_digits_csv;
use scoresde::nn::{load_net, save_net, Adam, NetCache, NetConfig, ScoreNet, UNetConfig};

#[test]
fn tiny_unet_overfits_eight_noised_digits() {
    let set =
        load_digits_csv(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits/digits.csv.gz"))
            .unwrap()
            .take(8);
    let cfg = NetConfig::UNet(UNetConfig {
        widths: vec![8, 16],
        emb_dim: 16,
        time_dim: 32,
        groups: 4,
        ..UNetConfig::new(1, 8, 8)
    });
    let mut net = ScoreNet::new(cfg, 0).unwrap();
    let mut r = scoresde::rng::stream(1, 3, 0);
    // Fixed (x0, t, ε): x_t = √ᾱ x0 + √(1−ᾱ) ε with ᾱ = e^{−5t}; the target is ε.
    let (n, d) = (8, 64);
    let t = Array1::from_shape_fn(n, |i| 0.1 + 0.1 * i as f32);
    let eps = Array2::from_shape_fn((n, d), |_| r.random::<f32>() * 2.0 - 1.0);
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let ab = (-5.0 * t[i]).exp();
        ab.sqrt() * set.pixels[[i, j]] + (1.0 - ab).sqrt() * eps[[i, j]]
    });
    let mut adam = Adam::new(3e-3, net.num_params());
    let mut grads = vec![0.0; net.num_params()];
    let mut cache = NetCache::default();
    let mut losses = Vec::new();
    for _ in 0..300 {
        net.forward_train(x.view(), t.view(), &mut cache);
        let out = cache.output();
        let diff = &out - &eps;
        let loss = diff.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / (n * d) as f64;
        let dout = diff.mapv(|v| 2.0 * v / (n * d) as f32);
        net.backward(&mut cache, dout.view(), &mut grads);
        adam.update(net.params_mut(), &grads);
        losses.push(loss);
    }
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    eprintln!("loss {first:.4} -> {last:.5}");
    // Uniform ε on [−1, 1] has variance 1/3, the initial loss is ≈ 1/3 + output²;
    // memorising 8 targets must cut it by at least 20×.
    assert!(last < first / 20.0, "loss fell only from {first} to {last}");
}

#[test]
fn unet_weights_round_trip_through_safetensors_and_json_config() {
    let cfg = NetConfig::UNet(UNetConfig {
        widths: vec![4, 8],
        emb_dim: 8,
        time_dim: 8,
        groups: 2,
        ..UNetConfig::new(3, 4, 4)
    });
    let net = ScoreNet::new(cfg.clone(), 5).unwrap();
    let dir = std::env::temp_dir().join(format!("scoresde-unet-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("m.safetensors");
    save_net(&p, &net, &Default::default()).unwrap();
    let json = serde_json::to_string(&cfg).unwrap();
    let back: NetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    let (loaded, _) = load_net(&p, back).unwrap();
    assert_eq!(loaded, net);
    // An existing MLP config (no `kind` field) still parses as the MLP.
    let mlp: NetConfig =
        serde_json::from_str(r#"{"data_dim":2,"hidden":256,"depth":3,"emb_dim":32}"#).unwrap();
    assert!(matches!(mlp, NetConfig::Mlp(_)));
    // Wrong architecture: a clear checkpoint error naming the tensor.
    let other = NetConfig::UNet(UNetConfig {
        widths: vec![4, 4],
        emb_dim: 8,
        time_dim: 8,
        groups: 2,
        ..UNetConfig::new(3, 4, 4)
    });
    let e = load_net(&p, other).unwrap_err().to_string();
    assert!(e.contains("m.safetensors") && e.contains("shape"), "{e}");
}

/// Inference (node buffers recycled and kept between calls, convolution +
/// time add and GroupNorm + SiLU fused into single passes) computes the
/// same bits as the training forward, which keeps every node separately,
/// on the first call and on a repeated call with other times in between.
#[test]
fn inference_fusions_and_reused_buffers_keep_the_training_forward_bits() {
    let cfg = NetConfig::UNet(UNetConfig {
        widths: vec![8, 16, 16],
        time_dim: 32,
        ..UNetConfig::new(2, 12, 12)
    });
    let net = ScoreNet::new(cfg, 3).unwrap();
    let mut r = scoresde::rng::stream(2, 3, 0);
    let (n, d) = (70, 2 * 12 * 12);
    let x = Array2::from_shape_fn((n, d), |_| r.random::<f32>() * 2.0 - 1.0);
    let t = Array1::from_shape_fn(n, |i| 0.01 + 0.014 * i as f32);
    let mut cache = NetCache::default();
    net.forward_train(x.view(), t.view(), &mut cache);
    let want = cache.output().to_owned();
    let mut out = Array2::zeros((n, d));
    for _ in 0..2 {
        net.forward(x.view(), t.view(), out.view_mut());
        assert!(out
            .iter()
            .zip(want.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let mut other = Array2::zeros((3, d));
        net.forward_t(x.slice(ndarray::s![..3, ..]), 0.7, other.view_mut());
    }
}
