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
/// at the last accepted state; see [`Dopri5Stats`].
pub fn dopri5<F>(mut f: F, t0: f64, t1: f64, y: &mut [f64], opts: &Dopri5Options) -> Dopri5Stats
where
    F: FnMut(f64, &[f64], &mut [f64]),
{
    let n = y.len();
    let mut stats = Dopri5Stats {
        status: Dopri5Status::Done,
        t: t0,
        nfe: 0,
        accepted: 0,
        rejected: 0,
    };
    if t0 == t1 {
        return stats;
    }
    let dir = (t1 - t0).signum();
    let mut k: Vec<Vec<f64>> = vec![vec![0.0; n]; 7];
    let mut y_new = vec![0.0; n];
    let mut y_stage = vec![0.0; n];
    let mut t = t0;
    f(t, y, &mut k[0]);
    stats.nfe += 1;

    // Initial step (scipy `select_initial_step`, error order 4).
    let mut h_abs = {
        let scale: Vec<f64> = y.iter().map(|v| opts.atol + v.abs() * opts.rtol).collect();
        let d0 = rms(y.iter().zip(&scale).map(|(v, s)| v / s), n);
        let d1 = rms(k[0].iter().zip(&scale).map(|(v, s)| v / s), n);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 || !d1.is_finite() {
            1e-6
        } else {
            0.01 * d0 / d1
        };
        let h0 = h0.min((t1 - t0).abs());
        for j in 0..n {
            y_stage[j] = y[j] + h0 * dir * k[0][j];
        }
        f(t + h0 * dir, &y_stage, &mut k[1]);
        stats.nfe += 1;
        let d2 = rms(
            k[1].iter()
                .zip(&k[0])
                .zip(&scale)
                .map(|((a, b), s)| (a - b) / s),
            n,
        ) / h0;
        let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.2)
        };
        let h = (100.0 * h0).min(h1);
        if h.is_finite() && h > 0.0 {
            h
        } else {
            1e-6
        }
    };

    let mut attempts = 0usize;
    while (t1 - t) * dir > 0.0 {
        let min_step = 10.0 * (next_toward(t, dir) - t).abs();
        if h_abs < min_step {
            h_abs = min_step;
        }
        let mut rejected_once = false;
        loop {
            if attempts >= opts.max_steps {
                stats.status = Dopri5Status::MaxSteps;
                stats.t = t;
                return stats;
            }
            if h_abs < min_step {
                stats.status = Dopri5Status::StepUnderflow;
                stats.t = t;
                return stats;
            }
            attempts += 1;
            let mut t_new = t + h_abs * dir;
            if (t_new - t1) * dir > 0.0 {
                t_new = t1;
            }
            let h = t_new - t;
            h_abs = h.abs();
            for s in 1..6 {
                for j in 0..n {
                    let mut acc = 0.0;
                    for (i, a) in A[s][..s].iter().enumerate() {
                        acc += a * k[i][j];
                    }
                    y_stage[j] = y[j] + h * acc;
                }
                f(t + C[s] * h, &y_stage, &mut k[s]);
            }
            for j in 0..n {
                let acc: f64 = (0..6).map(|i| B[i] * k[i][j]).sum();
                y_new[j] = y[j] + h * acc;
            }
            f(t_new, &y_new, &mut k[6]);
            stats.nfe += 6;
            let finite = y_new.iter().all(|v| v.is_finite());
            let err_norm = if finite {
                rms(
                    (0..n).map(|j| {
                        let err: f64 = (0..7).map(|i| E[i] * k[i][j]).sum::<f64>() * h;
                        err / (opts.atol + y[j].abs().max(y_new[j].abs()) * opts.rtol)
                    }),
                    n,
                )
            } else {
                f64::NAN
            };
            if err_norm < 1.0 {
                let mut factor = if err_norm == 0.0 {
                    10.0
                } else {
                    (0.9 * err_norm.powf(-0.2)).min(10.0)
                };
                if rejected_once {
                    factor = factor.min(1.0);
                }
                h_abs *= factor;
                t = t_new;
                y.copy_from_slice(&y_new);
                k.swap(0, 6); // FSAL: F(t_new, y_new) is the next first stage
                stats.accepted += 1;
                break;
            }
            // NaN (non-finite stage) shrinks by the minimum factor 0.2.
            h_abs *= (0.9 * err_norm.powf(-0.2)).max(0.2);
            rejected_once = true;
            stats.rejected += 1;
        }
    }
    stats.t = t;
    stats
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
