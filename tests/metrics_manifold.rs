//! KID, k-NN precision / recall and density / coverage: identities that
//! follow from the definitions, the effect of dropped modes, and values on
//! a fixed small set against an independent numpy implementation of the
//! papers' definitions.

use ndarray::Array2;
use scoresde::data::GaussianMixture;
use scoresde::metrics::{density_coverage, kid, precision_recall, MeanSe, DC_K, PR_K};

/// The fixed sets of the numpy reference (values are multiples of 1/4 and
/// 1/2, exact in f32, so squared distances and ties are exact in f64 too).
fn fixed_sets() -> (Array2<f32>, Array2<f32>) {
    let r = Array2::from_shape_fn((12, 3), |(i, j)| {
        ((7 * i + 3 * j * j + 5) % 17) as f32 / 4.0 - 2.0
    });
    let g = Array2::from_shape_fn((10, 3), |(i, j)| {
        ((5 * i + 11 * j + 2) % 13) as f32 / 2.0 - 3.0
    });
    (r, g)
}

/// Expected values computed once by a direct numpy implementation of the
/// papers' definitions (tests/fixtures/manifold_reference.py, run once;
/// closed balls, k-th neighbour excluding the point):
/// precision/recall k=3 (0.7, 1.0), swapped (1.0, 0.7); density/coverage
/// k=5 (0.84, 1.0), k=3 (0.7333…, 0.8333…); KID 1.8428361212676538.
#[test]
fn values_match_an_independent_implementation_on_a_fixed_set() {
    let (r, g) = fixed_sets();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    let (p, rc) = precision_recall(r.view(), g.view(), 3).unwrap();
    assert!(close(p, 0.7) && close(rc, 1.0), "{p} {rc}");
    let (p, rc) = precision_recall(g.view(), r.view(), 3).unwrap();
    assert!(close(p, 1.0) && close(rc, 0.7), "{p} {rc}");
    let (d, c) = density_coverage(r.view(), g.view(), 5).unwrap();
    assert!(close(d, 0.84) && close(c, 1.0), "{d} {c}");
    let (d, c) = density_coverage(r.view(), g.view(), 3).unwrap();
    assert!(
        close(d, 0.7333333333333333) && close(c, 0.8333333333333334),
        "{d} {c}"
    );
    let k = kid(r.view(), g.view()).unwrap();
    assert!((k - 1.8428361212676538).abs() < 1e-12, "{k}");
}

/// The same set on both sides: every point lies in its own ball, and each
/// ball holds the point and its k neighbours (no ties in continuous data),
/// so precision = recall = coverage = 1 and density = (k + 1) / k exactly.
#[test]
fn identical_sets_give_exact_values() {
    let gm = mixture(10);
    let x = gm.sample(500, 1);
    let (p, r) = precision_recall(x.view(), x.view(), PR_K).unwrap();
    assert_eq!((p, r), (1.0, 1.0));
    let (d, c) = density_coverage(x.view(), x.view(), DC_K).unwrap();
    assert_eq!(c, 1.0);
    assert!((d - (DC_K as f64 + 1.0) / DC_K as f64).abs() < 1e-12, "{d}");
}

/// 10 well-separated modes on a circle of radius 10, std 0.5.
fn mixture(modes: usize) -> GaussianMixture {
    let means = (0..modes)
        .map(|k| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / 10.0;
            vec![10.0 * a.cos(), 10.0 * a.sin()]
        })
        .collect();
    GaussianMixture::uniform(means, 0.5)
}

/// Two independent draws of one distribution: precision and recall near 1,
/// density near 1 (its expectation), coverage near 1 − 2⁻⁵ = 0.969; and
/// with 2 of 10 modes dropped from the generated side, recall and coverage
/// fall by about the dropped mass (20 points) while precision stays put.
#[test]
fn same_distribution_is_near_one_and_dropped_modes_cost_recall_and_coverage() {
    let n = 2000;
    let real = mixture(10).sample(n, 11);
    let same = mixture(10).sample(n, 12);
    let dropped = mixture(8).sample(n, 12);
    let (p, r) = precision_recall(real.view(), same.view(), PR_K).unwrap();
    let (d, c) = density_coverage(real.view(), same.view(), DC_K).unwrap();
    assert!(p > 0.95 && r > 0.95, "precision {p} recall {r}");
    assert!((d - 1.0).abs() < 0.05, "density {d}");
    assert!(c >= 0.95, "coverage {c}");
    let (p2, r2) = precision_recall(real.view(), dropped.view(), PR_K).unwrap();
    let (d2, c2) = density_coverage(real.view(), dropped.view(), DC_K).unwrap();
    assert!((p2 - p).abs() <= 0.05, "precision {p} -> {p2}");
    assert!((r - r2 - 0.2).abs() <= 0.03, "recall {r} -> {r2}");
    assert!((c - c2 - 0.2).abs() <= 0.03, "coverage {c} -> {c2}");
    // Density only sees the generated points' positions: still about 1.
    assert!((d2 - 1.0).abs() < 0.1, "density {d2}");
}

/// KID is unbiased: over 20 independent pairs from one distribution its
/// mean is within 2 SE of 0; a mean shift of 0.5 in every coordinate puts
/// it far (> 10 SE) above 0.
#[test]
fn kid_is_unbiased_and_detects_a_shift() {
    let gm = GaussianMixture::uniform(vec![vec![0.0; 5]], 1.0);
    let shifted = GaussianMixture::uniform(vec![vec![0.5; 5]], 1.0);
    let pairs = |other: &GaussianMixture| -> MeanSe {
        let v: Vec<f64> = (0..20u64)
            .map(|s| {
                let (a, b) = (gm.sample(200, 100 + s), other.sample(200, 200 + s));
                kid(a.view(), b.view()).unwrap()
            })
            .collect();
        MeanSe::from_samples(&v)
    };
    let null = pairs(&gm);
    assert!(null.mean.abs() <= 2.0 * null.se, "{null}");
    let alt = pairs(&shifted);
    assert!(alt.mean > 10.0 * alt.se, "{alt}");
}

#[test]
fn bad_sets_are_errors_not_panics() {
    let a = Array2::<f32>::zeros((3, 2));
    let b = Array2::<f32>::zeros((10, 3));
    assert!(precision_recall(a.view(), a.view(), 3).is_err());
    assert!(precision_recall(b.view(), a.view(), 1).is_err());
    assert!(density_coverage(b.view(), b.view(), 0).is_err());
    assert!(kid(a.view(), b.view()).is_err());
    assert!(kid(a.slice(ndarray::s![..1, ..]), a.view()).is_err());
}
