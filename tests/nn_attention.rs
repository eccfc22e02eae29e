//! Self-attention (`nn::attention`) and the U-Net options built on it.
//!
//! The op is checked against a naive f64 implementation of
//! softmax(q kᵀ/√d) v written from the formula: its forward (equal up to
//! the f32 rounding of the output, 2⁻²⁴ relative) and its gradient (the
//! op's backward vs central differences of the f64 reference with
//! h = 1e-5: truncation O(h²) ≈ 1e-10, rounding O(1e-16/h) ≈ 1e-11, so the
//! only error left is the op's f32 output rounding, ≤ 1e-6 relative).
//! The whole U-Net with attention and dropout is checked per tensor and
//! for the input like tests/images_gradcheck.rs (f32, h = 1e-2, 2% relative
//! tolerance: rounding ≈ 1e-4 relative, a wrong term O(1)).

use ndarray::{Array1, Array2};
use rand::RngExt;
use scoresde::nn::attention::{attention_backward, attention_forward};
use scoresde::nn::dropout::DropoutKey;
use scoresde::nn::graph::{GraphCache, Op};
use scoresde::nn::{UNet, UNetCache, UNetConfig};

fn rng(seed: u64) -> scoresde::rng::StreamRng {
    scoresde::rng::stream(seed, 0xA77, seed)
}

fn uniform(n: usize, r: &mut scoresde::rng::StreamRng, s: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (r.random::<f32>() * 2.0 - 1.0) * s)
        .collect()
}

/// softmax(q kᵀ/√d) v per image and head, straight from the formula (f64).
fn naive(qkv: &[f64], images: usize, n: usize, c: usize, heads: usize) -> Vec<f64> {
    let d = c / heads;
    let at = |b: usize, p: usize, ch: usize| qkv[(b * n + p) * 3 * c + ch];
    let mut y = vec![0.0; images * n * c];
    for b in 0..images {
        for h in 0..heads {
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d)
                            .map(|e| at(b, i, h * d + e) * at(b, j, c + h * d + e))
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let z: f64 = s.iter().map(|v| v.exp()).sum();
                for e in 0..d {
                    y[(b * n + i) * c + h * d + e] = (0..n)
                        .map(|j| s[j].exp() / z * at(b, j, 2 * c + h * d + e))
                        .sum();
                }
            }
        }
    }
    y
}

const SHAPE: (usize, usize, usize, usize) = (2, 5, 6, 2); // images, positions, channels, heads

#[test]
fn attention_forward_matches_the_naive_formula() {
    let (b, n, c, heads) = SHAPE;
    for heads in [1, heads, 3] {
        let mut r = rng(1);
        let x = uniform(b * n * 3 * c, &mut r, 1.5);
        let mut y = vec![0.0f32; b * n * c];
        let mut stats = Vec::new();
        attention_forward(&x, &mut y, &mut stats, b, n, c, heads);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want = naive(&x64, b, n, c, heads);
        for (k, (&got, &w)) in y.iter().zip(&want).enumerate() {
            assert!(
                (got as f64 - w).abs() <= 1e-6 * w.abs().max(1e-3),
                "heads {heads}, value {k}: {got} vs naive {w}"
            );
        }
    }
}

#[test]
fn attention_backward_matches_finite_differences_of_the_reference() {
    let (b, n, c, heads) = SHAPE;
    let mut r = rng(2);
    let x = uniform(b * n * 3 * c, &mut r, 1.5);
    let w: Vec<f64> = uniform(b * n * c, &mut r, 1.0)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let mut y = vec![0.0f32; b * n * c];
    let mut stats = Vec::new();
    attention_forward(&x, &mut y, &mut stats, b, n, c, heads);
    // Overwrite, then add: the second pass doubles the first.
    let mut dx = vec![f32::NAN; x.len()];
    attention_backward(&x, &mut stats, &wf, &mut dx, true, b, n, c, heads);
    let mut dx2 = dx.clone();
    attention_backward(&x, &mut stats, &wf, &mut dx2, false, b, n, c, heads);
    let loss = |x: &[f64]| -> f64 {
        naive(x, b, n, c, heads)
            .iter()
            .zip(&w)
            .map(|(a, b)| a * b)
            .sum()
    };
    let h = 1e-5;
    let mut worst = 0.0f64;
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for k in 0..x.len() {
        let mut p = x64.clone();
        p[k] += h;
        let lp = loss(&p);
        p[k] -= 2.0 * h;
        let numeric = (lp - loss(&p)) / (2.0 * h);
        let err = (dx[k] as f64 - numeric).abs() / (numeric.abs() + 1e-4);
        worst = worst.max(err);
        assert!(
            err < 1e-5,
            "d/dqkv[{k}]: backward {} vs finite difference {numeric} (rel err {err:.2e})",
            dx[k]
        );
        assert_eq!(dx2[k], 2.0 * dx[k], "adding into the gradient");
    }
    eprintln!(
        "attention op: {} inputs, worst rel err {worst:.2e}",
        x.len()
    );
}

/// Permuting the positions of q, k and v permutes the output the same way
/// (attention has no notion of position).
#[test]
fn attention_is_equivariant_under_position_permutations() {
    let (b, n, c, heads) = (1, 7, 4, 2);
    let mut r = rng(3);
    let x = uniform(n * 3 * c, &mut r, 2.0);
    let perm = [3usize, 0, 6, 1, 5, 2, 4];
    let mut xp = vec![0.0f32; x.len()];
    for (i, &pi) in perm.iter().enumerate() {
        xp[i * 3 * c..(i + 1) * 3 * c].copy_from_slice(&x[pi * 3 * c..(pi + 1) * 3 * c]);
    }
    let (mut y, mut yp) = (vec![0.0f32; n * c], vec![0.0f32; n * c]);
    attention_forward(&x, &mut y, &mut Vec::new(), b, n, c, heads);
    attention_forward(&xp, &mut yp, &mut Vec::new(), b, n, c, heads);
    for (i, &pi) in perm.iter().enumerate() {
        for e in 0..c {
            let (a, p) = (y[pi * c + e], yp[i * c + e]);
            // Only the order of the f64 sums over positions differs.
            assert!((a - p).abs() <= 1e-6 * a.abs().max(1e-3), "{a} vs {p}");
        }
    }
}

fn attn_config() -> UNetConfig {
    UNetConfig {
        widths: vec![4, 8],
        emb_dim: 8,
        time_dim: 8,
        groups: 2,
        attention: vec![2],
        attn_heads: 2,
        dropout: 0.25,
        ..UNetConfig::new(2, 4, 4)
    }
}

/// The U-Net with attention (down, mid and up blocks at the 2×2 level) and
/// dropout (a fixed key) against central differences, per parameter tensor
/// and for the input; the attention projections are given random weights
/// (at initialisation they are zero, which would hide the block's inside).
#[test]
fn unet_with_attention_and_dropout_matches_finite_differences() {
    let cfg = attn_config();
    let mut net = UNet::new(cfg.clone(), 3).unwrap();
    let mut r = rng(4);
    let specs = net.graph().tensors.clone();
    for (name, shape, off) in &specs {
        if name.contains(".attn.proj.") {
            let len: usize = shape.iter().product();
            let u = uniform(len, &mut r, 0.5);
            net.params_mut()[*off..off + len].copy_from_slice(&u);
        }
    }
    let g = net.graph().clone();
    let attn = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Attention { .. }))
        .count();
    let drops = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Dropout { .. }))
        .count();
    assert_eq!(
        (attn, drops),
        (3, 5),
        "attention: down, mid, up; dropout: every block"
    );
    let (b, d) = (3, cfg.data_dim());
    let x = uniform(b * d, &mut r, 1.0); // NHWC for the graph
    let t = [0.1f64, 0.5, 0.9];
    let wv = uniform(b * d, &mut r, 0.5);
    let key = Some(DropoutKey::new(7, 11));
    let run = |p: &[f32], x: &[f32]| -> f64 {
        let mut c = GraphCache {
            dropout: key,
            ..Default::default()
        };
        g.forward(p, b, x, &t, &mut c);
        let out = c.value(&g, g.nodes.len() - 1);
        out.iter()
            .zip(&wv)
            .map(|(&o, &w)| o as f64 * w as f64)
            .sum()
    };
    let mut cache = GraphCache {
        dropout: key,
        ..Default::default()
    };
    g.forward(net.params(), b, &x, &t, &mut cache);
    let mut grads = vec![0.0; net.num_params()];
    g.backward(net.params(), &mut cache, &wv, &mut grads);
    let h = 1e-2f32;
    let check = |what: &str, analytic: f64, lp: f64, lm: f64| {
        let numeric = (lp - lm) / (2.0 * h as f64);
        let err = (analytic - numeric).abs() / (analytic.abs().max(numeric.abs()) + 1e-3);
        assert!(
            err < 2e-2,
            "{what}: backward {analytic:.6e} vs finite difference {numeric:.6e} (rel err {err:.3e})"
        );
        err
    };
    let mut worst = 0.0f64;
    let dir = |n: usize, r: &mut scoresde::rng::StreamRng| {
        let v = uniform(n, r, 1.0);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    for (name, shape, off) in &specs {
        let n: usize = shape.iter().product();
        let v = dir(n, &mut r);
        let analytic: f64 = grads[*off..off + n]
            .iter()
            .zip(&v)
            .map(|(&g, &v)| g as f64 * v as f64)
            .sum();
        let mut p = net.params().to_vec();
        p[*off..off + n]
            .iter_mut()
            .zip(&v)
            .for_each(|(q, &v)| *q += h * v);
        let lp = run(&p, &x);
        p[*off..off + n]
            .iter_mut()
            .zip(&v)
            .for_each(|(q, &v)| *q -= 2.0 * h * v);
        worst = worst.max(check(name, analytic, lp, run(&p, &x)));
    }
    let dx = cache.grad(&g, 0).to_vec();
    for k in 0..4 {
        let v = dir(x.len(), &mut r);
        let analytic: f64 = dx.iter().zip(&v).map(|(&g, &v)| g as f64 * v as f64).sum();
        let xp: Vec<f32> = x.iter().zip(&v).map(|(&a, &v)| a + h * v).collect();
        let xm: Vec<f32> = x.iter().zip(&v).map(|(&a, &v)| a - h * v).collect();
        let lp = run(net.params(), &xp);
        worst = worst.max(check(
            &format!("input direction {k}"),
            analytic,
            lp,
            run(net.params(), &xm),
        ));
    }
    eprintln!(
        "unet+attention+dropout: {} tensors + input, worst rel err {worst:.2e}",
        specs.len()
    );
}

/// A fresh attention block is the identity: its output projection is zero
/// (and its gradient is not, so it learns).
#[test]
fn attention_projection_starts_at_zero_and_learns() {
    let cfg = UNetConfig {
        dropout: 0.0,
        ..attn_config()
    };
    let net = UNet::new(cfg.clone(), 1).unwrap();
    let proj: Vec<_> = net
        .graph()
        .tensors
        .iter()
        .filter(|(n, _, _)| n.contains(".attn.proj."))
        .cloned()
        .collect();
    assert_eq!(proj.len(), 6, "weight and bias of 3 blocks");
    let mut r = rng(5);
    let (b, d) = (2, cfg.data_dim());
    let x = Array2::from_shape_vec((b, d), uniform(b * d, &mut r, 1.0)).unwrap();
    let t = Array1::from_vec(vec![0.3f32, 0.7]);
    let mut cache = UNetCache::new();
    net.forward_train(x.view(), t.view(), &mut cache);
    let mut grads = vec![0.0; net.num_params()];
    net.backward(&mut cache, x.view(), &mut grads);
    for (name, shape, off) in &proj {
        let n: usize = shape.iter().product();
        assert!(
            net.params()[*off..off + n].iter().all(|&v| v == 0.0),
            "{name} is not zero"
        );
        if name.ends_with("weight") {
            assert!(
                grads[*off..off + n].iter().any(|&g| g != 0.0),
                "{name} gets no gradient"
            );
        }
    }
}

/// Inference equals the training forward (dropout off in both without a
/// key) and is the same bits for 1 and 2 threads and any batch split.
#[test]
fn unet_with_attention_inference_is_batch_and_thread_invariant() {
    let mut cfg = attn_config();
    cfg.dropout = 0.1;
    let mut net = UNet::new(cfg.clone(), 2).unwrap();
    let mut r = rng(6);
    for v in net.params_mut() {
        *v += (r.random::<f32>() - 0.5) * 0.05;
    }
    let (b, d) = (9, cfg.data_dim());
    let x = Array2::from_shape_vec((b, d), uniform(b * d, &mut r, 1.0)).unwrap();
    let t = Array1::from_shape_fn(b, |i| (i as f32 + 0.5) / b as f32);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut out = Array2::zeros((b, d));
                net.forward(x.view(), t.view(), out.view_mut());
                let mut cache = UNetCache::new();
                net.forward_train(x.view(), t.view(), &mut cache);
                (out, cache.output().to_owned())
            })
    };
    let (o1, f1) = run(1);
    let (o2, _) = run(2);
    assert_eq!(
        o1, f1,
        "inference differs from the key-less training forward"
    );
    assert_eq!(o1, o2, "inference differs between 1 and 2 threads");
    let mut part = Array2::zeros((4, d));
    net.forward(
        x.slice(ndarray::s![5..9, ..]),
        t.slice(ndarray::s![5..9]),
        part.view_mut(),
    );
    assert_eq!(part, o1.slice(ndarray::s![5..9, ..]));
}

#[test]
fn attention_settings_are_validated_with_the_valid_range() {
    let base = UNetConfig {
        widths: vec![16, 32, 32],
        ..UNetConfig::new(1, 28, 28)
    };
    let err = |cfg: UNetConfig| cfg.validate().unwrap_err().to_string();
    let ok = UNetConfig {
        attention: vec![7, 14],
        attn_heads: 4,
        ..base.clone()
    };
    ok.validate().unwrap();
    let e = err(UNetConfig {
        attention: vec![5],
        ..base.clone()
    });
    assert!(e.contains("attention") && e.contains("[28, 14, 7]"), "{e}");
    let e = err(UNetConfig {
        attention: vec![28],
        ..base.clone()
    });
    assert!(e.contains("784") && e.contains("256"), "{e}");
    let e = err(UNetConfig {
        attention: vec![7, 7],
        ..base.clone()
    });
    assert!(e.contains("once"), "{e}");
    let e = err(UNetConfig {
        attention: vec![7],
        attn_heads: 3,
        ..base.clone()
    });
    assert!(e.contains("attn_heads") && e.contains("32 channels"), "{e}");
    let e = err(UNetConfig {
        attn_heads: 0,
        ..base.clone()
    });
    assert!(e.contains("attn_heads") && e.contains("1..=16"), "{e}");
}

/// A default config writes none of the new fields (old checkpoints' JSON
/// is unchanged) and an old JSON reads with the defaults; a config with
/// the options round-trips.
#[test]
fn new_config_fields_default_and_are_not_written_when_off() {
    let cfg = UNetConfig::new(1, 8, 8);
    let json = serde_json::to_string(&cfg).unwrap();
    for field in ["attention", "attn_heads", "dropout"] {
        assert!(!json.contains(field), "{field} written in {json}");
    }
    let old = r#"{"channels":1,"height":8,"width":8,"widths":[16,32],"res_blocks":1,"emb_dim":32,"time_dim":64,"groups":8}"#;
    let back: UNetConfig = serde_json::from_str(old).unwrap();
    assert_eq!(back.attention, Vec::<usize>::new());
    assert_eq!((back.attn_heads, back.dropout), (1, 0.0));
    assert_eq!(serde_json::to_string(&back).unwrap(), old);
    let with = attn_config();
    let s = serde_json::to_string(&with).unwrap();
    assert_eq!(serde_json::from_str::<UNetConfig>(&s).unwrap(), with);
}
