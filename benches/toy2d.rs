//! docs/SPEC.md toy2d throughput benchmark (`cargo bench --bench toy2d`).
//!
//! Prints, per rayon thread count (pools built in-process):
//! - GEMM peak: the best of `matrixmultiply::sgemm` and the network's own
//!   GEMM (`scoresde::backend::gemm`, AVX-512 kernel where available) on
//!   512x256x256 and 1024^3; at 2 threads the rows of C are split in halves
//!   (`rayon::join` for matrixmultiply, the GEMM's own row split for ours);
//! - training steps/s (Trainer::train_step: data draw, forward, backward,
//!   Adam, EMA; batch 512; 2,000 timed steps after 100 warm-up), with the
//!   achieved GEMM GFLOP/s (network FLOPs only) and its fraction of the peak;
//! - the same fraction under equal load: 10 alternating windows of 200
//!   training steps and of as many FLOPs of the own 512x256x256 GEMM, each
//!   side's total FLOPs over its total time (`paired_*` figures);
//! - sampler model evaluations/s for DDPM and Euler-Maruyama on 10,000
//!   samples (`--sample-steps`, default 200; the per-step work is the same
//!   for any N, so N = 200 is timed instead of 1000).
//!
//! Every figure line starts with `RESULT name threads value` so that
//! `benches/reference/run_all.sh` can set it beside PyTorch and JAX.
//!
//! Options (after `--`): `--threads 1,2`, `--train-steps 2000`,
//! `--warmup 100`, `--sample-steps 200`, `--samples 10000`,
//! `--scaling` (Euler-Maruyama time vs samples at 5 steps and vs steps at 2,000 samples), `--memory N STEPS` (one
//! sampling run of N samples, then peak RSS from /proc/self/status).

use std::time::Instant;

use scoresde::data::Toy;
use scoresde::samplers::{sample, Ddpm, EulerMaruyama, SampleOptions, Sampler};
use scoresde::score::Score;
use scoresde::train::{TrainOptions, Trainer};

struct Args {
    threads: Vec<usize>,
    train_steps: usize,
    warmup: usize,
    sample_steps: usize,
    samples: usize,
    scaling: bool,
    memory: Option<(usize, usize)>,
}

fn parse_args() -> Args {
    let mut a = Args {
        threads: vec![1, 2],
        train_steps: 2000,
        warmup: 100,
        sample_steps: 200,
        samples: 10_000,
        scaling: false,
        memory: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize {
        argv.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("option {} needs an integer", argv[i - 1]))
    };
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "--threads" => {
                a.threads = argv[i + 1]
                    .split(',')
                    .map(|s| s.parse().expect("--threads takes e.g. 1,2"))
                    .collect();
                i += 1;
            }
            "--train-steps" => {
                a.train_steps = num(i + 1);
                i += 1;
            }
            "--warmup" => {
                a.warmup = num(i + 1);
                i += 1;
            }
            "--sample-steps" => {
                a.sample_steps = num(i + 1);
                i += 1;
            }
            "--samples" => {
                a.samples = num(i + 1);
                i += 1;
            }
            "--scaling" => a.scaling = true,
            "--memory" => {
                a.memory = Some((num(i + 1), num(i + 2)));
                i += 2;
            }
            _ => {} // `cargo bench` passes `--bench`
        }
        i += 1;
    }
    a
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// C = A·B, row-major, rows of C split in `parts` contiguous blocks with
/// nested `rayon::join` (matrixmultiply itself single-threaded).
fn sgemm_rows(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize, parts: usize) {
    if parts <= 1 || m < 2 {
        // SAFETY: the slices hold m·k, k·n and m·n values (checked by callers'
        // construction) and the strides describe row-major layouts.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        return;
    }
    let m0 = m / 2;
    let (a0, a1) = a.split_at(m0 * k);
    let (c0, c1) = c.split_at_mut(m0 * n);
    let p0 = parts / 2;
    rayon::join(
        || sgemm_rows(a0, b, c0, m0, k, n, p0),
        || sgemm_rows(a1, b, c1, m - m0, k, n, parts - p0),
    );
}

/// The GEMM whose speed is measured as the machine's peak.
#[derive(Clone, Copy)]
enum Backend {
    /// `matrixmultiply::sgemm`, rows split over `threads` with `rayon::join`.
    MatrixMultiply,
    /// The network's own `scoresde::backend::gemm::gemm` (row-major B read in
    /// place; rows split over the current rayon pool).
    Own,
}

/// GFLOP/s of C = A·B (m×k×n, row-major) with `backend` over `threads`,
/// best of 5 timed repeats.
fn gemm_gflops(backend: Backend, m: usize, k: usize, n: usize, threads: usize) -> f64 {
    use scoresde::backend::gemm::{gemm, MatRef};
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let mut c = vec![0.0f32; m * n];
    let run = |c: &mut [f32]| match backend {
        Backend::MatrixMultiply => sgemm_rows(&a, &b, c, m, k, n, threads),
        Backend::Own => gemm(
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            c,
            false,
            true,
        ),
    };
    let flop = 2.0 * (m * k * n) as f64;
    let reps = ((2e9 / flop) as usize).clamp(3, 400);
    for _ in 0..reps / 4 + 1 {
        run(&mut c);
    }
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..reps / 5 + 1 {
            run(&mut c);
        }
        let dt = t0.elapsed().as_secs_f64();
        best = best.max(flop * (reps / 5 + 1) as f64 / dt / 1e9);
    }
    std::hint::black_box(&c);
    best
}

/// Training steps and the own GEMM (512x256x256) in `windows` alternating
/// windows of `window` steps and of as many GEMM FLOPs, so that the
/// machine's other tenants load both alike. Returns (training GFLOP/s,
/// GEMM GFLOP/s), each total FLOPs over total time: the GEMM figure is a
/// mean under the same load, not a best-of-5 peak.
fn paired_windows(tr: &mut Trainer, flop_step: f64, windows: usize, window: usize) -> (f64, f64) {
    use scoresde::backend::gemm::{gemm, MatRef};
    let (m, k, n) = (512, 256, 256);
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let mut c = vec![0.0f32; m * n];
    let flop_gemm = 2.0 * (m * k * n) as f64;
    let reps = ((window as f64 * flop_step / flop_gemm).round() as usize).max(1);
    let (mut t_train, mut t_gemm) = (0.0, 0.0);
    for _ in 0..windows {
        let t0 = Instant::now();
        for _ in 0..window {
            tr.train_step().expect("finite training");
        }
        t_train += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for _ in 0..reps {
            let (a, b) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
            gemm(a, b, &mut c, false, true);
        }
        t_gemm += t0.elapsed().as_secs_f64();
    }
    std::hint::black_box(&c);
    let w = windows as f64;
    (
        w * window as f64 * flop_step / t_train / 1e9,
        w * reps as f64 * flop_gemm / t_gemm / 1e9,
    )
}

/// The SPEC network (an MLP) of a trainer.
fn mlp(t: &Trainer) -> &scoresde::nn::Mlp {
    match &t.net {
        scoresde::nn::ScoreNet::Mlp(m) => m,
        scoresde::nn::ScoreNet::UNet(_) => unreachable!("the toy2d bench trains the SPEC MLP"),
    }
}

/// Multiply-adds of one forward pass of one row through the SPEC network.
fn forward_macs_per_row(t: &Trainer) -> f64 {
    mlp(t)
        .layers()
        .iter()
        .map(|l| (l.fan_in * l.fan_out) as f64)
        .sum()
}

/// GEMM FLOPs of one training step: forward, dW for every layer, dX for
/// every layer but the first.
fn train_flops_per_step(t: &Trainer, batch: usize) -> f64 {
    let fwd = forward_macs_per_row(t);
    let first = mlp(t).layers()[0];
    2.0 * batch as f64 * (3.0 * fwd - (first.fan_in * first.fan_out) as f64)
}

fn result(name: &str, threads: usize, value: f64) {
    println!("RESULT {name} {threads} {value:.6e}");
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn spec_trainer() -> Trainer {
    Trainer::new(TrainOptions::spec(Toy::Checkerboard)).expect("SPEC options are valid")
}

fn time_sampler(
    sampler: &dyn Sampler,
    model: &dyn Score,
    sde: &dyn scoresde::sde::Sde,
    n: usize,
) -> f64 {
    let opts = SampleOptions::new(n, 7);
    let t0 = Instant::now();
    let out = sample(sampler, sde, model, &opts).expect("sampling runs");
    let dt = t0.elapsed().as_secs_f64();
    std::hint::black_box(&out.samples);
    dt
}

fn main() {
    let args = parse_args();
    let trainer = spec_trainer();
    let model = trainer.ema_model().expect("EMA model");
    let sde = model.sde();

    if let Some((n, steps)) = args.memory {
        let threads = *args.threads.last().unwrap_or(&2);
        let before = peak_rss_mb().unwrap_or(f64::NAN);
        let dt = pool(threads).install(|| time_sampler(&EulerMaruyama::new(steps), &model, sde, n));
        let after = peak_rss_mb().unwrap_or(f64::NAN);
        println!(
            "memory: {n} samples x {steps} steps, {threads} threads: {dt:.2} s, peak RSS {after:.1} MB (before sampling {before:.1} MB)"
        );
        result("peak_rss_mb", threads, after);
        return;
    }

    let flop_eval = 2.0 * forward_macs_per_row(&trainer);
    let flop_step = train_flops_per_step(&trainer, 512);
    println!(
        "toy2d: {} params; {:.4} GFLOP per training step (batch 512), {:.4} MFLOP per model evaluation",
        trainer.net.num_params(),
        flop_step / 1e9,
        flop_eval / 1e6
    );
    for &threads in &args.threads {
        let p = pool(threads);
        p.install(|| {
            // The peak is the fastest of both GEMMs on both shapes.
            let g512 = gemm_gflops(Backend::MatrixMultiply, 512, 256, 256, threads);
            let g1024 = gemm_gflops(Backend::MatrixMultiply, 1024, 1024, 1024, threads);
            let own512 = gemm_gflops(Backend::Own, 512, 256, 256, threads);
            let own1024 = gemm_gflops(Backend::Own, 1024, 1024, 1024, threads);
            let peak = g512.max(g1024).max(own512).max(own1024);
            result("gemm_512x256x256_gflops", threads, g512);
            result("gemm_1024cubed_gflops", threads, g1024);
            result("gemm_own_512x256x256_gflops", threads, own512);
            result("gemm_own_1024cubed_gflops", threads, own1024);
            result("gemm_peak_gflops", threads, peak);

            let mut tr = spec_trainer();
            for _ in 0..args.warmup {
                tr.train_step().expect("finite training");
            }
            let t0 = Instant::now();
            for _ in 0..args.train_steps {
                tr.train_step().expect("finite training");
            }
            let dt = t0.elapsed().as_secs_f64();
            let sps = args.train_steps as f64 / dt;
            let gf = sps * flop_step / 1e9;
            result("train_steps_per_s", threads, sps);
            result("train_gflops", threads, gf);
            result("train_frac_of_peak", threads, gf / peak);
            // The same comparison with the GEMM timed under the same load.
            let (pt, pg) = paired_windows(&mut tr, flop_step, 10, 200);
            result("paired_train_gflops", threads, pt);
            result("paired_gemm_gflops", threads, pg);
            result("train_frac_of_paired_gemm", threads, pt / pg);

            let n = args.samples;
            let steps = args.sample_steps;
            // warm-up (thread workspaces, page faults)
            time_sampler(&EulerMaruyama::new(5), &model, sde, n);
            let mut evals = Vec::new();
            for (name, s) in [
                ("ddpm", Box::new(Ddpm::linear(steps)) as Box<dyn Sampler>),
                ("em", Box::new(EulerMaruyama::new(steps)) as Box<dyn Sampler>),
            ] {
                let dt = time_sampler(s.as_ref(), &model, sde, n);
                let eps = (n * steps) as f64 / dt;
                result(&format!("{name}_evals_per_s"), threads, eps);
                evals.push((name, eps));
            }
            let best = evals.iter().map(|e| e.1).fold(0.0, f64::max);
            let sgf = best * flop_eval / 1e9;
            println!(
                "threads {threads}: GEMM peak {peak:.1} GFLOP/s (matrixmultiply 512x256x256 {g512:.1}, 1024^3 {g1024:.1}; \
                 own {own512:.1}, {own1024:.1}); \
                 train {sps:.1} steps/s = {gf:.1} GFLOP/s = {:.0}% of peak; \
                 paired windows: train {pt:.1} / GEMM {pg:.1} GFLOP/s = {:.0}%; \
                 sampling {:.3e} (ddpm) / {:.3e} (em) evals/s = {sgf:.1} GFLOP/s = {:.0}% of peak",
                100.0 * gf / peak,
                100.0 * pt / pg,
                evals[0].1,
                evals[1].1,
                100.0 * sgf / peak
            );
            result("sample_frac_of_peak", threads, sgf / peak);
        });
    }

    if args.scaling {
        let threads = *args.threads.last().unwrap_or(&2);
        println!("scaling (Euler-Maruyama, {threads} threads): seconds, and seconds per (sample x step) in ns");
        pool(threads).install(|| {
            let run = |n: usize, steps: usize| {
                let dt = time_sampler(&EulerMaruyama::new(steps), &model, sde, n);
                println!(
                    "SCALING n={n} steps={steps} seconds={dt:.3} ns_per_eval={:.1}",
                    dt * 1e9 / (n * steps) as f64
                );
            };
            for n in [10_000, 100_000, 1_000_000] {
                run(n, 5);
            }
            for steps in [100, 300, 1000] {
                run(2_000, steps);
            }
        });
    }
}
