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
//! The sums run per channel over the pixels (contiguous rows of `c`
//! values, f64 accumulators) and are then folded into groups:
//! `Σ_g ĝ = Σ_{c∈g} γ_c·Σ_p dy`, `Σ_g ĝ·x̂ = Σ_{c∈g} γ_c·Σ_p dy·x̂`. The
//! elementwise passes (`y`, `dx`) run in f32. Every image is normalised on
//! its own, so an image's output never depends on the rest of the batch.

use rayon::prelude::*;

use crate::backend::simd::dispatch_simd;

/// eps of PyTorch's `nn.GroupNorm`.
pub const GN_EPS: f64 = 1e-5;

/// `acc[c] += Σ_p x[p, c]`, or with `mu` given `acc[c] += Σ_p (x[p, c] − mu[c])²` (f64).
fn channel_sums(x: &[f32], mu: Option<&[f64]>, acc: &mut [f64]) {
    dispatch_simd!(channel_sums_generic(x, mu, acc))
}

#[inline(always)]
fn channel_sums_generic(x: &[f32], mu: Option<&[f64]>, acc: &mut [f64]) {
    let c = acc.len();
    match mu {
        None => {
            for row in x.chunks_exact(c) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
        }
        Some(mu) => {
            for row in x.chunks_exact(c) {
                for ((a, &v), &m) in acc.iter_mut().zip(row).zip(mu) {
                    let d = v as f64 - m;
                    *a += d * d;
                }
            }
        }
    }
}

/// Per-channel `(μ, r)` of one image from its per-channel statistics: the
/// group values broadcast to every channel of the group.
fn group_stats(s1: &[f64], s2: &[f64], groups: usize, n: f64, mu: &mut [f64], r: &mut [f64]) {
    let cg = s1.len() / groups;
    for g in 0..groups {
        let ch = g * cg..(g + 1) * cg;
        let m = s1[ch.clone()].iter().sum::<f64>() / n;
        mu[ch].fill(m);
        if !s2.is_empty() {
            let v = s2[g * cg..(g + 1) * cg].iter().sum::<f64>() / n;
            r[g * cg..(g + 1) * cg].fill(1.0 / (v + GN_EPS).sqrt());
        }
    }
}

/// Forward over `images` images of `pixels × c`. `stats` receives
/// (μ, r) per image and group: `[images · groups · 2]`. With `silu`, `y`
/// is SiLU of the normalised value (in place).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_forward(
    x: &[f32],
    images: usize,
    pixels: usize,
    c: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    silu: bool,
    y: &mut [f32],
    stats: &mut [f64],
) {
    let per = pixels * c;
    let run = |b: usize, yi: &mut [f32], st: &mut [f64]| {
        let xi = &x[b * per..(b + 1) * per];
        norm_image(xi, c, groups, gamma, beta, yi, st);
        if silu {
            super::layers::silu_in_place(yi);
        }
    };
    y[..images * per]
        .par_chunks_mut(per.max(1))
        .zip(stats[..images * groups * 2].par_chunks_mut(groups * 2))
        .enumerate()
        .for_each(|(b, (yi, st))| run(b, yi, st));
}

/// [`group_norm_forward`] keeping both values (training): the normalised
/// `y` and `s = SiLU(y)`, each image's SiLU taken while it is in cache
/// (the bits of [`super::layers::silu`] over `y`).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_silu_forward(
    x: &[f32],
    images: usize,
    pixels: usize,
    c: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    s: &mut [f32],
    stats: &mut [f64],
) {
    let per = pixels * c;
    y[..images * per]
        .par_chunks_mut(per.max(1))
        .zip(s[..images * per].par_chunks_mut(per.max(1)))
        .zip(stats[..images * groups * 2].par_chunks_mut(groups * 2))
        .enumerate()
        .for_each(|(b, ((yi, si), st))| {
            norm_image(&x[b * per..(b + 1) * per], c, groups, gamma, beta, yi, st);
            super::layers::silu(yi, si);
        });
}

/// One image: statistics into `st` (`[groups · 2]`), normalised values into `yi`.
fn norm_image(
    xi: &[f32],
    c: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    yi: &mut [f32],
    st: &mut [f64],
) {
    let cg = c / groups;
    let n = (xi.len() / c.max(1) * cg) as f64;
    let mut v = vec![0.0f64; 4 * c];
    let (s1, rest) = v.split_at_mut(c);
    let (s2, rest) = rest.split_at_mut(c);
    let (mu, r) = rest.split_at_mut(c);
    channel_sums(xi, None, s1);
    group_stats(s1, &[], groups, n, mu, r);
    channel_sums(xi, Some(mu), s2);
    group_stats(s1, s2, groups, n, mu, r);
    for g in 0..groups {
        st[2 * g] = mu[g * cg];
        st[2 * g + 1] = r[g * cg];
    }
    let mu32: Vec<f32> = mu.iter().map(|&m| m as f32).collect();
    let r32: Vec<f32> = r.iter().map(|&m| m as f32).collect();
    norm_apply_plain(xi, &mu32, &r32, gamma, beta, yi);
}

/// `y[p, c] = γ_c·(x[p, c] − μ_c)·r_c + β_c` (f32).
fn norm_apply_plain(x: &[f32], mu: &[f32], r: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32]) {
    // (dispatch_simd! returns from the function it expands in)
    dispatch_simd!(norm_apply_generic(x, mu, r, gamma, beta, y))
}

#[inline(always)]
fn norm_apply_generic(
    x: &[f32],
    mu: &[f32],
    r: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
) {
    let c = mu.len();
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for j in 0..c {
            yr[j] = gamma[j] * ((xr[j] - mu[j]) * r[j]) + beta[j];
        }
    }
}

/// `sdy[c] += Σ_p dy[p, c]`, `sdx[c] += Σ_p dy[p, c]·(x[p, c] − μ_c)·r_c` (f64).
fn grad_sums(x: &[f32], dy: &[f32], mu: &[f64], r: &[f64], sdy: &mut [f64], sdx: &mut [f64]) {
    dispatch_simd!(grad_sums_generic(x, dy, mu, r, sdy, sdx))
}

#[inline(always)]
fn grad_sums_generic(
    x: &[f32],
    dy: &[f32],
    mu: &[f64],
    r: &[f64],
    sdy: &mut [f64],
    sdx: &mut [f64],
) {
    let c = mu.len();
    for (xr, dr) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
        for j in 0..c {
            let d = dr[j] as f64;
            sdy[j] += d;
            sdx[j] += d * ((xr[j] as f64 - mu[j]) * r[j]);
        }
    }
}

/// `dx[p, c] += r_c·(γ_c·dy[p, c] − m1_c − (x[p, c] − μ_c)·r_c·m2_c)` (f32).
/// With `set`, `dx = 0 + …` (the bits of adding into zeros, old value not read).
fn grad_apply(x: &[f32], dy: &[f32], coef: &[[f32; 5]], dx: &mut [f32], set: bool) {
    if set {
        dispatch_simd!(grad_apply_set(x, dy, coef, dx))
    } else {
        dispatch_simd!(grad_apply_add(x, dy, coef, dx))
    }
}

#[inline(always)]
fn grad_apply_set(x: &[f32], dy: &[f32], coef: &[[f32; 5]], dx: &mut [f32]) {
    grad_apply_generic::<true>(x, dy, coef, dx)
}

#[inline(always)]
fn grad_apply_add(x: &[f32], dy: &[f32], coef: &[[f32; 5]], dx: &mut [f32]) {
    grad_apply_generic::<false>(x, dy, coef, dx)
}

#[inline(always)]
fn grad_apply_generic<const SET: bool>(x: &[f32], dy: &[f32], coef: &[[f32; 5]], dx: &mut [f32]) {
    let c = coef.len();
    for ((dxr, xr), dr) in dx
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        for (j, &[mu, r, gamma, m1, m2]) in coef.iter().enumerate() {
            let xh = (xr[j] - mu) * r;
            let old = if SET { 0.0 } else { dxr[j] };
            dxr[j] = old + r * (gamma * dr[j] - m1 - xh * m2);
        }
    }
}

/// Backward: `dx += …` (with `overwrite`, `dx = 0 + …`, old value not
/// read), `dgamma += …`, `dbeta += …` (see module docs). The per-image
/// parameter-gradient partials are summed in image order.
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
    overwrite: bool,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let per = pixels * c;
    let (cg, n) = (c / groups, (pixels * (c / groups)) as f64);
    let mut partial = vec![0.0f64; images * 2 * c];
    dx[..images * per]
        .par_chunks_mut(per.max(1))
        .zip(partial.par_chunks_mut(2 * c))
        .enumerate()
        .for_each(|(b, (dxi, part))| {
            let xi = &x[b * per..(b + 1) * per];
            let dyi = &dy[b * per..(b + 1) * per];
            let st = &stats[b * groups * 2..(b + 1) * groups * 2];
            let mu: Vec<f64> = (0..c).map(|j| st[2 * (j / cg)]).collect();
            let r: Vec<f64> = (0..c).map(|j| st[2 * (j / cg) + 1]).collect();
            let (sdx, sdy) = part.split_at_mut(c);
            grad_sums(xi, dyi, &mu, &r, sdy, sdx);
            let mut coef = vec![[0.0f32; 5]; c];
            for g in 0..groups {
                let ch = g * cg..(g + 1) * cg;
                let (mut m1, mut m2) = (0.0f64, 0.0f64);
                for j in ch.clone() {
                    m1 += gamma[j] as f64 * sdy[j];
                    m2 += gamma[j] as f64 * sdx[j];
                }
                let (m1, m2) = ((m1 / n) as f32, (m2 / n) as f32);
                for j in ch {
                    coef[j] = [mu[j] as f32, r[j] as f32, gamma[j], m1, m2];
                }
            }
            grad_apply(xi, dyi, &coef, dxi, overwrite);
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
