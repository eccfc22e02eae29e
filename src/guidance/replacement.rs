//! Inpainting and imputation with any sampler: score_sde's replacement
//! method written as a score.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::Mask;
use crate::error::{Error, Result};
use crate::score::Score;
use crate::sde::Sde;

/// The score whose known coordinates k follow the exact reverse process of
/// their observed values v and whose unknown coordinates u follow the
/// wrapped score at the joint state:
///
/// ```text
///   s̃_k(x, t) = −(x_k − alpha(t) v_k) / sigma(t)²    (the score of q(x_t,k | x0,k = v_k) = N(alpha v_k, sigma² I))
///   s̃_u(x, t) = s_u(x, t) = ∇_u ln p_t(x_u, x_k)
/// ```
///
/// Under any sampler the known coordinates are then distributed as
/// q(x_t,k | v) at every t (an exact score of a point mass), which is what
/// score_sde's replacement step draws afresh after each step; the unknown
/// coordinates see the model's score given the noisy known part. This is
/// the replacement approximation ∇_u ln p_t(x_u | x_k) in place of the
/// exact ∇_u ln p_t(x_u | x0,k = v). The known coordinates end at
/// alpha(ε) v + sigma(ε) ξ; [`Replacement::paste`] sets them to v.
/// One evaluation of the wrapped score per call.
pub struct Replacement<'a> {
    inner: &'a dyn Score,
    sde: &'a dyn Sde,
    known: Vec<usize>,
    values: Vec<f64>,
}

impl<'a> Replacement<'a> {
    /// Impute the unknown coordinates of `mask` given `x0` (length d; only
    /// its known entries are used, and those must be finite).
    pub fn new(inner: &'a dyn Score, sde: &'a dyn Sde, mask: &Mask, x0: &[f32]) -> Result<Self> {
        mask.check_dim(inner.dim())?;
        if x0.len() != inner.dim() {
            return Err(Error::invalid(
                "known values",
                format!("{} values", x0.len()),
                format!("one per coordinate ({})", inner.dim()),
            ));
        }
        let known = mask.known_indices();
        if let Some(&j) = known.iter().find(|&&j| !x0[j].is_finite()) {
            return Err(Error::invalid(
                format!("known value {j}"),
                x0[j],
                "a finite number",
            ));
        }
        let values = known.iter().map(|&j| x0[j] as f64).collect();
        Ok(Replacement {
            inner,
            sde,
            known,
            values,
        })
    }

    /// Set the known coordinates of every row of `x` to their observed values.
    pub fn paste(&self, mut x: ArrayViewMut2<f32>) {
        for mut row in x.outer_iter_mut() {
            for (&j, &v) in self.known.iter().zip(&self.values) {
                row[j] = v as f32;
            }
        }
    }
}

impl Score for Replacement<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.inner.score(x, t, out.view_mut());
        let (alpha, var) = (self.sde.alpha(t), self.sde.sigma(t).powi(2));
        for (xr, mut or) in x.outer_iter().zip(out.outer_iter_mut()) {
            for (&j, &v) in self.known.iter().zip(&self.values) {
                or[j] = (-(xr[j] as f64 - alpha * v) / var) as f32;
            }
        }
    }

    fn evals(&self, t: f64) -> usize {
        self.inner.evals(t)
    }

    fn describe(&self) -> String {
        format!(
            "{} imputing {} of {} coordinates by replacement",
            self.inner.describe(),
            self.dim() - self.known.len(),
            self.dim()
        )
    }
}
