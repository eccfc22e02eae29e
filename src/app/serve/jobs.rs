//! The job table of `scoresde serve`: admission under the concurrent-job
//! limit, progress counters, cancellation and the time limit.
//!
//! A job runs on tokio's blocking thread pool (the samplers themselves use
//! rayon). Cancelling sets a flag that [`Cancellable`] checks on every
//! score evaluation: from then on the score is 0, so the sampler's
//! remaining steps cost almost nothing and the job ends soon; its results
//! are discarded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::{ArrayView2, ArrayViewMut2};
use serde::Serialize;

use super::run::JobResult;
use crate::score::Score;

/// Finished jobs kept for polling; older ones are forgotten.
pub const KEEP_FINISHED: usize = 16;

/// Where a job is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// One job: its counters, its cancel flag and, once finished, its outcome.
pub struct Job {
    pub id: u64,
    cancel: AtomicBool,
    /// Samples finished, over all samplers.
    pub done: AtomicU64,
    /// Samples to draw: n × samplers.
    pub total: u64,
    started: Instant,
    deadline: Instant,
    outcome: Mutex<(State, Option<Arc<JobResult>>, Option<String>)>,
}

/// What `GET /api/jobs/{id}` returns.
#[derive(Serialize)]
pub struct Status {
    pub id: u64,
    pub state: State,
    pub done: u64,
    pub total: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Arc<JobResult>>,
}

impl Job {
    /// Ask the job to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether it was cancelled or ran out of time (checked between steps).
    pub fn stopped(&self) -> bool {
        if !self.cancel.load(Ordering::Relaxed) && Instant::now() > self.deadline {
            self.cancel.store(true, Ordering::Relaxed);
        }
        self.cancel.load(Ordering::Relaxed)
    }

    /// Whether the time limit (not a cancel request) stopped it.
    pub fn timed_out(&self) -> bool {
        Instant::now() > self.deadline
    }

    /// Record the outcome.
    pub fn finish(&self, state: State, result: Option<JobResult>, error: Option<String>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) =
            (state, result.map(Arc::new), error);
    }

    pub fn state(&self) -> State {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Current status, with the result once done.
    pub fn status(&self) -> Status {
        let (state, result, error) = self
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Status {
            id: self.id,
            state,
            done: self.done.load(Ordering::Relaxed).min(self.total),
            total: self.total,
            seconds: self.started.elapsed().as_secs_f64(),
            error,
            result,
        }
    }
}

/// Every job the server knows, with the limit on running ones.
pub struct Jobs {
    max_running: usize,
    max_seconds: u64,
    table: Mutex<(u64, BTreeMap<u64, Arc<Job>>)>,
}

impl Jobs {
    pub fn new(max_running: usize, max_seconds: u64) -> Self {
        Jobs {
            max_running,
            max_seconds,
            table: Mutex::new((1, BTreeMap::new())),
        }
    }

    /// A new running job of `total` samples, or the refusal's text when
    /// `max_running` jobs are already running.
    pub fn admit(&self, total: u64) -> Result<Arc<Job>, String> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let running = t.1.values().filter(|j| j.state() == State::Running).count();
        if running >= self.max_running {
            return Err(format!(
                "{running} jobs are running, the limit is {}: wait for one to finish or cancel it",
                self.max_running
            ));
        }
        // Forget the oldest finished jobs beyond KEEP_FINISHED.
        let finished: Vec<u64> =
            t.1.values()
                .filter(|j| j.state() != State::Running)
                .map(|j| j.id)
                .collect();
        for id in finished
            .iter()
            .take(finished.len().saturating_sub(KEEP_FINISHED))
        {
            t.1.remove(id);
        }
        let id = t.0;
        t.0 += 1;
        let now = Instant::now();
        let job = Arc::new(Job {
            id,
            cancel: AtomicBool::new(false),
            done: AtomicU64::new(0),
            total,
            started: now,
            deadline: now + std::time::Duration::from_secs(self.max_seconds),
            outcome: Mutex::new((State::Running, None, None)),
        });
        t.1.insert(id, job.clone());
        Ok(job)
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .get(&id)
            .cloned()
    }
}

/// A score that turns into 0 once its job is stopped, so a cancelled
/// sampler finishes its remaining steps at almost no cost. Until then it is
/// the inner score, bit for bit.
pub struct Cancellable<'a> {
    pub inner: &'a dyn Score,
    pub job: &'a Job,
}

impl Score for Cancellable<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        if self.job.stopped() {
            out.fill(0.0);
        } else {
            self.inner.score(x, t, out);
        }
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
