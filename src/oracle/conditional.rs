//! Exact conditionals of the empirical distribution: given a class label,
//! and given known pixels.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

use super::EmpiricalScore;
use crate::error::{Error, Result};
use crate::guidance::{Condition, ConditionalScore, Mask, NoisyClassifier};
use crate::score::Score;
use crate::sde::{Sde, SdeConfig};

/// The empirical distribution of a labelled data set. Given class y the data
/// are the points with label y, so the exact conditional score is the
/// [`EmpiricalScore`] formula with the other points' logits at −∞, and
///
/// ```text
///   ∇ ln p_t(y | x) = s(x, t | y) − s(x, t)
/// ```
#[derive(Debug)]
pub struct LabelledEmpirical {
    oracle: EmpiricalScore,
    /// Per class, log-weights 0 on its points and −∞ elsewhere.
    class_log_w: Vec<Vec<f64>>,
}

impl LabelledEmpirical {
    /// The oracle of the rows of `data` with `labels` (one per row; every
    /// class in 0..=max must have a point) under `sde`.
    pub fn new(data: ArrayView2<f32>, labels: &[usize], sde: &SdeConfig) -> Result<Self> {
        let oracle = EmpiricalScore::new(data, sde)?;
        if labels.len() != oracle.len() {
            return Err(Error::invalid(
                "labels",
                format!("{} labels", labels.len()),
                format!("one per data point ({})", oracle.len()),
            ));
        }
        let n = labels.iter().max().map_or(0, |m| m + 1);
        let class_log_w: Vec<Vec<f64>> = (0..n)
            .map(|y| {
                labels
                    .iter()
                    .map(|&c| if c == y { 0.0 } else { f64::NEG_INFINITY })
                    .collect()
            })
            .collect();
        if let Some(y) = (0..n).find(|&y| !labels.contains(&y)) {
            return Err(Error::invalid(
                "labels",
                format!("no point with label {y}"),
                "labels 0..K-1, each with a point",
            ));
        }
        Ok(LabelledEmpirical {
            oracle,
            class_log_w,
        })
    }

    /// The unconditional oracle.
    pub fn unconditional(&self) -> &EmpiricalScore {
        &self.oracle
    }
}

/// The empirical score given a class (None: all points).
struct EmpiricalClass<'a> {
    oracle: &'a EmpiricalScore,
    log_w: Option<&'a [f64]>,
}

impl Score for EmpiricalClass<'_> {
    fn dim(&self) -> usize {
        self.oracle.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.oracle.score_weighted(x, t, self.log_w, out);
    }

    fn describe(&self) -> String {
        format!("{} given a class", self.oracle.describe())
    }
}

impl ConditionalScore for LabelledEmpirical {
    fn n_classes(&self) -> usize {
        self.class_log_w.len()
    }

    fn with_condition(&self, c: Condition) -> Result<Box<dyn Score + '_>> {
        let log_w = match c.check(self.class_log_w.len())? {
            Condition::Null => None,
            Condition::Class(y) => Some(self.class_log_w[y].as_slice()),
        };
        Ok(Box::new(EmpiricalClass {
            oracle: &self.oracle,
            log_w,
        }))
    }
}

impl NoisyClassifier for LabelledEmpirical {
    fn input_dim(&self) -> usize {
        self.oracle.dim()
    }

    fn label_count(&self) -> usize {
        self.class_log_w.len()
    }

    fn log_prob_grad(&self, x: ArrayView2<f32>, t: f64, y: usize, out: ArrayViewMut2<f32>) {
        let log_w = |c: Option<usize>| c.map(|c| self.class_log_w[c].as_slice());
        crate::guidance::bayes_grad(
            x,
            y,
            |c, o| self.oracle.score_weighted(x, t, log_w(c), o),
            out,
        );
    }
}

/// The exact score of p_t(x | x0,k = v): the empirical distribution
/// conditioned on its known coordinates k having the values v. The posterior
/// over training points re-weights each by how well it matches the visible
/// part, and given the point the coordinates are noised independently, so
///
/// ```text
///   w_j ∝ exp(−‖y_j,k − v‖² / (2 τ²))       (τ = 0: the best-matching points only)
///   p_t(x | v) = N(x_k; alpha v, sigma² I) · Σ_j w_j N(x_u; alpha y_j,u, sigma² I)
///   s_k = −(x_k − alpha v) / sigma²,   s_u = the weighted empirical score of the y_j,u
/// ```
///
/// τ > 0 is a Gaussian observation noise on the known part; τ = 0 keeps
/// exactly the points at the minimum distance (an exact match when v comes
/// from the data set).
#[derive(Debug)]
pub struct KnownPixelsScore {
    unknown_part: EmpiricalScore,
    log_w: Vec<f64>,
    known: Vec<usize>,
    unknown: Vec<usize>,
    values: Vec<f64>,
    sde: Box<dyn Sde>,
}

impl KnownPixelsScore {
    /// Condition `oracle` on the known coordinates of `mask` having the
    /// values of `x0` there (length d), with observation noise `tau` ≥ 0.
    pub fn new(oracle: &EmpiricalScore, mask: &Mask, x0: &[f32], tau: f64) -> Result<Self> {
        let d = oracle.dim();
        mask.check_known(x0, d)?;
        if !(tau.is_finite() && tau >= 0.0) {
            return Err(Error::invalid("tau", tau, "a finite number >= 0"));
        }
        let (known, unknown) = (mask.known_indices(), mask.unknown_indices());
        let data = oracle.data();
        let d2: Vec<f64> = data
            .outer_iter()
            .map(|y| known.iter().map(|&j| (y[j] - x0[j] as f64).powi(2)).sum())
            .collect();
        let best = d2.iter().copied().fold(f64::INFINITY, f64::min);
        let log_w = d2
            .iter()
            .map(|&e| {
                if tau > 0.0 {
                    -(e - best) / (2.0 * tau * tau)
                } else if e <= best {
                    0.0
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let part = data.select(Axis(1), &unknown).mapv(|v| v as f32);
        let sde = oracle.sde().config();
        Ok(KnownPixelsScore {
            unknown_part: EmpiricalScore::new(part.view(), &sde)?,
            log_w,
            values: known.iter().map(|&j| x0[j] as f64).collect(),
            known,
            unknown,
            sde: sde.build()?,
        })
    }

    /// The posterior weight of each training point (sums to 1).
    pub fn posterior(&self) -> Vec<f64> {
        let mut w = self.log_w.clone();
        super::softmax_in_place(&mut w);
        w
    }
}

impl Score for KnownPixelsScore {
    fn dim(&self) -> usize {
        self.known.len() + self.unknown.len()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        let xu = x.select(Axis(1), &self.unknown);
        let mut su = Array2::<f32>::zeros(xu.raw_dim());
        self.unknown_part
            .score_weighted(xu.view(), t, Some(&self.log_w), su.view_mut());
        let (alpha, var) = (self.sde.alpha(t), self.sde.sigma(t).powi(2));
        for ((xr, mut or), sr) in x
            .outer_iter()
            .zip(out.outer_iter_mut())
            .zip(su.outer_iter())
        {
            for (&j, &s) in self.unknown.iter().zip(sr.iter()) {
                or[j] = s;
            }
            for (&j, &v) in self.known.iter().zip(&self.values) {
                or[j] = (-(xr[j] as f64 - alpha * v) / var) as f32;
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "exact empirical score given {} known of {} coordinates",
            self.known.len(),
            self.dim()
        )
    }
}
