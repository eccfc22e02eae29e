//! A small DDPM-style U-Net ε-network on images, built as a [`Graph`]:
//!
//! ```text
//!   temb = SiLU(Lin(SiLU(Lin(emb(t) [+ E[y]])))))             time MLP (emb_dim → time_dim → time_dim)
//!                                                            E[y]: label embedding of a conditional net (super::label)
//!   h = Conv3(x)                                             conv_in → widths[0]
//!   down l = 0..L−1:  res_blocks × ResBlock(→ widths[l]), push skip;  Conv3 stride 2 (l < L−1)
//!   mid:              ResBlock(widths[L−1])
//!   up l = L−1..0:    res_blocks × (concat(h, pop skip) → ResBlock(→ widths[l]));  Upsample ×2 + Conv3 (l > 0)
//!   out = Conv3(SiLU(GN(h)))                                 → channels
//!   ResBlock(x): h = Conv3(SiLU(GN(x))) + Lin(temb)  (broadcast over pixels)
//!                h = Conv3(Dropout_p(SiLU(GN(h)))) ;  out = h + (x, or Conv1(x) if widths differ)
//! ```
//!
//! Options (off by default; an off option adds no node and no tensor):
//! `dropout` p > 0 puts [`super::dropout`] before each block's second
//! convolution (training only); `attention` lists the level sides after
//! whose every ResBlock (down and up, and the mid block's at the lowest
//! level) an attention block `x + Conv1(Attn(Conv1(GN(x))))` follows
//! ([`super::attention`], `attn_heads` heads).
//!
//! Input and output rows are images in `[c, h, w]` order (see
//! [`crate::data::images`]); internally the graph runs NHWC.

mod config;

pub use config::UNetConfig;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

use super::graph::{init_params, nchw_to_nhwc, nhwc_to_nchw, Graph, GraphCache, InferCache};
use crate::error::{Error, Result};
use crate::tensors::{NamedTensor, TensorShape};
/// Images per block in inference (blocks run one after another; each
/// convolution splits its block into row tiles across threads). Results do
/// not depend on it.
const INFER_BLOCK: usize = 64;

thread_local! {
    /// Inference buffers of this thread, reused by every [`UNet::forward`].
    static INFER: std::cell::RefCell<InferCache> = std::cell::RefCell::new(InferCache::default());
}

/// The U-Net ε-network: graph + flat parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct UNet {
    cfg: UNetConfig,
    graph: Graph,
    params: Vec<f32>,
}

/// Training state of a [`UNet`]: graph cache plus NHWC/NCHW staging.
#[derive(Clone, Debug, Default)]
pub struct UNetCache {
    graph: GraphCache,
    x_nhwc: Vec<f32>,
    t: Vec<f64>,
    out: Vec<f32>,
    d_nhwc: Vec<f32>,
    rows: usize,
    dim: usize,
}

impl UNetCache {
    pub fn new() -> Self {
        Self::default()
    }
    /// Output of the last [`UNet::forward_train`], `[rows, data_dim]` (NCHW rows).
    pub fn output(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.rows, self.dim), &self.out[..self.rows * self.dim])
            .expect("cache output has rows·dim values")
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Dropout masks of the following training forwards (`None`, the
    /// default: dropout is the identity, as in inference).
    pub fn set_dropout(&mut self, key: Option<super::dropout::DropoutKey>) {
        self.graph.dropout = key;
    }
}

impl UNet {
    /// PyTorch-default initialisation (every Conv / Linear tensor
    /// U(±1/√fan_in), GroupNorm γ = 1, β = 0) from stream `(seed, INIT, 0)`.
    pub fn new(cfg: UNetConfig, seed: u64) -> Result<Self> {
        let (graph, inits) = cfg.build()?;
        let mut params = vec![0.0; graph.num_params];
        let mut rng = crate::rng::stream(seed, crate::rng::domain::INIT, 0);
        init_params(&mut params, &inits, &mut rng);
        Ok(UNet { cfg, graph, params })
    }

    /// All parameters zero (for loading into).
    pub fn zeros(cfg: UNetConfig) -> Result<Self> {
        let (graph, _) = cfg.build()?;
        let params = vec![0.0; graph.num_params];
        Ok(UNet { cfg, graph, params })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    pub fn num_params(&self) -> usize {
        self.params.len()
    }
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// Any flat vector in the parameter layout cut into named tensors
    /// (PyTorch shapes, e.g. `down.0.res.0.conv1.weight [32, 32, 3, 3]`).
    pub fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<NamedTensor<&'a [f32]>> {
        assert_eq!(
            flat.len(),
            self.params.len(),
            "flat vector has the wrong length"
        );
        self.graph.named_slices(flat)
    }
    pub fn named_tensors(&self) -> Vec<NamedTensor<&[f32]>> {
        self.named_slices(&self.params)
    }
    pub fn tensor_specs(&self) -> Vec<TensorShape> {
        self.graph.tensor_shapes()
    }
    /// Copy named tensors into the parameters (all present once, right
    /// shapes, no extras); on error nothing changes.
    pub fn load_named<D: AsRef<[f32]>>(&mut self, tensors: &[NamedTensor<D>]) -> Result<()> {
        let graph = &self.graph;
        super::network::unflatten_checked(graph.num_params, &mut self.params, |p| {
            write_named(graph, p, tensors)
        })
    }

    /// Fill `flat` (parameter layout) from named tensors, checking that
    /// every tensor is present exactly once with its shape.
    pub fn unflatten_named<D: AsRef<[f32]>>(
        &self,
        tensors: &[NamedTensor<D>],
        flat: &mut [f32],
    ) -> Result<()> {
        super::network::unflatten_checked(self.num_params(), flat, |tmp| {
            write_named(&self.graph, tmp, tensors)
        })
    }

    fn run_block(
        &self,
        x: ArrayView2<f32>,
        t: &[f64],
        mut out: ArrayViewMut2<f32>,
        cache: &mut InferCache,
    ) {
        let (n, d) = (x.nrows(), self.cfg.data_dim());
        let (c, hw) = (self.cfg.channels, self.cfg.height * self.cfg.width);
        let mut xs = std::mem::take(&mut cache.stage_in);
        let mut o = std::mem::take(&mut cache.stage_out);
        xs.clear();
        xs.extend(x.iter().copied());
        o.resize(n * d, 0.0);
        nchw_to_nhwc(&xs, n, c, hw, &mut o);
        let y = self.graph.infer(&self.params, n, &o, t, cache);
        nhwc_to_nchw(y, n, c, hw, &mut xs);
        for (dst, &s) in out.iter_mut().zip(&xs) {
            *dst = s;
        }
        cache.stage_in = xs;
        cache.stage_out = o;
    }

    /// ε̂ for every row (an image in `[c, h, w]` order) at per-row times `t`.
    /// Row i is bit-identical for any batch size or thread count.
    pub fn forward(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, out: ArrayViewMut2<f32>) {
        assert_eq!(t.len(), x.nrows(), "t must have one time per row of x");
        self.forward_blocks(x, out, |i| t[i] as f64, &[]);
    }

    /// [`UNet::forward`] with one time `t` for every row.
    pub fn forward_t(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        self.forward_blocks(x, out, |_| t, &[]);
    }

    /// [`UNet::forward`] with one f64 time per row (row i as `forward_t` of
    /// that row alone at `t[i]`).
    pub fn forward_rows(&self, x: ArrayView2<f32>, t: &[f64], out: ArrayViewMut2<f32>) {
        assert_eq!(t.len(), x.nrows(), "t must have one time per row of x");
        self.forward_blocks(x, out, |i| t[i], &[]);
    }

    /// [`UNet::forward_rows`] of a class-conditional network given one
    /// label per row (in `0..=n_classes`, the last = ∅); labels are
    /// ignored by an unconditional network.
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
        self.forward_blocks(x, out, |i| t[i], labels);
    }

    /// Inference in blocks of at most `INFER_BLOCK` rows, row i at time
    /// `time_of(i)` with label `labels[i]` (empty: ∅).
    fn forward_blocks(
        &self,
        x: ArrayView2<f32>,
        mut out: ArrayViewMut2<f32>,
        time_of: impl Fn(usize) -> f64,
        labels: &[u32],
    ) {
        assert_eq!(
            x.ncols(),
            self.cfg.data_dim(),
            "x must have data_dim columns"
        );
        assert_eq!(out.dim(), x.dim(), "out must have the shape of x");
        let mut run = |cache: &mut InferCache| {
            let n = x.nrows();
            let mut start = 0;
            let mut ts = std::mem::take(&mut cache.times);
            while start < n {
                let end = (start + INFER_BLOCK).min(n);
                ts.clear();
                ts.extend((start..end).map(&time_of));
                cache.labels.clear();
                if !labels.is_empty() {
                    cache.labels.extend_from_slice(&labels[start..end]);
                }
                self.run_block(
                    x.slice(ndarray::s![start..end, ..]),
                    &ts,
                    out.slice_mut(ndarray::s![start..end, ..]),
                    cache,
                );
                start = end;
            }
            cache.times = ts;
        };
        // The buffers outlive the call (a sampler calls the network once
        // per step with the same shapes): no allocation or page faults
        // after the first call on this thread.
        INFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut cache) => run(&mut cache),
            Err(_) => run(&mut InferCache::default()),
        });
    }

    /// Training forward: keeps every activation in `cache`; output in
    /// [`UNetCache::output`].
    pub fn forward_train(&self, x: ArrayView2<f32>, t: ArrayView1<f32>, cache: &mut UNetCache) {
        self.forward_train_labelled(x, t, &[], cache)
    }

    /// [`UNet::forward_train`] given one label per row (empty: ∅).
    pub fn forward_train_labelled(
        &self,
        x: ArrayView2<f32>,
        t: ArrayView1<f32>,
        labels: &[u32],
        cache: &mut UNetCache,
    ) {
        let (n, d) = (x.nrows(), self.cfg.data_dim());
        assert!(labels.is_empty() || labels.len() == n, "one label per row");
        cache.graph.labels.clear();
        cache.graph.labels.extend_from_slice(labels);
        assert_eq!(t.len(), n, "t must have one time per row of x");
        assert_eq!(x.ncols(), d, "x must have data_dim columns");
        let (c, hw) = (self.cfg.channels, self.cfg.height * self.cfg.width);
        let xs: Vec<f32> = x.iter().copied().collect();
        cache.x_nhwc.resize(n * d, 0.0);
        nchw_to_nhwc(&xs, n, c, hw, &mut cache.x_nhwc);
        cache.t.clear();
        cache.t.extend(t.iter().map(|&v| v as f64));
        self.graph
            .forward(&self.params, n, &cache.x_nhwc, &cache.t, &mut cache.graph);
        cache.out.resize(n * d, 0.0);
        let last = self.graph.nodes.len() - 1;
        nhwc_to_nchw(
            cache.graph.value(&self.graph, last),
            n,
            c,
            hw,
            &mut cache.out,
        );
        cache.rows = n;
        cache.dim = d;
    }

    /// Backward for the last [`UNet::forward_train`]: OVERWRITES `grads`
    /// with ∂L/∂θ given `d_out = ∂L/∂ε̂` (`[rows, data_dim]`, NCHW rows).
    pub fn backward(&self, cache: &mut UNetCache, d_out: ArrayView2<f32>, grads: &mut [f32]) {
        let (n, d) = (cache.rows, self.cfg.data_dim());
        assert_eq!(d_out.dim(), (n, d), "d_out must match the cached batch");
        assert_eq!(grads.len(), self.params.len(), "grads has the wrong length");
        let (c, hw) = (self.cfg.channels, self.cfg.height * self.cfg.width);
        let ds: Vec<f32> = d_out.iter().copied().collect();
        cache.d_nhwc.resize(n * d, 0.0);
        nchw_to_nhwc(&ds, n, c, hw, &mut cache.d_nhwc);
        self.graph
            .backward(&self.params, &mut cache.graph, &cache.d_nhwc, grads);
    }
}

/// Copy named tensors into `flat` by the graph's tensor table.
pub(crate) fn write_named<D: AsRef<[f32]>>(
    g: &Graph,
    flat: &mut [f32],
    tensors: &[NamedTensor<D>],
) -> Result<()> {
    let mut seen = vec![false; g.tensors.len()];
    for (name, shape, data) in tensors {
        let Some(i) = g.tensors.iter().position(|(n, _, _)| n == name) else {
            return Err(Error::Mismatch(format!(
                "unexpected tensor '{name}' (not in this network)"
            )));
        };
        if seen[i] {
            return Err(Error::Mismatch(format!("tensor '{name}' appears twice")));
        }
        seen[i] = true;
        let (_, want, off) = &g.tensors[i];
        if shape != want {
            return Err(Error::Mismatch(format!(
                "tensor '{name}' has shape {shape:?}, expected {want:?}"
            )));
        }
        let data = data.as_ref();
        let len: usize = want.iter().product();
        if data.len() != len {
            return Err(Error::Mismatch(format!(
                "tensor '{name}' of shape {shape:?} holds {} values",
                data.len()
            )));
        }
        flat[*off..*off + len].copy_from_slice(data);
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(Error::Mismatch(format!(
            "missing tensor '{}' of shape {:?}",
            g.tensors[i].0, g.tensors[i].1
        )));
    }
    Ok(())
}

super::network::impl_network!(UNet, UNetCache, "unet");
