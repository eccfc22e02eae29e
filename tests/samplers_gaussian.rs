//! Samplers driven by the exact score of Gaussian data N(mu, s² I) must
//! reproduce the known marginal at t = ε: mean alpha(ε) mu and standard
//! deviation sqrt(alpha(ε)² s² + sigma(ε)²), within 4 standard errors.

use scoresde::samplers::{sample, Ddpm, DdpmSchedule, EulerMaruyama, SampleOptions, Sampler};
use scoresde::score::GaussianScore;
use scoresde::sde::{LinearBeta, Sde, SubVpSde, VeSde, VpSde};

const MU: [f64; 2] = [1.0, -2.0];
const S: f64 = 0.5;
const N: usize = 4000;

fn vp() -> VpSde {
    VpSde::default()
}

/// Check per-coordinate mean and std against the exact marginal at t = ε.
/// SE(mean) = std/sqrt(n), SE(std) ≈ std/sqrt(2n) for Gaussian samples.
fn check<S: Sde + Clone + 'static>(sde: S, sampler: &dyn Sampler, seed: u64) {
    let score = GaussianScore {
        sde: sde.clone(),
        mu: MU.to_vec(),
        s: S,
    };
    let out = sample(sampler, &sde, &score, &SampleOptions::new(N, seed)).unwrap();
    assert_eq!(out.samples.dim(), (N, 2));
    let t = sde.t_eps();
    let a = sde.alpha(t);
    let std_true = (a * a * S * S + sde.sigma(t).powi(2)).sqrt();
    for (j, mu) in MU.iter().enumerate() {
        let col: Vec<f64> = out.samples.column(j).iter().map(|&v| v as f64).collect();
        let mean = col.iter().sum::<f64>() / N as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (N as f64 - 1.0);
        let (se_mean, se_std) = (
            std_true / (N as f64).sqrt(),
            std_true / (2.0 * N as f64).sqrt(),
        );
        assert!(
            (mean - a * mu).abs() < 4.0 * se_mean,
            "{}: mean[{j}] = {mean}, expected {} ± {se_mean}",
            sampler.name(),
            a * mu
        );
        assert!(
            (var.sqrt() - std_true).abs() < 4.0 * se_std,
            "{}: std[{j}] = {}, expected {std_true} ± {se_std}",
            sampler.name(),
            var.sqrt()
        );
    }
}

#[test]
fn ddpm_linear_reproduces_gaussian() {
    check(vp(), &Ddpm::linear(1000), 1);
}

#[test]
fn ddpm_cosine_reproduces_gaussian() {
    let d = Ddpm {
        steps: 1000,
        schedule: DdpmSchedule::Cosine,
        ..Ddpm::linear(1000)
    };
    check(vp(), &d, 2);
}

#[test]
fn euler_maruyama_vp_reproduces_gaussian() {
    check(vp(), &EulerMaruyama::new(1000), 3);
}

#[test]
fn euler_maruyama_subvp_reproduces_gaussian() {
    let sde = SubVpSde {
        beta: LinearBeta {
            beta_min: 0.1,
            beta_max: 20.0,
        },
        eps: 1e-3,
    };
    check(sde, &EulerMaruyama::new(1000), 4);
}

#[test]
fn euler_maruyama_ve_reproduces_gaussian() {
    let sde = VeSde {
        sigma_min: 0.01,
        sigma_max: 50.0,
        eps: 1e-5,
    };
    check(sde, &EulerMaruyama::new(1000), 5);
}

/// With too few steps the samplers are biased but must stay finite.
#[test]
fn few_steps_stay_finite() {
    let score = GaussianScore {
        sde: vp(),
        mu: MU.to_vec(),
        s: S,
    };
    for steps in 1..=3 {
        let samplers: Vec<Box<dyn Sampler>> = vec![
            Box::new(Ddpm::linear(steps)),
            Box::new(Ddpm {
                schedule: DdpmSchedule::Cosine,
                ..Ddpm::linear(steps)
            }),
            Box::new(EulerMaruyama::new(steps)),
        ];
        for s in samplers {
            let out = sample(s.as_ref(), &vp(), &score, &SampleOptions::new(64, 0)).unwrap();
            assert!(out.samples.iter().all(|v| v.is_finite()), "{}", s.name());
            assert_eq!(out.nfe, steps);
        }
    }
}

#[test]
fn zero_steps_and_wrong_sde_are_errors() {
    let score = GaussianScore {
        sde: vp(),
        mu: MU.to_vec(),
        s: S,
    };
    let opts = SampleOptions::new(8, 0);
    let err = sample(&EulerMaruyama::new(0), &vp(), &score, &opts).unwrap_err();
    assert!(err.to_string().contains("steps = 0"), "{err}");
    let ve = VeSde {
        sigma_min: 0.01,
        sigma_max: 50.0,
        eps: 1e-5,
    };
    let err = sample(&Ddpm::linear(10), &ve, &score, &opts).unwrap_err();
    assert!(err.to_string().contains("vp"), "{err}");
}

/// The trajectory starts at the prior (t = T), ends at the returned samples,
/// and keeps every k-th step.
#[test]
fn trajectory_is_recorded() {
    let score = GaussianScore {
        sde: vp(),
        mu: MU.to_vec(),
        s: S,
    };
    let mut opts = SampleOptions::new(30, 9);
    opts.batch = 7;
    opts.record_every = Some(10);
    opts.record_rows = 20;
    let out = sample(&EulerMaruyama::new(50), &vp(), &score, &opts).unwrap();
    let tr = out.trajectory.unwrap();
    assert_eq!(tr.frames.len(), 6); // t = T, then steps 10, 20, 30, 40, 50
    assert_eq!(tr.times[0], 1.0);
    assert!((tr.times[5] - 1e-3).abs() < 1e-12);
    assert_eq!(tr.frames[5].dim(), (20, 2));
    assert_eq!(tr.frames[5], out.samples.slice(ndarray::s![..20, ..]));
}

#[test]
fn sampler_specs_parse_and_reject_bad_input() {
    use scoresde::samplers::by_name;
    assert_eq!(by_name("ddpm", 10).unwrap().label(), "ddpm(10)");
    assert_eq!(by_name(" em ", 5).unwrap().label(), "euler_maruyama(5)");
    assert_eq!(by_name("ddpm", 10).unwrap().name(), "ddpm:steps=10");
    assert_eq!(by_name(" em ", 5).unwrap().name(), "em:steps=5");
    let err = by_name("nope", 10)
        .err()
        .expect("must be an error")
        .to_string();
    assert!(
        err.contains("nope") && err.contains("ddpm") && err.contains("em"),
        "{err}"
    );
    let err = by_name("em:foo=1", 10)
        .err()
        .expect("must be an error")
        .to_string();
    assert!(err.contains("foo=1"), "{err}");
    let err = by_name("em:foo", 10)
        .err()
        .expect("must be an error")
        .to_string();
    assert!(err.contains("key=value"), "{err}");
    assert!(by_name("em", 0).is_err());
}
