//! Every sampler, driven by the exact score of the 25-Gaussians mixture at
//! its default budget, reproduces the mixture: all 25 modes covered and the
//! sliced Wasserstein distance to fresh data within 1.5× the noise floor.
//!
//! The floor is the mean SWD between independent pairs of data draws of the
//! same size; the sampler's SWD is its mean against as many independent
//! reference draws. With n = 3000 points both means have a standard error of
//! about 5% (measured), so 1.5× leaves a margin of several standard errors
//! for a correct sampler, while a biased one (e.g. too few steps, a wrong
//! coefficient) lands at several times the floor.

use scoresde::data::Toy;
use scoresde::metrics::{mixture_metrics, swd};
use scoresde::oracle::MixtureScore;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::sde::SdeConfig;

const N: usize = 3000;
const DRAWS: u64 = 4;

fn check(spec: &str, steps: usize, sde_name: &str) {
    let data = Toy::TwentyFiveGaussians;
    let gm = data.mixture().unwrap();
    let oracle = MixtureScore::new(gm.clone(), &SdeConfig::by_name(sde_name).unwrap()).unwrap();
    let sampler = by_name(spec, steps).unwrap();
    let out = sample(
        sampler.as_ref(),
        oracle.sde(),
        &oracle,
        &SampleOptions::new(N, 11),
    )
    .unwrap();
    let x = out.samples;
    let m = mixture_metrics(&gm, x.view());
    assert_eq!(
        m.modes_covered,
        25,
        "{}: covers {} modes",
        sampler.name(),
        m.modes_covered
    );
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let swd_x = mean(
        (0..DRAWS)
            .map(|k| swd(x.view(), data.sample(N, 1000 + k).view(), 256, k))
            .collect(),
    );
    let floor = mean(
        (0..DRAWS)
            .map(|k| {
                let (a, b) = (data.sample(N, 2000 + 2 * k), data.sample(N, 2001 + 2 * k));
                swd(a.view(), b.view(), 256, k)
            })
            .collect(),
    );
    assert!(
        swd_x <= 1.5 * floor,
        "{} (NFE {}): SWD {swd_x:.4} > 1.5 x floor {floor:.4}",
        sampler.name(),
        out.nfe
    );
}

#[test]
fn sde_samplers_reproduce_25_gaussians() {
    for (spec, steps) in [
        ("ddpm", 1000),
        ("ddpm-cosine", 1000),
        ("em", 1000),
        ("reverse-diffusion", 1000),
        // score_sde's snr = 0.16 needs its 1000 levels: at 500 levels the
        // corrector over-diffuses (SWD 1.6x floor; snr <= 0.1 passes at 500).
        ("pc", 1000),
        ("pc-em", 1000),
        ("ddim:eta=1", 500),
    ] {
        check(spec, steps, "vp");
    }
}

#[test]
fn ode_samplers_reproduce_25_gaussians() {
    for (spec, steps) in [
        ("ddim", 100),
        ("edm", 50),
        ("ode-euler", 500),
        ("ode-heun", 100),
        ("ode-rk4", 50),
        ("ode-rk45", 1),
        ("dpm-solver++", 50),
    ] {
        check(spec, steps, "vp");
    }
}

#[test]
fn ve_samplers_reproduce_25_gaussians() {
    for (spec, steps) in [("ald", 1000), ("em", 1000), ("pc", 1000), ("edm", 50)] {
        check(spec, steps, "ve");
    }
}
