//! `compare` with the exact 25-Gaussians score: files, table shape, the
//! expected ordering of EM at 5 vs 1000 steps, and bad input.

use std::path::PathBuf;

use scoresde::app::compare::{run, CompareOptions, Source};
use scoresde::data::Toy;
use scoresde::sde::SdeConfig;

fn opts(dir: &str, sde: &str) -> CompareOptions {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let _ = std::fs::remove_dir_all(&out);
    let mut o = CompareOptions::new(Source::Oracle {
        data: Toy::TwentyFiveGaussians,
        sde: SdeConfig::by_name(sde).unwrap(),
    });
    o.out = out;
    o.progress = false;
    o.n = 2000;
    o.seeds = 4;
    o
}

#[test]
fn all_files_and_one_csv_row_per_sampler_and_budget() {
    let mut o = opts("compare_files", "vp");
    o.samplers = Some(vec!["em".into(), "ddpm".into()]);
    o.nfe = vec![20, 5, 10];
    o.n = 300;
    o.seeds = 2;
    let r = run(&o).unwrap();
    for f in [
        "results.csv",
        "results.md",
        "quality_vs_nfe.png",
        "quality_vs_time.png",
        "thumbnails.png",
    ] {
        let p = r.out_dir.join(f);
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 100)
                .unwrap_or(false),
            "{}",
            p.display()
        );
    }
    let csv = std::fs::read_to_string(r.out_dir.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut seen: Vec<(String, usize)> = rows
        .iter()
        .map(|r| (r[0].to_string(), r[2].parse().unwrap()))
        .collect();
    seen.sort();
    let want: Vec<(String, usize)> = ["ddpm", "em"]
        .iter()
        .flat_map(|s| [5, 10, 20].map(|b| (s.to_string(), b)))
        .collect();
    assert_eq!(seen, want, "{csv}");
    for r in &rows {
        assert_eq!(r.len(), header.len());
        for (h, v) in header.iter().zip(r) {
            if [
                "nfe",
                "seconds_mean",
                "swd_mean",
                "swd_se",
                "swd_over_floor",
                "floor_mean",
                "floor_se",
                "mmd2_mean",
                "energy_mean",
                "mode_coverage_mean",
                "high_quality_mean",
                "log_density_mean",
                "precision_mean",
                "recall_mean",
                "density_mean",
                "coverage_mean",
            ]
            .contains(h)
            {
                let x: f64 = v.parse().unwrap_or(f64::NAN);
                assert!(x.is_finite(), "{h} = {v:?} in {r:?}");
            }
        }
    }
    // One model evaluation per step: the measured NFE equals the budget.
    for c in &r.cells {
        assert_eq!(c.nfe, c.budget, "{}", c.sampler);
        assert_eq!(c.steps, Some(c.budget), "{}", c.sampler);
    }
    let md = std::fs::read_to_string(r.out_dir.join("results.md")).unwrap();
    assert!(
        md.contains("Not distinguishable") && md.contains("NFE budget 5 (cells with NFE <= 5):"),
        "{md}"
    );

    // Existing outputs are kept unless forced.
    let e = run(&o).unwrap_err().to_string();
    assert!(e.contains(scoresde::app::ADVICE_FORCE), "{e}");
    assert_eq!(
        std::fs::read_to_string(r.out_dir.join("results.csv")).unwrap(),
        csv
    );
    o.force = true;
    run(&o).unwrap();
}

/// EM with the exact score: within 1.5x the noise floor at 1000 steps, and
/// clearly (5 combined SE) worse at 5 steps.
#[test]
fn em_with_exact_score_converges_with_steps() {
    let mut o = opts("compare_em", "vp");
    o.samplers = Some(vec!["em".into()]);
    o.nfe = vec![1000, 5];
    let r = run(&o).unwrap();
    let em = |b: usize| {
        r.cells
            .iter()
            .find(|c| c.spec == "em" && c.budget == b)
            .unwrap()
            .quality
            .swd
    };
    let (fine, coarse) = (em(1000), em(5));
    assert!(
        fine.mean <= 1.5 * r.floor.swd.mean,
        "EM(1000) SWD {fine} vs floor {}",
        r.floor.swd
    );
    let gap = coarse.mean - fine.mean;
    let se = (coarse.se.powi(2) + fine.se.powi(2)).sqrt();
    assert!(
        gap > 5.0 * se,
        "EM(5) {coarse} not clearly worse than EM(1000) {fine}"
    );
}

#[test]
fn default_samplers_that_reject_the_sde_are_skipped_with_a_reason() {
    let mut o = opts("compare_ve", "ve");
    o.nfe = vec![3];
    o.n = 200;
    o.seeds = 2;
    let r = run(&o).unwrap();
    let skipped: Vec<&str> = r.skipped_samplers.iter().map(|(s, _)| s.as_str()).collect();
    assert!(
        skipped.contains(&"ddpm") && skipped.contains(&"ddpm-cosine"),
        "{:?}",
        r.skipped_samplers
    );
    assert!(
        r.skipped_samplers
            .iter()
            .all(|(_, why)| why.contains("sde")),
        "{:?}",
        r.skipped_samplers
    );
    assert!(r.cells.iter().any(|c| c.spec == "em"));
    assert!(r.cells.iter().all(|c| !skipped.contains(&c.spec.as_str())));
}

#[test]
fn bad_input_is_a_clear_error() {
    type Edit = Box<dyn Fn(&mut CompareOptions)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|o| o.samplers = Some(vec!["em".into(), "warp-drive".into()])),
            "warp-drive",
        ),
        (Box::new(|o| o.nfe = vec![]), "nfe"),
        (Box::new(|o| o.nfe = vec![10, 0]), "nfe = 0"),
        (Box::new(|o| o.n = 0), "n = 0"),
        (Box::new(|o| o.seeds = 0), "seeds = 0"),
        (
            Box::new(|o| o.samplers = Some(vec!["em".into(), "em".into()])),
            "once",
        ),
        (
            Box::new(|o| o.samplers = Some(vec!["em:foo=1".into()])),
            "foo=1",
        ),
        (Box::new(|o| o.samplers = Some(vec!["ddpm".into()])), "sde"),
    ];
    for (i, (f, want)) in cases.iter().enumerate() {
        let mut o = opts(&format!("compare_bad_{i}"), "ve");
        o.n = 50;
        o.nfe = if want.starts_with("nfe") {
            o.nfe
        } else {
            vec![2]
        };
        f(&mut o);
        let e = run(&o).unwrap_err().to_string();
        assert!(e.contains(want), "case {i}: {e}");
        assert!(!o.out.exists(), "case {i}: nothing written on bad input");
    }
    let mut o = opts("compare_bad_oracle", "vp");
    o.source = Source::Oracle {
        data: Toy::TwoMoons,
        sde: SdeConfig::by_name("vp").unwrap(),
    };
    let e = run(&o).unwrap_err().to_string();
    assert!(
        e.contains("moons") && e.contains("checkerboard, 8gaussians, 25gaussians"),
        "{e}"
    );
}
