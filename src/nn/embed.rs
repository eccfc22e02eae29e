//! Sinusoidal time embedding (Transformer / DDPM style), as in
//! `docs/SPEC.md`.
//!
//! ```text
//!   half = emb_dim / 2                       (16 for emb_dim = 32)
//!   f_k  = exp(-ln(10000) · k / half),       k = 0 .. half-1
//!   emb(t) = [sin(1000 t f_k)]_k ++ [cos(1000 t f_k)]_k
//! ```
//!
//! The angle `1000 t f_k` and its sine/cosine are computed in f64 and the
//! result is rounded to f32 once. The frequencies are cached per thread, and
//! sine and cosine come from [`sin_cos`], a branch-free f64 routine that
//! vectorises across the `half` angles (a scalar libm `sincos` per angle
//! is a visible share of a toy2d training step; see BENCHMARKS.md).

use std::cell::RefCell;

use crate::backend::simd::dispatch_simd;

/// Scale applied to t ∈ [0, 1] before the sinusoids (SPEC: 1000).
pub const TIME_SCALE: f64 = 1000.0;

/// Frequency f_k = exp(-ln(10000) · k / half) of sinusoid `k`.
pub fn frequency(k: usize, half: usize) -> f64 {
    (-(10000.0f64).ln() * k as f64 / half as f64).exp()
}

thread_local! {
    /// `[f_0, …, f_{half−1}]` for the last `half` used on this thread.
    static FREQUENCIES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Write emb(t) into `out` (length `emb_dim`, even): `out[k] = sin(1000 t f_k)`,
/// `out[half + k] = cos(1000 t f_k)`. An odd trailing slot (never produced by
/// a validated config) is set to 0.
pub fn time_embedding(t: f64, out: &mut [f32]) {
    let emb_dim = out.len();
    time_embedding_rows(std::iter::once(t), out, emb_dim, 0, emb_dim);
}

/// [`time_embedding`] of each `t` into `out[i·stride + offset ..][..emb_dim]`
/// for row `i` of a row-major `out` (`stride` floats per row): one batch
/// for the whole forward pass, so the frequency cache and the vector-unit
/// dispatch are looked up once, not per row.
///
/// Panics if `out` has fewer rows than `times` yields or a row is shorter
/// than `offset + emb_dim`.
pub fn time_embedding_rows(
    times: impl Iterator<Item = f64>,
    out: &mut [f32],
    stride: usize,
    offset: usize,
    emb_dim: usize,
) {
    assert!(offset + emb_dim <= stride, "embedding does not fit its row");
    let half = emb_dim / 2;
    let run = |freqs: &[f64]| embed_rows_dispatch(times, freqs, out, stride, offset, emb_dim);
    FREQUENCIES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut freqs) => {
            if freqs.len() != half {
                freqs.clear();
                freqs.extend((0..half).map(|k| frequency(k, half)));
            }
            run(&freqs);
        }
        Err(_) => run(&(0..half).map(|k| frequency(k, half)).collect::<Vec<_>>()),
    });
}

fn embed_rows_dispatch(
    times: impl Iterator<Item = f64>,
    freqs: &[f64],
    out: &mut [f32],
    stride: usize,
    offset: usize,
    emb_dim: usize,
) {
    dispatch_simd!(embed_rows_generic(
        times, freqs, out, stride, offset, emb_dim
    ))
}

#[inline(always)]
fn embed_rows_generic(
    times: impl Iterator<Item = f64>,
    freqs: &[f64],
    out: &mut [f32],
    stride: usize,
    offset: usize,
    emb_dim: usize,
) {
    let mut rows = out.chunks_mut(stride);
    for t in times {
        let row = rows.next().expect("fewer rows than times");
        let emb = &mut row[offset..offset + emb_dim];
        embed_generic(t, freqs, emb);
        if emb_dim % 2 == 1 {
            emb[emb_dim - 1] = 0.0;
        }
    }
}

#[inline(always)]
fn embed_generic(t: f64, freqs: &[f64], out: &mut [f32]) {
    let half = freqs.len();
    let (sin_out, rest) = out.split_at_mut(half);
    let cos_out = &mut rest[..half];
    // The polynomial path for every angle (a loop without calls, so it
    // vectorises), then libm for any angle outside its range.
    let mut in_range = true;
    for ((f, so), co) in freqs.iter().zip(&mut *sin_out).zip(&mut *cos_out) {
        let angle = TIME_SCALE * t * f;
        in_range &= angle.abs() <= SIN_COS_LIMIT;
        let (s, c) = sin_cos_reduced(angle);
        *so = s as f32;
        *co = c as f32;
    }
    if !in_range {
        for ((f, so), co) in freqs.iter().zip(sin_out).zip(cos_out) {
            let (s, c) = sin_cos(TIME_SCALE * t * f);
            *so = s as f32;
            *co = c as f32;
        }
    }
}

/// Largest |x| that [`sin_cos`] reduces itself (2^19·π/2); beyond it, and
/// for non-finite x, it defers to `f64::sin_cos`.
const SIN_COS_LIMIT: f64 = 823_549.6;
/// π/2 = P1 + P2 + P3: P1 and P2 hold 33 significant bits each, so n·P1 and
/// n·P2 are exact for |n| ≤ 2^20 (Cody–Waite reduction).
const PIO2_1: f64 = 1.570_796_326_734_125_6;
const PIO2_2: f64 = 6.077_100_506_303_966e-11;
const PIO2_3: f64 = 2.022_266_248_795_950_6e-21;
/// (−1)^j / (2j+1)! for j = 1..=8: sin r = r + r·r²·Σ_j SIN_TAYLOR[j−1]·r^(2j−2).
const SIN_TAYLOR: [f64; 8] = [
    -1.666_666_666_666_666_6e-1,
    8.333_333_333_333_333e-3,
    -1.984_126_984_126_984e-4,
    2.755_731_922_398_589_3e-6,
    -2.505_210_838_544_172e-8,
    1.605_904_383_682_161_3e-10,
    -7.647_163_731_819_816e-13,
    2.811_457_254_345_520_6e-15,
];
/// (−1)^j / (2j)! for j = 1..=9: cos r = 1 + r²·Σ_j COS_TAYLOR[j−1]·r^(2j−2).
const COS_TAYLOR: [f64; 9] = [
    -0.5,
    4.166_666_666_666_666_4e-2,
    -1.388_888_888_888_889e-3,
    2.480_158_730_158_73e-5,
    -2.755_731_922_398_589e-7,
    2.087_675_698_786_81e-9,
    -1.147_074_559_772_972_5e-11,
    4.779_477_332_387_385e-14,
    -1.561_920_696_858_622_5e-16,
];
/// 1.5 · 2^52: adding it rounds an f64 of magnitude < 2^51 to an integer.
const ROUND_MAGIC_F64: f64 = 6_755_399_441_055_744.0;

/// (sin x, cos x) in f64, within a few ulp of the correctly rounded values:
///
/// ```text
///   n = round(x · 2/π),  r = x − n·π/2 ∈ [−π/4, π/4]  (three-part π/2)
///   S(r) = r − r³/3! + … + r¹⁷/17!,  C(r) = 1 − r²/2! + … + r¹⁸/18!
///   (sin x, cos x) = (S, C), (C, −S), (−S, −C), (−C, S)  for n mod 4 = 0, 1, 2, 3
/// ```
///
/// The Taylor tails are below 1e-19 on [−π/4, π/4]. For |x| beyond
/// 2^19·π/2 and non-finite x the result is `f64::sin_cos(x)`.
#[inline(always)]
pub fn sin_cos(x: f64) -> (f64, f64) {
    if x.abs() <= SIN_COS_LIMIT {
        sin_cos_reduced(x)
    } else {
        x.sin_cos()
    }
}

/// [`sin_cos`] without the range check: valid for |x| ≤ 2^19·π/2. No
/// branches or calls, so loops over it vectorise.
#[inline(always)]
fn sin_cos_reduced(x: f64) -> (f64, f64) {
    let shifted = x * std::f64::consts::FRAC_2_PI + ROUND_MAGIC_F64;
    let n = shifted - ROUND_MAGIC_F64;
    let quadrant = shifted.to_bits() & 3;
    let r = ((x - n * PIO2_1) - n * PIO2_2) - n * PIO2_3;
    let r2 = r * r;
    let horner = |coef: &[f64]| coef.iter().rev().fold(0.0, |acc, &c| c + r2 * acc);
    let s = r + r * r2 * horner(&SIN_TAYLOR);
    let c = 1.0 + r2 * horner(&COS_TAYLOR);
    let (sin, cos) = if quadrant & 1 == 0 { (s, c) } else { (c, s) };
    let sin_sign = if quadrant & 2 == 0 { 1.0 } else { -1.0 };
    let cos_sign = if (quadrant + 1) & 2 == 0 { 1.0 } else { -1.0 };
    (sin_sign * sin, cos_sign * cos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_matches_spec_values() {
        let mut e = [0f32; 32];
        time_embedding(0.0, &mut e);
        assert!(e[..16].iter().all(|&v| v == 0.0));
        assert!(e[16..].iter().all(|&v| v == 1.0));
        time_embedding(0.25, &mut e);
        // k = 0: f_0 = 1, angle = 250.
        assert_eq!(e[0], 250f64.sin() as f32);
        assert_eq!(e[16], 250f64.cos() as f32);
        // k = 8: f_8 = 10000^(-1/2) = 0.01, angle = 2.5.
        assert!((e[8] as f64 - 2.5f64.sin()).abs() < 1e-7);
        assert!((e[24] as f64 - 2.5f64.cos()).abs() < 1e-7);
    }

    /// Against libm's sin/cos: within 2 ulp in f64 over the angles the
    /// embedding uses (|x| ≤ 1000, plus the edges of the reduced range),
    /// and the same f32 after rounding for every one of 10⁶ angles.
    #[test]
    fn sin_cos_matches_libm() {
        let ulps =
            |a: f64, b: f64| ((a - b) / (b.abs().max(f64::MIN_POSITIVE) * f64::EPSILON)).abs();
        let mut worst = 0f64;
        let mut f32_diffs = 0;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in 0..1_000_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let x = match i % 4 {
                0 => 2000.0 * u - 1000.0,
                1 => (2.0 * u - 1.0) * 4.0,
                // Near multiples of π/4, where the quadrant switches.
                2 => std::f64::consts::FRAC_PI_4 * (i % 2001) as f64 + (u - 0.5) * 1e-9,
                _ => 1000.0 * u * frequency((i % 16) as usize, 16),
            };
            let (s, c) = sin_cos(x);
            let (ws, wc) = x.sin_cos();
            // Absolute error in units of f64::EPSILON for values near 0.
            worst = worst.max(ulps(s, ws).min((s - ws).abs() / f64::EPSILON));
            worst = worst.max(ulps(c, wc).min((c - wc).abs() / f64::EPSILON));
            f32_diffs += (s as f32 != ws as f32) as usize + (c as f32 != wc as f32) as usize;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(f32_diffs, 0);
        for x in [
            0.0,
            -0.0,
            1e-300,
            -1e-300,
            SIN_COS_LIMIT,
            -SIN_COS_LIMIT,
            1e9,
            1e300,
        ] {
            let (s, c) = sin_cos(x);
            let (ws, wc) = x.sin_cos();
            assert!(
                (s - ws).abs() <= 4e-16 && (c - wc).abs() <= 4e-16,
                "x = {x}: {s} {c} vs {ws} {wc}"
            );
        }
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (s, c) = sin_cos(x);
            assert!(s.is_nan() && c.is_nan());
        }
    }
}
