//! Toy data sets: the 2-D distributions of the FFJORD / score-SDE toy
//! experiments ([`Toy`]) and isotropic Gaussian mixtures with an exact density
//! ([`GaussianMixture`]); image sets ([`images`]); and the training-data
//! source over both ([`TrainData`]).
//!
//! Every draw is seeded per point: point `i` of `sample(n, seed)` comes from
//! the stream `rng::stream(seed, rng::domain::DATA, i)`, so the first `k`
//! points of a draw are the same for every `n >= k`, and a draw does not
//! depend on the thread count.

pub mod fingerprint;
pub mod images;
pub mod mixture;
pub mod source;
pub mod toy;

pub use mixture::GaussianMixture;
pub use source::{data_dir, TrainData};
pub use toy::Toy;
