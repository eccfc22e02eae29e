//! The MLP score network of `docs/SPEC.md`:
//!
//! ```text
//!   input  h₀ = concat(x, emb(t))                       [data_dim + emb_dim]
//!   hidden h_l = SiLU(h_{l−1}·W_lᵀ + b_l),  l = 1..depth  [hidden]
//!   output y   = h_depth·W_outᵀ + b_out                  [data_dim]
//! ```
//!
//! equivalent to PyTorch's `nn.Sequential(Linear, SiLU, …, Linear)` with the
//! tensor names `net.{2l}.weight` / `net.{2l}.bias`. All parameters live in
//! one flat `Vec<f32>`, layer by layer, each layer as its weight `[out, in]`
//! (row-major, like PyTorch) followed by its bias `[out]`; gradients, Adam
//! moments and the EMA shadow use the same layout.
//!
//! Why one file (~770 lines): inference, the training forward and the
//! backward of this one network share its private layer layout
//! ([`LayerShape`]), its packed weights and its per-thread workspaces, and
//! the backward mirrors the training forward line by line; what other
//! networks share (GEMM, packing, SIMD) already lives in
//! [`crate::backend`] and [`super::layers`].

use std::cell::RefCell;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::embed::{time_embedding, time_embedding_rows};
use super::layers::{bias_add, bias_silu, linear_backward};
use crate::backend::gemm::{gemm_packed, MatRef, PackedB};
use crate::backend::packcache::{PackCache, Packs};
use crate::backend::with_scratch;
use crate::error::{Error, Result};
use crate::tensors::{NamedTensor, TensorShape};

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
        }
    }

    /// Width of the network input, `data_dim + emb_dim`.
    pub fn input_dim(&self) -> usize {
        self.data_dim.saturating_add(self.emb_dim)
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
        let mut fan_in = self.data_dim.checked_add(self.emb_dim)?;
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
    /// `W_lᵀ` of every layer packed for [`gemm_packed`] (inference and the
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

    fn check_io(&self, rows: usize, x: &ArrayView2<f32>, out: &ArrayViewMut2<f32>) {
        let d = self.cfg.data_dim;
        assert_eq!(x.ncols(), d, "x must have data_dim = {d} columns");
        assert_eq!(out.nrows(), rows, "out must have as many rows as x");
        assert_eq!(out.ncols(), d, "out must have data_dim = {d} columns");
    }

    /// ε̂ = net(x_i, t_i) for every row i, written into `out` (`[n, data_dim]`).
    /// `t` holds one time per row (widened to f64 for the embedding).
    ///
    /// Row i of the result is bit-identical whatever the number of rows in
    /// the call and whatever the rayon thread count. Allocation-free once the
    /// calling threads' workspaces have grown. Panics on mismatched shapes.
    pub fn forward(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, out: ArrayViewMut2<f32>) {
        assert_eq!(t.len(), x.nrows(), "t must have one time per row of x");
        self.check_io(x.nrows(), &x, &out);
        self.forward_split(x, Times::Rows(t), out);
    }

    /// [`Mlp::forward`] with the same time `t` for every row. Bit-identical
    /// to `forward` with per-row times `t as f32` when `t` is exactly
    /// representable in f32 (otherwise the f64 `t` is used, slightly more
    /// precise).
    pub fn forward_t(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.check_io(x.nrows(), &x, &out);
        self.forward_split(x, Times::Scalar(t), out);
    }

    /// [`Mlp::forward`] with one f64 time per row: row i is bit-identical to
    /// `forward_t` of that row alone at `t[i]` (the embedding is per row in
    /// f64 either way), so rows at different times share one pass.
    pub fn forward_rows(&self, x: ArrayView2<f32>, t: &[f64], out: ArrayViewMut2<f32>) {
        assert_eq!(t.len(), x.nrows(), "t must have one time per row of x");
        self.check_io(x.nrows(), &x, &out);
        self.forward_split(x, Times::RowsF64(t), out);
    }

    /// Split rows into blocks of `BLOCK_ROWS` (boundaries at multiples of
    /// `BLOCK_ROWS`, so the split is independent of thread count) and run the
    /// halves with `rayon::join`.
    fn forward_split(&self, x: ArrayView2<f32>, t: Times, out: ArrayViewMut2<f32>) {
        let packs = self.packed_weights();
        self.forward_split_in(&packs, x, t, out);
    }

    /// Each layer's `W_lᵀ` (`[fan_in, fan_out]`) packed for [`gemm_packed`],
    /// rebuilt here if the parameters changed since the last call.
    fn packed_weights(&self) -> Packs<'_> {
        self.packed.get(|packs| {
            packs.resize_with(self.layers.len(), PackedB::new);
            for (pack, layer) in packs.iter_mut().zip(&self.layers) {
                let w = &self.params[layer.w_range()];
                pack.pack(MatRef::transposed(w, layer.fan_in, layer.fan_out));
            }
        })
    }

    fn forward_split_in(
        &self,
        packs: &[PackedB],
        x: ArrayView2<f32>,
        t: Times,
        out: ArrayViewMut2<f32>,
    ) {
        let n = x.nrows();
        if n <= BLOCK_ROWS {
            self.forward_block(packs, x, t, out);
            return;
        }
        let blocks = n.div_ceil(BLOCK_ROWS);
        let mid = (blocks / 2) * BLOCK_ROWS;
        let (x0, x1) = x.split_at(Axis(0), mid);
        let (t0, t1) = t.split_at(mid);
        let (o0, o1) = out.split_at(Axis(0), mid);
        rayon::join(
            || self.forward_split_in(packs, x0, t0, o0),
            || self.forward_split_in(packs, x1, t1, o1),
        );
    }

    fn block_workspace_len(&self, rows: usize) -> usize {
        let widest = self.layers.iter().map(|l| l.fan_out).max().unwrap_or(0);
        rows * (self.cfg.input_dim() + 2 * widest + self.cfg.data_dim)
    }

    /// One serial pass over ≤ BLOCK_ROWS rows using this thread's workspace.
    fn forward_block(
        &self,
        packs: &[PackedB],
        x: ArrayView2<f32>,
        t: Times,
        out: ArrayViewMut2<f32>,
    ) {
        let need = self.block_workspace_len(x.nrows());
        with_scratch(&WORKSPACE, |ws| {
            if ws.len() < need {
                ws.resize(need, 0.0);
            }
            self.forward_block_in(packs, x, t, out, &mut ws[..need]);
        });
    }

    fn forward_block_in(
        &self,
        packs: &[PackedB],
        x: ArrayView2<f32>,
        t: Times,
        mut out: ArrayViewMut2<f32>,
        ws: &mut [f32],
    ) {
        let rows = x.nrows();
        let d = self.cfg.data_dim;
        let in0 = self.cfg.input_dim();
        let widest = self.layers.iter().map(|l| l.fan_out).max().unwrap_or(0);
        let (input, rest) = ws.split_at_mut(rows * in0);
        let (buf_a, rest) = rest.split_at_mut(rows * widest);
        let (buf_b, out_tmp) = rest.split_at_mut(rows * widest);
        fill_input(x, t, input, in0, d);
        self.add_labels(input, rows, t.labels());

        let last = self.layers.len() - 1;
        // Ping-pong: layer 0 reads `input`, odd layers write `buf_b`, even
        // layers write `buf_a`.
        for (l, layer) in self.layers[..last].iter().enumerate() {
            let (src, dst): (&[f32], &mut [f32]) = if l == 0 {
                (&*input, &mut *buf_a)
            } else if l % 2 == 1 {
                (&*buf_a, &mut *buf_b)
            } else {
                (&*buf_b, &mut *buf_a)
            };
            let z = &mut dst[..rows * layer.fan_out];
            let a = MatRef::row_major(&src[..rows * layer.fan_in], rows, layer.fan_in);
            gemm_packed(a, &packs[l], z, false, false);
            bias_silu(z, &self.params[layer.b_range()], None);
        }
        let cur: &[f32] = if last == 0 {
            input
        } else if (last - 1).is_multiple_of(2) {
            buf_a
        } else {
            buf_b
        };
        let layer = &self.layers[last];
        let b = &self.params[layer.b_range()];
        let a = MatRef::row_major(&cur[..rows * layer.fan_in], rows, layer.fan_in);
        match out.as_slice_mut() {
            Some(o) => {
                gemm_packed(a, &packs[last], o, false, false);
                bias_add(o, b);
            }
            None => {
                gemm_packed(a, &packs[last], out_tmp, false, false);
                bias_add(out_tmp, b);
                for (mut orow, src) in out.rows_mut().into_iter().zip(out_tmp.chunks_exact(d)) {
                    for (o, &s) in orow.iter_mut().zip(src) {
                        *o = s;
                    }
                }
            }
        }
    }

    /// Training forward pass: like [`Mlp::forward`] but keeps the input, the
    /// activations h_l and the SiLU derivatives SiLU'(z_l) in `cache` for
    /// [`Mlp::backward`].
    /// The output is [`TrainCache::output`]. GEMMs use the rayon pool (rows
    /// of each product split across threads; bit-identical for any thread
    /// count). No allocation once `cache` has seen this batch size.
    pub fn forward_train(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, cache: &mut TrainCache) {
        self.forward_train_labelled(x, t, &[], cache)
    }

    /// [`Mlp::forward_train`] of a class-conditional network with one label
    /// per row (`labels` empty: ∅ for every row; ignored by an
    /// unconditional network).
    pub fn forward_train_labelled(
        &self,
        x: ArrayView2<f32>,
        t: ArrayView1<f32>,
        labels: &[u32],
        cache: &mut TrainCache,
    ) {
        let rows = x.nrows();
        assert_eq!(t.len(), rows, "t must have one time per row of x");
        assert_eq!(x.ncols(), self.cfg.data_dim, "x must have data_dim columns");
        cache.resize(self, rows);
        let d = self.cfg.data_dim;
        let in0 = self.cfg.input_dim();
        par_fill_input(x, t, &mut cache.input, in0, d);
        cache.labels.clear();
        if self.cfg.n_classes > 0 {
            assert!(
                labels.is_empty() || labels.len() == rows,
                "one label per row"
            );
            cache.labels.extend_from_slice(labels);
            self.add_labels(&mut cache.input, rows, labels);
        }
        let packs = self.packed_weights();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers[..last].iter().enumerate() {
            let (done, todo) = cache.act.split_at_mut(l);
            let a_in: &[f32] = if l == 0 { &cache.input } else { &done[l - 1] };
            let z = &mut todo[0];
            let a = MatRef::row_major(a_in, rows, layer.fan_in);
            gemm_packed(a, &packs[l], z, false, true);
            par_bias_silu(z, &self.params[layer.b_range()], &mut cache.dsilu[l]);
        }
        let layer = &self.layers[last];
        let a_in: &[f32] = if last == 0 {
            &cache.input
        } else {
            &cache.act[last - 1]
        };
        let a = MatRef::row_major(a_in, rows, layer.fan_in);
        gemm_packed(a, &packs[last], &mut cache.out, false, true);
        bias_add(&mut cache.out, &self.params[layer.b_range()]);
    }

    /// Backward pass for the batch last run through [`Mlp::forward_train`]:
    /// given `d_out = ∂L/∂y` (`[rows, data_dim]`), OVERWRITES `grads` (flat
    /// parameter layout) with ∂L/∂θ:
    ///
    /// ```text
    ///   g_L = d_out
    ///   for each linear layer l from the top:  ∂W_l = g_lᵀ·h_{l−1},  ∂b_l = Σ_rows g_l,
    ///       g_{l−1} = (g_l·W_l) ⊙ SiLU'(z_{l−1}),   SiLU'(z) = s + h·(1 − s)
    /// ```
    ///
    /// The ⊙ SiLU' rides in the store of the g_l·W_l product, which
    /// overwrites the cached SiLU'(z_{l−1}) with g_{l−1}
    /// ([`crate::backend::gemm::gemm_scale`]): no pass over g, no buffer for it.
    /// The same stores sum g_{l−1} over the rows into ∂b_{l−1}.
    /// The cache therefore serves one backward pass per forward pass.
    ///
    /// Sums over rows run in a fixed order; results are deterministic and do
    /// not depend on the thread count.
    pub fn backward(&self, cache: &mut TrainCache, d_out: ArrayView2<f32>, grads: &mut [f32]) {
        let rows = cache.rows;
        let d = self.cfg.data_dim;
        assert_eq!(
            d_out.nrows(),
            rows,
            "d_out rows differ from the cached batch"
        );
        assert_eq!(d_out.ncols(), d, "d_out must have data_dim columns");
        assert_eq!(grads.len(), self.params.len(), "grads has the wrong length");
        assert_eq!(
            cache.act.len(),
            self.layers.len() - 1,
            "cache is for another network"
        );
        let TrainCache {
            input,
            dsilu,
            act,
            d_top,
            labels,
            ..
        } = cache;
        for (dst, src) in d_top.chunks_exact_mut(d).zip(d_out.rows()) {
            for (o, &s) in dst.iter_mut().zip(src) {
                *o = s;
            }
        }
        let last = self.layers.len() - 1;
        for l in (0..=last).rev() {
            let layer = &self.layers[l];
            let a_in: &[f32] = if l == 0 { input } else { &act[l - 1] };
            // g_l: below the top, left in dsilu[l] by layer l + 1.
            let (below, here) = dsilu.split_at_mut(l);
            let dz: &[f32] = if l == last {
                d_top
            } else {
                &here[0][..rows * layer.fan_out]
            };
            // Layer l's parameters, and below them those of layer l − 1.
            let (lower, mine) = grads.split_at_mut(layer.w_offset);
            let (dw, db) = mine[..layer.b_offset - layer.w_offset + layer.fan_out]
                .split_at_mut(layer.b_offset - layer.w_offset);
            // ∂b_l of a hidden layer was summed by layer l + 1's product.
            let db = (l == last).then_some(db);
            let below = below.last_mut().map(|d| {
                let prev = &self.layers[l - 1];
                (&mut d[..rows * layer.fan_in], &mut lower[prev.b_range()])
            });
            linear_backward(
                dz,
                a_in,
                &self.params[layer.w_range()],
                rows,
                layer.fan_in,
                layer.fan_out,
                dw,
                db,
                below,
                true,
            );
        }
        if self.cfg.n_classes > 0 {
            // ∂L/∂z₀ is left in dsilu[0] by layer 1 (d_top without hidden layers).
            let l0 = &self.layers[0];
            let g0: &[f32] = if last == 0 { d_top } else { &dsilu[0] };
            let start = self.table_offset();
            super::label::mlp_table_grad(
                &g0[..rows * l0.fan_out],
                rows,
                &self.params[l0.w_range()],
                l0.fan_out,
                l0.fan_in,
                d,
                self.cfg.emb_dim,
                labels,
                &mut grads[start..],
            );
        }
    }

    /// ε̂ of a class-conditional network for row i at time `t[i]` given
    /// label `labels[i]` (in `0..=n_classes`, the last = ∅); bit-identical
    /// rows for any batch size or thread count. Without classes the labels
    /// are ignored (= [`Mlp::forward_rows`]).
    pub fn forward_labelled(
        &self,
        x: ArrayView2<f32>,
        t: &[f64],
        labels: &[u32],
        out: ArrayViewMut2<f32>,
    ) {
        assert_eq!(t.len(), x.nrows(), "t must have one time per row of x");
        assert_eq!(labels.len(), x.nrows(), "labels must have one per row of x");
        super::label::assert_labels(labels, self.cfg.n_classes);
        self.check_io(x.nrows(), &x, &out);
        self.forward_split(x, Times::Labelled(t, labels), out);
    }

    /// Add E[y_i] to the time-embedding columns of `rows` input rows.
    fn add_labels(&self, input: &mut [f32], rows: usize, labels: &[u32]) {
        if self.cfg.n_classes == 0 {
            return;
        }
        let (d, e) = (self.cfg.data_dim, self.cfg.emb_dim);
        let table = &self.params[self.table_offset()..];
        super::label::add_rows(input, rows, d + e, d, table, e, labels);
    }
}

/// Rows per rayon task in the training-pass elementwise kernels.
const PAR_ROWS: usize = 64;

/// [`bias_silu`] on a `[rows, width]` batch, row blocks split across rayon
/// threads (elementwise, so bit-identical for any thread count).
fn par_bias_silu(z: &mut [f32], b: &[f32], dsilu: &mut [f32]) {
    let chunk = PAR_ROWS * b.len().max(1);
    if rayon::current_num_threads() == 1 || z.len() <= chunk {
        bias_silu(z, b, Some(dsilu));
        return;
    }
    z.par_chunks_mut(chunk)
        .zip(dsilu.par_chunks_mut(chunk))
        .for_each(|(zc, dc)| bias_silu(zc, b, Some(dc)));
}

/// [`fill_input`] with per-row times, row blocks split across rayon threads
/// (each row is built independently, so bit-identical for any thread count).
fn par_fill_input(x: ArrayView2<f32>, t: ArrayView1<f32>, input: &mut [f32], in0: usize, d: usize) {
    let rows = x.nrows();
    if rayon::current_num_threads() == 1 || rows <= PAR_ROWS {
        fill_input(x, Times::Rows(t), input, in0, d);
        return;
    }
    input
        .par_chunks_mut(PAR_ROWS * in0)
        .enumerate()
        .for_each(|(c, dst)| {
            let start = c * PAR_ROWS;
            let end = start + dst.len() / in0;
            fill_input(
                x.slice(ndarray::s![start..end, ..]),
                Times::Rows(t.slice(ndarray::s![start..end])),
                dst,
                in0,
                d,
            );
        });
}

/// Build `concat(x_i, emb(t_i))` rows into `input` (`[rows, in0]`).
fn fill_input(x: ArrayView2<f32>, t: Times, input: &mut [f32], in0: usize, d: usize) {
    let rows = x.nrows();
    for (dst, src) in input.chunks_exact_mut(in0).zip(x.rows()) {
        for (o, &s) in dst[..d].iter_mut().zip(src) {
            *o = s;
        }
    }
    match t {
        Times::Rows(tv) => {
            time_embedding_rows(tv.iter().map(|&v| v as f64), input, in0, d, in0 - d)
        }
        Times::RowsF64(tv) | Times::Labelled(tv, _) => {
            time_embedding_rows(tv.iter().copied(), input, in0, d, in0 - d)
        }
        Times::Scalar(tt) if rows > 0 => time_embedding(tt, &mut input[d..in0]),
        Times::Scalar(_) => {}
    }
    if let Times::Scalar(_) = t {
        if rows > 1 {
            let (first, others) = input.split_at_mut(in0);
            for dst in others.chunks_exact_mut(in0) {
                dst[d..].copy_from_slice(&first[d..]);
            }
        }
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

/// Activations kept by [`Mlp::forward_train`] plus backward scratch; all
/// buffers grow to the largest batch seen and are reused.
#[derive(Clone, Debug, Default)]
pub struct TrainCache {
    rows: usize,
    data_dim: usize,
    /// h₀ = concat(x, emb(t)), `[rows, input_dim]`.
    input: Vec<f32>,
    /// SiLU'(z_l) = σ(z_l) + h_l·(1 − σ(z_l)) per hidden layer, `[rows, hidden]`,
    /// from the forward pass; the backward pass overwrites it with ∂L/∂z_l.
    dsilu: Vec<Vec<f32>>,
    /// h_l = SiLU(z_l) per hidden layer, `[rows, hidden]`.
    act: Vec<Vec<f32>>,
    /// Network output y, `[rows, data_dim]`.
    out: Vec<f32>,
    /// Copy of ∂L/∂y, `[rows, data_dim]`.
    d_top: Vec<f32>,
    /// Labels of the batch (conditional networks; empty: ∅).
    labels: Vec<u32>,
}

impl TrainCache {
    /// An empty cache; buffers are sized on the first forward pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache already sized for `rows`-row batches of `net`.
    pub fn with_rows(net: &Mlp, rows: usize) -> Self {
        let mut c = Self::default();
        c.resize(net, rows);
        c
    }

    fn resize(&mut self, net: &Mlp, rows: usize) {
        let hidden = net.layers.len() - 1;
        self.rows = rows;
        self.data_dim = net.cfg.data_dim;
        self.input.resize(rows * net.cfg.input_dim(), 0.0);
        self.dsilu.resize_with(hidden, Vec::new);
        self.act.resize_with(hidden, Vec::new);
        for (l, layer) in net.layers[..hidden].iter().enumerate() {
            self.dsilu[l].resize(rows * layer.fan_out, 0.0);
            self.act[l].resize(rows * layer.fan_out, 0.0);
        }
        self.out.resize(rows * net.cfg.data_dim, 0.0);
        self.d_top.resize(rows * net.cfg.data_dim, 0.0);
    }

    /// Rows of the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Output y of the last [`Mlp::forward_train`], `[rows, data_dim]`.
    pub fn output(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape(
            (self.rows, self.data_dim),
            &self.out[..self.rows * self.data_dim],
        )
        .expect("cache output has rows·data_dim values")
    }
}

super::network::impl_network!(Mlp, TrainCache, "mlp");
