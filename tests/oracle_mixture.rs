//! MixtureScore against the exact log-density of the noised mixture, and a
//! sampler driven by it against the mixture itself.

use ndarray::Array2;
use scoresde::data::{GaussianMixture, Toy};
use scoresde::metrics::{mixture_metrics, swd, MeanSe};
use scoresde::oracle::MixtureScore;
use scoresde::samplers::{sample, EulerMaruyama, SampleOptions};
use scoresde::score::Score;
use scoresde::sde::SdeConfig;

const SDES: [&str; 3] = ["vp", "subvp", "ve"];

/// The noised mixture written out here (not taken from the oracle):
/// p_t = Σ_k w_k N(alpha mu_k, (alpha² s² + sigma²) I).
fn noised(oracle: &MixtureScore, t: f64) -> GaussianMixture {
    let gm = oracle.mixture();
    let (a, sigma) = (oracle.sde().alpha(t), oracle.sde().sigma(t));
    GaussianMixture {
        means: gm
            .means
            .iter()
            .map(|m| m.iter().map(|v| a * v).collect())
            .collect(),
        weights: gm.weights.clone(),
        std: (a * a * gm.std * gm.std + sigma * sigma).sqrt(),
    }
}

/// Central differences of ln p_t (f64, `GaussianMixture::log_prob` of
/// [`noised`]) at the rows of `x`; compared with the oracle's f32 score.
fn check_fd(oracle: &MixtureScore, x: &Array2<f32>, t: f64, what: &str) {
    let p_t = noised(oracle, t);
    assert_eq!(p_t, oracle.marginal(t));
    let mut s = Array2::<f32>::zeros(x.raw_dim());
    oracle.score(x.view(), t, s.view_mut());
    let h = 1e-4 * p_t.std;
    for (i, row) in x.outer_iter().enumerate() {
        let base: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        for j in 0..base.len() {
            let (mut plus, mut minus) = (base.clone(), base.clone());
            plus[j] += h;
            minus[j] -= h;
            let fd = (p_t.log_prob(&plus) - p_t.log_prob(&minus)) / (2.0 * h);
            let got = s[[i, j]] as f64;
            assert!(
                (got - fd).abs() <= 1e-4 * (1.0 + fd.abs()),
                "{what} t={t} row {i} dim {j}: score {got} vs finite difference {fd}"
            );
        }
    }
}

/// Points from p_t (alpha y + sigma z) and from a wide box, where several
/// components share the responsibility.
fn probe_points(oracle: &MixtureScore, t: f64, n: usize) -> Array2<f32> {
    let sde = oracle.sde();
    let (a, sigma) = (sde.alpha(t), sde.sigma(t));
    let y = oracle.mixture().sample(n, 7);
    let z = GaussianMixture::uniform(vec![vec![0.0; y.ncols()]], 1.0).sample(n, 8);
    let mut x = y.mapv(|v| a as f32 * v) + z.mapv(|v| sigma as f32 * v);
    for (i, mut row) in x.outer_iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
        for (j, v) in row.iter_mut().enumerate() {
            // Deterministic spread over the box [-5, 5]·a ± 2 sigma.
            let u = (((i * 7 + j * 13) % 17) as f64 / 8.0 - 1.0) * 5.0;
            *v = (a * u + 2.0 * sigma * (u / 5.0)) as f32;
        }
    }
    x
}

#[test]
fn mixture_score_matches_finite_differences_of_log_density() {
    for name in SDES {
        let cfg = SdeConfig::by_name(name).unwrap();
        for toy in [Toy::TwentyFiveGaussians, Toy::EightGaussians] {
            let oracle = MixtureScore::new(toy.mixture().unwrap(), &cfg).unwrap();
            for t in [oracle.sde().t_eps(), 0.01, 0.1, 0.5, 1.0] {
                let x = probe_points(&oracle, t, 40);
                check_fd(&oracle, &x, t, &format!("{toy} {name}"));
            }
        }
    }
}

#[test]
fn unequal_weights_in_three_dimensions() {
    let gm = GaussianMixture {
        means: vec![
            vec![1.0, 0.0, -1.0],
            vec![-2.0, 0.5, 0.0],
            vec![0.0, 0.0, 3.0],
        ],
        weights: vec![1.0, 2.0, 5.0],
        std: 0.7,
    };
    for name in SDES {
        let oracle = MixtureScore::new(gm.clone(), &SdeConfig::by_name(name).unwrap()).unwrap();
        for t in [1e-3, 0.05, 0.3, 0.9] {
            let x = probe_points(&oracle, t, 30);
            check_fd(&oracle, &x, t, &format!("3-D {name}"));
        }
    }
}

#[test]
fn far_points_at_tiny_t_stay_finite() {
    for name in SDES {
        let cfg = SdeConfig::by_name(name).unwrap();
        let oracle = MixtureScore::new(Toy::TwentyFiveGaussians.mixture().unwrap(), &cfg).unwrap();
        let x = Array2::from_shape_vec(
            (5, 2),
            vec![1e3, -1e3, 1e6, 1e6, -3e7, 2.0, 1.0, 1.0, 3.0e38, -3.0e38],
        )
        .unwrap();
        for t in [1e-9, 1e-6, oracle.sde().t_eps()] {
            let mut s = Array2::<f32>::zeros(x.raw_dim());
            oracle.score(x.view(), t, s.view_mut());
            // f32 overflow of an exact but huge score is ±inf, which is the only
            // non-finite value allowed, and only for the 3e38 row.
            for (i, row) in s.outer_iter().enumerate().take(4) {
                assert!(
                    row.iter().all(|v| v.is_finite()),
                    "{name} t={t} row {i}: {row}"
                );
            }
            assert!(s.row(4).iter().all(|v| !v.is_nan()), "{name} t={t}: NaN");
        }
    }
}

#[test]
fn bad_mixtures_are_rejected() {
    let vp = SdeConfig::by_name("vp").unwrap();
    let ok = GaussianMixture::uniform(vec![vec![0.0, 0.0]], 1.0);
    assert!(MixtureScore::new(ok.clone(), &vp).is_ok());
    let bad = [
        GaussianMixture::uniform(vec![], 1.0),
        GaussianMixture::uniform(vec![vec![0.0, 0.0], vec![1.0]], 1.0),
        GaussianMixture::uniform(vec![vec![f64::NAN, 0.0]], 1.0),
        GaussianMixture {
            weights: vec![-1.0],
            ..ok.clone()
        },
        GaussianMixture {
            weights: vec![0.0],
            ..ok.clone()
        },
        GaussianMixture {
            std: 0.0,
            ..ok.clone()
        },
        GaussianMixture {
            std: f64::INFINITY,
            ..ok
        },
    ];
    for gm in bad {
        let e = MixtureScore::new(gm.clone(), &vp).unwrap_err().to_string();
        assert!(e.contains("invalid mixture"), "{gm:?}: {e}");
    }
}

/// Reverse-SDE EM with 1000 steps and the exact score reproduces 25 Gaussians:
/// every mode covered, and SWD to fresh data within 1.5× the noise floor
/// (SWD between two data draws), both averaged over 4 reference draws.
#[test]
fn euler_maruyama_with_exact_score_reproduces_25_gaussians() {
    let toy = Toy::TwentyFiveGaussians;
    let gm = toy.mixture().unwrap();
    let oracle = MixtureScore::new(gm.clone(), &SdeConfig::by_name("vp").unwrap()).unwrap();
    let n = 4000;
    let out = sample(
        &EulerMaruyama::new(1000),
        oracle.sde(),
        &oracle,
        &SampleOptions::new(n, 11),
    )
    .unwrap();
    let m = mixture_metrics(&gm, out.samples.view());
    assert_eq!(m.modes_covered, 25, "{m:?}");
    // 98.9% of each component lies within 3 std: allow 4 SE of a binomial.
    let p = 1.0 - (-4.5f64).exp();
    assert!(
        m.high_quality > p - 4.0 * (p * (1.0 - p) / n as f64).sqrt(),
        "{m:?}"
    );
    let mut model = Vec::new();
    let mut floor = Vec::new();
    for k in 0..4u64 {
        let r = toy.sample(n, 100 + k);
        let f = toy.sample(n, 200 + k);
        model.push(swd(out.samples.view(), r.view(), 256, k));
        floor.push(swd(f.view(), r.view(), 256, k));
    }
    let (model, floor) = (MeanSe::from_samples(&model), MeanSe::from_samples(&floor));
    assert!(
        model.mean <= 1.5 * floor.mean,
        "SWD {model} vs floor {floor}"
    );
}
