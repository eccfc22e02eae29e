//! Single-step updates shared by several samplers (the reverse-SDE
//! Euler–Maruyama step and the reverse-diffusion step) and the loop of the
//! score-only one-step samplers, so no algorithm file imports another.

use ndarray::Array2;

use super::ctx::{affine_update, Ctx};
use super::Schedule;
use crate::error::Result;
use crate::sde::Sde;

/// One step of the forward process discretised exactly between two times
/// t_next < t: the Gaussian kernel x_t | x_{t_next} is
///
/// ```text
///   x_t = a x_{t_next} + G z,   a = alpha(t)/alpha(t_next),
///                               G² = sigma(t)² − a² sigma(t_next)²,
/// ```
///
/// i.e. the discrete forward step x_{i+1} = x_i + f_i(x_i) + G_i z with
/// f_i(x) = (a − 1) x. For VE this is SMLD's G² = sigma_i² − sigma_{i−1}²
/// (a = 1); for VP, G² = 1 − a² is score_sde's discrete beta_i (whose
/// `VPSDE.discretize` uses the first-order beta(t)/N instead of the exact
/// 1 − exp(−∫beta)); sub-VP gets its own exact kernel the same way.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DiscreteStep {
    /// a = alpha(t)/alpha(t_next).
    pub a: f64,
    /// G² = sigma(t)² − a² sigma(t_next)² (clamped at 0 against rounding).
    pub g2: f64,
    t: f64,
    t_next: f64,
}

impl DiscreteStep {
    pub(crate) fn new(sde: &dyn Sde, t: f64, t_next: f64) -> Self {
        let a = sde.alpha(t) / sde.alpha(t_next);
        let g2 = (sde.sigma(t).powi(2) - (a * sde.sigma(t_next)).powi(2)).max(0.0);
        DiscreteStep { a, g2, t, t_next }
    }
}

/// Reverse-diffusion update from t to t_next < t with the score `s(x, t)`
/// already in `score`:
///
/// ```text
///   x ← x − f_i(x) + G² s + G z = (2 − a) x + G² s + G z
/// ```
///
/// with z the step's noise unless `last` (no noise).
pub(crate) fn reverse_diffusion_update(
    ctx: &mut Ctx,
    x: &mut Array2<f32>,
    score: &Array2<f32>,
    z: &mut Array2<f32>,
    step: DiscreteStep,
    last: bool,
) {
    let noise = (!last).then(|| step.g2.sqrt() as f32);
    let c_x = (2.0 - step.a) as f32;
    let c_s = step.g2 as f32;
    affine_update(ctx, x, score, z, c_x, c_s, noise, (step.t, step.t_next));
}

/// Euler–Maruyama step of the reverse SDE from t to t − dt with s(x, t) in
/// `score`: x ← (1 − f(t) dt) x + g(t)² dt s + g(t) sqrt(dt) z (no z if `last`).
pub(crate) fn euler_maruyama_update(
    ctx: &mut Ctx,
    x: &mut Array2<f32>,
    score: &Array2<f32>,
    z: &mut Array2<f32>,
    (t, dt): (f64, f64),
    last: bool,
) {
    let sde = ctx.sde;
    let g = sde.diffusion(t);
    let keep = (1.0 - sde.drift_coef(t) * dt) as f32;
    let g2dt = (g * g * dt) as f32;
    let noise = (!last).then(|| (g * dt.sqrt()) as f32);
    affine_update(ctx, x, score, z, keep, g2dt, noise, (t, t - dt));
}

/// The loop of a score-only one-step sampler (Euler–Maruyama, reverse
/// diffusion): at each step t_k → t_{k+1} of the grid of `schedule`, the
/// score s(x, t_k), then `update(ctx, x, score, z, (t_k, t_{k+1}), last)`,
/// where `last` (no noise) is the final step unless the context wants a noisy
/// last step; records every step.
pub(crate) fn run_score_steps(
    ctx: &mut Ctx,
    x: &mut Array2<f32>,
    (schedule, steps): (&Schedule, usize),
    update: impl Fn(&mut Ctx, &mut Array2<f32>, &Array2<f32>, &mut Array2<f32>, (f64, f64), bool),
) -> Result<()> {
    let grid = schedule.grid(ctx.sde, steps)?;
    let ts = grid.times();
    let n = grid.steps();
    let mut score = Array2::<f32>::zeros(x.raw_dim());
    let mut z = Array2::<f32>::zeros(x.raw_dim());
    for k in 0..n {
        let (t, t_next) = (ts[k], ts[k + 1]);
        ctx.score(x.view(), t, score.view_mut());
        let last = k + 1 == n && !ctx.noisy_last_step();
        update(ctx, x, &score, &mut z, (t, t_next), last);
        ctx.record(k + 1, n, t_next, x.view());
    }
    Ok(())
}
