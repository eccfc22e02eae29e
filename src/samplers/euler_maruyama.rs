//! Reverse-SDE Euler–Maruyama solver.

use ndarray::Array2;

use super::{affine_update, Ctx, Sampler};
use crate::error::Result;
use crate::sde::{check_steps, Sde};

/// Euler–Maruyama on the reverse-time SDE dx = [f(t) x − g(t)² s(x,t)] dt + g(t) dw̄
/// over N uniform steps from t = T to t = ε (dt = (T − ε)/N, t_k = T − k dt):
///
/// ```text
///   x ← x − [f(t_k) x − g(t_k)² s(x, t_k)] dt + g(t_k) sqrt(dt) z,   z ~ N(0, I)
/// ```
///
/// with no noise on the last step. NFE = N.
#[derive(Clone, Debug)]
pub struct EulerMaruyama {
    pub steps: usize,
}

impl Sampler for EulerMaruyama {
    fn name(&self) -> String {
        format!("euler_maruyama({})", self.steps)
    }

    fn validate(&self, _sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) {
        let sde = ctx.sde;
        let n = self.steps;
        let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
        let dt = (t_max - t_eps) / n as f64;
        let mut score = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for k in 0..n {
            let t = t_max - k as f64 * dt;
            ctx.score(x.view(), t, score.view_mut());
            euler_maruyama_update(ctx, x, &score, &mut z, t, dt, k + 1 == n);
            ctx.record(k + 1, n, t - dt, x.view());
        }
    }
}

/// Euler–Maruyama step of the reverse SDE from t to t − dt with s(x, t) in
/// `score`: x ← (1 − f(t) dt) x + g(t)² dt s + g(t) sqrt(dt) z (no z if `last`).
pub(crate) fn euler_maruyama_update(
    ctx: &mut Ctx,
    x: &mut Array2<f32>,
    score: &Array2<f32>,
    z: &mut Array2<f32>,
    t: f64,
    dt: f64,
    last: bool,
) {
    let sde = ctx.sde;
    let g = sde.diffusion(t);
    let keep = (1.0 - sde.drift_coef(t) * dt) as f32;
    let g2dt = (g * g * dt) as f32;
    let noise = (!last).then(|| (g * dt.sqrt()) as f32);
    affine_update(ctx, x, score, z, keep, g2dt, noise);
}
