//! Finite-difference checks of the hand-written backward passes: the whole
//! U-Net (which contains every conv kind — 3×3 stride 1 and 2, 1×1 —,
//! GroupNorm, SiLU, the time projection, skip adds, concat and upsampling)
//! and the classifier CNN (adds the dense layer).
//!
//! For each parameter tensor θ_T we pick a random unit direction v and
//! compare the directional derivative g_T·v from backward with the central
//! difference (L(θ + h v) − L(θ − h v)) / 2h, L = Σ r ⊙ net(x) for fixed
//! random r, accumulated in f64. With h = 1e-2 in f32 the truncation error is
//! O(h²·L''') and the rounding error O(ε_f32·|L|/h) ≈ 1e-4 relative, so a 2%
//! relative tolerance (plus a tiny absolute floor) separates a correct
//! gradient from a wrong one (a dropped term gives O(1) relative error).

use ndarray::{Array1, Array2};
use rand::RngExt;
use scoresde::nn::classifier::{Classifier, ClassifierConfig};
use scoresde::nn::{Network, UNet, UNetCache, UNetConfig};

fn rng(seed: u64) -> scoresde::rng::StreamRng {
    scoresde::rng::stream(seed, 7, 0)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Check every tensor; `loss(params) -> f64`, `grads` = backward at params.
fn check_tensors(
    name: &str,
    params: &[f32],
    grads: &[f32],
    specs: &[(String, Vec<usize>, usize)],
    loss: &dyn Fn(&[f32]) -> f64,
) {
    let mut r = rng(11);
    let h = 1e-2f32;
    let mut worst = (0.0f64, String::new());
    for (tname, shape, off) in specs {
        let n: usize = shape.iter().product();
        let mut v: Vec<f32> = (0..n).map(|_| r.random::<f32>() - 0.5).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        let analytic = dot(&grads[*off..off + n], &v);
        let mut p = params.to_vec();
        for (q, &d) in p[*off..off + n].iter_mut().zip(&v) {
            *q += h * d;
        }
        let lp = loss(&p);
        for (q, &d) in p[*off..off + n].iter_mut().zip(&v) {
            *q -= 2.0 * h * d;
        }
        let lm = loss(&p);
        let numeric = (lp - lm) / (2.0 * h as f64);
        let err = (analytic - numeric).abs() / (analytic.abs().max(numeric.abs()) + 1e-3);
        if err > worst.0 {
            worst = (err, tname.clone());
        }
        assert!(err < 2e-2, "{name}: tensor {tname}: backward {analytic:.6e} vs finite difference {numeric:.6e} (rel err {err:.3e})");
    }
    eprintln!(
        "{name}: {} tensors, worst rel err {:.2e} ({})",
        specs.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn unet_backward_matches_finite_differences_per_tensor() {
    let cfg = UNetConfig {
        widths: vec![4, 8],
        res_blocks: 1,
        emb_dim: 8,
        time_dim: 8,
        groups: 2,
        ..UNetConfig::new(2, 4, 4)
    };
    let net = UNet::new(cfg.clone(), 3).unwrap();
    let (b, d) = (3, cfg.data_dim());
    let mut r = rng(5);
    let x = Array2::from_shape_fn((b, d), |_| r.random::<f32>() * 2.0 - 1.0);
    let t = Array1::from_vec(vec![0.1f32, 0.5, 0.9]);
    let w = Array2::from_shape_fn((b, d), |_| r.random::<f32>() - 0.5);
    let mut cache = UNetCache::new();
    net.forward_train(x.view(), t.view(), &mut cache);
    let mut grads = vec![0.0; net.num_params()];
    net.backward(&mut cache, w.view(), &mut grads);
    let loss = |p: &[f32]| {
        let mut n2 = net.clone();
        n2.params_mut().copy_from_slice(p);
        let mut out = Array2::zeros((b, d));
        n2.forward(x.view(), t.view(), out.view_mut());
        dot(out.as_slice().unwrap(), w.as_slice().unwrap())
    };
    let specs: Vec<_> = net.graph().tensors.clone();
    check_tensors("unet", net.params(), &grads, &specs, &loss);
    // The training output equals the inference output.
    let mut out = Array2::zeros((b, d));
    net.forward(x.view(), t.view(), out.view_mut());
    assert_eq!(out, cache.output());
}

#[test]
fn classifier_backward_matches_finite_differences_per_tensor() {
    let cfg = ClassifierConfig {
        channels: 1,
        height: 8,
        width: 8,
        widths: vec![4, 6, 6],
        hidden: 8,
        classes: 3,
    };
    let net = Classifier::new(cfg.clone(), 1).unwrap();
    let mut r = rng(9);
    let b = 4;
    let x = Array2::from_shape_fn((b, 64), |_| r.random::<f32>() * 2.0 - 1.0);
    let labels = vec![0u8, 2, 1, 2];
    let mut grads = vec![0.0; net.num_params()];
    let mut cache = Default::default();
    net.loss_and_grad(x.view(), &labels, &mut cache, &mut grads);
    let loss = |p: &[f32]| {
        let mut n2 = net.clone();
        n2.params_mut().copy_from_slice(p);
        let mut g = vec![0.0; p.len()];
        n2.loss_and_grad(x.view(), &labels, &mut Default::default(), &mut g)
    };
    let specs: Vec<_> = net.graph().tensors.clone();
    check_tensors("classifier", net.params(), &grads, &specs, &loss);
}

#[test]
fn unet_rows_do_not_depend_on_batch_size() {
    let cfg = UNetConfig {
        widths: vec![8, 16],
        emb_dim: 8,
        time_dim: 16,
        groups: 4,
        ..UNetConfig::new(1, 8, 8)
    };
    let net = UNet::new(cfg.clone(), 4).unwrap();
    let d = cfg.data_dim();
    let mut r = rng(2);
    let x = Array2::from_shape_fn((70, d), |_| r.random::<f32>() * 2.0 - 1.0);
    let t = Array1::from_shape_fn(70, |i| i as f32 / 70.0);
    let mut full = Array2::zeros((70, d));
    net.forward(x.view(), t.view(), full.view_mut());
    for (lo, hi) in [(0, 1), (5, 12), (63, 70)] {
        let mut part = Array2::zeros((hi - lo, d));
        net.forward(
            x.slice(ndarray::s![lo..hi, ..]),
            t.slice(ndarray::s![lo..hi]),
            part.view_mut(),
        );
        assert_eq!(part, full.slice(ndarray::s![lo..hi, ..]), "rows {lo}..{hi}");
    }
}

/// Inference (`Graph::infer`, recycled buffers) equals the training forward
/// bit for bit, and inference and gradients are identical for 1 and 2
/// rayon threads (convolution tiles and dW partials do not follow the split).
#[test]
fn unet_inference_matches_training_forward_and_ignores_thread_count() {
    let cfg = UNetConfig {
        widths: vec![8, 16],
        emb_dim: 8,
        time_dim: 16,
        groups: 4,
        ..UNetConfig::new(2, 8, 8)
    };
    let net = UNet::new(cfg.clone(), 5).unwrap();
    let d = cfg.data_dim();
    let mut r = rng(3);
    let x = Array2::from_shape_fn((21, d), |_| r.random::<f32>() * 2.0 - 1.0);
    let t = Array1::from_shape_fn(21, |i| i as f32 / 21.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = Array2::zeros((21, d));
            net.forward(x.view(), t.view(), out.view_mut());
            let mut cache = UNetCache::new();
            net.forward_train(x.view(), t.view(), &mut cache);
            let mut grads = vec![0.0; net.num_params()];
            net.backward(&mut cache, x.view(), &mut grads);
            (out, cache.output().to_owned(), grads)
        })
    };
    let (o1, f1, g1) = run(1);
    let (o2, f2, g2) = run(2);
    assert_eq!(o1, f1, "inference differs from the training forward");
    assert_eq!(o1, o2, "inference differs between 1 and 2 threads");
    assert_eq!(f1, f2, "training forward differs between 1 and 2 threads");
    let bits = |g: &[f32]| g.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&g1),
        bits(&g2),
        "gradients differ between 1 and 2 threads"
    );
}
