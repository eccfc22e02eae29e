//! UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework
//! for Fast Sampling of Diffusion Models"): the multistep predictor UniP-p
//! and the corrector UniC, B(h) variants bh1 and bh2, in data prediction
//! (as diffusers' `UniPCMultistepScheduler` with `predict_x0=True`).

use std::collections::VecDeque;

use ndarray::{Array2, Zip};

use super::params::SpecWriter;
use super::phi::phi;
use super::scaled::{run_scaled, Levels};
use super::{Ctx, Entry, Nfe, Params, Sampler, Schedule};
use crate::error::{Error, Result};
use crate::sde::Sde;

fn build(p: &mut Params, steps: usize, variant: Variant) -> Result<Box<dyn Sampler>> {
    let d = UniPc::new(steps, variant);
    let schedule = p.schedule(Schedule::LogSnr)?;
    let order = p.usize("order", d.order)?;
    let corrector = match p.usize("corrector", 1)? {
        0 => false,
        1 => true,
        other => return Err(Error::invalid("corrector", other, "0 or 1")),
    };
    Ok(Box::new(UniPc {
        schedule,
        order,
        corrector,
        ..d
    }))
}

pub(super) const REGISTRY: &[Entry] = &[
    Entry {
        name: "unipc",
        aliases: &["unipc-bh2", "unipc_bh2"],
        help: "UniPC, B(h) = 1 − e^{−h} (bh2), data prediction; NFE N; schedule (logsnr), order (3, 1..3), corrector (1: UniC on, 0: off)",
        build: |p: &mut Params, steps| build(p, steps, Variant::Bh2),
    },
    Entry {
        name: "unipc-bh1",
        aliases: &["unipc_bh1"],
        help: "UniPC, B(h) = h (bh1), data prediction; NFE N; schedule (logsnr), order (3, 1..3), corrector (1: UniC on, 0: off)",
        build: |p: &mut Params, steps| build(p, steps, Variant::Bh1),
    },
];

/// The B(h) of UniPC's coefficient system (paper §3.3, diffusers'
/// `solver_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// B(h) = h.
    Bh1,
    /// B(h) = 1 − e^{−h} (diffusers' default).
    Bh2,
}

/// UniPC over the N steps of a schedule (default uniform in lambda: UniPC's
/// and DPM-Solver's recommended spacing for pixel-space models, and the one
/// `dpm-solver++` uses here, so the two compare on the same grid; diffusers'
/// default spaces discrete timesteps uniformly instead).
///
/// Data-scaled variables x̃ = x/alpha, lambda = −ln σ̃; m_k = D(x̃_k^p; σ̃_k)
/// is the model at the *predicted* state of grid point k (UniC reuses it,
/// so no extra evaluation). A step of order q from point i (state x̃_i) to
/// i+1, h = lambda_{i+1} − lambda_i, uses the previous points i−k,
/// k = 1..q−1:
///
/// ```text
///   r_k = (lambda_{i−k} − lambda_i)/h,   D1_k = (m_{i−k} − m_i)/r_k,   r_q = 1
///   B = h (bh1) or 1 − e^{−h} (bh2)
///   g_j = h φ_{j+1}(−h) j! / B,  j = 1..q;   R_{jk} = r_k^{j−1}  (q × q)
///   base = e^{−h} x̃_i + (1 − e^{−h}) m_i
///   UniP-q:  x̃_{i+1}^p = base + B Σ_{k<q} ρ^p_k D1_k,
///            ρ^p = 1/2 (q = 2),  ρ^p = R[..q−1, ..q−1]^{−1} g[..q−1] (q = 3)
///   UniC-q:  x̃_{i+1}   = base + B (Σ_{k<q} ρ^c_k D1_k + ρ^c_q (m_{i+1} − m_i)),
///            ρ^c = 1/2 (q = 1),  ρ^c = R^{−1} g (q ≥ 2)
/// ```
///
/// (diffusers' sign convention hh = −h, B_h = −B, same update). Step i:
/// evaluate m_i at x̃_i^p, correct x̃_i with UniC of the previous step's
/// order (if `corrector` and i > 0), then predict x̃_{i+1}^p with order
/// q_i = min(order, i + 1) (warm-up: no history yet), and for N < 15 also
/// q_i ≤ N − i (lower order final, "only valid for < 15 inference steps"
/// as diffusers documents it and as its DPM-Solver scheduler codes it; its
/// UniPC code applies min(order, steps left) at every N, which would make
/// the last step first order at any N). The output is x̃_N^p: no
/// corrector after the last step.
///
/// B enters only where ρ = 1/2 is fixed (UniP-2 and UniC-1, as in
/// diffusers and the paper): wherever ρ comes from the solve, B ρ = B R⁻¹g
/// does not depend on B, so bh1 and bh2 coincide for UniP-3 and UniC-2/3
/// steps (and UniP-3 is then the exponential Adams–Bashforth formula of
/// `dpmpp-3m`).
///
/// Orders: UniP-p is order p; UniC raises it to p + 1 (paper, Thm 3.3).
/// Default order 3: UniPC and diffusers recommend 3 for unconditional
/// sampling (2 for guided), and every model here is unconditional; default
/// variant bh2 (diffusers' default; its docs recommend bh1 for
/// unconditional sampling below 10 steps, `unipc-bh1`). NFE = N. Any SDE (VP, sub-VP, VE).
#[derive(Clone, Debug)]
pub struct UniPc {
    pub steps: usize,
    pub schedule: Schedule,
    pub variant: Variant,
    /// 1, 2 or 3.
    pub order: usize,
    /// Apply UniC.
    pub corrector: bool,
}

impl UniPc {
    /// Order 3 with the corrector, uniform log-SNR.
    pub fn new(steps: usize, variant: Variant) -> Self {
        UniPc {
            steps,
            schedule: Schedule::LogSnr,
            variant,
            order: 3,
            corrector: true,
        }
    }

    /// x_out = base + B (Σ ρ_k D1_k [+ ρ_q (m_t − m_i)]) for the history
    /// `hist` (lambda, m) with m_i last, written as weights on the arrays.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        out: &mut Array2<f64>,
        x: &Array2<f64>,
        hist: &VecDeque<(f64, Array2<f64>)>,
        lambda_t: f64,
        q: usize,
        m_t: Option<&Array2<f64>>,
    ) {
        let (lambda_i, m_i) = hist.back().expect("one model output at least");
        let h = lambda_t - lambda_i;
        let b = match self.variant {
            Variant::Bh1 => h,
            Variant::Bh2 => -(-h).exp_m1(),
        };
        // r_k for the q − 1 previous points, then r_q = 1.
        let prev: Vec<&(f64, Array2<f64>)> = hist.iter().rev().skip(1).take(q - 1).collect();
        let mut r: Vec<f64> = prev.iter().map(|(l, _)| (l - lambda_i) / h).collect();
        r.push(1.0);
        let mut g = Vec::with_capacity(q);
        let mut fact = 1.0;
        for j in 1..=q {
            fact *= j as f64;
            g.push(h * phi(j + 1, -h) * fact / b);
        }
        let rows = |n: usize| -> Vec<Vec<f64>> {
            (0..n)
                .map(|j| r[..n].iter().map(|rk| rk.powi(j as i32)).collect())
                .collect()
        };
        let rho: Vec<f64> = match m_t {
            None if q == 1 => vec![],
            None if q == 2 => vec![0.5],
            None => solve(rows(q - 1), g[..q - 1].to_vec()),
            Some(_) if q == 1 => vec![0.5],
            Some(_) => solve(rows(q), g.clone()),
        };
        let c_x = (-h).exp();
        let mut w_i = -(-h).exp_m1();
        Zip::from(&mut *out).and(x).for_each(|o, &xv| *o = c_x * xv);
        for (k, (_, m_k)) in prev.iter().enumerate().take(rho.len().min(q - 1)) {
            let w = b * rho[k] / r[k];
            w_i -= w;
            out.scaled_add(w, m_k);
        }
        if let Some(m_t) = m_t {
            let w = b * rho[q - 1];
            w_i -= w;
            out.scaled_add(w, m_t);
        }
        out.scaled_add(w_i, m_i);
    }
}

/// Solve the small dense system A y = g (Gaussian elimination with partial
/// pivoting; A is UniPC's Vandermonde-type R, at most 3 × 3, nonsingular for
/// distinct r_k).
fn solve(mut a: Vec<Vec<f64>>, mut g: Vec<f64>) -> Vec<f64> {
    let n = g.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        g.swap(c, p);
        let gc = g[c];
        let (top, rest) = a.split_at_mut(c + 1);
        let piv = &top[c];
        for (row, gr) in rest.iter_mut().zip(g[c + 1..].iter_mut()) {
            let f = row[c] / piv[c];
            for (v, p) in row[c..].iter_mut().zip(&piv[c..]) {
                *v -= f * p;
            }
            *gr -= f * gc;
        }
    }
    let mut y = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c][k] * y[k]).sum();
        y[c] = (g[c] - s) / a[c][c];
    }
    y
}

impl Sampler for UniPc {
    fn name(&self) -> String {
        let name = match self.variant {
            Variant::Bh1 => "unipc-bh1",
            Variant::Bh2 => "unipc",
        };
        SpecWriter::new(name, self.steps)
            .schedule(&self.schedule, &Schedule::LogSnr)
            .usize("order", self.order, 3)
            .usize("corrector", usize::from(self.corrector), 1)
            .done()
    }

    fn label(&self) -> String {
        let v = match self.variant {
            Variant::Bh1 => "bh1",
            Variant::Bh2 => "bh2",
        };
        let c = if self.corrector { "" } else { ", no UniC" };
        format!("unipc_{v}({}, order={}{c})", self.steps, self.order)
    }

    fn cost(&self) -> Nfe {
        Nfe::ONE
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if !(1..=3).contains(&self.order) {
            return Err(Error::invalid("order", self.order, "1, 2 or 3"));
        }
        self.schedule.grid(sde, self.steps).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) -> Result<()> {
        let lv = Levels::new(&self.schedule.grid(ctx.sde, self.steps)?);
        let n = lv.steps();
        // The corrected state x̃_i the predictor x̃_pred (the loop's state)
        // starts from; it is x̃_pred itself on the first step.
        let mut x = Array2::<f64>::zeros(x32.raw_dim());
        let mut tmp = x.clone();
        let mut m = x.clone();
        let mut hist: VecDeque<(f64, Array2<f64>)> = VecDeque::with_capacity(self.order + 1);
        let mut q_prev = 0;
        run_scaled(ctx, x32, &lv, |ctx, i, x_pred| {
            ctx.denoise_scaled(x_pred, lv.t[i], &mut m);
            if self.corrector && i > 0 {
                // x (the state at i − 1) becomes the corrected state at i.
                self.update(&mut tmp, &x, &hist, lv.lambda[i], q_prev, Some(&m));
                std::mem::swap(&mut x, &mut tmp);
            } else {
                x.assign(x_pred);
            }
            // Keep the last `order` model outputs (reusing the oldest buffer).
            let mut slot = match hist.len() == self.order {
                true => hist.pop_front().expect("a full history").1,
                false => m.clone(),
            };
            slot.assign(&m);
            hist.push_back((lv.lambda[i], slot));
            let mut q = self.order.min(i + 1);
            if n < 15 {
                q = q.min(n - i);
            }
            self.update(x_pred, &x, &hist, lv.lambda[i + 1], q, None);
            q_prev = q;
        })
    }
}
