//! Inpainting that acts between steps: score_sde's replacement method
//! (re-noise the known part to the current t after every step) and RePaint
//! resampling (Lugmayr et al., 2022: go back up `jump` steps by the forward
//! process and redo them, `resample` times per block). Works with any
//! [`Score`] (network, oracle, guided adapter) on any linear SDE.
//!
//! On the uniform grid t_i = ε + (T − ε) i / N, a reverse step t → s < t is
//! the ancestral (posterior) step of the linear SDE, with x̂0 from Tweedie's
//! formula, a = alpha(t)/alpha(s) and v_ts = sigma(t)² − a² sigma(s)² the
//! transition q(x_t | x_s) = N(a x_s, v_ts I):
//!
//! ```text
//!   x̂0  = (x_t + sigma(t)² s(x_t, t)) / alpha(t)
//!   x_s  = (a sigma(s)²/sigma(t)²) x_t + (alpha(s) v_ts / sigma(t)²) x̂0 + sqrt(v_ts sigma(s)²/sigma(t)²) z
//!   x_s,k ← alpha(s) v_k + sigma(s) z'        (replacement of the known part)
//! ```
//!
//! (DDPM's ancestral step on VP; no noise on the last step, whose known part
//! is set to v exactly). A jump back up s → t draws x_t = a x_s + sqrt(v_ts) z.
//! Sample i draws all its noise from stream `(seed, INPAINT, i)`, so the
//! output does not depend on the batch size or the thread count.

use ndarray::{Array2, ArrayViewMut1, ArrayViewMut2};
use rayon::prelude::*;

use super::Mask;
use crate::error::{Error, Result};
use crate::rng::{self, StreamRng};
use crate::score::Score;
use crate::sde::Sde;

/// How to run [`repaint`].
#[derive(Clone, Debug)]
pub struct RepaintOptions {
    /// Reverse steps N of the grid.
    pub steps: usize,
    /// RePaint jump length j ≥ 1 (steps gone back up at a time).
    pub jump: usize,
    /// RePaint resample count r ≥ 1 (passes through each block of j steps;
    /// r = 1 is score_sde's plain replacement).
    pub resample: usize,
    /// Number of completions.
    pub n: usize,
    /// Seed of the per-sample streams.
    pub seed: u64,
    /// Rows per chunk (does not change the output).
    pub batch: usize,
}

impl RepaintOptions {
    /// Plain replacement (r = 1) with `steps` steps, `n` completions, `seed`.
    pub fn replacement(steps: usize, n: usize, seed: u64) -> Self {
        RepaintOptions {
            steps,
            jump: 1,
            resample: 1,
            n,
            seed,
            batch: 256,
        }
    }

    fn check(&self) -> Result<()> {
        crate::sde::check_steps(self.steps)?;
        for (name, v) in [
            ("jump", self.jump),
            ("resample", self.resample),
            ("samples", self.n),
            ("batch", self.batch),
        ] {
            if v == 0 {
                return Err(Error::invalid(name, v, "an integer >= 1"));
            }
        }
        if self.jump > self.steps {
            return Err(Error::invalid(
                "jump",
                self.jump,
                format!("at most the number of steps ({})", self.steps),
            ));
        }
        Ok(())
    }
}

/// Completions and the network evaluations per completion.
#[derive(Clone, Debug)]
pub struct RepaintOutput {
    pub samples: Array2<f32>,
    pub nfe: usize,
}

/// The grid indices visited, from N down to 0: one index per move, with the
/// RePaint jumps back up (each block end i > 0 that is a multiple of `jump`
/// is passed `resample` times).
pub fn visit_order(steps: usize, jump: usize, resample: usize) -> Vec<usize> {
    let mut left: Vec<usize> = (0..=steps)
        .map(|i| {
            if i > 0 && i % jump == 0 && i + jump <= steps {
                resample - 1
            } else {
                0
            }
        })
        .collect();
    let mut order = vec![steps];
    let mut i = steps;
    while i > 0 {
        i -= 1;
        order.push(i);
        if left[i] > 0 {
            left[i] -= 1;
            for _ in 0..jump {
                i += 1;
                order.push(i);
            }
        }
    }
    order
}

/// Complete the unknown coordinates of `mask` in `n` copies of `x0` (only
/// its known entries are used) with `score`.
pub fn repaint(
    score: &dyn Score,
    sde: &dyn Sde,
    mask: &Mask,
    x0: &[f32],
    opts: &RepaintOptions,
) -> Result<RepaintOutput> {
    opts.check()?;
    let d = score.dim();
    mask.check_known(x0, d)?;
    let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
    let n = opts.steps;
    let times: Vec<f64> = (0..=n)
        .map(|i| t_eps + (t_max - t_eps) * i as f64 / n as f64)
        .collect();
    let order = visit_order(n, opts.jump, opts.resample);
    let known = mask.known_indices();
    let mut samples = Array2::<f32>::zeros((opts.n, d));
    let out = samples
        .as_slice_mut()
        .expect("a fresh Array2 is contiguous");
    let nfes: Vec<usize> = out
        .par_chunks_mut(opts.batch.saturating_mul(d))
        .enumerate()
        .map(|(c, chunk)| {
            let rows = chunk.len() / d;
            let mut x = ArrayViewMut2::from_shape((rows, d), chunk).expect("rows x d chunk");
            let mut rngs: Vec<StreamRng> = (0..rows)
                .map(|r| rng::stream(opts.seed, rng::domain::INPAINT, (c * opts.batch + r) as u64))
                .collect();
            let prior = sde.prior_std();
            for (row, rng) in x.outer_iter_mut().zip(rngs.iter_mut()) {
                fill(row, rng, |_, z| prior * z);
            }
            let mut nfe = 0;
            let mut s = Array2::<f32>::zeros((rows, d));
            for w in order.windows(2) {
                let (t, s_t) = (times[w[0]], times[w[1]]);
                if w[1] > w[0] {
                    forward(&mut x, &mut rngs, sde, (t, s_t));
                    continue;
                }
                score.score(x.view(), t, s.view_mut());
                nfe += score.evals(t);
                let last = w[1] == 0;
                reverse(&mut x, &s, &mut rngs, sde, (t, s_t), last);
                let (a, sg) = (sde.alpha(s_t), sde.sigma(s_t));
                for (mut row, rng) in x.outer_iter_mut().zip(rngs.iter_mut()) {
                    for &j in &known {
                        let v = x0[j] as f64;
                        row[j] = if last {
                            x0[j]
                        } else {
                            (a * v + sg * normal(rng)) as f32
                        };
                    }
                }
            }
            nfe
        })
        .collect();
    if samples.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFiniteSample(
            "an inpainting completion is not finite".into(),
        ));
    }
    Ok(RepaintOutput {
        samples,
        nfe: nfes.first().copied().unwrap_or(0),
    })
}

fn normal(rng: &mut StreamRng) -> f64 {
    let mut z = [0f32];
    rng::fill_normal(rng, &mut z);
    z[0] as f64
}

/// row[j] ← f(row[j], z_j) with z_j ~ N(0, 1) from `rng`, in order.
fn fill(mut row: ArrayViewMut1<f32>, rng: &mut StreamRng, f: impl Fn(f64, f64) -> f64) {
    for v in row.iter_mut() {
        *v = f(*v as f64, normal(rng)) as f32;
    }
}

/// q(x_t | x_s) draw for every row: x_t = a x_s + sqrt(v_ts) z.
fn forward(x: &mut ArrayViewMut2<f32>, rngs: &mut [StreamRng], sde: &dyn Sde, (s, t): (f64, f64)) {
    let a = sde.alpha(t) / sde.alpha(s);
    let sd = (sde.sigma(t).powi(2) - a * a * sde.sigma(s).powi(2))
        .max(0.0)
        .sqrt();
    for (row, rng) in x.outer_iter_mut().zip(rngs.iter_mut()) {
        fill(row, rng, |xv, z| a * xv + sd * z);
    }
}

/// The ancestral step t → s of the module docs (no noise if `last`).
fn reverse(
    x: &mut ArrayViewMut2<f32>,
    score: &Array2<f32>,
    rngs: &mut [StreamRng],
    sde: &dyn Sde,
    (t, s): (f64, f64),
    last: bool,
) {
    let (at, st2) = (sde.alpha(t), sde.sigma(t).powi(2));
    let (as_, ss2) = (sde.alpha(s), sde.sigma(s).powi(2));
    let a = at / as_;
    let v_ts = (st2 - a * a * ss2).max(0.0);
    let (cx, c0) = (a * ss2 / st2, as_ * v_ts / st2);
    let sd = if last { 0.0 } else { (v_ts * ss2 / st2).sqrt() };
    for ((mut row, sr), rng) in x
        .outer_iter_mut()
        .zip(score.outer_iter())
        .zip(rngs.iter_mut())
    {
        for (v, &sv) in row.iter_mut().zip(sr.iter()) {
            let xv = *v as f64;
            let x0 = (xv + st2 * sv as f64) / at;
            let z = if last { 0.0 } else { normal(rng) };
            *v = (cx * xv + c0 * x0 + sd * z) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_order_passes_each_block_resample_times() {
        assert_eq!(visit_order(3, 1, 1), vec![3, 2, 1, 0]);
        // N = 4, j = 2, r = 2: the block end 2 is passed twice.
        assert_eq!(visit_order(4, 2, 2), vec![4, 3, 2, 3, 4, 3, 2, 1, 0]);
        let o = visit_order(20, 5, 3);
        let down = o.windows(2).filter(|w| w[1] < w[0]).count();
        // Blocks ending at 5, 10, 15 redo their 5 steps twice more.
        assert_eq!(down, 20 + 3 * 2 * 5);
    }
}
