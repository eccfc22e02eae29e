//! `scoresde train`: resolve the options, load a resumed run, guard the
//! output folder, train with a progress bar and print the summary.

use std::path::Path;

use anyhow::{bail, Context, Result};

use scoresde::app::bars::TrainBar;
use scoresde::app::options::{
    self, DataRequest, HyperRequest, NetRequest, RunRequest, TrainRequest,
};
use scoresde::train::checkpoint;
use scoresde::train::{self, OnNonFinite};

use crate::args::TrainArgs;

pub(crate) fn run_train(a: TrainArgs) -> Result<()> {
    let on_nonfinite = OnNonFinite::from_name(&a.on_nonfinite)?;
    let mut resume_lock = None;
    // With --resume, unspecified options come from the checkpoint.
    let resume = match &a.resume {
        None => None,
        Some(dir) => {
            if let Some(out) = &a.out {
                if out != dir {
                    bail!(
                        "invalid out = {}: expected the --resume directory {} (a run resumes in place)",
                        out.display(),
                        dir.display()
                    );
                }
            }
            // Lock before loading: a run still writing here must not be read
            // half-saved, nor resumed twice.
            checkpoint::read_manifest(dir).or_else(|e| {
                checkpoint::read_manifest(&dir.join(checkpoint::PREV_DIR)).map_err(|_| e)
            })?;
            resume_lock = Some(scoresde::fsutil::lock_dir(dir)?);
            let (ckpt, skipped) = checkpoint::load_latest(dir)?;
            if let Some(why) = skipped {
                eprintln!(
                    "warning: resuming from {} because the newest save is unusable: {why}",
                    ckpt.dir.display()
                );
            }
            Some(ckpt)
        }
    };
    let request = TrainRequest {
        data: DataRequest {
            name: a.data.clone(),
            image_size: a.image_size,
            channels: a.channels,
        },
        net: NetRequest {
            kind: a.net.clone(),
            widths: a.widths.clone(),
            res_blocks: a.res_blocks,
            attention: a.attention.clone(),
            attn_heads: a.attn_heads,
            dropout: a.dropout,
            hidden: a.hidden,
            depth: a.depth,
            fourier: a.fourier.clone(),
        },
        hyper: HyperRequest {
            steps: a.steps,
            batch: a.batch,
            lr: a.lr,
            ema: a.ema,
            seed: a.seed,
            recipe: a.recipe.clone(),
            target: a.target.clone(),
            flip: a.flip.then_some(true),
            conditional: a.conditional,
            label_dropout: a.label_dropout,
        },
        run: RunRequest {
            sde: a.sde.clone(),
            sample_every: a.sample_every,
            checkpoint_every: Some(a.checkpoint_every),
            on_nonfinite: Some(on_nonfinite),
        },
        out: a.out.clone(),
        resume: a.resume.clone(),
    };
    let opts = options::resolve_train(&request, resume.as_ref())?;
    let out = opts.out_dir.clone().expect("a resolved run has a folder");
    let steps = opts.steps;
    // Every check before any work starts; the folder is created only then.
    opts.validate()?;
    scoresde::fsutil::check_writable_dir("out", &out)?;
    let refuse_existing = |out: &Path| -> Result<()> {
        if resume.is_some() || a.force {
            return Ok(());
        }
        if let Some(p) = checkpoint::existing_checkpoint_file(out) {
            let what = match checkpoint::read_manifest(out) {
                Ok(m) => format!("already holds a checkpoint (step {})", m.step),
                Err(_) => format!("holds (part of) a checkpoint: {} exists", p.display()),
            };
            bail!(
                "{} {what}; pass --resume {} to continue it, --force to start over, or choose another --out",
                out.display(),
                out.display()
            );
        }
        Ok(())
    };
    refuse_existing(&out)?;
    let created = !out.exists();
    let _lock = match resume_lock {
        Some(l) => l,
        None => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let l = scoresde::fsutil::lock_dir(&out)?;
            // Under the lock: a concurrent run may have saved meanwhile.
            refuse_existing(&out)?;
            l
        }
    };
    // Build the run first: a resumed one checks its data, network and
    // settings against the checkpoint before anything is printed.
    let trainer = match resume {
        Some(ckpt) => train::Trainer::resume(opts.clone(), ckpt)?,
        None => train::Trainer::new(opts.clone())?,
    };
    if let Some((c, h, w)) = opts.data.image_shape() {
        eprintln!(
            "training a {} ({} parameters) on {} ({c}x{h}x{w} images): {} steps, batch {}, lr {}",
            opts.net.kind(),
            opts.net.num_params().unwrap_or(0),
            opts.data.name(),
            opts.steps,
            opts.batch,
            opts.lr
        );
    }
    let mut bar = TrainBar::new();
    let (_, summary) = train::run_with(trainer, &mut |e| bar.observe(e)).inspect_err(|_| {
        if created {
            // A run that failed before its first save leaves no empty
            // folder behind (remove_dir only removes an empty one).
            let _ = std::fs::remove_dir(&out);
        }
    })?;
    println!(
        "trained steps {}..{} in {:.1} s ({:.1} steps/s), final loss {:.4}{}; checkpoint in {}",
        summary.start_step,
        steps,
        summary.seconds,
        summary.steps_per_sec,
        summary.final_loss,
        if summary.skipped > 0 {
            format!(", {} non-finite steps skipped", summary.skipped)
        } else {
            String::new()
        },
        out.display()
    );
    Ok(())
}
