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

/// Call `$f::<C>(args)` with `C` the channel count `$c` when it is one of
/// the U-Net's widths (16, 32, 48, 64: the loops over a pixel's channels
/// unroll and the per-channel accumulators stay in registers), else
/// `$f::<0>` (run-time width). The arithmetic is the same either way.
macro_rules! by_channels {
    ($c:expr, $f:ident($($arg:expr),*)) => {
        match $c {
            16 => $f::<16>($($arg),*),
            32 => $f::<32>($($arg),*),
            48 => $f::<48>($($arg),*),
            64 => $f::<64>($($arg),*),
            _ => $f::<0>($($arg),*),
        }
    };
}

#[inline(always)]
fn channel_sums_generic(x: &[f32], mu: Option<&[f64]>, acc: &mut [f64]) {
    by_channels!(acc.len(), channel_sums_c(x, mu, acc))
}

#[inline(always)]
fn channel_sums_c<const C: usize>(x: &[f32], mu: Option<&[f64]>, acc: &mut [f64]) {
    if C == 0 {
        return channel_sums_any(x, mu, acc);
    }
    let mut a = [0.0f64; C];
    a.copy_from_slice(acc);
    match mu {
        None => {
            for row in x.chunks_exact(C) {
                for j in 0..C {
                    a[j] += row[j] as f64;
                }
            }
        }
        Some(mu) => {
            let mut m = [0.0f64; C];
            m.copy_from_slice(mu);
            for row in x.chunks_exact(C) {
                for j in 0..C {
                    let d = row[j] as f64 - m[j];
                    a[j] += d * d;
                }
            }
        }
    }
    acc.copy_from_slice(&a);
}

#[inline(always)]
fn channel_sums_any(x: &[f32], mu: Option<&[f64]>, acc: &mut [f64]) {
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
/// is SiLU of the normalised value (computed in the same pass; the bits of
/// normalising, then [`super::layers::silu_in_place`]).
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
    let out = if silu { Out::Silu } else { Out::Plain };
    y[..images * per]
        .par_chunks_mut(per.max(1))
        .zip(stats[..images * groups * 2].par_chunks_mut(groups * 2))
        .enumerate()
        .for_each(|(b, (yi, st))| {
            let xi = &x[b * per..(b + 1) * per];
            norm_image(xi, c, groups, gamma, beta, yi, None, out, st);
        });
}

/// [`group_norm_forward`] keeping both values (training): the normalised
/// `y` and `s = SiLU(y)`, written in one pass (the bits of
/// [`super::layers::silu`] over `y`).
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
            let xi = &x[b * per..(b + 1) * per];
            norm_image(xi, c, groups, gamma, beta, yi, Some(si), Out::Both, st);
        });
}

/// What the elementwise pass of [`norm_image`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    /// `y = γ·x̂ + β`.
    Plain,
    /// `y = SiLU(γ·x̂ + β)`.
    Silu,
    /// `y = γ·x̂ + β` and `s = SiLU(y)`.
    Both,
}

/// One image: statistics into `st` (`[groups · 2]`), normalised values into
/// `yi` (and `si`, see [`Out`]).
#[allow(clippy::too_many_arguments)]
fn norm_image(
    xi: &[f32],
    c: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    yi: &mut [f32],
    si: Option<&mut [f32]>,
    out: Out,
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
    let mut coef = vec![0.0f32; 4 * c];
    for j in 0..c {
        coef[4 * j..4 * j + 4].copy_from_slice(&[mu[j] as f32, r[j] as f32, gamma[j], beta[j]]);
    }
    let si = si.unwrap_or(&mut []);
    // (dispatch_simd! returns from the function it expands in)
    let apply = |xi: &[f32], coef: &[f32], yi: &mut [f32], si: &mut [f32]| {
        dispatch_simd!(norm_apply_generic(xi, coef, yi, si, out))
    };
    apply(xi, &coef, yi, si);
}

#[inline(always)]
fn norm_apply_generic(x: &[f32], coef: &[f32], y: &mut [f32], s: &mut [f32], out: Out) {
    match out {
        Out::Plain => by_channels!(coef.len() / 4, norm_apply_c(x, coef, y, s, 0)),
        Out::Silu => by_channels!(coef.len() / 4, norm_apply_c(x, coef, y, s, 1)),
        Out::Both => by_channels!(coef.len() / 4, norm_apply_c(x, coef, y, s, 2)),
    }
}

/// `y[p, c] = γ_c·((x[p, c] − μ_c)·r_c) + β_c` (f32), then per `mode`: 0
/// nothing more, 1 `y ← y·σ(y)`, 2 `s = y·σ(y)`. `coef[4c..4c + 4] =
/// (μ_c, r_c, γ_c, β_c)`.
#[inline(always)]
fn norm_apply_c<const C: usize>(x: &[f32], coef: &[f32], y: &mut [f32], s: &mut [f32], mode: u8) {
    use super::layers::sigmoid;
    let c = if C > 0 { C } else { coef.len() / 4 };
    let mut k = [[0.0f32; 4]; 64];
    let k: &mut [[f32; 4]] = if C > 0 && C <= 64 {
        &mut k[..c]
    } else {
        return norm_apply_any(x, coef, y, s, mode);
    };
    for (j, kj) in k.iter_mut().enumerate() {
        kj.copy_from_slice(&coef[4 * j..4 * j + 4]);
    }
    let rows = y.len() / c;
    for p in 0..rows {
        let (xr, yr) = (&x[p * c..][..c], &mut y[p * c..][..c]);
        for j in 0..c {
            let [m, r, g, b] = k[j];
            let v = g * ((xr[j] - m) * r) + b;
            yr[j] = if mode == 1 { v * sigmoid(v) } else { v };
        }
        if mode == 2 {
            let sr = &mut s[p * c..][..c];
            for j in 0..c {
                let v = yr[j];
                sr[j] = v * sigmoid(v);
            }
        }
    }
}

#[inline(always)]
fn norm_apply_any(x: &[f32], coef: &[f32], y: &mut [f32], s: &mut [f32], mode: u8) {
    use super::layers::sigmoid;
    let c = coef.len() / 4;
    for (p, (yr, xr)) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)).enumerate() {
        for (j, (o, &xv)) in yr.iter_mut().zip(xr).enumerate() {
            let [m, r, g, b] = [
                coef[4 * j],
                coef[4 * j + 1],
                coef[4 * j + 2],
                coef[4 * j + 3],
            ];
            let v = g * ((xv - m) * r) + b;
            *o = if mode == 1 { v * sigmoid(v) } else { v };
            if mode == 2 {
                s[p * c + j] = v * sigmoid(v);
            }
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
    by_channels!(mu.len(), grad_sums_c(x, dy, mu, r, sdy, sdx))
}

#[inline(always)]
fn grad_sums_c<const C: usize>(
    x: &[f32],
    dy: &[f32],
    mu: &[f64],
    r: &[f64],
    sdy: &mut [f64],
    sdx: &mut [f64],
) {
    if C == 0 {
        let c = mu.len();
        for (xr, dr) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
            for j in 0..c {
                let d = dr[j] as f64;
                sdy[j] += d;
                sdx[j] += d * ((xr[j] as f64 - mu[j]) * r[j]);
            }
        }
        return;
    }
    let (mut m, mut rr, mut ay, mut ax) = ([0.0f64; C], [0.0f64; C], [0.0f64; C], [0.0f64; C]);
    m.copy_from_slice(mu);
    rr.copy_from_slice(r);
    ay.copy_from_slice(sdy);
    ax.copy_from_slice(sdx);
    for (xr, dr) in x.chunks_exact(C).zip(dy.chunks_exact(C)) {
        for j in 0..C {
            let d = dr[j] as f64;
            ay[j] += d;
            ax[j] += d * ((xr[j] as f64 - m[j]) * rr[j]);
        }
    }
    sdy.copy_from_slice(&ay);
    sdx.copy_from_slice(&ax);
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
    by_channels!(coef.len(), grad_apply_c(x, dy, coef, dx, true))
}

#[inline(always)]
fn grad_apply_add(x: &[f32], dy: &[f32], coef: &[[f32; 5]], dx: &mut [f32]) {
    by_channels!(coef.len(), grad_apply_c(x, dy, coef, dx, false))
}

#[inline(always)]
fn grad_apply_c<const C: usize>(
    x: &[f32],
    dy: &[f32],
    coef: &[[f32; 5]],
    dx: &mut [f32],
    set: bool,
) {
    let c = if C > 0 { C } else { coef.len() };
    let mut k = [[0.0f32; 5]; 64];
    let k: &[[f32; 5]] = if C > 0 && C <= 64 {
        k[..c].copy_from_slice(coef);
        &k[..c]
    } else {
        coef
    };
    for ((dxr, xr), dr) in dx
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        for j in 0..c {
            let [mu, r, gamma, m1, m2] = k[j];
            let xh = (xr[j] - mu) * r;
            let old = if set { 0.0 } else { dxr[j] };
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
