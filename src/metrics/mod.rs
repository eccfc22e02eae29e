//! Sample-quality metrics: sliced Wasserstein distance ([`swd()`]), kernel MMD
//! ([`mmd_rbf`]), energy distance ([`energy_distance`]), Gaussian-mixture
//! metrics ([`mixture_metrics`]), unbiased KID ([`kid()`]), k-NN manifold
//! precision / recall ([`precision_recall()`]) and density / coverage
//! ([`density_coverage()`]), nearest-neighbour distance to a training set
//! ([`nearest`]), image metrics ([`image`]) and a mean ± standard-error
//! summary ([`MeanSe`]).
//!
//! All metrics accumulate in f64 and are deterministic: parallel work is
//! split by index and reduced in index order, so results do not depend on the
//! thread count.

pub mod density_coverage;
pub mod distance;
pub mod image;
pub mod kid;
pub mod knn;
pub mod mixture;
pub mod nearest;
pub mod precision_recall;
pub mod stats;
pub mod swd;

pub use density_coverage::{density_coverage, density_coverage_with, RealBalls, DC_K};
pub use distance::{energy_distance, median_bandwidth, mmd_rbf, mmd_rbf_with_bandwidth};
pub use kid::kid;
pub use mixture::{mixture_metrics, MixtureMetrics};
pub use precision_recall::{precision_recall, PR_K};
pub use stats::MeanSe;
pub use swd::{swd, wasserstein1_sorted};
