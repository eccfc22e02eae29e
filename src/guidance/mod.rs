//! Conditional and controllable generation as [`Score`] adapters.
//!
//! A condition never reaches a sampler: a conditional score is asked for
//! its score *given* a condition ([`ConditionalScore::with_condition`]),
//! which returns an ordinary [`Score`], and guidance is a `Score` that wraps
//! others. So every sampler and schedule works unchanged, and the NFE a
//! sampler reports counts every network call through [`Score::evals`].
//!
//! * [`ClassifierFree`] (`cfg.rs`): ε = (1 + w) ε(x, y) − w ε(x, ∅), with an
//!   optional guidance interval of noise levels outside which only the
//!   conditional pass runs.
//! * [`ClassifierGuidance`] (`classifier.rs`): s(x, t | y) = s(x, t) + γ ∇_x ln p_t(y | x).
//! * [`Replacement`] (`replacement.rs`): inpainting / imputation for any
//!   sampler: the known coordinates follow the exact reverse process of their
//!   observed values, the unknown ones the wrapped score at the joint state.
//! * [`repaint`] (`repaint.rs`): score_sde's re-noising replacement and
//!   RePaint resampling, which act between steps, as their own driver.
//! * [`Mask`] (`mask.rs`): which coordinates are known.
//! * [`colorize`] (`colorize.rs`): colorization as inpainting in the
//!   decoupled grey basis (the grey coordinate known, the colour generated).
//! * [`labels`] (`labels.rs`): a class-conditional model sampled without a
//!   class, each sample with its own label drawn from the class weights.
//! * [`TrainedClassifier`] (`trained.rs`): a trained noise-conditional
//!   classifier p_θ(y | x_t, t) as a [`NoisyClassifier`].
//!
//! The exact conditional oracles ([`crate::oracle`]) implement
//! [`ConditionalScore`] and [`NoisyClassifier`], which is what the tests
//! check every adapter against.

mod cfg;
mod classifier;
pub mod colorize;
pub mod labels;
mod mask;
pub mod repaint;
mod replacement;
pub mod trained;

pub use cfg::ClassifierFree;
pub use classifier::ClassifierGuidance;
pub use mask::Mask;
pub use repaint::{repaint, RepaintOptions};
pub use replacement::Replacement;
pub use trained::{NoisyClassifierConfig, TrainedClassifier};

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result};
use crate::score::Score;

/// What a conditional score is conditioned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// No condition: the unconditional score (the "null" label of
    /// classifier-free guidance).
    Null,
    /// Class label `k` in `0..n_classes`.
    Class(usize),
}

impl Condition {
    /// `Class(k)` if `k < n_classes`, else an error naming the range.
    pub fn class(k: usize, n_classes: usize) -> Result<Condition> {
        if k < n_classes {
            Ok(Condition::Class(k))
        } else {
            Err(Error::invalid(
                "class",
                k,
                format!(
                    "a class in 0..={} ({n_classes} classes)",
                    n_classes.max(1) - 1
                ),
            ))
        }
    }

    /// Check this condition against `n_classes` (see [`Condition::class`]).
    pub fn check(self, n_classes: usize) -> Result<Condition> {
        match self {
            Condition::Null => Ok(self),
            Condition::Class(k) => Condition::class(k, n_classes),
        }
    }
}

/// A score that can be conditioned on a class label.
pub trait ConditionalScore: Send + Sync {
    /// Number of classes (labels `0..n_classes`).
    fn n_classes(&self) -> usize;

    /// The score s(x, t | c): the unconditional one for [`Condition::Null`].
    /// Errors if a class is out of range.
    fn with_condition(&self, c: Condition) -> Result<Box<dyn Score + '_>>;
}

/// A noise-conditional classifier p_t(y | x_t), used through its input
/// gradient.
pub trait NoisyClassifier: Send + Sync {
    /// Dimension d of each point.
    fn input_dim(&self) -> usize;

    /// Number of classes (the labels `0..label_count`).
    fn label_count(&self) -> usize;

    /// ∇_x ln p_t(y | x) for every row of `x` (shape [n, d]) into `out`.
    /// `y` is in `0..label_count` (checked by the caller).
    fn log_prob_grad(&self, x: ArrayView2<f32>, t: f64, y: usize, out: ArrayViewMut2<f32>);

    /// Network evaluations per call (see [`Score::evals`]).
    fn evals(&self, t: f64) -> usize {
        let _ = t;
        1
    }
}

/// Bayes' rule for an exact classifier: ∇_x ln p_t(y | x) = s(x, t | y) − s(x, t),
/// from `class_score(class, out)` writing s(x, t | class) for the rows of
/// `x` (`None`: the unconditional score).
pub(crate) fn bayes_grad(
    x: ArrayView2<f32>,
    y: usize,
    class_score: impl Fn(Option<usize>, ArrayViewMut2<f32>),
    mut out: ArrayViewMut2<f32>,
) {
    let mut all = ndarray::Array2::<f32>::zeros(x.raw_dim());
    class_score(None, all.view_mut());
    class_score(Some(y), out.view_mut());
    out -= &all;
}
