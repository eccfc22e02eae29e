//! MeanSe: values and formatting.

use scoresde::metrics::MeanSe;

#[test]
fn mean_and_standard_error() {
    let m = MeanSe::from_samples(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!((m.mean, m.n), (2.5, 4));
    // s = sqrt(5/3), se = s / 2.
    assert!((m.se - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-15);
    assert_eq!(m.to_string(), "2.5000 ± 0.6455");
    assert_eq!(format!("{m:.2}"), "2.50 ± 0.65");
    let s = MeanSe::from_samples(&[0.0491, 0.0479, 0.0503]);
    assert_eq!(s.to_string(), "0.0491 ± 0.0007");
}

#[test]
fn degenerate_inputs() {
    let one = MeanSe::from_samples(&[3.0]);
    assert_eq!(one.mean, 3.0);
    assert!(one.se.is_nan());
    assert!(MeanSe::from_samples(&[]).mean.is_nan());
}
