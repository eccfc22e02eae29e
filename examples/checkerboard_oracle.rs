//! Sampler error alone: DDPM and Euler–Maruyama driven by the exact
//! checkerboard score (no network), at several step counts.
//!
//! ```sh
//! cargo run --release --example checkerboard_oracle
//! ```
//!
//! Whatever separates these figures from the data's noise floor is the
//! sampler's discretisation error; what a trained model adds on top is
//! model error.

use scoresde::app::reference::Reference;
use scoresde::data::Toy;
use scoresde::oracle::CheckerboardScore;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::sde::SdeConfig;

fn main() -> anyhow::Result<()> {
    let oracle = CheckerboardScore::new(&SdeConfig::by_name("vp")?)?;
    let sde = oracle.sde();
    let n = 10_000;
    let reference = Reference::new(Toy::Checkerboard, n, 1);
    println!("noise floor SWD {}", reference.floor);
    println!(
        "{:>6} {:>8} {:>20} {:>8} {:>10} {:>10}",
        "sampler", "steps", "SWD", "/floor", "in squares", "in box"
    );
    for spec in ["ddpm", "em"] {
        for steps in [10, 50, 200, 1000] {
            let out = sample(
                by_name(spec, steps)?.as_ref(),
                sde,
                &oracle,
                &SampleOptions::new(n, 0),
            )?;
            let q = reference.quality(Toy::Checkerboard, &out.samples);
            println!(
                "{spec:>6} {steps:>8} {:>20} {:>8.2} {:>9.1}% {:>9.1}%",
                q.swd.to_string(),
                q.swd.mean / reference.floor.mean,
                100.0 * q.in_support.unwrap_or(f64::NAN),
                100.0 * q.in_box.unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
