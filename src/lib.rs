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

pub mod backend;
pub mod checkpoint;
pub mod compare;
pub mod data;
pub mod demo;
pub mod dopri5;
pub mod error;
pub mod fsutil;
pub mod imaging;
pub mod likelihood;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod npy;
pub mod oracle;
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
