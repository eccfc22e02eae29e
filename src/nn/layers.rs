//! Layer kernels on row-major batches (`[rows, features]` slices).
//!
//! Notation (per row of a batch; `W` is `[fan_out, fan_in]` row-major as in
//! PyTorch, `b` is `[fan_out]`):
//!
//! ```text
//!   Linear:  z = a·Wᵀ + b
//!   SiLU:    s = σ(z) = 1 / (1 + e^(−z)),   y = z·s
//!   SiLU':   dy/dz = s + z·s·(1 − s) = s + y·(1 − s)
//! ```
//!
//! The training forward pass stores SiLU'(z) = s + y·(1 − s) beside y, so
//! the SiLU backward is one multiply per element with no `exp`, and it can
//! ride in the store of the GEMM that produces dL/dy, overwriting SiLU'
//! with dL/dz in place ([`crate::backend::gemm::gemm_scale`]).

use std::cell::RefCell;

use crate::backend::gemm::{gemm, gemm_scale, MatRef};
use crate::backend::with_scratch;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2^23: adding it rounds an f32 in (−2^22, 2^22) to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `a·b + c`: one fused multiply-add (a single rounding) when `FUSED`,
/// else a multiply and an add (two roundings). Both are exactly specified
/// by IEEE 754, so either form gives the same bits on every CPU (`mul_add`
/// is a hardware FMA on the AVX2 and AVX-512 paths of [`dispatch_simd`]).
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^x in f32 (Cephes `expf` polynomial; relative error ≲ 2e-7 on the
/// clamped range x ∈ [−87, 88]; NaN propagates): x = n·ln2 + r with
/// |r| ≤ ln2/2, e^x = 2ⁿ·(1 + r + r²·P(r)). Written without branches or
/// libm calls so that loops over it vectorise; the same code runs for every
/// element, so results do not depend on where an element sits in a batch.
/// `FUSED` selects FMAs for the multiply-adds ([`madd`]): fewer
/// instructions, different (equally accurate) bits.
#[inline(always)]
fn exp_poly<const FUSED: bool>(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = madd::<FUSED>(x, LOG2E, ROUND_MAGIC);
    let n = shifted - ROUND_MAGIC;
    let ni = (shifted.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = madd::<FUSED>(n, -LN2_LO, madd::<FUSED>(n, -LN2_HI, x));
    let r2 = r * r;
    let mut p = 1.987_569_2e-4;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = madd::<FUSED>(p, r, c);
    }
    let poly = madd::<FUSED>(p, r2, r) + 1.0;
    let pow2 = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    poly * pow2
}

/// e^x with separate multiplies and adds ([`exp_poly`]); used by the
/// graph's SiLU (U-Net, classifier).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    exp_poly::<false>(x)
}

/// σ(z) = 1 / (1 + e^(−z)) using [`exp_f32`].
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-z))
}

/// σ(z) = 1 / (1 + e^(−z)) with the FMA form of [`exp_poly`]; used by the
/// MLP's fused [`bias_silu`].
#[inline(always)]
pub fn sigmoid_fma(z: f32) -> f32 {
    1.0 / (1.0 + exp_poly::<true>(-z))
}

/// Linear without bias: `z = a·Wᵀ`, `a: [rows, fan_in]`, `w: [fan_out, fan_in]`,
/// `z: [rows, fan_out]`.
pub fn linear_nobias(a: &[f32], rows: usize, w: &[f32], fan_out: usize, z: &mut [f32], par: bool) {
    let fan_in = w.len() / fan_out.max(1);
    gemm(
        MatRef::row_major(a, rows, fan_in),
        MatRef::transposed(w, fan_in, fan_out),
        z,
        false,
        par,
    );
}

/// In place: `z ← z + b` (row-wise broadcast of `b`).
pub fn bias_add(z: &mut [f32], b: &[f32]) {
    for row in z.chunks_exact_mut(b.len()) {
        for (v, &bb) in row.iter_mut().zip(b) {
            *v += bb;
        }
    }
}

use crate::backend::simd::dispatch_simd;
pub use crate::backend::simd::sum_rows;

/// Fused bias + SiLU, in place: `z ← z + b; s = σ(z); y = z·s; z ← y`.
/// `dsilu` (same length as `z`) receives SiLU'(z) = `s + y·(1 − s)` when
/// given (training), as one FMA. σ is [`sigmoid_fma`]: the FMA form is
/// about a third faster than [`sigmoid`] and as accurate.
pub fn bias_silu(z: &mut [f32], b: &[f32], dsilu: Option<&mut [f32]>) {
    dispatch_simd!(bias_silu_generic(z, b, dsilu))
}

#[inline(always)]
fn bias_silu_generic(z: &mut [f32], b: &[f32], dsilu: Option<&mut [f32]>) {
    let width = b.len();
    match dsilu {
        Some(ds) => {
            for (zr, dr) in z.chunks_exact_mut(width).zip(ds.chunks_exact_mut(width)) {
                for ((zv, dv), &bb) in zr.iter_mut().zip(dr.iter_mut()).zip(b) {
                    let pre = *zv + bb;
                    let sg = sigmoid_fma(pre);
                    let y = pre * sg;
                    *dv = y.mul_add(1.0 - sg, sg);
                    *zv = y;
                }
            }
        }
        None => {
            for zr in z.chunks_exact_mut(width) {
                for (zv, &bb) in zr.iter_mut().zip(b) {
                    let pre = *zv + bb;
                    *zv = pre * sigmoid_fma(pre);
                }
            }
        }
    }
}

/// SiLU backward, in place: `d ← d ⊙ SiLU'(z)`, turning dL/dy into dL/dz
/// given the `dsilu` stored by [`bias_silu`].
pub fn silu_backward(d: &mut [f32], dsilu: &[f32]) {
    for (dv, &g) in d.iter_mut().zip(dsilu) {
        *dv *= g;
    }
}

/// SiLU: `y = x·σ(x)`.
pub fn silu(x: &[f32], y: &mut [f32]) {
    dispatch_simd!(silu_generic(x, y))
}

#[inline(always)]
fn silu_generic(x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v * sigmoid(v);
    }
}

/// SiLU in place: `y ← y·σ(y)` (the bits of [`silu`]).
pub fn silu_in_place(y: &mut [f32]) {
    dispatch_simd!(silu_in_place_generic(y))
}

#[inline(always)]
fn silu_in_place_generic(y: &mut [f32]) {
    for v in y.iter_mut() {
        *v *= sigmoid(*v);
    }
}

/// SiLU backward, accumulating: `dx += dy ⊙ (s + y ⊙ (1 − s))` with
/// `s = σ(x)` recomputed from the input `x` and `y = x·s` the output.
pub fn silu_backward_add(dx: &mut [f32], dy: &[f32], x: &[f32], y: &[f32]) {
    dispatch_simd!(silu_backward_addg(dx, dy, x, y))
}

#[inline(always)]
fn silu_backward_addg(dx: &mut [f32], dy: &[f32], x: &[f32], y: &[f32]) {
    silu_backward_generic::<false>(dx, dy, x, y)
}

#[inline(always)]
fn silu_backward_setg(dx: &mut [f32], dy: &[f32], x: &[f32], y: &[f32]) {
    silu_backward_generic::<true>(dx, dy, x, y)
}

/// [`silu_backward_add`] into a `dx` whose old value is not read:
/// `dx = 0 + dy ⊙ SiLU'` (the bits of adding into zeros).
pub fn silu_backward_set(dx: &mut [f32], dy: &[f32], x: &[f32], y: &[f32]) {
    dispatch_simd!(silu_backward_setg(dx, dy, x, y))
}

#[inline(always)]
fn silu_backward_generic<const SET: bool>(dx: &mut [f32], dy: &[f32], x: &[f32], y: &[f32]) {
    for (((d, &g), &xv), &yv) in dx.iter_mut().zip(dy).zip(x).zip(y) {
        let s = sigmoid(xv);
        let old = if SET { 0.0 } else { *d };
        *d = old + g * (s + yv * (1.0 - s));
    }
}

/// Columns a 16-lane kernel computes for `n` real ones (`⌈n/16⌉·16`).
fn padded(n: usize) -> usize {
    n.div_ceil(16) * 16
}

thread_local! {
    /// dWᵀ of [`weight_grad`]'s transposed product on this thread.
    static DW_T: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `dW = dzᵀ·a` (`[fan_out, fan_in]`). When `fan_in` fills the kernel's
/// 16-lane column groups worse than `fan_out` does (the first layer:
/// fan_in = 34 of 48 lanes), the product is computed as
/// `dWᵀ = aᵀ·dz` and transposed: with the AVX-512 kernel each element is
/// the same FMA chain over the rows in order (`a·b = b·a` exactly), so the
/// bits are the same.
fn weight_grad(
    dz: &[f32],
    a: &[f32],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    dw: &mut [f32],
    par: bool,
) {
    if padded(fan_in) * fan_out <= padded(fan_out) * fan_in {
        let dz_t = MatRef::transposed(dz, fan_out, rows);
        gemm(dz_t, MatRef::row_major(a, rows, fan_in), dw, false, par);
        return;
    }
    with_scratch(&DW_T, |dw_t| {
        dw_t.resize(fan_in * fan_out, 0.0);
        gemm(
            MatRef::transposed(a, fan_in, rows),
            MatRef::row_major(dz, rows, fan_out),
            dw_t,
            false,
            par,
        );
        for (i, src) in dw_t.chunks_exact(fan_out).enumerate() {
            for (j, &v) in src.iter().enumerate() {
                dw[j * fan_in + i] = v;
            }
        }
    });
}

/// Linear backward given `dz = dL/dz: [rows, fan_out]` and the layer input
/// `a: [rows, fan_in]`:
///
/// ```text
///   dW = dzᵀ·a          [fan_out, fan_in]
///   db = Σ_rows dz       [fan_out]   (summed in row order; skipped when
///                                     `db` is None because the layer
///                                     above already produced it)
///   with `below = (d, db_below)`, the SiLU block underneath:
///   d  = (dz·W) ⊙ d      [rows, fan_in]: `d` holds the layer below's
///                        SiLU'(z) on entry and leaves as its dL/dz (the
///                        SiLU backward, [`silu_backward`], fused into the
///                        product's store; same bits)
///   db_below = Σ_rows d  that layer's bias gradient, summed in row order
///                        in the same stores ([`gemm_scale`])
/// ```
///
/// With `par`, (dW, db) and (d, db_below) run as two rayon tasks, each
/// product also split across threads.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dz: &[f32],
    a: &[f32],
    w: &[f32],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    below: Option<(&mut [f32], &mut [f32])>,
    par: bool,
) {
    let grads = || {
        if let Some(db) = db {
            sum_rows(dz, db);
        }
        weight_grad(dz, a, rows, fan_in, fan_out, dw, par);
    };
    let input_grad = || {
        if let Some((d, db_below)) = below {
            let (dz, w) = (
                MatRef::row_major(dz, rows, fan_out),
                MatRef::row_major(w, fan_out, fan_in),
            );
            gemm_scale(dz, w, d, Some(db_below), par);
        }
    };
    // The two products only read dz, so they can run side by side; each
    // computes every element exactly as alone (same bits).
    if par && rayon::current_num_threads() > 1 {
        rayon::join(grads, input_grad);
    } else {
        grads();
        input_grad();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both forms of the exp polynomial are within a few f32 ulps of e^x
    /// over the whole clamped range, and both sigmoids within the same
    /// bound of σ computed in f64; NaN propagates and the clamped tails
    /// neither overflow nor go negative.
    #[test]
    fn exp_and_sigmoid_forms_are_accurate() {
        let (mut worst_exp, mut worst_sig) = ([0f64; 2], [0f64; 2]);
        let mut x = -87.0f32;
        while x < 88.0 {
            let t = (x as f64).exp();
            for (w, e) in worst_exp.iter_mut().zip([exp_f32(x), exp_poly::<true>(x)]) {
                *w = w.max(((e as f64 - t) / t).abs());
            }
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            for (w, v) in worst_sig.iter_mut().zip([sigmoid(x), sigmoid_fma(x)]) {
                *w = w.max(((v as f64 - s) / s).abs());
            }
            x += 0.0137;
        }
        for w in worst_exp {
            assert!(w < 4e-7, "worst relative error of exp {w}");
        }
        for w in worst_sig {
            assert!(w < 4e-7, "worst relative error of sigmoid {w}");
        }
        for f in [sigmoid, sigmoid_fma] {
            assert!(f(f32::NAN).is_nan());
            assert!(f(1000.0) == 1.0 && f(-1000.0) >= 0.0 && f(-1000.0) < 1e-37);
        }
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
    }
}

#[cfg(test)]
mod simd_tests {
    use super::*;

    /// The wide-vector paths give the same bits as the baseline build.
    #[test]
    fn dispatched_kernels_match_baseline_bits() {
        let n = 3 * 67 + 5;
        let z0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.731).sin() * 30.0).collect();
        let b: Vec<f32> = (0..67).map(|i| i as f32 * 0.01 - 0.3).collect();
        let z0 = &z0[..3 * 67];
        let (mut z1, mut z2) = (z0.to_vec(), z0.to_vec());
        let (mut s1, mut s2) = (vec![0.0; z0.len()], vec![0.0; z0.len()]);
        bias_silu(&mut z1, &b, Some(&mut s1));
        bias_silu_generic(&mut z2, &b, Some(&mut s2));
        assert_eq!(z1, z2);
        assert_eq!(s1, s2);
        for (i, &v) in z0.iter().enumerate() {
            let pre = v + b[i % 67];
            let sg = sigmoid_fma(pre);
            assert_eq!(z1[i], pre * sg);
            assert_eq!(s1[i], z1[i].mul_add(1.0 - sg, sg));
        }
    }
}
