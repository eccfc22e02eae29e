//! The score network a checkpoint names: [`NetConfig`] (the `net` field of
//! `config.json`) builds a [`ScoreNet`] ([`NetConfig::init`]), the MLP or
//! the U-Net, used through the [`Network`] trait; plus their `.safetensors`
//! save and load.
//!
//! `NetConfig` is `#[serde(untagged)]`: an existing checkpoint's MLP config
//! (`{"data_dim":2,"hidden":256,...}`) still parses, and a U-Net config is
//! recognised by its `channels`/`height`/`width` fields.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use super::mlp::{Mlp, MlpConfig};
pub use super::network::NetCache;
use super::network::Network;
use super::unet::{UNet, UNetConfig};
use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::tensors;
use crate::tensors::{NamedTensor, TensorShape};

/// Which network and its shape (the `net` field of a checkpoint config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetConfig {
    UNet(UNetConfig),
    Mlp(MlpConfig),
}

impl NetConfig {
    /// Dimension of one data row (`data_dim`, or `c·h·w` for images).
    pub fn data_dim(&self) -> usize {
        match self {
            NetConfig::Mlp(c) => c.data_dim,
            NetConfig::UNet(c) => c.data_dim(),
        }
    }
    pub fn validate(&self) -> Result<()> {
        match self {
            NetConfig::Mlp(c) => c.validate(),
            NetConfig::UNet(c) => c.validate(),
        }
    }
    /// Parameter count (`None` if the shape is invalid or overflows).
    pub fn num_params(&self) -> Option<usize> {
        match self {
            NetConfig::Mlp(c) => c.num_params(),
            NetConfig::UNet(c) => c.build().ok().map(|(g, _)| g.num_params),
        }
    }
    /// Classes of a class-conditional network (0: unconditional).
    pub fn n_classes(&self) -> usize {
        match self {
            NetConfig::Mlp(c) => c.n_classes,
            NetConfig::UNet(c) => c.n_classes,
        }
    }
    /// The same shape with `n` classes (0: unconditional).
    pub fn with_classes(mut self, n: usize) -> Self {
        match &mut self {
            NetConfig::Mlp(c) => c.n_classes = n,
            NetConfig::UNet(c) => c.n_classes = n,
        }
        self
    }
    /// Short name for logs ("mlp" / "unet").
    pub fn kind(&self) -> &'static str {
        match self {
            NetConfig::Mlp(_) => "mlp",
            NetConfig::UNet(_) => "unet",
        }
    }
}

impl From<MlpConfig> for NetConfig {
    fn from(c: MlpConfig) -> Self {
        NetConfig::Mlp(c)
    }
}

impl From<UNetConfig> for NetConfig {
    fn from(c: UNetConfig) -> Self {
        NetConfig::UNet(c)
    }
}

/// A score network: the MLP or the U-Net, as its config names it. Every
/// method goes through the [`Network`] trait ([`ScoreNet::network`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ScoreNet {
    Mlp(Mlp),
    UNet(UNet),
}

impl NetConfig {
    /// The network of this shape, PyTorch-default initialisation from `seed`.
    pub fn init(&self, seed: u64) -> Result<ScoreNet> {
        self.build(Some(seed))
    }
    /// The network of this shape with all-zero parameters (for loading into).
    pub fn init_zeros(&self) -> Result<ScoreNet> {
        self.build(None)
    }
    fn build(&self, seed: Option<u64>) -> Result<ScoreNet> {
        Ok(match (self, seed) {
            (NetConfig::Mlp(c), Some(s)) => ScoreNet::Mlp(Mlp::new(c.clone(), s)?),
            (NetConfig::Mlp(c), None) => ScoreNet::Mlp(Mlp::zeros(c.clone())?),
            (NetConfig::UNet(c), Some(s)) => ScoreNet::UNet(UNet::new(c.clone(), s)?),
            (NetConfig::UNet(c), None) => ScoreNet::UNet(UNet::zeros(c.clone())?),
        })
    }
}

/// Named tensors with any value storage, borrowed as slices.
fn as_slices<D: AsRef<[f32]>>(tensors: &[NamedTensor<D>]) -> Vec<NamedTensor<&[f32]>> {
    tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), s.clone(), d.as_ref()))
        .collect()
}

impl ScoreNet {
    /// Fresh PyTorch-default initialisation from `seed` ([`NetConfig::init`]).
    pub fn new(cfg: NetConfig, seed: u64) -> Result<Self> {
        cfg.init(seed)
    }
    /// All-zero parameters (for loading into).
    pub fn zeros(cfg: NetConfig) -> Result<Self> {
        cfg.init_zeros()
    }
    /// The network behind the trait.
    pub fn network(&self) -> &dyn Network {
        match self {
            ScoreNet::Mlp(n) => n,
            ScoreNet::UNet(n) => n,
        }
    }
    /// The network behind the trait, mutably.
    pub fn network_mut(&mut self) -> &mut dyn Network {
        match self {
            ScoreNet::Mlp(n) => n,
            ScoreNet::UNet(n) => n,
        }
    }
    pub fn config(&self) -> NetConfig {
        match self {
            ScoreNet::Mlp(n) => NetConfig::Mlp(n.config().clone()),
            ScoreNet::UNet(n) => NetConfig::UNet(n.config().clone()),
        }
    }
    pub fn data_dim(&self) -> usize {
        self.config().data_dim()
    }
    pub fn num_params(&self) -> usize {
        self.network().num_params()
    }
    pub fn params(&self) -> &[f32] {
        self.network().params()
    }
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.network_mut().params_mut()
    }
    /// ε̂(x_i, t_i) per row; bit-identical rows for any batch size / threads.
    pub fn forward(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, out: ArrayViewMut2<f32>) {
        self.network().forward(x, t, out)
    }
    /// ε̂(x_i, t) with one time for all rows.
    pub fn forward_t(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.network().forward_t(x, t, out)
    }
    /// Training forward; the output is [`NetCache::output`].
    pub fn forward_train(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, cache: &mut NetCache) {
        self.network().forward_train(x, t, cache)
    }
    /// Classes of a class-conditional network (0: unconditional).
    pub fn n_classes(&self) -> usize {
        match self {
            ScoreNet::Mlp(n) => n.config().n_classes,
            ScoreNet::UNet(n) => n.config().n_classes,
        }
    }
    /// ε̂(x_i, t_i | y_i) per row, labels in `0..=n_classes` (the last = ∅);
    /// bit-identical rows for any batch size or thread count.
    pub fn forward_labelled(
        &self,
        x: ArrayView2<f32>,
        t: &[f64],
        labels: &[u32],
        out: ArrayViewMut2<f32>,
    ) {
        match self {
            ScoreNet::Mlp(n) => n.forward_labelled(x, t, labels, out),
            ScoreNet::UNet(n) => n.forward_labelled(x, t, labels, out),
        }
    }
    /// Training forward given one label per row (empty: ∅ for every row);
    /// [`ScoreNet::backward`] then also fills the label table's gradient.
    pub fn forward_train_labelled(
        &self,
        x: ArrayView2<f32>,
        t: ArrayView1<f32>,
        labels: &[u32],
        cache: &mut NetCache,
    ) {
        match self {
            ScoreNet::Mlp(n) => n.forward_train_labelled(x, t, labels, cache.state()),
            ScoreNet::UNet(n) => n.forward_train_labelled(x, t, labels, cache.state()),
        }
    }
    /// Dropout masks of the following training forwards on `cache`
    /// (`None`: off); a network without dropout ignores it.
    pub fn set_dropout_key(&self, cache: &mut NetCache, key: Option<super::dropout::DropoutKey>) {
        if let ScoreNet::UNet(n) = self {
            if n.config().dropout > 0.0 {
                cache.state::<super::unet::UNetCache>().set_dropout(key);
            }
        }
    }
    /// Backward for the last `forward_train` on `cache`: OVERWRITES `grads`.
    /// Panics if `cache` was not filled by this network (a programming error).
    pub fn backward(&self, cache: &mut NetCache, d_out: ArrayView2<f32>, grads: &mut [f32]) {
        self.network().backward(cache, d_out, grads)
    }
    /// Parameters as named tensors (PyTorch names and shapes).
    pub fn named_tensors(&self) -> Vec<NamedTensor<&[f32]>> {
        self.network().named_tensors()
    }
    /// Any flat vector in the parameter layout (gradient, Adam moment, EMA).
    pub fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<NamedTensor<&'a [f32]>> {
        self.network().named_slices(flat)
    }
    pub fn tensor_specs(&self) -> Vec<TensorShape> {
        self.network().tensor_specs()
    }
    /// Fill `flat` (parameter layout) from named tensors, checking that
    /// every tensor is present exactly once with its shape.
    pub fn unflatten_named<D: AsRef<[f32]>>(
        &self,
        tensors: &[NamedTensor<D>],
        flat: &mut [f32],
    ) -> Result<()> {
        self.network().unflatten_tensors(&as_slices(tensors), flat)
    }
    pub fn load_named<D: AsRef<[f32]>>(&mut self, tensors: &[NamedTensor<D>]) -> Result<()> {
        self.network_mut().load_tensors(&as_slices(tensors))
    }
}

/// Save any [`ScoreNet`] (named tensors) with `metadata`, atomically.
pub fn save_net(path: &Path, net: &ScoreNet, metadata: &BTreeMap<String, String>) -> Result<()> {
    tensors::save_tensors(path, &net.named_tensors(), metadata)
}

/// Load a network of shape `cfg` from a safetensors file, checking every
/// tensor name and shape. Returns the network and the file's metadata.
pub fn load_net(path: &Path, cfg: NetConfig) -> Result<(ScoreNet, BTreeMap<String, String>)> {
    let mut net = ScoreNet::zeros(cfg)?;
    let metadata = fill_from_file(path, net.network_mut())?;
    Ok((net, metadata))
}

/// Set `net`'s parameters from the safetensors file `path` (exactly its
/// tensor names and shapes); returns the file's metadata.
fn fill_from_file(path: &Path, net: &mut dyn Network) -> Result<BTreeMap<String, String>> {
    let file = tensors::load_tensors(path)?;
    tensors::check_tensors(path, &file, &net.tensor_specs())?;
    net.load_tensors(&as_slices(&file.tensors))
        .map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    Ok(file.metadata)
}

/// Save an MLP's parameters (PyTorch names, see [`Mlp::named_tensors`])
/// with `metadata`, atomically.
pub fn save_mlp(path: &Path, net: &Mlp, metadata: &BTreeMap<String, String>) -> Result<()> {
    tensors::save_tensors(path, &net.named_tensors(), metadata)
}

/// Load an MLP of shape `cfg` from a file written by [`save_mlp`] (or by
/// PyTorch `save_file(model.state_dict())` for the same architecture).
/// Returns the network and the file's metadata.
pub fn load_mlp(path: &Path, cfg: MlpConfig) -> Result<(Mlp, BTreeMap<String, String>)> {
    let mut net = Mlp::zeros(cfg)?;
    let metadata = fill_from_file(path, &mut net)?;
    Ok((net, metadata))
}
