//! The seam between the score model / trainer and the network family:
//! [`ScoreNet`] is either the MLP or the U-Net, with the MLP's API, so
//! `model.rs` / `train.rs` switch from `Mlp` / `MlpConfig` / `TrainCache` to
//! `ScoreNet` / `NetConfig` / `NetCache` with renames only.
//!
//! `NetConfig` is `#[serde(untagged)]`: an existing checkpoint's MLP config
//! (`{"data_dim":2,"hidden":256,...}`) still parses, and a U-Net config is
//! recognised by its `channels`/`height`/`width` fields.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use super::mlp::{Mlp, MlpConfig, TrainCache};
use super::unet::{UNet, UNetCache, UNetConfig};
use crate::error::Result;

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

/// A score network: MLP or U-Net.
#[derive(Clone, Debug, PartialEq)]
pub enum ScoreNet {
    Mlp(Mlp),
    UNet(UNet),
}

/// Training cache matching a [`ScoreNet`] (created empty, sized on first use).
#[derive(Clone, Debug, Default)]
pub enum NetCache {
    #[default]
    Empty,
    Mlp(TrainCache),
    UNet(UNetCache),
}

macro_rules! each {
    ($self:expr, $n:ident => $e:expr) => {
        match $self {
            ScoreNet::Mlp($n) => $e,
            ScoreNet::UNet($n) => $e,
        }
    };
}

impl ScoreNet {
    /// Fresh PyTorch-default initialisation from `seed`.
    pub fn new(cfg: NetConfig, seed: u64) -> Result<Self> {
        Ok(match cfg {
            NetConfig::Mlp(c) => ScoreNet::Mlp(Mlp::new(c, seed)?),
            NetConfig::UNet(c) => ScoreNet::UNet(UNet::new(c, seed)?),
        })
    }
    /// All-zero parameters (for loading into).
    pub fn zeros(cfg: NetConfig) -> Result<Self> {
        Ok(match cfg {
            NetConfig::Mlp(c) => ScoreNet::Mlp(Mlp::zeros(c)?),
            NetConfig::UNet(c) => ScoreNet::UNet(UNet::zeros(c)?),
        })
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
        each!(self, n => n.num_params())
    }
    pub fn params(&self) -> &[f32] {
        each!(self, n => n.params())
    }
    pub fn params_mut(&mut self) -> &mut [f32] {
        each!(self, n => n.params_mut())
    }
    /// ε̂(x_i, t_i) per row; bit-identical rows for any batch size / threads.
    pub fn forward(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, out: ArrayViewMut2<f32>) {
        each!(self, n => n.forward(x, t, out))
    }
    /// ε̂(x_i, t) with one time for all rows.
    pub fn forward_t(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        each!(self, n => n.forward_t(x, t, out))
    }
    /// Training forward; the output is [`NetCache::output`].
    pub fn forward_train(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, cache: &mut NetCache) {
        match self {
            ScoreNet::Mlp(n) => {
                if !matches!(cache, NetCache::Mlp(_)) {
                    *cache = NetCache::Mlp(TrainCache::new());
                }
                let NetCache::Mlp(c) = cache else {
                    unreachable!()
                };
                n.forward_train(x, t, c)
            }
            ScoreNet::UNet(n) => {
                if !matches!(cache, NetCache::UNet(_)) {
                    *cache = NetCache::UNet(UNetCache::new());
                }
                let NetCache::UNet(c) = cache else {
                    unreachable!()
                };
                n.forward_train(x, t, c)
            }
        }
    }
    /// Backward for the last `forward_train` on `cache`: OVERWRITES `grads`.
    /// Panics if `cache` was not filled by this network (a programming error).
    pub fn backward(&self, cache: &mut NetCache, d_out: ArrayView2<f32>, grads: &mut [f32]) {
        match (self, cache) {
            (ScoreNet::Mlp(n), NetCache::Mlp(c)) => n.backward(c, d_out, grads),
            (ScoreNet::UNet(n), NetCache::UNet(c)) => n.backward(c, d_out, grads),
            _ => panic!("backward: cache was not filled by forward_train of this network"),
        }
    }
    /// Parameters as named tensors (PyTorch names and shapes).
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        each!(self, n => n.named_tensors())
    }
    /// Any flat vector in the parameter layout (gradient, Adam moment, EMA).
    pub fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<(String, Vec<usize>, &'a [f32])> {
        each!(self, n => n.named_slices(flat))
    }
    pub fn tensor_specs(&self) -> Vec<(String, Vec<usize>)> {
        each!(self, n => n.tensor_specs())
    }
    /// Fill `flat` (parameter layout) from named tensors, checking that
    /// every tensor is present exactly once with its shape.
    pub fn unflatten_named<D: AsRef<[f32]>>(
        &self,
        tensors: &[(String, Vec<usize>, D)],
        flat: &mut [f32],
    ) -> Result<()> {
        match self {
            ScoreNet::Mlp(n) => n.unflatten_named(tensors, flat),
            ScoreNet::UNet(n) => {
                if flat.len() != n.num_params() {
                    return Err(crate::error::Error::Mismatch(format!(
                        "flat vector has {} values, the network has {}",
                        flat.len(),
                        n.num_params()
                    )));
                }
                let mut tmp = UNet::zeros(n.config().clone())?;
                tmp.load_named(tensors)?;
                flat.copy_from_slice(tmp.params());
                Ok(())
            }
        }
    }
    pub fn load_named<D: AsRef<[f32]>>(
        &mut self,
        tensors: &[(String, Vec<usize>, D)],
    ) -> Result<()> {
        each!(self, n => n.load_named(tensors))
    }
}

impl NetCache {
    /// Output of the last `forward_train`, `[rows, data_dim]`.
    pub fn output(&self) -> ArrayView2<'_, f32> {
        match self {
            NetCache::Mlp(c) => c.output(),
            NetCache::UNet(c) => c.output(),
            NetCache::Empty => ArrayView2::from_shape((0, 0), &[]).expect("empty view"),
        }
    }
}

/// Save any [`ScoreNet`] (named tensors) with `metadata`, atomically.
pub fn save_net(
    path: &std::path::Path,
    net: &ScoreNet,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    super::io::save_tensors(path, &net.named_tensors(), metadata)
}

/// Load a network of shape `cfg` from a safetensors file, checking every
/// tensor name and shape. Returns the network and the file's metadata.
pub fn load_net(
    path: &std::path::Path,
    cfg: NetConfig,
) -> Result<(ScoreNet, std::collections::BTreeMap<String, String>)> {
    let file = super::io::load_tensors(path)?;
    let mut net = ScoreNet::zeros(cfg)?;
    super::io::check_tensors(path, &file, &net.tensor_specs())?;
    net.load_named(&file.tensors)
        .map_err(|e| crate::error::Error::Checkpoint {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    Ok((net, file.metadata))
}
