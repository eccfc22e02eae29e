//! `compare` on images with the empirical-score oracle of the digits: ODE
//! samplers land on training images, outputs do not depend on the thread
//! count, and bad input is refused with a clear error.

use std::path::PathBuf;

use scoresde::app::compare::{run_any, CompareOptions, ImageCompareReport, Report, Source};
use scoresde::sde::SdeConfig;

fn opts(dir: &str) -> CompareOptions {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let _ = std::fs::remove_dir_all(&out);
    let mut o = CompareOptions::new(Source::ImageOracle {
        data: "digits".into(),
        sde: SdeConfig::by_name("vp").unwrap(),
    });
    o.out = out;
    o.progress = false;
    o
}

fn images(o: &CompareOptions) -> ImageCompareReport {
    match run_any(o).unwrap() {
        Report::Images(r) => r,
        Report::Points(_) => panic!("an image oracle gave a 2-D report"),
    }
}

/// The probability-flow ODE of the noised empirical distribution carries
/// every point to a training image (the distribution is a sum of deltas),
/// so with enough steps an ODE sampler's mean distance to the nearest
/// training image is near 0: at most 5% of the held-out images' distance
/// (samplers that stop at t = ε without denoising keep σ(ε)‖z‖ ≈ 0.08 of
/// it, 4% of the floor). The score's Lipschitz constant grows like 1/σ²
/// as t → ε, so the explicit Runge–Kutta solvers get the logSNR grid,
/// which puts steps there (on the uniform-t grid Heun and RK4 need 250
/// NFE: docs/compare-images.md), and RK45 is held to the cells with
/// rtol ≤ 1e-3.
#[test]
fn ode_samplers_with_the_empirical_score_land_on_training_images() {
    let mut o = opts("compare_images_ode");
    let ode = [
        "ode-euler:schedule=logsnr",
        "ode-heun:schedule=logsnr",
        "ode-rk4:schedule=logsnr",
        "ode-rk45",
        "ddim",
        "edm",
        "dpm2",
        "lms",
        "ipndm",
        "deis",
        "dpm-solver++",
        "dpmpp-3m",
        "unipc",
        "unipc-bh1",
    ];
    o.samplers = Some(ode.iter().map(|s| s.to_string()).collect());
    o.nfe = vec![50, 100];
    o.n = 40;
    o.seeds = 2;
    let r = images(&o);
    let floor = r.floor.nn.mean;
    assert!(floor > 1.0, "held-out NN distance {floor}");
    for c in r.cells.iter().filter(|c| c.rtol.is_none_or(|t| t <= 1e-3)) {
        assert!(c.nfe >= 48, "{} at NFE {}", c.spec, c.nfe);
        assert!(
            c.quality.nn.mean <= 0.05 * floor,
            "{} at NFE {}: mean NN distance {} > 5% of the held-out {floor}",
            c.spec,
            c.nfe,
            c.quality.nn.mean
        );
    }
    assert_eq!(r.cells.len(), 2 * ode.len(), "{:?}", r.skipped_cells);
}

/// The fields of one CSV line (double-quoted fields may hold commas).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

/// The CSV without the wall-time columns, the Markdown table without its
/// seconds column, and the figures that do not plot time.
fn outputs(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let header: Vec<String> = fields(csv.lines().next().unwrap());
    let drop: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("seconds"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(drop.len(), 2, "{header:?}");
    let csv: String = csv
        .lines()
        .map(|l| {
            let kept: Vec<String> = fields(l)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(i))
                .map(|(_, v)| v)
                .collect();
            kept.join(",") + "\n"
        })
        .collect();
    let mut v = vec![csv.into_bytes()];
    for f in [
        "quality_vs_nfe.png",
        "memorisation_vs_nfe.png",
        "thumbnails.png",
    ] {
        v.push(std::fs::read(dir.join(f)).unwrap());
    }
    v
}

#[test]
fn image_compare_is_byte_identical_on_1_and_2_threads() {
    let run_on = |threads: usize| {
        let mut o = opts(&format!("compare_images_threads_{threads}"));
        o.samplers = Some(vec!["ddim".into(), "em".into(), "dpmpp-2m-sde".into()]);
        o.nfe = vec![5, 20];
        o.n = 60;
        o.seeds = 2;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let r = pool.install(|| images(&o));
        outputs(&r.out_dir)
    };
    let (one, two) = (run_on(1), run_on(2));
    assert_eq!(one.len(), two.len());
    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
        assert!(a == b, "output {i} differs between 1 and 2 threads");
    }
}

#[test]
fn bad_image_compare_input_is_an_error() {
    let mut o = opts("compare_images_bad");
    o.samplers = Some(vec!["ddim".into()]);
    o.nfe = vec![5];
    o.n = 5000;
    let e = run_any(&o).unwrap_err().to_string();
    assert!(
        e.contains("n") && e.contains("5000") && e.contains("digits"),
        "{e}"
    );
    o.n = 3;
    assert!(run_any(&o).is_err());
    o.n = 50;
    o.source = Source::ImageOracle {
        data: "checkerboard".into(),
        sde: SdeConfig::by_name("vp").unwrap(),
    };
    let e = run_any(&o).unwrap_err().to_string();
    assert!(e.contains("digits-empirical"), "{e}");
    o.source = Source::ImageOracle {
        data: "digits".into(),
        sde: SdeConfig::by_name("vp").unwrap(),
    };
    o.data = Some(scoresde::data::Toy::Checkerboard);
    let e = run_any(&o).unwrap_err().to_string();
    assert!(e.contains("invalid data = checkerboard"), "{e}");
}
