//! # scoresde
//!
//! Score-based diffusion models in pure Rust: denoising score matching (DSM)
//! training of a score network s(x,t) ≈ ∇ log p_t(x), and the samplers that
//! draw from it (DDPM ancestral, reverse-SDE Euler–Maruyama, ...).
//!
//! The design has two traits: [`sde::Sde`] (the forward noise process) and
//! [`score::Score`] (anything that gives a score: a trained network or an exact
//! oracle). Every sampler takes one of each and returns samples plus the
//! number of model evaluations it used.
//!
//! Most programs need only the [`prelude`]:
//!
//! ```no_run
//! use scoresde::prelude::*;
//!
//! # fn main() -> scoresde::Result<()> {
//! let sde = VpSde::default();
//! let score = GaussianScore { sde, mu: vec![1.0, -2.0], s: 0.5 };
//! let sampler = by_name("em", 100)?;
//! let out = sample(sampler.as_ref(), &sde, &score, &SampleOptions::new(1000, 0))?;
//! assert_eq!(out.samples.dim(), (1000, 2));
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! Library core (no module here imports the application layer):
//!
//! - [`sde`], [`score`]: the two traits, the VP / sub-VP / VE / linear
//!   processes, the exact Gaussian score; [`convert`]: ε, x0, v, score and
//!   velocity into one another.
//! - [`samplers`]: the sampler driver and one file per sampler family;
//!   [`dopri5`]: the adaptive ODE integrator they and [`likelihood`] share.
//! - [`nn`]: the networks (MLP, U-Net, classifier) behind one `Network`
//!   trait, Adam, EMA; [`backend`]: the GEMM, its AVX-512 kernel, packing and
//!   SIMD dispatch they run on; [`tensors`]: named tensors and safetensors I/O.
//! - [`model`], [`checkpoint`], [`train`]: a trained network bound to its
//!   SDE, its on-disk format, and the DSM training loop (reporting events,
//!   drawing nothing).
//! - [`oracle`]: exact scores that need no training, and their exact
//!   conditionals.
//! - [`guidance`]: conditioning as `Score` adapters (classifier-free and
//!   classifier guidance, inpainting by replacement), and the RePaint driver.
//! - [`data`], [`metrics`]: toy and image data sets; sample-quality metrics.
//! - [`rng`], [`npy`], [`fsutil`], [`limits`], [`error`], [`report`],
//!   [`viz`]: seeds, `.npy` files, crash-safe file writes, size caps,
//!   errors, tables and figures.
//!
//! Application layer (orchestration the binary calls; uses the core):
//! [`app`] (demo, compare, image presets, option resolution, progress bars),
//! [`imaging`] (sample grids, `eval`), [`schedule_opt`] (optimised time
//! grids); the CLI itself is `src/bin/scoresde/`.
//!
//! The reference workload the defaults and benchmarks follow is specified
//! in `docs/SPEC.md`.

pub mod app;
pub mod backend;
pub mod checkpoint;
pub mod convert;
pub mod data;
pub mod dopri5;
pub mod error;
pub mod fsutil;
pub mod guidance;
pub mod imaging;
pub mod likelihood;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod npy;
pub mod oracle;
pub mod progress;
pub mod report;
pub mod rng;
pub mod samplers;
pub mod schedule_opt;
pub mod score;
pub mod sde;
pub mod tensors;
pub mod train;
pub mod viz;

pub use error::{Error, Result};

pub mod prelude {
    //! The types most programs need, in one import: `use scoresde::prelude::*;`.
    //!
    //! - processes and scores: [`Sde`], [`SdeConfig`], [`VpSde`], [`SubVpSde`],
    //!   [`VeSde`], [`Score`], [`GaussianScore`], [`ClipX0`];
    //! - sampling: [`by_name`], [`sample`], [`SampleOptions`], [`SampleOutput`],
    //!   [`Sampler`], [`Schedule`];
    //! - a trained model and training: [`ScoreModel`], [`TrainOptions`],
    //!   [`Trainer`], [`run_trainer`];
    //! - exact-score oracles: [`CheckerboardScore`], [`MixtureScore`],
    //!   [`EmpiricalScore`];
    //! - data: [`Toy`], [`GaussianMixture`], [`TrainData`];
    //! - metrics: [`swd()`], [`mmd_rbf`], [`energy_distance`],
    //!   [`mixture_metrics`], [`MeanSe`];
    //! - errors: [`Error`], [`Result`].

    pub use crate::data::{GaussianMixture, Toy, TrainData};
    pub use crate::error::{Error, Result};
    pub use crate::metrics::{energy_distance, mixture_metrics, mmd_rbf, swd, MeanSe};
    pub use crate::model::ScoreModel;
    pub use crate::oracle::{CheckerboardScore, EmpiricalScore, MixtureScore};
    pub use crate::samplers::{by_name, sample, SampleOptions, SampleOutput, Sampler, Schedule};
    pub use crate::score::{ClipX0, GaussianScore, Score};
    pub use crate::sde::{Sde, SdeConfig, SubVpSde, VeSde, VpSde};
    pub use crate::train::{run_trainer, TrainOptions, Trainer};
}
