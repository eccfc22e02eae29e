//! A training recipe beyond the SPEC's: the target ([`super::target`]), the
//! learning-rate schedule, the EMA warm-up and augmentation. Every
//! schedule is a function of the step, so a resumed run follows it exactly.
//!
//! ```text
//!   lr(k)    = lr · min(1, (k + 1)/warmup) · [f + (1 − f) · ½ (1 + cos(π k / K))]   (cosine)
//!   decay(k) = min(ema, max(0, 1 − (1 + k/γ)^(−p)))                                 (EMA warm-up)
//! ```
//!
//! for update k = 0 … K−1 of a K-step run, f = `final_lr` (fraction of lr);
//! the EMA warm-up is k-diffusion's inverse-γ schedule (decay 0 at k = 0, so
//! the average starts at the weights and early previews are usable).
//! Horizontal flips mirror each image of the batch with probability ½ (for
//! data sets whose content is mirror-symmetric in distribution).

use serde::{Deserialize, Serialize};

use super::target::Objective;
use crate::error::{Error, Result};

/// How the learning rate changes after its warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    #[default]
    Constant,
    Cosine,
}

/// Everything a run does beyond the SPEC recipe; [`Recipe::default`] is
/// the SPEC recipe bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Training target spec (canonical, [`Objective::spec`]).
    pub target: String,
    /// Updates of linear learning-rate warm-up (0: none).
    pub lr_warmup: u64,
    pub lr_decay: LrDecay,
    /// Final learning rate as a fraction of `lr` (cosine decay).
    pub final_lr: f64,
    /// EMA warm-up (γ, power); `None`: the fixed decay.
    pub ema_warmup: Option<(f64, f64)>,
    /// Horizontal flips of image batches.
    pub flip: bool,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            target: Objective::default().spec(),
            lr_warmup: 0,
            lr_decay: LrDecay::Constant,
            final_lr: 1.0,
            ema_warmup: None,
            flip: false,
        }
    }
}

/// k-diffusion's EMA warm-up for small runs: γ = 1, power 2/3 (decay
/// 0.999 is reached after about 31,000 updates and 0.99 after 1,000).
pub const EMA_WARMUP: (f64, f64) = (1.0, 2.0 / 3.0);

impl Recipe {
    /// Whether this is the SPEC recipe.
    pub fn is_spec(&self) -> bool {
        *self == Recipe::default()
    }

    /// The parsed target.
    pub fn objective(&self) -> Result<Objective> {
        Objective::parse(&self.target)
    }

    /// Reject invalid settings (the target spec, the fractions, the EMA
    /// warm-up parameters) with the value and its range.
    pub fn validate(&self) -> Result<()> {
        self.objective()?;
        if !(self.final_lr > 0.0 && self.final_lr <= 1.0) {
            return Err(Error::invalid(
                "final-lr",
                self.final_lr,
                "0 < final-lr <= 1 (a fraction of lr)",
            ));
        }
        if let Some((g, p)) = self.ema_warmup {
            if !(g > 0.0 && g.is_finite() && p > 0.0 && p <= 10.0) {
                return Err(Error::invalid(
                    "ema-warmup",
                    format!("{g}/{p}"),
                    "γ > 0 and 0 < power <= 10",
                ));
            }
        }
        Ok(())
    }

    /// Learning rate of update `k` of a `total`-update run with base `lr`.
    pub fn lr(&self, lr: f64, k: u64, total: u64) -> f64 {
        let warm = if self.lr_warmup > 0 {
            ((k + 1) as f64 / self.lr_warmup as f64).min(1.0)
        } else {
            1.0
        };
        let decay = match self.lr_decay {
            LrDecay::Constant => 1.0,
            LrDecay::Cosine => {
                let frac = k as f64 / total.max(1) as f64;
                let f = self.final_lr;
                f + (1.0 - f) * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
        };
        lr * warm * decay
    }

    /// EMA decay of update `k` under a maximum of `ema`.
    pub fn ema_decay(&self, ema: f64, k: u64) -> f64 {
        match self.ema_warmup {
            None => ema,
            Some((g, p)) => (1.0 - (1.0 + k as f64 / g).powf(-p)).clamp(0.0, ema),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        let r = Recipe {
            lr_warmup: 10,
            lr_decay: LrDecay::Cosine,
            final_lr: 0.1,
            ema_warmup: Some(EMA_WARMUP),
            ..Recipe::default()
        };
        assert!((r.lr(1.0, 0, 100) - 0.1).abs() < 1e-12);
        assert!((r.lr(1.0, 50, 100) - 0.55).abs() < 1e-12);
        assert!((r.lr(1.0, 100, 100) - 0.1).abs() < 1e-12);
        assert_eq!(r.ema_decay(0.999, 0), 0.0);
        // 1 − (1 + k)^(−2/3) = 0.99 at k = 999.
        assert!((r.ema_decay(0.999, 999) - 0.99).abs() < 1e-9);
        assert_eq!(r.ema_decay(0.999, 1 << 40), 0.999);
        let spec = Recipe::default();
        assert!(spec.is_spec());
        assert_eq!(spec.lr(1e-3, 7, 100), 1e-3);
        assert_eq!(spec.ema_decay(0.999, 7), 0.999);
    }
}
