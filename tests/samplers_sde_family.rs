//! Reverse-diffusion, predictor–corrector, annealed Langevin, DDIM and EDM
//! driven by the exact score of Gaussian data N(mu, s² I) must reproduce the
//! known distribution at their end point within 4 standard errors:
//! the marginal at t = ε (mean alpha(ε) mu, std sqrt(alpha(ε)² s² +
//! sigma(ε)²)) for samplers that stop at ε, the data N(mu, s² I) for those
//! that return x̂0 / sigma = 0 (DDIM, EDM, ALD with its denoising step).

use scoresde::samplers::{
    by_name, sample, AnnealedLangevin, CorrectorStep, Ddim, Edm, Predictor, PredictorCorrector,
    ReverseDiffusion, SampleOptions, Sampler,
};
use scoresde::score::GaussianScore;
use scoresde::sde::{LinearBeta, Sde, SubVpSde, VeSde, VpSde};

const MU: [f64; 2] = [1.0, -2.0];
const S: f64 = 0.5;
const N: usize = 4000;

fn vp() -> VpSde {
    VpSde::default()
}

fn subvp() -> SubVpSde {
    SubVpSde {
        beta: LinearBeta {
            beta_min: 0.1,
            beta_max: 20.0,
        },
        eps: 1e-3,
    }
}

fn ve() -> VeSde {
    VeSde {
        sigma_min: 0.01,
        sigma_max: 50.0,
        eps: 1e-5,
    }
}

/// Where a sampler's output lives.
#[derive(Clone, Copy)]
enum End {
    /// The marginal p_ε.
    Eps,
    /// The data distribution (sigma = 0).
    Data,
}

/// Per-coordinate (mean, std) of `n` samples and the exact (mean, std).
struct Stats {
    mean: [f64; 2],
    std: [f64; 2],
    mean_true: [f64; 2],
    std_true: f64,
}

impl Stats {
    /// Largest |std − std_true| over the coordinates.
    fn std_err(&self) -> f64 {
        (0..2)
            .map(|j| (self.std[j] - self.std_true).abs())
            .fold(0.0, f64::max)
    }
}

fn stats<S: Sde + Clone + 'static>(
    sde: S,
    sampler: &dyn Sampler,
    end: End,
    n: usize,
    seed: u64,
) -> Stats {
    let score = GaussianScore {
        sde: sde.clone(),
        mu: MU.to_vec(),
        s: S,
    };
    let out = sample(sampler, &sde, &score, &SampleOptions::new(n, seed)).unwrap();
    assert_eq!(out.samples.dim(), (n, 2));
    let (a, sigma) = match end {
        End::Eps => (sde.alpha(sde.t_eps()), sde.sigma(sde.t_eps())),
        End::Data => (1.0, 0.0),
    };
    let mut st = Stats {
        mean: [0.0; 2],
        std: [0.0; 2],
        mean_true: [a * MU[0], a * MU[1]],
        std_true: (a * a * S * S + sigma * sigma).sqrt(),
    };
    for j in 0..2 {
        let col: Vec<f64> = out.samples.column(j).iter().map(|&v| v as f64).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        st.mean[j] = mean;
        st.std[j] = var.sqrt();
    }
    st
}

/// Mean and std within 4 standard errors: SE(mean) = std/sqrt(n),
/// SE(std) ≈ std/sqrt(2n) for Gaussian samples.
fn check<S: Sde + Clone + 'static>(sde: S, sampler: &dyn Sampler, end: End, seed: u64) {
    let st = stats(sde, sampler, end, N, seed);
    let se_mean = st.std_true / (N as f64).sqrt();
    let se_std = st.std_true / (2.0 * N as f64).sqrt();
    for j in 0..2 {
        assert!(
            (st.mean[j] - st.mean_true[j]).abs() < 4.0 * se_mean,
            "{}: mean[{j}] = {}, expected {} ± {se_mean}",
            sampler.name(),
            st.mean[j],
            st.mean_true[j]
        );
        assert!(
            (st.std[j] - st.std_true).abs() < 4.0 * se_std,
            "{}: std[{j}] = {}, expected {} ± {se_std}",
            sampler.name(),
            st.std[j],
            st.std_true
        );
    }
}

#[test]
fn reverse_diffusion_reproduces_gaussian() {
    check(vp(), &ReverseDiffusion { steps: 1000 }, End::Eps, 11);
    check(subvp(), &ReverseDiffusion { steps: 1000 }, End::Eps, 12);
    check(ve(), &ReverseDiffusion { steps: 1000 }, End::Eps, 13);
}

#[test]
fn pc_reproduces_gaussian() {
    // 500 levels × (1 corrector + 1 predictor) = 1000 NFE.
    let pc = PredictorCorrector::new(500, Predictor::ReverseDiffusion);
    check(vp(), &pc, End::Eps, 21);
    check(ve(), &pc, End::Eps, 22);
    let pc_em = PredictorCorrector::new(500, Predictor::EulerMaruyama);
    check(subvp(), &pc_em, End::Eps, 23);
}

#[test]
fn ald_reproduces_gaussian_on_ve() {
    check(ve(), &AnnealedLangevin::new(1000), End::Data, 31);
}

#[test]
fn ddim_reproduces_gaussian() {
    // eta = 0 is deterministic given the prior draw: two seeds.
    let ddim = Ddim {
        steps: 500,
        eta: 0.0,
    };
    check(vp(), &ddim, End::Data, 41);
    check(vp(), &ddim, End::Data, 42);
    check(subvp(), &ddim, End::Data, 43);
    check(ve(), &ddim, End::Data, 44);
    let ancestral = Ddim {
        steps: 1000,
        eta: 1.0,
    };
    check(vp(), &ancestral, End::Data, 45);
}

#[test]
fn edm_reproduces_gaussian() {
    // 250 steps = 499 NFE; deterministic: two seeds.
    let edm = Edm::new(250);
    check(vp(), &edm, End::Data, 51);
    check(vp(), &edm, End::Data, 52);
    check(ve(), &edm, End::Data, 53);
    let churn = Edm {
        churn: 40.0,
        ..Edm::new(250)
    };
    check(vp(), &churn, End::Data, 54);
}
