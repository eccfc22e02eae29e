//! Progress bars (indicatif) of the application. The library core reports
//! progress through [`TrainEvent`]s and [`Progress`] callbacks; these turn
//! them into bars on stderr.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Progress;
use crate::train::{self, TrainEvent};

/// A bar of `len` samples labelled `prefix` (right-aligned in `width`
/// columns) and the callback that advances it.
pub fn sample_bar(len: u64, prefix: String, width: usize) -> (ProgressBar, Progress) {
    let pb = ProgressBar::new(len);
    let template = format!("{{prefix:>{width}}} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}]");
    pb.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(prefix);
    let inc = pb.clone();
    (pb, Progress::new(move |n| inc.inc(n)))
}

/// The training bar: steps, loss and it/s. Without a terminal (a log file,
/// CI) the bar is invisible, so it also prints one line every 5% of the run.
#[derive(Default)]
pub struct TrainBar {
    pb: Option<ProgressBar>,
    log: bool,
}

impl TrainBar {
    pub fn new() -> Self {
        TrainBar::default()
    }

    /// Draw `event`.
    pub fn observe(&mut self, event: &TrainEvent) {
        match *event {
            TrainEvent::Started { step, total } => {
                let pb = ProgressBar::new(total);
                pb.set_style(
                    ProgressStyle::with_template(
                        "train {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                pb.set_position(step);
                self.pb = Some(pb);
                self.log = !std::io::stderr().is_terminal();
            }
            TrainEvent::Step { block_loss, .. } => {
                if let Some(loss) = block_loss {
                    if let Some(pb) = &self.pb {
                        pb.set_message(format!("loss {loss:.4}"));
                    }
                    if self.log {
                        train::log_lines(event);
                    }
                }
                if let Some(pb) = &self.pb {
                    pb.inc(1);
                }
            }
            TrainEvent::Failed => {
                if let Some(pb) = self.pb.take() {
                    pb.abandon();
                }
            }
            TrainEvent::Finished => {
                if let Some(pb) = self.pb.take() {
                    pb.finish_and_clear();
                }
            }
        }
    }
}
