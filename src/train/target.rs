//! Training targets: what the network regresses onto, how the batch's noise
//! levels are drawn and how each sample's squared error is weighted. One
//! registry ([`TARGETS`]); a spec is `name[:key=value,...]`, e.g.
//! `edm:sigma_data=0.5`, `v:min_snr=5`, `eps:density=lognormal`.
//!
//! For a point x = α x0 + σ ε at time t the loss of sample i is
//!
//! ```text
//!   w_i · mean_dims (F_θ(c_in x, t) − y)²,     y = Output::target(x, x0, ε)
//! ```
//!
//! - `eps` (today's DSM): y = ±ε, F's meaning is the model's
//!   [`crate::model::Parameterization`]; w = 1 is DSM with λ = σ².
//! - `x0`, `v`, `velocity`: y = x0, v = (α ε − σ x0)/r, u = α' x0 + σ' ε
//!   ([`crate::convert`]); `velocity` on `--sde linear` is flow matching
//!   (rectified flow) with u = ε − x0.
//! - `edm`: y = (x0 − c_skip x̃)/c_out; EDM's weighting λ = 1/c_out² on
//!   ‖D − x0‖² is w = 1 on F, and its log-normal noise density is the default.
//!
//! Weightings: none (w = 1), or min-SNR-γ (Hang et al. 2023): the x0 error
//! weighted by min(SNR, γ), i.e. w = min(SNR, γ) · a² with a = ∂x0/∂F
//! ([`Output::x0_gain`]): min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v.
//!
//! Noise-level densities: t ~ U(t_eps, T) (`density=uniform`), or log-normal
//! σ̃ = σ/α: ln σ̃ ~ N(p_mean, p_std²) (`density=lognormal`, EDM's −1.2, 1.2),
//! mapped to t = λ⁻¹(−ln σ̃) and clamped to [t_eps, T].

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

use crate::convert::{Coeffs, Output};
use crate::error::{Error, Result};
use crate::rng::StreamRng;
use crate::sde::Sde;

/// `name:key=value,...` split into the name and its keys, taken one by one.
struct Spec {
    name: String,
    keys: Vec<(String, String)>,
}

impl Spec {
    fn parse(spec: &str) -> Result<Self> {
        let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut keys = Vec::new();
        for kv in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                Error::invalid("target parameter", kv, format!("key=value in `{spec}`"))
            })?;
            keys.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Spec {
            name: name.trim().to_string(),
            keys,
        })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.keys.iter().position(|(k, _)| k == key)?;
        Some(self.keys.remove(i).1)
    }

    fn f64(&mut self, key: &str, default: f64) -> Result<f64> {
        self.take(key)
            .map_or(Ok(default), |v| Error::parse_finite(key, v))
    }
}

/// A registered training target.
pub struct TargetEntry {
    pub name: &'static str,
    /// One line: what F predicts, its parameters and defaults.
    pub help: &'static str,
}

/// Every training target, in the order of the module docs.
pub const TARGETS: &[TargetEntry] = &[
    TargetEntry {
        name: "eps",
        help: "F ≈ ε (DSM with λ = σ², the SPEC objective)",
    },
    TargetEntry {
        name: "x0",
        help: "F ≈ x0 (the denoised data)",
    },
    TargetEntry {
        name: "v",
        help: "F ≈ v = (α ε − σ x0)/√(α² + σ²)",
    },
    TargetEntry {
        name: "velocity",
        help: "F ≈ u = α' x0 + σ' ε (flow matching; u = ε − x0 with --sde linear)",
    },
    TargetEntry {
        name: "edm",
        help: "EDM preconditioning, sigma_data=0.5, log-normal σ density by default",
    },
];

/// The `--target` help: every target with its line, and the common keys.
pub fn help() -> String {
    let mut s = String::from("Training target `name[:key=value,...]` replacing the recipe's:\n");
    for e in TARGETS {
        s.push_str(&format!("  {:<9} {}\n", e.name, e.help));
    }
    s.push_str(&format!("keys of every target: {COMMON_KEYS}"));
    s
}

/// Keys every target takes: `min_snr=γ` (weighting), `density=uniform|lognormal`,
/// `p_mean`, `p_std` (the log-normal's parameters).
pub const COMMON_KEYS: &str = "min_snr=γ, density=uniform|lognormal, p_mean=-1.2, p_std=1.2";

/// Per-sample weighting of the squared error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Weighting {
    None,
    MinSnr { gamma: f64 },
}

/// Density of the noise level of a training sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Density {
    /// t ~ U(t_eps, T).
    Uniform,
    /// ln(σ/α) ~ N(mean, std²).
    LogNormal { mean: f64, std: f64 },
}

/// A parsed training target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    /// `None`: the ε target in the model's parameterisation (±ε).
    pub output: Option<Output>,
    pub weighting: Weighting,
    pub density: Density,
}

/// EDM's log-normal noise density, ln σ̃ ~ N(−1.2, 1.2²).
pub const EDM_DENSITY: Density = Density::LogNormal {
    mean: -1.2,
    std: 1.2,
};

impl Default for Objective {
    /// The SPEC objective: ε, uniform t, no weighting.
    fn default() -> Self {
        Objective {
            output: None,
            weighting: Weighting::None,
            density: Density::Uniform,
        }
    }
}

impl Objective {
    /// Parse `name[:key=value,...]` (see [`TARGETS`] and [`COMMON_KEYS`]).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut p = Spec::parse(spec)?;
        let output = match p.name.as_str() {
            "eps" => None,
            "x0" => Some(Output::X0),
            "v" => Some(Output::V),
            "velocity" => Some(Output::Velocity),
            "edm" => {
                let sigma_data = p.f64("sigma_data", 0.5)?;
                if !(sigma_data > 0.0 && sigma_data < 1e6) {
                    return Err(Error::invalid(
                        "sigma_data",
                        sigma_data,
                        "0 < sigma_data < 1e6",
                    ));
                }
                Some(Output::Edm { sigma_data })
            }
            other => {
                let names: Vec<&str> = TARGETS.iter().map(|e| e.name).collect();
                return Err(Error::invalid(
                    "target",
                    other,
                    format!("one of: {}", names.join(", ")),
                ));
            }
        };
        let weighting = if p.keys.iter().any(|(k, _)| k == "min_snr") {
            let gamma = p.f64("min_snr", 5.0)?;
            if gamma <= 0.0 {
                return Err(Error::invalid("min_snr", gamma, "a number > 0 (γ)"));
            }
            Weighting::MinSnr { gamma }
        } else {
            Weighting::None
        };
        let default_density = if matches!(output, Some(Output::Edm { .. })) {
            "lognormal"
        } else {
            "uniform"
        };
        let density = match p.take("density").as_deref().unwrap_or(default_density) {
            "uniform" => Density::Uniform,
            "lognormal" => {
                let (mean, std) = (p.f64("p_mean", -1.2)?, p.f64("p_std", 1.2)?);
                if !(std > 0.0 && std <= 10.0 && mean.abs() <= 20.0) {
                    return Err(Error::invalid(
                        "p_mean/p_std",
                        format!("{mean}/{std}"),
                        "|p_mean| <= 20 and 0 < p_std <= 10",
                    ));
                }
                Density::LogNormal { mean, std }
            }
            other => {
                return Err(Error::invalid("density", other, "uniform or lognormal"));
            }
        };
        if let Some((k, v)) = p.keys.first() {
            return Err(Error::invalid(
                "target parameter",
                format!("{k}={v}"),
                format!("a key of {}: sigma_data (edm only), {COMMON_KEYS}", p.name),
            ));
        }
        Ok(Objective {
            output,
            weighting,
            density,
        })
    }

    /// The canonical spec: parses back to `self`.
    pub fn spec(&self) -> String {
        let mut keys = Vec::new();
        let name = match self.output {
            None | Some(Output::Eps) => "eps",
            Some(Output::X0) => "x0",
            Some(Output::V) => "v",
            Some(Output::Velocity) => "velocity",
            Some(Output::Edm { sigma_data }) => {
                keys.push(format!("sigma_data={sigma_data}"));
                "edm"
            }
        };
        if let Weighting::MinSnr { gamma } = self.weighting {
            keys.push(format!("min_snr={gamma}"));
        }
        match self.density {
            Density::Uniform => keys.push("density=uniform".into()),
            Density::LogNormal { mean, std } => {
                keys.push(format!("density=lognormal,p_mean={mean},p_std={std}"))
            }
        }
        format!("{name}:{}", keys.join(","))
    }

    /// Whether this is the SPEC objective (nothing to record in a checkpoint).
    pub fn is_default(&self) -> bool {
        *self == Objective::default()
    }

    /// A training time from the stream `r`.
    pub fn draw_t(&self, sde: &dyn Sde, r: &mut StreamRng) -> f64 {
        let (t_eps, t_max) = (sde.t_eps(), sde.t_max());
        match self.density {
            Density::Uniform => t_eps + (t_max - t_eps) * r.random::<f64>(),
            Density::LogNormal { mean, std } => {
                let n: f64 = StandardNormal.sample(r);
                let ln_sigma = mean + std * n;
                sde.t_of_lambda(-ln_sigma).clamp(t_eps, t_max)
            }
        }
    }

    /// The weight w of a sample at coefficients `c` (1 without weighting).
    pub fn weight(&self, c: &Coeffs) -> f64 {
        match self.weighting {
            Weighting::None => 1.0,
            Weighting::MinSnr { gamma } => {
                let gain = self.output.unwrap_or(Output::Eps).x0_gain(c);
                c.snr().min(gamma) * gain * gain
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_bad_ones_are_named() {
        for s in [
            "eps",
            "x0",
            "v:min_snr=5",
            "velocity",
            "edm",
            "edm:sigma_data=1,density=uniform",
            "eps:density=lognormal,p_mean=-1,p_std=1.5",
        ] {
            let o = Objective::parse(s).unwrap();
            assert_eq!(Objective::parse(&o.spec()).unwrap(), o, "{s}");
        }
        assert!(Objective::parse("eps").unwrap().is_default());
        for bad in [
            "x1",
            "eps:gamma=3",
            "edm:sigma_data=-1",
            "v:min_snr=0",
            "eps:density=beta",
        ] {
            assert!(Objective::parse(bad).is_err(), "{bad}");
        }
    }

    /// Min-SNR-γ with the ε target is min(SNR, γ)/SNR, with v min(SNR, γ)/(SNR + 1).
    #[test]
    fn min_snr_weights_are_the_published_ones() {
        let sde = crate::sde::VpSde::default();
        for &t in &[0.05, 0.3, 0.7] {
            let c = Coeffs::at(&sde, t);
            let snr = c.snr();
            let eps = Objective::parse("eps:min_snr=5").unwrap().weight(&c);
            let v = Objective::parse("v:min_snr=5").unwrap().weight(&c);
            assert!((eps - snr.min(5.0) / snr).abs() < 1e-12);
            assert!((v - snr.min(5.0) / (snr + 1.0)).abs() < 1e-12);
        }
    }
}
