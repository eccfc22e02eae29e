//! Sliced Wasserstein distance (docs/SPEC.md definition).

use ndarray::{concatenate, s, Array2, Axis};
use rand_distr::{Distribution, StandardNormal};
use scoresde::data::Toy;
use scoresde::metrics::{swd, wasserstein1_sorted};
use scoresde::rng::{self, domain};

/// n draws of N(m, I) in d = m.len() dimensions.
fn gaussian(n: usize, m: &[f64], seed: u64) -> Array2<f32> {
    let mut r = rng::stream(seed, domain::DATA, 0);
    Array2::from_shape_fn((n, m.len()), |(_, j)| {
        let z: f64 = StandardNormal.sample(&mut r);
        (m[j] + z) as f32
    })
}

#[test]
fn identical_sets_are_at_distance_zero() {
    let a = Toy::Checkerboard.sample(2000, 1);
    assert_eq!(swd(a.view(), a.view(), 256, 0), 0.0);
}

#[test]
fn shifted_gaussians_give_two_abs_m_over_pi() {
    // For N(0,I) vs N(m,I) each 1-D projection is a pure shift by m·u, so
    // W1 = |m·u| and E_u |m·u| = 2|m|/π for u uniform on the circle.
    let (n, p) = (5000, 1024);
    let m = [1.2, -1.6]; // |m| = 2
    let a = gaussian(n, &[0.0, 0.0], 1);
    let b = gaussian(n, &m, 2);
    let got = swd(a.view(), b.view(), p, 3);
    let want = 2.0 * 2.0 / std::f64::consts::PI;
    // Direction noise: sd of |m·u| is |m|·sqrt(1/2 − 4/π²); sample noise of the
    // mean shift ~ sqrt(2/n); plus a small positive bias from quantile noise.
    let se_dir = 2.0 * (0.5 - 4.0 / std::f64::consts::PI.powi(2)).sqrt() / (p as f64).sqrt();
    let se_n = (2.0 / n as f64).sqrt();
    let tol = 4.0 * (se_dir * se_dir + se_n * se_n).sqrt() + 0.01;
    assert!((got - want).abs() < tol, "swd {got}, want {want} ± {tol}");
    // A sqrt(2)-off definition (e.g. unnormalised directions) would miss by far more.
    assert!(tol < 0.1 * want);
}

#[test]
fn symmetric_and_invariant_to_row_order() {
    let a = Toy::TwoMoons.sample(1500, 1);
    let b = Toy::Rings.sample(1500, 2);
    let ab = swd(a.view(), b.view(), 128, 5);
    assert!(ab > 0.1, "{ab}");
    assert_eq!(ab, swd(b.view(), a.view(), 128, 5));
    let mut rev = a.clone();
    rev.invert_axis(Axis(0));
    let shuffled = concatenate![Axis(0), rev.slice(s![700.., ..]), rev.slice(s![..700, ..])];
    assert_eq!(ab, swd(shuffled.view(), b.view(), 128, 5));
    // Unequal sizes as well.
    let c = Toy::Rings.sample(999, 3);
    assert_eq!(
        swd(a.view(), c.view(), 64, 5),
        swd(c.view(), a.view(), 64, 5)
    );
}

#[test]
fn unequal_sizes_compare_quantile_functions() {
    assert_eq!(wasserstein1_sorted(&[0.0], &[0.0, 1.0]), 0.5);
    // Quantile pieces: [0,1/3) |0−1|, [1/3,1/2) |0−2|, [1/2,2/3) |3−2|, [2/3,1) |3−4|
    // → 1/3 + 2/6 + 1/6 + 1/3 = 7/6.
    let w = wasserstein1_sorted(&[0.0, 3.0], &[1.0, 2.0, 4.0]);
    assert!((w - 7.0 / 6.0).abs() < 1e-12, "{w}");
    // Duplicating every point leaves the empirical distribution unchanged.
    let a = Toy::SwissRoll.sample(800, 1);
    let b = Toy::SwissRoll.sample(600, 2);
    let bb = concatenate![Axis(0), b, b];
    let d1 = swd(a.view(), b.view(), 64, 9);
    let d2 = swd(a.view(), bb.view(), 64, 9);
    assert!((d1 - d2).abs() < 1e-12 * d1.max(1.0), "{d1} vs {d2}");
}

#[test]
fn independent_of_thread_count_and_seeded() {
    let a = Toy::Pinwheel.sample(3000, 1);
    let b = Toy::Pinwheel.sample(3000, 2);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let serial = one.install(|| swd(a.view(), b.view(), 256, 4));
    assert_eq!(serial, swd(a.view(), b.view(), 256, 4));
    assert_ne!(serial, swd(a.view(), b.view(), 256, 5));
    assert!(swd(a.view(), b.view(), 0, 4).is_nan());
    assert!(swd(a.slice(s![..0, ..]), b.view(), 8, 4).is_nan());
}
