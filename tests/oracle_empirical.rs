//! EmpiricalScore: the Gaussian case M = 1, finite differences of the exact
//! log-density, an independent direct-distance implementation on 784-D
//! points near sigma → 0, and finiteness far away.

use ndarray::Array2;
use scoresde::data::GaussianMixture;
use scoresde::oracle::EmpiricalScore;
use scoresde::score::{GaussianScore, Score};
use scoresde::sde::{SdeConfig, VpSde};

const SDES: [&str; 3] = ["vp", "subvp", "ve"];

fn normal(n: usize, d: usize, seed: u64) -> Array2<f32> {
    GaussianMixture::uniform(vec![vec![0.0; d]], 1.0).sample(n, seed)
}

#[test]
fn one_point_is_the_gaussian_score() {
    let y = normal(1, 3, 1);
    let oracle = EmpiricalScore::new(y.view(), &SdeConfig::by_name("vp").unwrap()).unwrap();
    let gauss = GaussianScore {
        sde: VpSde::default(),
        mu: y.iter().map(|&v| v as f64).collect(),
        s: 0.0,
    };
    let x = normal(20, 3, 2).mapv(|v| 2.0 * v);
    for t in [1e-3, 0.1, 0.5, 1.0] {
        let (mut a, mut b) = (Array2::zeros((20, 3)), Array2::zeros((20, 3)));
        oracle.score(x.view(), t, a.view_mut());
        gauss.score(x.view(), t, b.view_mut());
        for (u, v) in a.iter().zip(b.iter()) {
            assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "t={t}: {u} vs {v}");
        }
    }
}

#[test]
fn matches_finite_differences_of_log_density() {
    let y = normal(20, 3, 3);
    for name in SDES {
        let oracle = EmpiricalScore::new(y.view(), &SdeConfig::by_name(name).unwrap()).unwrap();
        for t in [0.01, 0.1, 0.5, 1.0] {
            let sde = oracle.sde();
            let (a, sigma) = (sde.alpha(t), sde.sigma(t));
            // Points near the noised data: alpha y_j + sigma z.
            let z = normal(20, 3, 4);
            let x = y.mapv(|v| a as f32 * v) + z.mapv(|v| sigma as f32 * v);
            let mut s = Array2::<f32>::zeros(x.raw_dim());
            oracle.score(x.view(), t, s.view_mut());
            let h = 1e-4 * sigma;
            for (i, row) in x.outer_iter().enumerate() {
                let base: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                for j in 0..3 {
                    let (mut p, mut m) = (base.clone(), base.clone());
                    p[j] += h;
                    m[j] -= h;
                    let fd = (oracle.log_density(&p, t) - oracle.log_density(&m, t)) / (2.0 * h);
                    let got = s[[i, j]] as f64;
                    assert!(
                        (got - fd).abs() <= 1e-4 * (1.0 + fd.abs()),
                        "{name} t={t} row {i} dim {j}: {got} vs {fd}"
                    );
                }
            }
        }
    }
}

/// The same score summed over direct f64 distances ‖x − alpha y_j‖², for
/// 784-D points two of which are sigma apart, at the VP and VE cut-offs.
/// An f32 distance expansion would get the responsibilities wrong here.
#[test]
fn images_near_the_data_at_the_cut_off_match_direct_distances() {
    let (m, d) = (50, 784);
    let mut y = normal(m, d, 5).mapv(|v| v.clamp(-1.0, 1.0));
    for name in ["vp", "ve"] {
        let cfg = SdeConfig::by_name(name).unwrap();
        let sde = cfg.build().unwrap();
        let t = sde.t_eps();
        let (a, sigma) = (sde.alpha(t), sde.sigma(t));
        // y_1 = y_0 + sigma · u / sqrt(d) · 2: neighbours at distance 2 sigma.
        let u = normal(1, d, 6);
        let y0 = y.row(0).to_owned();
        for k in 0..d {
            y[[1, k]] = y0[k] + (2.0 * sigma / (d as f64).sqrt()) as f32 * u[[0, k]];
        }
        let oracle = EmpiricalScore::new(y.view(), &cfg).unwrap();
        let z = normal(4, d, 7);
        let mut x = Array2::<f32>::zeros((4, d));
        for i in 0..4 {
            for k in 0..d {
                let mid = 0.5 * (y[[0, k]] + y[[1, k]]) as f64;
                x[[i, k]] = (a * mid + 0.5 * sigma / (d as f64).sqrt() * z[[i, k]] as f64) as f32;
            }
        }
        let mut s = Array2::<f32>::zeros((4, d));
        oracle.score(x.view(), t, s.view_mut());
        for i in 0..4 {
            let xr: Vec<f64> = x.row(i).iter().map(|&v| v as f64).collect();
            let logits: Vec<f64> = y
                .outer_iter()
                .map(|yr| {
                    -xr.iter()
                        .zip(yr.iter())
                        .map(|(xv, &yv)| (xv - a * yv as f64).powi(2))
                        .sum::<f64>()
                        / (2.0 * sigma * sigma)
                })
                .collect();
            let mx = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
            let tot: f64 = w.iter().sum();
            assert!(
                w[0] / tot > 0.01 && w[1] / tot > 0.01,
                "both neighbours matter"
            );
            for k in 0..d {
                let mean: f64 = w
                    .iter()
                    .zip(y.column(k))
                    .map(|(wj, &yj)| wj * yj as f64)
                    .sum::<f64>()
                    / tot;
                let want = (a * mean - xr[k]) / (sigma * sigma);
                let got = s[[i, k]] as f64;
                let scale = 1.0 / sigma; // typical |score| near the data
                assert!(
                    (got - want).abs() <= 1e-4 * scale,
                    "{name} row {i} pixel {k}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn far_points_at_tiny_t_stay_finite() {
    let y = normal(30, 2, 8);
    for name in SDES {
        let oracle = EmpiricalScore::new(y.view(), &SdeConfig::by_name(name).unwrap()).unwrap();
        let x = Array2::from_shape_vec((3, 2), vec![1e3, -1e3, 1e6, 1e6, 0.0, 50.0]).unwrap();
        for t in [1e-9, 1e-6, oracle.sde().t_eps()] {
            let mut s = Array2::<f32>::zeros((3, 2));
            oracle.score(x.view(), t, s.view_mut());
            assert!(s.iter().all(|v| v.is_finite()), "{name} t={t}: {s}");
        }
    }
}

#[test]
fn bad_data_is_rejected() {
    let vp = SdeConfig::by_name("vp").unwrap();
    assert!(EmpiricalScore::new(Array2::<f32>::zeros((0, 2)).view(), &vp).is_err());
    assert!(EmpiricalScore::new(Array2::<f32>::zeros((3, 0)).view(), &vp).is_err());
    let mut y = Array2::<f32>::zeros((3, 2));
    y[[1, 0]] = f32::NAN;
    let e = EmpiricalScore::new(y.view(), &vp).unwrap_err().to_string();
    assert!(e.contains("data point 1"), "{e}");
}
