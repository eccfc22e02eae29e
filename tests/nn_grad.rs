//! Gradient checks of the layer kernels and the whole MLP against central
//! finite differences.
//!
//! All checks use a scalar loss `L = Σ y ⊙ r` with a fixed random `r`, so
//! ∂L/∂y = r, and compare the analytic gradient with
//! `(L(θ + h) − L(θ − h)) / (θ₊ − θ₋)` where θ± are the perturbed values as
//! actually stored in f32 and `L` is summed in f64.

#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use ndarray::{Array1, Array2};
use rand::Rng;
use scoresde::nn::layers::{bias_add, bias_silu, linear_backward, linear_nobias, silu_backward};
use scoresde::nn::{FourierConfig, Mlp, MlpConfig, TrainCache};
use scoresde::rng::{fill_normal, stream};

fn normals(seed: u64, n: usize) -> Vec<f32> {
    let mut v = vec![0.0; n];
    fill_normal(&mut stream(seed, 0, 0), &mut v);
    v
}

fn dot(a: &[f32], r: &[f32]) -> f64 {
    a.iter().zip(r).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Perturb `v[i]` by ±h, returning the two losses and the stored step.
fn central<F: FnMut(&[f32]) -> f64>(v: &mut [f32], i: usize, h: f32, mut loss: F) -> f64 {
    let orig = v[i];
    v[i] = orig + h;
    let up = v[i];
    let lp = loss(v);
    v[i] = orig - h;
    let dn = v[i];
    let lm = loss(v);
    v[i] = orig;
    (lp - lm) / (up as f64 - dn as f64)
}

/// Linear `z = a·Wᵀ + b` (rows 5, fan_in 7, fan_out 4): dW, db and da.
///
/// L is linear in every parameter, so central differences have no
/// truncation error; the only error is f32 rounding of z (|z| ≲ 10, unit
/// roundoff 6e-8, ~20 terms in L) divided by 2h = 0.2: ≲ 1e-4 absolute.
/// Tolerance: |fd − g| ≤ 1e-3 · (1 + |g|). A wrong transpose or a missing
/// term gives errors of order |g| ~ 1.
#[test]
fn linear_layer_gradient_matches_finite_differences() {
    let (rows, fi, fo) = (5, 7, 4);
    let mut a = normals(1, rows * fi);
    let mut w = normals(2, fo * fi);
    let mut b = normals(3, fo);
    let r = normals(4, rows * fo);
    let fwd = |a: &[f32], w: &[f32], b: &[f32]| {
        let mut z = vec![0.0; rows * fo];
        linear_nobias(a, rows, w, fo, &mut z, false);
        bias_add(&mut z, b);
        dot(&z, &r)
    };
    // `da` enters as the SiLU' of a layer below; all ones makes it dL/da.
    let (mut dw, mut db, mut da) = (vec![0.0; fo * fi], vec![0.0; fo], vec![1.0; rows * fi]);
    let mut da_sum = vec![f32::NAN; fi];
    linear_backward(
        &r,
        &a,
        &w,
        rows,
        fi,
        fo,
        &mut dw,
        Some(&mut db),
        Some((&mut da, &mut da_sum)),
        false,
    );
    // The layer below's bias gradient is the column sum of its dL/dz.
    for (j, &s) in da_sum.iter().enumerate() {
        let want: f64 = (0..rows).map(|i| da[i * fi + j] as f64).sum();
        assert!(
            (s as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "db below [{j}]"
        );
    }
    let h = 0.1;
    let tol = |fd: f64, g: f32| (fd - g as f64).abs() <= 1e-3 * (1.0 + (g as f64).abs());
    for i in 0..w.len() {
        let (a2, b2) = (a.clone(), b.clone());
        let fd = central(&mut w, i, h, |w| fwd(&a2, w, &b2));
        assert!(tol(fd, dw[i]), "dW[{i}]: fd {fd} vs {}", dw[i]);
    }
    for i in 0..b.len() {
        let (a2, w2) = (a.clone(), w.clone());
        let fd = central(&mut b, i, h, |b| fwd(&a2, &w2, b));
        assert!(tol(fd, db[i]), "db[{i}]: fd {fd} vs {}", db[i]);
    }
    for i in 0..a.len() {
        let (w2, b2) = (w.clone(), b.clone());
        let fd = central(&mut a, i, h, |a| fwd(a, &w2, &b2));
        assert!(tol(fd, da[i]), "da[{i}]: fd {fd} vs {}", da[i]);
    }
}

/// SiLU `y = z σ(z)` on z ∈ [−8, 8]: dL/dz from `silu_backward`.
///
/// With h = 1e-2 the truncation error is h²/6 · max|SiLU'''| ≈ 2e-6 and the
/// rounding error ≈ 2 · 6e-8 · |y| / 2h ≲ 5e-5 (|y| ≤ 8), plus the fast
/// `exp` (relative error ≤ 4e-7 ⇒ ≲ 3e-4 / 2h … in practice far smaller,
/// it is smooth between range-reduction breakpoints). Tolerance 2e-4
/// absolute on derivatives of size ~1; a wrong SiLU' (e.g. σ alone, or
/// σ(1−σ)) is off by ≥ 0.1 for most z.
#[test]
fn silu_gradient_matches_finite_differences() {
    let n = 801;
    let z: Vec<f32> = (0..n)
        .map(|i| -8.0 + 16.0 * i as f32 / (n - 1) as f32)
        .collect();
    let r = normals(5, n);
    let zero = vec![0.0f32; n];
    let silu = |z: &[f32]| -> Vec<f32> {
        let mut y = z.to_vec();
        bias_silu(&mut y, &zero, None);
        y
    };
    let mut y = z.clone();
    let mut s = vec![0.0; n];
    bias_silu(&mut y, &zero, Some(&mut s));
    assert_eq!(y, silu(&z), "training and inference SiLU agree");
    let mut d = r.clone();
    silu_backward(&mut d, &s);
    let h = 1e-2f32;
    let zp: Vec<f32> = z.iter().map(|v| v + h).collect();
    let zm: Vec<f32> = z.iter().map(|v| v - h).collect();
    let (yp, ym) = (silu(&zp), silu(&zm));
    let mut worst = 0f64;
    for i in 0..n {
        let fd = r[i] as f64 * (yp[i] as f64 - ym[i] as f64) / (zp[i] as f64 - zm[i] as f64);
        worst = worst.max((fd - d[i] as f64).abs() / (1.0 + (r[i] as f64).abs()));
    }
    assert!(worst < 2e-4, "worst SiLU gradient error {worst}");
}

/// The whole SPEC network (data_dim 2, hidden 256, depth 3; 141,058
/// The whole SPEC network (data_dim 2, hidden 256, depth 3; 141,058
/// parameters) on 6 rows with per-row times, every parameter tensor sampled
/// at 40 random entries and checked tensor by tensor (the output layer's
/// gradients are ~100x larger than the first layer's, so a pooled norm would
/// hide errors in the lower layers).
///
/// Bound: with h = 1e-2 on weights of size ≤ 1/√fan_in, the truncation
/// error is O(h² · L''') ≲ 1e-5 and the f32 rounding of L (|L| ~ 1, relative
/// error ~1e-6 after four layers) divided by 2h is ≲ 1e-4 · max|g|;
/// measured: 5e-8 (output bias) to 3e-4 (first-layer weights, whose
/// gradients are ~1e-2, so rounding noise dominates). Tolerance per tensor:
/// |fd − g| ≤ 1e-3 · max|g| + 1e-2 · |g| per entry and
/// ‖fd − g‖₂ ≤ 1e-3 · ‖g‖₂. Scaling one term of SiLU' by 0.9 fails it.
#[test]
fn mlp_gradient_matches_finite_differences() {
    check_mlp_gradient(MlpConfig::new(2));
}

/// The same check on other shapes: no hidden layer (a single Linear on
/// concat(x, emb)), one narrow hidden layer, data_dim 3 with emb_dim 8,
/// and Fourier features of the input (with and without hidden layers;
/// the features are a fixed function of x, so what is checked is that the
/// first layer's weights on those columns get their gradient).
#[test]
fn mlp_gradient_matches_finite_differences_other_shapes() {
    for cfg in [
        MlpConfig {
            depth: 0,
            ..MlpConfig::new(2)
        },
        MlpConfig {
            data_dim: 3,
            hidden: 5,
            depth: 1,
            emb_dim: 8,
            n_classes: 0,
            fourier: None,
        },
        MlpConfig {
            data_dim: 3,
            hidden: 17,
            depth: 4,
            emb_dim: 8,
            n_classes: 0,
            fourier: None,
        },
        MlpConfig {
            fourier: Some(FourierConfig {
                freqs: 4,
                scale: 16.0,
            }),
            ..MlpConfig::new(2)
        },
        MlpConfig {
            data_dim: 3,
            hidden: 9,
            depth: 0,
            emb_dim: 8,
            n_classes: 0,
            fourier: Some(FourierConfig {
                freqs: 2,
                scale: 3.0,
            }),
        },
    ] {
        check_mlp_gradient(cfg);
    }
}

fn check_mlp_gradient(cfg: MlpConfig) {
    let d = cfg.data_dim;
    let mut net = Mlp::new(cfg.clone(), 7).unwrap();
    let rows = 6;
    let x = Array2::from_shape_vec((rows, d), normals(8, rows * d)).unwrap();
    let t = Array1::from_vec(vec![0.001, 0.1, 0.25, 0.5, 0.75, 1.0]);
    let r = Array2::from_shape_vec((rows, d), normals(9, rows * d)).unwrap();
    let mut cache = TrainCache::new();
    net.forward_train(x.view(), t.view(), &mut cache);
    let mut grads = vec![0.0; net.num_params()];
    net.backward(&mut cache, r.view(), &mut grads);

    let mut out = Array2::zeros((rows, d));
    let mut rng = stream(10, 0, 0);
    let specs = net.tensor_specs();
    let layers = net.layers().to_vec();
    for (ti, (name, _)) in specs.iter().enumerate() {
        let layer = layers[ti / 2];
        let (start, len) = if ti % 2 == 0 {
            (layer.w_offset, layer.fan_in * layer.fan_out)
        } else {
            (layer.b_offset, layer.fan_out)
        };
        let mut checked = Vec::new();
        for _ in 0..40 {
            let i = start + (rng.next_u32() as usize % len);
            let fd = central(net.params_mut(), i, 1e-2, |p| {
                net_like(&cfg, p).forward(x.view(), t.view(), out.view_mut());
                dot(out.as_slice().unwrap(), r.as_slice().unwrap())
            });
            checked.push((i, fd, grads[i] as f64));
        }
        let gmax = checked.iter().map(|c| c.2.abs()).fold(0.0, f64::max);
        assert!(gmax > 1e-4, "{name}: gradient suspiciously small: {gmax}");
        let (mut num, mut den) = (0.0, 0.0);
        for &(i, fd, g) in &checked {
            assert!(
                (fd - g).abs() <= 1e-3 * gmax + 1e-2 * g.abs(),
                "{name} (flat index {i}): finite difference {fd} vs backward {g}"
            );
            num += (fd - g) * (fd - g);
            den += g * g;
        }
        let rel = (num / den).sqrt();
        eprintln!("{name}: relative L2 error {rel:.2e}, max |g| {gmax:.2e}");
        assert!(rel <= 1e-3, "{name}: relative L2 gradient error {rel}");
    }
}

/// A network of shape `cfg` with flat parameters `p`.
fn net_like(cfg: &MlpConfig, p: &[f32]) -> Mlp {
    let mut n = Mlp::zeros(cfg.clone()).unwrap();
    n.params_mut().copy_from_slice(p);
    n
}

/// Training forward output equals inference forward output bit for bit.
#[test]
fn training_forward_equals_inference_forward() {
    let net = Mlp::new(MlpConfig::new(2), 3).unwrap();
    let rows = 300;
    let x = Array2::from_shape_vec((rows, 2), normals(11, rows * 2)).unwrap();
    let t = Array1::from_shape_fn(rows, |i| (i as f32 + 0.5) / rows as f32);
    let mut cache = TrainCache::new();
    net.forward_train(x.view(), t.view(), &mut cache);
    let mut out = Array2::zeros((rows, 2));
    net.forward(x.view(), t.view(), out.view_mut());
    assert_eq!(cache.output(), out.view());
}
