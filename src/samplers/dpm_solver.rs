//! DPM-Solver++(2M): multistep second-order solver of the probability-flow
//! ODE in data prediction (Lu et al. 2022, "DPM-Solver++", Algorithm 2).

use ndarray::{Array2, Zip};

use super::ode::{record_f64, write_back};
use super::{Ctx, Sampler};
use crate::error::Result;
use crate::sde::{check_steps, Sde};

/// DPM-Solver++(2M) over N steps uniform in lambda = ln(alpha/sigma), from
/// t_0 = T to t_N = ε (t_k = `t_of_lambda`(lambda_k)). With the data
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
#[derive(Clone, Debug)]
pub struct DpmSolverPP {
    pub steps: usize,
}

impl Sampler for DpmSolverPP {
    fn name(&self) -> String {
        format!("dpm_solver++_2m({})", self.steps)
    }

    fn validate(&self, _sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)
    }

    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) {
        let sde = ctx.sde;
        let n = self.steps;
        let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
        let (lam_max, lam_min) = (sde.lambda(t_eps), sde.lambda(t_max));
        let times: Vec<f64> = (0..=n)
            .map(|k| match k {
                0 => t_max,
                k if k == n => t_eps,
                k => sde.t_of_lambda(lam_min + (lam_max - lam_min) * k as f64 / n as f64),
            })
            .collect();
        // lambda at the grid times actually used, so h matches alpha, sigma.
        let lambdas: Vec<f64> = times.iter().map(|&t| sde.lambda(t)).collect();

        let mut x = x32.mapv(f64::from);
        let mut xin = Array2::<f32>::zeros(x.raw_dim());
        let mut s = Array2::<f32>::zeros(x.raw_dim());
        let mut d_cur = Array2::<f64>::zeros(x.raw_dim());
        let mut d_prev = Array2::<f64>::zeros(x.raw_dim());
        let mut h_prev = 0.0;
        for k in 0..n {
            let (t, t_next) = (times[k], times[k + 1]);
            Zip::from(&mut xin).and(&x).for_each(|a, &b| *a = b as f32);
            ctx.score(xin.view(), t, s.view_mut());
            let (alpha, sigma) = (sde.alpha(t), sde.sigma(t));
            let sigma2 = sigma * sigma;
            Zip::from(&mut d_cur)
                .and(&x)
                .and(&s)
                .for_each(|dv, &xv, &sv| *dv = (xv + sigma2 * f64::from(sv)) / alpha);

            let h = lambdas[k + 1] - lambdas[k];
            let c_x = sde.sigma(t_next) / sigma;
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
            record_f64(ctx, k + 1, n, t_next, &x);
        }
        write_back(x32, &x);
    }
}
