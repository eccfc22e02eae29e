//! Multi-head self-attention over the pixels of a feature map, the block
//! DDPM / ADM put at the low resolutions of the U-Net:
//!
//! ```text
//!   [q, k, v] = Conv1(GN(x))                                  (N = h·w positions, C channels, 3C after the qkv conv)
//!   per head η (d = C/heads channels each):
//!     S = q_η k_ηᵀ / √d              [N, N]
//!     P = softmax_rows(S)            P[i, j] = exp(S[i, j] − max_j S[i, ·]) / Σ_j exp(·)
//!     o_η = P v_η                    [N, d]
//!   out = x + Conv1(o)                                        (the output projection starts at zero)
//! ```
//!
//! The [`Op::Attention`](super::graph::Op::Attention) node is the middle
//! line (3C channels in, C out); GroupNorm, the two 1×1 convolutions and
//! the residual add are the graph's own ops, and
//! [`Graph::attention_block`](super::graph::Graph::attention_block) builds
//! the block. Backward, with r_i = Σ_j P[i, j]·dP[i, j]:
//!
//! ```text
//!   dP = do vᵀ,   dv = Pᵀ do,   dS = P ⊙ (dP − r),   dq = dS k / √d,   dk = dSᵀ q / √d
//! ```
//!
//! Scores, softmax and every sum run in f64 per image (N ≤ 256 positions,
//! the limit [`check_attention`] sets), in a fixed order, so an image's
//! output depends on that image alone. The training forward keeps P (f64,
//! `heads·N²` per image) for the backward.
//!
//! The output projection is zero-initialised (ADM's `zero_module`; DDPM
//! scales it by 1e-10): a fresh block is the identity, and it learns from
//! its first step on (the projection's gradient is `Σ o·dy`, not zero).

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Most positions (h·w) of a level with attention: P holds N² values per
/// head and image (16×16, the largest resolution DDPM attends at).
pub const MAX_ATTENTION_POSITIONS: usize = 256;
/// Most attention heads.
pub const MAX_HEADS: usize = 16;

/// f64 values per image in an attention node's statistics buffer: P of
/// every head, then the backward's work rows (dP row, dq row, dk and dv
/// of one head).
fn block_len(n: usize, c: usize, heads: usize) -> usize {
    let d = c / heads;
    heads * n * n + n + d + 2 * n * d
}

/// Check the attention settings of a U-Net whose level `l` has side
/// `height >> l` × `width >> l` and `widths[l]` channels: every entry of
/// `sides` is the height of a level (no repeats), with at most
/// [`MAX_ATTENTION_POSITIONS`] positions and a width `heads` divides.
pub fn check_attention(
    sides: &[usize],
    heads: usize,
    height: usize,
    width: usize,
    widths: &[usize],
) -> Result<()> {
    if !(1..=MAX_HEADS).contains(&heads) {
        return Err(Error::invalid(
            "attn_heads",
            heads,
            format!("1..={MAX_HEADS}"),
        ));
    }
    let levels: Vec<usize> = (0..widths.len()).map(|l| height >> l).collect();
    for (i, &s) in sides.iter().enumerate() {
        let Some(l) = levels.iter().position(|&h| h == s) else {
            return Err(Error::invalid(
                "attention",
                s,
                format!("the side of a U-Net level: one of {levels:?}"),
            ));
        };
        if sides[..i].contains(&s) {
            return Err(Error::invalid("attention", s, "each level once"));
        }
        let n = (height >> l) * (width >> l);
        if n > MAX_ATTENTION_POSITIONS {
            return Err(Error::invalid(
                "attention",
                s,
                format!(
                    "a level of at most {MAX_ATTENTION_POSITIONS} positions ({s}×{} has {n}; \
                     attention keeps N² weights per image)",
                    width >> l
                ),
            ));
        }
        if !widths[l].is_multiple_of(heads) {
            return Err(Error::invalid(
                "attn_heads",
                heads,
                format!(
                    "a divisor of the {} channels of the {s}×{} level",
                    widths[l],
                    width >> l
                ),
            ));
        }
    }
    Ok(())
}

/// Forward of an [`Op::Attention`](super::graph::Op::Attention) node over
/// `images` images: `qkv` `[images, n, 3c]`, `y` `[images, n, c]`; P goes
/// into `stats` (resized).
pub fn attention_forward(
    qkv: &[f32],
    y: &mut [f32],
    stats: &mut Vec<f64>,
    images: usize,
    n: usize,
    c: usize,
    heads: usize,
) {
    let blk = block_len(n, c, heads);
    if stats.len() < images * blk {
        stats.resize(images * blk, 0.0);
    }
    y.par_chunks_mut(n * c)
        .zip(qkv.par_chunks(n * 3 * c))
        .zip(stats.par_chunks_mut(blk))
        .for_each(|((yi, xi), si)| image_forward(xi, yi, si, n, c, heads));
}

/// One image: P per head into `s[..heads·n²]`, o into `y`.
fn image_forward(x: &[f32], y: &mut [f32], s: &mut [f64], n: usize, c: usize, heads: usize) {
    let d = c / heads;
    let scale = 1.0 / (d as f64).sqrt();
    let (p, work) = s.split_at_mut(heads * n * n);
    let acc = &mut work[..d];
    let c3 = 3 * c;
    for hd in 0..heads {
        let (qo, ko, vo) = (hd * d, c + hd * d, 2 * c + hd * d);
        for i in 0..n {
            let q = &x[i * c3 + qo..][..d];
            let row = &mut p[(hd * n + i) * n..][..n];
            let mut max = f64::NEG_INFINITY;
            for (j, r) in row.iter_mut().enumerate() {
                let k = &x[j * c3 + ko..][..d];
                let sc = q
                    .iter()
                    .zip(k)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
                    * scale;
                *r = sc;
                max = max.max(sc);
            }
            let mut sum = 0.0;
            for r in row.iter_mut() {
                *r = (*r - max).exp();
                sum += *r;
            }
            acc.fill(0.0);
            for (j, r) in row.iter_mut().enumerate() {
                *r /= sum;
                let v = &x[j * c3 + vo..][..d];
                for (a, &vv) in acc.iter_mut().zip(v) {
                    *a += *r * vv as f64;
                }
            }
            for (o, &a) in y[i * c + qo..][..d].iter_mut().zip(acc.iter()) {
                *o = a as f32;
            }
        }
    }
}

/// Backward of an [`Op::Attention`](super::graph::Op::Attention) node for
/// the batch of the last [`attention_forward`] into `stats`: `gy` = ∂L/∂y;
/// `dqkv` (=|+=) ∂L/∂qkv (`set`: overwrite, else add).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    qkv: &[f32],
    stats: &mut [f64],
    gy: &[f32],
    dqkv: &mut [f32],
    set: bool,
    images: usize,
    n: usize,
    c: usize,
    heads: usize,
) {
    let blk = block_len(n, c, heads);
    dqkv[..images * n * 3 * c]
        .par_chunks_mut(n * 3 * c)
        .zip(qkv.par_chunks(n * 3 * c))
        .zip(gy.par_chunks(n * c).zip(stats.par_chunks_mut(blk)))
        .for_each(|((dx, x), (g, s))| image_backward(x, g, s, dx, set, n, c, heads));
}

#[allow(clippy::too_many_arguments)]
fn image_backward(
    x: &[f32],
    gy: &[f32],
    s: &mut [f64],
    dx: &mut [f32],
    set: bool,
    n: usize,
    c: usize,
    heads: usize,
) {
    let d = c / heads;
    let scale = 1.0 / (d as f64).sqrt();
    let (p, work) = s.split_at_mut(heads * n * n);
    let (dp, work) = work.split_at_mut(n);
    let (dq, work) = work.split_at_mut(d);
    let (dk, dv) = work[..2 * n * d].split_at_mut(n * d);
    let c3 = 3 * c;
    let put = |dst: &mut [f32], src: &[f64]| {
        for (o, &v) in dst.iter_mut().zip(src) {
            if set {
                *o = 0.0 + v as f32;
            } else {
                *o += v as f32;
            }
        }
    };
    for hd in 0..heads {
        let (qo, ko, vo) = (hd * d, c + hd * d, 2 * c + hd * d);
        dk.fill(0.0);
        dv.fill(0.0);
        for i in 0..n {
            let prow = &p[(hd * n + i) * n..][..n];
            let go = &gy[i * c + qo..][..d];
            let q = &x[i * c3 + qo..][..d];
            let mut r = 0.0;
            for (j, (dpj, &pij)) in dp.iter_mut().zip(prow).enumerate() {
                let v = &x[j * c3 + vo..][..d];
                *dpj = go
                    .iter()
                    .zip(v)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>();
                r += pij * *dpj;
            }
            dq.fill(0.0);
            for (j, (&dpj, &pij)) in dp.iter().zip(prow).enumerate() {
                let ds = pij * (dpj - r) * scale;
                let k = &x[j * c3 + ko..][..d];
                for (a, &kk) in dq.iter_mut().zip(k) {
                    *a += ds * kk as f64;
                }
                for (a, &qq) in dk[j * d..][..d].iter_mut().zip(q) {
                    *a += ds * qq as f64;
                }
                for (a, &g) in dv[j * d..][..d].iter_mut().zip(go) {
                    *a += pij * g as f64;
                }
            }
            put(&mut dx[i * c3 + qo..][..d], dq);
        }
        for j in 0..n {
            put(&mut dx[j * c3 + ko..][..d], &dk[j * d..][..d]);
            put(&mut dx[j * c3 + vo..][..d], &dv[j * d..][..d]);
        }
    }
}
