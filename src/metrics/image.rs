//! Image-quality metrics built on a trained [`Classifier`]:
//!
//! - Fréchet distance of penultimate-layer features (an FID analogue):
//!   with feature means μ₁, μ₂ and covariances C₁, C₂ (f64, unbiased 1/(n−1)),
//!
//!   ```text
//!     FD = ‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2 (C₁^{1/2} C₂ C₁^{1/2})^{1/2})
//!   ```
//!
//!   The square roots use a symmetric eigen-decomposition by cyclic Jacobi
//!   rotations ([`jacobi_eigh`]); for the outer root only its trace is
//!   needed, `tr M^{1/2} = Σ √max(λᵢ(M), 0)`. The floor for a model is the
//!   same distance between the training split and the test set.
//! - The classifier's mean max-probability (confidence) and the entropy (in
//!   nats) of the histogram of predicted labels (ln 10 ≈ 2.303 when all ten
//!   digits are equally frequent; lower means missing modes).
//! - Nearest-neighbour L2 distance from each generated image to the training
//!   set (memorisation check: distances near 0 mean copies), in
//!   [`super::nearest`].
//! - [`FrechetReference`]: the reference side of FD computed once.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::nn::classifier::{argmax, Classifier};

/// Feature mean (f64) and unbiased covariance `[d, d]` (row-major) of the
/// rows of `x` (needs at least 2 rows).
pub fn mean_cov(x: ArrayView2<f32>) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = x.dim();
    let mut mu = vec![0.0f64; d];
    for r in x.rows() {
        for (m, &v) in mu.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mu.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; d * d];
    cov.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        for r in x.rows() {
            let a = r[i] as f64 - mu[i];
            for (j, c) in row.iter_mut().enumerate() {
                *c += a * (r[j] as f64 - mu[j]);
            }
        }
    });
    let denom = (n.max(2) - 1) as f64;
    cov.iter_mut().for_each(|c| *c /= denom);
    (mu, cov)
}

/// Eigen-decomposition of a symmetric `[d, d]` matrix by cyclic Jacobi
/// rotations: returns (eigenvalues λ, eigenvectors V column-wise, row-major
/// `[d, d]`) with `A = V diag(λ) Vᵀ`. Sweeps until the off-diagonal
/// Frobenius norm is below 1e-14 of the total (at most 100 sweeps).
pub fn jacobi_eigh(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _ in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j] * m[i * d + j])
            .sum();
        if off <= 1e-28 * total {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * d + p], m[q * d + q]);
                // Rotation angle zeroing m[p, q]: tan 2θ = 2 a_pq / (a_qq − a_pp).
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (mkp, mkq) = (m[k * d + p], m[k * d + q]);
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let (mpk, mqk) = (m[p * d + k], m[q * d + k]);
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| m[i * d + i]).collect(), v)
}

/// Principal square root of a symmetric PSD matrix: `V diag(√max(λ,0)) Vᵀ`.
pub fn sqrtm_psd(a: &[f64], d: usize) -> Vec<f64> {
    let (lam, v) = jacobi_eigh(a, d);
    let s: Vec<f64> = lam.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            out[i * d + j] = (0..d).map(|k| v[i * d + k] * s[k] * v[j * d + k]).sum();
        }
    }
    out
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut c = vec![0.0; d * d];
    c.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                row[j] += aik * b[k * d + j];
            }
        }
    });
    c
}

/// FD = ‖μ₁ − μ₂‖² + tr C₁ + tr C₂ − 2 tr (C₁^{1/2} C₂ C₁^{1/2})^{1/2}.
pub fn frechet_distance(mu1: &[f64], c1: &[f64], mu2: &[f64], c2: &[f64]) -> f64 {
    let d = mu1.len();
    let dm: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let s1 = sqrtm_psd(c1, d);
    let mut m = matmul(&matmul(&s1, c2, d), &s1, d);
    symmetrise(&mut m, d);
    let (lam, _) = jacobi_eigh(&m, d);
    let tr_sqrt: f64 = lam.iter().map(|&l| l.max(0.0).sqrt()).sum();
    let tr: f64 = (0..d).map(|i| c1[i * d + i] + c2[i * d + i]).sum();
    (dm + tr - 2.0 * tr_sqrt).max(0.0)
}

/// Fréchet distance between two feature sets (rows are feature vectors).
pub fn frechet_distance_features(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    let (m1, c1) = mean_cov(a);
    let (m2, c2) = mean_cov(b);
    frechet_distance(&m1, &c1, &m2, &c2)
}

/// The reference side of a Fréchet distance computed once (mean,
/// covariance, its square root and trace), for scoring many generated sets
/// against one reference: FD = ‖μ_r − μ_g‖² + tr C_r + tr C_g
/// − 2 tr (C_r^{1/2} C_g C_r^{1/2})^{1/2}, one eigen-decomposition per call.
#[derive(Clone, Debug)]
pub struct FrechetReference {
    mu: Vec<f64>,
    sqrt_cov: Vec<f64>,
    trace: f64,
}

impl FrechetReference {
    /// From reference features (rows; at least 2).
    pub fn new(reference: ArrayView2<f32>) -> Self {
        let (mu, cov) = mean_cov(reference);
        let d = mu.len();
        FrechetReference {
            trace: (0..d).map(|i| cov[i * d + i]).sum(),
            sqrt_cov: sqrtm_psd(&cov, d),
            mu,
        }
    }

    /// Fréchet distance of the feature set `generated` to the reference.
    pub fn distance(&self, generated: ArrayView2<f32>) -> f64 {
        let (mu, cov) = mean_cov(generated);
        let d = mu.len();
        let dm: f64 = mu
            .iter()
            .zip(&self.mu)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let mut m = matmul(&matmul(&self.sqrt_cov, &cov, d), &self.sqrt_cov, d);
        symmetrise(&mut m, d);
        let (lam, _) = jacobi_eigh(&m, d);
        let tr_sqrt: f64 = lam.iter().map(|&l| l.max(0.0).sqrt()).sum();
        let tr_g: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        (dm + self.trace + tr_g - 2.0 * tr_sqrt).max(0.0)
    }
}

fn symmetrise(m: &mut [f64], d: usize) {
    for i in 0..d {
        for j in i + 1..d {
            let avg = 0.5 * (m[i * d + j] + m[j * d + i]);
            m[i * d + j] = avg;
            m[j * d + i] = avg;
        }
    }
}

/// (mean max-probability, entropy in nats of the predicted-label histogram).
pub fn classifier_scores(probs: &Array2<f64>) -> (f64, f64) {
    let (n, k) = probs.dim();
    let mut hist = vec![0usize; k];
    let mut conf = 0.0;
    for r in probs.rows() {
        let s = r.as_slice().expect("contiguous rows");
        let j = argmax(s);
        hist[j] += 1;
        conf += s[j];
    }
    let ent = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum();
    (conf / n.max(1) as f64, ent)
}

pub use super::nearest::nearest_neighbor_l2;

/// Summary of generated images against a reference (test) set.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageMetrics {
    /// Fréchet distance of classifier features, generated vs reference.
    pub fd: f64,
    pub mean_max_prob: f64,
    /// Entropy (nats) of the predicted-label histogram.
    pub label_entropy: f64,
    /// Mean and minimum nearest-neighbour L2 distance to the training set
    /// (when a training set was given; cost n_gen · n_train · d).
    pub nn_mean: Option<f64>,
    pub nn_min: Option<f64>,
}

/// All metrics for `generated` (rows `[c, h, w]` in [−1, 1]) against the
/// `reference` set's features and the `train` set's pixels.
pub fn image_metrics(
    clf: &Classifier,
    generated: ArrayView2<f32>,
    reference: ArrayView2<f32>,
    train: Option<ArrayView2<f32>>,
) -> ImageMetrics {
    let (p, fg) = clf.predict(generated);
    let (_, fr) = clf.predict(reference);
    let (mean_max_prob, label_entropy) = classifier_scores(&p);
    let nn = train.map(|t| nearest_neighbor_l2(generated, t));
    ImageMetrics {
        fd: frechet_distance_features(fg.view(), fr.view()),
        mean_max_prob,
        label_entropy,
        nn_mean: nn
            .as_ref()
            .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64),
        nn_min: nn
            .as_ref()
            .map(|v| v.iter().cloned().fold(f64::INFINITY, f64::min)),
    }
}
