//! `noise=brownian`: per-sample Brownian motion makes a run's noise a
//! function of (seed, sample, time), so refining the grid refines the same
//! path. For the reverse SDE of Gaussian data the noise is additive (g(t)
//! does not depend on x), where Euler–Maruyama converges strongly with order
//! 1: the distance between the endpoints at N and 2N steps should halve per
//! doubling (measured: 1.93–2.13× per doubling for N = 25 … 400; the test
//! asks ≥ 1.6×). That needs the last step's noise too (`Ctx::noisy_last_step`):
//! a noise-free last step leaves a g(ε) sqrt(h) term, order ½ (1.41×). With
//! per-step streams every N draws different noise and the distance stays at
//! the size of the sample spread.

use ndarray::Array2;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::GaussianScore;
use scoresde::sde::VpSde;

const MU: [f64; 2] = [0.5, -1.0];
const S: f64 = 0.5;

fn score() -> GaussianScore<VpSde> {
    GaussianScore {
        sde: VpSde::default(),
        mu: MU.to_vec(),
        s: S,
    }
}

fn run(spec: &str, steps: usize, n: usize, batch: usize) -> Array2<f32> {
    let s = by_name(spec, steps).unwrap();
    let mut o = SampleOptions::new(n, 7);
    o.batch = batch;
    sample(s.as_ref(), &VpSde::default(), &score(), &o)
        .unwrap()
        .samples
}

fn mean_dist(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let d: f64 = a
        .outer_iter()
        .zip(b.outer_iter())
        .map(|(x, y)| {
            x.iter()
                .zip(y.iter())
                .map(|(p, q)| ((p - q) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum();
    d / a.nrows() as f64
}

/// Mean endpoint distance between N and 2N steps for N = 25 … 400.
fn distances(spec: &str) -> Vec<f64> {
    let ns = [25usize, 50, 100, 200, 400, 800];
    let xs: Vec<Array2<f32>> = ns.iter().map(|&n| run(spec, n, 1000, 500)).collect();
    xs.windows(2).map(|w| mean_dist(&w[0], &w[1])).collect()
}

#[test]
fn brownian_noise_converges_pathwise_and_streams_do_not() {
    for spec in ["em:noise=brownian", "reverse-diffusion:noise=brownian"] {
        let d = distances(spec);
        for w in d.windows(2) {
            assert!(w[0] / w[1] >= 1.6, "{spec}: distances {d:?}");
        }
    }
    // Per-step streams: the distance does not fall (it is the spread of the
    // conditional law, ~S), within a factor 1.2 per doubling.
    let d = distances("em");
    for w in d.windows(2) {
        assert!(w[0] / w[1] < 1.2, "streams: distances {d:?}");
    }
    assert!(d.iter().all(|&v| v > 0.2), "streams: {d:?}");
}

/// The Brownian increments are exactly N(0, I) and independent over
/// disjoint steps, so the marginal is unchanged: mean and variance agree with
/// the same sampler on per-step streams within 4 standard errors of the
/// difference (both runs share the discretisation bias).
#[test]
fn brownian_noise_keeps_the_marginal() {
    let n = 20_000;
    let moments = |x: &Array2<f32>, j: usize| {
        let col: Vec<f64> = x.column(j).iter().map(|&v| v as f64).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var)
    };
    for spec in ["em", "ddim:eta=1", "ddpm", "reverse-diffusion"] {
        let steps = run(spec, 200, n, 512);
        let brown = run(
            &format!(
                "{spec}{}noise=brownian",
                if spec.contains(':') { "," } else { ":" }
            ),
            200,
            n,
            512,
        );
        for j in 0..MU.len() {
            let ((m1, v1), (m2, v2)) = (moments(&steps, j), moments(&brown, j));
            // SE of a difference of two independent means / normal sample
            // variances: sqrt(2) times one SE (v sqrt(2/(n − 1)) for a variance).
            let se_mean = (2.0 * S * S / n as f64).sqrt();
            let se_var = 2.0f64.sqrt() * S * S * (2.0 / (n - 1) as f64).sqrt();
            assert!((m1 - m2).abs() < 4.0 * se_mean, "{spec} mean {m1} vs {m2}");
            assert!((v1 - v2).abs() < 4.0 * se_var, "{spec} var {v1} vs {v2}");
        }
    }
}

/// Same seed, same bytes for batch sizes 1, 7, 512 and 1 and 2 threads.
#[test]
fn brownian_noise_is_batch_and_thread_invariant() {
    let spec = "em:noise=brownian";
    let base = run(spec, 40, 300, 512);
    for batch in [1usize, 7] {
        assert_eq!(run(spec, 40, 300, batch), base, "batch {batch}");
    }
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let x = pool.install(|| run(spec, 40, 300, 7));
        assert_eq!(x, base, "threads {threads}");
    }
}
