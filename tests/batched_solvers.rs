//! The batched adaptive solvers: a score call with a time per row gives
//! each row the bytes of a call of that row alone, so the batched RK45
//! equals integrating every sample on its own, for any batch size and
//! thread count; and driven by an exact Gaussian score it reproduces the
//! known marginal.

use ndarray::Array2;
use scoresde::convert::Output;
use scoresde::dopri5::{dopri5, dopri5_rows, Dopri5Options};
use scoresde::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use scoresde::nn::{Mlp, MlpConfig, ScoreNet};
use scoresde::oracle::CheckerboardScore;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::{GaussianScore, Score};
use scoresde::sde::{Sde, SdeConfig, VpSde};

fn model() -> ScoreModel {
    model_with(None)
}

/// The MLP with a network output convention (`None`: ε, the SPEC recipe).
fn model_with(output: Option<Output>) -> ScoreModel {
    let sde = SdeConfig::by_name("vp").unwrap();
    let net = MlpConfig::new(2);
    let config = ModelConfig {
        format_version: FORMAT_VERSION,
        sde,
        parameterization: Parameterization::for_sde(&sde),
        net: net.clone().into(),
        data: "checkerboard".into(),
        step: 0,
        output,
    };
    ScoreModel::new(config, ScoreNet::Mlp(Mlp::new(net, 7).unwrap())).unwrap()
}

/// 37 points and times in (0, 1], some times repeated.
fn inputs() -> (Array2<f32>, Vec<f64>) {
    let x = Array2::from_shape_fn((37, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.4 - 2.0);
    let t = (0..37)
        .map(|i| 0.001 + ((i * 5) % 13) as f64 / 13.0)
        .collect();
    (x, t)
}

/// Row i of `score_rows` against `score` of row i alone at t[i].
fn check_rows(score: &dyn Score) {
    let (x, t) = inputs();
    let mut batched = Array2::<f32>::zeros(x.dim());
    score.score_rows(x.view(), &t, batched.view_mut());
    for (i, &ti) in t.iter().enumerate() {
        let mut one = Array2::<f32>::zeros((1, 2));
        score.score(x.slice(ndarray::s![i..i + 1, ..]), ti, one.view_mut());
        for j in 0..2 {
            assert_eq!(
                batched[[i, j]].to_bits(),
                one[[0, j]].to_bits(),
                "{}: row {i} col {j}",
                score.describe()
            );
        }
    }
}

#[test]
fn score_rows_equals_one_row_calls() {
    check_rows(&model()); // the MLP override
                          // the per-row input scale and output conversion of EDM and x0 outputs
    check_rows(&model_with(Some(Output::Edm { sigma_data: 0.5 })));
    check_rows(&model_with(Some(Output::X0)));
    let sde = VpSde::default();
    check_rows(&GaussianScore {
        sde,
        mu: vec![0.5, -1.0],
        s: 0.7,
    });
    check_rows(&CheckerboardScore::new(&SdeConfig::by_name("vp").unwrap()).unwrap());
    // the default: groups of equal t
}

fn rk45(score: &dyn Score, sde: &dyn Sde, n: usize, batch: usize, threads: usize) -> Array2<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut opts = SampleOptions::new(n, 42);
    opts.batch = batch;
    let sampler = by_name("ode-rk45:rtol=1e-3,atol=1e-3", 1).unwrap();
    pool.install(|| sample(sampler.as_ref(), sde, score, &opts).unwrap().samples)
}

#[test]
fn batched_rk45_is_batch_and_thread_independent() {
    let m = model();
    let reference = rk45(&m, m.sde(), 60, 1, 1); // one sample at a time
    for (batch, threads) in [(60, 1), (60, 2), (7, 2), (32, 1)] {
        let got = rk45(&m, m.sde(), 60, batch, threads);
        assert!(
            got.iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "batch {batch}, {threads} threads differ from one sample at a time"
        );
    }
}

/// dopri5_rows on rows that finish at different attempt counts equals the
/// one-system dopri5 per row (y' = −λ_i t y with a per-row rate).
#[test]
fn dopri5_rows_equals_single_solves() {
    let opts = Dopri5Options::DEFAULT;
    let rates: Vec<f64> = (0..9).map(|i| 0.5 + 3.0 * i as f64).collect();
    // State [y, −λ]: the second component is constant and carries the rate.
    let mut ys: Vec<f64> = rates
        .iter()
        .enumerate()
        .flat_map(|(i, &r)| [1.0 + i as f64, -r])
        .collect();
    let mut singles = ys.clone();
    let field = |t: &[f64], y: &[f64], dy: &mut [f64]| {
        for ((yr, dr), &ti) in y.chunks_exact(2).zip(dy.chunks_exact_mut(2)).zip(t) {
            dr[0] = yr[1] * ti * yr[0];
            dr[1] = 0.0;
        }
    };
    let stats = dopri5_rows(field, 0.0, 2.0, &mut ys, 2, &opts);
    for i in 0..9 {
        let f1 = |t: f64, y: &[f64], dy: &mut [f64]| {
            dy[0] = y[1] * t * y[0];
            dy[1] = 0.0;
        };
        let st = dopri5(f1, 0.0, 2.0, &mut singles[2 * i..2 * i + 2], &opts);
        assert_eq!(st, stats[i], "row {i}");
        assert_eq!(ys[2 * i].to_bits(), singles[2 * i].to_bits(), "row {i}");
        let exact = (1.0 + i as f64) * (-rates[i] * 2.0).exp();
        assert!(
            (ys[2 * i] - exact).abs() < 1e-3 * (1.0 + i as f64),
            "row {i}"
        );
    }
    assert!(
        stats.iter().map(|s| s.nfe).max() > stats.iter().map(|s| s.nfe).min(),
        "rows should need different step counts, or the active set never shrinks"
    );
}

/// The batched RK45 with the exact score of N(mu, s² I) data ends at
/// N(alpha mu, (alpha² s² + sigma²) I) at t = ε; the sample mean and
/// variance per coordinate are within 4 standard errors.
#[test]
fn batched_rk45_gaussian_marginal() {
    let sde = VpSde::default();
    let (mu, s) = (vec![1.5, -0.5], 0.6);
    let score = GaussianScore {
        sde,
        mu: mu.clone(),
        s,
    };
    let n = 4000;
    let x = rk45(&score, &sde, n, 500, 2);
    let t = sde.t_eps();
    let (a, sig) = (sde.alpha(t), sde.sigma(t));
    let var = a * a * s * s + sig * sig;
    for (j, &mu_j) in mu.iter().enumerate() {
        let col: Vec<f64> = x.column(j).iter().map(|&v| v as f64).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let v = col.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let se_mean = (var / n as f64).sqrt();
        let se_var = var * (2.0 / (n - 1) as f64).sqrt();
        assert!(
            (mean - a * mu_j).abs() < 4.0 * se_mean,
            "mean {mean} vs {}",
            a * mu_j
        );
        assert!((v - var).abs() < 4.0 * se_var, "variance {v} vs {var}");
    }
}
