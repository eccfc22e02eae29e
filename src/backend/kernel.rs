//! AVX-512F GEMM kernel: `C = A·B` or `C += A·B` with `A` read in place
//! (any strides, no packing) and `B` pre-packed into column panels.
//!
//! Register tile: `MR = 8` rows × `NR = 32` columns = 16 zmm accumulators.
//! For each `p = 0, 1, …, k−1` in turn the kernel loads the panel row
//! `B[p, j0..j0+32]` (two zmm), broadcasts `A[i, p]` for each of the tile's
//! rows straight from `A`'s memory, and does one FMA per accumulator:
//!
//! ```text
//!   c_ij ← 0 (or C[i,j] when accumulating);  for p = 0..k: c_ij ← fma(A[i,p], B[p,j], c_ij);  C[i,j] ← c_ij
//! ```
//!
//! With [`Epilogue::Scale`] the store is `C[i,j] ← c_ij · C[i,j]` (the old
//! value read just before; one f32 multiply of the finished chain, as a
//! separate pass would do).
//!
//! For `n ≤ 8` columns and row-major `A` (the MLP's 256 → 2 output layer)
//! a tile would leave most lanes idle; there 16 rows of `A` are transposed
//! in registers so that each lane runs one row's chain instead, in the same
//! order (see `NARROW_N`).
//!
//! `k` is never split, and every element goes through exactly this chain
//! whatever tile, edge tile (fewer rows, masked columns), path, row block or
//! thread it lands in, so row `i` of `C` is bit-identical for any `m` and
//! any split of the rows.
//!
//! Packed layout of `B: [k, n]` (see [`pack_b`]): columns in panels of
//! `NR = 32` starting at `j0 = 0, 32, …`; the last panel is `16` or `32`
//! wide (the remaining columns rounded up to a multiple of 16, zero
//! padded). The panel at `j0` with width `w` starts at offset `j0·k` and
//! holds `B[p, j0 + jj]` at `j0·k + p·w + jj`; the whole buffer is
//! [`packed_len`]`(k, n) = k·⌈n/16⌉·16` floats. A transposed `B` (the MLP's
//! `Wᵀ`) is packed by 16 × 16 in-register transposes.
//!
//! Why one file (~780 lines, of which ~190 are its tests): the tile, the
//! edge tiles, the row-lane path and the packing are one `unsafe` AVX-512
//! kernel sharing private constants and the bounds invariants that make its
//! raw loads and stores sound (`last_offset`); they are kept where one
//! reading can check them together.

use super::mat::{Epilogue, MatRef};

/// Rows of the register tile.
pub const MR: usize = 8;
/// Columns of a packed panel (two 16-lane vectors).
pub const NR: usize = 32;
const LANES: usize = 16;

/// Widest `C` (columns) for the row-lane path: with `n ≤ 8` columns (the
/// MLP's output layer has `data_dim = 2`) a register tile would leave most
/// of its 16 lanes idle, so instead 16 rows of `A` are transposed in
/// registers and each lane runs one row's chain:
/// `c_rj ← fma(A[r,p], B[p,j], c_rj)` for p = 0..k in order, the same
/// chain (and bits) as the tile.
const NARROW_N: usize = 8;

/// Whether this CPU can run the kernel (x86-64 with AVX-512F, detected at
/// run time; the answer is cached by `std`).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Floats in the packed form of a `[k, n]` matrix: `k·⌈n/16⌉·16`.
pub fn packed_len(k: usize, n: usize) -> usize {
    k * n.div_ceil(LANES) * LANES
}

/// Width of the panel starting at column `j0`: `min(32, ⌈(n − j0)/16⌉·16)`.
fn panel_width(n: usize, j0: usize) -> usize {
    NR.min((n - j0).div_ceil(LANES) * LANES)
}

/// Pack `B: [k, n]` (any strides) into `out[..packed_len(k, n)]` in the
/// panel layout of the module docs (padding columns set to 0).
pub fn pack_b(b: MatRef, out: &mut [f32]) {
    let (k, n) = (b.rows, b.cols);
    let out = &mut out[..packed_len(k, n)];
    for j0 in (0..n).step_by(NR) {
        let w = panel_width(n, j0);
        let cols = w.min(n - j0);
        let panel = &mut out[j0 * k..j0 * k + k * w];
        if b.cs == 1 {
            for (p, dst) in panel.chunks_exact_mut(w).enumerate() {
                let src = &b.data[p * b.rs + j0..p * b.rs + j0 + cols];
                dst[..cols].copy_from_slice(src);
                dst[cols..].fill(0.0);
            }
        } else if b.rs == 1 && available() {
            // B is the transpose of a row-major matrix (as Wᵀ is).
            assert!(
                last_offset(k, n, b.rs, b.cs).is_none_or(|l| l < b.data.len()),
                "pack_b: B does not fit its slice"
            );
            // SAFETY: AVX-512F is present, rs == 1 and the view fits its
            // slice (asserted above).
            unsafe { avx512::transpose_panel(b, j0, w, cols, panel) };
        } else {
            // Walk each column of B contiguously when B is a transpose.
            for jj in 0..w {
                if jj < cols {
                    let base = (j0 + jj) * b.cs;
                    for p in 0..k {
                        panel[p * w + jj] = b.data[base + p * b.rs];
                    }
                } else {
                    for p in 0..k {
                        panel[p * w + jj] = 0.0;
                    }
                }
            }
        }
    }
}

/// The right-hand factor `B: [k, n]` as the kernel reads it.
#[derive(Clone, Copy, Debug)]
pub enum KernelB<'a> {
    /// Packed by [`pack_b`] from a `[k, n]` matrix (`data` holds at least
    /// [`packed_len`]`(k, n)` floats).
    Packed { data: &'a [f32], k: usize, n: usize },
    /// Read in place from a view with unit column stride (`cs == 1`): row
    /// `p` of a panel is `B[p, j0..j0+32]`, loaded with its tail masked.
    Rows(MatRef<'a>),
}

impl KernelB<'_> {
    /// `(k, n)`.
    pub fn shape(&self) -> (usize, usize) {
        match *self {
            KernelB::Packed { k, n, .. } => (k, n),
            KernelB::Rows(b) => (b.rows, b.cols),
        }
    }
}

/// Largest element offset of a strided `[rows, cols]` view, `None` when
/// empty or when it overflows.
fn last_offset(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return None;
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)
}

/// `C = A·B`, `C += A·B` (the FMA chain of every element starting from its
/// old value) or `C = (A·B) ⊙ D`, as `epi` says, on the current thread;
/// `A: [m, k]` strided, `B: [k, n]` packed or row-major in place, `C` and
/// `D`: `[m, n]` contiguous row-major.
///
/// With `col_sum` (`[n]`), also `col_sum[j] = Σ_i C[i, j]` of the stored
/// `C`, added in row order starting from 0 (the bits of
/// [`super::simd::sum_rows`]): row blocks are visited in order, so each
/// tile adds its rows to the running sums while they are still in
/// registers.
///
/// Panics if the CPU lacks AVX-512F, or if a view or `col_sum` does not fit.
pub fn gemm_serial(
    a: MatRef,
    b: KernelB,
    c: &mut [f32],
    epi: Epilogue,
    mut col_sum: Option<&mut [f32]>,
) {
    let (m, k) = (a.rows, a.cols);
    let (kb, n) = b.shape();
    assert!(available(), "kernel::gemm_serial needs AVX-512F");
    assert_eq!(kb, k, "kernel: inner dimensions differ");
    assert_eq!(c.len(), m * n, "kernel: C has the wrong length");
    let accumulate = epi == Epilogue::Add;
    let scale = epi == Epilogue::Scale;
    if m > 0 && k > 0 {
        let last = last_offset(m, k, a.rs, a.cs);
        assert!(
            last.is_some_and(|l| l < a.data.len()),
            "kernel: A does not fit its slice"
        );
    }
    if let Some(sum) = col_sum.as_deref_mut() {
        assert_eq!(sum.len(), n, "kernel: col_sum must have n values");
        sum.fill(0.0);
    }
    match b {
        KernelB::Packed { data, .. } => {
            assert!(data.len() >= packed_len(k, n), "kernel: packed B too short")
        }
        KernelB::Rows(v) => {
            assert_eq!(v.cs, 1, "kernel: in-place B needs unit column stride");
            if k > 0 && n > 0 {
                let last = last_offset(k, n, v.rs, 1);
                assert!(
                    last.is_some_and(|l| l < v.data.len()),
                    "kernel: B does not fit its slice"
                );
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if n <= NARROW_N && a.cs == 1 && k > 0 {
        let (bptr, ldb) = match b {
            // One panel, 16 wide.
            KernelB::Packed { data, .. } => (data.as_ptr(), LANES),
            KernelB::Rows(v) => (v.data.as_ptr(), v.rs),
        };
        // SAFETY: AVX-512F is present; A (rows < m, p < k), B (p < k,
        // j < n) and C (m·n) lie inside their slices (checked above).
        unsafe {
            avx512::narrow_dispatch(
                m,
                k,
                n,
                a.data.as_ptr(),
                a.rs,
                bptr,
                ldb,
                c.as_mut_ptr(),
                accumulate,
                scale,
            )
        };
        if let Some(sum) = col_sum {
            for row in c.chunks_exact(n) {
                for (o, &v) in sum.iter_mut().zip(row) {
                    *o += v;
                }
            }
        }
        return;
    }
    let sum_ptr = col_sum.map_or(std::ptr::null_mut(), |s| s.as_mut_ptr());
    #[cfg(target_arch = "x86_64")]
    for i0 in (0..m).step_by(MR) {
        let rows = MR.min(m - i0);
        for j0 in (0..n).step_by(NR) {
            let w = panel_width(n, j0);
            // Columns in the panel's last 16-lane vector (1..=16).
            let tail = (n - j0 - (w - LANES)).min(LANES);
            let mask = if tail >= LANES {
                u16::MAX
            } else {
                (1u16 << tail) - 1
            };
            let (bptr, ldb) = match b {
                KernelB::Packed { data, .. } => (data.as_ptr().wrapping_add(j0 * k), w),
                KernelB::Rows(v) => (v.data.as_ptr().wrapping_add(j0), v.rs),
            };
            // SAFETY: AVX-512F is present (asserted above). For r < rows
            // and p < k, A[i0 + r, p] lies inside A's slice (checked above).
            // Panel row p at bptr + p·ldb: packed, it is one of the k rows
            // of w floats of the panel at j0·k, inside packed_len(k, n);
            // in place, lanes j0 + jj < n of row p lie inside B's slice
            // (checked above) and the last vector is loaded under `mask`.
            // C rows i0..i0+rows, columns j0 + jj < n (the last vector
            // masked) lie inside `c` (len m·n), and the same columns of
            // `col_sum` (len n) when it is given.
            unsafe {
                avx512::tile_dispatch(
                    rows,
                    w / LANES,
                    k,
                    a.data.as_ptr().wrapping_add(i0 * a.rs),
                    a.rs,
                    a.cs,
                    bptr,
                    ldb,
                    c.as_mut_ptr().add(i0 * n + j0),
                    n,
                    mask,
                    accumulate,
                    scale,
                    if sum_ptr.is_null() {
                        sum_ptr
                    } else {
                        sum_ptr.add(j0)
                    },
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Fill a packed panel (`w` = 16 or 32 wide, `cols` ≤ `w` real
    /// columns, the rest zero) from `B: [k, n]` with `rs == 1`, i.e. from
    /// the row-major `M = Bᵀ` (row stride `cs`): each 16 × 16 block of `M`
    /// (16 of its rows from `j0 + 16h`, 16 columns from `p0`) is loaded as
    /// 16 vectors, transposed in registers and stored as 16 panel-row
    /// pieces; the last `k mod 16` panel rows are copied element by element.
    ///
    /// # Safety
    /// AVX-512F must be available, `b.rs == 1`, and `b` must fit its slice.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_panel(
        b: super::MatRef,
        j0: usize,
        w: usize,
        cols: usize,
        panel: &mut [f32],
    ) {
        let (k, cs) = (b.rows, b.cs);
        let m = b.data.as_ptr();
        let full = k - k % 16;
        for p0 in (0..full).step_by(16) {
            for h in 0..w / 16 {
                let mut r = [_mm512_setzero_ps(); 16];
                for (i, v) in r.iter_mut().enumerate() {
                    let jj = 16 * h + i;
                    if jj < cols {
                        *v = _mm512_loadu_ps(m.add((j0 + jj) * cs + p0));
                    }
                }
                transpose16(&mut r);
                for (q, v) in r.iter().enumerate() {
                    _mm512_storeu_ps(panel.as_mut_ptr().add((p0 + q) * w + 16 * h), *v);
                }
            }
        }
        for p in full..k {
            for jj in 0..w {
                panel[p * w + jj] = if jj < cols {
                    b.data[(j0 + jj) * cs + p]
                } else {
                    0.0
                };
            }
        }
    }

    /// In-register 16 × 16 transpose: afterwards `r[q][i]` is the old
    /// `r[i][q]`. Pairs of rows are interleaved (unpack), then pairs of
    /// pairs (`shuffle_ps`), leaving in 128-bit lane L of `u[4g + c]` the
    /// rows 4g..4g+4 at column 4L + c; two rounds of 128-bit lane
    /// shuffles then gather lane L of `u[c], u[4 + c], u[8 + c], u[12 + c]`.
    #[inline(always)]
    unsafe fn transpose16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (lo, hi) = (t[4 * g], t[4 * g + 1]);
            let (lo2, hi2) = (t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm512_shuffle_ps::<0x44>(lo, lo2);
            u[4 * g + 1] = _mm512_shuffle_ps::<0xEE>(lo, lo2);
            u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(hi, hi2);
            u[4 * g + 3] = _mm512_shuffle_ps::<0xEE>(hi, hi2);
        }
        for c in 0..4 {
            let v_even = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
            let v_odd = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
            let w_even = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
            let w_odd = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
            r[c] = _mm512_shuffle_f32x4::<0x88>(v_even, w_even);
            r[8 + c] = _mm512_shuffle_f32x4::<0xDD>(v_even, w_even);
            r[4 + c] = _mm512_shuffle_f32x4::<0x88>(v_odd, w_odd);
            r[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v_odd, w_odd);
        }
    }

    /// Call [`narrow`] with `N = n` (1..=8).
    ///
    /// # Safety
    /// As for [`narrow`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) unsafe fn narrow_dispatch(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rs: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        acc: bool,
        scale: bool,
    ) {
        macro_rules! go {
            ($($n:literal)*) => {
                match n {
                    $($n => narrow::<$n>(m, k, a, rs, b, ldb, c, acc, scale),)*
                    _ => unreachable!("narrow path is for 1..=8 columns"),
                }
            };
        }
        go!(1 2 3 4 5 6 7 8)
    }

    /// `C: [m, N]` (row-major) `= A·B`, `+= A·B` (`acc`) or `= (A·B) ⊙ C`
    /// (`scale`), `A: [m, k]` with unit column stride and row stride `rs`,
    /// `B[p, j]` at `b + p·ldb + j`. Rows of `A` go in blocks of 16, one
    /// per lane: each 16 × 16 block of `A` is transposed in registers so
    /// that vector `q` holds column `p0 + q` of the 16 rows, then
    /// `acc_j ← fma(A[·, p], B[p, j], acc_j)` for each j < N.
    ///
    /// # Safety
    /// AVX-512F must be available; `a + r·rs + p` readable for r < m,
    /// p < k; `b + p·ldb + j` readable for p < k, j < N; `c + r·N + j`
    /// readable and writable for r < m, j < N.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn narrow<const N: usize>(
        m: usize,
        k: usize,
        a: *const f32,
        rs: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        acc: bool,
        scale: bool,
    ) {
        let full = k - k % 16;
        let mut lanes = [0f32; 16];
        for i0 in (0..m).step_by(16) {
            let rows = 16.min(m - i0);
            let block = a.add(i0 * rs);
            let mut sums = [_mm512_setzero_ps(); N];
            if acc {
                for (j, s) in sums.iter_mut().enumerate() {
                    for (i, l) in lanes.iter_mut().enumerate().take(rows) {
                        *l = *c.add((i0 + i) * N + j);
                    }
                    *s = _mm512_loadu_ps(lanes.as_ptr());
                }
            }
            for p0 in (0..full).step_by(16) {
                let mut r = [_mm512_setzero_ps(); 16];
                for (i, v) in r.iter_mut().enumerate().take(rows) {
                    *v = _mm512_loadu_ps(block.add(i * rs + p0));
                }
                transpose16(&mut r);
                for (q, col) in r.iter().enumerate() {
                    let brow = b.add((p0 + q) * ldb);
                    for (j, s) in sums.iter_mut().enumerate() {
                        *s = _mm512_fmadd_ps(*col, _mm512_set1_ps(*brow.add(j)), *s);
                    }
                }
            }
            for p in full..k {
                for (i, l) in lanes.iter_mut().enumerate().take(rows) {
                    *l = *block.add(i * rs + p);
                }
                let col = _mm512_loadu_ps(lanes.as_ptr());
                let brow = b.add(p * ldb);
                for (j, s) in sums.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(col, _mm512_set1_ps(*brow.add(j)), *s);
                }
            }
            for (j, s) in sums.iter().enumerate() {
                let mut v = *s;
                if scale {
                    for (i, l) in lanes.iter_mut().enumerate().take(rows) {
                        *l = *c.add((i0 + i) * N + j);
                    }
                    v = _mm512_mul_ps(v, _mm512_loadu_ps(lanes.as_ptr()));
                }
                _mm512_storeu_ps(lanes.as_mut_ptr(), v);
                for (i, l) in lanes.iter().enumerate().take(rows) {
                    *c.add((i0 + i) * N + j) = *l;
                }
            }
        }
    }

    /// Call [`tile`] with `R = rows` (1..=8) and `V = vecs` (1 or 2).
    ///
    /// # Safety
    /// As for [`tile`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) unsafe fn tile_dispatch(
        rows: usize,
        vecs: usize,
        k: usize,
        a: *const f32,
        rs: usize,
        cs: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        mask: u16,
        acc: bool,
        scale: bool,
        sum: *mut f32,
    ) {
        macro_rules! go {
            ($r:literal) => {
                if vecs == 2 {
                    tile::<$r, 2>(k, a, rs, cs, b, ldb, c, ldc, mask, acc, scale, sum)
                } else {
                    tile::<$r, 1>(k, a, rs, cs, b, ldb, c, ldc, mask, acc, scale, sum)
                }
            };
        }
        match rows {
            8 => go!(8),
            7 => go!(7),
            6 => go!(6),
            5 => go!(5),
            4 => go!(4),
            3 => go!(3),
            2 => go!(2),
            _ => go!(1),
        }
    }

    /// One `R × 16V` tile: `c_rj = fma(A[r,p], B[p,j], c_rj)` for p = 0..k
    /// in order, from 0 (or from C when `acc`), then stored to C, times the
    /// old C first when `scale`; the last of the `V` vectors is
    /// loaded/stored under `mask`. Unless `sum` is null, the stored rows
    /// are then added to `sum[j]` one after another (r = 0..R).
    ///
    /// # Safety
    /// AVX-512F must be available; `a + r·rs + p·cs` must be readable for
    /// r < R, p < k; `b + p·ldb + j` readable and `c + r·ldc + j` (and
    /// `sum + j` when not null) readable and writable for r < R, p < k and
    /// j < 16(V−1) plus the lanes set in `mask` of the last vector.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize, const V: usize>(
        k: usize,
        a: *const f32,
        rs: usize,
        cs: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        mask: u16,
        acc: bool,
        scale: bool,
        sum: *mut f32,
    ) {
        let lane_mask = |v: usize| if v + 1 == V { mask } else { u16::MAX };
        let mut t = [[_mm512_setzero_ps(); V]; R];
        if acc {
            for (r, row) in t.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_maskz_loadu_ps(lane_mask(v), c.add(r * ldc + 16 * v));
                }
            }
        }
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(lane_mask(v), bp.add(16 * v));
            }
            for (r, row) in t.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r * rs));
                for (x, &bb) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, bb, *x);
                }
            }
            ap = ap.wrapping_add(cs);
            bp = bp.wrapping_add(ldb);
        }
        if scale {
            for (r, row) in t.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    let dv = _mm512_maskz_loadu_ps(lane_mask(v), c.add(r * ldc + 16 * v));
                    *x = _mm512_mul_ps(*x, dv);
                }
            }
        }
        for (r, row) in t.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(c.add(r * ldc + 16 * v), lane_mask(v), x);
            }
        }
        if !sum.is_null() {
            for v in 0..V {
                let ptr = sum.add(16 * v);
                let mut s = _mm512_maskz_loadu_ps(lane_mask(v), ptr);
                for row in &t {
                    s = _mm512_add_ps(s, row[v]);
                }
                _mm512_mask_storeu_ps(ptr, lane_mask(v), s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mat::naive;
    use super::*;

    fn view(data: &[f32], rows: usize, cols: usize, trans: bool) -> MatRef<'_> {
        if trans {
            MatRef::transposed(data, rows, cols)
        } else {
            MatRef::row_major(data, rows, cols)
        }
    }

    /// Small integers: every product and partial sum is exact in f32, so
    /// the kernel must match the f64 product exactly.
    fn check(m: usize, k: usize, n: usize) {
        let av: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 17) as f32) - 8.0).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
        let dv: Vec<f32> = (0..m * n).map(|i| ((i * 5 % 7) as f32) - 3.0).collect();
        let mut bp = vec![f32::NAN; packed_len(k, n)];
        for at in [false, true] {
            for bt in [false, true] {
                let (a, b) = (view(&av, m, k, at), view(&bv, k, n, bt));
                let want = naive(a, b);
                pack_b(b, &mut bp);
                let packed = KernelB::Packed { data: &bp, k, n };
                let forms = if bt {
                    vec![packed]
                } else {
                    vec![packed, KernelB::Rows(b)]
                };
                for kb in forms {
                    let mut c = vec![f32::NAN; m * n];
                    gemm_serial(a, kb, &mut c, Epilogue::Set, None);
                    for (x, y) in c.iter().zip(&want) {
                        assert_eq!(*x as f64, *y, "m={m} k={k} n={n} at={at} bt={bt} {kb:?}");
                    }
                    gemm_serial(a, kb, &mut c, Epilogue::Add, None);
                    for (x, y) in c.iter().zip(&want) {
                        assert_eq!(*x as f64, 2.0 * *y, "accumulate m={m} k={k} n={n}");
                    }
                    c.copy_from_slice(&dv);
                    let mut sums = vec![f32::NAN; n];
                    gemm_serial(a, kb, &mut c, Epilogue::Scale, Some(&mut sums));
                    let mut want_sums = vec![0.0f64; n];
                    for ((i, (x, y)), f) in c.iter().zip(&want).enumerate().zip(&dv) {
                        assert_eq!(*x as f64, *y * *f as f64, "scale m={m} k={k} n={n}");
                        want_sums[i % n] += *x as f64;
                    }
                    for (x, y) in sums.iter().zip(&want_sums) {
                        assert_eq!(*x as f64, *y, "column sums m={m} k={k} n={n}");
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_matches_naive_on_odd_and_real_shapes() {
        if !available() {
            return;
        }
        for m in (1..40).step_by(3) {
            for k in (1..40).step_by(4) {
                for n in 1..40 {
                    check(m, k, n);
                }
            }
        }
        for k in [0, 1, 2, 33, 34] {
            check(9, k, 17);
        }
        for (m, k, n) in [
            (37, 34, 256),
            (37, 256, 256),
            (37, 256, 2),
            (256, 40, 34),
            (2, 40, 256),
            (37, 2, 256),
        ] {
            check(m, k, n);
        }
    }

    /// Both packing paths (row-major and transposed `B`) give the layout of
    /// the module docs, padding included.
    #[test]
    fn pack_b_matches_the_panel_layout() {
        for (k, n) in [(1, 1), (16, 16), (17, 33), (34, 256), (256, 2), (40, 47)] {
            let bv: Vec<f32> = (0..k * n).map(|i| i as f32 + 1.0).collect();
            for trans in [false, true] {
                let b = view(&bv, k, n, trans);
                let mut out = vec![f32::NAN; packed_len(k, n)];
                pack_b(b, &mut out);
                for j0 in (0..n).step_by(NR) {
                    let w = panel_width(n, j0);
                    for p in 0..k {
                        for jj in 0..w {
                            let want = if j0 + jj < n {
                                b.data[p * b.rs + (j0 + jj) * b.cs]
                            } else {
                                0.0
                            };
                            let got = out[j0 * k + p * w + jj];
                            assert_eq!(got, want, "k={k} n={n} trans={trans} p={p} j={}", j0 + jj);
                        }
                    }
                }
            }
        }
    }

    /// Row i of a product is the same bits whatever rows surround it.
    #[test]
    fn rows_do_not_depend_on_m() {
        if !available() {
            return;
        }
        // n = 70: register tiles; n ≤ 8: the row-lane path (k = 37 leaves
        // a tail of 5 after the 16-wide blocks).
        for (k, n) in [(256, 70), (37, 2), (256, 3)] {
            check_rows_do_not_depend_on_m(k, n);
        }
    }

    fn check_rows_do_not_depend_on_m(k: usize, n: usize) {
        let m = 53;
        let av: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.377).sin()).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.191).cos()).collect();
        let mut bp = vec![0.0; packed_len(k, n)];
        pack_b(MatRef::transposed(&bv, k, n), &mut bp);
        let packed = KernelB::Packed { data: &bp, k, n };
        let mut full = vec![0.0; m * n];
        gemm_serial(
            MatRef::row_major(&av, m, k),
            packed,
            &mut full,
            Epilogue::Set,
            None,
        );
        // In place from a row-major copy of B: the same bits.
        let rows: Vec<f32> = (0..k * n).map(|i| bv[(i % n) * k + i / n]).collect();
        let mut inplace = vec![0.0; m * n];
        let b_rows = KernelB::Rows(MatRef::row_major(&rows, k, n));
        gemm_serial(
            MatRef::row_major(&av, m, k),
            b_rows,
            &mut inplace,
            Epilogue::Set,
            None,
        );
        assert_eq!(inplace, full);
        // A stored transposed always takes the register tiles: the same
        // bits as the row-lane path.
        let at: Vec<f32> = (0..m * k).map(|i| av[(i % m) * k + i / m]).collect();
        let mut tiled = vec![0.0; m * n];
        gemm_serial(
            MatRef::transposed(&at, m, k),
            packed,
            &mut tiled,
            Epilogue::Set,
            None,
        );
        assert_eq!(tiled, full);
        for (start, len) in [(0, 1), (5, 7), (9, 1), (46, 7), (1, 52)] {
            let a = MatRef::row_major(&av[start * k..], len, k);
            let mut part = vec![0.0; len * n];
            gemm_serial(a, packed, &mut part, Epilogue::Set, None);
            assert_eq!(part, full[start * n..(start + len) * n]);
        }
        // The fused multiply rounds exactly like a separate pass.
        let dv: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.713).cos()).collect();
        let mut fused = dv.clone();
        let mut sums = vec![f32::NAN; n];
        gemm_serial(
            MatRef::row_major(&av, m, k),
            packed,
            &mut fused,
            Epilogue::Scale,
            Some(&mut sums),
        );
        let separate: Vec<f32> = full.iter().zip(&dv).map(|(x, f)| x * f).collect();
        assert_eq!(fused, separate);
        // The column sums ride in the stores with the bits of a separate
        // pass in row order.
        let mut want = vec![0.0; n];
        super::super::simd::sum_rows(&separate, &mut want);
        assert_eq!(sums, want);
    }
}
