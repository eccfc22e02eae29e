//! Classifier-free guidance (Ho & Salimans, 2022) with a guidance interval
//! (Kynkäänniemi et al., 2024).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use super::{Condition, ConditionalScore};
use crate::error::{Error, Result};
use crate::score::Score;
use crate::sde::Sde;

/// The guided score of a conditional score with guidance weight w ≥ 0:
///
/// ```text
///   ε̃(x, t) = (1 + w) ε(x, t | y) − w ε(x, t | ∅)
///   s̃(x, t) = (1 + w) s(x, t | y) − w s(x, t | ∅)      (ε = −sigma(t) s is linear in s)
/// ```
///
/// With an interval [σ_lo, σ_hi] of noise levels σ̃(t) = sigma(t)/alpha(t),
/// the guided combination is used only for σ̃(t) in the interval; outside it
/// s̃ = s(x, t | y) and only the conditional pass runs. [`Score::evals`]
/// counts both passes where both run (2 for a network, inside the interval),
/// so a sampler's NFE counts every network call.
pub struct ClassifierFree<'a> {
    cond: Box<dyn Score + 'a>,
    uncond: Box<dyn Score + 'a>,
    w: f32,
    interval: Option<(f64, f64)>,
    sde: &'a dyn Sde,
}

impl<'a> ClassifierFree<'a> {
    /// Guide `model` towards class `class` with weight `w` (≥ 0, finite) on
    /// the whole path, or only for σ̃(t) in `interval` = (σ_lo, σ_hi) with
    /// 0 ≤ σ_lo < σ_hi.
    pub fn new(
        model: &'a dyn ConditionalScore,
        class: usize,
        w: f64,
        interval: Option<(f64, f64)>,
        sde: &'a dyn Sde,
    ) -> Result<Self> {
        check_weight("guidance", w)?;
        if let Some((lo, hi)) = interval {
            if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo < hi) {
                return Err(Error::invalid(
                    "guidance-interval",
                    format!("{lo},{hi}"),
                    "sigma_lo,sigma_hi with 0 <= sigma_lo < sigma_hi, both finite",
                ));
            }
        }
        let c = Condition::class(class, model.n_classes())?;
        Ok(ClassifierFree {
            cond: model.with_condition(c)?,
            uncond: model.with_condition(Condition::Null)?,
            w: w as f32,
            interval,
            sde,
        })
    }

    fn guided(&self, t: f64) -> bool {
        match self.interval {
            None => true,
            Some((lo, hi)) => {
                let s = self.sde.sigma(t) / self.sde.alpha(t);
                (lo..=hi).contains(&s)
            }
        }
    }
}

/// A guidance weight or scale: finite and ≥ 0.
pub(super) fn check_weight(name: &str, w: f64) -> Result<()> {
    if w.is_finite() && w >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(name, w, "a finite number >= 0"))
    }
}

impl Score for ClassifierFree<'_> {
    fn dim(&self) -> usize {
        self.cond.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.cond.score(x, t, out.view_mut());
        if !self.guided(t) {
            return;
        }
        let mut u = Array2::<f32>::zeros(x.raw_dim());
        self.uncond.score(x, t, u.view_mut());
        let (a, b) = (1.0 + self.w, self.w);
        Zip::from(&mut out)
            .and(&u)
            .for_each(|o, &uv| *o = a * *o - b * uv);
    }

    fn evals(&self, t: f64) -> usize {
        self.cond.evals(t)
            + if self.guided(t) {
                self.uncond.evals(t)
            } else {
                0
            }
    }

    fn describe(&self) -> String {
        let iv = match self.interval {
            Some((lo, hi)) => format!(" for sigma in [{lo}, {hi}]"),
            None => String::new(),
        };
        format!(
            "{} with classifier-free guidance w = {}{iv}",
            self.cond.describe(),
            self.w
        )
    }
}
