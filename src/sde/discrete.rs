//! The discrete DDPM schedules (linear and cosine betas) and the check of a
//! step count.

use crate::error::{Error, Result};

/// A discrete DDPM noise schedule: beta_i for i = 0..N-1 and
/// alpha_bar_i = prod_{j<=i} (1 - beta_j). Step i corresponds to continuous
/// time t_i = (i + 1) / N of the VP SDE, where alpha_bar_i ≈ alpha(t_i)².
#[derive(Clone, Debug)]
pub struct DiscreteSchedule {
    pub betas: Vec<f64>,
    pub alpha_bars: Vec<f64>,
}

/// Largest beta a discrete step may take, so that sqrt(1 - beta) stays
/// positive (as in the cosine schedule of Nichol & Dhariwal).
pub const MAX_BETA: f64 = 0.999;

impl DiscreteSchedule {
    fn from_betas(betas: Vec<f64>) -> Self {
        let mut acc = 1.0;
        let alpha_bars = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        DiscreteSchedule { betas, alpha_bars }
    }

    /// The discrete process with the given alpha_bar_i (increasing in
    /// noise, each in (0, 1]): beta_i = 1 − alpha_bar_i / alpha_bar_{i−1}
    /// (alpha_bar_{−1} = 1), capped at [`MAX_BETA`].
    pub fn from_alpha_bars(alpha_bars: &[f64]) -> Self {
        let mut prev = 1.0;
        let betas = alpha_bars
            .iter()
            .map(|&ab| {
                let b = (1.0 - ab / prev).clamp(0.0, MAX_BETA);
                prev = ab;
                b
            })
            .collect();
        Self::from_betas(betas)
    }

    /// The score_sde discretisation of the VP SDE (docs/SPEC.md):
    /// beta_i = beta_min/N + i/(N(N-1)) (beta_max - beta_min), i = 0..N-1,
    /// i.e. `linspace(beta_min/N, beta_max/N, N)`. For N < beta_max the last
    /// betas would exceed 1; they are clipped at [`MAX_BETA`].
    pub fn vp_linear(n: usize, beta_min: f64, beta_max: f64) -> Result<Self> {
        check_steps(n)?;
        let nf = n as f64;
        let betas = (0..n)
            .map(|i| {
                let frac = if n == 1 { 0.0 } else { i as f64 / (nf - 1.0) };
                ((beta_min + frac * (beta_max - beta_min)) / nf).min(MAX_BETA)
            })
            .collect();
        Ok(Self::from_betas(betas))
    }

    /// Cosine schedule (Nichol & Dhariwal 2021): alpha_bar(u) =
    /// cos²(π/2 · (u + s)/(1 + s)) / cos²(π/2 · s/(1 + s)) at u = (i+1)/N, s = 0.008,
    /// beta_i = min(1 - alpha_bar_i / alpha_bar_{i-1}, 0.999).
    pub fn cosine(n: usize) -> Result<Self> {
        check_steps(n)?;
        let s = 0.008;
        let f = |u: f64| {
            (std::f64::consts::FRAC_PI_2 * (u + s) / (1.0 + s))
                .cos()
                .powi(2)
        };
        let f0 = f(0.0);
        let betas = (0..n)
            .map(|i| {
                let prev = f(i as f64 / n as f64) / f0;
                let cur = f((i + 1) as f64 / n as f64) / f0;
                (1.0 - cur / prev).clamp(0.0, MAX_BETA)
            })
            .collect();
        Ok(Self::from_betas(betas))
    }

    /// Number of steps N.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Always false: a schedule has at least one step.
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// Continuous time t_i = (i + 1) / N at which the model is evaluated.
    pub fn time(&self, i: usize) -> f64 {
        (i + 1) as f64 / self.len() as f64
    }
}

/// Validate a user-chosen step count: 1..=[`crate::limits::MAX_SAMPLER_STEPS`]
/// (schedules are allocated per step).
pub fn check_steps(n: usize) -> Result<()> {
    let max = crate::limits::MAX_SAMPLER_STEPS;
    if n == 0 || n > max {
        Err(Error::invalid(
            "steps",
            n,
            format!("an integer >= 1 and <= {max}"),
        ))
    } else {
        Ok(())
    }
}
