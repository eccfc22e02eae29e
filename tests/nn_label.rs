//! Class-conditional networks (`src/nn/label.rs`): the label embedding's
//! hand-written backward against finite differences (MLP and U-Net), the
//! labelled forward's invariances, and that a network without classes is
//! the unconditional network parameter for parameter.
//!
//! Gradient checks as in tests/images_gradcheck.rs: per tensor, a random
//! unit direction v, g·v from backward against (L(θ + hv) − L(θ − hv)) / 2h
//! with L = Σ r ⊙ net(x, t, y) in f64; h = 1e-2 in f32 gives a rounding
//! error ~1e-4 relative, so 2% relative tolerance separates a right
//! gradient from a wrong one (a dropped term or a wrong row is O(1) off).

use ndarray::{Array1, Array2};
use rand::RngExt;
use scoresde::nn::{
    FourierConfig, Mlp, MlpConfig, NetCache, NetConfig, ScoreNet, UNet, UNetConfig,
};

fn rng(seed: u64) -> scoresde::rng::StreamRng {
    scoresde::rng::stream(seed, 7, 0)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Directional finite differences of every tensor of `net` for the loss
/// Σ r ⊙ net(x, t | labels), against its backward.
fn check_gradient(name: &str, net: &ScoreNet, labels: &[u32]) {
    let d = net.data_dim();
    let rows = labels.len();
    let mut r = rng(3);
    let x = Array2::from_shape_fn((rows, d), |_| r.random::<f32>() * 2.0 - 1.0);
    let t = Array1::from_shape_fn(rows, |i| (i as f32 + 0.5) / rows as f32);
    let tf: Vec<f64> = t.iter().map(|&v| v as f64).collect();
    let w = Array2::from_shape_fn((rows, d), |_| r.random::<f32>() - 0.5);
    let mut cache = NetCache::default();
    net.forward_train_labelled(x.view(), t.view(), labels, &mut cache);
    let mut grads = vec![0.0; net.num_params()];
    net.backward(&mut cache, w.view(), &mut grads);
    let loss = |p: &[f32]| {
        let mut n = net.clone();
        n.params_mut().copy_from_slice(p);
        let mut out = Array2::zeros((rows, d));
        n.forward_labelled(x.view(), &tf, labels, out.view_mut());
        dot(out.as_slice().unwrap(), w.as_slice().unwrap())
    };
    let h = 1e-2f32;
    let mut off = 0;
    let mut table_seen = false;
    for (tname, shape, _) in net.named_tensors() {
        let n: usize = shape.iter().product();
        let mut v: Vec<f32> = (0..n).map(|_| r.random::<f32>() - 0.5).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        let (o, len) = offset_of(net, &tname, n);
        off += len;
        let analytic = dot(&grads[o..o + n], &v);
        let mut p = net.params().to_vec();
        for (q, &dv) in p[o..o + n].iter_mut().zip(&v) {
            *q += h * dv;
        }
        let lp = loss(&p);
        for (q, &dv) in p[o..o + n].iter_mut().zip(&v) {
            *q -= 2.0 * h * dv;
        }
        let lm = loss(&p);
        let numeric = (lp - lm) / (2.0 * h as f64);
        let err = (analytic - numeric).abs() / (analytic.abs().max(numeric.abs()) + 1e-3);
        assert!(
            err < 2e-2,
            "{name}: tensor {tname}: backward {analytic:.6e} vs finite difference {numeric:.6e}"
        );
        if tname == "label_emb.weight" {
            table_seen = true;
            assert!(analytic.abs() > 1e-3, "{name}: table gradient {analytic}");
            // Rows of classes no point has get no gradient, the others do.
            let dim = shape[1];
            for c in 0..shape[0] {
                let g = &grads[o + c * dim..o + (c + 1) * dim];
                let used = labels.contains(&(c as u32));
                assert_eq!(
                    g.iter().any(|&v| v != 0.0),
                    used,
                    "{name}: table row {c} (used {used})"
                );
            }
        }
    }
    assert_eq!(off, net.num_params());
    assert!(table_seen, "{name}: no label table");
}

/// Offset of tensor `name` in the flat layout (the named slices borrow
/// from the flat vector in order).
fn offset_of(net: &ScoreNet, name: &str, n: usize) -> (usize, usize) {
    let base = net.params().as_ptr() as usize;
    let (_, _, s) = net
        .named_tensors()
        .into_iter()
        .find(|(t, _, _)| t == name)
        .unwrap();
    ((s.as_ptr() as usize - base) / 4, n)
}

fn cond_mlp(depth: usize, classes: usize) -> ScoreNet {
    let cfg = MlpConfig {
        hidden: 16,
        depth,
        emb_dim: 8,
        n_classes: classes,
        ..MlpConfig::new(2)
    };
    ScoreNet::new(cfg.into(), 5).unwrap()
}

fn cond_unet() -> ScoreNet {
    let cfg = UNetConfig {
        widths: vec![4, 8],
        emb_dim: 8,
        time_dim: 8,
        groups: 2,
        n_classes: 3,
        ..UNetConfig::new(1, 4, 4)
    };
    ScoreNet::new(cfg.into(), 6).unwrap()
}

#[test]
fn conditional_mlp_backward_matches_finite_differences() {
    // Labels 0, 2 and ∅ (= 3); class 1 is absent, so its row gets nothing.
    let labels = [0, 2, 3, 0, 3, 2, 2];
    check_gradient("mlp depth 2", &cond_mlp(2, 3), &labels);
    check_gradient("mlp depth 0", &cond_mlp(0, 3), &labels);
    // With Fourier features the label table still sits at the emb(t)
    // columns, before the features.
    let cfg = MlpConfig {
        hidden: 16,
        depth: 2,
        emb_dim: 8,
        n_classes: 3,
        fourier: Some(FourierConfig {
            freqs: 3,
            scale: 8.0,
        }),
        ..MlpConfig::new(2)
    };
    let net = ScoreNet::new(cfg.into(), 5).unwrap();
    check_gradient("mlp depth 2, Fourier features", &net, &labels);
}

#[test]
fn conditional_unet_backward_matches_finite_differences() {
    check_gradient("unet", &cond_unet(), &[1, 3, 1, 0, 3]);
}

/// Rows do not depend on the batch they are in; the training forward is
/// the inference forward bit for bit; no labels = ∅ for every row; the
/// label changes the output.
#[test]
fn labelled_forward_is_per_row_and_labels_matter() {
    for net in [cond_mlp(2, 3), cond_unet()] {
        let d = net.data_dim();
        let rows = 9;
        let mut r = rng(4);
        let x = Array2::from_shape_fn((rows, d), |_| r.random::<f32>() * 2.0 - 1.0);
        // Times exact in f32, as the training forward takes them.
        let t: Vec<f64> = (0..rows).map(|i| (i as f64 + 1.0) / 16.0).collect();
        let labels: Vec<u32> = (0..rows as u32).map(|i| i % 4).collect();
        let mut full = Array2::zeros((rows, d));
        net.forward_labelled(x.view(), &t, &labels, full.view_mut());
        for (lo, hi) in [(0, 1), (2, 7), (8, 9)] {
            let mut part = Array2::zeros((hi - lo, d));
            net.forward_labelled(
                x.slice(ndarray::s![lo..hi, ..]),
                &t[lo..hi],
                &labels[lo..hi],
                part.view_mut(),
            );
            assert_eq!(part, full.slice(ndarray::s![lo..hi, ..]), "rows {lo}..{hi}");
        }
        let tf = Array1::from_iter(t.iter().map(|&v| v as f32));
        let mut cache = NetCache::default();
        net.forward_train_labelled(x.view(), tf.view(), &labels, &mut cache);
        assert_eq!(
            cache.output(),
            full.view(),
            "{}: training forward",
            net.config().kind()
        );
        // No labels: the ∅ row.
        let null = vec![3u32; rows];
        let mut a = Array2::zeros((rows, d));
        let mut b = Array2::zeros((rows, d));
        net.forward_labelled(x.view(), &t, &null, a.view_mut());
        net.forward(x.view(), tf.view(), b.view_mut());
        assert_eq!(a, b, "unlabelled forward is the null label");
        let other: Vec<u32> = labels.iter().map(|&y| (y + 1) % 4).collect();
        net.forward_labelled(x.view(), &t, &other, a.view_mut());
        for i in 0..rows {
            assert_ne!(a.row(i), full.row(i), "row {i}: the label is ignored");
        }
    }
}

/// n_classes = 0 is the unconditional network: same tensors, same
/// parameters, no `n_classes` in the JSON; a conditional MLP of the same
/// seed has the same layers plus a table, and its config round-trips.
#[test]
fn without_classes_the_network_is_unconditional() {
    let plain = Mlp::new(MlpConfig::new(2), 3).unwrap();
    assert_eq!(plain.num_params(), 141_058);
    let json = serde_json::to_string(&NetConfig::Mlp(MlpConfig::new(2))).unwrap();
    assert!(!json.contains("n_classes"), "{json}");
    let u = serde_json::to_string(&NetConfig::UNet(UNetConfig::new(1, 8, 8))).unwrap();
    assert!(!u.contains("n_classes"), "{u}");
    let cond_cfg = MlpConfig {
        n_classes: 8,
        ..MlpConfig::new(2)
    };
    let cond = Mlp::new(cond_cfg.clone(), 3).unwrap();
    assert_eq!(cond.num_params(), 141_058 + 9 * 32);
    assert_eq!(&cond.params()[..141_058], plain.params());
    let back: NetConfig =
        serde_json::from_str(&serde_json::to_string(&NetConfig::Mlp(cond_cfg.clone())).unwrap())
            .unwrap();
    assert_eq!(back, NetConfig::Mlp(cond_cfg));
    assert_eq!(back.n_classes(), 8);
    let names: Vec<String> = cond.tensor_specs().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.last().unwrap(), "label_emb.weight");
    let un = UNet::new(
        UNetConfig {
            n_classes: 10,
            ..UNetConfig::new(1, 8, 8)
        },
        0,
    )
    .unwrap();
    let spec = un.tensor_specs();
    let tab = spec.iter().find(|(n, _)| n == "label_emb.weight").unwrap();
    assert_eq!(tab.1, vec![11, 32]);
}

/// A conditional network saved and loaded is the same network, and
/// class counts beyond the cap are refused with the range.
#[test]
fn conditional_network_round_trips_and_bad_class_counts_are_refused() {
    let dir = std::env::temp_dir().join(format!("scoresde_nn_label_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("net.safetensors");
    for net in [cond_mlp(2, 3), cond_unet()] {
        scoresde::nn::save_net(&p, &net, &Default::default()).unwrap();
        let (back, _) = scoresde::nn::load_net(&p, net.config()).unwrap();
        assert_eq!(back.params(), net.params());
        // Loading into the unconditional shape names the extra tensor.
        let e = scoresde::nn::load_net(&p, net.config().with_classes(0))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("label_emb.weight"), "{e}");
    }
    let e = Mlp::new(
        MlpConfig {
            n_classes: 5000,
            ..MlpConfig::new(2)
        },
        0,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("5000") && e.contains("4096"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
