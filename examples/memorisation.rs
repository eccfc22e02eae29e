//! What memorisation looks like, measured: the empirical-score oracle
//! (the exact score of the training set's empirical distribution, see
//! `scoresde::oracle::EmpiricalScore`) against held-out real images and,
//! optionally, a trained model.
//!
//! The 8x8 digits are split into 1,500 training and 297 held-out images.
//! For each set of 64 images we print the mean and minimum L2 distance to
//! the nearest training image (pixels in [−1, 1], 64 dimensions):
//!
//! - held-out real digits: what a model that generalises should look like;
//! - the empirical oracle with DDIM (deterministic) and DDPM: it can only
//!   reproduce training images, so its distances go to ~0 as the sampler
//!   converges (DDPM at few steps stops short of the data);
//! - `--model DIR`: a model trained on `digits` (e.g. `scoresde train --data
//!   digits`), sampled with DDPM. It saw all 1,797 digits, so a few of the
//!   held-out ones are in its training set; the distances are still to the
//!   1,500-image split.
//!
//! It also writes `outputs/images/digits_empirical.png` (DDIM-100 samples of
//! the oracle: training digits, copied).
//!
//! ```sh
//! cargo run --release --example memorisation [-- --model runs/digits]
//! ```
use std::path::Path;

use ndarray::{s, ArrayView2};
use scoresde::data::images::Split;
use scoresde::data::source::load_image_set;
use scoresde::metrics::image::nearest_neighbor_l2;
use scoresde::model::ScoreModel;
use scoresde::oracle::EmpiricalScore;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::sde::SdeConfig;
use scoresde::viz::grid::{image_grid_png, GridOptions};

const TRAIN: usize = 1500;
const N: usize = 64;

fn report(label: &str, x: ArrayView2<f32>, train: ArrayView2<f32>) {
    let d = nearest_neighbor_l2(x, train);
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let min = d.iter().copied().fold(f64::INFINITY, f64::min);
    println!("{label:<40} {mean:>10.3} {min:>10.3}");
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model_dir = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1));
    let digits = load_image_set("digits", Split::Train)?;
    let train = digits.pixels.slice(s![..TRAIN, ..]);
    let held_out = digits.pixels.slice(s![TRAIN..TRAIN + N, ..]);
    let oracle = EmpiricalScore::new(train, &SdeConfig::by_name("vp")?)?;

    println!(
        "{:<40} {:>10} {:>10}",
        "64 images", "mean NN L2", "min NN L2"
    );
    report("held-out real digits", held_out, train);
    for (spec, steps) in [("ddim", 20), ("ddim", 100), ("ddpm", 100), ("ddpm", 1000)] {
        let out = sample(
            by_name(spec, steps)?.as_ref(),
            oracle.sde(),
            &oracle,
            &SampleOptions::new(N, 0),
        )?;
        report(
            &format!("empirical oracle, {spec}-{steps}"),
            out.samples.view(),
            train,
        );
        if (spec, steps) == ("ddim", 100) {
            let path = Path::new("outputs/images/digits_empirical.png");
            let mut grid = GridOptions::new(1, 8, 8);
            grid.scale = 8;
            image_grid_png(path, out.samples.view(), &grid)?;
        }
    }
    if let Some(dir) = model_dir {
        let model = ScoreModel::load(Path::new(dir))?;
        let out = sample(
            by_name("ddpm", 1000)?.as_ref(),
            model.sde(),
            &model,
            &SampleOptions::new(N, 0),
        )?;
        report(
            &format!("model {dir}, ddpm-1000"),
            out.samples.view(),
            train,
        );
    }
    Ok(())
}
