//! The score network and its training machinery.
//!
//! - [`embed`]: sinusoidal time embedding emb(t).
//! - [`mlp`]: the MLP ε-network `ε̂(x, t) = MLP(concat(x, emb(t)))` with a
//!   flat parameter vector, inference and training (forward + backward).
//! - [`layers`]: Linear / SiLU kernels and their derivatives.
//! - [`optim`]: Adam and the parameter EMA.

pub mod embed;
pub mod label;
pub mod layers;
pub mod mlp;
pub mod optim;

pub use embed::time_embedding;
pub use mlp::{FourierConfig, LayerShape, Mlp, MlpConfig, TrainCache};
pub use optim::{Adam, Ema};

pub mod attention;
pub mod conv;
mod conv_shift;
pub mod dropout;
pub mod graph;
pub mod net;
pub mod network;
pub mod norm;
pub mod unet;

pub use net::{load_mlp, load_net, save_mlp, save_net, NetCache, NetConfig, ScoreNet};
pub use network::{CacheState, Network};
pub use unet::{UNet, UNetCache, UNetConfig};
pub mod classifier;
pub mod noisy;
