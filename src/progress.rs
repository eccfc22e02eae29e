//! Progress reporting without a terminal dependency: the library calls a
//! [`Progress`] callback, and the application decides how to show it (the
//! `scoresde` binary draws progress bars).

use std::fmt;
use std::sync::Arc;

/// A callback advanced by a count of finished work units (samples of a
/// sampler run). It is called from worker threads, so it is `Send + Sync`.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(u64) + Send + Sync>);

impl Progress {
    /// A callback that receives how many units just finished.
    pub fn new(f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }

    /// Report `n` more finished units.
    pub fn advance(&self, n: u64) {
        (self.0)(n)
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress(..)")
    }
}
