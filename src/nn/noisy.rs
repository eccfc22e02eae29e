//! The noise-conditional classifier network p_θ(y | x_t, t) of classifier
//! guidance, on the same graph code as the U-Net and the image classifier
//! ([`super::graph`]), with the time embedding of the score networks
//! ([`super::embed`]). Two shapes:
//!
//! ```text
//!   Mlp (points, d values):  h₀ = [u; emb(t)],  h_l = SiLU(Dense(h_{l−1})) (l = 1..depth),  z = Dense(h_depth)
//!   Cnn (images c×h×w):      h₁ = SiLU(Conv3(u) + Dense_1(emb(t))),  h₂, h₃ likewise with stride-2 Conv3,
//!                            f = SiLU(Dense(flat(h₃)) + Dense_f(emb(t))),  z = Dense(f)
//!   logits z ∈ R^K,  p = softmax(z),  u = c_in(t)·x_t
//! ```
//!
//! `c_in(t)` is the caller's input scale (see [`crate::guidance::TrainedClassifier`]:
//! 1/√(α² + σ²), which is 1 for VP); this module sees only `u` and `t`.
//!
//! Training loss and the two gradients the hand-written backward gives:
//!
//! ```text
//!   L = mean_i −ln p_i[y_i]                       ∂L/∂z_i = (p_i − onehot(y_i)) / B
//!   ∇_u ln p(y | u, t) = Jᵀ (onehot(y) − p)        the backward of the graph with d_out = onehot(y) − p,
//!                                                  read at the input node (row by row: rows are independent)
//! ```
//!
//! Rows are independent in every op (the GEMM rows, the per-image
//! convolutions), so the logits and input gradients of a row do not depend
//! on the batch it is in, nor on the thread count.

use ndarray::{ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use super::graph::{init_params, nchw_to_nhwc, nhwc_to_nchw, Graph, GraphCache, InitList};
use crate::error::{Error, Result};
use crate::tensors::{NamedTensor, TensorShape};

/// Rows per block of [`NoisyNet::log_probs`] and [`NoisyNet::log_prob_grad`]
/// (bounds the cached activations; rows are independent, so the block size
/// does not change any value).
const BLOCK_ROWS: usize = 256;

/// Shape of a [`NoisyNet`] (the `net` of a classifier checkpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NoisyConfig {
    /// For points of `dim` values.
    Mlp {
        dim: usize,
        hidden: usize,
        depth: usize,
        emb_dim: usize,
        classes: usize,
    },
    /// For images `[channels, height, width]` (rows in NCHW order).
    Cnn {
        channels: usize,
        height: usize,
        width: usize,
        /// Channels of the three conv layers (the last two halve the side).
        widths: Vec<usize>,
        hidden: usize,
        emb_dim: usize,
        classes: usize,
    },
}

impl NoisyConfig {
    /// The 2-D default: two hidden layers of 128, embedding 32.
    pub fn mlp(dim: usize, classes: usize) -> Self {
        NoisyConfig::Mlp {
            dim,
            hidden: 128,
            depth: 2,
            emb_dim: 32,
            classes,
        }
    }

    /// The image default: widths [16, 32, 32], 128 features, embedding 32
    /// (the metric classifier's CNN plus the time input).
    pub fn cnn(channels: usize, height: usize, width: usize, classes: usize) -> Self {
        NoisyConfig::Cnn {
            channels,
            height,
            width,
            widths: vec![16, 32, 32],
            hidden: 128,
            emb_dim: 32,
            classes,
        }
    }

    /// Values per input row.
    pub fn input_dim(&self) -> usize {
        match self {
            NoisyConfig::Mlp { dim, .. } => *dim,
            NoisyConfig::Cnn {
                channels,
                height,
                width,
                ..
            } => channels * height * width,
        }
    }

    /// Number of classes K.
    pub fn classes(&self) -> usize {
        match self {
            NoisyConfig::Mlp { classes, .. } | NoisyConfig::Cnn { classes, .. } => *classes,
        }
    }

    /// Check every field.
    pub fn validate(&self) -> Result<()> {
        let (hidden, emb_dim, classes) = match self {
            NoisyConfig::Mlp {
                dim,
                hidden,
                depth,
                emb_dim,
                classes,
            } => {
                if !(1..=4096).contains(dim) {
                    return Err(Error::invalid("classifier dim", dim, "1..=4096"));
                }
                if !(1..=16).contains(depth) {
                    return Err(Error::invalid("classifier depth", depth, "1..=16"));
                }
                (*hidden, *emb_dim, *classes)
            }
            NoisyConfig::Cnn {
                channels,
                height,
                width,
                widths,
                hidden,
                emb_dim,
                classes,
            } => {
                if widths.len() != 3 || widths.iter().any(|&w| w == 0 || w > 512) {
                    return Err(Error::invalid(
                        "classifier widths",
                        format!("{widths:?}"),
                        "three widths in 1..=512",
                    ));
                }
                for (n, v) in [("height", height), ("width", width)] {
                    if !(1..=256).contains(v) {
                        return Err(Error::invalid(n, v, "1..=256"));
                    }
                }
                if !(1..=4).contains(channels) {
                    return Err(Error::invalid("channels", channels, "1..=4"));
                }
                (*hidden, *emb_dim, *classes)
            }
        };
        if !(1..=4096).contains(&hidden) {
            return Err(Error::invalid("classifier hidden", hidden, "1..=4096"));
        }
        if emb_dim == 0 || emb_dim > 1024 || !emb_dim.is_multiple_of(2) {
            return Err(Error::invalid(
                "classifier emb_dim",
                emb_dim,
                "an even number in 2..=1024",
            ));
        }
        if !(2..=super::label::MAX_CLASSES).contains(&classes) {
            return Err(Error::invalid(
                "classifier classes",
                classes,
                format!("2..={}", super::label::MAX_CLASSES),
            ));
        }
        Ok(())
    }

    /// The graph and its initialisers.
    fn build(&self) -> Result<(Graph, InitList)> {
        self.validate()?;
        let mut g = Graph::default();
        let mut ini = Vec::new();
        match self {
            NoisyConfig::Mlp {
                dim,
                hidden,
                depth,
                emb_dim,
                classes,
            } => {
                let x = g.input(1, 1, *dim);
                let e = g.time(*emb_dim);
                let mut h = g.concat(x, e);
                for l in 0..*depth {
                    h = g.dense(&mut ini, h, *hidden, &format!("net.{}", 2 * l));
                    h = g.silu(h);
                }
                g.dense(&mut ini, h, *classes, &format!("net.{}", 2 * depth));
            }
            NoisyConfig::Cnn {
                channels,
                height,
                width,
                widths,
                hidden,
                emb_dim,
                classes,
            } => {
                let x = g.input(*height, *width, *channels);
                let e = g.time(*emb_dim);
                let mut h = x;
                for (l, (&w, stride)) in widths.iter().zip([1, 2, 2]).enumerate() {
                    h = g.conv(&mut ini, h, w, 3, stride, &format!("conv{}", l + 1));
                    let v = g.dense(&mut ini, e, w, &format!("temb{}", l + 1));
                    h = g.add_channel(h, v);
                    h = g.silu(h);
                }
                let f = g.dense(&mut ini, h, *hidden, "fc1");
                let v = g.dense(&mut ini, e, *hidden, "temb_fc1");
                let f = g.add_channel(f, v);
                let f = g.silu(f);
                g.dense(&mut ini, f, *classes, "fc2");
            }
        }
        Ok((g, ini))
    }
}

/// The network: graph + flat parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct NoisyNet {
    cfg: NoisyConfig,
    graph: Graph,
    params: Vec<f32>,
}

impl NoisyNet {
    /// PyTorch-default initialisation from stream `(seed, INIT, 2)`.
    pub fn new(cfg: NoisyConfig, seed: u64) -> Result<Self> {
        let (graph, ini) = cfg.build()?;
        let mut params = vec![0.0; graph.num_params];
        init_params(
            &mut params,
            &ini,
            &mut crate::rng::stream(seed, crate::rng::domain::INIT, 2),
        );
        Ok(NoisyNet { cfg, graph, params })
    }

    pub fn config(&self) -> &NoisyConfig {
        &self.cfg
    }
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    pub fn num_params(&self) -> usize {
        self.params.len()
    }
    /// Names and shapes of the parameter tensors.
    pub fn tensor_specs(&self) -> Vec<TensorShape> {
        self.graph.tensor_shapes()
    }
    /// Any flat vector in the parameter layout as named tensors.
    pub fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<NamedTensor<&'a [f32]>> {
        self.graph.named_slices(flat)
    }
    /// Set the parameters from named tensors (each present once, with its shape).
    pub fn load_named(&mut self, tensors: &[NamedTensor<&[f32]>]) -> Result<()> {
        let graph = &self.graph;
        super::network::unflatten_checked(graph.num_params, &mut self.params, |p| {
            super::unet::write_named(graph, p, tensors)
        })
    }

    /// Forward on rows `u` (NCHW for images) at times `t` (one per row).
    fn run(&self, u: ArrayView2<f32>, t: &[f64], cache: &mut GraphCache) {
        let n = u.nrows();
        let d = self.cfg.input_dim();
        assert_eq!(u.ncols(), d, "classifier input must have {d} columns");
        assert_eq!(t.len(), n, "one time per row");
        let xs: Vec<f32> = u.iter().copied().collect();
        let nhwc = match &self.cfg {
            NoisyConfig::Mlp { .. } => xs,
            NoisyConfig::Cnn {
                channels,
                height,
                width,
                ..
            } => {
                let mut out = vec![0.0; xs.len()];
                nchw_to_nhwc(&xs, n, *channels, height * width, &mut out);
                out
            }
        };
        cache.labels.clear();
        self.graph.forward(&self.params, n, &nhwc, t, cache);
    }

    fn logits<'c>(&self, cache: &'c GraphCache) -> &'c [f32] {
        cache.value(&self.graph, self.graph.nodes.len() - 1)
    }

    /// Mean cross-entropy of `labels` on rows `u` at times `t`; OVERWRITES
    /// `grads` with ∂L/∂θ.
    pub fn loss_and_grad(
        &self,
        u: ArrayView2<f32>,
        t: &[f64],
        labels: &[u32],
        cache: &mut GraphCache,
        grads: &mut [f32],
    ) -> f64 {
        let n = u.nrows();
        assert_eq!(labels.len(), n, "one label per row");
        self.run(u, t, cache);
        let k = self.cfg.classes();
        let logits = self.logits(cache);
        let mut d = vec![0.0f32; n * k];
        let mut loss = 0.0;
        for i in 0..n {
            let lp = log_softmax(&logits[i * k..(i + 1) * k]);
            let y = labels[i] as usize;
            assert!(y < k, "label {y} out of range 0..{k}");
            loss -= lp[y];
            for j in 0..k {
                let target = if j == y { 1.0 } else { 0.0 };
                d[i * k + j] = ((lp[j].exp() - target) / n as f64) as f32;
            }
        }
        self.graph.backward(&self.params, cache, &d, grads);
        loss / n as f64
    }

    /// ln p(k | u_i, t_i) for every row and class into `out` (`[n, K]`).
    pub fn log_probs(&self, u: ArrayView2<f32>, t: &[f64], mut out: ArrayViewMut2<f64>) {
        let k = self.cfg.classes();
        let mut cache = GraphCache::default();
        for start in (0..u.nrows()).step_by(BLOCK_ROWS) {
            let end = (start + BLOCK_ROWS).min(u.nrows());
            self.run(
                u.slice(ndarray::s![start..end, ..]),
                &t[start..end],
                &mut cache,
            );
            let logits = self.logits(&cache);
            for i in start..end {
                let lp = log_softmax(&logits[(i - start) * k..(i - start + 1) * k]);
                for (o, v) in out.row_mut(i).iter_mut().zip(lp) {
                    *o = v;
                }
            }
        }
    }

    /// ∇_u ln p(y | u_i, t_i) for every row into `out` (`[n, d]`, NCHW for
    /// images), by the graph's backward with d_out = onehot(y) − p.
    pub fn log_prob_grad(
        &self,
        u: ArrayView2<f32>,
        t: &[f64],
        y: usize,
        mut out: ArrayViewMut2<f32>,
    ) {
        let k = self.cfg.classes();
        assert!(y < k, "class {y} out of range 0..{k}");
        let d = self.cfg.input_dim();
        let mut cache = GraphCache::default();
        let mut grads = vec![0.0f32; self.params.len()];
        for start in (0..u.nrows()).step_by(BLOCK_ROWS) {
            let end = (start + BLOCK_ROWS).min(u.nrows());
            let n = end - start;
            self.run(
                u.slice(ndarray::s![start..end, ..]),
                &t[start..end],
                &mut cache,
            );
            let logits = self.logits(&cache);
            let mut dz = vec![0.0f32; n * k];
            for i in 0..n {
                let lp = log_softmax(&logits[i * k..(i + 1) * k]);
                for j in 0..k {
                    let target = if j == y { 1.0 } else { 0.0 };
                    dz[i * k + j] = (target - lp[j].exp()) as f32;
                }
            }
            self.graph
                .backward(&self.params, &mut cache, &dz, &mut grads);
            let gx = cache.grad(&self.graph, 0);
            let rows = match &self.cfg {
                NoisyConfig::Mlp { .. } => gx.to_vec(),
                NoisyConfig::Cnn {
                    channels,
                    height,
                    width,
                    ..
                } => {
                    let mut nchw = vec![0.0; n * d];
                    nhwc_to_nchw(gx, n, *channels, height * width, &mut nchw);
                    nchw
                }
            };
            for (i, mut row) in out
                .slice_mut(ndarray::s![start..end, ..])
                .outer_iter_mut()
                .enumerate()
            {
                for (o, &v) in row.iter_mut().zip(&rows[i * d..(i + 1) * d]) {
                    *o = v;
                }
            }
        }
    }
}

/// ln softmax(z) in f64 (max-shifted, so never NaN for finite logits).
fn log_softmax(z: &[f32]) -> Vec<f64> {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let s: f64 = z.iter().map(|&v| (v as f64 - m).exp()).sum();
    let lse = m + s.ln();
    z.iter().map(|&v| v as f64 - lse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_names() {
        let net = NoisyNet::new(NoisyConfig::mlp(2, 8), 0).unwrap();
        let names: Vec<String> = net.tensor_specs().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "net.0.weight",
                "net.0.bias",
                "net.2.weight",
                "net.2.bias",
                "net.4.weight",
                "net.4.bias"
            ]
        );
        let img = NoisyNet::new(NoisyConfig::cnn(1, 8, 8, 10), 0).unwrap();
        assert!(img
            .tensor_specs()
            .iter()
            .any(|(n, _)| n == "temb_fc1.weight"));
        assert!(NoisyConfig::mlp(2, 1).validate().is_err());
    }
}
