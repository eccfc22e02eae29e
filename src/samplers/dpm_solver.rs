//! DPM-Solver++(2M): multistep second-order solver of the probability-flow
//! ODE in data prediction (Lu et al. 2022, "DPM-Solver++", Algorithm 2).

use ndarray::{Array2, Zip};

use super::ctx::write_back;
use super::stepper::{entry, Info, Rule, Stepper};
use super::{Ctx, Entry, Params, Schedule};
use crate::error::Result;

pub(super) const REGISTRY: &[Entry] = &[entry::<DpmSolverStep>(
    &["dpmpp-2m", "dpmpp_2m"],
    "DPM-Solver++(2M), first-order last step; NFE N; schedule (logsnr)",
)];

/// DPM-Solver++(2M) over the N steps of a schedule from t_0 = T to t_N = ε
/// (default uniform in lambda = ln(alpha/sigma)). With the data
/// prediction D_k = x̂0(x_k, t_k) = (x_k + sigma_k² s(x_k, t_k)) / alpha_k
/// (Tweedie, as `score::x0_hat`, here in f64) and h_k = lambda_{k+1} − lambda_k:
///
/// ```text
///   x_{k+1} = (sigma_{k+1}/sigma_k) x_k − alpha_{k+1} (e^{−h_k} − 1) D̃_k
///   D̃_k = D_k                                         k = 0 or k = N−1
///   D̃_k = (1 + 1/(2 r_k)) D_k − 1/(2 r_k) D_{k−1},  r_k = h_{k−1}/h_k   otherwise
/// ```
///
/// The first step has no history, and the last step is first order
/// ("lower order final", which the paper recommends for few steps; with many
/// steps one first-order step of size h adds O(h²), so the method stays
/// second order). NFE = N. Works for any SDE with alpha, sigma > 0 (VP,
/// sub-VP, VE).
pub type DpmSolverPP = Stepper<DpmSolverStep>;

/// The update of [`DpmSolverPP`] (no keys of its own).
#[derive(Clone, Debug, Default)]
pub struct DpmSolverStep;

impl Rule for DpmSolverStep {
    const INFO: Info = Info {
        spec: "dpm-solver++",
        label: "dpm_solver++_2m",
        default_schedule: &Schedule::LogSnr,
        noisy: false,
    };

    fn parse(_: &mut Params) -> Result<Self> {
        Ok(DpmSolverStep)
    }

    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>, grid: (&Schedule, usize)) -> Result<()> {
        let sde = ctx.sde;
        let grid = grid.0.grid(sde, grid.1)?;
        let (times, n) = (grid.times(), grid.steps());
        // lambda at the grid times actually used, so h matches alpha, sigma.
        let lambdas: Vec<f64> = times.iter().map(|&t| sde.lambda(t)).collect();

        let mut x = x32.mapv(f64::from);
        let mut d_cur = Array2::<f64>::zeros(x.raw_dim());
        let mut d_prev = Array2::<f64>::zeros(x.raw_dim());
        let mut h_prev = 0.0;
        for k in 0..n {
            let (t, t_next) = (times[k], times[k + 1]);
            ctx.denoise(&x, t, &mut d_cur);
            let h = lambdas[k + 1] - lambdas[k];
            let c_x = sde.sigma(t_next) / sde.sigma(t);
            // −alpha_{k+1} (e^{−h} − 1) = −alpha_{k+1} expm1(−h) > 0.
            let c_d = -sde.alpha(t_next) * (-h).exp_m1();
            if k == 0 || k + 1 == n {
                Zip::from(&mut x)
                    .and(&d_cur)
                    .for_each(|xv, &dv| *xv = c_x * *xv + c_d * dv);
            } else {
                let r = h_prev / h;
                let (w_cur, w_prev) = (1.0 + 0.5 / r, -0.5 / r);
                Zip::from(&mut x)
                    .and(&d_cur)
                    .and(&d_prev)
                    .for_each(|xv, &dc, &dp| *xv = c_x * *xv + c_d * (w_cur * dc + w_prev * dp));
            }
            std::mem::swap(&mut d_prev, &mut d_cur);
            h_prev = h;
            ctx.record_f64(k + 1, n, t_next, &x);
        }
        write_back(x32, &x);
        Ok(())
    }
}
