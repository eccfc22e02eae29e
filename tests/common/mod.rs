//! Test helpers shared by several test files.
#![allow(dead_code)]

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::RngExt;
use scoresde::rng;
use scoresde::score::Score;
use scoresde::sde::Sde;

/// Exact 2-D two-component mixture Σ_k w_k N(m_k, s_k² I) through an SDE:
/// p_t = Σ_k w_k N(alpha m_k, v_k I), v_k = alpha² s_k² + sigma².
#[derive(Clone, Debug)]
pub struct Mixture<S> {
    pub sde: S,
    pub w: [f64; 2],
    pub m: [[f64; 2]; 2],
    pub s: [f64; 2],
}

pub fn mixture<S: Sde + Clone>(sde: S) -> Mixture<S> {
    Mixture {
        sde,
        w: [0.3, 0.7],
        m: [[-1.0, -1.0], [1.5, 1.0]],
        s: [0.4, 0.6],
    }
}

impl<S: Sde + Clone> Mixture<S> {
    /// (log w_k + log N(x; alpha m_k, v_k I)) for k = 0, 1, the means and variances.
    pub fn parts(&self, x: [f64; 2], t: f64) -> ([f64; 2], [[f64; 2]; 2], [f64; 2]) {
        let (a, sig) = (self.sde.alpha(t), self.sde.sigma(t));
        let var = self.s.map(|s| a * a * s * s + sig * sig);
        let mean = self.m.map(|m| m.map(|v| a * v));
        let mut logw = [0.0; 2];
        for (k, l) in logw.iter_mut().enumerate() {
            let r2: f64 = x.iter().zip(&mean[k]).map(|(x, m)| (x - m).powi(2)).sum();
            *l = self.w[k].ln() - (2.0 * std::f64::consts::PI * var[k]).ln() - 0.5 * r2 / var[k];
        }
        (logw, mean, var)
    }

    /// log p_t(x), by log-sum-exp.
    pub fn log_density(&self, x: [f64; 2], t: f64) -> f64 {
        let (l, _, _) = self.parts(x, t);
        let top = l[0].max(l[1]);
        top + ((l[0] - top).exp() + (l[1] - top).exp()).ln()
    }

    /// n draws from p_t.
    pub fn draw(&self, n: usize, t: f64, seed: u64) -> Array2<f32> {
        let (a, sig) = (self.sde.alpha(t), self.sde.sigma(t));
        let mut x = Array2::<f32>::zeros((n, 2));
        for i in 0..n {
            let mut r = rng::stream(seed, rng::domain::DATA, i as u64);
            let k = usize::from(r.random::<f64>() >= self.w[0]);
            let sd = (a * a * self.s[k] * self.s[k] + sig * sig).sqrt();
            let mut z = [0.0f32; 2];
            rng::fill_normal(&mut r, &mut z);
            for j in 0..2 {
                x[[i, j]] = (a * self.m[k][j] + sd * f64::from(z[j])) as f32;
            }
        }
        x
    }
}

impl<S: Sde + Clone> Score for Mixture<S> {
    fn dim(&self) -> usize {
        2
    }
    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        for (xr, mut or) in x.outer_iter().zip(out.outer_iter_mut()) {
            let xv = [f64::from(xr[0]), f64::from(xr[1])];
            let (l, mean, var) = self.parts(xv, t);
            let top = l[0].max(l[1]);
            let e = l.map(|v| (v - top).exp());
            let z = e[0] + e[1];
            for (j, o) in or.iter_mut().enumerate() {
                let acc: f64 = (0..2)
                    .map(|k| e[k] / z * (-(xv[j] - mean[k][j]) / var[k]))
                    .sum();
                *o = acc as f32;
            }
        }
    }
}
