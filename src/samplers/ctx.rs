//! What a sampler sees while it runs one chunk of samples: the SDE, the
//! score (every call counted as one model evaluation per sample), the
//! denoiser views derived from it, each sample's noise, and the recorder of
//! the trajectory.
//!
//! The denoiser views all come from one score call through the marginal
//! x_t = alpha(t) x0 + sigma(t) ε (Tweedie's formula):
//!
//! ```text
//!   x̂0(x, t) = (x + sigma(t)² s(x, t)) / alpha(t)      ε̂(x, t) = −sigma(t) s(x, t)
//!   F(x, t)  = f(t) x − ½ g(t)² s(x, t)                 (probability-flow drift)
//! ```

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Zip};

use super::brownian::BrownianTree;
use super::Noise;
use crate::rng::{self, StreamRng};
use crate::score::Score;
use crate::sde::Sde;

/// What a sampler sees while it runs one chunk of samples.
pub struct Ctx<'a> {
    pub sde: &'a dyn Sde,
    score: &'a dyn Score,
    rngs: Vec<StreamRng>,
    brownian: Option<BrownianTree>,
    nfe: usize,
    pub(super) rec: Recorder,
    /// First non-finite state offered to `record` (step, steps, t) and first
    /// non-finite score output (evaluation, t), for the error of
    /// [`super::sample`] when the samples end non-finite.
    pub(super) bad: BadValues,
    x32: Array2<f32>,
    s32: Array2<f32>,
}

/// Where a chunk's values first went non-finite (see [`Ctx`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BadValues {
    pub(super) state: Option<(usize, usize, f64)>,
    pub(super) score: Option<(usize, f64)>,
}

impl<'a> Ctx<'a> {
    /// A context for rows `start..start + rows` of a run with `seed`.
    pub(super) fn new(
        sde: &'a dyn Sde,
        score: &'a dyn Score,
        seed: u64,
        start: usize,
        rows: usize,
        noise: Noise,
        rec: Recorder,
    ) -> Self {
        let rngs = (start..start + rows)
            .map(|i| rng::stream(seed, rng::domain::SAMPLER, i as u64))
            .collect();
        let d = score.dim();
        let brownian = match noise {
            Noise::Steps => None,
            Noise::Brownian => Some(BrownianTree::new(seed, start, rows, d, sde.t_max())),
        };
        Ctx {
            sde,
            score,
            rngs,
            brownian,
            nfe: 0,
            rec,
            bad: BadValues::default(),
            x32: Array2::zeros((0, 0)),
            s32: Array2::zeros((0, 0)),
        }
    }

    /// s(x, t) into `out`; counts the score's network evaluations per
    /// sample ([`Score::evals`]: one for a plain network or oracle).
    pub fn score(&mut self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.nfe += self.score.evals(t);
        self.score.score(x, t, out.view_mut());
        if self.bad.score.is_none() && out.iter().any(|v| !v.is_finite()) {
            self.bad.score = Some((self.nfe, t));
        }
    }

    /// x̂0 = (x + sigma(t)² s(x, t)) / alpha(t) into `out`, in f32. One NFE.
    pub fn x0(&mut self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.score(x, t, out.view_mut());
        let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
        let (s2, inv_alpha) = ((sigma * sigma) as f32, (1.0 / alpha) as f32);
        Zip::from(&mut out)
            .and(&x)
            .for_each(|o, &xv| *o = (xv + s2 * *o) * inv_alpha);
    }

    /// (x̃ − D(x̃; σ̃)) / σ̃ for the data-scaled state x̃ = x / alpha(t) at
    /// noise level `sigma_tilde` ≈ sigma(t)/alpha(t), in f32: with
    /// x = alpha(t) x̃ it is −(sigma(t)² / (alpha(t) σ̃)) s(x, t), i.e. ε̂ when
    /// σ̃ = sigma(t)/alpha(t). One NFE.
    pub fn eps_scaled(
        &mut self,
        x_tilde: &Array2<f32>,
        t: f64,
        sigma_tilde: f64,
        out: &mut Array2<f32>,
    ) {
        let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
        let a = alpha as f32;
        let (mut xs, mut sc) = self.scratch32(x_tilde.nrows(), x_tilde.ncols());
        Zip::from(&mut xs)
            .and(x_tilde)
            .for_each(|o, &xv| *o = a * xv);
        self.score(xs.view(), t, sc.view_mut());
        let c = (-sigma * sigma / (alpha * sigma_tilde)) as f32;
        Zip::from(out).and(&sc).for_each(|o, &s| *o = c * s);
        self.x32 = xs;
        self.s32 = sc;
    }

    /// x̂0 = (x + sigma(t)² s(x, t)) / alpha(t) for an f64 state, in f64 (the
    /// score sees an f32 copy of x). One NFE.
    pub fn denoise(&mut self, x: &Array2<f64>, t: f64, out: &mut Array2<f64>) {
        let sc = self.score_f64(x.view(), t);
        let (alpha, sigma) = (self.sde.alpha(t), self.sde.sigma(t));
        let sigma2 = sigma * sigma;
        Zip::from(out)
            .and(x)
            .and(&sc)
            .for_each(|d, &xv, &sv| *d = (xv + sigma2 * f64::from(sv)) / alpha);
        self.s32 = sc;
    }

    /// D(x̃; σ̃(t)) for a data-scaled f64 state x̃ = x / alpha(t): x̂0 of
    /// x = alpha(t) x̃, in f64 (k-diffusion's denoiser). One NFE.
    pub fn denoise_scaled(&mut self, x_tilde: &Array2<f64>, t: f64, out: &mut Array2<f64>) {
        let alpha = self.sde.alpha(t);
        let (mut xs, mut sc) = self.scratch32(x_tilde.nrows(), x_tilde.ncols());
        Zip::from(&mut xs)
            .and(x_tilde)
            .for_each(|o, &xv| *o = (alpha * xv) as f32);
        self.score(xs.view(), t, sc.view_mut());
        let sigma2 = self.sde.sigma(t).powi(2);
        Zip::from(out)
            .and(x_tilde)
            .and(&sc)
            .for_each(|d, &xv, &sv| *d = (alpha * xv + sigma2 * f64::from(sv)) / alpha);
        self.x32 = xs;
        self.s32 = sc;
    }

    /// F(x, t) = f(t) x − ½ g(t)² s(x, t) for an f64 state. One NFE.
    pub fn pf_drift(&mut self, x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>) {
        let sc = self.score_f64(x, t);
        let f = self.sde.drift_coef(t);
        let half_g2 = 0.5 * self.sde.diffusion(t).powi(2);
        Zip::from(&mut out)
            .and(&x)
            .and(&sc)
            .for_each(|o, &xv, &s| *o = f * xv - half_g2 * f64::from(s));
        self.s32 = sc;
    }

    /// F(x_i, t_i) = f(t_i) x_i − ½ g(t_i)² s(x_i, t_i) for rows at their own
    /// times, in one [`Score::score_rows`] call (row i as a call of that row
    /// alone). Not counted: a sampler using it reports its NFE itself.
    pub fn pf_drift_rows(&mut self, x: ArrayView2<f64>, t: &[f64], mut out: ArrayViewMut2<f64>) {
        let (mut xs, mut sc) = self.scratch32(x.nrows(), x.ncols());
        Zip::from(&mut xs).and(&x).for_each(|a, &b| *a = b as f32);
        self.score.score_rows(xs.view(), t, sc.view_mut());
        if self.bad.score.is_none() {
            if let Some(i) = sc
                .outer_iter()
                .position(|r| r.iter().any(|v| !v.is_finite()))
            {
                self.bad.score = Some((self.nfe, t[i]));
            }
        }
        for (((mut o, xr), sr), &ti) in out
            .outer_iter_mut()
            .zip(x.outer_iter())
            .zip(sc.outer_iter())
            .zip(t)
        {
            let f = self.sde.drift_coef(ti);
            let half_g2 = 0.5 * self.sde.diffusion(ti).powi(2);
            Zip::from(&mut o)
                .and(&xr)
                .and(&sr)
                .for_each(|o, &xv, &s| *o = f * xv - half_g2 * f64::from(s));
        }
        self.x32 = xs;
        self.s32 = sc;
    }

    /// The f32 score of an f64 state (returned buffer is the s32 scratch).
    fn score_f64(&mut self, x: ArrayView2<f64>, t: f64) -> Array2<f32> {
        let (mut xs, mut sc) = self.scratch32(x.nrows(), x.ncols());
        Zip::from(&mut xs).and(&x).for_each(|a, &b| *a = b as f32);
        self.score(xs.view(), t, sc.view_mut());
        self.x32 = xs;
        sc
    }

    fn scratch32(&mut self, rows: usize, d: usize) -> (Array2<f32>, Array2<f32>) {
        if self.x32.dim() != (rows, d) {
            self.x32 = Array2::zeros((rows, d));
            self.s32 = Array2::zeros((rows, d));
        }
        (std::mem::take(&mut self.x32), std::mem::take(&mut self.s32))
    }

    /// Fill `z` with N(0, 1) noise, row i from sample i's own stream.
    pub fn normal(&mut self, z: &mut Array2<f32>) {
        for (mut row, rng) in z.outer_iter_mut().zip(self.rngs.iter_mut()) {
            if let Some(sl) = row.as_slice_mut() {
                rng::fill_normal(rng, sl);
            } else {
                let mut buf = row.to_vec();
                rng::fill_normal(rng, &mut buf);
                row.assign(&ndarray::ArrayView1::from(&buf));
            }
        }
    }

    /// N(0, I) noise for the step from time `t` to time `s`: the next draws of
    /// each sample's stream (`noise=steps`), or the normalised increment
    /// (W(t) − W(s)) / sqrt(|t − s|) of each sample's own Brownian motion
    /// (`noise=brownian`), which makes runs with different step counts see
    /// the same noise path.
    pub fn noise(&mut self, t: f64, s: f64, z: &mut Array2<f32>) {
        let done = match &mut self.brownian {
            Some(tree) => tree.increment(t, s, z),
            None => false,
        };
        if !done {
            self.normal(z);
        }
    }

    /// Whether the last step of a reverse-SDE solver carries its noise too.
    /// With per-step streams it does not (score_sde's noise-free last step);
    /// with Brownian noise it does, so the output is the path at t = ε and
    /// refining the grid converges pathwise (a noise-free last step would
    /// leave a difference of order g(ε) sqrt(h) between N and 2N steps).
    pub fn noisy_last_step(&self) -> bool {
        self.brownian.is_some()
    }

    /// Record the state after step `step` of `n_steps` (1-based) at time `t`.
    /// Kept every `record_every` steps and always at the last step.
    pub fn record(&mut self, step: usize, n_steps: usize, t: f64, x: ArrayView2<f32>) {
        if self.bad.state.is_none() && x.iter().any(|v| !v.is_finite()) {
            self.bad.state = Some((step, n_steps, t));
        }
        self.rec.offer(step, n_steps, t, x);
    }

    /// [`Ctx::record`] for an f64 state; converts only when a trajectory is kept.
    pub fn record_f64(&mut self, step: usize, n_steps: usize, t: f64, x: &Array2<f64>) {
        if self.rec.wants(step, n_steps) {
            let x32 = x.mapv(|v| v as f32);
            self.record(step, n_steps, t, x32.view());
        } else if self.bad.state.is_none() && x.iter().any(|v| !(*v as f32).is_finite()) {
            self.bad.state = Some((step, n_steps, t));
        }
    }

    /// Set the per-sample evaluation count (a sampler that evaluates rows
    /// separately reports their mean).
    pub(super) fn set_nfe(&mut self, nfe: usize) {
        self.nfe = nfe;
    }

    /// Model evaluations per sample used so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }
}

/// The update every first-order sampler step shares:
///
/// ```text
///   x ← c_x x + c_s s + c_z z,   z ~ N(0, I), the noise of the step t → t_next
/// ```
///
/// With `c_z = None` (the last step) no noise is drawn at all.
#[allow(clippy::too_many_arguments)]
pub(crate) fn affine_update(
    ctx: &mut Ctx,
    x: &mut Array2<f32>,
    score: &Array2<f32>,
    z: &mut Array2<f32>,
    c_x: f32,
    c_s: f32,
    c_z: Option<f32>,
    (t, t_next): (f64, f64),
) {
    match c_z {
        None => Zip::from(&mut *x)
            .and(score)
            .for_each(|xv, &s| *xv = c_x * *xv + c_s * s),
        Some(c_z) => {
            ctx.noise(t, t_next, z);
            Zip::from(&mut *x)
                .and(score)
                .and(&*z)
                .for_each(|xv, &s, &zv| *xv = c_x * *xv + c_s * s + c_z * zv);
        }
    }
}

/// Round an f64 state into the caller's f32 samples.
pub(crate) fn write_back(x32: &mut Array2<f32>, x: &Array2<f64>) {
    Zip::from(x32).and(x).for_each(|a, &b| *a = b as f32);
}

/// Keeps every k-th state of the first `rows` rows of a chunk.
pub(super) struct Recorder {
    pub(super) every: Option<usize>,
    pub(super) rows: usize,
    pub(super) times: Vec<f64>,
    pub(super) frames: Vec<Array2<f32>>,
}

impl Recorder {
    fn wants(&self, step: usize, n_steps: usize) -> bool {
        match self.every {
            None => false,
            Some(every) => self.rows > 0 && (step.is_multiple_of(every) || step == n_steps),
        }
    }

    fn offer(&mut self, step: usize, n_steps: usize, t: f64, x: ArrayView2<f32>) {
        if !self.wants(step, n_steps) {
            return;
        }
        self.times.push(t);
        self.frames.push(x.slice(s![..self.rows, ..]).to_owned());
    }
}
