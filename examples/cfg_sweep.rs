//! Classifier-free guidance on a class-conditional image model: for each
//! guidance weight w, sample `n` images of every class and report how often
//! a judge agrees with the requested class (± its binomial standard error
//! √(p(1−p)/N)) and the Fréchet distance of all 10·n images to the
//! reference set with its floor (`scoresde eval`'s figures); writes a
//! 10 × 10 class grid (row k = class k) and the images (`samples_w*.npy`,
//! for `scoresde eval`) per w, `sweep.csv`, and the curves
//! `agreement.png` and `fd.png` against w.
//!
//! The judge: for `mnist`, the bundled MNIST classifier (its arg-max label);
//! for `digits`, which has no bundled classifier, a 5-nearest-neighbour vote
//! (L2) over the 1,797 digits, whose leave-one-out accuracy on the digits
//! themselves is printed first as its own error floor.
//!
//! The sampler is a spec as in `scoresde sample --sampler` (default
//! `dpm-solver++` at 25 steps, x̂0 clipped to [−1, 1]); w = 0 is plain
//! conditional sampling (one network call per step), w > 0 two calls.
//!
//! With a `CLASSIFIER_DIR` (from `scoresde train-classifier`) the sweep is of
//! classifier guidance instead: the model's own (unconditional) score plus
//! γ ∇ ln p_t(k | x) of the trained noise-conditional classifier, γ = w
//! (w = 0: unguided, where agreement is the share of class k in the
//! model's samples, ≈ 10%).
//!
//! ```text
//! cargo run --release --example cfg_sweep -- MODEL_DIR DATA OUT_DIR [N_PER_CLASS] [W,W,...] [SAMPLER] [STEPS] [CLASSIFIER_DIR]
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use ndarray::{Array2, Axis};
use scoresde::data::images::Split;
use scoresde::data::source::{data_dir, load_image_set};
use scoresde::guidance::{ClassifierFree, ClassifierGuidance, Condition, ConditionalScore};
use scoresde::imaging::{evaluate, grid_options};
use scoresde::model::ScoreModel;
use scoresde::nn::classifier::{argmax, Classifier};
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::{ClipX0, Score};
use scoresde::viz::lines::{line_plot, LinePlot, Series};

/// A judge: the class it sees in each row of a batch.
type Judge = Box<dyn Fn(&Array2<f32>) -> Vec<usize>>;

fn knn_judge() -> anyhow::Result<Judge> {
    let set = load_image_set("digits", Split::Train)?;
    let labels = set.labels.clone().context("digits have labels")?;
    let rows: Vec<Vec<f32>> = set.pixels.outer_iter().map(|r| r.to_vec()).collect();
    let vote = move |x: &[f32], skip: Option<usize>| -> usize {
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
    let loo = set
        .pixels
        .outer_iter()
        .enumerate()
        .filter(|(i, r)| {
            vote(r.as_slice().unwrap(), Some(*i)) == set.labels.as_ref().unwrap()[*i] as usize
        })
        .count();
    println!(
        "judge: 5-NN over the digits, leave-one-out accuracy {:.2}% ({loo}/{})",
        100.0 * loo as f64 / set.len() as f64,
        set.len()
    );
    Ok(Box::new(move |x: &Array2<f32>| {
        x.outer_iter()
            .map(|r| vote(r.as_slice().unwrap(), None))
            .collect()
    }))
}

fn classifier_judge() -> anyhow::Result<Judge> {
    let clf = Classifier::load(&data_dir().join("mnist-classifier.safetensors"))?;
    let test = load_image_set("mnist", Split::Test)?;
    let labels = test.labels.clone().context("MNIST has labels")?;
    let (p, _) = clf.predict(test.pixels.view());
    let right = p
        .outer_iter()
        .zip(&labels)
        .filter(|(r, &l)| argmax(r.as_slice().unwrap()) == l as usize)
        .count();
    println!(
        "judge: the bundled MNIST classifier, test accuracy {:.2}% ({right}/{})",
        100.0 * right as f64 / labels.len() as f64,
        labels.len()
    );
    Ok(Box::new(move |x: &Array2<f32>| {
        let (p, _) = clf.predict(x.view());
        p.outer_iter()
            .map(|r| argmax(r.as_slice().unwrap()))
            .collect()
    }))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: cfg_sweep MODEL_DIR digits|mnist OUT_DIR [N_PER_CLASS] [W,W,...] [SAMPLER] [STEPS]");
    }
    let model = ScoreModel::load(&PathBuf::from(&args[1]))?;
    let data = args[2].as_str();
    let out = PathBuf::from(&args[3]);
    std::fs::create_dir_all(&out)?;
    let n: usize = args.get(4).map_or(Ok(50), |s| s.parse())?;
    let ws: Vec<f64> = args
        .get(5)
        .map_or("0,0.5,1,2,4", |s| s.as_str())
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let spec = args.get(6).map_or("dpm-solver++", |s| s.as_str());
    let steps: usize = args.get(7).map_or(Ok(25), |s| s.parse())?;
    let classifier = args
        .get(8)
        .map(|d| scoresde::checkpoint::classifier::load_classifier(&PathBuf::from(d)))
        .transpose()?;
    let judge = match data {
        "digits" => knn_judge()?,
        "mnist" => classifier_judge()?,
        _ => bail!("data {data:?}: one of digits, mnist"),
    };
    let shape = scoresde::imaging::image_shape_of(&model.config)
        .context("the model is not an image model")?;
    let sampler = by_name(spec, steps)?;
    let sde = model.sde();
    let mut csv = String::from("w,agreement,agreement_se,fd,fd_floor,fd_ratio,nfe_per_image\n");
    let (mut agree_pts, mut agree_err, mut fd_pts) = (vec![], vec![], vec![]);
    let mut floor = f64::NAN;
    println!("| w | agreement | per class (%) | FD | FD / floor |");
    println!("|---|---|---|---|---|");
    for &w in &ws {
        let mut agree = 0;
        let mut per = Vec::new();
        let mut all: Vec<Array2<f32>> = Vec::new();
        let mut evals = 0u64;
        for k in 0..10 {
            let cfg;
            let cond;
            let cg;
            let s: &dyn Score = if let Some(clf) = &classifier {
                cg = ClassifierGuidance::new(&model, clf, k, w)?;
                &cg
            } else if w == 0.0 {
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
            evals += o.nfe as u64;
            let a = judge(&o.samples).iter().filter(|&&j| j == k).count();
            agree += a;
            per.push(format!("{:.0}", 100.0 * a as f64 / n as f64));
            all.push(o.samples);
        }
        let views: Vec<_> = all.iter().map(|a| a.view()).collect();
        let x = ndarray::concatenate(Axis(0), &views)?;
        let report = evaluate(x.view(), data)?;
        floor = report.fd_floor;
        let total = 10 * n;
        let p = agree as f64 / total as f64;
        let se = (p * (1.0 - p) / total as f64).sqrt();
        println!(
            "| {w} | {:.1} ± {:.1}% | {} | {:.3} | {:.3} |",
            100.0 * p,
            100.0 * se,
            per.join(" "),
            report.fd,
            report.fd / report.fd_floor
        );
        let nfe = evals as f64 / 10.0;
        csv.push_str(&format!(
            "{w},{p},{se},{},{},{},{nfe}\n",
            report.fd,
            report.fd_floor,
            report.fd / report.fd_floor
        ));
        agree_pts.push((w, 100.0 * p));
        agree_err.push(100.0 * se);
        fd_pts.push((w, report.fd));
        scoresde::npy::write(out.join(format!("samples_w{w}.npy")), x.view())?;
        // The class grid: the first 10 images of each class, one row each.
        let rows: Vec<usize> = (0..10)
            .flat_map(|k| (0..n.min(10)).map(move |j| k * n + j))
            .collect();
        let g = x.select(Axis(0), &rows);
        let mut opts = grid_options(shape.0, shape.1, shape.2);
        opts.cols = n.min(10);
        scoresde::viz::grid::image_grid_png(
            &out.join(format!("classes_w{w}.png")),
            g.view(),
            &opts,
        )?;
    }
    scoresde::fsutil::write_atomic(&out.join("sweep.csv"), csv.as_bytes())?;
    let (kind, x_label) = if classifier.is_some() {
        (
            "classifier guidance, trained classifier",
            "classifier scale γ",
        )
    } else {
        ("classifier-free guidance", "guidance weight w")
    };
    let title = format!("{data}: {kind} ({spec}, {steps} steps, {n} per class)");
    line_plot(
        &out.join("agreement.png"),
        &LinePlot {
            title: title.clone(),
            x_label: x_label.into(),
            y_label: "judge agrees with the requested class (%, ± SE)".into(),
            series: vec![Series {
                name: String::new(),
                points: agree_pts,
                err: Some(agree_err),
            }],
            ..LinePlot::default()
        },
    )?;
    line_plot(
        &out.join("fd.png"),
        &LinePlot {
            title,
            x_label: x_label.into(),
            y_label: "Fréchet distance".into(),
            series: vec![Series {
                name: "FD, all classes".into(),
                points: fd_pts,
                err: None,
            }],
            hline: Some((floor, "floor (training images)".into())),
            ..LinePlot::default()
        },
    )?;
    println!(
        "wrote {}/{{sweep.csv,agreement.png,fd.png,classes_w*.png}}",
        out.display()
    );
    Ok(())
}
