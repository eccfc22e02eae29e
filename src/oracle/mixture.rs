//! Exact score of an isotropic Gaussian mixture pushed through an SDE.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::softmax_in_place;
use crate::data::GaussianMixture;
use crate::error::{Error, Result};
use crate::score::Score;
use crate::sde::{Sde, SdeConfig};

/// Score of p_t = Σ_k w_k N(alpha mu_k, v I) with v = alpha² s² + sigma²
/// (alpha = alpha(t), sigma = sigma(t), s = the mixture's std):
///
/// ```text
///   l_k(x) = ln w_k − ‖x − alpha mu_k‖² / (2 v)
///   r_k(x) = softmax_k(l_k)                         (max-shift, f64)
///   s(x,t) = Σ_k r_k(x) · (−(x − alpha mu_k) / v)  = (alpha Σ_k r_k mu_k − x) / v
/// ```
///
/// The normalisers −(d/2) ln(2π v) are the same for every component and
/// cancel in the softmax. Everything is evaluated in f64 per row.
#[derive(Debug)]
pub struct MixtureScore {
    mixture: GaussianMixture,
    log_w: Vec<f64>,
    sde: Box<dyn Sde>,
}

impl MixtureScore {
    /// The exact score of `mixture` under the process `sde`. Errors if the
    /// mixture has no components, means of different or zero dimension,
    /// non-finite means, weights that are negative / non-finite / sum to 0,
    /// or a std that is not finite and > 0 (point masses: [`super::EmpiricalScore`]).
    pub fn new(mixture: GaussianMixture, sde: &SdeConfig) -> Result<Self> {
        let d = mixture.dim();
        if mixture.n_modes() == 0 || d == 0 {
            return Err(Error::invalid(
                "mixture",
                format!("{} components of dimension {d}", mixture.n_modes()),
                "at least one component of dimension >= 1",
            ));
        }
        if let Some(k) = mixture
            .means
            .iter()
            .position(|m| m.len() != d || m.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::invalid(
                format!("mixture mean {k}"),
                format!("{:?}", mixture.means[k]),
                format!("{d} finite values (the dimension of mean 0)"),
            ));
        }
        if mixture.weights.len() != mixture.n_modes() {
            return Err(Error::invalid(
                "mixture weights",
                format!("{} weights", mixture.weights.len()),
                format!("one per component ({})", mixture.n_modes()),
            ));
        }
        let total: f64 = mixture.weights.iter().sum();
        if mixture
            .weights
            .iter()
            .any(|w| !(w.is_finite() && *w >= 0.0))
            || !(total > 0.0 && total.is_finite())
        {
            return Err(Error::invalid(
                "mixture weights",
                format!("{:?}", mixture.weights),
                "finite, non-negative, with a positive sum",
            ));
        }
        if !(mixture.std > 0.0 && mixture.std.is_finite()) {
            return Err(Error::invalid(
                "mixture std",
                mixture.std,
                "a finite number > 0",
            ));
        }
        let log_w = mixture.weights.iter().map(|w| (w / total).ln()).collect();
        Ok(MixtureScore {
            mixture,
            log_w,
            sde: sde.build()?,
        })
    }

    /// The data mixture p_0.
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }

    /// The forward process.
    pub fn sde(&self) -> &dyn Sde {
        self.sde.as_ref()
    }

    /// The marginal p_t as a mixture: means alpha(t) mu_k, std
    /// sqrt(alpha(t)² s² + sigma(t)²), same weights. Its
    /// [`GaussianMixture::log_prob`] is the exact ln p_t(x) in f64.
    pub fn marginal(&self, t: f64) -> GaussianMixture {
        let a = self.sde.alpha(t);
        let v = self.variance(t);
        GaussianMixture {
            means: self
                .mixture
                .means
                .iter()
                .map(|m| m.iter().map(|v| a * v).collect())
                .collect(),
            weights: self.mixture.weights.clone(),
            std: v.sqrt(),
        }
    }

    /// Component variance v(t) = alpha(t)² s² + sigma(t)².
    fn variance(&self, t: f64) -> f64 {
        let a = self.sde.alpha(t);
        a * a * self.mixture.std * self.mixture.std + self.sde.sigma(t).powi(2)
    }
}

impl Score for MixtureScore {
    fn dim(&self) -> usize {
        self.mixture.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        let a = self.sde.alpha(t);
        let v = self.variance(t);
        let inv_2v = 0.5 / v;
        let d = self.dim();
        // alpha mu_k for every k, flat [K·d].
        let centres: Vec<f64> = self.mixture.means.iter().flatten().map(|m| a * m).collect();
        let mut xr = vec![0f64; d];
        let mut resp = vec![0f64; self.mixture.n_modes()];
        let mut mean = vec![0f64; d];
        for (row, mut orow) in x.outer_iter().zip(out.outer_iter_mut()) {
            for (dst, &v) in xr.iter_mut().zip(row.iter()) {
                *dst = v as f64;
            }
            for ((l, c), lw) in resp
                .iter_mut()
                .zip(centres.chunks_exact(d))
                .zip(&self.log_w)
            {
                let d2: f64 = xr.iter().zip(c).map(|(xv, cv)| (xv - cv) * (xv - cv)).sum();
                *l = lw - d2 * inv_2v;
            }
            softmax_in_place(&mut resp);
            // Σ_k r_k (alpha mu_k), skipping the exact zeros of the cut-off.
            mean.iter_mut().for_each(|m| *m = 0.0);
            for (&r, c) in resp.iter().zip(centres.chunks_exact(d)) {
                if r != 0.0 {
                    for (m, cv) in mean.iter_mut().zip(c) {
                        *m += r * cv;
                    }
                }
            }
            for ((o, xv), m) in orow.iter_mut().zip(&xr).zip(&mean) {
                *o = ((m - xv) / v) as f32;
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "exact score of a {}-component Gaussian mixture (std {}) under the {} SDE",
            self.mixture.n_modes(),
            self.mixture.std,
            self.sde.config().name()
        )
    }
}
