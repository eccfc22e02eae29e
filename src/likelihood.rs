//! Negative log-likelihood through the probability-flow ODE (Song et al.
//! 2021, appendix D.2; score_sde `likelihood.py`).
//!
//! A point x = x(ε) is carried forward along the ODE together with the
//! instantaneous change of variables (Chen et al. 2018):
//!
//! ```text
//!   dx/dt      = F(x, t) = f(t) x − ½ g(t)² s(x, t)
//!   dΔ/dt      = div F(x, t) = d f(t) − ½ g(t)² tr(∂s/∂x)
//!   log p_ε(x) = log p_T(x(T)) + Δ(T),      Δ(ε) = 0
//! ```
//!
//! integrated from ε to T with the adaptive Dormand–Prince core
//! [`crate::samplers::dopri5`] in f64 (state [x, Δ], defaults
//! rtol = atol = 1e-5 as score_sde). p_T is the SDE's prior
//! N(0, prior_std² I). The value reported is the model density at the
//! cut-off ε, as in score_sde. Every point is integrated on its own (own step
//! sizes; batch-independent), points in parallel.
//!
//! **Divergence.** `Score` gives values only, so tr(∂s/∂x) comes from
//! directional derivatives by the fourth-order central difference
//!
//! ```text
//!   ∂_v s(x) ≈ [−s(x+2hv) + 8 s(x+hv) − 8 s(x−hv) + s(x−2hv)] / (12 h)
//! ```
//!
//! - [`Divergence::Exact`]: tr = Σ_j e_jᵀ ∂_{e_j} s, 4d score rows per
//!   evaluation (for small d).
//! - [`Divergence::Hutchinson`]: tr ≈ mean over K Rademacher probes v of
//!   vᵀ ∂_v s (Hutchinson–Skilling), 4K rows, probes drawn once per point
//!   from its own stream and held fixed along the path, so Δ(T) is an
//!   unbiased estimate of ∫ tr.
//!
//! Step h: p_t is p_0 (scaled by alpha) smoothed by N(0, sigma(t)²), so the
//! k-th derivative of the score is of order sigma^−(k+1) at most. With
//! h = c·sigma(t) the truncation error of the stencil relative to the
//! derivative is ≈ (h/sigma)⁴/30, and the f32 rounding of the score
//! (u = 2^−24 relative) adds ≈ 1.5 u sigma/h. c = 2^−5 balances the two at a
//! relative error of ~3e-6 per directional derivative — far below the ODE
//! tolerance. h is rounded down to a power of two no smaller than 2^−15 of
//! the largest |x_j| (≥ 256 ulp), so x ± h and x ± 2h are exact in f32 and the
//! stencil is exactly symmetric.
//!
//! **Units.** Nats per dimension −log p / d and bits per dimension
//! −log p / (d ln 2). For 8-bit images scaled into an interval of width w
//! (w = 1 for [0, 1], w = 2 for [−1, 1]), set `image_range = Some(w)`: the
//! discrete likelihood of dequantised data is the density of the scaled data
//! times the bin volume (w/256)^d, so bits/dim gains log2(256/w) (8 or 7),
//! score_sde's `offset = 7 − inverse_scaler(−1)`. Uniform dequantisation noise
//! is the caller's job (add U(0, w/256) to the points before calling).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng;
use crate::samplers::{dopri5, Dopri5Options, Dopri5Status};
use crate::score::Score;
use crate::sde::Sde;

/// Stream domain of the Hutchinson probes (point i owns stream (seed, this, i)).
pub const PROBE_DOMAIN: u64 = 0x4c49_4b45;

/// How tr(∂s/∂x) is computed; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// Sum of d coordinate directional derivatives (4d score rows).
    Exact,
    /// Mean of `probes` Rademacher quadratic forms (4·probes score rows).
    Hutchinson { probes: usize },
}

/// Options of [`nll`].
#[derive(Clone, Copy, Debug)]
pub struct LikelihoodOptions {
    pub rtol: f64,
    pub atol: f64,
    /// Most step attempts per point.
    pub max_steps: usize,
    pub divergence: Divergence,
    /// Seed of the Hutchinson probes.
    pub seed: u64,
    /// Width of the interval 8-bit images were scaled into (adds
    /// log2(256/w) to bits/dim); None for continuous data.
    pub image_range: Option<f64>,
}

impl Default for LikelihoodOptions {
    /// rtol = atol = 1e-5, exact divergence, continuous data.
    fn default() -> Self {
        let d = Dopri5Options::DEFAULT;
        LikelihoodOptions {
            rtol: d.rtol,
            atol: d.atol,
            max_steps: d.max_steps,
            divergence: Divergence::Exact,
            seed: 0,
            image_range: None,
        }
    }
}

/// Per-point results and their mean ± standard error.
#[derive(Clone, Debug)]
pub struct NllReport {
    /// −log p_ε(x_i) in nats, per point (whole vector, not per dimension).
    pub nll: Vec<f64>,
    /// Bits per dimension per point (with the image offset if any).
    pub bpd: Vec<f64>,
    /// Mean nats per dimension and its standard error.
    pub nats_per_dim: f64,
    pub nats_per_dim_se: f64,
    /// Mean bits per dimension and its standard error.
    pub bits_per_dim: f64,
    pub bits_per_dim_se: f64,
    /// ODE right-hand-side evaluations per point (mean, rounded up).
    pub nfe: usize,
    /// Score rows evaluated per point (mean, rounded up): nfe × (1 + 4d) for
    /// the exact divergence, nfe × (1 + 4·probes) for Hutchinson.
    pub score_rows: usize,
}

/// −log p_ε of every row of `points` (shape [n, d], d = score.dim()) through
/// the probability-flow ODE; see the module doc.
pub fn nll(
    sde: &dyn Sde,
    score: &dyn Score,
    points: ArrayView2<f32>,
    opts: &LikelihoodOptions,
) -> Result<NllReport> {
    let (n, d) = points.dim();
    let ode_opts = Dopri5Options {
        rtol: opts.rtol,
        atol: opts.atol,
        max_steps: opts.max_steps,
    };
    ode_opts.check()?;
    if n == 0 {
        return Err(Error::invalid("points", 0, "at least one point"));
    }
    if d != score.dim() {
        return Err(Error::Mismatch(format!(
            "points have dimension {d} but the score model has {}",
            score.dim()
        )));
    }
    if let Some((i, _)) = points
        .outer_iter()
        .enumerate()
        .find(|(_, r)| r.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::invalid("point", i, "finite coordinates"));
    }
    if let Divergence::Hutchinson { probes: 0 } = opts.divergence {
        return Err(Error::invalid("probes", 0, "an integer >= 1"));
    }
    if let Some(w) = opts.image_range {
        if !(w > 0.0 && w.is_finite()) {
            return Err(Error::invalid("image_range", w, "a finite width > 0"));
        }
    }

    let per_point: Vec<Result<(f64, usize)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            point_log_prob(
                sde,
                score,
                points.index_axis(Axis(0), i),
                i,
                opts,
                &ode_opts,
            )
        })
        .collect();
    let mut nll = Vec::with_capacity(n);
    let mut nfe_total = 0usize;
    for r in per_point {
        let (logp, nfe) = r?;
        nll.push(-logp);
        nfe_total += nfe;
    }
    let offset = opts.image_range.map_or(0.0, |w| (256.0 / w).log2());
    let df = d as f64;
    let bpd: Vec<f64> = nll
        .iter()
        .map(|v| v / (df * std::f64::consts::LN_2) + offset)
        .collect();
    let npd: Vec<f64> = nll.iter().map(|v| v / df).collect();
    let (nats_per_dim, nats_per_dim_se) = mean_se(&npd);
    let (bits_per_dim, bits_per_dim_se) = mean_se(&bpd);
    let nfe = nfe_total.div_ceil(n);
    let rows_per_eval = 1 + 4 * match opts.divergence {
        Divergence::Exact => d,
        Divergence::Hutchinson { probes } => probes,
    };
    Ok(NllReport {
        nll,
        bpd,
        nats_per_dim,
        nats_per_dim_se,
        bits_per_dim,
        bits_per_dim_se,
        nfe,
        score_rows: (nfe_total * rows_per_eval).div_ceil(n),
    })
}

/// Mean and standard error sqrt(var / n) (0 for one value).
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// log p_ε(x) and the ODE evaluations used, for point `i`.
fn point_log_prob(
    sde: &dyn Sde,
    score: &dyn Score,
    x: ndarray::ArrayView1<f32>,
    i: usize,
    opts: &LikelihoodOptions,
    ode_opts: &Dopri5Options,
) -> Result<(f64, usize)> {
    let d = x.len();
    // Directions: coordinate axes, or Rademacher probes from the point's stream.
    let dirs: Vec<Vec<f32>> = match opts.divergence {
        Divergence::Exact => (0..d)
            .map(|j| (0..d).map(|k| if k == j { 1.0 } else { 0.0 }).collect())
            .collect(),
        Divergence::Hutchinson { probes } => {
            use rand::RngExt;
            let mut r = rng::stream(opts.seed, PROBE_DOMAIN, i as u64);
            (0..probes)
                .map(|_| {
                    (0..d)
                        .map(|_| if r.random::<bool>() { 1.0 } else { -1.0 })
                        .collect()
                })
                .collect()
        }
    };
    let m = dirs.len();
    let mut xin = Array2::<f32>::zeros((1 + 4 * m, d));
    let mut sout = Array2::<f32>::zeros((1 + 4 * m, d));
    let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
        let (xs, dlogp) = dy.split_at_mut(d);
        let (h, unit) = fd_step(sde.sigma(t), &y[..d]);
        // Centre rounded to a multiple of `unit`, so every x ± k h is exact in f32.
        for (j, v) in y[..d].iter().enumerate() {
            xin[[0, j]] = ((v / unit).round() * unit) as f32;
        }
        for (q, dir) in dirs.iter().enumerate() {
            for (k, off) in [2.0f64, 1.0, -1.0, -2.0].iter().enumerate() {
                let row = 1 + 4 * q + k;
                for j in 0..d {
                    xin[[row, j]] = (f64::from(xin[[0, j]]) + off * h * f64::from(dir[j])) as f32;
                }
            }
        }
        score.score(xin.view(), t, sout.view_mut());
        let f = sde.drift_coef(t);
        let half_g2 = 0.5 * sde.diffusion(t).powi(2);
        for j in 0..d {
            xs[j] = f * y[j] - half_g2 * f64::from(sout[[0, j]]);
        }
        let mut trace = 0.0;
        for (q, dir) in dirs.iter().enumerate() {
            let r = 1 + 4 * q;
            for j in 0..d {
                if dir[j] == 0.0 {
                    continue;
                }
                let s = |k: usize| f64::from(sout[[r + k, j]]);
                let deriv = (-s(0) + 8.0 * s(1) - 8.0 * s(2) + s(3)) / (12.0 * h);
                trace += f64::from(dir[j]) * deriv;
            }
        }
        if let Divergence::Hutchinson { probes } = opts.divergence {
            trace /= probes as f64; // mean over probes; the exact trace is a sum
        }
        dlogp[0] = d as f64 * f - half_g2 * trace;
    };
    let mut y: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    y.push(0.0);
    let stats = dopri5(rhs, sde.t_eps(), sde.t_max(), &mut y, ode_opts);
    if stats.status != Dopri5Status::Done {
        return Err(Error::invalid(
            format!("likelihood ODE of point {i}"),
            format!("{:?} at t = {}", stats.status, stats.t),
            format!(
                "reaching T = {} within max_steps = {} (loosen rtol/atol or raise max_steps)",
                sde.t_max(),
                ode_opts.max_steps
            ),
        ));
    }
    let s = sde.prior_std();
    let sq: f64 = y[..d].iter().map(|v| v * v).sum();
    let prior = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s * s).ln() - 0.5 * sq / (s * s);
    Ok((prior + y[d], stats.nfe))
}

/// Finite-difference step h and grid `unit` for a state x at noise level sigma:
/// h = the largest power of two ≤ max(sigma/32, 2^−15 max|x_j|), and
/// unit = 2^(e−23) with 2^(e−1) ≤ max|x_j| + 2h < 2^e. Multiples of `unit`
/// below 2^e in magnitude are exact f32 values and h is a multiple of
/// `unit`, so a centre on the `unit` grid makes x ± h, x ± 2h exact.
fn fd_step(sigma: f64, x: &[f64]) -> (f64, f64) {
    let x_max = x.iter().fold(0.0_f64, |a, v| a.max(v.abs()));
    let h = pow2_floor((sigma / 32.0).max(x_max * 2f64.powi(-15)).max(1e-30));
    let e = pow2_floor(x_max + 2.0 * h) * 2.0;
    (h, e * 2f64.powi(-23))
}

/// Largest power of two ≤ v (v > 0, finite).
fn pow2_floor(v: f64) -> f64 {
    2f64.powi(v.log2().floor() as i32)
}
