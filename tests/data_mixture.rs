//! Gaussian mixture: exact log-density (normalisation, closed form) and
//! sampling that respects the weights.

use scoresde::data::{GaussianMixture, Toy};

/// Riemann sum of p(x) over the square [-lim, lim]² with step h.
fn integrate(gm: &GaussianMixture, lim: f64, h: f64) -> f64 {
    let k = (2.0 * lim / h).round() as i64;
    let mut acc = 0.0;
    for i in 0..k {
        for j in 0..k {
            let x = [-lim + (i as f64 + 0.5) * h, -lim + (j as f64 + 0.5) * h];
            acc += gm.log_prob(&x).exp();
        }
    }
    acc * h * h
}

#[test]
fn log_prob_integrates_to_one_in_2d() {
    let unequal = GaussianMixture {
        means: vec![vec![-1.0, 0.5], vec![2.0, -2.0], vec![0.0, 3.0]],
        weights: vec![1.0, 2.0, 5.0],
        std: 0.7,
    };
    for (name, gm) in [
        ("8gaussians", Toy::EightGaussians.mixture().unwrap()),
        ("25gaussians", Toy::TwentyFiveGaussians.mixture().unwrap()),
        ("unequal", unequal),
    ] {
        let z = integrate(&gm, 7.0, 0.02);
        assert!((z - 1.0).abs() < 1e-3, "{name}: ∫p = {z}");
    }
}

#[test]
fn log_prob_matches_the_closed_form_and_survives_far_points() {
    let gm = GaussianMixture::uniform(vec![vec![1.0, -2.0, 0.5]], 0.5);
    let x = [0.0, 0.0, 0.0];
    let d2 = 1.0 + 4.0 + 0.25;
    let want = -1.5 * (2.0 * std::f64::consts::PI * 0.25).ln() - d2 / (2.0 * 0.25);
    assert!((gm.log_prob(&x) - want).abs() < 1e-12);
    // Far from every mode exp underflows; log-sum-exp must not.
    let g8 = Toy::EightGaussians.mixture().unwrap();
    let lp = g8.log_prob(&[1e3, -1e3]);
    assert!(lp.is_finite() && lp < -1e6, "{lp}");
}

#[test]
fn samples_follow_the_weights() {
    let gm = GaussianMixture {
        means: vec![vec![-10.0, 0.0], vec![0.0, 0.0], vec![10.0, 0.0]],
        weights: vec![0.2, 0.3, 0.5],
        std: 1.0,
    };
    let n = 20_000;
    let x = gm.sample(n, 9);
    let mut counts = [0usize; 3];
    for r in x.rows() {
        counts[gm.nearest(&[r[0] as f64, r[1] as f64]).0] += 1;
    }
    for (k, w) in gm.weights.iter().enumerate() {
        let se = (w * (1.0 - w) / n as f64).sqrt();
        let f = counts[k] as f64 / n as f64;
        assert!((f - w).abs() < 4.0 * se, "component {k}: {f} vs {w}");
    }
}
