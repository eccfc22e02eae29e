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
//! [`crate::dopri5::dopri5`] in f64 (state [x, Δ], defaults
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
//! h = c·sigma(t) the truncation error relative to the derivative is
//! ≈ (h/sigma)⁴/30 ≤ 3e-8 for c = 2^−5, and the f32 rounding of the score
//! (u = 2^−24 relative) adds ≈ 1.5 u |s| / (h |∂s|) relative (for Gaussian
//! data 1.5 u |x − alpha mu| / h): ~1e-6 when the data spread is ~sigma, but up to ~3e-4 at small
//! t when the data spread sqrt(v) is ≫ sigma (measured in the unit test:
//! ≤ 2.7e-4 at t ≤ 0.01, ≤ 6e-6 at t ≥ 0.1). The divergence enters the
//! log-density as ½ g² ∫ tr dt, and small t carries little of that integral,
//! so end to end the NLL error measured against closed forms is ~1e-5 nats
//! (tests/likelihood.rs). h is rounded down to a power of two no smaller
//! than 2^−15 of the largest |x_j|, and the centre is put on an f32-exact
//! grid, so x ± h and x ± 2h are exact f32 values and the stencil is exactly
//! symmetric (see `fd_step`).
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

use crate::dopri5::{dopri5, Dopri5Options, Dopri5Status};
use crate::error::{Error, Result};
use crate::rng;
use crate::score::Score;
use crate::sde::Sde;

/// Stream domain of the Hutchinson probes (point i owns stream (seed, this, i)).
pub const PROBE_DOMAIN: u64 = rng::domain::LIKELIHOOD_PROBE;

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
    let mean_over = match opts.divergence {
        Divergence::Exact => 1,
        Divergence::Hutchinson { probes } => probes,
    };
    let mut stencil = Stencil::new(dirs, mean_over);
    let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
        let (xs, dlogp) = dy.split_at_mut(d);
        let trace = stencil.trace(score, t, sde.sigma(t), &y[..d]);
        let f = sde.drift_coef(t);
        let half_g2 = 0.5 * sde.diffusion(t).powi(2);
        for ((o, &yv), &sv) in xs.iter_mut().zip(&y[..d]).zip(stencil.centre_score()) {
            *o = f * yv - half_g2 * f64::from(sv);
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

/// Directional derivatives of the score by the 4th-order central stencil
/// (module doc), all evaluated in one score call of 1 + 4·(directions) rows.
struct Stencil {
    dirs: Vec<Vec<f32>>,
    /// Divide the summed quadratic forms by this (1: exact trace; K: probes).
    mean_over: usize,
    xin: Array2<f32>,
    sout: Array2<f32>,
}

impl Stencil {
    fn new(dirs: Vec<Vec<f32>>, mean_over: usize) -> Self {
        let d = dirs.first().map_or(0, Vec::len);
        let rows = 1 + 4 * dirs.len();
        Stencil {
            dirs,
            mean_over,
            xin: Array2::zeros((rows, d)),
            sout: Array2::zeros((rows, d)),
        }
    }

    /// Σ_v vᵀ ∂_v s(x, t) / mean_over, with the step of [`fd_step`]; the score
    /// at the (grid-rounded) centre is left in [`Stencil::centre_score`].
    fn trace(&mut self, score: &dyn Score, t: f64, sigma: f64, x: &[f64]) -> f64 {
        let (h, unit) = fd_step(sigma, x);
        // Centre rounded to a multiple of `unit`, so every x ± k h is exact in f32.
        for (j, v) in x.iter().enumerate() {
            self.xin[[0, j]] = ((v / unit).round() * unit) as f32;
        }
        for (q, dir) in self.dirs.iter().enumerate() {
            for (k, off) in [2.0f64, 1.0, -1.0, -2.0].iter().enumerate() {
                for (j, &dj) in dir.iter().enumerate() {
                    let centre = f64::from(self.xin[[0, j]]);
                    self.xin[[1 + 4 * q + k, j]] = (centre + off * h * f64::from(dj)) as f32;
                }
            }
        }
        score.score(self.xin.view(), t, self.sout.view_mut());
        let mut trace = 0.0;
        for (q, dir) in self.dirs.iter().enumerate() {
            let r = 1 + 4 * q;
            for (j, &dj) in dir.iter().enumerate() {
                if dj == 0.0 {
                    continue;
                }
                let s = |k: usize| f64::from(self.sout[[r + k, j]]);
                let deriv = (-s(0) + 8.0 * s(1) - 8.0 * s(2) + s(3)) / (12.0 * h);
                trace += f64::from(dj) * deriv;
            }
        }
        trace / self.mean_over as f64
    }

    /// s(x, t) at the centre of the last [`Stencil::trace`] call.
    fn centre_score(&self) -> impl Iterator<Item = &f32> {
        self.sout.row(0).into_iter()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::GaussianScore;
    use crate::sde::{VeSde, VpSde};

    /// The exact-trace stencil against tr ∂s/∂x = −d / v(t) of Gaussian data,
    /// over t from ε to T and points up to 3 std out. The score is linear,
    /// so only f32 rounding counts (module doc): measured ≤ 2.7e-4 relative
    /// at t ≤ 0.01 (where sqrt(v) ≈ 48 sigma) and ≤ 6e-6 for t ≥ 0.1.
    #[test]
    fn stencil_trace_matches_gaussian_hessian() {
        let d = 3;
        let dirs: Vec<Vec<f32>> = (0..d)
            .map(|j| (0..d).map(|k| f32::from(u8::from(k == j))).collect())
            .collect();
        let mut stencil = Stencil::new(dirs, 1);
        let vp = VpSde::default();
        let ve = VeSde {
            sigma_min: 0.01,
            sigma_max: 50.0,
            eps: 1e-5,
        };
        let mu = vec![1.0, -2.0, 0.5];
        let s = 0.5;
        let sdes: [(&dyn Sde, &dyn Score); 2] = [
            (
                &vp,
                &GaussianScore {
                    sde: vp,
                    mu: mu.clone(),
                    s,
                },
            ),
            (
                &ve,
                &GaussianScore {
                    sde: ve,
                    mu: mu.clone(),
                    s,
                },
            ),
        ];
        let mut worst = 0.0_f64;
        for (sde, score) in sdes {
            for &t in &[sde.t_eps(), 1e-3, 0.01, 0.1, 0.5, 1.0] {
                let (a, sig) = (sde.alpha(t), sde.sigma(t));
                let v = a * a * s * s + sig * sig;
                for &z in &[-3.0, -0.7, 0.0, 1.3, 3.0] {
                    let x: Vec<f64> = mu.iter().map(|m| a * m + z * v.sqrt()).collect();
                    let tr = stencil.trace(score, t, sig, &x);
                    let exact = -(d as f64) / v;
                    let rel = ((tr - exact) / exact).abs();
                    let bound = if t >= 0.1 { 2e-5 } else { 5e-4 };
                    assert!(rel < bound, "t {t}, z {z}: relative error {rel:e}");
                    worst = worst.max(rel);
                }
            }
        }
        assert!(worst > 0.0, "a zero error means the comparison is vacuous");
    }
}
