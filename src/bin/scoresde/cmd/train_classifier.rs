//! `scoresde train-classifier`: check the options and the output folder,
//! train the noise-conditional classifier, save it and print a summary.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use scoresde::checkpoint::classifier::{save_classifier, CLASSIFIER_FILE};
use scoresde::data::TrainData;
use scoresde::nn::noisy::NoisyConfig;
use scoresde::sde::SdeConfig;
use scoresde::train::noisy::{default_config, train_noisy_classifier, NoisyTraining};

use crate::args::TrainClassifierArgs;

pub(crate) fn run_train_classifier(a: TrainClassifierArgs) -> Result<()> {
    let opts = NoisyTraining {
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
    };
    opts.validate()?;
    let sde = SdeConfig::by_name(&a.sde)?;
    let data = TrainData::by_name(&a.data, None, None)?;
    let mut net = default_config(&data)?;
    match &mut net {
        NoisyConfig::Mlp { hidden, depth, .. } => {
            if let Some(w) = &a.widths {
                bail!(
                    "invalid widths = {}: expected no --widths: they set the image classifier's conv layers, and {} holds points",
                    join(w),
                    a.data
                );
            }
            *hidden = a.hidden.unwrap_or(*hidden);
            *depth = a.depth.unwrap_or(*depth);
        }
        NoisyConfig::Cnn { widths, .. } => {
            for (name, v) in [("hidden", a.hidden), ("depth", a.depth)] {
                if let Some(v) = v {
                    bail!(
                        "invalid {name} = {v}: expected no --{name}: it sets the point classifier's MLP, and {} holds images (use --widths)",
                        a.data
                    );
                }
            }
            if let Some(w) = &a.widths {
                *widths = w.clone();
            }
        }
    }
    net.validate()?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-classifier", a.data)));
    scoresde::fsutil::check_writable_dir("out", &out)?;
    let file = out.join(CLASSIFIER_FILE);
    if !a.force && std::fs::symlink_metadata(&file).is_ok() {
        bail!(
            "{} exists; pass --force to replace it or choose another --out",
            file.display()
        );
    }
    if let Some(p) = scoresde::checkpoint::existing_checkpoint_file(&out) {
        bail!(
            "{} holds a score-model checkpoint ({} exists); a classifier goes into a folder of its own",
            out.display(),
            p.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let _lock = scoresde::fsutil::lock_dir(&out)?;
    eprintln!(
        "training a noise-conditional classifier on {} ({} classes, {} SDE): {} steps, batch {}, lr {}",
        data.name(),
        net.classes(),
        sde.name(),
        opts.steps,
        opts.batch,
        opts.lr
    );
    let start = std::time::Instant::now();
    let every = (opts.steps / 10).max(1);
    let mut sum = (0.0, 0u64);
    let clf = train_noisy_classifier(&data, sde, net, &opts, |k, loss| {
        sum = (sum.0 + loss, sum.1 + 1);
        if (k + 1) % every == 0 {
            eprintln!(
                "step {:>7}  cross-entropy {:.4}",
                k + 1,
                sum.0 / sum.1 as f64
            );
            sum = (0.0, 0);
        }
    })?;
    save_classifier(&out, &clf)?;
    println!(
        "trained {} steps in {:.1} s, final cross-entropy {:.4}; classifier in {}",
        opts.steps,
        start.elapsed().as_secs_f64(),
        clf.config.final_loss,
        out.display()
    );
    Ok(())
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
