//! Timings at the docs/SPEC.md size (10,000 vs 10,000 points in 2-D). Ignored by
//! default; run with
//! `cargo test --release --test metrics_timing -- --ignored --nocapture`.

use std::time::Instant;

use scoresde::data::Toy;
use scoresde::metrics::{energy_distance, mmd_rbf, swd};

#[test]
#[ignore = "timing report, not a check"]
fn time_metrics_on_10k_vs_10k() {
    let a = Toy::Checkerboard.sample(10_000, 1);
    let b = Toy::Checkerboard.sample(10_000, 2);
    let t = Instant::now();
    let s = swd(a.view(), b.view(), 256, 0);
    let t_swd = t.elapsed();
    let t = Instant::now();
    let m = mmd_rbf(a.view(), b.view());
    let t_mmd = t.elapsed();
    let t = Instant::now();
    let e = energy_distance(a.view(), b.view());
    let t_ed = t.elapsed();
    println!(
        "threads {}: swd {s:.5} in {t_swd:?}; mmd² {m:.3e} in {t_mmd:?}; energy {e:.3e} in {t_ed:?}",
        rayon::current_num_threads()
    );
}
