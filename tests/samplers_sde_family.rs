//! Reverse-diffusion, predictor–corrector, annealed Langevin, DDIM and EDM
//! driven by the exact score of Gaussian data N(mu, s² I) must reproduce the
//! known distribution at their end point within 4 standard errors:
//! the marginal at t = ε (mean alpha(ε) mu, std sqrt(alpha(ε)² s² +
//! sigma(ε)²)) for samplers that stop at ε, the data N(mu, s² I) for those
//! that return x̂0 / sigma = 0 (DDIM, EDM, ALD with its denoising step).

use scoresde::samplers::Schedule;
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
    /// The data distribution as the exact probability-flow map carries the
    /// sampler's actual prior N(0, prior_std² I) there (deterministic
    /// samplers). For Gaussian data the flow is x0 = mu + (s/std_T)(x_T −
    /// alpha_T mu), std_T = sqrt(alpha_T² s² + sigma_T²), so the output has
    /// mean mu (1 − s alpha_T/std_T) and std s prior_std/std_T: on VE the
    /// prior's missing mean shifts the output by −1 % of mu (−0.02 = 2.5 SE
    /// in the second coordinate), on VP/sub-VP by −0.3 %. (The reverse SDE
    /// shrinks that offset by s² alpha_T/std_T² instead, which is negligible.)
    Flow,
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
        End::Data | End::Flow => (1.0, 0.0),
    };
    let mut st = Stats {
        mean: [0.0; 2],
        std: [0.0; 2],
        mean_true: [a * MU[0], a * MU[1]],
        std_true: (a * a * S * S + sigma * sigma).sqrt(),
    };
    if let End::Flow = end {
        let alpha_t = sde.alpha(sde.t_max());
        let std_t = (alpha_t * alpha_t * S * S + sde.sigma(sde.t_max()).powi(2)).sqrt();
        let shrink = 1.0 - S * alpha_t / std_t;
        st.mean_true = [shrink * MU[0], shrink * MU[1]];
        st.std_true = S * sde.prior_std() / std_t;
    }
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
    println!(
        "{} seed {seed}: mean {:.4?} (true {:.4?}), std {:.4?} (true {:.4}, SE {se_std:.4})",
        sampler.name(),
        st.mean,
        st.mean_true,
        st.std,
        st.std_true
    );
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
    check(vp(), &ReverseDiffusion::new(1000), End::Eps, 11);
    check(subvp(), &ReverseDiffusion::new(1000), End::Eps, 12);
    check(ve(), &ReverseDiffusion::new(1000), End::Eps, 13);
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
    let ddim = Ddim::new(500, 0.0);
    check(vp(), &ddim, End::Flow, 41);
    check(vp(), &ddim, End::Flow, 42);
    check(subvp(), &ddim, End::Flow, 43);
    check(ve(), &ddim, End::Flow, 44);
    let ancestral = Ddim::new(1000, 1.0);
    check(vp(), &ancestral, End::Data, 45);
}

#[test]
fn edm_reproduces_gaussian() {
    // 250 steps = 499 NFE; deterministic: two seeds.
    let edm = Edm::new(250);
    check(vp(), &edm, End::Flow, 51);
    check(vp(), &edm, End::Flow, 52);
    check(ve(), &edm, End::Flow, 53);
    check(subvp(), &edm, End::Flow, 55);
    let churn = Edm {
        churn: 40.0,
        ..Edm::new(250)
    };
    check(vp(), &churn, End::Data, 54);
}

/// With few steps the predictor alone is biased (std too large); one Langevin
/// corrector step per level moves each intermediate distribution towards
/// p_t, so PC's std error must not exceed the predictor's (same seed, so the
/// same prior draws). Measured (n = 4000, seed 7; true std 0.5001):
///   vp  5 steps: reverse-diffusion 0.634, pc 0.616;  10 steps: 0.579, 0.570
///   ve  5 steps: 1.432, 1.398;                        10 steps: 0.810, 0.793
#[test]
fn pc_no_worse_than_its_predictor() {
    for steps in [5, 10] {
        let rd = ReverseDiffusion::new(steps);
        let pc = PredictorCorrector::new(steps, Predictor::ReverseDiffusion);
        let (a, b) = (
            stats(vp(), &rd, End::Eps, N, 7).std_err(),
            stats(vp(), &pc, End::Eps, N, 7).std_err(),
        );
        println!("vp {steps} steps: |std error| predictor {a:.4}, pc {b:.4}");
        assert!(b <= a, "vp {steps} steps: pc {b} > predictor {a}");
        let (a, b) = (
            stats(ve(), &rd, End::Eps, N, 7).std_err(),
            stats(ve(), &pc, End::Eps, N, 7).std_err(),
        );
        println!("ve {steps} steps: |std error| predictor {a:.4}, pc {b:.4}");
        assert!(b <= a, "ve {steps} steps: pc {b} > predictor {a}");
    }
}

/// score_sde's step size with each sample's own norms, eps = 2 alpha_i
/// (snr ‖z‖/‖s(x)‖)², depends on x; in 2-D the corrector then drifts towards
/// p ‖s‖² (and ‖z‖² correlates with z), so its std grows with the number of
/// levels. Measured (seed 7, std of the two coordinates against 0.50):
/// vp 10 levels 0.70 / 0.72, 100 levels 1.78 / 1.26, 500 levels 1.60 / 1.41;
/// ve 500 levels 4.24 / 1.88. With the default rule: 0.51 / 0.51 at 100 levels. This pins why the default rule uses sigma(t) instead.
#[test]
fn per_sample_norm_corrector_is_biased_in_low_dimension() {
    let per_sample = PredictorCorrector {
        step_rule: CorrectorStep::PerSampleNorms,
        ..PredictorCorrector::new(100, Predictor::ReverseDiffusion)
    };
    let st = stats(vp(), &per_sample, End::Eps, N, 7);
    assert!(st.std_err() > 0.2, "std {:?} vs {}", st.std, st.std_true);
    assert!(st.std.iter().all(|v| v.is_finite()));
}

/// (sampler, its NFE) for every sampler family at `steps`.
fn all_samplers(steps: usize, ve_only: bool) -> Vec<(Box<dyn Sampler>, usize)> {
    let mut v: Vec<(Box<dyn Sampler>, usize)> = vec![
        (Box::new(ReverseDiffusion::new(steps)), steps),
        (
            Box::new(PredictorCorrector::new(steps, Predictor::ReverseDiffusion)),
            2 * steps,
        ),
        (
            Box::new(PredictorCorrector {
                corrector_steps: 2,
                step_rule: CorrectorStep::PerSampleNorms,
                ..PredictorCorrector::new(steps, Predictor::EulerMaruyama)
            }),
            3 * steps,
        ),
        (Box::new(Ddim::new(steps, 0.0)), steps),
        (Box::new(Ddim::new(steps, 1.0)), steps),
        (Box::new(Edm::new(steps)), 2 * steps - 1),
        (
            Box::new(Edm {
                churn: 10.0,
                ..Edm::new(steps)
            }),
            2 * steps - 1,
        ),
    ];
    if ve_only {
        v.push((Box::new(AnnealedLangevin::new(steps)), steps + 1));
        v.push((
            Box::new(AnnealedLangevin {
                inner: 3,
                denoise: false,
                ..AnnealedLangevin::new(steps)
            }),
            3 * steps,
        ));
    }
    v
}

fn finite_with_nfe<S: Sde + Clone + 'static>(sde: S, ve_only: bool) {
    let score = GaussianScore {
        sde: sde.clone(),
        mu: MU.to_vec(),
        s: S,
    };
    for steps in 1..=3 {
        for (s, nfe) in all_samplers(steps, ve_only) {
            let out = sample(s.as_ref(), &sde, &score, &SampleOptions::new(64, 0)).unwrap();
            assert!(out.samples.iter().all(|v| v.is_finite()), "{}", s.name());
            assert_eq!(out.nfe, nfe, "{}", s.name());
        }
    }
}

#[test]
fn few_steps_stay_finite_and_count_nfe() {
    finite_with_nfe(vp(), false);
    finite_with_nfe(subvp(), false);
    finite_with_nfe(ve(), true);
}

/// EDM's schedule must match Karras et al.'s formula and stay finite for
/// extreme rho (σ̃_max^{1/rho} = 152^{1000} is Inf at rho = 0.001).
#[test]
fn edm_schedule_matches_formula_and_extreme_rho_is_finite() {
    let edm = Edm::new(18);
    let sig = edm.sigmas(&vp());
    let (hi, lo) = (
        vp().sigma(1.0) / vp().alpha(1.0),
        vp().sigma(1e-3) / vp().alpha(1e-3),
    );
    assert_eq!(sig.len(), 19);
    assert_eq!(sig[18], 0.0);
    for (i, &s) in sig[..18].iter().enumerate() {
        let (a, b) = (hi.powf(1.0 / 7.0), lo.powf(1.0 / 7.0));
        let want = (a + i as f64 / 17.0 * (b - a)).powi(7);
        assert!((s - want).abs() < 1e-12 * want, "{i}: {s} vs {want}");
    }
    assert!((sig[0] - hi).abs() < 1e-12 * hi && (sig[17] - lo).abs() < 1e-12 * lo);
    let score = GaussianScore {
        sde: vp(),
        mu: MU.to_vec(),
        s: S,
    };
    for rho in [0.001, 0.05, 1.0, 1e6] {
        let e = Edm {
            schedule: Schedule::Karras { rho },
            ..Edm::new(12)
        };
        assert!(e.sigmas(&vp()).iter().all(|v| v.is_finite()), "rho {rho}");
        let out = sample(&e, &vp(), &score, &SampleOptions::new(64, 0)).unwrap();
        assert!(out.samples.iter().all(|v| v.is_finite()), "rho {rho}");
    }
}

/// `spec` builds, but running it on `sde` fails with a message containing `needle`.
fn run_err<S: Sde + Clone + 'static>(sde: S, spec: &str, needle: &str) {
    let score = GaussianScore {
        sde: sde.clone(),
        mu: MU.to_vec(),
        s: S,
    };
    let err = by_name(spec, 10)
        .and_then(|s| sample(s.as_ref(), &sde, &score, &SampleOptions::new(8, 0)).map(|_| ()))
        .expect_err(spec)
        .to_string();
    assert!(err.contains(needle), "{spec}: {err}");
}

#[test]
fn invalid_parameters_are_errors_naming_the_value() {
    run_err(vp(), "ddim:eta=2", "eta = 2");
    run_err(vp(), "ddim:eta=-0.1", "eta = -0.1");
    run_err(vp(), "pc:snr=0", "snr = 0");
    run_err(vp(), "pc-em:snr=-1", "snr = -1");
    run_err(vp(), "pc:snr=2", "snr = 2");
    run_err(vp(), "pc:per_sample=3", "per_sample = 3");
    run_err(vp(), "edm:churn=-1", "churn = -1");
    run_err(vp(), "edm:rho=0", "rho = 0");
    run_err(vp(), "edm:s_min=2,s_max=1", "2/1");
    run_err(vp(), "ald", "sde = vp");
    run_err(subvp(), "ald", "sde = subvp");
    run_err(ve(), "ald:lr=1", "lr = 1");
    run_err(ve(), "ald:inner=0", "inner = 0");
    run_err(ve(), "ald:denoise=2", "denoise = 2");
    run_err(vp(), "pc:foo=1", "foo=1");
    run_err(vp(), "edm:eta=0", "eta=0");
    run_err(vp(), "ddim:eta=nan", "eta = nan");
}

#[test]
fn specs_build_the_named_samplers() {
    let name = |spec: &str| by_name(spec, 10).unwrap().label();
    assert_eq!(name("reverse-diffusion"), "reverse_diffusion(10)");
    assert_eq!(name("pc"), "pc(10, snr=0.16, corrector_steps=1)");
    assert_eq!(
        name("pc-em:snr=0.1,corrector_steps=3"),
        "pc_em(10, snr=0.1, corrector_steps=3)"
    );
    assert_eq!(
        name("ald:inner=2,lr=1e-4,denoise=0"),
        "ald(10, inner=2, lr=0.0001, denoise=0)"
    );
    assert_eq!(name("ddim:eta=0.5"), "ddim(10, eta=0.5)");
    assert_eq!(name("edm"), "edm(10, rho=7)");
    assert_eq!(
        name("edm:churn=5,s_min=0.1,s_max=10,s_noise=1.003,rho=5"),
        "edm(10, rho=5, churn=5, s_min=0.1, s_max=10, s_noise=1.003)"
    );
}

/// Same seed, same bytes for a stochastic sampler: batch 1, 7 and 512, and
/// 1 vs 2 threads.
#[test]
fn pc_output_independent_of_batch_and_threads() {
    let score = GaussianScore {
        sde: vp(),
        mu: MU.to_vec(),
        s: S,
    };
    let pc = PredictorCorrector::new(20, Predictor::ReverseDiffusion);
    let run = |batch: usize, threads: usize| {
        let mut opts = SampleOptions::new(600, 3);
        opts.batch = batch;
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| sample(&pc, &vp(), &score, &opts).unwrap().samples)
    };
    let reference = run(512, 1);
    for (batch, threads) in [(1, 1), (7, 1), (512, 2), (7, 2), (1, 2)] {
        let other = run(batch, threads);
        let same = reference
            .iter()
            .zip(other.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "batch {batch}, {threads} threads differ");
    }
}

/// Every sampler records one frame per step (ALD: per level, plus its
/// denoising step), ending at the returned samples; EDM records x in the
/// SDE's scaling, so its frames at sigma > 0 follow the marginal std
/// sqrt(alpha² s² + sigma²) rather than the scaled variable's.
#[test]
fn trajectories_have_one_frame_per_step() {
    let cases: Vec<(Box<dyn Sampler>, usize)> = vec![
        (Box::new(ReverseDiffusion::new(6)), 6),
        (
            Box::new(PredictorCorrector::new(6, Predictor::EulerMaruyama)),
            6,
        ),
        (Box::new(Ddim::new(6, 0.5)), 6),
        (Box::new(Edm::new(6)), 6),
        (Box::new(AnnealedLangevin::new(6)), 7),
    ];
    let score = GaussianScore {
        sde: ve(),
        mu: MU.to_vec(),
        s: S,
    };
    for (s, frames) in cases {
        let mut opts = SampleOptions::new(20, 4);
        opts.batch = 7;
        opts.record_every = Some(1);
        opts.record_rows = 20;
        let out = sample(s.as_ref(), &ve(), &score, &opts).unwrap();
        let tr = out.trajectory.unwrap();
        assert_eq!(tr.frames.len(), frames + 1, "{}", s.name());
        assert_eq!(tr.frames[frames], out.samples, "{}", s.name());
        assert!(tr.times.windows(2).all(|w| w[1] <= w[0]), "{}", s.name());
    }
    // EDM on VP: the frame after the first step is at sigma ≈ σ̃_1, in x scaling.
    let score = GaussianScore {
        sde: vp(),
        mu: MU.to_vec(),
        s: S,
    };
    let mut opts = SampleOptions::new(2000, 5);
    opts.record_every = Some(1);
    opts.record_rows = 2000;
    let out = sample(&Edm::new(4), &vp(), &score, &opts).unwrap();
    let tr = out.trajectory.unwrap();
    let t1 = tr.times[1];
    let a = vp().alpha(t1);
    let std_true = (a * a * S * S + vp().sigma(t1).powi(2)).sqrt();
    let col = tr.frames[1].column(0);
    let mean = col.iter().map(|&v| v as f64).sum::<f64>() / 2000.0;
    let std = (col.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 1999.0).sqrt();
    assert!(
        (std - std_true).abs() < 0.1 * std_true,
        "t = {t1}: std {std} vs {std_true}"
    );
}
