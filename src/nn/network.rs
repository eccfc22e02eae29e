//! The one abstraction over the networks: [`Network`] (forward, backward,
//! parameters, named tensors), implemented by the MLP ([`super::Mlp`]),
//! the U-Net ([`super::UNet`]) and the image classifier
//! ([`super::classifier::Classifier`]).
//!
//! A network is built from its config (`MlpConfig` / `UNetConfig` /
//! `ClassifierConfig` → `new(cfg, seed)` or `zeros(cfg)`); its parameters
//! are one flat `Vec<f32>` whose named views ([`Network::named_slices`])
//! carry the PyTorch names and shapes written to `.safetensors`.
//!
//! Training keeps the activations of the last [`Network::forward_train`]
//! in a [`NetCache`]; each network stores its own cache type in it (see
//! [`CacheState`]), so one cache value serves whichever network uses it.

use std::any::Any;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

use crate::error::Result;
use crate::tensors::{NamedTensor, TensorShape};

/// A network f_θ(x, t) with flat parameters θ.
pub trait Network: std::fmt::Debug + Send + Sync {
    /// Short name for logs ("mlp", "unet", "classifier").
    fn kind(&self) -> &'static str;
    /// Parameters in the flat layout.
    fn params(&self) -> &[f32];
    /// Mutable parameters; a network keeping derived state (packed
    /// weights) rebuilds it after this is used.
    fn params_mut(&mut self) -> &mut [f32];
    /// Number of parameters.
    fn num_params(&self) -> usize {
        self.params().len()
    }
    /// Names and shapes of the tensors, in the flat layout's order.
    fn tensor_specs(&self) -> Vec<TensorShape>;
    /// Any flat vector in the parameter layout (parameters, gradient, Adam
    /// moment, EMA) as named tensors (PyTorch names and shapes).
    fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<NamedTensor<&'a [f32]>>;
    /// The parameters as named tensors.
    fn named_tensors(&self) -> Vec<NamedTensor<&[f32]>> {
        self.named_slices(self.params())
    }
    /// Set the parameters from named tensors, checking that every tensor is
    /// present exactly once with its shape.
    fn load_tensors(&mut self, tensors: &[NamedTensor<&[f32]>]) -> Result<()>;
    /// Fill `flat` (parameter layout) from named tensors, with the checks
    /// of [`Network::load_tensors`].
    fn unflatten_tensors(&self, tensors: &[NamedTensor<&[f32]>], flat: &mut [f32]) -> Result<()>;
    /// f_θ(x_i, t_i) per row into `out`; bit-identical rows for any batch
    /// size or thread count.
    fn forward(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, out: ArrayViewMut2<f32>);
    /// f_θ(x_i, t) with one time for all rows.
    fn forward_t(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>);
    /// Training forward, keeping what [`Network::backward`] needs in
    /// `cache`; the output is [`NetCache::output`].
    fn forward_train(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, cache: &mut NetCache);
    /// Backward for the last `forward_train` on `cache`: OVERWRITES `grads`
    /// with ∂L/∂θ for the output gradient `d_out`. Panics if `cache` was
    /// not filled by this kind of network (a programming error).
    fn backward(&self, cache: &mut NetCache, d_out: ArrayView2<f32>, grads: &mut [f32]);
}

/// Fill `flat`, a vector in the layout of a network of `n` parameters, by
/// `write` on a copy of it; on error `flat` is unchanged.
pub(crate) fn unflatten_checked(
    n: usize,
    flat: &mut [f32],
    write: impl FnOnce(&mut [f32]) -> Result<()>,
) -> Result<()> {
    if flat.len() != n {
        return Err(crate::error::Error::Mismatch(format!(
            "flat vector has {} values, the network has {n}",
            flat.len()
        )));
    }
    let mut tmp = flat.to_vec();
    write(&mut tmp)?;
    flat.copy_from_slice(&tmp);
    Ok(())
}

/// What a network keeps between its training forward and backward.
pub trait CacheState: Any + Send + std::fmt::Debug {
    /// Output of the last training forward, `[rows, out_dim]`.
    fn output(&self) -> ArrayView2<'_, f32>;
    /// Downcasting support.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Training cache of any [`Network`] (created empty, sized on first use).
#[derive(Debug, Default)]
pub struct NetCache(Option<Box<dyn CacheState>>);

impl NetCache {
    /// The cache as a `C`, replacing whatever else it held by an empty `C`.
    pub fn state<C: CacheState + Default>(&mut self) -> &mut C {
        let holds_c = self
            .0
            .as_mut()
            .is_some_and(|b| b.as_any_mut().downcast_mut::<C>().is_some());
        if !holds_c {
            self.0 = Some(Box::new(C::default()));
        }
        self.filled()
            .expect("NetCache holds a C: it was checked or just set")
    }

    /// The cache as a `C` if a forward of that network filled it.
    pub fn filled<C: CacheState>(&mut self) -> Option<&mut C> {
        self.0
            .as_mut()
            .and_then(|b| b.as_any_mut().downcast_mut::<C>())
    }

    /// The cache as a `C` for a backward pass; panics if a different
    /// network (or none) filled it.
    pub fn for_backward<C: CacheState>(&mut self) -> &mut C {
        self.filled()
            .expect("backward: cache was not filled by forward_train of this network")
    }

    /// Output of the last `forward_train`, `[rows, out_dim]` (empty before
    /// the first).
    pub fn output(&self) -> ArrayView2<'_, f32> {
        match &self.0 {
            Some(c) => c.output(),
            None => ArrayView2::from_shape((0, 0), &[]).expect("empty view"),
        }
    }
}

/// `impl Network` for a score network `$net` whose inherent methods of the
/// same names do the work, with training cache `$cache` (one definition
/// for the MLP and the U-Net).
macro_rules! impl_network {
    ($net:ident, $cache:ident, $kind:literal) => {
        impl $crate::nn::network::Network for $net {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn params(&self) -> &[f32] {
                $net::params(self)
            }
            fn params_mut(&mut self) -> &mut [f32] {
                $net::params_mut(self)
            }
            fn num_params(&self) -> usize {
                $net::num_params(self)
            }
            fn tensor_specs(&self) -> Vec<$crate::tensors::TensorShape> {
                $net::tensor_specs(self)
            }
            fn named_slices<'a>(
                &self,
                flat: &'a [f32],
            ) -> Vec<$crate::tensors::NamedTensor<&'a [f32]>> {
                $net::named_slices(self, flat)
            }
            fn load_tensors(
                &mut self,
                tensors: &[$crate::tensors::NamedTensor<&[f32]>],
            ) -> $crate::error::Result<()> {
                $net::load_named(self, tensors)
            }
            fn unflatten_tensors(
                &self,
                tensors: &[$crate::tensors::NamedTensor<&[f32]>],
                flat: &mut [f32],
            ) -> $crate::error::Result<()> {
                $net::unflatten_named(self, tensors, flat)
            }
            fn forward(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, out: ArrayViewMut2<f32>) {
                $net::forward(self, x, t, out)
            }
            fn forward_t(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
                $net::forward_t(self, x, t, out)
            }
            fn forward_train(
                &self,
                x: ArrayView2<f32>,
                t: ArrayView1<f32>,
                cache: &mut $crate::nn::network::NetCache,
            ) {
                $net::forward_train(self, x, t, cache.state::<$cache>())
            }
            fn backward(
                &self,
                cache: &mut $crate::nn::network::NetCache,
                d_out: ArrayView2<f32>,
                grads: &mut [f32],
            ) {
                $net::backward(self, cache.for_backward::<$cache>(), d_out, grads)
            }
        }

        impl $crate::nn::network::CacheState for $cache {
            fn output(&self) -> ArrayView2<'_, f32> {
                $cache::output(self)
            }
            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }
        }
    };
}
pub(crate) use impl_network;
