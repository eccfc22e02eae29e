//! The data-scaled variables shared by the samplers that work in them
//! (Euler ancestral, DPM2, LMS, iPNDM, DEIS, DPM-Solver++ 3M / SDE variants,
//! 2S ancestral, UniPC, Restart), so no algorithm file imports another:
//!
//! ```text
//!   x̃ = x / alpha(t),   σ̃ = sigma(t) / alpha(t),   lambda = −ln σ̃
//!   D(x̃; σ̃) = the denoiser (Ctx::denoise_scaled at the time of σ̃),   dx̃/dσ̃ = (x̃ − D)/σ̃ = ε̂
//! ```
//!
//! with an f64 state: its entry from and exit into the driver's f32 samples,
//! recording in the SDE's own scaling, σ̃ → t, the ancestral split of a noisy
//! step, the step noise, and the eta / s_noise checks.

use ndarray::{Array2, Zip};

use super::ctx::write_back;
use super::{Ctx, Grid};
use crate::error::{Error, Result};
use crate::sde::Sde;

/// ε̂ = (x̃ − D) / σ̃ (k-diffusion's `to_d`) into `out`.
pub(crate) fn to_d(
    x_tilde: &Array2<f64>,
    denoised: &Array2<f64>,
    sigma: f64,
    out: &mut Array2<f64>,
) {
    let inv = 1.0 / sigma;
    Zip::from(out)
        .and(x_tilde)
        .and(denoised)
        .for_each(|o, &x, &d| *o = (x - d) * inv);
}

/// The SDE time of a noise level σ̃ in [σ̃(ε), σ̃(T)].
pub(crate) fn time_of_sigma(sde: &dyn Sde, sigma_tilde: f64) -> f64 {
    sde.t_of_lambda(-sigma_tilde.ln())
        .clamp(sde.t_eps(), sde.t_max())
}

/// k-diffusion's `get_ancestral_step`: the ancestral step from σ̃_from to
/// σ̃_to < σ̃_from is a deterministic step to σ̃_down followed by fresh noise
/// of std σ̃_up, with σ̃_down² + σ̃_up² = σ̃_to² and
///
/// ```text
///   σ̃_up   = min(σ̃_to, eta σ̃_to sqrt(1 − r²)),   r = σ̃_to / σ̃_from
///   σ̃_down = sqrt(σ̃_to² − σ̃_up²) = σ̃_to sqrt(1 − eta² + eta² r²)
/// ```
///
/// (eta = 1: the DDPM posterior variance in σ̃, σ̃_down = σ̃_to²/σ̃_from;
/// eta = 0: σ̃_down = σ̃_to, no noise). Written without the cancellation of
/// σ̃_to² − σ̃_up²; for eta ≤ 1, σ̃_down > 0.
pub(crate) fn ancestral_split(sigma_from: f64, sigma_to: f64, eta: f64) -> (f64, f64) {
    if eta == 0.0 {
        return (sigma_to, 0.0);
    }
    let r = sigma_to / sigma_from;
    let one_minus_r2 = ((1.0 - r) * (1.0 + r)).max(0.0);
    let down2 = (1.0 - eta * eta) + eta * eta * r * r;
    if down2 <= 0.0 {
        return (0.0, sigma_to);
    }
    (
        sigma_to * down2.sqrt(),
        sigma_to * eta * one_minus_r2.sqrt(),
    )
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
fn enter(ctx: &Ctx, x32: &Array2<f32>) -> Array2<f64> {
    let inv = 1.0 / ctx.sde.alpha(ctx.sde.t_max());
    x32.mapv(|v| f64::from(v) * inv)
}

/// Write x = alpha(ε) x̃ into the caller's f32 samples.
fn leave(ctx: &Ctx, x32: &mut Array2<f32>, x: &mut Array2<f64>) {
    let a = ctx.sde.alpha(ctx.sde.t_eps());
    x.mapv_inplace(|v| v * a);
    write_back(x32, x);
}

/// The loop of every sampler in x̃ over the N steps of `lv`:
///
/// ```text
///   x̃_0 = x_T / alpha(T);   x̃_{i+1} = step(i, x̃_i), recorded as alpha(t_{i+1}) x̃_{i+1};   x = alpha(ε) x̃_N
/// ```
///
/// `step(ctx, i, x̃)` moves the state from level i to level i + 1 in place;
/// the output overwrites the prior draws in `x32`.
pub(crate) fn run_scaled(
    ctx: &mut Ctx,
    x32: &mut Array2<f32>,
    lv: &Levels,
    mut step: impl FnMut(&mut Ctx, usize, &mut Array2<f64>),
) -> Result<()> {
    let n = lv.steps();
    let mut x = enter(ctx, x32);
    let mut rec = Rec::new(&x);
    for i in 0..n {
        step(ctx, i, &mut x);
        rec.record(ctx, i + 1, n, lv.t[i + 1], &x);
    }
    leave(ctx, x32, &mut x);
    Ok(())
}

/// Records the state in the SDE's own scaling x = alpha(t) x̃.
struct Rec {
    buf: Array2<f64>,
}

impl Rec {
    fn new(x: &Array2<f64>) -> Self {
        Rec {
            buf: Array2::zeros(x.raw_dim()),
        }
    }

    fn record(&mut self, ctx: &mut Ctx, step: usize, n: usize, t: f64, x: &Array2<f64>) {
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

/// Check eta ∈ [0, max] (finite; max = ∞: any finite eta ≥ 0) and
/// s_noise ∈ [0, ∞).
pub(crate) fn check_eta(eta: f64, max: f64, s_noise: f64) -> Result<()> {
    if !(eta >= 0.0 && eta <= max && eta.is_finite()) {
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
    fn ancestral_split_keeps_the_variance() {
        for (from, to) in [(10.0, 5.0), (1.0, 0.999), (80.0, 0.002)] {
            for eta in [0.0, 0.3, 1.0, 1.7] {
                let (down, up) = ancestral_split(from, to, eta);
                assert!(down >= 0.0 && up >= 0.0);
                assert!((down * down + up * up - to * to).abs() < 1e-12 * to * to);
                if eta <= 1.0 {
                    assert!(down > 0.0);
                }
            }
            let (down, _) = ancestral_split(from, to, 1.0);
            assert!((down - to * to / from).abs() < 1e-12 * to);
        }
    }
}
