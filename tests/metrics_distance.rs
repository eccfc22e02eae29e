//! RBF-MMD² and energy distance: unbiased under the null, closed forms for
//! Gaussian shifts, monotone in the shift.

use ndarray::Array2;
use rand_distr::{Distribution, StandardNormal};
use scoresde::metrics::{
    energy_distance, median_bandwidth, mmd_rbf, mmd_rbf_with_bandwidth, MeanSe,
};
use scoresde::rng::{self, domain};

fn gaussian(n: usize, m: &[f64], seed: u64) -> Array2<f32> {
    let mut r = rng::stream(seed, domain::DATA, 1);
    Array2::from_shape_fn((n, m.len()), |(_, j)| {
        let z: f64 = StandardNormal.sample(&mut r);
        (m[j] + z) as f32
    })
}

/// Mean ± se of `f(N(0,I) sample, N(m,I) sample)` over `reps` seeds.
fn repeat(reps: u64, n: usize, m: &[f64], f: impl Fn(&Array2<f32>, &Array2<f32>) -> f64) -> MeanSe {
    let zero = vec![0.0; m.len()];
    let v: Vec<f64> = (0..reps)
        .map(|s| {
            f(
                &gaussian(n, &zero, 100 + 2 * s),
                &gaussian(n, m, 101 + 2 * s),
            )
        })
        .collect();
    MeanSe::from_samples(&v)
}

#[test]
fn unbiased_under_the_null() {
    // A biased (V-statistic) MMD² would sit ~2(1 − E k)/n above zero, many se away.
    let mmd = repeat(20, 300, &[0.0, 0.0], |a, b| mmd_rbf(a.view(), b.view()));
    assert!(mmd.mean.abs() < 4.0 * mmd.se, "MMD² under H0: {mmd}");
    let ed = repeat(20, 300, &[0.0, 0.0], |a, b| {
        energy_distance(a.view(), b.view())
    });
    assert!(ed.mean.abs() < 4.0 * ed.se, "energy under H0: {ed}");
}

#[test]
fn mmd_matches_the_gaussian_closed_form() {
    // With k(x,y) = exp(−‖x−y‖²/(2h²)) and X − Y ~ N(μ, 2I) in d dims,
    // E k = (h²/(h²+2))^{d/2} exp(−‖μ‖²/(2(h²+2))), so
    // MMD² = 2 (h²/(h²+2))^{d/2} (1 − exp(−‖m‖²/(2(h²+2)))).
    let h: f64 = 1.0;
    for m in [[0.5, 0.0, 0.0], [1.0, -1.0, 0.5]] {
        let m2: f64 = m.iter().map(|v| v * v).sum();
        let want =
            2.0 * (h * h / (h * h + 2.0)).powf(1.5) * (1.0 - (-m2 / (2.0 * (h * h + 2.0))).exp());
        let got = repeat(8, 600, &m, |a, b| {
            mmd_rbf_with_bandwidth(a.view(), b.view(), h)
        });
        assert!(
            (got.mean - want).abs() < 5.0 * got.se,
            "m = {m:?}: {got} vs {want}"
        );
    }
}

#[test]
fn energy_distance_matches_the_gaussian_closed_form() {
    // 1-D, X ~ N(0,1), Y ~ N(μ,1): 2E|X−Y| − E|X−X'| − E|Y−Y'| with
    // E|N(μ, s²)| = s√(2/π) e^{−μ²/(2s²)} + μ(1 − 2Φ(−μ/s)), s = √2.
    for (mu, want) in [(0.5, 0.13959631472944034), (1.0, 0.5418065793059572)] {
        let got = repeat(8, 1000, &[mu], |a, b| energy_distance(a.view(), b.view()));
        assert!(
            (got.mean - want).abs() < 5.0 * got.se,
            "μ = {mu}: {got} vs {want}"
        );
    }
}

#[test]
fn both_grow_with_the_shift() {
    let a = gaussian(1000, &[0.0, 0.0], 1);
    let null_b = gaussian(1000, &[0.0, 0.0], 2);
    let (mut last_mmd, mut last_ed) = (
        mmd_rbf(a.view(), null_b.view()),
        energy_distance(a.view(), null_b.view()),
    );
    for shift in [0.25, 0.5, 1.0, 2.0] {
        let b = gaussian(1000, &[shift, 0.0], 2);
        let (mm, ed) = (
            mmd_rbf(a.view(), b.view()),
            energy_distance(a.view(), b.view()),
        );
        assert!(
            mm > last_mmd && ed > last_ed,
            "shift {shift}: mmd {mm} ed {ed}"
        );
        (last_mmd, last_ed) = (mm, ed);
    }
    assert!(
        last_mmd > 0.1 && last_ed > 1.0,
        "mmd {last_mmd} ed {last_ed}"
    );
}

#[test]
fn median_bandwidth_is_deterministic_and_scales_with_the_data() {
    let a = gaussian(3000, &[0.0, 0.0], 1);
    let b = gaussian(3000, &[0.0, 0.0], 2);
    let h = median_bandwidth(a.view(), b.view());
    assert_eq!(h, median_bandwidth(a.view(), b.view()));
    // Median of ‖X − X'‖ for X − X' ~ N(0, 2I) in 2-D: 2 sqrt(ln 2) ≈ 1.665.
    assert!((h - 2.0 * 2f64.ln().sqrt()).abs() < 0.05, "{h}");
    let a3 = a.mapv(|v| 3.0 * v);
    let b3 = b.mapv(|v| 3.0 * v);
    assert!((median_bandwidth(a3.view(), b3.view()) - 3.0 * h).abs() < 1e-5 * h);
    // Degenerate data falls back to h = 1.
    let z = Array2::<f32>::zeros((10, 2));
    assert_eq!(median_bandwidth(z.view(), z.view()), 1.0);
    assert!(mmd_rbf(z.view(), z.view()).abs() < 1e-12);
}
