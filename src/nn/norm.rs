//! GroupNorm (Wu & He 2018) on NHWC batches, statistics per image and group:
//!
//! ```text
//!   μ_g = mean_{p, c∈g} x[p, c],   σ²_g = mean_{p, c∈g} (x − μ_g)²,   r_g = 1/√(σ²_g + eps)
//!   x̂ = (x − μ_g)·r_g,             y = γ_c·x̂ + β_c
//! ```
//!
//! backward, with N = pixels·(c/groups) elements per group and ĝ = dy·γ_c:
//!
//! ```text
//!   dx = r_g·(ĝ − mean_g(ĝ) − x̂·mean_g(ĝ·x̂)),   dγ_c = Σ dy·x̂,   dβ_c = Σ dy
//! ```
//!
//! Statistics accumulate in f64. Every image is normalised on its own, so an
//! image's output never depends on the rest of the batch.

use rayon::prelude::*;

/// eps of PyTorch's `nn.GroupNorm`.
pub const GN_EPS: f64 = 1e-5;

/// Forward over `images` images of `pixels × c`. `stats` receives
/// (μ, r) per image and group: `[images · groups · 2]`.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_forward(
    x: &[f32],
    images: usize,
    pixels: usize,
    c: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    stats: &mut [f64],
) {
    let per = pixels * c;
    let cg = c / groups;
    y[..images * per]
        .par_chunks_mut(per.max(1))
        .zip(stats[..images * groups * 2].par_chunks_mut(groups * 2))
        .enumerate()
        .for_each(|(b, (yi, st))| {
            let xi = &x[b * per..(b + 1) * per];
            for g in 0..groups {
                let (mut s1, mut n) = (0.0f64, 0usize);
                for p in 0..pixels {
                    for &v in &xi[p * c + g * cg..][..cg] {
                        s1 += v as f64;
                    }
                    n += cg;
                }
                let mu = s1 / n as f64;
                let mut s2 = 0.0f64;
                for p in 0..pixels {
                    for &v in &xi[p * c + g * cg..][..cg] {
                        let d = v as f64 - mu;
                        s2 += d * d;
                    }
                }
                let r = 1.0 / (s2 / n as f64 + GN_EPS).sqrt();
                st[2 * g] = mu;
                st[2 * g + 1] = r;
                for p in 0..pixels {
                    let o = p * c + g * cg;
                    for j in 0..cg {
                        let xh = ((xi[o + j] as f64 - mu) * r) as f32;
                        yi[o + j] = gamma[g * cg + j] * xh + beta[g * cg + j];
                    }
                }
            }
        });
}

/// Backward: `dx += …`, `dgamma += …`, `dbeta += …` (see module docs). The
/// per-image parameter-gradient partials are summed in image order.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    x: &[f32],
    images: usize,
    pixels: usize,
    c: usize,
    groups: usize,
    gamma: &[f32],
    stats: &[f64],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let per = pixels * c;
    let cg = c / groups;
    let mut partial = vec![0.0f64; images * 2 * c];
    dx[..images * per]
        .par_chunks_mut(per.max(1))
        .zip(partial.par_chunks_mut(2 * c))
        .enumerate()
        .for_each(|(b, (dxi, part))| {
            let xi = &x[b * per..(b + 1) * per];
            let dyi = &dy[b * per..(b + 1) * per];
            for g in 0..groups {
                let (mu, r) = (stats[(b * groups + g) * 2], stats[(b * groups + g) * 2 + 1]);
                let n = (pixels * cg) as f64;
                let (mut m1, mut m2) = (0.0f64, 0.0f64);
                for p in 0..pixels {
                    let o = p * c + g * cg;
                    for j in 0..cg {
                        let xh = (xi[o + j] as f64 - mu) * r;
                        let d = dyi[o + j] as f64;
                        let gh = d * gamma[g * cg + j] as f64;
                        m1 += gh;
                        m2 += gh * xh;
                        part[g * cg + j] += d * xh;
                        part[c + g * cg + j] += d;
                    }
                }
                m1 /= n;
                m2 /= n;
                for p in 0..pixels {
                    let o = p * c + g * cg;
                    for j in 0..cg {
                        let xh = (xi[o + j] as f64 - mu) * r;
                        let gh = dyi[o + j] as f64 * gamma[g * cg + j] as f64;
                        dxi[o + j] += (r * (gh - m1 - xh * m2)) as f32;
                    }
                }
            }
        });
    let mut acc = vec![0.0f64; 2 * c];
    for part in partial.chunks_exact(2 * c) {
        for (a, &p) in acc.iter_mut().zip(part) {
            *a += p;
        }
    }
    for j in 0..c {
        dgamma[j] += acc[j] as f32;
        dbeta[j] += acc[c + j] as f32;
    }
}
