//! Sample-quality metrics: sliced Wasserstein distance ([`swd()`]), kernel MMD
//! ([`mmd_rbf`]), energy distance ([`energy_distance`]), Gaussian-mixture
//! metrics ([`mixture_metrics`]) and a mean ± standard-error summary
//! ([`MeanSe`]).
//!
//! All metrics accumulate in f64 and are deterministic: parallel work is
//! split by index and reduced in index order, so results do not depend on the
//! thread count.

pub mod distance;
pub mod image;
pub mod mixture;
pub mod stats;
pub mod swd;

pub use distance::{energy_distance, median_bandwidth, mmd_rbf, mmd_rbf_with_bandwidth};
pub use mixture::{mixture_metrics, MixtureMetrics};
pub use stats::MeanSe;
pub use swd::{swd, wasserstein1_sorted};
