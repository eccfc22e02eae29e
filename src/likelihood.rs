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
//! cut-off ε, as in score_sde. Every point keeps its own step sizes and
//! accept/reject decisions, but the points of a chunk advance together: each
//! stage evaluates the stencils of all running points in one score call with
//! a time per row ([`crate::dopri5::dopri5_rows_indexed`]), so a point's
//! result is the bytes of integrating it alone, for any batch or thread
//! count; chunks run in parallel.
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

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::dopri5::{dopri5_rows_indexed, Dopri5Options, Dopri5Status};
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

    // Chunks of points solved together (each point with its own steps), in
    // parallel; a point's bytes depend on neither its chunk nor the threads.
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let per_chunk: Vec<Result<Vec<(f64, usize)>>> = starts
        .into_par_iter()
        .map(|first| {
            let x = points.slice(ndarray::s![first..(first + CHUNK).min(n), ..]);
            chunk_log_prob(sde, score, x, first, opts, &ode_opts)
        })
        .collect();
    let mut per_point = Vec::with_capacity(n);
    for c in per_chunk {
        per_point.extend(c?);
    }
    let mut nll = Vec::with_capacity(n);
    let mut nfe_total = 0usize;
    for (logp, nfe) in per_point {
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

/// Points per batched solve of [`nll`]: each stage evaluates the stencils of
/// all running points of a chunk in one score call.
const CHUNK: usize = 64;

/// The stencil directions of point `i`: the coordinate axes, or its
/// Rademacher probes drawn from the point's own stream.
fn directions(opts: &LikelihoodOptions, d: usize, i: usize) -> Stencil {
    match opts.divergence {
        Divergence::Exact => Stencil {
            dirs: (0..d)
                .map(|j| (0..d).map(|k| f32::from(u8::from(k == j))).collect())
                .collect(),
            mean_over: 1,
        },
        Divergence::Hutchinson { probes } => {
            use rand::RngExt;
            let mut r = rng::stream(opts.seed, PROBE_DOMAIN, i as u64);
            Stencil {
                dirs: (0..probes)
                    .map(|_| {
                        (0..d)
                            .map(|_| if r.random::<bool>() { 1.0 } else { -1.0 })
                            .collect()
                    })
                    .collect(),
                mean_over: probes,
            }
        }
    }
}

/// log p_ε(x) and the ODE evaluations used, for each row of `x` (the points
/// `first..first + rows` of the caller), solved together by
/// [`dopri5_rows_indexed`]: state [x, Δ] per point, and per stage one
/// [`Score::score_rows`] call holding the 1 + 4·(directions) stencil rows of
/// every running point at that point's time.
fn chunk_log_prob(
    sde: &dyn Sde,
    score: &dyn Score,
    x: ArrayView2<f32>,
    first: usize,
    opts: &LikelihoodOptions,
    ode_opts: &Dopri5Options,
) -> Result<Vec<(f64, usize)>> {
    let (m, d) = x.dim();
    let stencils: Vec<Stencil> = (0..m).map(|r| directions(opts, d, first + r)).collect();
    let k = stencils.first().map_or(1, Stencil::rows);
    // Stencil buffers sized for the whole chunk once; a stage uses the
    // leading rows of the points still running.
    let (mut xin_all, mut sout_all) = (Array2::<f32>::zeros((m * k, d)), Array2::zeros((m * k, d)));
    let (mut times, mut steps) = (Vec::with_capacity(m * k), Vec::with_capacity(m));
    let rhs = |rows: &[usize], t: &[f64], ys: &[f64], dys: &mut [f64]| {
        let used = ndarray::s![..rows.len() * k, ..];
        let (mut xin, mut sout) = (xin_all.slice_mut(used), sout_all.slice_mut(used));
        times.clear();
        steps.clear();
        for (i, (&r, &ti)) in rows.iter().zip(t).enumerate() {
            let rows_i = xin.slice_mut(ndarray::s![i * k..(i + 1) * k, ..]);
            steps.push(stencils[r].fill(sde.sigma(ti), &ys[i * (d + 1)..][..d], rows_i));
            times.extend(std::iter::repeat_n(ti, k));
        }
        score.score_rows(xin.view(), &times, sout.view_mut());
        for (i, (&r, &ti)) in rows.iter().zip(t).enumerate() {
            let s_i = sout.slice(ndarray::s![i * k..(i + 1) * k, ..]);
            let trace = stencils[r].trace(s_i, steps[i]);
            let (y, dy) = (
                &ys[i * (d + 1)..][..d + 1],
                &mut dys[i * (d + 1)..][..d + 1],
            );
            let f = sde.drift_coef(ti);
            let half_g2 = 0.5 * sde.diffusion(ti).powi(2);
            for ((o, &yv), &sv) in dy[..d].iter_mut().zip(&y[..d]).zip(s_i.row(0)) {
                *o = f * yv - half_g2 * f64::from(sv);
            }
            dy[d] = d as f64 * f - half_g2 * trace;
        }
    };
    let mut y: Vec<f64> = Vec::with_capacity(m * (d + 1));
    for row in x.outer_iter() {
        y.extend(row.iter().map(|&v| f64::from(v)));
        y.push(0.0);
    }
    let stats = dopri5_rows_indexed(rhs, sde.t_eps(), sde.t_max(), &mut y, d + 1, ode_opts);
    let s = sde.prior_std();
    let mut out = Vec::with_capacity(m);
    for (r, (st, yr)) in stats.iter().zip(y.chunks_exact(d + 1)).enumerate() {
        if st.status != Dopri5Status::Done {
            return Err(Error::invalid(
                format!("likelihood ODE of point {}", first + r),
                format!("{:?} at t = {}", st.status, st.t),
                format!(
                    "reaching T = {} within max_steps = {} (loosen rtol/atol or raise max_steps)",
                    sde.t_max(),
                    ode_opts.max_steps
                ),
            ));
        }
        let sq: f64 = yr[..d].iter().map(|v| v * v).sum();
        let prior =
            -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s * s).ln() - 0.5 * sq / (s * s);
        out.push((prior + yr[d], st.nfe));
    }
    Ok(out)
}

/// Directional derivatives of the score by the 4th-order central stencil
/// (module doc): 1 + 4·(directions) score rows per evaluation, the centre
/// first.
struct Stencil {
    dirs: Vec<Vec<f32>>,
    /// Divide the summed quadratic forms by this (1: exact trace; K: probes).
    mean_over: usize,
}

impl Stencil {
    /// Score rows per evaluation.
    fn rows(&self) -> usize {
        1 + 4 * self.dirs.len()
    }

    /// Writes the stencil points of x at noise level `sigma` into `xin`
    /// ([`Stencil::rows`] rows: the centre rounded to the grid of
    /// [`fd_step`], then x ± 2h, x ± h along each direction) and returns h.
    fn fill(&self, sigma: f64, x: &[f64], mut xin: ndarray::ArrayViewMut2<f32>) -> f64 {
        let (h, unit) = fd_step(sigma, x);
        // Centre rounded to a multiple of `unit`, so every x ± k h is exact in f32.
        for (j, v) in x.iter().enumerate() {
            xin[[0, j]] = ((v / unit).round() * unit) as f32;
        }
        for (q, dir) in self.dirs.iter().enumerate() {
            for (k, off) in [2.0f64, 1.0, -1.0, -2.0].iter().enumerate() {
                for (j, &dj) in dir.iter().enumerate() {
                    let centre = f64::from(xin[[0, j]]);
                    xin[[1 + 4 * q + k, j]] = (centre + off * h * f64::from(dj)) as f32;
                }
            }
        }
        h
    }

    /// Σ_v vᵀ ∂_v s / mean_over from the scores `sout` of the rows written by
    /// [`Stencil::fill`] with step `h`.
    fn trace(&self, sout: ArrayView2<f32>, h: f64) -> f64 {
        let mut trace = 0.0;
        for (q, dir) in self.dirs.iter().enumerate() {
            let r = 1 + 4 * q;
            for (j, &dj) in dir.iter().enumerate() {
                if dj == 0.0 {
                    continue;
                }
                let s = |k: usize| f64::from(sout[[r + k, j]]);
                let deriv = (-s(0) + 8.0 * s(1) - 8.0 * s(2) + s(3)) / (12.0 * h);
                trace += f64::from(dj) * deriv;
            }
        }
        trace / self.mean_over as f64
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
        let stencil = directions(&LikelihoodOptions::default(), d, 0);
        let mut xin = Array2::<f32>::zeros((stencil.rows(), d));
        let mut sout = Array2::<f32>::zeros((stencil.rows(), d));
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
                    let h = stencil.fill(sig, &x, xin.view_mut());
                    score.score(xin.view(), t, sout.view_mut());
                    let tr = stencil.trace(sout.view(), h);
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
