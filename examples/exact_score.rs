//! Sampling with an exact score: no training, so any error you see is the
//! sampler's own discretisation error.
//!
//! The data are Gaussian, N(mu, s² I); pushed through the VP SDE their
//! marginal stays Gaussian, p_t = N(alpha(t) mu, (alpha(t)² s² + sigma(t)²) I),
//! so the score is known in closed form (`GaussianScore`). We sample with
//! Euler–Maruyama at several step counts and compare the sample mean and
//! standard deviation with the exact values.
//!
//! ```sh
//! cargo run --release --example exact_score
//! ```

use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::GaussianScore;
use scoresde::sde::{Sde, VpSde};

fn main() -> anyhow::Result<()> {
    let sde = VpSde::default();
    let (mu, s) = (vec![1.0, -2.0], 0.5);
    let score = GaussianScore {
        sde,
        mu: mu.clone(),
        s,
    };
    let t = sde.t_eps();
    let exact_std = (sde.alpha(t).powi(2) * s * s + sde.sigma(t).powi(2)).sqrt();
    println!(
        "exact at t = ε: mean {:?}, std {exact_std:.4}",
        [mu[0] * sde.alpha(t), mu[1] * sde.alpha(t)]
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10}",
        "steps", "mean[0]", "mean[1]", "std"
    );
    for steps in [2, 5, 10, 20, 50, 100, 1000] {
        let out = sample(
            by_name("em", steps)?.as_ref(),
            &sde,
            &score,
            &SampleOptions::new(20_000, 0),
        )?;
        let x = out.samples.mapv(|v| v as f64);
        let mean = x.mean_axis(ndarray::Axis(0)).unwrap_or_default();
        let std = x.std_axis(ndarray::Axis(0), 1.0).mean().unwrap_or(f64::NAN);
        println!("{steps:>8} {:>10.4} {:>10.4} {std:>10.4}", mean[0], mean[1]);
    }
    Ok(())
}
