//! Reverse-diffusion predictor (score_sde's `ReverseDiffusionPredictor`):
//! the reverse of the forward process's own discretisation.

use ndarray::Array2;

use super::{affine_update, Ctx, Sampler};
use crate::error::Result;
use crate::sde::{check_steps, Sde};

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
}

impl DiscreteStep {
    pub(crate) fn new(sde: &dyn Sde, t: f64, t_next: f64) -> Self {
        let a = sde.alpha(t) / sde.alpha(t_next);
        let g2 = (sde.sigma(t).powi(2) - (a * sde.sigma(t_next)).powi(2)).max(0.0);
        DiscreteStep { a, g2 }
    }
}

/// The uniform time grid t_k = T − k (T − ε)/N, k = 0..N, shared by the
/// reverse-diffusion, predictor–corrector and DDIM samplers (t_N = ε exactly).
pub(crate) fn uniform_time(sde: &dyn Sde, n: usize, k: usize) -> f64 {
    if k >= n {
        return sde.t_eps();
    }
    let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
    t_max - k as f64 * (t_max - t_eps) / n as f64
}

/// Reverse-diffusion update from t to t_next < t with the score `s(x, t)`
/// already in `score`:
///
/// ```text
///   x ← x − f_i(x) + G² s + G z = (2 − a) x + G² s + G z
/// ```
///
/// with z drawn from each sample's stream unless `last` (no noise).
pub(crate) fn reverse_diffusion_update(
    ctx: &mut Ctx,
    x: &mut Array2<f32>,
    score: &Array2<f32>,
    z: &mut Array2<f32>,
    step: DiscreteStep,
    last: bool,
) {
    let noise = (!last).then(|| step.g2.sqrt() as f32);
    affine_update(
        ctx,
        x,
        score,
        z,
        (2.0 - step.a) as f32,
        step.g2 as f32,
        noise,
    );
}

/// Reverse-diffusion predictor over N uniform steps t_k = T − k (T − ε)/N.
/// The forward process between t_next = t_{k+1} and t = t_k is the exact
/// Gaussian kernel x_t = a x_{t_next} + G z with a = alpha(t)/alpha(t_next)
/// and G² = sigma(t)² − a² sigma(t_next)², i.e. the discrete step
/// x_{i+1} = x_i + f_i(x_i) + G z with f_i(x) = (a − 1) x. Its reverse is
///
/// ```text
///   x ← x − f_i(x) + G² s(x, t) + G z = (2 − a) x + G² s(x, t) + G z,   z ~ N(0, I)
/// ```
///
/// with no noise on the last step (to t = ε). VE: SMLD's G² = sigma_i² −
/// sigma_{i−1}²; VP: G² = 1 − a², the exact form of score_sde's beta(t)/N.
/// NFE = N.
#[derive(Clone, Debug)]
pub struct ReverseDiffusion {
    pub steps: usize,
}

impl Sampler for ReverseDiffusion {
    fn name(&self) -> String {
        format!("reverse_diffusion({})", self.steps)
    }

    fn validate(&self, _sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) {
        let sde = ctx.sde;
        let n = self.steps;
        let mut score = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for k in 0..n {
            let (t, t_next) = (uniform_time(sde, n, k), uniform_time(sde, n, k + 1));
            ctx.score(x.view(), t, score.view_mut());
            let step = DiscreteStep::new(sde, t, t_next);
            reverse_diffusion_update(ctx, x, &score, &mut z, step, k + 1 == n);
            ctx.record(k + 1, n, t_next, x.view());
        }
    }
}
