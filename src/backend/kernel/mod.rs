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
//! This file holds the packing, the dispatch and the bounds checks that
//! make the raw loads and stores sound (`last_offset`); the intrinsics are
//! in [`avx512`] (one file per instruction set), the tests in `tests.rs`.

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
        pack_panel(b, j0, &mut out[j0 * k..j0 * k + k * w]);
    }
}

/// [`pack_b`] with the panels shared out as rayon tasks (each panel is
/// copied alone, so the result is the same).
pub fn pack_b_par(b: MatRef, out: &mut [f32]) {
    use rayon::prelude::*;
    let (k, n) = (b.rows, b.cols);
    if k == 0 || n == 0 {
        return;
    }
    out[..packed_len(k, n)]
        .par_chunks_mut(NR * k)
        .enumerate()
        .for_each(|(i, panel)| pack_panel(b, i * NR, panel));
}

/// Panel `j0` of [`pack_b`] (`k · panel_width(n, j0)` floats).
fn pack_panel(b: MatRef, j0: usize, panel: &mut [f32]) {
    let (k, n) = (b.rows, b.cols);
    let w = panel_width(n, j0);
    let cols = w.min(n - j0);
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
    col_sum: Option<&mut [f32]>,
) {
    gemm_col_split(a, b, c, epi, col_sum, 1);
}

/// [`gemm_serial`] with the panels of `C` (and of `col_sum`) split into
/// `tasks` contiguous column groups run as rayon tasks: every column is
/// computed, and summed over the rows in order, exactly as in one call, so
/// the bits do not depend on `tasks`. (Narrow `C`, n ≤ 8, runs on one
/// thread.) Splitting columns rather than rows is what keeps the fused
/// column sums in the stores.
pub fn gemm_col_split(
    a: MatRef,
    b: KernelB,
    c: &mut [f32],
    epi: Epilogue,
    mut col_sum: Option<&mut [f32]>,
    tasks: usize,
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
    let out = Out {
        c: c.as_mut_ptr(),
        ldc: n,
        sum: sum_ptr,
    };
    #[cfg(target_arch = "x86_64")]
    if !scale && blocked::wanted(m, k, n) {
        // SAFETY: as for `tiles` below.
        unsafe { blocked::gemm(a, b, out, m, accumulate) };
        return;
    }
    let panels = n.div_ceil(NR);
    let tasks = tasks.clamp(1, panels.max(1));
    let per = panels.div_ceil(tasks) * NR;
    let run = |t: usize| {
        let cols = (t * per, ((t + 1) * per).min(n));
        // SAFETY: AVX-512F is present, the views fit their slices, `c`
        // holds m·n values and `sum_ptr` is null or n values (all checked
        // above); the tasks get disjoint column groups of them.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            tiles(
                a,
                b,
                Span { p0: 0, kc: k },
                out,
                (0, m),
                cols,
                n,
                accumulate,
                scale,
            )
        };
    };
    if tasks == 1 {
        run(0);
    } else {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(run);
    }
}

/// The K-slice `p0 .. p0 + kc` of a product that [`tiles`] computes.
#[derive(Clone, Copy)]
struct Span {
    p0: usize,
    kc: usize,
}

/// Where [`tiles`] writes: `C` (row-major, row stride `ldc`) and the
/// column sums (null: none), both from the first column of `B`. Shared by the tasks of a column split, which write
/// disjoint columns.
#[derive(Clone, Copy)]
struct Out {
    c: *mut f32,
    /// Row stride of C.
    ldc: usize,
    sum: *mut f32,
}

// SAFETY: an `Out` is only dereferenced inside `tiles`, whose callers give
// concurrent tasks disjoint column ranges of C and of the sums.
unsafe impl Send for Out {}
// SAFETY: as for `Send`: concurrent users touch disjoint columns.
unsafe impl Sync for Out {}

/// The register tiles of rows `rows.0 .. rows.1` (row blocks of `MR` from
/// `rows.0`, visited in order) and of the panels starting in
/// `cols.0 .. cols.1` (`cols.0` a multiple of `NR`, `cols.1` a multiple of
/// `NR` or `n`), over the K-slice `span`: each element's chain
/// `c ← fma(A[i,p], B[p,j], c)` for p in the slice, started from 0 or (with
/// `accumulate`) from `C[i,j]`. Splitting K into slices whose later parts
/// accumulate therefore gives the bits of one chain (f32 stores and loads
/// are exact).
///
/// # Safety
/// `a` must fit its slice for the rows and the K-slice, `b` (packed
/// for the whole `[k, n]`, or in place with unit column stride) for the
/// K-slice and the columns, `out.c` must hold rows `..rows.1` of row
/// stride `out.ldc ≥ n` and `out.sum` be null or hold `n` values; no other thread may touch these columns
/// of C or of the sums during the call.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
unsafe fn tiles(
    a: MatRef,
    b: KernelB,
    span: Span,
    out: Out,
    rows: (usize, usize),
    cols: (usize, usize),
    n: usize,
    accumulate: bool,
    scale: bool,
) {
    let k = b.shape().0;
    for i0 in (rows.0..rows.1).step_by(MR) {
        let r = MR.min(rows.1 - i0);
        for j0 in (cols.0..cols.1).step_by(NR) {
            let w = panel_width(n, j0);
            // Columns in the panel's last 16-lane vector (1..=16).
            let tail = (n - j0 - (w - LANES)).min(LANES);
            let mask = if tail >= LANES {
                u16::MAX
            } else {
                (1u16 << tail) - 1
            };
            let (bptr, ldb) = match b {
                KernelB::Packed { data, .. } => {
                    (data.as_ptr().wrapping_add(j0 * k + span.p0 * w), w)
                }
                KernelB::Rows(v) => (v.data.as_ptr().wrapping_add(span.p0 * v.rs + j0), v.rs),
            };
            let aptr = a.data.as_ptr().wrapping_add(i0 * a.rs + span.p0 * a.cs);
            // SAFETY: AVX-512F is present (checked by the callers). For
            // r < rows and p in the slice, A[i0 + r, p] lies inside A's
            // slice. Panel row p at bptr + (p − p0)·ldb: packed, it is one
            // of the k rows of w floats of the panel at j0·k, inside
            // packed_len(k, n); in place, lanes j0 + jj < n of row p lie
            // inside B's slice and the last vector is loaded under
            // `mask`. C rows i0..i0+r, columns j0 + jj < n (the last
            // vector masked) lie inside C (rows of stride ldc), and the
            // same columns of the sums when given; no other thread
            // touches these columns (the caller's contract).
            unsafe {
                avx512::tile_dispatch(
                    r,
                    w / LANES,
                    span.kc,
                    aptr,
                    a.rs,
                    a.cs,
                    bptr,
                    ldb,
                    out.c.add(i0 * out.ldc + j0),
                    out.ldc,
                    mask,
                    accumulate,
                    scale,
                    if out.sum.is_null() {
                        out.sum
                    } else {
                        out.sum.add(j0)
                    },
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod blocked;

#[cfg(test)]
mod tests;
