//! Mixture metrics: coverage, high-quality fraction, mean true log-density.

use ndarray::Array2;
use scoresde::data::{GaussianMixture, Toy};
use scoresde::metrics::mixture_metrics;

#[test]
fn samples_from_the_mixture_cover_every_mode() {
    let n = 5000;
    for toy in [Toy::EightGaussians, Toy::TwentyFiveGaussians] {
        let gm = toy.mixture().unwrap();
        let m = mixture_metrics(&gm, toy.sample(n, 3).view());
        assert_eq!(m.modes_covered, gm.n_modes(), "{toy}");
        assert_eq!(m.mode_coverage, 1.0);
        // In 2-D, P(‖z‖ ≤ 3) = 1 − e^{−9/2}.
        let p = 1.0 - (-4.5f64).exp();
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (m.high_quality - p).abs() < 4.0 * se + 1e-3,
            "{toy}: {}",
            m.high_quality
        );
        // Well-separated modes: E log p ≈ −ln K − ln(2πσ²) − 1 (sd of log p is 1).
        let want =
            -(gm.n_modes() as f64).ln() - (2.0 * std::f64::consts::PI * gm.std * gm.std).ln() - 1.0;
        let tol = 4.0 / (n as f64).sqrt() + 0.02;
        assert!(
            (m.mean_log_prob - want).abs() < tol,
            "{toy}: {} vs {want}",
            m.mean_log_prob
        );
    }
}

#[test]
fn samples_from_one_mode_cover_one_mode() {
    let g25 = Toy::TwentyFiveGaussians.mixture().unwrap();
    let one = GaussianMixture::uniform(vec![g25.means[7].clone()], g25.std);
    let m = mixture_metrics(&g25, one.sample(2000, 1).view());
    assert_eq!(m.modes_covered, 1);
    assert!((m.mode_coverage - 1.0 / 25.0).abs() < 1e-12);
    assert!(m.high_quality > 0.97);
}

#[test]
fn far_away_samples_are_neither_covered_nor_high_quality() {
    let g8 = Toy::EightGaussians.mixture().unwrap();
    // The origin is 2√2 ≈ 8σ from every mode.
    let x = Array2::<f32>::zeros((100, 2));
    let m = mixture_metrics(&g8, x.view());
    assert_eq!((m.modes_covered, m.high_quality), (0, 0.0));
    assert!(m.mean_log_prob < -20.0, "{}", m.mean_log_prob);
    // A sample collapsed onto one mode's centre: 1/8 coverage, all high quality.
    let c = &g8.means[3];
    let x = Array2::from_shape_fn((50, 2), |(_, j)| c[j] as f32);
    let m = mixture_metrics(&g8, x.view());
    assert_eq!((m.modes_covered, m.high_quality), (1, 1.0));
}
