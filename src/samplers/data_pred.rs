//! Shared pieces of the data-prediction samplers that work in the
//! data-scaled variables (DPM-Solver++ 3M / SDE variants, 2S ancestral,
//! UniPC, Restart), so no algorithm file imports another:
//!
//! ```text
//!   x̃ = x / alpha(t),   σ̃ = sigma(t) / alpha(t),   lambda = −ln σ̃
//!   D(x̃; σ̃)  = the denoiser (Ctx::denoise_scaled at the time of σ̃)
//! ```
//!
//! the exponential-integrator functions φ_k, k-diffusion's ancestral split
//! of a step, the state's entry and exit, the step noise, and recording.

use ndarray::{Array2, Zip};

use super::ctx::write_back;
use super::{Ctx, Grid};
use crate::error::{Error, Result};
use crate::sde::Sde;

/// φ_k(z) = Σ_{j≥0} z^j / (j + k)! (φ_0 = e^z, φ_{k+1}(z) = (φ_k(z) − 1/k!)/z),
/// by its Taylor series for |z| < 1 (no cancellation) and by the recurrence
/// from e^z − 1 (`exp_m1`) otherwise. With z = −h:
/// 1 − e^{−h} = h φ_1(−h), e^{−h} − 1 + h = h² φ_2(−h).
pub(crate) fn phi(k: usize, z: f64) -> f64 {
    if z.abs() < 1.0 {
        // Terms z^j/(j+k)!, 30 terms: error < 1/30! for |z| < 1.
        let mut term = 1.0 / (1..=k).map(|i| i as f64).product::<f64>();
        let mut sum = term;
        for j in 1..30 {
            term *= z / (j + k) as f64;
            sum += term;
        }
        return sum;
    }
    if k == 0 {
        return z.exp();
    }
    // φ_1 = (e^z − 1)/z, then φ_{m+1} = (φ_m − 1/m!)/z.
    let mut p = z.exp_m1() / z;
    let mut fact = 1.0;
    for m in 1..k {
        fact *= m as f64;
        p = (p - 1.0 / fact) / z;
    }
    p
}

/// k-diffusion's `get_ancestral_step`: split the step σ̃ → σ̃_next into a
/// deterministic move to σ_down and fresh noise of std σ_up,
/// σ_up = min(σ̃_next, eta sqrt(σ̃_next² (σ̃² − σ̃_next²)/σ̃²)),
/// σ_down = sqrt(σ̃_next² − σ_up²) (eta = 1: the DDPM posterior).
pub(crate) fn ancestral_step(sigma: f64, sigma_next: f64, eta: f64) -> (f64, f64) {
    if eta == 0.0 {
        return (sigma_next, 0.0);
    }
    let ratio2 = (sigma_next / sigma).powi(2);
    let up = (eta * sigma_next * (1.0 - ratio2).max(0.0).sqrt()).min(sigma_next);
    let down = (sigma_next * sigma_next - up * up).max(0.0).sqrt();
    (down, up)
}

/// The SDE time of a noise level σ̃ (clamped to [ε, T] against rounding).
pub(crate) fn time_of(sde: &dyn Sde, sigma_tilde: f64) -> f64 {
    sde.t_of_lambda(-sigma_tilde.ln())
        .clamp(sde.t_eps(), sde.t_max())
}

/// Times, noise levels σ̃_i and lambda_i = −ln σ̃_i of a grid.
pub(crate) struct Levels {
    pub t: Vec<f64>,
    pub sigma: Vec<f64>,
    pub lambda: Vec<f64>,
}

impl Levels {
    pub(crate) fn new(grid: &Grid) -> Self {
        Levels {
            t: grid.times().to_vec(),
            sigma: grid.sigmas().to_vec(),
            lambda: grid.sigmas().iter().map(|s| -s.ln()).collect(),
        }
    }

    /// Number of steps N.
    pub(crate) fn steps(&self) -> usize {
        self.t.len() - 1
    }
}

/// The data-scaled f64 state x̃ = x_T / alpha(T) of the prior draws.
pub(crate) fn enter(ctx: &Ctx, x32: &Array2<f32>) -> Array2<f64> {
    let inv = 1.0 / ctx.sde.alpha(ctx.sde.t_max());
    x32.mapv(|v| f64::from(v) * inv)
}

/// Write x = alpha(ε) x̃ into the caller's f32 samples.
pub(crate) fn leave(ctx: &Ctx, x32: &mut Array2<f32>, x: &mut Array2<f64>) {
    let a = ctx.sde.alpha(ctx.sde.t_eps());
    x.mapv_inplace(|v| v * a);
    write_back(x32, x);
}

/// Records the state in the SDE's own scaling x = alpha(t) x̃.
pub(crate) struct Rec {
    buf: Array2<f64>,
}

impl Rec {
    pub(crate) fn new(x: &Array2<f64>) -> Self {
        Rec {
            buf: Array2::zeros(x.raw_dim()),
        }
    }

    pub(crate) fn record(&mut self, ctx: &mut Ctx, step: usize, n: usize, t: f64, x: &Array2<f64>) {
        let a = ctx.sde.alpha(t);
        Zip::from(&mut self.buf).and(x).for_each(|o, &v| *o = a * v);
        ctx.record_f64(step, n, t, &self.buf);
    }
}

/// x̃ += c z with z the noise of the step from time t to time s; draws
/// nothing when c = 0 (deterministic settings use no randomness).
pub(crate) fn add_noise(
    ctx: &mut Ctx,
    x: &mut Array2<f64>,
    z: &mut Array2<f32>,
    (t, s): (f64, f64),
    c: f64,
) {
    if c == 0.0 {
        return;
    }
    ctx.noise(t, s, z);
    Zip::from(x)
        .and(&*z)
        .for_each(|xv, &zv| *xv += c * f64::from(zv));
}

/// Check eta ∈ [0, max] and s_noise ∈ [0, ∞).
pub(crate) fn check_eta(eta: f64, max: f64, s_noise: f64) -> Result<()> {
    if !(eta >= 0.0 && eta <= max) {
        let range = if max.is_finite() {
            format!("0 <= eta <= {max}")
        } else {
            "0 <= eta < inf".to_string()
        };
        return Err(Error::invalid("eta", eta, range));
    }
    if !(s_noise >= 0.0 && s_noise.is_finite()) {
        return Err(Error::invalid("s_noise", s_noise, "0 <= s_noise < inf"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_matches_closed_forms_on_both_branches() {
        // Closed forms where their own cancellation is small (relative
        // rounding ~1e-16 / |z|^k for φ_k).
        for z in [-3.0f64, -1.5, -1.0, -0.999, -0.3, -1e-2, 0.5, 0.999, 2.0] {
            let want = [
                z.exp(),
                z.exp_m1() / z,
                (z.exp_m1() - z) / (z * z),
                (z.exp_m1() - z - 0.5 * z * z) / (z * z * z),
            ];
            for (k, w) in want.iter().enumerate() {
                let tol = 1e-13 + 1e-15 / z.abs().powi(k as i32);
                let got = phi(k, z);
                assert!(
                    (got - w).abs() <= tol * w.abs(),
                    "phi_{k}({z}) {got} vs {w}"
                );
            }
        }
        // Tiny z: the series' first two terms, 1/k! + z/(k+1)!.
        for z in [1e-8, -1e-8, 0.0] {
            for (k, (a, b)) in [(1.0, 0.5), (0.5, 1.0 / 6.0), (1.0 / 6.0, 1.0 / 24.0)]
                .iter()
                .enumerate()
            {
                let want = a + z * b;
                assert!((phi(k + 1, z) - want).abs() < 1e-16, "phi_{}({z})", k + 1);
            }
        }
    }

    #[test]
    fn ancestral_step_splits_the_variance() {
        let (down, up) = ancestral_step(2.0, 1.0, 1.0);
        assert!((down * down + up * up - 1.0).abs() < 1e-15);
        assert!((down - 0.5).abs() < 1e-15); // σ̃_next²/σ̃ at eta = 1
        assert_eq!(ancestral_step(2.0, 1.0, 0.0), (1.0, 0.0));
    }
}
