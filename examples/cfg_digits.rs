//! Classifier-free guidance on a class-conditional digits model: for each
//! guidance weight w, sample every class and report how often a judge
//! classifier agrees with the requested class; writes a 10 × 10 class grid
//! (row k = class k) at each w.
//!
//! The judge: there is no bundled digits classifier, so a 5-nearest-
//! neighbour vote (L2) over the 1,797 digits; its leave-one-out accuracy on
//! the digits themselves is printed first as its own error floor.
//!
//! ```text
//! cargo run --release --example cfg_digits -- MODEL_DIR OUT_DIR [N_PER_CLASS] [W,W,...]
//! ```

use std::path::PathBuf;

use scoresde::data::images::Split;
use scoresde::data::source::load_image_set;
use scoresde::guidance::{ClassifierFree, Condition, ConditionalScore};
use scoresde::model::ScoreModel;
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::{ClipX0, Score};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        anyhow::bail!("usage: cfg_digits MODEL_DIR OUT_DIR [N_PER_CLASS] [W,W,...]");
    }
    let model = ScoreModel::load(&PathBuf::from(&args[1]))?;
    let out = PathBuf::from(&args[2]);
    std::fs::create_dir_all(&out)?;
    let n: usize = args.get(3).map_or(Ok(50), |s| s.parse())?;
    let ws: Vec<f64> = args
        .get(4)
        .map_or("0,0.5,1,2,4".to_string(), |s| s.clone())
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let set = load_image_set("digits", Split::Train)?;
    let labels = set.labels.clone().expect("digits have labels");
    let rows: Vec<Vec<f32>> = set.pixels.outer_iter().map(|r| r.to_vec()).collect();
    let knn = |x: &[f32], skip: Option<usize>| -> usize {
        let mut d: Vec<(f64, usize)> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(i, r)| {
                let s: f64 = r.iter().zip(x).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
                (s, i)
            })
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut votes = [0usize; 10];
        for &(_, i) in &d[..5] {
            votes[labels[i] as usize] += 1;
        }
        (0..10).max_by_key(|&k| (votes[k], usize::MAX - k)).unwrap()
    };
    let loo = (0..rows.len())
        .filter(|&i| knn(&rows[i], Some(i)) == labels[i] as usize)
        .count();
    println!(
        "judge: 5-NN over the digits, leave-one-out accuracy {:.2}% ({loo}/{})",
        100.0 * loo as f64 / rows.len() as f64,
        rows.len()
    );
    let sampler = by_name("ddpm", 200)?;
    let sde = model.sde();
    println!("| w | agreement | per class |");
    println!("|---|---|---|");
    for &w in &ws {
        let mut agree = 0;
        let mut per = Vec::new();
        let mut grid = Vec::new();
        for k in 0..10 {
            let cfg;
            let cond;
            let s: &dyn Score = if w == 0.0 {
                cond = model.with_condition(Condition::Class(k))?;
                cond.as_ref()
            } else {
                cfg = ClassifierFree::new(&model, k, w, None, sde)?;
                &cfg
            };
            let clipped = ClipX0 {
                inner: s,
                sde,
                clip: 1.0,
            };
            let o = sample(
                sampler.as_ref(),
                sde,
                &clipped,
                &SampleOptions::new(n, k as u64),
            )?;
            let a = o
                .samples
                .outer_iter()
                .filter(|r| knn(r.as_slice().unwrap(), None) == k)
                .count();
            agree += a;
            per.push(format!("{:.0}", 100.0 * a as f64 / n as f64));
            grid.extend(o.samples.outer_iter().take(10).flat_map(|r| r.to_vec()));
        }
        println!(
            "| {w} | {:.1}% | {} |",
            100.0 * agree as f64 / (10 * n) as f64,
            per.join(" ")
        );
        let g = ndarray::Array2::from_shape_vec((grid.len() / 64, 64), grid)?;
        let mut opts = scoresde::viz::grid::GridOptions::new(1, 8, 8);
        opts.cols = 10;
        scoresde::viz::grid::image_grid_png(
            &out.join(format!("classes_w{w}.png")),
            g.view(),
            &opts,
        )?;
    }
    Ok(())
}
