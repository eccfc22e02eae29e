//! Adam and EMA against their closed forms.

#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use scoresde::nn::{Adam, Ema};

/// Two Adam steps on known gradients match PyTorch's formulas evaluated in
/// f64 (to f32 rounding: relative 1e-6).
#[test]
fn adam_steps_match_closed_form() {
    let lr = 1e-3;
    let p0 = [1.0f32, -2.0, 0.5, 0.0];
    let g1 = [0.3f32, -1e-3, 10.0, 0.0];
    let g2 = [-0.1f32, 2e-3, 10.0, 1.0];
    let mut p = p0;
    let mut adam = Adam::new(lr, 4);
    adam.update(&mut p, &g1);
    assert_eq!(adam.step, 1);
    // Step 1: m = 0.1 g, v = 0.001 g², so m̂/(√v̂ + eps) = g / (|g| + eps).
    for i in 0..4 {
        let g = g1[i] as f64;
        let want = p0[i] as f64 - lr * g / (g.abs() + 1e-8);
        assert!(
            (p[i] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
            "step 1, param {i}: {} vs {want}",
            p[i]
        );
    }
    let p1 = p;
    adam.update(&mut p, &g2);
    for i in 0..4 {
        let (a, b) = (g1[i] as f64, g2[i] as f64);
        let m = 0.9 * 0.1 * a + 0.1 * b;
        let v = 0.999 * 0.001 * a * a + 0.001 * b * b;
        let m_hat = m / (1.0 - 0.9f64.powi(2));
        let v_hat = v / (1.0 - 0.999f64.powi(2));
        let want = p1[i] as f64 - lr * m_hat / (v_hat.sqrt() + 1e-8);
        assert!(
            (p[i] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
            "step 2, param {i}: {} vs {want}",
            p[i]
        );
        assert!((adam.m[i] as f64 - m).abs() <= 1e-6 * m.abs().max(1e-3));
        assert!((adam.v[i] as f64 - v).abs() <= 1e-6 * v.abs().max(1e-9));
    }
}

/// Adam minimises f(θ) = ½ Σ a_i (θ_i − c_i)² with very different
/// curvatures a_i to within 1e-3 in 3000 steps.
#[test]
fn adam_converges_on_a_quadratic() {
    let a = [100.0f32, 1.0, 0.01, 5.0];
    let c = [1.0f32, -3.0, 0.5, 2.0];
    let mut p = [0.0f32; 4];
    let mut g = [0.0f32; 4];
    let mut adam = Adam::new(1e-2, 4);
    for _ in 0..3000 {
        for i in 0..4 {
            g[i] = a[i] * (p[i] - c[i]);
        }
        adam.update(&mut p, &g);
    }
    for i in 0..4 {
        assert!(
            (p[i] - c[i]).abs() < 1e-3,
            "θ{i} = {} (target {})",
            p[i],
            c[i]
        );
    }
}

/// Adam state saved and restored continues bit-identically.
#[test]
fn adam_state_restore_is_exact() {
    let mut a = Adam::new(1e-3, 3);
    let mut p = [1.0f32, 2.0, 3.0];
    a.update(&mut p, &[0.1, -0.2, 0.3]);
    let mut b = Adam::new(1e-3, 3);
    b.set_state(&a.m, &a.v, a.step).unwrap();
    let mut q = p;
    a.update(&mut p, &[0.5, 0.5, -0.5]);
    b.update(&mut q, &[0.5, 0.5, -0.5]);
    assert_eq!(p, q);
    assert!(b.set_state(&[0.0; 2], &[0.0; 3], 1).is_err());
}

/// EMA: shadow starts at the params; one update is d·s + (1−d)·p; with
/// constant params it converges to them.
#[test]
fn ema_follows_its_formula() {
    let mut e = Ema::new(0.9, &[1.0, -1.0]);
    assert_eq!(e.shadow, vec![1.0, -1.0]);
    e.update(&[2.0, 1.0]);
    assert!((e.shadow[0] - 1.1).abs() < 1e-6);
    assert!((e.shadow[1] + 0.8).abs() < 1e-6);
    for _ in 0..500 {
        e.update(&[2.0, 1.0]);
    }
    assert!((e.shadow[0] - 2.0).abs() < 1e-5 && (e.shadow[1] - 1.0).abs() < 1e-5);
    assert!(e.set_shadow(&[0.0]).is_err());
}
