//! Adaptive Dormand–Prince RK5(4) (the method of scipy's `RK45`, which
//! score_sde uses for its ODE sampler and likelihood): a generic integrator
//! [`dopri5`] over an f64 state vector and a derivative closure, used by the
//! `ode-rk45` sampler and by the likelihood.

use crate::error::{Error, Result};

/// Tolerances and the step cap of [`dopri5`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dopri5Options {
    /// Relative tolerance (> 0).
    pub rtol: f64,
    /// Absolute tolerance (> 0).
    pub atol: f64,
    /// Most step attempts (accepted + rejected) before giving up.
    pub max_steps: usize,
}

impl Dopri5Options {
    /// scipy / score_sde defaults rtol = atol = 1e-5, at most 100 000 attempts.
    pub const DEFAULT: Dopri5Options = Dopri5Options {
        rtol: 1e-5,
        atol: 1e-5,
        max_steps: 100_000,
    };

    /// Error naming the first parameter outside its range.
    pub fn check(&self) -> Result<()> {
        if !(self.rtol > 0.0 && self.rtol.is_finite()) {
            return Err(Error::invalid("rtol", self.rtol, "a finite number > 0"));
        }
        if !(self.atol > 0.0 && self.atol.is_finite()) {
            return Err(Error::invalid("atol", self.atol, "a finite number > 0"));
        }
        if self.max_steps == 0 {
            return Err(Error::invalid("max_steps", 0, "an integer >= 1"));
        }
        Ok(())
    }
}

impl Default for Dopri5Options {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How an integration ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dopri5Status {
    /// Reached the end time.
    Done,
    /// Used `max_steps` attempts first.
    MaxSteps,
    /// The step size fell below 10 ulp of t (tolerance not reachable, or the
    /// derivative is not finite).
    StepUnderflow,
}

/// What one integration did. On failure `y` holds the last accepted (finite)
/// state, at time `t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dopri5Stats {
    pub status: Dopri5Status,
    /// Time reached.
    pub t: f64,
    /// Derivative evaluations.
    pub nfe: usize,
    pub accepted: usize,
    pub rejected: usize,
}

// Dormand–Prince 5(4) tableau (Dormand & Prince 1980; as in scipy RK45).
const C: [f64; 6] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0];
const A: [[f64; 5]; 6] = [
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
];
/// Fifth-order weights (the solution is propagated with these).
const B: [f64; 6] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
];
/// B − B̂ (fifth minus embedded fourth order) over the 7 stages; the 7th stage
/// is F(t + h, y_new), which is also the next step's first stage (FSAL).
const E: [f64; 7] = [
    -71.0 / 57600.0,
    0.0,
    71.0 / 16695.0,
    -71.0 / 1920.0,
    17253.0 / 339200.0,
    -22.0 / 525.0,
    1.0 / 40.0,
];

/// RMS norm sqrt(mean(v²)).
fn rms(v: impl Iterator<Item = f64>, n: usize) -> f64 {
    (v.map(|x| x * x).sum::<f64>() / n.max(1) as f64).sqrt()
}

/// Integrate dy/dt = F(t, y) from `t0` to `t1` (either direction) in place,
/// with Dormand–Prince 5(4), FSAL, and scipy's error control:
///
/// ```text
///   err  = h Σ_i E_i K_i,      scale_j = atol + rtol max(|y_j|, |y_new_j|)
///   ‖e‖  = sqrt(mean_j (err_j / scale_j)²)        accept iff ‖e‖ < 1
///   h   ← h · clamp(0.9 ‖e‖^(−1/5), 0.2, 10)       (≤ 1 right after a rejection)
/// ```
///
/// and scipy's initial step (Hairer, Nørsett & Wanner, II.4), which costs one
/// extra evaluation. A step whose new state is not finite is rejected. The
/// loop ends after `max_steps` attempts or when |h| < 10 ulp(t), leaving `y`
/// at the last accepted state; see [`Dopri5Stats`]. One system of
/// [`dopri5_rows`].
pub fn dopri5<F>(mut f: F, t0: f64, t1: f64, y: &mut [f64], opts: &Dopri5Options) -> Dopri5Stats
where
    F: FnMut(f64, &[f64], &mut [f64]),
{
    let n = y.len();
    let field = |t: &[f64], ys: &[f64], dys: &mut [f64]| {
        for ((&ti, yr), dr) in t
            .iter()
            .zip(ys.chunks_exact(n))
            .zip(dys.chunks_exact_mut(n))
        {
            f(ti, yr, dr)
        }
    };
    let done = Dopri5Stats {
        status: Dopri5Status::Done,
        t: t1,
        nfe: 0,
        accepted: 0,
        rejected: 0,
    };
    dopri5_rows(field, t0, t1, y, n.max(1), opts)
        .pop()
        .unwrap_or(done) // an empty state has nothing to integrate
}

/// [`dopri5`] for many independent systems of dimension `n` at once: `y`
/// holds one state per row (`[rows, n]`, row-major), and every row keeps its
/// own time, step size, accept/reject decisions and statistics, exactly as
/// if it were integrated alone. The field is called once per stage for all
/// rows still running, `f(t, ys, dys)` with `ys`/`dys` the `[m, n]` states
/// and derivatives of those rows and `t[i]` the time of row i. If row i of
/// the result depends only on row i of the input (and `t[i]`), each row
/// gets the same bytes as a solve of that row alone. Rows leave the call as
/// they finish, so it shrinks as the solve goes on.
pub fn dopri5_rows<F>(
    mut f: F,
    t0: f64,
    t1: f64,
    y: &mut [f64],
    n: usize,
    opts: &Dopri5Options,
) -> Vec<Dopri5Stats>
where
    F: FnMut(&[f64], &[f64], &mut [f64]),
{
    dopri5_rows_indexed(|_, t, ys, dys| f(t, ys, dys), t0, t1, y, n, opts)
}

/// [`dopri5_rows`] with the field also told which rows it is evaluating:
/// `f(rows, t, ys, dys)`, `rows[i]` the index (into `y`) of the i-th row of
/// `ys`, for fields with per-row data (e.g. a point's own random probes).
pub fn dopri5_rows_indexed<F>(
    mut f: F,
    t0: f64,
    t1: f64,
    y: &mut [f64],
    n: usize,
    opts: &Dopri5Options,
) -> Vec<Dopri5Stats>
where
    F: FnMut(&[usize], &[f64], &[f64], &mut [f64]),
{
    let rows = y.len() / n.max(1);
    let mut stats = vec![
        Dopri5Stats {
            status: Dopri5Status::Done,
            t: t0,
            nfe: 0,
            accepted: 0,
            rejected: 0,
        };
        rows
    ];
    if t0 == t1 || rows == 0 {
        return stats;
    }
    let dir = (t1 - t0).signum();
    let mut k: Vec<Vec<f64>> = vec![vec![0.0; rows * n]; 7];
    let mut y_new = vec![0.0; rows * n];
    let mut y_stage = vec![0.0; rows * n];
    let mut rs = vec![RowState::default(); rows];
    for r in &mut rs {
        r.t = t0;
    }
    let mut active: Vec<usize> = (0..rows).collect();
    let mut ev = Evaluator::default();
    ev.run(&mut f, &active, |_| t0, y, &mut k[0], n);

    // Initial step (scipy `select_initial_step`, error order 4).
    let mut scales = vec![0.0; n];
    let mut h0s = vec![0.0; rows];
    for r in 0..rows {
        let (yr, k0) = (&y[r * n..][..n], &k[0][r * n..][..n]);
        for (sc, v) in scales.iter_mut().zip(yr) {
            *sc = opts.atol + v.abs() * opts.rtol;
        }
        let d0 = rms(yr.iter().zip(&scales).map(|(v, s)| v / s), n);
        let d1 = rms(k0.iter().zip(&scales).map(|(v, s)| v / s), n);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 || !d1.is_finite() {
            1e-6
        } else {
            0.01 * d0 / d1
        };
        let h0 = h0.min((t1 - t0).abs());
        for j in 0..n {
            y_stage[r * n + j] = yr[j] + h0 * dir * k0[j];
        }
        h0s[r] = h0;
        rs[r].d1 = d1;
    }
    ev.run(
        &mut f,
        &active,
        |r| t0 + h0s[r] * dir,
        &y_stage,
        &mut k[1],
        n,
    );
    for r in 0..rows {
        let (yr, k0, k1) = (&y[r * n..][..n], &k[0][r * n..][..n], &k[1][r * n..][..n]);
        for (sc, v) in scales.iter_mut().zip(yr) {
            *sc = opts.atol + v.abs() * opts.rtol;
        }
        let (h0, d1) = (h0s[r], rs[r].d1);
        let d2 = rms(
            k1.iter()
                .zip(k0)
                .zip(&scales)
                .map(|((a, b), s)| (a - b) / s),
            n,
        ) / h0;
        let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.2)
        };
        let h = (100.0 * h0).min(h1);
        rs[r].h_abs = if h.is_finite() && h > 0.0 { h } else { 1e-6 };
        rs[r].new_step = true;
        stats[r].nfe = 2;
    }

    loop {
        active.retain(|&r| rs[r].begin_attempt(t1, dir, opts, &mut stats[r]));
        if active.is_empty() {
            return stats;
        }
        for s in 1..6 {
            for &r in &active {
                let h = rs[r].h;
                for j in 0..n {
                    let mut acc = 0.0;
                    for (i, a) in A[s][..s].iter().enumerate() {
                        acc += a * k[i][r * n + j];
                    }
                    y_stage[r * n + j] = y[r * n + j] + h * acc;
                }
            }
            let (done, todo) = k.split_at_mut(s);
            let _ = done;
            ev.run(
                &mut f,
                &active,
                |r| rs[r].t + C[s] * rs[r].h,
                &y_stage,
                &mut todo[0],
                n,
            );
        }
        for &r in &active {
            let h = rs[r].h;
            for j in 0..n {
                let acc: f64 = (0..6).map(|i| B[i] * k[i][r * n + j]).sum();
                y_new[r * n + j] = y[r * n + j] + h * acc;
            }
        }
        let (head, k6) = k.split_at_mut(6);
        let _ = head;
        ev.run(&mut f, &active, |r| rs[r].t_new, &y_new, &mut k6[0], n);
        for &r in &active {
            stats[r].nfe += 6;
            let (h, o) = (rs[r].h, r * n);
            let finite = y_new[o..o + n].iter().all(|v| v.is_finite());
            let err_norm = if finite {
                rms(
                    (0..n).map(|j| {
                        let err: f64 = (0..7).map(|i| E[i] * k[i][o + j]).sum::<f64>() * h;
                        err / (opts.atol + y[o + j].abs().max(y_new[o + j].abs()) * opts.rtol)
                    }),
                    n,
                )
            } else {
                f64::NAN
            };
            let st = &mut rs[r];
            if err_norm < 1.0 {
                let mut factor = if err_norm == 0.0 {
                    10.0
                } else {
                    (0.9 * err_norm.powf(-0.2)).min(10.0)
                };
                if st.rejected_once {
                    factor = factor.min(1.0);
                }
                st.h_abs *= factor;
                st.t = st.t_new;
                st.new_step = true;
                y[o..o + n].copy_from_slice(&y_new[o..o + n]);
                // FSAL: F(t_new, y_new) is the next first stage.
                let (k0, rest) = k.split_at_mut(1);
                k0[0][o..o + n].copy_from_slice(&rest[5][o..o + n]);
                stats[r].accepted += 1;
            } else {
                // NaN (non-finite stage) shrinks by the minimum factor 0.2.
                st.h_abs *= (0.9 * err_norm.powf(-0.2)).max(0.2);
                st.rejected_once = true;
                stats[r].rejected += 1;
            }
        }
    }
}

/// Where one row of [`dopri5_rows`] stands.
#[derive(Clone, Copy, Debug, Default)]
struct RowState {
    t: f64,
    h_abs: f64,
    /// Step and end time of the current attempt.
    h: f64,
    t_new: f64,
    min_step: f64,
    attempts: usize,
    rejected_once: bool,
    /// The last attempt was accepted (or none was made): a new step starts.
    new_step: bool,
    /// Initial-step scratch: ‖F(t0, y0)‖ scaled.
    d1: f64,
}

impl RowState {
    /// Set up the next attempt; false (with the final status) if the row is
    /// finished: end time reached, attempts used up, or step underflow.
    fn begin_attempt(
        &mut self,
        t1: f64,
        dir: f64,
        opts: &Dopri5Options,
        st: &mut Dopri5Stats,
    ) -> bool {
        if self.new_step {
            if (t1 - self.t) * dir <= 0.0 || (t1 - self.t).is_nan() {
                st.status = Dopri5Status::Done;
                st.t = self.t;
                return false;
            }
            self.min_step = 10.0 * (next_toward(self.t, dir) - self.t).abs();
            if self.h_abs < self.min_step {
                self.h_abs = self.min_step;
            }
            self.rejected_once = false;
            self.new_step = false;
        }
        if self.attempts >= opts.max_steps {
            st.status = Dopri5Status::MaxSteps;
            st.t = self.t;
            return false;
        }
        if self.h_abs < self.min_step {
            st.status = Dopri5Status::StepUnderflow;
            st.t = self.t;
            return false;
        }
        self.attempts += 1;
        let mut t_new = self.t + self.h_abs * dir;
        if (t_new - t1) * dir > 0.0 {
            t_new = t1;
        }
        self.t_new = t_new;
        self.h = t_new - self.t;
        self.h_abs = self.h.abs();
        true
    }
}

/// Gathers the running rows into one field call and scatters the result.
#[derive(Default)]
struct Evaluator {
    t: Vec<f64>,
    x: Vec<f64>,
    dx: Vec<f64>,
}

impl Evaluator {
    /// `dst[r] = F(time(r), src[r])` for every row r in `active`.
    fn run<F>(
        &mut self,
        f: &mut F,
        active: &[usize],
        time: impl Fn(usize) -> f64,
        src: &[f64],
        dst: &mut [f64],
        n: usize,
    ) where
        F: FnMut(&[usize], &[f64], &[f64], &mut [f64]),
    {
        let m = active.len();
        if m * n == src.len() {
            // Every row is running (they stay in order): no gather.
            self.t.clear();
            self.t.extend(active.iter().map(|&r| time(r)));
            f(active, &self.t, src, dst);
            return;
        }
        self.t.clear();
        self.x.clear();
        for &r in active {
            self.t.push(time(r));
            self.x.extend_from_slice(&src[r * n..][..n]);
        }
        self.dx.resize(m * n, 0.0);
        f(active, &self.t, &self.x, &mut self.dx);
        for (&r, d) in active.iter().zip(self.dx.chunks_exact(n)) {
            dst[r * n..][..n].copy_from_slice(d);
        }
    }
}

/// The next float after `t` in direction `dir` (±1).
fn next_toward(t: f64, dir: f64) -> f64 {
    let target = if dir > 0.0 {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    };
    if t == target {
        return t;
    }
    if t == 0.0 {
        return dir * f64::from_bits(1);
    }
    let bits = t.to_bits();
    let away_from_zero = (t > 0.0) == (dir > 0.0);
    f64::from_bits(if away_from_zero { bits + 1 } else { bits - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y' = −2 t y has y(t) = y0 exp(−t²): forward and backward solves
    /// reach the closed form within a few multiples of the tolerance.
    #[test]
    fn gaussian_decay_both_directions() {
        let opts = Dopri5Options::DEFAULT;
        let f = |t: f64, y: &[f64], dy: &mut [f64]| dy[0] = -2.0 * t * y[0];
        let mut y = [1.5];
        let st = dopri5(f, 0.0, 2.0, &mut y, &opts);
        assert_eq!(st.status, Dopri5Status::Done);
        assert!((y[0] - 1.5 * (-4.0f64).exp()).abs() < 1e-4, "{y:?} {st:?}");
        let mut back = [1.5 * (-4.0f64).exp()];
        let st = dopri5(f, 2.0, 0.0, &mut back, &opts);
        assert!((back[0] - 1.5).abs() < 1e-4 * 1.5, "{back:?} {st:?}");
    }
}
