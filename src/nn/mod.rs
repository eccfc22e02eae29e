//! The score network and its training machinery.
//!
//! - [`embed`]: sinusoidal time embedding emb(t).
//! - [`mlp`]: the MLP ε-network `ε̂(x, t) = MLP(concat(x, emb(t)))` with a
//!   flat parameter vector, inference and training (forward + backward).
//! - [`layers`]: Linear / SiLU kernels and their derivatives.
//! - [`gemm`]: the single matrix-multiply entry point.
//! - [`kernel`]: its AVX-512F micro-kernel (A read in place, B packed).
//! - [`packcache`]: per-layer packed weights, rebuilt after a change.
//! - [`optim`]: Adam and the parameter EMA.
//! - [`io`]: atomic `.safetensors` save / checked load.

pub mod embed;
pub mod gemm;
pub mod io;
pub mod kernel;
pub mod layers;
pub mod mlp;
pub mod optim;
pub mod packcache;

pub use embed::time_embedding;
pub use io::{check_tensors, load_mlp, load_tensors, save_mlp, save_tensors, TensorFile};
pub use mlp::{LayerShape, Mlp, MlpConfig, TrainCache};
pub use optim::{Adam, Ema};

pub mod conv;
pub mod graph;
pub mod net;
pub mod norm;
pub mod unet;

pub use net::{load_net, save_net, NetCache, NetConfig, ScoreNet};
pub use unet::{UNet, UNetCache, UNetConfig};
pub mod classifier;

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
