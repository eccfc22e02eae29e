//! Reverse-SDE Euler–Maruyama solver.

use ndarray::{Array2, Zip};

use super::{Ctx, Sampler};
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
            let g = sde.diffusion(t);
            // x + (−f x + g² s) dt  =  (1 − f dt) x + g² dt s
            let keep = (1.0 - sde.drift_coef(t) * dt) as f32;
            let g2dt = (g * g * dt) as f32;
            let last = k + 1 == n;
            if last {
                Zip::from(&mut *x)
                    .and(&score)
                    .for_each(|xv, &s| *xv = keep * *xv + g2dt * s);
            } else {
                ctx.normal(&mut z);
                let noise = (g * dt.sqrt()) as f32;
                Zip::from(&mut *x)
                    .and(&score)
                    .and(&z)
                    .for_each(|xv, &s, &zv| *xv = keep * *xv + g2dt * s + noise * zv);
            }
            ctx.record(k + 1, n, t - dt, x.view());
        }
    }
}
