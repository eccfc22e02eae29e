//! Fixed-step solvers of the probability-flow ODE (Song et al. 2021, eq. 13):
//!
//! ```text
//!   dx/dt = F(x, t) = f(t) x − ½ g(t)² s(x, t)
//! ```
//!
//! integrated from t = T to t = ε over N uniform steps in t
//! (dt = −(T − ε)/N, t_k = T + k dt). The state is kept in f64 between steps;
//! only the score sees an f32 copy. Deterministic: the only randomness is the
//! prior draw.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use super::{Ctx, Sampler};
use crate::error::Result;
use crate::sde::{check_steps, Sde};

/// Which fixed-step Runge–Kutta method advances the ODE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OdeMethod {
    /// x ← x + dt F(x, t). First order, NFE = N.
    Euler,
    /// Heun (explicit trapezoid): k1 = F(x, t), k2 = F(x + dt k1, t + dt),
    /// x ← x + dt (k1 + k2)/2. Second order, NFE = 2N (the last step ends
    /// at ε > 0, where the score is finite, so it needs no special case).
    Heun,
    /// Classical fourth-order Runge–Kutta. NFE = 4N.
    Rk4,
}

/// Probability-flow ODE sampler with a fixed-step method over N uniform steps.
#[derive(Clone, Debug)]
pub struct ProbabilityFlowOde {
    pub steps: usize,
    pub method: OdeMethod,
}

impl Sampler for ProbabilityFlowOde {
    fn name(&self) -> String {
        let m = match self.method {
            OdeMethod::Euler => "euler",
            OdeMethod::Heun => "heun",
            OdeMethod::Rk4 => "rk4",
        };
        format!("ode_{m}({})", self.steps)
    }

    fn validate(&self, _sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)
    }

    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) {
        let sde = ctx.sde;
        let n = self.steps;
        let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
        let dt = -(t_max - t_eps) / n as f64;
        let mut x = x32.mapv(f64::from);
        let mut drift = PfDrift::new(x.nrows(), x.ncols());
        let shape = x.raw_dim();
        let mut k1 = Array2::<f64>::zeros(shape);
        let mut k2 = Array2::<f64>::zeros(shape);
        let mut k3 = Array2::<f64>::zeros(shape);
        let mut k4 = Array2::<f64>::zeros(shape);
        let mut tmp = Array2::<f64>::zeros(shape);
        for k in 0..n {
            let t = t_max + k as f64 * dt;
            // Land exactly on ε at the last step.
            let t_next = if k + 1 == n { t_eps } else { t + dt };
            let h = t_next - t;
            drift.eval(ctx, x.view(), t, k1.view_mut());
            match self.method {
                OdeMethod::Euler => x.scaled_add(h, &k1),
                OdeMethod::Heun => {
                    axpy_into(&mut tmp, &x, h, &k1);
                    drift.eval(ctx, tmp.view(), t_next, k2.view_mut());
                    Zip::from(&mut x)
                        .and(&k1)
                        .and(&k2)
                        .for_each(|xv, &a, &b| *xv += 0.5 * h * (a + b));
                }
                OdeMethod::Rk4 => {
                    let t_mid = t + 0.5 * h;
                    axpy_into(&mut tmp, &x, 0.5 * h, &k1);
                    drift.eval(ctx, tmp.view(), t_mid, k2.view_mut());
                    axpy_into(&mut tmp, &x, 0.5 * h, &k2);
                    drift.eval(ctx, tmp.view(), t_mid, k3.view_mut());
                    axpy_into(&mut tmp, &x, h, &k3);
                    drift.eval(ctx, tmp.view(), t_next, k4.view_mut());
                    Zip::from(&mut x)
                        .and(&k1)
                        .and(&k2)
                        .and(&k3)
                        .and(&k4)
                        .for_each(|xv, &a, &b, &c, &d| {
                            *xv += h / 6.0 * (a + 2.0 * b + 2.0 * c + d)
                        });
                }
            }
            record_f64(ctx, k + 1, n, t_next, &x);
        }
        write_back(x32, &x);
    }
}

/// out = x + h k.
fn axpy_into(out: &mut Array2<f64>, x: &Array2<f64>, h: f64, k: &Array2<f64>) {
    Zip::from(out)
        .and(x)
        .and(k)
        .for_each(|o, &xv, &kv| *o = xv + h * kv);
}

/// Evaluates the probability-flow drift F(x, t) = f(t) x − ½ g(t)² s(x, t)
/// for f64 states through the f32 score, reusing its buffers.
pub(crate) struct PfDrift {
    x32: Array2<f32>,
    s32: Array2<f32>,
}

impl PfDrift {
    pub(crate) fn new(rows: usize, d: usize) -> Self {
        PfDrift {
            x32: Array2::zeros((rows, d)),
            s32: Array2::zeros((rows, d)),
        }
    }

    /// out = f(t) x − ½ g(t)² s(x, t); one model evaluation (counted by `ctx`).
    pub(crate) fn eval(
        &mut self,
        ctx: &mut Ctx,
        x: ArrayView2<f64>,
        t: f64,
        mut out: ArrayViewMut2<f64>,
    ) {
        Zip::from(&mut self.x32)
            .and(&x)
            .for_each(|a, &b| *a = b as f32);
        ctx.score(self.x32.view(), t, self.s32.view_mut());
        let f = ctx.sde.drift_coef(t);
        let half_g2 = 0.5 * ctx.sde.diffusion(t).powi(2);
        Zip::from(&mut out)
            .and(&x)
            .and(&self.s32)
            .for_each(|o, &xv, &s| *o = f * xv - half_g2 * f64::from(s));
    }
}

/// `ctx.record` for an f64 state; converts only when a trajectory is kept.
pub(crate) fn record_f64(ctx: &mut Ctx, step: usize, n_steps: usize, t: f64, x: &Array2<f64>) {
    if ctx.rec.every.is_some() && ctx.rec.rows > 0 {
        let x32 = x.mapv(|v| v as f32);
        ctx.record(step, n_steps, t, x32.view());
    } else if ctx.bad_state.is_none() && x.iter().any(|v| !(*v as f32).is_finite()) {
        ctx.bad_state = Some((step, n_steps, t));
    }
}

/// Round the f64 state into the caller's f32 samples.
pub(crate) fn write_back(x32: &mut Array2<f32>, x: &Array2<f64>) {
    Zip::from(x32).and(x).for_each(|a, &b| *a = b as f32);
}
