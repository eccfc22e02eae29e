//! Optimised schedules (`scoresde schedule`): on the exact 25-Gaussians
//! score, the grid found against the RK45 teacher beats every named schedule
//! for the same solver on held-out seeds (SWD against fresh data draws).

use scoresde::data::Toy;
use scoresde::metrics::swd;
use scoresde::oracle::for_toy;
use scoresde::samplers::{by_name, sample, schedule::SCHEDULES, SampleOptions, Schedule};
use scoresde::schedule_opt::{optimize, OptimizeOptions};
use scoresde::sde::SdeConfig;

/// Mean SWD over 3 held-out seeds (sampling seeds 100.., data seeds 200..).
fn held_out_swd(spec: &str, steps: usize) -> (f64, f64) {
    let data = Toy::from_name("25gaussians").unwrap();
    let (score, sde) = for_toy(data, &SdeConfig::by_name("vp").unwrap()).unwrap();
    let n = 2000;
    let v: Vec<f64> = (0..3u64)
        .map(|s| {
            let sm = by_name(spec, steps).unwrap();
            let x = sample(
                sm.as_ref(),
                sde.as_ref(),
                score.as_ref(),
                &SampleOptions::new(n, 100 + s),
            )
            .unwrap()
            .samples;
            swd(x.view(), data.sample(n, 200 + s).view(), 256, s)
        })
        .collect();
    let mean = v.iter().sum::<f64>() / 3.0;
    let se = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0 / 3.0).sqrt();
    (mean, se)
}

#[test]
fn optimised_grid_beats_every_named_schedule_at_10_nfe() {
    let data = Toy::from_name("25gaussians").unwrap();
    let (score, sde) = for_toy(data, &SdeConfig::by_name("vp").unwrap()).unwrap();
    for sampler in ["ode-heun", "ode-euler"] {
        let mut o = OptimizeOptions::new(sampler, 10);
        o.n = 256;
        let r = optimize(sde.as_ref(), score.as_ref(), &o).unwrap();
        // On its own objective it is no worse than the best named schedule.
        let best_named = r.named.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        assert!(
            r.error <= best_named,
            "{sampler}: {} vs {best_named}",
            r.error
        );
        assert_eq!(r.times.len(), r.steps);
        let list: Vec<String> = r.times.iter().map(|t| format!("{t:?}")).collect();
        let opt = held_out_swd(&format!("{sampler}:schedule={}", list.join(",")), r.steps);
        for (name, _) in SCHEDULES {
            Schedule::parse(name).unwrap();
            let named = held_out_swd(&format!("{sampler}:schedule={name}"), r.steps);
            assert!(
                opt.0 < named.0,
                "{sampler}: optimised SWD {:.4} ± {:.4} vs {name} {:.4} ± {:.4}",
                opt.0,
                opt.1,
                named.0,
                named.1
            );
        }
    }
}

#[test]
fn bad_requests_are_refused() {
    let data = Toy::from_name("25gaussians").unwrap();
    let (score, sde) = for_toy(data, &SdeConfig::by_name("vp").unwrap()).unwrap();
    for (spec, nfe, needle) in [
        ("ode-rk45", 10, "fixed-step"),
        ("ode-heun", 1, "nfe = 1"),
        ("nope", 10, "nope"),
    ] {
        let err = optimize(
            sde.as_ref(),
            score.as_ref(),
            &OptimizeOptions::new(spec, nfe),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(needle), "{spec}: {err}");
    }
}
