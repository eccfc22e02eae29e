//! Train a score model on a toy 2-D data set and sample it with two samplers.
//!
//! ```sh
//! cargo run --release --example toy2d                 # two moons, 4000 steps
//! cargo run --release --example toy2d -- spirals 8000 # any toy set, any step count
//! ```
//!
//! Writes `outputs/examples/toy2d_<data>.png`.

use scoresde::data::Toy;
use scoresde::metrics;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::train::{train, TrainOptions};
use scoresde::viz::{scatter_panels, Panel, ScatterOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data = Toy::from_name(&args.next().unwrap_or_else(|| "moons".into()))?;
    let steps: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4000);

    // 1. Train: the docs/SPEC.md recipe (VP SDE, 3x256 MLP, Adam 1e-3, EMA 0.999), fewer steps.
    let mut opts = TrainOptions::spec(data);
    opts.steps = steps;
    opts.progress = true;
    let (model, summary) = train(&opts)?;
    println!(
        "trained {steps} steps in {:.1} s, loss {:.4}",
        summary.seconds, summary.final_loss
    );

    // 2. Sample with DDPM and reverse-SDE Euler–Maruyama from the same model.
    let reference = data.sample(5000, 123);
    let mut panels = vec![Panel {
        title: format!("data ({})", data.name()),
        caption: "5,000 points".into(),
        points: reference.view(),
    }];
    let mut outs = Vec::new();
    for spec in ["ddpm", "em"] {
        let sampler = by_name(spec, 250)?;
        let out = sample(
            sampler.as_ref(),
            model.sde(),
            &model,
            &SampleOptions::new(5000, 0),
        )?;
        let swd = metrics::swd(out.samples.view(), reference.view(), 256, 0);
        println!("{:>22}: NFE {}, SWD {swd:.4}", sampler.name(), out.nfe);
        outs.push((sampler.name(), swd, out.samples));
    }
    for (name, swd, x) in &outs {
        panels.push(Panel {
            title: name.clone(),
            caption: format!("SWD {swd:.4}"),
            points: x.view(),
        });
    }

    // 3. Picture.
    std::fs::create_dir_all("outputs/examples")?;
    let path = format!("outputs/examples/toy2d_{}.png", data.name());
    scatter_panels(path.as_ref(), &panels, &ScatterOptions::default())?;
    println!("wrote {path}");
    Ok(())
}
