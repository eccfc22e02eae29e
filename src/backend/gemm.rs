//! The one matrix multiply behind the network: `C = A·B` or `C += A·B`.
//!
//! Backend, chosen at run time:
//! - AVX-512F CPUs: our kernel ([`super::kernel`]): an 8×32 register tile
//!   that broadcasts `A` straight from its strided location (no packing of
//!   `A`), reads `B` in place when it is row-major and otherwise from a
//!   packed panel copy; [`PackedB`] + [`gemm_packed`] let a caller pack a
//!   fixed `B` once (the MLP keeps every layer's `Wᵀ` packed until its
//!   parameters change). Every `C[i,j]` is one FMA chain over `p = 0..k` in
//!   order (started from 0, or from `C[i,j]` when accumulating).
//! - Other CPUs: ndarray's `general_mat_mul` (the `matrixmultiply` crate,
//!   no threading feature), which packs both factors on every call.
//!
//! Either way, every element `C[i,j]` is accumulated over `k` in the same
//! order whatever the number of rows `m` (no gemv path for small `m`, no
//! `m`-dependent split of `k`), so row `i` of a product is bit-identical
//! whether it is computed in a batch of 1, 7 or 512 rows. (The two backends
//! round differently from each other; results are reproducible per CPU
//! family.)
//!
//! Throughput of each backend on the MLP's shapes
//! (`cargo run --release --example gemm_shapes`) is recorded in
//! BENCHMARKS.md.
//!
//! (The output layer's 512×256×2 product uses the kernel's row-lane path
//! for n ≤ 8; the first layer's weight gradient is computed transposed,
//! see `nn::layers`.)
//!
//! The backend does not use the `gemm` crate: its row `i` changes with `m`,
//! which would break the batch-size determinism rule above.
//!
//! [`gemm_scale`] writes `C ← (A·B) ⊙ C`: `C` holds an elementwise factor
//! on entry (the next-lower SiLU's derivative in backprop) and each tile is
//! multiplied by it in registers before the store, so backprop needs no
//! separate pass and no buffer for dL/dh. The product is rounded to f32
//! first, so the bits equal those of `gemm` followed by the multiply.
//!
//! Because rows are independent, splitting `C` by rows across rayon threads
//! gives bit-identical results for any thread count.
//!
//! Allocation: with the kernel, none once this thread's packing buffer has
//! grown; `matrixmultiply` allocates (and frees) its packing buffer inside
//! every call, with no API to hand it one.

use std::cell::RefCell;

use ndarray::linalg::general_mat_mul;
use ndarray::ArrayViewMut2;
use rayon::prelude::*;

use super::kernel::{self, KernelB};
pub use super::mat::{Epilogue, MatRef};
use super::with_scratch;

/// Minimum multiply-adds per rayon task before `gemm` splits the rows of `C`.
const PAR_MIN_WORK: usize = 1 << 20;

/// Minimum values of `B` before [`PackedB::pack_par`] splits the panels.
pub const PAR_MIN_PACK: usize = 1 << 14;

/// A `[k, n]` right-hand factor `B` prepared once for many products
/// [`gemm_packed`]: in the AVX-512 kernel's panel layout
/// ([`super::kernel::pack_b`]) when the CPU has AVX-512F, else as a plain
/// row-major copy for the `matrixmultiply` fallback. The buffer is reused
/// by later [`PackedB::pack`] calls (no allocation once it has grown).
#[derive(Clone, Debug, Default)]
pub struct PackedB {
    data: Vec<f32>,
    k: usize,
    n: usize,
    /// `true`: kernel panel layout; `false`: row-major `[k, n]` copy.
    panels: bool,
}

impl PackedB {
    /// An empty packed factor (`0 × 0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Overwrite with a packed copy of `b` (`[k, n]`, any strides).
    pub fn pack(&mut self, b: MatRef) {
        self.pack_with(b, false);
    }

    /// [`PackedB::pack`] with the kernel's panels copied as rayon tasks
    /// when `b` has at least [`PAR_MIN_PACK`] values (the same result).
    pub fn pack_par(&mut self, b: MatRef) {
        self.pack_with(b, b.rows * b.cols >= PAR_MIN_PACK);
    }

    fn pack_with(&mut self, b: MatRef, parallel: bool) {
        let (k, n) = (b.rows, b.cols);
        self.k = k;
        self.n = n;
        self.panels = kernel::available();
        if self.panels {
            self.data.resize(kernel::packed_len(k, n), 0.0);
            if parallel {
                kernel::pack_b_par(b, &mut self.data);
            } else {
                kernel::pack_b(b, &mut self.data);
            }
        } else {
            self.data.resize(k * n, 0.0);
            for (p, row) in self.data.chunks_exact_mut(n.max(1)).enumerate().take(k) {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = b.data[p * b.rs + j * b.cs];
                }
            }
        }
    }

    /// `k`, the rows of `B`.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// `n`, the columns of `B`.
    pub fn cols(&self) -> usize {
        self.n
    }
}

thread_local! {
    /// Packing buffer of [`gemm`] on this thread.
    static PACK: RefCell<PackedB> = RefCell::new(PackedB::new());
}

/// `C = A·B` (`accumulate == false`) or `C = C + A·B` (`accumulate == true`),
/// with `A: [m, k]`, `B: [k, n]` strided views and `C` a contiguous row-major
/// `[m, n]` slice.
///
/// With AVX-512F, `B` is read in place when its columns are contiguous
/// (`cs == 1`), else packed into this thread's reusable buffer first (as
/// [`gemm_packed`]); without AVX-512F the product goes to `matrixmultiply`.
///
/// When `parallel` is set and the product is large enough, the rows of `C`
/// are split into one contiguous block per rayon thread; since each row is
/// computed exactly as in a 1-row product, the result does not depend on the
/// thread count.
pub fn gemm(a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool, parallel: bool) {
    gemm_with(a, b, c, Epilogue::from_accumulate(accumulate), parallel);
}

/// `C ← (A·B) ⊙ C`: [`gemm`] with the old `C` (`[m, n]` row-major) as an
/// elementwise factor applied to each product element before it is stored.
/// Bit-identical to `gemm` into a scratch buffer followed by `C ⊙= scratch`,
/// with the same row independence and thread-count independence.
///
/// With `col_sum` (`[n]`), also `col_sum[j] = Σ_i C[i, j]` of the new `C`,
/// added in row order (the bits of [`super::simd::sum_rows`]). With the
/// kernel the sums ride in its stores, and a parallel product splits the
/// columns instead of the rows ([`kernel::gemm_col_split`]); otherwise
/// they are a separate pass.
pub fn gemm_scale(
    a: MatRef,
    b: MatRef,
    c: &mut [f32],
    col_sum: Option<&mut [f32]>,
    parallel: bool,
) {
    let (m, n) = (a.rows, b.cols);
    let Some(sum) = col_sum else {
        gemm_with(a, b, c, Epilogue::Scale, parallel);
        return;
    };
    assert_eq!(sum.len(), n, "gemm_scale: col_sum must have n values");
    if m > 0 && n > 0 && kernel::available() && b.cs == 1 {
        // One task, or the columns split (which keeps the sums in the
        // stores, in row order); the kernel checks the shapes.
        let tasks = split_tasks(m, a.cols, n, parallel);
        kernel::gemm_col_split(a, KernelB::Rows(b), c, Epilogue::Scale, Some(sum), tasks);
        return;
    }
    gemm_with(a, b, c, Epilogue::Scale, parallel);
    super::simd::sum_rows(c, sum);
}

fn gemm_with(a: MatRef, b: MatRef, c: &mut [f32], epi: Epilogue, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions differ");
    assert_eq!(c.len(), m * n, "gemm: C has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    if kernel::available() && b.cs == 1 {
        split_rows(a, n, c, parallel, |a, c| {
            kernel::gemm_serial(a, KernelB::Rows(b), c, epi, None)
        });
        return;
    }
    if kernel::available() {
        PACK.with(|cell| match cell.try_borrow_mut() {
            Ok(mut packed) => {
                packed.pack(b);
                gemm_packed_with(a, &packed, c, epi, parallel);
            }
            // Re-entered from a task stolen while this thread's buffer is
            // in use: stay correct with a temporary one.
            Err(_) => {
                let mut packed = PackedB::new();
                packed.pack(b);
                gemm_packed_with(a, &packed, c, epi, parallel);
            }
        });
        return;
    }
    split_rows(a, n, c, parallel, |a, c| gemm_serial(a, b, c, epi));
}

/// [`gemm`] with `B` already packed: `C = A·B` or `C = C + A·B`, `A: [m, k]`
/// strided, `C: [m, n]` row-major. Row `i` of `C` is bit-identical to the
/// same row computed by [`gemm`] in any batch and with any thread count.
pub fn gemm_packed(a: MatRef, b: &PackedB, c: &mut [f32], accumulate: bool, parallel: bool) {
    gemm_packed_with(a, b, c, Epilogue::from_accumulate(accumulate), parallel);
}

fn gemm_packed_with(a: MatRef, b: &PackedB, c: &mut [f32], epi: Epilogue, parallel: bool) {
    let (m, k, n) = (a.rows, a.cols, b.n);
    assert_eq!(b.k, k, "gemm_packed: inner dimensions differ");
    assert_eq!(c.len(), m * n, "gemm_packed: C has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    split_rows(a, n, c, parallel, |a, c| {
        if b.panels {
            let kb = KernelB::Packed {
                data: &b.data,
                k,
                n,
            };
            kernel::gemm_serial(a, kb, c, epi, None);
        } else {
            gemm_serial(a, MatRef::row_major(&b.data, k, n), c, epi);
        }
    });
}

/// Row blocks [`split_rows`] makes of an `[m, k]·[k, n]` product.
fn split_tasks(m: usize, k: usize, n: usize, parallel: bool) -> usize {
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    let work = m * n * k.max(1);
    threads.min(work / PAR_MIN_WORK).min(m / 8).max(1)
}

/// Run `f(A_rows, C_rows)` on contiguous row blocks of `A` and `C`
/// (`[m, n]`): one block per rayon thread when `parallel` is set and the
/// product is large enough, else one call on the whole matrix.
fn split_rows<F>(a: MatRef, n: usize, c: &mut [f32], parallel: bool, f: F)
where
    F: Fn(MatRef, &mut [f32]) + Sync,
{
    let m = a.rows;
    let tasks = split_tasks(m, a.cols, n, parallel);
    if tasks <= 1 {
        f(a, c);
        return;
    }
    let rows_per = m.div_ceil(tasks);
    c.par_chunks_mut(rows_per * n)
        .enumerate()
        .for_each(|(i, cc)| {
            let start = i * rows_per;
            let len = cc.len() / n;
            f(a.row_range(start, len), cc);
        });
}

thread_local! {
    /// Product buffer of the fallback's [`Epilogue::Scale`] on this thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The `matrixmultiply` fallback for one row block.
fn gemm_serial(a: MatRef, b: MatRef, c: &mut [f32], epi: Epilogue) {
    if epi == Epilogue::Scale {
        with_scratch(&SCRATCH, |scratch| {
            scratch.resize(c.len(), 0.0);
            gemm_serial(a, b, scratch, Epilogue::Set);
            for (x, &p) in c.iter_mut().zip(scratch.iter()) {
                *x *= p;
            }
        });
        return;
    }
    let (m, n) = (a.rows, b.cols);
    let accumulate = epi == Epilogue::Add;
    if a.cols == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    let mut cv = ArrayViewMut2::from_shape((m, n), c)
        .expect("gemm: C does not match [m, n] (internal shape bug)");
    general_mat_mul(1.0, &a.view(), &b.view(), beta, &mut cv);
}

#[cfg(test)]
mod tests {
    use super::super::mat::naive;
    use super::*;

    #[test]
    fn gemm_matches_naive_all_layouts_and_accumulates() {
        let (m, k, n) = (37, 19, 23);
        let av: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 17) as f32) - 8.0).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
        for at in [false, true] {
            for bt in [false, true] {
                let a = if at {
                    MatRef::transposed(&av, m, k)
                } else {
                    MatRef::row_major(&av, m, k)
                };
                let b = if bt {
                    MatRef::transposed(&bv, k, n)
                } else {
                    MatRef::row_major(&bv, k, n)
                };
                let want = naive(a, b);
                let mut c = vec![1.0f32; m * n];
                gemm(a, b, &mut c, false, true);
                for (x, y) in c.iter().zip(&want) {
                    assert_eq!(*x as f64, *y, "integers are exact in f32");
                }
                gemm(a, b, &mut c, true, false);
                for (x, y) in c.iter().zip(&want) {
                    assert_eq!(*x as f64, 2.0 * *y);
                }
                let d: Vec<f32> = (0..m * n).map(|i| ((i * 5 % 7) as f32) - 3.0).collect();
                for parallel in [false, true] {
                    c.copy_from_slice(&d);
                    let mut sums = vec![f32::NAN; n];
                    gemm_scale(a, b, &mut c, Some(&mut sums), parallel);
                    let mut want_sums = vec![0.0f64; n];
                    for (i, ((x, y), f)) in c.iter().zip(&want).zip(&d).enumerate() {
                        assert_eq!(*x as f64, *y * *f as f64);
                        want_sums[i % n] += *x as f64;
                    }
                    for (x, y) in sums.iter().zip(&want_sums) {
                        assert_eq!(*x as f64, *y, "column sums are exact on integers");
                    }
                }
            }
        }
    }

    /// Split across threads, each row block scales by its own rows.
    #[test]
    fn gemm_scale_splits_with_the_rows() {
        let (m, k, n) = (515, 64, 80);
        assert!(m * k * n >= 2 * PAR_MIN_WORK, "large enough to split");
        let av: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.377).sin()).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.191).cos()).collect();
        let d: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.713).cos()).collect();
        let (a, b) = (MatRef::row_major(&av, m, k), MatRef::row_major(&bv, k, n));
        let mut plain = vec![0.0; m * n];
        gemm(a, b, &mut plain, false, false);
        let want: Vec<f32> = plain.iter().zip(&d).map(|(x, f)| x * f).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut got = d.clone();
        let mut sums = vec![f32::NAN; n];
        pool.install(|| gemm_scale(a, b, &mut got, Some(&mut sums), true));
        assert_eq!(got, want);
        // Split or not, the column sums have the bits of one pass in row
        // order.
        let mut serial = d.clone();
        let mut serial_sums = vec![f32::NAN; n];
        gemm_scale(a, b, &mut serial, Some(&mut serial_sums), false);
        assert_eq!(serial, want);
        let mut want_sums = vec![0.0; n];
        super::super::simd::sum_rows(&want, &mut want_sums);
        assert_eq!(sums, want_sums);
        assert_eq!(serial_sums, want_sums);
    }
}
