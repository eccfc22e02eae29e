//! Dropout (`nn::dropout`): mask statistics against their standard errors,
//! the inverse scaling's expectation, the backward, and the counter-based
//! keying (same bits for any batch split or thread count; off without a
//! key, i.e. at inference).

use ndarray::{Array1, Array2};
use rand::RngExt;
use scoresde::nn::dropout::{dropout_backward, dropout_forward, dropout_mask, DropoutKey};
use scoresde::nn::{UNet, UNetCache, UNetConfig};

const IMAGES: usize = 64;
const PER: usize = 4096;

/// Kept fraction over N = 64·4096 Bernoulli(1 − p) draws: within 4 standard
/// errors √(p(1 − p)/N) of 1 − p, for several layers and steps.
#[test]
fn kept_fraction_is_one_minus_p_within_four_standard_errors() {
    for (p, layer, step) in [(0.1, 0, 0), (0.1, 3, 17), (0.5, 1, 2), (0.9, 2, 5)] {
        let key = DropoutKey::new(42, step);
        let kept: usize = (0..IMAGES)
            .map(|i| {
                dropout_mask(key, layer, i, PER, p)
                    .iter()
                    .map(|&m| m as usize)
                    .sum::<usize>()
            })
            .sum();
        let n = (IMAGES * PER) as f64;
        let se = (p * (1.0 - p) / n).sqrt();
        let frac = kept as f64 / n;
        assert!(
            (frac - (1.0 - p)).abs() < 4.0 * se,
            "p {p}: kept {frac:.5}, expected {:.5} ± {:.5}",
            1.0 - p,
            4.0 * se
        );
    }
}

/// Masks of different layers, images and steps are independent: two masks
/// agree on a fraction (1 − p)² + p² of elements (within 4 SE).
#[test]
fn masks_of_other_layers_images_and_steps_are_independent() {
    let p = 0.3;
    let base = dropout_mask(DropoutKey::new(1, 5), 0, 0, 1 << 18, p);
    let agree_with = |m: Vec<u8>| {
        let same = base.iter().zip(&m).filter(|(a, b)| a == b).count();
        same as f64 / base.len() as f64
    };
    let want = (1.0 - p) * (1.0 - p) + p * p;
    let se = (want * (1.0 - want) / base.len() as f64).sqrt();
    for (what, m) in [
        (
            "layer",
            dropout_mask(DropoutKey::new(1, 5), 1, 0, 1 << 18, p),
        ),
        (
            "image",
            dropout_mask(DropoutKey::new(1, 5), 0, 1, 1 << 18, p),
        ),
        (
            "step",
            dropout_mask(DropoutKey::new(1, 6), 0, 0, 1 << 18, p),
        ),
        (
            "seed",
            dropout_mask(DropoutKey::new(2, 5), 0, 0, 1 << 18, p),
        ),
    ] {
        let a = agree_with(m);
        assert!(
            (a - want).abs() < 4.0 * se,
            "other {what}: agreement {a:.5}, independent masks give {want:.5} ± {:.5}",
            4.0 * se
        );
    }
}

/// E[y] = x: with x = 1 the mean of y = m/(1 − p) over N elements is 1
/// within 4 SE, SE = √(p/((1 − p)N)) (Var y = p/(1 − p)); each y is 0 or
/// exactly the f32 scale; dx = dy·y/x, and without a key y = x, dx = dy.
#[test]
fn inverse_scaling_keeps_the_expectation_and_backward_uses_the_mask() {
    let p = 0.2;
    let k0 = DropoutKey::new(9, 3);
    let key = Some(k0);
    let x = vec![1.0f32; IMAGES * PER];
    let mut y = vec![0.0f32; x.len()];
    dropout_forward(&x, &mut y, PER, p, 4, key);
    let scale = (1.0 / (1.0 - p)) as f32;
    assert!(y.iter().all(|&v| v == 0.0 || v == scale));
    let mean = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
    let se = (p / ((1.0 - p) * y.len() as f64)).sqrt();
    assert!(
        (mean - 1.0).abs() < 4.0 * se,
        "mean {mean} vs 1 ± {}",
        4.0 * se
    );

    let mut r = scoresde::rng::stream(3, 0xD0, 0);
    let xs: Vec<f32> = (0..2 * PER).map(|_| r.random::<f32>() + 0.5).collect();
    let dy: Vec<f32> = (0..2 * PER).map(|_| r.random::<f32>() - 0.5).collect();
    let mut ys = vec![0.0f32; xs.len()];
    dropout_forward(&xs, &mut ys, PER, p, 4, key);
    let mut dx = vec![f32::NAN; xs.len()];
    dropout_backward(&dy, &mut dx, PER, p, 4, key, true);
    for k in 0..xs.len() {
        let kept = ys[k] != 0.0;
        assert_eq!(kept, dropout_mask(k0, 4, k / PER, PER, p)[k % PER] == 1);
        let want = if kept { dy[k] * scale } else { 0.0 };
        assert_eq!(dx[k], want, "element {k}");
    }
    let mut id = vec![0.0f32; xs.len()];
    dropout_forward(&xs, &mut id, PER, p, 4, None);
    assert_eq!(id, xs);
    dropout_backward(&dy, &mut dx, PER, p, 4, None, true);
    assert_eq!(dx, dy);
}

fn net() -> (UNet, UNetConfig) {
    let cfg = UNetConfig {
        widths: vec![8, 16],
        emb_dim: 8,
        time_dim: 16,
        groups: 4,
        dropout: 0.3,
        ..UNetConfig::new(1, 8, 8)
    };
    (UNet::new(cfg.clone(), 4).unwrap(), cfg)
}

/// The training forward and gradient of images 3..10 of a batch are the
/// same bits whether the batch runs whole or split (the second part keyed
/// with `first_image = 3`), and for 1 and 2 threads; without a key the
/// training forward is inference's, with one it differs.
#[test]
fn dropout_bits_do_not_depend_on_batch_split_or_threads() {
    let (net, cfg) = net();
    let (b, d) = (10, cfg.data_dim());
    let mut r = scoresde::rng::stream(8, 0xD1, 0);
    let x = Array2::from_shape_fn((b, d), |_| r.random::<f32>() * 2.0 - 1.0);
    let t = Array1::from_shape_fn(b, |i| (i as f32 + 0.5) / b as f32);
    let key = DropoutKey::new(5, 1234);
    let train = |lo: usize, hi: usize, threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut cache = UNetCache::new();
                cache.set_dropout(Some(DropoutKey {
                    first_image: lo as u64,
                    ..key
                }));
                let xs = x.slice(ndarray::s![lo..hi, ..]);
                net.forward_train(xs, t.slice(ndarray::s![lo..hi]), &mut cache);
                let mut g = vec![0.0; net.num_params()];
                net.backward(&mut cache, xs, &mut g);
                (cache.output().to_owned(), g)
            })
    };
    let (full, g1) = train(0, b, 1);
    let (full2, g2) = train(0, b, 2);
    assert_eq!(
        full, full2,
        "training forward differs between 1 and 2 threads"
    );
    let bits = |g: &[f32]| g.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&g1),
        bits(&g2),
        "gradient differs between 1 and 2 threads"
    );
    let (head, _) = train(0, 3, 2);
    let (tail, _) = train(3, b, 1);
    assert_eq!(head, full.slice(ndarray::s![0..3, ..]), "images 0..3 alone");
    assert_eq!(
        tail,
        full.slice(ndarray::s![3..b, ..]),
        "images 3..10 alone"
    );

    let mut inf = Array2::zeros((b, d));
    net.forward(x.view(), t.view(), inf.view_mut());
    let mut cache = UNetCache::new();
    net.forward_train(x.view(), t.view(), &mut cache);
    assert_eq!(inf, cache.output(), "without a key dropout is off");
    assert_ne!(inf, full, "with a key dropout is on");
}

#[test]
fn dropout_rate_is_validated_with_the_valid_range() {
    for p in [-0.1, 1.0, 1.5, f64::NAN] {
        let cfg = UNetConfig {
            dropout: p,
            ..UNetConfig::new(1, 8, 8)
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("dropout") && e.contains("[0, 1)"), "{p}: {e}");
    }
}

/// A digits run with dropout (and attention) resumed from a checkpoint ends
/// with the same weights as the run that never stopped (the masks are keyed
/// by seed and step), and dropout changes the run (it is on in training).
#[test]
fn training_with_dropout_resumes_bit_identically() {
    use scoresde::data::{Toy, TrainData};
    use scoresde::train::{checkpoint, TrainOptions, Trainer};
    let opts = |dropout: f64| {
        let mut o = TrainOptions::spec(Toy::Checkerboard);
        o.data = TrainData::by_name("digits", None, None).unwrap();
        o.net = UNetConfig {
            widths: vec![8, 8],
            emb_dim: 8,
            time_dim: 16,
            attention: vec![4],
            dropout,
            ..UNetConfig::new(1, 8, 8)
        }
        .into();
        o.batch = 8;
        o.steps = 6;
        o.lr = 2e-3;
        o
    };
    let straight = |dropout: f64| {
        let mut t = Trainer::new(opts(dropout)).unwrap();
        for _ in 0..6 {
            t.train_step().unwrap();
        }
        t
    };
    let full = straight(0.2);
    let dir = std::env::temp_dir().join(format!("scoresde-dropout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut t = Trainer::new(opts(0.2)).unwrap();
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    t.save_checkpoint(&dir).unwrap();
    let ck = checkpoint::load(&dir).unwrap();
    let mut r = Trainer::resume(opts(0.2), ck).unwrap();
    for _ in 0..3 {
        r.train_step().unwrap();
    }
    assert_eq!(r.net.params(), full.net.params());
    assert_eq!(r.ema.shadow, full.ema.shadow);
    assert_ne!(straight(0.0).net.params(), full.net.params());
    let _ = std::fs::remove_dir_all(&dir);
}
