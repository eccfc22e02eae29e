//! Driving a [`Trainer`] to its step count: checkpoints and previews on
//! schedule, the loss curve and summary, progress as [`TrainEvent`]s, and
//! the hints of a non-finite failure.

use std::time::Instant;

use super::checkpoint;
use super::{OnNonFinite, TrainOptions, TrainSummary, Trainer};
use crate::error::{Error, Result};
use crate::model::ScoreModel;

/// Where the last good checkpoint is, for error messages.
/// [`OnNonFinite::Skip`] is suggested only for a skippable failure of a
/// run that does not already skip. The advice names settings as
/// [`ADVICE_LR`] and [`ADVICE_SKIP`], which a front end may spell as its
/// own options.
fn checkpoint_hint(opts: &TrainOptions, last_saved: Option<u64>, skippable: bool) -> String {
    let advice = if skippable && opts.on_nonfinite == OnNonFinite::Stop {
        format!("{ADVICE_LR}, or {ADVICE_SKIP}")
    } else {
        ADVICE_LR.to_string()
    };
    match (&opts.out_dir, last_saved) {
        (Some(dir), Some(step)) => format!(
            "the last good checkpoint (step {step}) is in {}; {advice}",
            dir.display()
        ),
        (Some(dir), None) => match checkpoint::read_manifest(dir) {
            Ok(m) => format!(
                "the checkpoint in {} (step {}) is untouched; {advice}",
                dir.display(),
                m.step
            ),
            Err(_) => format!("no checkpoint was written yet; {advice}"),
        },
        (None, _) => advice,
    }
}

/// What a run reports while it trains (to the observer of [`run_with`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrainEvent {
    /// The run starts at step `step` (0, or a resumed checkpoint's step)
    /// and trains up to `total`.
    Started { step: u64, total: u64 },
    /// Step `step` of `total` is done. At the end of every block of
    /// `total / 100` steps (and at the last step) `block_loss` is the
    /// block's mean loss; `seconds` is the wall time since the start.
    Step {
        step: u64,
        total: u64,
        start_step: u64,
        block_loss: Option<f64>,
        seconds: f64,
    },
    /// The run stops on a non-finite loss, gradient or weight.
    Failed,
    /// The run reached `total`.
    Finished,
}

/// The observer of [`run_trainer`] and [`train`](super::train) when `opts.progress` is
/// set: one line to stderr every 5% of the run.
pub fn log_lines(event: &TrainEvent) {
    if let TrainEvent::Step {
        step,
        total,
        start_step,
        block_loss: Some(loss),
        seconds,
    } = *event
    {
        let every = (total / 20).max(1);
        if step.is_multiple_of(every) || step == total {
            eprintln!(
                "step {step}/{total} loss {loss:.4} {:.2} it/s {seconds:.0} s",
                (step - start_step) as f64 / seconds.max(1e-9),
            );
        }
    }
}

/// The advice of a non-finite failure: a lower learning rate.
pub const ADVICE_LR: &str = "lower the learning rate (lr)";
/// The advice of a skippable non-finite failure: skip such batches.
pub const ADVICE_SKIP: &str = "set on-nonfinite = skip to skip such batches";

/// Drive `trainer` to `opts.steps`, checkpointing every `checkpoint_every`
/// steps and at the end.
pub fn run_trainer(trainer: Trainer) -> Result<(ScoreModel, TrainSummary)> {
    run(trainer)
}

/// [`run_trainer`], reporting every step to `observer`.
pub fn run_with(
    trainer: Trainer,
    observer: &mut dyn FnMut(&TrainEvent),
) -> Result<(ScoreModel, TrainSummary)> {
    drive(trainer, observer)
}

pub(super) fn run(trainer: Trainer) -> Result<(ScoreModel, TrainSummary)> {
    if trainer.opts.progress {
        drive(trainer, &mut log_lines)
    } else {
        drive(trainer, &mut |_| {})
    }
}

fn drive(
    mut trainer: Trainer,
    observer: &mut dyn FnMut(&TrainEvent),
) -> Result<(ScoreModel, TrainSummary)> {
    let opts = trainer.opts.clone();
    let start_step = trainer.step;
    observer(&TrainEvent::Started {
        step: start_step,
        total: opts.steps,
    });
    let start = Instant::now();
    let block = (opts.steps / 100).max(1);
    let (mut block_sum, mut block_n) = (0.0, 0u64);
    let mut curve = Vec::new();
    let mut recent = std::collections::VecDeque::with_capacity(200);
    let (mut skipped, mut last_saved) = (0u64, None);
    while trainer.step < opts.steps {
        match trainer.train_step() {
            Ok(loss) => {
                block_sum += loss;
                block_n += 1;
                if recent.len() == 200 {
                    recent.pop_front();
                }
                recent.push_back(loss);
            }
            Err(Error::NonFinite { step, what, hint }) => {
                let skippable = hint.is_empty();
                if skippable && opts.on_nonfinite == OnNonFinite::Skip {
                    trainer.step += 1;
                    skipped += 1;
                } else {
                    observer(&TrainEvent::Failed);
                    let hint = if skippable {
                        checkpoint_hint(&opts, last_saved, true)
                    } else {
                        format!("{hint}; {}", checkpoint_hint(&opts, last_saved, false))
                    };
                    return Err(Error::NonFinite { step, what, hint });
                }
            }
            Err(e) => return Err(e),
        }
        let mut block_loss = None;
        if (trainer.step.is_multiple_of(block) || trainer.step == opts.steps) && block_n > 0 {
            let mean = block_sum / block_n as f64;
            curve.push((trainer.step, mean));
            block_loss = Some(mean);
            (block_sum, block_n) = (0.0, 0);
        }
        observer(&TrainEvent::Step {
            step: trainer.step,
            total: opts.steps,
            start_step,
            block_loss,
            seconds: start.elapsed().as_secs_f64(),
        });
        if let Some(dir) = &opts.out_dir {
            if trainer.step.is_multiple_of(opts.checkpoint_every) || trainer.step == opts.steps {
                trainer.save_checkpoint(dir)?;
                last_saved = Some(trainer.step);
            }
            let due = opts.sample_every > 0
                && (trainer.step.is_multiple_of(opts.sample_every) || trainer.step == opts.steps);
            if due && opts.data.image_shape().is_some() {
                trainer.write_preview(dir)?;
            }
        }
    }
    observer(&TrainEvent::Finished);
    let seconds = start.elapsed().as_secs_f64();
    let summary = TrainSummary {
        final_loss: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        seconds,
        steps_per_sec: (opts.steps - start_step) as f64 / seconds.max(1e-9),
        loss_curve: curve,
        start_step,
        skipped,
    };
    Ok((trainer.ema_model()?, summary))
}
