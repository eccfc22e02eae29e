//! Fourier features of the MLP's input coordinates: each coordinate x_j
//! of a data row is expanded into sinusoids at octave frequencies,
//!
//! ```text
//!   ω_k = s · 2^{k − (F − 1)},  k = 0..F−1          (ω_{F−1} = s, the scale)
//!   ff(x)[j·2F + k]     = sin(ω_k x_j)
//!   ff(x)[j·2F + F + k] = cos(ω_k x_j)             [2 F data_dim]
//! ```
//!
//! (NeRF's positional encoding; tiny-diffusion's sinusoidal input
//! embedding). The features are a fixed function of the input, with no
//! parameters: they widen the first linear layer, whose weights see them
//! like any other input column, so the backward pass needs nothing new.
//! A SiLU MLP on raw coordinates is a smooth function of low effective
//! frequency; the features let it form the sharp edges of a density such as
//! the checkerboard's at small noise.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest number of octaves (2^40 spans any useful range of f32 inputs).
pub const MAX_FREQS: usize = 40;
/// Largest scale s (highest angular frequency).
pub const MAX_SCALE: f64 = 1e6;

/// The Fourier features of an MLP's input (the `fourier` field of its
/// config; absent: no features).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FourierConfig {
    /// Number of octaves F per coordinate (each gives a sine and a cosine).
    pub freqs: usize,
    /// Highest angular frequency s = ω_{F−1}.
    pub scale: f64,
}

// `scale` is validated finite, so equality is reflexive on every config
// that builds a network.
impl Eq for FourierConfig {}

impl FourierConfig {
    /// Width of the features of a `data_dim`-dimensional row, 2 F data_dim
    /// (`None` on overflow).
    pub fn width(&self, data_dim: usize) -> Option<usize> {
        self.freqs.checked_mul(2)?.checked_mul(data_dim)
    }

    /// Check `freqs` in 1..=[`MAX_FREQS`] and `scale` in (0, [`MAX_SCALE`]].
    pub fn validate(&self) -> Result<()> {
        if self.freqs == 0 || self.freqs > MAX_FREQS {
            return Err(Error::invalid(
                "fourier freqs",
                self.freqs,
                format!("an integer in 1..={MAX_FREQS}"),
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= MAX_SCALE) {
            return Err(Error::invalid(
                "fourier scale",
                self.scale,
                format!("a number in (0, {MAX_SCALE}]"),
            ));
        }
        Ok(())
    }

    /// Parse `F:S` (F octaves, top frequency S, e.g. `6:32`) or `off`
    /// (no features: `None`), validated.
    pub fn parse(spec: &str) -> Result<Option<Self>> {
        if spec == "off" {
            return Ok(None);
        }
        let bad = || Error::invalid("fourier", spec, "FREQS:SCALE (e.g. 6:32) or off");
        let (f, s) = spec.split_once(':').ok_or_else(bad)?;
        let cfg = FourierConfig {
            freqs: f.trim().parse().map_err(|_| bad())?,
            scale: s.trim().parse().map_err(|_| bad())?,
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// ω_k = s · 2^{k − (F − 1)}.
    pub fn frequency(&self, k: usize) -> f64 {
        self.scale * 0.5f64.powi((self.freqs - 1 - k) as i32)
    }

    /// Write ff(x) of one row `x` into `out` (2 F values per coordinate);
    /// the sinusoids are evaluated in f64.
    pub fn features(&self, x: impl Iterator<Item = f32>, out: &mut [f32]) {
        let f = self.freqs;
        for (xj, o) in x.zip(out.chunks_exact_mut(2 * f)) {
            let (sin, cos) = o.split_at_mut(f);
            for (k, (s, c)) in sin.iter_mut().zip(cos.iter_mut()).enumerate() {
                let (sv, cv) = (self.frequency(k) * xj as f64).sin_cos();
                *s = sv as f32;
                *c = cv as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_the_octave_sinusoids() {
        let ff = FourierConfig {
            freqs: 3,
            scale: 8.0,
        };
        assert_eq!(ff.width(2), Some(12));
        let x = [0.3f32, -1.25];
        let mut out = [0.0f32; 12];
        ff.features(x.iter().copied(), &mut out);
        for (j, &xj) in x.iter().enumerate() {
            for (k, w) in [2.0f64, 4.0, 8.0].into_iter().enumerate() {
                let a = w * xj as f64;
                assert_eq!(out[j * 6 + k], a.sin() as f32);
                assert_eq!(out[j * 6 + 3 + k], a.cos() as f32);
            }
        }
    }

    #[test]
    fn bad_settings_are_rejected_with_their_range() {
        for (freqs, scale) in [(0, 1.0), (41, 1.0), (4, 0.0), (4, f64::NAN), (4, 2e6)] {
            let e = FourierConfig { freqs, scale }.validate().unwrap_err();
            assert!(e.to_string().contains("fourier"), "{e}");
        }
        for spec in ["6", "a:2", "6:x", "0:2", "6:-1", ""] {
            let e = FourierConfig::parse(spec).unwrap_err().to_string();
            assert!(e.contains("fourier"), "{spec}: {e}");
        }
        let ok = FourierConfig {
            freqs: 6,
            scale: 32.0,
        };
        assert_eq!(FourierConfig::parse("6:32").unwrap(), Some(ok));
        assert_eq!(FourierConfig::parse("off").unwrap(), None);
    }
}
