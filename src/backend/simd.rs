//! Run-time SIMD dispatch for the element-wise kernels of the networks, and
//! the vectorised short-run copy of their im2col and concatenations.

/// Run `$body` compiled for the widest available x86 vector unit (AVX-512F,
/// AVX2 with FMA, else the SSE2 baseline). The bodies use IEEE adds,
/// multiplies, divisions, square roots and compares, and fused
/// multiply-adds only where written as `mul_add` (Rust never forms them
/// implicitly): a hardware FMA on the two vector paths, libm's correctly
/// rounded `fmaf` on the baseline. Every path therefore gives
/// bit-identical results; only speed differs.
macro_rules! dispatch_simd {
    ($generic:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn wide512<'a>(f: impl FnOnce() + 'a) { f() }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn wide256<'a>(f: impl FnOnce() + 'a) { f() }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked above).
                unsafe { wide512(|| $generic($($arg),*)) };
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA (checked above).
                unsafe { wide256(|| $generic($($arg),*)) };
                return;
            }
        }
        $generic($($arg),*)
    }};
}

pub(crate) use dispatch_simd;

/// `dst.copy_from_slice(src)` for the short runs of im2col (16–64
/// values): whole 16-value blocks as fixed-size moves, which compile to
/// vector loads and stores instead of a `memmove` call per run.
#[inline(always)]
pub(crate) fn copy_run(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let d: &mut [f32; 16] = d.try_into().expect("16-value block");
        *d = *<&[f32; 16]>::try_from(s).expect("16-value block");
    }
    d.into_remainder().copy_from_slice(s.remainder());
}

/// `out[j] = Σ_i x[i, j]` over the rows of `x: [rows, out.len()]`, added in
/// row order.
pub fn sum_rows(x: &[f32], out: &mut [f32]) {
    dispatch_simd!(sum_rows_generic(x, out))
}

#[inline(always)]
fn sum_rows_generic(x: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for row in x.chunks_exact(out.len().max(1)) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}
