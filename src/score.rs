//! The `Score` trait: anything that gives s(x, t) ≈ ∇_x log p_t(x).
//!
//! A trained network (whatever it predicts internally: ε, or a σ-scaled
//! output) and an exact oracle look the same to a sampler. Conversions to
//! the other common parameterisations use the SDE's marginal
//! x_t = alpha(t) x0 + sigma(t) ε:
//!
//! ```text
//!   ε̂(x,t)  = -sigma(t) s(x,t)
//!   x̂0(x,t) = (x + sigma(t)² s(x,t)) / alpha(t)        (Tweedie)
//! ```

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::sde::Sde;

/// A score function over d-dimensional points.
pub trait Score: Send + Sync {
    /// Dimension d of each point.
    fn dim(&self) -> usize;

    /// Write s(x_i, t) for every row x_i of `x` (shape [n, d]) into `out`
    /// (same shape). Row i of the result depends only on row i of `x`, so
    /// results do not depend on how rows are batched.
    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>);

    /// Write s(x_i, t_i) for every row x_i of `x` at its own time `t[i]`
    /// (`t.len()` = rows). Row i must be bit-identical to
    /// `score(x_i, t[i])` on that row alone, so a solver that moves every
    /// sample on its own clock (adaptive RK45, the likelihood ODE) can
    /// evaluate them in one call. The default groups the rows by equal time
    /// and calls [`Score::score`] once per group; networks whose time input
    /// is per row anyway override it with one batched call.
    fn score_rows(&self, x: ArrayView2<f32>, t: &[f64], out: ArrayViewMut2<f32>) {
        score_rows_grouped(self, x, t, out);
    }

    /// Short human-readable description (for reports).
    fn describe(&self) -> String {
        format!("score(d={})", self.dim())
    }

    /// Network evaluations one call of [`Score::score`] at time `t` costs
    /// per row: 1 for a plain network or oracle; an adapter that calls
    /// several (classifier-free guidance: the conditional and the
    /// unconditional pass) returns their sum, so the NFE a sampler reports
    /// counts every network call.
    fn evals(&self, t: f64) -> usize {
        let _ = t;
        1
    }
}

/// [`Score::score_rows`] by groups of equal time (compared bitwise), each
/// group gathered into one [`Score::score`] call; rows keep their bytes.
pub fn score_rows_grouped<S: Score + ?Sized>(
    score: &S,
    x: ArrayView2<f32>,
    t: &[f64],
    mut out: ArrayViewMut2<f32>,
) {
    let n = x.nrows();
    assert_eq!(t.len(), n, "t must have one time per row of x");
    if n == 0 {
        return;
    }
    if t.iter().all(|v| v.to_bits() == t[0].to_bits()) {
        score.score(x, t[0], out);
        return;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (t[i].to_bits(), i));
    let d = x.ncols();
    let mut start = 0;
    while start < n {
        let tb = t[order[start]].to_bits();
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| t[i].to_bits() == tb)
                .count();
        let rows = &order[start..end];
        let xs = x.select(ndarray::Axis(0), rows);
        let mut os = ndarray::Array2::<f32>::zeros((rows.len(), d));
        score.score(xs.view(), t[rows[0]], os.view_mut());
        for (k, &i) in rows.iter().enumerate() {
            out.row_mut(i).assign(&os.row(k));
        }
        start = end;
    }
}

/// ε̂ = -sigma(t) s(x,t), written into `out`. One model evaluation.
pub fn eps_hat(
    score: &dyn Score,
    sde: &dyn Sde,
    x: ArrayView2<f32>,
    t: f64,
    mut out: ArrayViewMut2<f32>,
) {
    score.score(x, t, out.view_mut());
    let neg_sigma = -sde.sigma(t) as f32;
    out.mapv_inplace(|s| neg_sigma * s);
}

/// x̂0 = (x + sigma(t)² s(x,t)) / alpha(t) (Tweedie's formula), written into `out`.
/// One model evaluation.
pub fn x0_hat(
    score: &dyn Score,
    sde: &dyn Sde,
    x: ArrayView2<f32>,
    t: f64,
    mut out: ArrayViewMut2<f32>,
) {
    score.score(x, t, out.view_mut());
    let (sigma, alpha) = (sde.sigma(t), sde.alpha(t));
    let s2 = (sigma * sigma) as f32;
    let inv_alpha = (1.0 / alpha) as f32;
    Zip::from(&mut out)
        .and(&x)
        .for_each(|o, &xv| *o = (xv + s2 * *o) * inv_alpha);
}

/// Score adapter that clips the denoised estimate to the data range
/// `[-clip, clip]` ("thresholding", as DDPM/DDIM image samplers do):
///
/// ```text
///   x̂0 = (x + sigma² s) / alpha,   x̂0ᶜ = clamp(x̂0, -clip, clip),   s̃ = (alpha x̂0ᶜ - x) / sigma²
/// ```
///
/// Elements whose x̂0 already lies in the range keep the inner score bit for
/// bit. Why it matters: x̂0 divides by alpha, which is 0.0067 at t = T on
/// the VP SDE, so at high noise a trained network's x̂0 is mostly error (the
/// MNIST U-Net of docs/images.md: RMS error 2.4 at t = 1, against pixel values
/// in [-1, 1]). Deterministic samplers (DDIM, the ODE solvers, DPM-Solver++)
/// follow it to the end and give saturated noise; DDPM and Euler–Maruyama
/// re-inject noise and mostly recover. Clipping bounds x̂0 by the data range.
/// Computed in f64 per element (sigma² is ~4e-4 at t = ε).
pub struct ClipX0<'a> {
    pub inner: &'a dyn Score,
    pub sde: &'a dyn Sde,
    pub clip: f64,
}

impl ClipX0<'_> {
    /// Clip x̂0 of every row i of the inner score `out`, row i at `time(i)`.
    fn clip_rows(
        &self,
        x: ArrayView2<f32>,
        time: impl Fn(usize) -> f64,
        mut out: ArrayViewMut2<f32>,
    ) {
        for (i, (xr, mut or)) in x.outer_iter().zip(out.outer_iter_mut()).enumerate() {
            let t = time(i);
            let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
            let s2 = sigma * sigma;
            Zip::from(&mut or).and(&xr).for_each(|o, &xv| {
                let x0 = (xv as f64 + s2 * *o as f64) / alpha;
                if x0.abs() > self.clip {
                    *o = ((alpha * x0.clamp(-self.clip, self.clip) - xv as f64) / s2) as f32;
                }
            });
        }
    }
}

impl Score for ClipX0<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn evals(&self, t: f64) -> usize {
        self.inner.evals(t)
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.inner.score(x, t, out.view_mut());
        self.clip_rows(x, |_| t, out);
    }

    fn score_rows(&self, x: ArrayView2<f32>, t: &[f64], mut out: ArrayViewMut2<f32>) {
        self.inner.score_rows(x, t, out.view_mut());
        self.clip_rows(x, |i| t[i], out);
    }

    fn describe(&self) -> String {
        format!(
            "{} with x̂0 clipped to ±{}",
            self.inner.describe(),
            self.clip
        )
    }
}

/// Exact score of isotropic Gaussian data N(mu, s² I) pushed through an SDE:
/// p_t = N(alpha(t) mu, (alpha(t)² s² + sigma(t)²) I), so
/// s(x,t) = -(x - alpha(t) mu) / (alpha(t)² s² + sigma(t)²).
#[derive(Clone, Debug)]
pub struct GaussianScore<S> {
    pub sde: S,
    pub mu: Vec<f64>,
    pub s: f64,
}

impl<S: Sde> GaussianScore<S> {
    /// The score of row i at time `time(i)`.
    fn rows(&self, x: ArrayView2<f32>, time: impl Fn(usize) -> f64, mut out: ArrayViewMut2<f32>) {
        for (i, (xr, mut or)) in x.outer_iter().zip(out.outer_iter_mut()).enumerate() {
            let t = time(i);
            let a = self.sde.alpha(t);
            let var = a * a * self.s * self.s + self.sde.sigma(t).powi(2);
            for ((o, &xv), m) in or.iter_mut().zip(xr.iter()).zip(&self.mu) {
                *o = (-(xv as f64 - a * m) / var) as f32;
            }
        }
    }
}

impl<S: Sde + Clone> Score for GaussianScore<S> {
    fn dim(&self) -> usize {
        self.mu.len()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.rows(x, |_| t, out);
    }

    fn score_rows(&self, x: ArrayView2<f32>, t: &[f64], out: ArrayViewMut2<f32>) {
        self.rows(x, |i| t[i], out);
    }

    fn describe(&self) -> String {
        format!("exact Gaussian N(mu, {}^2 I) score", self.s)
    }
}
