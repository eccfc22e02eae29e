//! Cache blocking for products whose `B` does not fit in L2 (BLIS-style
//! loops around the same register tiles): columns in blocks of `NC`, `K`
//! in slices of `KC`, rows in blocks of `MC`; a `B` read in place is
//! copied into packed panels one `KC × NC` block at a time (a packed `B`
//! is read in place, slice by slice). Inside a block each `KC × 32` panel
//! slice (16 KB) stays in L1 while the tiles of an `MC`-row block of `A`
//! pass over it, and the `MC × KC` piece of `A` stays in L2 across the
//! panels.
//!
//! The bits are those of the unblocked kernel: every element is still the
//! one FMA chain over `p = 0..k` in order; between slices its value is
//! stored to `C` and loaded back (exact in f32), the first slice starting
//! from 0 (or from the old `C` when accumulating). Column sums ride in the
//! stores of the last slice, row blocks in order. (An [`Epilogue::Scale`]
//! product needs its old `C` until the end, so it never comes here.)
//!
//! [`Epilogue::Scale`]: super::Epilogue::Scale

use std::cell::RefCell;

use super::{pack_b, packed_len, tiles, KernelB, MatRef, Out, Span, MR, NR};

/// K-slice length (panel slices of `KC × 32` floats = 16 KB, half of L1).
const KC: usize = 128;
/// Rows of `A` per block (`MC × KC` = 64 KB, in L2).
const MC: usize = 128;
/// Columns of `B` per block (`KC × NC` = 256 KB packed, in L2).
const NC: usize = 512;

/// Whether the blocked loops pay: `B` over 1 MB (`k·n > 2¹⁸`), i.e. more
/// than L2 holds beside `A`'s rows, with more than one K-slice and more
/// than one row tile. The networks' products stay below (their largest
/// `B` is 512 × 256).
pub(super) fn wanted(m: usize, k: usize, n: usize) -> bool {
    k > KC && m > MR && k.saturating_mul(n) > 1 << 18
}

thread_local! {
    /// Packed `KC × NC` block of an in-place `B` on this thread.
    static BLOCK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `C = A·B` (or `C += A·B` with `accumulate`), and the column sums when
/// `out.sum` is not null, on the current thread, blocked as in the module
/// docs; `A: [m, k]`, `B: [k, n]`.
///
/// # Safety
/// AVX-512F must be available and the views, `out.c` (`m` rows of stride
/// `out.ldc ≥ n`) and `out.sum` (null or `n` values) must satisfy the
/// contract of [`tiles`] for rows `0..m`, all of `K` and all columns.
pub(super) unsafe fn gemm(a: MatRef, b: KernelB, out: Out, m: usize, accumulate: bool) {
    let (k, n) = b.shape();
    let run = |block: &mut Vec<f32>| {
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let acc = accumulate || pc > 0;
                let sum = if pc + kc == k {
                    out.sum
                } else {
                    std::ptr::null_mut()
                };
                match b {
                    KernelB::Packed { .. } => {
                        let o = Out { sum, ..out };
                        for ic in (0..m).step_by(MC) {
                            for j0 in (jc..jc + nc).step_by(NR) {
                                let cols = (j0, (j0 + NR).min(n));
                                let rows = (ic, (ic + MC).min(m));
                                let span = Span { p0: pc, kc };
                                // SAFETY: the caller's contract, for a
                                // subset of the rows, K and the columns.
                                unsafe { tiles(a, b, span, o, rows, cols, n, acc, false) };
                            }
                        }
                    }
                    KernelB::Rows(v) => {
                        let sub = MatRef {
                            data: &v.data[pc * v.rs + jc..],
                            rows: kc,
                            cols: nc,
                            ..v
                        };
                        block.resize(packed_len(kc, nc), 0.0);
                        pack_b(sub, block);
                        let pb = KernelB::Packed {
                            data: block,
                            k: kc,
                            n: nc,
                        };
                        let a_slice = MatRef {
                            data: &a.data[pc * a.cs..],
                            cols: kc,
                            ..a
                        };
                        // Column jc of C and of the sums is column 0 of
                        // the block.
                        let o = Out {
                            c: out.c.wrapping_add(jc),
                            ldc: out.ldc,
                            sum: if sum.is_null() {
                                sum
                            } else {
                                sum.wrapping_add(jc)
                            },
                        };
                        for ic in (0..m).step_by(MC) {
                            for j0 in (0..nc).step_by(NR) {
                                let cols = (j0, (j0 + NR).min(nc));
                                let rows = (ic, (ic + MC).min(m));
                                let span = Span { p0: 0, kc };
                                // SAFETY: the block is packed for
                                // [kc, nc]; `a_slice` is A's columns
                                // pc..pc+kc; C and the sums are offset to
                                // column jc with nc ≤ n − jc columns left,
                                // inside the caller's contract.
                                unsafe { tiles(a_slice, pb, span, o, rows, cols, nc, acc, false) };
                            }
                        }
                    }
                }
            }
        }
    };
    crate::backend::with_scratch(&BLOCK, |block| run(block));
}
