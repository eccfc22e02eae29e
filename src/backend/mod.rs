//! The compute backend the networks run on; it knows nothing of networks.
//!
//! - [`gemm`]: the single matrix-multiply entry point (`C = A·B`,
//!   `C += A·B`, `C = (A·B) ⊙ C`), bit-identical rows for any batch size
//!   and thread count.
//! - [`kernel`]: its AVX-512F micro-kernel (A read in place, B packed).
//! - `mat`: the strided matrix view [`gemm::MatRef`] and [`gemm::Epilogue`]
//!   both of the above share (so neither imports the other's types).
//! - [`packcache`]: a network's per-layer packed weights, rebuilt after a
//!   change.
//! - [`simd`]: run-time dispatch of element-wise kernels to AVX-512F,
//!   AVX2+FMA or the SSE2 baseline, bit-identical on every path.
//! - [`with_scratch`]: per-thread scratch buffers.
//!
//! Dependencies point one way: `gemm` → `kernel` → `mat`; `packcache` →
//! `gemm`; the models in [`crate::nn`] use all of these.

pub mod gemm;
pub mod kernel;
mod mat;
pub mod packcache;
pub mod simd;

use std::cell::RefCell;
use std::thread::LocalKey;

/// Run `f` with this thread's scratch buffer `key` (kept between calls, so
/// no allocation once it has grown). If the buffer is already in use (a
/// task re-entered from inside one that holds it), `f` gets a fresh empty
/// buffer instead: correct, only slower.
pub(crate) fn with_scratch<R>(
    key: &'static LocalKey<RefCell<Vec<f32>>>,
    f: impl FnOnce(&mut Vec<f32>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}
