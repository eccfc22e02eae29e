//! The MLP score network of `docs/SPEC.md`:
//!
//! ```text
//!   input  h₀ = concat(x, emb(t), ff(x))         [data_dim + emb_dim + 2 F data_dim]
//!   hidden h_l = SiLU(h_{l−1}·W_lᵀ + b_l),  l = 1..depth  [hidden]
//!   output y   = h_depth·W_outᵀ + b_out                  [data_dim]
//! ```
//!
//! equivalent to PyTorch's `nn.Sequential(Linear, SiLU, …, Linear)` with the
//! tensor names `net.{2l}.weight` / `net.{2l}.bias`. All parameters live in
//! one flat `Vec<f32>`, layer by layer, each layer as its weight `[out, in]`
//! (row-major, like PyTorch) followed by its bias `[out]`; gradients, Adam
//! moments and the EMA shadow use the same layout. ff(x) are the optional
//! [`fourier`] features of the coordinates (absent in the SPEC network).
//!
//! Layout: this file holds the configuration, the parameter layout and the
//! named tensors; [`forward`] the inference passes (sampling); [`train`]
//! the training forward pass, the backward pass and their [`TrainCache`].
//! What other networks share (GEMM, packing, SIMD) lives in
//! [`crate::backend`] and [`super::layers`].

use std::cell::RefCell;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::backend::packcache::PackCache;
use crate::error::{Error, Result};
use crate::tensors::{NamedTensor, TensorShape};

mod forward;
pub mod fourier;
mod train;

pub use fourier::FourierConfig;
pub use train::TrainCache;

fn default_hidden() -> usize {
    256
}
fn default_depth() -> usize {
    3
}
fn default_emb_dim() -> usize {
    32
}

/// Shape of the network. `depth` counts the hidden `Linear + SiLU` blocks;
/// the output `Linear` comes on top, so there are `depth + 1` linear layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Dimension d of a data point (input and output width).
    pub data_dim: usize,
    /// Width of every hidden layer (default 256).
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Number of hidden Linear+SiLU layers (default 3).
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Width of the sinusoidal time embedding, even (default 32).
    #[serde(default = "default_emb_dim")]
    pub emb_dim: usize,
    /// Classes of a class-conditional network (0: unconditional, and the
    /// field is not written). A conditional network adds a learned label
    /// embedding to emb(t) ([`super::label`]), the table after the layers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_classes: usize,
    /// Fourier features of the input coordinates, appended to the input
    /// after emb(t) ([`fourier`]; `None`: none, and the field is not
    /// written, so older checkpoints load unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fourier: Option<FourierConfig>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Largest parameter count accepted (keeps every size computation far from
/// overflow and every offset addressable).
const MAX_PARAMS: usize = 1 << 28;

impl MlpConfig {
    /// The SPEC network for `data_dim`-dimensional data (hidden 256, depth 3,
    /// emb_dim 32).
    pub fn new(data_dim: usize) -> Self {
        MlpConfig {
            data_dim,
            hidden: default_hidden(),
            depth: default_depth(),
            emb_dim: default_emb_dim(),
            n_classes: 0,
            fourier: None,
        }
    }

    /// Width of the network input, `data_dim + emb_dim` plus the Fourier
    /// features' 2 F data_dim.
    pub fn input_dim(&self) -> usize {
        self.try_input_dim().unwrap_or(usize::MAX)
    }

    fn try_input_dim(&self) -> Option<usize> {
        let ff = match &self.fourier {
            Some(f) => f.width(self.data_dim)?,
            None => 0,
        };
        self.data_dim.checked_add(self.emb_dim)?.checked_add(ff)
    }

    /// Width of the Fourier features (0 without them).
    pub fn fourier_width(&self) -> usize {
        self.fourier
            .as_ref()
            .and_then(|f| f.width(self.data_dim))
            .unwrap_or(0)
    }

    /// Check every field and that the parameter count is representable.
    pub fn validate(&self) -> Result<()> {
        if self.data_dim == 0 {
            return Err(Error::invalid("data_dim", self.data_dim, "at least 1"));
        }
        if self.hidden == 0 {
            return Err(Error::invalid("hidden", self.hidden, "at least 1"));
        }
        if self.emb_dim == 0 || !self.emb_dim.is_multiple_of(2) {
            return Err(Error::invalid(
                "emb_dim",
                self.emb_dim,
                "a positive even number",
            ));
        }
        if self.depth > 1024 {
            return Err(Error::invalid("depth", self.depth, "at most 1024"));
        }
        super::label::check_classes(self.n_classes)?;
        if let Some(f) = &self.fourier {
            f.validate()?;
        }
        match self.try_layer_shapes() {
            Some((_, total)) if total <= MAX_PARAMS => Ok(()),
            _ => Err(Error::invalid(
                "network size",
                format!("{self:?}"),
                format!("at most {MAX_PARAMS} parameters"),
            )),
        }
    }

    /// Parameter count (`None` if it overflows).
    pub fn num_params(&self) -> Option<usize> {
        self.try_layer_shapes().map(|(_, n)| n)
    }

    fn try_layer_shapes(&self) -> Option<(Vec<LayerShape>, usize)> {
        let mut layers = Vec::with_capacity(self.depth + 1);
        let mut offset = 0usize;
        let mut fan_in = self.try_input_dim()?;
        for l in 0..=self.depth {
            let fan_out = if l == self.depth {
                self.data_dim
            } else {
                self.hidden
            };
            let w_len = fan_out.checked_mul(fan_in)?;
            let b_offset = offset.checked_add(w_len)?;
            layers.push(LayerShape {
                fan_in,
                fan_out,
                w_offset: offset,
                b_offset,
            });
            offset = b_offset.checked_add(fan_out)?;
            fan_in = fan_out;
        }
        let table = (self.n_classes.checked_add(1)?).checked_mul(self.emb_dim)?;
        if self.n_classes > 0 {
            offset = offset.checked_add(table)?;
        }
        Some((layers, offset))
    }
}

/// Where one linear layer's parameters sit in the flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    pub fan_in: usize,
    pub fan_out: usize,
    /// Offset of the weight `[fan_out, fan_in]` (row-major).
    pub w_offset: usize,
    /// Offset of the bias `[fan_out]` (= `w_offset + fan_out·fan_in`).
    pub b_offset: usize,
}

impl LayerShape {
    fn w_range(&self) -> std::ops::Range<usize> {
        self.w_offset..self.b_offset
    }
    fn b_range(&self) -> std::ops::Range<usize> {
        self.b_offset..self.b_offset + self.fan_out
    }
}

/// Rows per block in inference: each block is one serial pass through the
/// network with thread-local buffers; blocks run in parallel under rayon.
const BLOCK_ROWS: usize = 512;

thread_local! {
    static WORKSPACE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Time input of a forward pass: one time per row, or one for all rows.
#[derive(Clone, Copy)]
enum Times<'a> {
    Rows(ArrayView1<'a, f32>),
    /// One f64 time per row (as [`Times::Scalar`] would give each row).
    RowsF64(&'a [f64]),
    Scalar(f64),
    /// One f64 time and one class label per row (conditional networks).
    Labelled(&'a [f64], &'a [u32]),
}

impl Times<'_> {
    fn split_at(self, mid: usize) -> (Self, Self) {
        match self {
            Times::Rows(t) => {
                let (a, b) = t.split_at(Axis(0), mid);
                (Times::Rows(a), Times::Rows(b))
            }
            Times::RowsF64(t) => {
                let (a, b) = t.split_at(mid);
                (Times::RowsF64(a), Times::RowsF64(b))
            }
            Times::Scalar(t) => (Times::Scalar(t), Times::Scalar(t)),
            Times::Labelled(t, y) => {
                let ((t0, t1), (y0, y1)) = (t.split_at(mid), y.split_at(mid));
                (Times::Labelled(t0, y0), Times::Labelled(t1, y1))
            }
        }
    }

    /// The rows' labels (empty: ∅ for every row).
    fn labels(&self) -> &[u32] {
        match self {
            Times::Labelled(_, y) => y,
            _ => &[],
        }
    }
}

/// The MLP ε-network (parameters + layout). `Sync`: inference takes `&self`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    cfg: MlpConfig,
    layers: Vec<LayerShape>,
    params: Vec<f32>,
    /// `W_lᵀ` of every layer packed for [`crate::backend::gemm::gemm_packed`] (inference and the
    /// training forward), rebuilt on first use after the parameters change.
    packed: PackCache,
}

impl Mlp {
    /// A freshly initialised network, PyTorch default init: every weight and
    /// bias of a layer with fan-in `n` is drawn from U(−1/√n, 1/√n)
    /// (Kaiming-uniform with a = √5), layer by layer, weight (row-major) then
    /// bias, from the stream `(seed, INIT, 0)`.
    pub fn new(cfg: MlpConfig, seed: u64) -> Result<Self> {
        let mut net = Self::zeros(cfg)?;
        let mut rng = crate::rng::stream(seed, crate::rng::domain::INIT, 0);
        for layer in &net.layers {
            let bound = 1.0 / (layer.fan_in as f64).sqrt();
            for p in &mut net.params[layer.w_offset..layer.b_offset + layer.fan_out] {
                // u ∈ [0, 1) from the top 24 bits (exact in f32/f64).
                let u = (rng.next_u32() >> 8) as f64 * (1.0 / (1u64 << 24) as f64);
                *p = (bound * (2.0 * u - 1.0)) as f32;
            }
        }
        // The label table (after the layers, so the layers draw what an
        // unconditional network of this seed draws): U(−1, 1), the scale
        // of the sin/cos entries it is added to.
        let start = net.table_offset();
        for p in &mut net.params[start..] {
            let u = (rng.next_u32() >> 8) as f64 * (1.0 / (1u64 << 24) as f64);
            *p = (2.0 * u - 1.0) as f32;
        }
        Ok(net)
    }

    /// A network with all parameters zero (for loading into).
    pub fn zeros(cfg: MlpConfig) -> Result<Self> {
        cfg.validate()?;
        let (layers, total) = cfg
            .try_layer_shapes()
            .ok_or_else(|| Error::invalid("network size", format!("{cfg:?}"), "no overflow"))?;
        Ok(Mlp {
            cfg,
            layers,
            params: vec![0.0; total],
            packed: PackCache::default(),
        })
    }

    /// Build a network of shape `cfg` from named tensors (see
    /// [`Mlp::load_named`]).
    pub fn from_named<D: AsRef<[f32]>>(cfg: MlpConfig, tensors: &[NamedTensor<D>]) -> Result<Self> {
        let mut net = Self::zeros(cfg)?;
        net.load_named(tensors)?;
        Ok(net)
    }

    pub fn config(&self) -> &MlpConfig {
        &self.cfg
    }

    /// Linear layers in order (hidden layers, then the output layer).
    pub fn layers(&self) -> &[LayerShape] {
        &self.layers
    }

    /// Total number of parameters (141,058 for the SPEC network on 2-D data).
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// All parameters in the flat layout.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// All parameters in the flat layout, for an optimiser update.
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.packed.invalidate();
        &mut self.params
    }

    /// Names and shapes in PyTorch `nn.Sequential` order: `net.{2l}.weight`
    /// `[fan_out, fan_in]` and `net.{2l}.bias` `[fan_out]` for linear layer l.
    pub fn tensor_specs(&self) -> Vec<TensorShape> {
        self.named_tensors()
            .into_iter()
            .map(|(name, shape, _)| (name, shape))
            .collect()
    }

    /// The parameters as named tensors (see [`Mlp::tensor_specs`]), borrowing
    /// from the flat vector.
    pub fn named_tensors(&self) -> Vec<NamedTensor<&[f32]>> {
        self.named_slices(&self.params)
    }

    /// Any flat vector in the parameter layout (gradient, Adam moment, EMA
    /// shadow) cut into the same named tensors. Panics if `flat` has the
    /// wrong length (a programming error).
    pub fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<NamedTensor<&'a [f32]>> {
        assert_eq!(
            flat.len(),
            self.params.len(),
            "flat vector has the wrong length"
        );
        let mut v = Vec::with_capacity(2 * self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            v.push((
                format!("net.{}.weight", 2 * l),
                vec![layer.fan_out, layer.fan_in],
                &flat[layer.w_range()],
            ));
            v.push((
                format!("net.{}.bias", 2 * l),
                vec![layer.fan_out],
                &flat[layer.b_range()],
            ));
        }
        if self.cfg.n_classes > 0 {
            v.push((
                super::label::TENSOR.to_string(),
                vec![self.cfg.n_classes + 1, self.cfg.emb_dim],
                &flat[self.table_offset()..],
            ));
        }
        v
    }

    /// Offset of the label table (the end of the layers; = the parameter
    /// count of an unconditional network).
    fn table_offset(&self) -> usize {
        self.layers.last().map_or(0, |l| l.b_offset + l.fan_out)
    }

    /// Copy named tensors into the parameters. Every expected tensor must be
    /// present exactly once with the expected shape and `shape.product()`
    /// values; unknown names are rejected. On error nothing is modified and
    /// the message names the tensor and what differs.
    pub fn load_named<D: AsRef<[f32]>>(&mut self, tensors: &[NamedTensor<D>]) -> Result<()> {
        let mut flat = self.params.clone();
        write_named_into(self, &mut flat, tensors).map_err(Error::Mismatch)?;
        self.params = flat;
        self.packed.invalidate();
        Ok(())
    }

    /// Like [`Mlp::load_named`] but into any flat vector in the parameter
    /// layout (e.g. an EMA shadow or Adam moment being restored).
    pub fn unflatten_named<D: AsRef<[f32]>>(
        &self,
        tensors: &[NamedTensor<D>],
        flat: &mut [f32],
    ) -> Result<()> {
        super::network::unflatten_checked(self.params.len(), flat, |tmp| {
            write_named_into(self, tmp, tensors).map_err(Error::Mismatch)
        })
    }
}

fn write_named_into<D: AsRef<[f32]>>(
    net: &Mlp,
    flat: &mut [f32],
    tensors: &[NamedTensor<D>],
) -> std::result::Result<(), String> {
    let specs = net.tensor_specs();
    let mut seen = vec![false; specs.len()];
    for (name, shape, data) in tensors {
        let Some(idx) = specs.iter().position(|(n, _)| n == name) else {
            let expected: Vec<&str> = specs.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "unexpected tensor '{name}' (this network has {})",
                expected.join(", ")
            ));
        };
        if seen[idx] {
            return Err(format!("tensor '{name}' appears twice"));
        }
        seen[idx] = true;
        let want = &specs[idx].1;
        if shape != want {
            return Err(format!(
                "tensor '{name}' has shape {shape:?}, expected {want:?}"
            ));
        }
        let data = data.as_ref();
        let count = shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s));
        if count != Some(data.len()) {
            return Err(format!(
                "tensor '{name}' of shape {shape:?} holds {} values",
                data.len()
            ));
        }
        if idx == 2 * net.layers.len() {
            flat[net.table_offset()..].copy_from_slice(data);
            continue;
        }
        let layer = &net.layers[idx / 2];
        let range = if idx % 2 == 0 {
            layer.w_range()
        } else {
            layer.b_range()
        };
        flat[range].copy_from_slice(data);
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(format!(
            "missing tensor '{}' of shape {:?}",
            specs[i].0, specs[i].1
        ));
    }
    Ok(())
}

super::network::impl_network!(Mlp, TrainCache, "mlp");
