//! The k-diffusion-style samplers (Euler ancestral, DPM2, DPM2 ancestral,
//! LMS, iPNDM, DEIS tAB) on Gaussian data N(mu, s² I), where everything is
//! known exactly.
//!
//! Deterministic samplers: for Gaussian data the probability-flow ODE is
//! linear and every coordinate keeps its standardised value,
//!
//! ```text
//!   x(ε) = alpha(ε) mu + sqrt(v(ε)/v(T)) (x(T) − alpha(T) mu),   v(t) = alpha² s² + sigma²,
//! ```
//!
//! so the endpoint of each prior draw is known and the convergence order is
//! the log–log slope of the RMS endpoint error against the step count.
//! Ancestral samplers: their output must have the mean and variance of the
//! marginal p_ε = N(alpha(ε) mu, (alpha(ε)² s² + sigma(ε)²) I) (they re-noise
//! down to σ̃(ε) on the last step like every other step; p_ε differs from the
//! data N(mu, s² I) by 1e-4 in variance on VP, below the standard errors).

use ndarray::Array2;
use scoresde::rng;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::GaussianScore;
use scoresde::sde::{Sde, VeSde, VpSde};

const MU: [f64; 2] = [1.0, -2.0];
const S: f64 = 0.5;

/// The driver's prior draws: row i is N(0, I) from stream (seed, SAMPLER, i),
/// times prior_std (rounded in f32 as the driver does).
fn prior_draws(n: usize, seed: u64, prior_std: f64) -> Array2<f64> {
    let mut x = Array2::<f64>::zeros((n, 2));
    for i in 0..n {
        let mut r = rng::stream(seed, rng::domain::SAMPLER, i as u64);
        let mut z = [0.0f32; 2];
        rng::fill_normal(&mut r, &mut z);
        for j in 0..2 {
            x[[i, j]] = f64::from(z[j] * prior_std as f32);
        }
    }
    x
}

/// Exact PF-ODE endpoints of the prior draws for data N(MU, s² I).
fn exact_endpoints(sde: &dyn Sde, s: f64, n: usize, seed: u64) -> Array2<f64> {
    let v = |t: f64| sde.alpha(t).powi(2) * s * s + sde.sigma(t).powi(2);
    let (t0, t1) = (sde.t_max(), sde.t_eps());
    let ratio = (v(t1) / v(t0)).sqrt();
    let mut x = prior_draws(n, seed, sde.prior_std());
    for mut row in x.outer_iter_mut() {
        for j in 0..2 {
            row[j] = sde.alpha(t1) * MU[j] + ratio * (row[j] - sde.alpha(t0) * MU[j]);
        }
    }
    x
}

fn run<S: Sde + Clone + 'static>(sde: &S, s: f64, spec: &str, n: usize, seed: u64) -> Array2<f32> {
    let score = GaussianScore {
        sde: sde.clone(),
        mu: MU.to_vec(),
        s,
    };
    let sampler = by_name(spec, 1).unwrap();
    sample(sampler.as_ref(), sde, &score, &SampleOptions::new(n, seed))
        .unwrap()
        .samples
}

/// RMS over 64 prior draws of the endpoint error of `spec` at each step count.
fn errors<S: Sde + Clone + 'static>(sde: &S, s: f64, spec: &str, steps: &[usize]) -> Vec<f64> {
    let (n, seed) = (64, 11);
    let exact = exact_endpoints(sde, s, n, seed);
    steps
        .iter()
        .map(|&k| {
            let x = run(sde, s, &format!("{spec}steps={k}"), n, seed);
            let sq: f64 = x
                .iter()
                .zip(exact.iter())
                .map(|(&a, &b)| (f64::from(a) - b).powi(2))
                .sum();
            (sq / n as f64).sqrt()
        })
        .collect()
}

/// Least-squares slope of −ln(err) against ln(steps).
fn slope(steps: &[usize], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = steps.iter().map(|&n| (n as f64).ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| -e.ln()).collect();
    let k = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / k, ys.iter().sum::<f64>() / k);
    let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    cov / var
}

/// Tolerance on every fitted order. The fits use step ranges in the
/// asymptotic regime (errors printed with --nocapture; below them the local
/// slopes are still climbing, e.g. LMS 2.8, 3.4 over 16→32→64) and above the
/// f32 floor (the score sees f32 states: errors below ~1e-7 here stop
/// falling). There the local slope is p + O(h) from the next term of the
/// error expansion plus the lower-order warm-up steps of the multistep
/// methods (their O(h²) local errors happen at high noise, where the flow
/// contracts them by ~s/σ̃); the measured slopes are within 0.25 of p, and
/// 0.35 still tells every order from its neighbours.
const TOL: f64 = 0.35;

fn check_order<S: Sde + Clone + 'static>(
    sde: &S,
    s: f64,
    spec: &str,
    steps: &[usize],
    want: f64,
) -> Vec<f64> {
    let errs = errors(sde, s, spec, steps);
    let p = slope(steps, &errs);
    let shown: Vec<String> = errs.iter().map(|e| format!("{e:.3e}")).collect();
    println!("{spec:<32} steps {steps:?} errors {shown:?} order {p:.3} (want {want})");
    assert!(
        (p - want).abs() <= TOL,
        "{spec}: order {p:.3}, want {want} ± {TOL}"
    );
    errs
}

fn ve(sigma_max: f64) -> VeSde {
    VeSde {
        sigma_min: 0.01,
        sigma_max,
        eps: 1e-5,
    }
}

/// DPM2 on VP, Karras ρ = 7: measured 2.05 (local slopes 2.08, 2.04, 2.02).
#[test]
fn dpm2_is_second_order() {
    check_order(&VpSde::default(), S, "dpm2:", &[16, 32, 64, 128], 2.0);
}

/// DEIS tAB of orders 1, 2, 3 on VP, Karras ρ = 7: measured 0.96, 1.92, 2.92.
/// Order 1 is Euler in σ̃ (= DDIM); orders 2 and 3 approach their slope from
/// below (order 3: 2.42, 2.74 over 16→32→64), hence the later ranges.
#[test]
fn deis_tab_has_orders_one_two_three() {
    let vp = VpSde::default();
    check_order(&vp, S, "deis:order=1,", &[16, 32, 64, 128], 1.0);
    check_order(&vp, S, "deis:order=2,", &[32, 64, 128, 256], 2.0);
    check_order(&vp, S, "deis:", &[64, 128, 256], 3.0);
    // On VE, t is linear in ln σ̃ (diffusers' log-rho DEIS): order 2 is
    // asymptotic early, 2.01.
    check_order(&ve(50.0), S, "deis:order=2,", &[16, 32, 64, 128], 2.0);
}

/// LMS of order 4 on VP, Karras ρ = 7: measured 3.78 over 64..256 (local
/// slopes 3.70, 3.86, still rising towards 4); order 2 for comparison.
#[test]
fn lms_is_fourth_order() {
    let vp = VpSde::default();
    check_order(&vp, S, "lms:", &[64, 128, 256], 4.0);
    check_order(&vp, S, "lms:order=2,", &[32, 64, 128, 256], 2.0);
}

/// iPNDM uses the equal-step Adams–Bashforth coefficients on every grid. On
/// a graded grid (Karras ρ = 7, the default) the step ratios 1 + O(h) leave a
/// local error O(h³): second order, measured 2.07 over 32..256 (local 2.14,
/// 2.05, 2.01). On equal σ̃ steps (`karras:rho=1`) it is AB4, i.e. LMS of
/// order 4 on that grid (same outputs), and fourth order: measured 3.98 over
/// 128..512 on VE with sigma_max = 10, s = 1 (AB4's stability interval,
/// |h λ| < 0.3 with λ ≤ 1/(2s), needs small equal steps, so the default
/// VP range with σ̃_max = 152 would need thousands of steps).
#[test]
fn ipndm_orders_on_graded_and_equal_steps() {
    check_order(&VpSde::default(), S, "ipndm:", &[32, 64, 128, 256], 2.0);
    let sde = ve(10.0);
    let steps = [128, 256, 512];
    let e_ipndm = check_order(&sde, 1.0, "ipndm:schedule=karras:rho=1,", &steps, 4.0);
    let e_lms = errors(&sde, 1.0, "lms:schedule=karras:rho=1,", &steps);
    for (a, b) in e_ipndm.iter().zip(&e_lms) {
        assert!((a - b).abs() <= 1e-3 * b + 1e-8, "ipndm {a} vs lms {b}");
    }
}

/// Per-coordinate mean and variance of `n` samples, and their exact values
/// under p_ε.
fn moments(sde: &VpSde, spec: &str, n: usize, seed: u64) -> ([f64; 2], [f64; 2], [f64; 2], f64) {
    let x = run(sde, S, spec, n, seed);
    let (a, sg) = (sde.alpha(sde.t_eps()), sde.sigma(sde.t_eps()));
    let var_true = a * a * S * S + sg * sg;
    let (mut mean, mut var) = ([0.0; 2], [0.0; 2]);
    for j in 0..2 {
        let col: Vec<f64> = x.column(j).iter().map(|&v| f64::from(v)).collect();
        mean[j] = col.iter().sum::<f64>() / n as f64;
        var[j] = col.iter().map(|v| (v - mean[j]).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    }
    (mean, var, [a * MU[0], a * MU[1]], var_true)
}

/// An ancestral sampler against p_ε over increasing step counts (the last
/// is "large"): the variance error falls between consecutive counts by more
/// than 4 standard errors of the difference (sqrt(2) SE_var, a bound for two
/// runs from the same seed), and at the largest count the mean and variance
/// are within 4 SE (SE_mean = sqrt(v/n), SE_var = v sqrt(2/n)). The mean has
/// no discretisation bias to shrink on Gaussian data (each step is affine in
/// x̃ and the exact mean path is x̃ ≡ mu up to the prior's offset, which the
/// flow contracts by s/σ̃_T < 0.4 %), so it is held within 4 SE at every count.
fn check_ancestral(spec: &str, steps: &[usize]) {
    let (sde, n, seed) = (VpSde::default(), 20_000, 5);
    let mut prev: Option<f64> = None;
    for (k, &steps_k) in steps.iter().enumerate() {
        let (mean, var, mean_true, var_true) =
            moments(&sde, &format!("{spec}steps={steps_k}"), n, seed);
        let (se_mean, se_var) = (
            (var_true / n as f64).sqrt(),
            var_true * (2.0 / n as f64).sqrt(),
        );
        let var_err = (0..2)
            .map(|j| (var[j] - var_true).abs())
            .fold(0.0, f64::max);
        println!(
            "{spec}steps={steps_k}: mean {mean:.4?} (true {mean_true:.4?}, SE {se_mean:.4}), \
             var {var:.4?} (true {var_true:.4}, SE {se_var:.4}), |var err| {var_err:.4}"
        );
        for j in 0..2 {
            assert!(
                (mean[j] - mean_true[j]).abs() < 4.0 * se_mean,
                "{spec} {steps_k}: mean[{j}] {} vs {}",
                mean[j],
                mean_true[j]
            );
        }
        if let Some(p) = prev {
            assert!(
                p - var_err > 4.0 * std::f64::consts::SQRT_2 * se_var,
                "{spec} {steps_k}: variance error {var_err} not below {p} by 4 SE"
            );
        }
        if k + 1 == steps.len() {
            for (j, v) in var.iter().enumerate() {
                assert!(
                    (v - var_true).abs() < 4.0 * se_var,
                    "{spec} {steps_k}: var[{j}] {v}"
                );
            }
        }
        prev = Some(var_err);
    }
}

/// Euler ancestral (weak order 1): |var err| 0.157, 0.030, then within SE.
#[test]
fn euler_ancestral_matches_the_gaussian_marginal() {
    check_ancestral("euler-ancestral:", &[10, 100, 2000]);
}

/// DPM2 ancestral: |var err| 0.31 at 10 steps (its midpoint is taken towards
/// σ̃_down = σ̃_{i+1}²/σ̃_i, a long step), within SE at 100.
#[test]
fn dpm2_ancestral_matches_the_gaussian_marginal() {
    check_ancestral("dpm2-ancestral:", &[10, 100]);
}

/// eta = 0 removes the noise: Euler ancestral is then the Euler method in
/// σ̃, i.e. DEIS of order 1 (DDIM), and DPM2 ancestral is DPM2 — the same
/// bytes through different code.
#[test]
fn ancestral_at_eta_zero_is_the_deterministic_method() {
    let vp = VpSde::default();
    for (a, b) in [
        ("euler-ancestral:eta=0,steps=9", "deis:order=1,steps=9"),
        ("dpm2-ancestral:eta=0,steps=9", "dpm2:steps=9"),
    ] {
        let (xa, xb) = (run(&vp, S, a, 50, 3), run(&vp, S, b, 50, 3));
        assert_eq!(xa, xb, "{a} vs {b}");
    }
}

/// Same seed, same bytes for batch sizes 1, 7 and 512 (per-sample streams
/// and per-sample Brownian motions).
#[test]
fn euler_ancestral_is_batch_size_invariant() {
    let sde = VpSde::default();
    let score = GaussianScore {
        sde,
        mu: MU.to_vec(),
        s: S,
    };
    for spec in [
        "euler-ancestral:steps=12",
        "euler-ancestral:steps=12,noise=brownian",
    ] {
        let sampler = by_name(spec, 1).unwrap();
        let outs: Vec<Vec<u32>> = [1usize, 7, 512]
            .iter()
            .map(|&batch| {
                let mut opts = SampleOptions::new(600, 9);
                opts.batch = batch;
                let out = sample(sampler.as_ref(), &sde, &score, &opts).unwrap();
                out.samples.iter().map(|v| v.to_bits()).collect()
            })
            .collect();
        assert_eq!(outs[0], outs[1], "{spec}: batch 1 vs 7");
        assert_eq!(outs[0], outs[2], "{spec}: batch 1 vs 512");
    }
}
