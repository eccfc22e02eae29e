//! Isotropic Gaussian mixtures with an exact log-density.
//!
//! p(x) = Σ_k w_k N(x; μ_k, σ² I), with the weights `w_k` normalised to sum
//! to one (`weights` may be given unnormalised), means `μ_k = means[k]` and one
//! common standard deviation `σ = std`.

use ndarray::Array2;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::rng::{self, domain};

/// An isotropic Gaussian mixture p(x) = Σ_k w_k N(x; μ_k, σ² I).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    /// Component means μ_k, all of the same dimension d.
    pub means: Vec<Vec<f64>>,
    /// Component weights w_k (non-negative; normalised by their sum on use).
    pub weights: Vec<f64>,
    /// The common standard deviation σ of every component.
    pub std: f64,
}

impl GaussianMixture {
    /// A mixture with equal weights w_k = 1/K.
    pub fn uniform(means: Vec<Vec<f64>>, std: f64) -> Self {
        let k = means.len();
        GaussianMixture {
            means,
            weights: vec![1.0; k],
            std,
        }
    }

    /// Dimension d of each point (0 for a mixture without components).
    pub fn dim(&self) -> usize {
        self.means.first().map_or(0, Vec::len)
    }

    /// Number of components K.
    pub fn n_modes(&self) -> usize {
        self.means.len()
    }

    /// Index of the component mean nearest to `x` and its Euclidean distance
    /// ‖x − μ_k‖.
    pub fn nearest(&self, x: &[f64]) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for (k, mu) in self.means.iter().enumerate() {
            let d2: f64 = x.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum();
            if d2 < best.1 {
                best = (k, d2);
            }
        }
        (best.0, best.1.sqrt())
    }

    /// The component point i of [`GaussianMixture::sample`]`(_, seed)` was
    /// drawn from (the first draw of its stream picks it).
    pub fn component_of(&self, seed: u64, i: usize) -> usize {
        let total: f64 = self.weights.iter().sum();
        let mut r = rng::stream(seed, domain::DATA, i as u64);
        self.pick(&mut r, total)
    }

    /// Component k with probability w_k / `total`: one uniform from `r`,
    /// inverse CDF of the weights.
    fn pick(&self, r: &mut rng::StreamRng, total: f64) -> usize {
        let u: f64 = r.random::<f64>() * total;
        let mut acc = 0.0;
        for (j, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return j;
            }
        }
        self.weights.len().saturating_sub(1)
    }

    /// Draw `n` points (shape [n, d]). Point `i` uses the stream
    /// `(seed, DATA, i)`: first a component k with probability w_k / Σ w
    /// (one uniform u, inverse CDF of the weights), then x = μ_k + σ z with
    /// z ~ N(0, I).
    pub fn sample(&self, n: usize, seed: u64) -> Array2<f32> {
        let d = self.dim();
        let total: f64 = self.weights.iter().sum();
        let mut buf = vec![0f32; n * d];
        if d > 0 {
            buf.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
                let mut r = rng::stream(seed, domain::DATA, i as u64);
                let k = self.pick(&mut r, total);
                for (v, mu) in row.iter_mut().zip(&self.means[k]) {
                    let z: f64 = StandardNormal.sample(&mut r);
                    *v = (mu + self.std * z) as f32;
                }
            });
        }
        Array2::from_shape_vec((n, d), buf).expect("shape matches buffer")
    }

    /// log p(x) = logsumexp_k [ log w_k − (d/2) log(2π σ²) − ‖x − μ_k‖² / (2σ²) ]
    /// with w_k normalised, evaluated in f64 with the max-shift log-sum-exp.
    pub fn log_prob(&self, x: &[f64]) -> f64 {
        let total: f64 = self.weights.iter().sum();
        let var = self.std * self.std;
        let log_norm = -0.5 * x.len() as f64 * (2.0 * std::f64::consts::PI * var).ln();
        let terms: Vec<f64> = self
            .means
            .iter()
            .zip(&self.weights)
            .map(|(mu, w)| {
                let d2: f64 = x.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum();
                (w / total).ln() + log_norm - d2 / (2.0 * var)
            })
            .collect();
        let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if m == f64::NEG_INFINITY {
            return m;
        }
        m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
    }
}
