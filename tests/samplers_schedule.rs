//! The shared sampler vocabulary: schedules against their closed forms,
//! specs that parse back, declared costs that match the evaluations counted,
//! and every sampler × schedule finite at 1, 2 and 3 steps.

use scoresde::samplers::{by_name, entries, sample, Nfe, SampleOptions, Schedule};
use scoresde::score::{GaussianScore, Score};
use scoresde::sde::{LinearBeta, Sde, SdeConfig, SubVpSde, VeSde, VpSde};

fn sde(name: &str) -> Box<dyn Sde> {
    SdeConfig::by_name(name).unwrap().build().unwrap()
}

/// The exact score of N((0.3, −0.2), 0.5² I) under the named default SDE.
fn gauss(name: &str) -> Box<dyn Score> {
    let (mu, s) = (vec![0.3, -0.2], 0.5);
    let beta = LinearBeta {
        beta_min: 0.1,
        beta_max: 20.0,
    };
    match name {
        "vp" => Box::new(GaussianScore {
            sde: VpSde::default(),
            mu,
            s,
        }),
        "subvp" => Box::new(GaussianScore {
            sde: SubVpSde { beta, eps: 1e-3 },
            mu,
            s,
        }),
        _ => Box::new(GaussianScore {
            sde: VeSde {
                sigma_min: 0.01,
                sigma_max: 50.0,
                eps: 1e-5,
            },
            mu,
            s,
        }),
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// σ̃(t) = sigma / alpha.
fn st(sde: &dyn Sde, t: f64) -> f64 {
    sde.sigma(t) / sde.alpha(t)
}

#[test]
fn named_schedules_match_their_closed_forms() {
    for name in ["vp", "subvp", "ve"] {
        let sde = sde(name);
        let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
        let (hi, lo) = (st(sde.as_ref(), t_max), st(sde.as_ref(), t_eps));
        for n in [1usize, 2, 7, 50] {
            let u = |i: usize| i as f64 / n as f64;
            for (spec, want) in [
                (
                    "karras:rho=7",
                    Box::new(move |i: usize| {
                        let (a, b) = (hi.powf(1.0 / 7.0), lo.powf(1.0 / 7.0));
                        (a + u(i) * (b - a)).powi(7)
                    }) as Box<dyn Fn(usize) -> f64>,
                ),
                (
                    "karras:rho=3",
                    Box::new(move |i: usize| {
                        let (a, b) = (hi.powf(1.0 / 3.0), lo.powf(1.0 / 3.0));
                        (a + u(i) * (b - a)).powi(3)
                    }),
                ),
                (
                    "exponential",
                    Box::new(move |i: usize| (hi.ln() + u(i) * (lo.ln() - hi.ln())).exp()),
                ),
                (
                    "polyexponential:rho=2",
                    Box::new(move |i: usize| {
                        (lo.ln() + (1.0 - u(i)).powi(2) * (hi.ln() - lo.ln())).exp()
                    }),
                ),
            ] {
                let g = Schedule::parse(spec)
                    .unwrap()
                    .grid(sde.as_ref(), n)
                    .unwrap();
                assert_eq!(g.steps(), n);
                for i in 0..=n {
                    let w = want(i);
                    // The σ̃ the samplers see, and the σ̃ of the grid time.
                    let t = g.times()[i];
                    assert!(rel(g.sigmas()[i], w) < 1e-12, "{name} {spec} {n} {i}");
                    assert!(
                        rel(st(sde.as_ref(), t), w) < 1e-9,
                        "{name} {spec} {n} {i}: {} vs {w}",
                        st(sde.as_ref(), t)
                    );
                }
            }
            // Uniform log-SNR: lambda linear in i.
            let g = Schedule::parse("logsnr")
                .unwrap()
                .grid(sde.as_ref(), n)
                .unwrap();
            let (l0, l1) = (sde.lambda(t_max), sde.lambda(t_eps));
            for (i, &t) in g.times().iter().enumerate() {
                let want = l0 + u(i) * (l1 - l0);
                assert!((sde.lambda(t) - want).abs() < 1e-9, "{name} logsnr {i}");
            }
            // Uniform in t.
            let g = Schedule::Uniform.grid(sde.as_ref(), n).unwrap();
            for (i, &t) in g.times().iter().enumerate() {
                let want = t_max - u(i) * (t_max - t_eps);
                assert!((t - want).abs() < 1e-12, "{name} uniform {i}");
            }
        }
    }
}

#[test]
fn every_schedule_is_monotone_with_exact_ends() {
    for name in ["vp", "subvp", "ve"] {
        let sde = sde(name);
        for spec in [
            "uniform",
            "logsnr",
            "karras",
            "karras:rho=0.5",
            "karras:rho=1000",
            "polyexponential",
            "polyexponential:rho=3",
            "vp",
            "0.9,0.5,0.2",
            "1.0,0.3",
        ] {
            for n in [1usize, 2, 3, 10, 200] {
                let g = Schedule::parse(spec)
                    .unwrap()
                    .grid(sde.as_ref(), n)
                    .unwrap();
                let t = g.times();
                assert_eq!(t.len(), n + 1, "{name} {spec} {n}");
                assert_eq!(t[0], sde.t_max(), "{name} {spec} {n}");
                assert_eq!(t[n], sde.t_eps(), "{name} {spec} {n}");
                assert!(
                    t.windows(2).all(|w| w[1] < w[0]),
                    "{name} {spec} {n}: not strictly decreasing {t:?}"
                );
                assert!(g.sigmas().iter().all(|s| s.is_finite() && *s > 0.0));
            }
        }
    }
}

/// EDM's VP spacing is uniform t of the VP SDE with beta_d = 19.9,
/// beta_min = 0.1: on our default VP SDE (beta 0.1 → 20) it is the uniform grid.
#[test]
fn vp_spacing_is_uniform_t_on_the_default_vp_sde() {
    let sde = sde("vp");
    for n in [1usize, 5, 40] {
        let vp = Schedule::parse("vp")
            .unwrap()
            .grid(sde.as_ref(), n)
            .unwrap();
        let un = Schedule::Uniform.grid(sde.as_ref(), n).unwrap();
        for (a, b) in vp.times().iter().zip(un.times()) {
            assert!((a - b).abs() < 1e-9, "{n}: {a} vs {b}");
        }
    }
}

#[test]
fn user_lists_are_validated_and_interpolated() {
    let vp = sde("vp");
    for (spec, needle) in [
        ("0.5,0.7", "strictly decreasing"),
        ("0.5,0.5", "strictly decreasing"),
        ("1.5,0.5", "(eps, T]"),
        ("0.5,0.0005", "(eps, T]"),
        ("0.5,-0.1", "(eps, T]"),
    ] {
        let err = Schedule::parse(spec)
            .and_then(|s| s.grid(vp.as_ref(), 3))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{spec}: {err}");
    }
    for spec in [
        "0.5,abc",
        "karras:rho=0",
        "karras:rho=-1",
        "karras:foo=1",
        "nope",
    ] {
        assert!(
            Schedule::parse(spec)
                .and_then(|s| s.validate(vp.as_ref()))
                .is_err(),
            "{spec}"
        );
    }
    // Same length: the times themselves (T and ε added).
    let g = Schedule::parse("0.9,0.5,0.2")
        .unwrap()
        .grid(vp.as_ref(), 4)
        .unwrap();
    assert_eq!(g.times(), &[1.0, 0.9, 0.5, 0.2, 1e-3]);
    // Another length: linear in lambda over the index, ends exact.
    let g = Schedule::parse("0.9,0.5,0.2")
        .unwrap()
        .grid(vp.as_ref(), 8)
        .unwrap();
    assert_eq!(g.times()[2], 0.9);
    assert!((g.times()[4] - 0.5).abs() < 1e-12);
    let mid = g.times()[1];
    let want = 0.5 * (vp.lambda(1.0) + vp.lambda(0.9));
    assert!((vp.lambda(mid) - want).abs() < 1e-9);
    // A file.
    let dir = std::env::temp_dir().join(format!("scoresde-sched-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("s.json");
    std::fs::write(&f, r#"{"times": [0.8, 0.3, 0.05]}"#).unwrap();
    let s = Schedule::parse(f.to_str().unwrap()).unwrap();
    assert_eq!(
        s.grid(vp.as_ref(), 4).unwrap().times(),
        &[1.0, 0.8, 0.3, 0.05, 1e-3]
    );
    std::fs::write(&f, r#"{"times": "no"}"#).unwrap();
    assert!(Schedule::parse(f.to_str().unwrap()).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// Every registered sampler: its spec parses back to the same sampler, and
/// its declared cost equals the evaluations the driver counts.
#[test]
fn specs_round_trip_and_costs_are_declared_exactly() {
    for e in entries() {
        for extra in ["", ":schedule=karras:rho=5", ":noise=brownian"] {
            let spec = format!("{}{extra}", e.name);
            let Ok(s) = by_name(&spec, 7) else {
                // A sampler without a schedule or noise parameter refuses it.
                assert!(!extra.is_empty(), "{spec}");
                continue;
            };
            let back = by_name(&s.name(), 1).unwrap();
            assert_eq!(back.name(), s.name(), "{spec}");
            assert_eq!(back.label(), s.label(), "{spec}");
        }
        for sde_name in ["vp", "subvp", "ve"] {
            let sde = sde(sde_name);
            let score = gauss(sde_name);
            for steps in [1usize, 2, 5] {
                let s = by_name(e.name, steps).unwrap();
                if s.validate(sde.as_ref()).is_err() {
                    continue;
                }
                let out = sample(
                    s.as_ref(),
                    sde.as_ref(),
                    score.as_ref(),
                    &SampleOptions::new(3, 0),
                )
                .unwrap();
                match s.cost() {
                    Nfe::Fixed { .. } => {
                        assert_eq!(s.cost().at(steps), Some(out.nfe), "{} {sde_name}", e.name)
                    }
                    Nfe::Adaptive => assert!(out.nfe > 0),
                }
            }
        }
    }
}

/// Every sampler with every schedule: 1, 2 and 3 steps give finite samples
/// on VP, sub-VP and VE (or a clear refusal of the SDE).
#[test]
fn every_sampler_and_schedule_is_finite_at_few_steps() {
    let schedules = [
        "uniform",
        "logsnr",
        "karras",
        "karras:rho=0.3",
        "polyexponential:rho=2",
        "vp",
        "0.7,0.2",
    ];
    for sde_name in ["vp", "subvp", "ve"] {
        let sde = sde(sde_name);
        let score = gauss(sde_name);
        for e in entries() {
            for sched in schedules {
                let spec = format!("{}:schedule={sched}", e.name);
                let Ok(probe) = by_name(&spec, 1) else {
                    continue; // takes no schedule (adaptive)
                };
                if probe.validate(sde.as_ref()).is_err() {
                    continue;
                }
                for steps in 1..=3 {
                    let s = by_name(&spec, steps).unwrap();
                    let out = sample(
                        s.as_ref(),
                        sde.as_ref(),
                        score.as_ref(),
                        &SampleOptions::new(16, 1),
                    )
                    .unwrap();
                    assert!(
                        out.samples.iter().all(|v| v.is_finite()),
                        "{spec} {sde_name} {steps}"
                    );
                }
            }
        }
    }
}
