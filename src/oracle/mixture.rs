//! Exact score of an isotropic Gaussian mixture pushed through an SDE.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::softmax_in_place;
use crate::data::GaussianMixture;
use crate::error::{Error, Result};
use crate::guidance::{Condition, ConditionalScore, NoisyClassifier};
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
///
/// **Labels.** Each component k has a class label c_k (by default c_k = k).
/// Conditioned on class y the data are the mixture of the components with
/// c_k = y, so the exact conditional score is the same formula with the
/// softmax over those components only, and Bayes' rule gives the exact
/// noisy classifier
///
/// ```text
///   ln p_t(y | x)   = logsumexp_{k: c_k = y} l_k − logsumexp_k l_k
///   ∇ ln p_t(y | x) = s(x, t | y) − s(x, t)
/// ```
#[derive(Debug)]
pub struct MixtureScore {
    mixture: GaussianMixture,
    log_w: Vec<f64>,
    labels: Vec<usize>,
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
        let labels = (0..mixture.n_modes()).collect();
        Ok(MixtureScore {
            mixture,
            log_w,
            labels,
            sde: sde.build()?,
        })
    }

    /// The same oracle with class label `labels[k]` for component k (one per
    /// component; every class in 0..=max must have a component of positive weight).
    pub fn with_labels(mut self, labels: Vec<usize>) -> Result<Self> {
        if labels.len() != self.mixture.n_modes() {
            return Err(Error::invalid(
                "mixture labels",
                format!("{} labels", labels.len()),
                format!("one per component ({})", self.mixture.n_modes()),
            ));
        }
        let n = labels.iter().max().map_or(0, |m| m + 1);
        if let Some(y) = (0..n).find(|&y| {
            !labels
                .iter()
                .zip(&self.log_w)
                .any(|(&c, &lw)| c == y && lw.is_finite())
        }) {
            return Err(Error::invalid(
                "mixture labels",
                format!("no component of positive weight with label {y}"),
                "labels 0..K-1, each on a component of positive weight",
            ));
        }
        self.labels = labels;
        Ok(self)
    }

    /// The class label of each component.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The class posterior p_t(y | x) of one point (f64).
    pub fn class_posterior(&self, x: &[f64], t: f64) -> Vec<f64> {
        let mut resp = self.logits(x, t, None);
        softmax_in_place(&mut resp);
        let mut p = vec![0.0; ConditionalScore::n_classes(self)];
        for (r, &c) in resp.iter().zip(&self.labels) {
            p[c] += r;
        }
        p
    }

    /// l_k(x) for one point; components outside `class` get −∞.
    fn logits(&self, x: &[f64], t: f64, class: Option<usize>) -> Vec<f64> {
        let a = self.sde.alpha(t);
        let inv_2v = 0.5 / self.variance(t);
        self.mixture
            .means
            .iter()
            .zip(&self.log_w)
            .zip(&self.labels)
            .map(|((mu, lw), &c)| {
                if class.is_some_and(|y| y != c) {
                    return f64::NEG_INFINITY;
                }
                let d2: f64 = x
                    .iter()
                    .zip(mu)
                    .map(|(xv, m)| (xv - a * m) * (xv - a * m))
                    .sum();
                lw - d2 * inv_2v
            })
            .collect()
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

impl MixtureScore {
    /// s(x, t | class) (all components when `class` is None) for every row.
    fn score_class(
        &self,
        x: ArrayView2<f32>,
        t: f64,
        class: Option<usize>,
        mut out: ArrayViewMut2<f32>,
    ) {
        let a = self.sde.alpha(t);
        let v = self.variance(t);
        let inv_2v = 0.5 / v;
        let d = self.mixture.dim();
        // alpha mu_k for every k, flat [K·d].
        let centres: Vec<f64> = self.mixture.means.iter().flatten().map(|m| a * m).collect();
        let mut xr = vec![0f64; d];
        let mut resp = vec![0f64; self.mixture.n_modes()];
        let mut mean = vec![0f64; d];
        for (row, mut orow) in x.outer_iter().zip(out.outer_iter_mut()) {
            for (dst, &v) in xr.iter_mut().zip(row.iter()) {
                *dst = v as f64;
            }
            for (((l, c), lw), &lab) in resp
                .iter_mut()
                .zip(centres.chunks_exact(d))
                .zip(&self.log_w)
                .zip(&self.labels)
            {
                if class.is_some_and(|y| y != lab) {
                    *l = f64::NEG_INFINITY;
                    continue;
                }
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
}

/// The exact conditional score of one class of a [`MixtureScore`].
struct MixtureClass<'a> {
    oracle: &'a MixtureScore,
    class: usize,
}

impl Score for MixtureClass<'_> {
    fn dim(&self) -> usize {
        self.oracle.mixture.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.oracle.score_class(x, t, Some(self.class), out);
    }

    fn describe(&self) -> String {
        format!("{} given class {}", self.oracle.describe(), self.class)
    }
}

impl ConditionalScore for MixtureScore {
    fn n_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |m| m + 1)
    }

    fn with_condition(&self, c: Condition) -> Result<Box<dyn Score + '_>> {
        Ok(match c.check(ConditionalScore::n_classes(self))? {
            Condition::Null => Box::new(MixtureClassNull(self)),
            Condition::Class(class) => Box::new(MixtureClass {
                oracle: self,
                class,
            }),
        })
    }
}

/// The unconditional score of a [`MixtureScore`] behind a borrow.
struct MixtureClassNull<'a>(&'a MixtureScore);

impl Score for MixtureClassNull<'_> {
    fn dim(&self) -> usize {
        self.0.mixture.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.0.score(x, t, out);
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl NoisyClassifier for MixtureScore {
    fn input_dim(&self) -> usize {
        self.mixture.dim()
    }

    fn label_count(&self) -> usize {
        ConditionalScore::n_classes(self)
    }

    /// ∇ ln p_t(y | x) = s(x, t | y) − s(x, t), both exact.
    fn log_prob_grad(&self, x: ArrayView2<f32>, t: f64, y: usize, out: ArrayViewMut2<f32>) {
        crate::guidance::bayes_grad(x, y, |c, o| self.score_class(x, t, c, o), out);
    }
}

impl Score for MixtureScore {
    fn dim(&self) -> usize {
        self.mixture.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.score_class(x, t, None, out);
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
