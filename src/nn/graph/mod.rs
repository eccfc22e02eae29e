//! A small static computation graph over NHWC image batches, with a
//! hand-written backward for each op. The U-Net ([`super::unet`]) and the
//! image classifier ([`super::classifier`]) are both built as a [`Graph`]:
//! a list of nodes in topological order, parameters in one flat `Vec<f32>`
//! (each tensor at a fixed offset, PyTorch layouts and names).
//!
//! Ops (per image; `B` images per batch, node value `[B, h, w, c]`):
//!
//! ```text
//!   Input            x                        (the caller's image, NHWC)
//!   Time             emb(t)                   [B, 1, 1, E], see super::embed
//!   Label            E[y]                     [B, 1, 1, E], a learned table row, see super::label
//!   Conv k,s         y = conv_k,s(x; W, b)    see super::conv
//!   Dense            y = flat(x)·Wᵀ + b       [B, 1, 1, out], flat in NHWC order
//!   GroupNorm        y = γ·x̂ + β              see super::norm
//!   Silu             y = x·σ(x)               dy/dx = σ + y·(1 − σ)
//!   AddChannel       y[p, c] = x[p, c] + v[c] (v a [B,1,1,C] node: the time projection)
//!   Add              y = a + b
//!   Concat           y = [a, b] along channels
//!   Upsample         y[2i+u, 2j+v] = x[i, j]  (nearest ×2; dx sums the 4 children)
//!   Attention        o = softmax(q kᵀ/√d) v   per head over the h·w positions, see super::attention
//!   Dropout          y = x·m/(1−p)            training with a key (else y = x), see super::dropout
//! ```
//!
//! Backward runs the nodes in reverse, accumulating ∂L/∂node into
//! per-node buffers (the first write of a pass stores, later ones add)
//! and ∂L/∂θ into the flat gradient. Training evaluates `GroupNorm → Silu`
//! in one pass, as inference does. Sums over the batch
//! run in a fixed order; every per-image op and every GEMM row is
//! independent of the other images, so outputs are batch-size invariant.
//!
//! Layout: this file holds the ops, the graph builder and the caches;
//! [`forward`] the training forward pass and inference, [`backward`] the
//! backward pass. The forward and backward are two `match`es over the same
//! [`Op`] enum that must stay in step (an op's backward reads exactly the
//! buffers its forward kept, in the node-buffer layout of [`GraphCache`]).

use rayon::prelude::*;

use crate::backend::simd::copy_run;
use crate::tensors::{NamedTensor, TensorShape};

use super::attention::{attention_backward, attention_forward};
use super::conv::{conv_backward, conv_forward, ConvShape};
use super::dropout::{dropout_backward, dropout_forward, DropoutKey};
use super::embed::time_embedding;
use super::layers::{silu, silu_backward_add, silu_backward_set};
use super::norm::{group_norm_backward, group_norm_forward, group_norm_silu_forward};

mod backward;
mod blocks;
mod forward;

/// One operation; `usize` fields are node ids or parameter offsets.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Input,
    Time,
    /// The label embedding: row `y_i` of the table at `table`
    /// (`classes` rows; labels from the cache, none = the last row).
    Label {
        table: usize,
        classes: usize,
    },
    Conv {
        src: usize,
        k: usize,
        stride: usize,
        w: usize,
        b: usize,
    },
    Dense {
        src: usize,
        w: usize,
        b: usize,
    },
    GroupNorm {
        src: usize,
        groups: usize,
        g: usize,
        b: usize,
    },
    Silu {
        src: usize,
    },
    AddChannel {
        src: usize,
        v: usize,
    },
    Add {
        a: usize,
        b: usize,
    },
    Concat {
        a: usize,
        b: usize,
    },
    Upsample {
        src: usize,
    },
    /// Self-attention of a `[q, k, v]` node (3C channels) with `heads` heads.
    Attention {
        src: usize,
        heads: usize,
    },
    /// Dropout at rate `p`; `layer` numbers the network's dropout layers.
    Dropout {
        src: usize,
        p: f64,
        layer: usize,
    },
}

impl Op {
    /// The nodes this op reads.
    pub fn inputs(&self) -> [Option<usize>; 2] {
        match *self {
            Op::Input | Op::Time | Op::Label { .. } => [None, None],
            Op::Conv { src, .. }
            | Op::Dense { src, .. }
            | Op::GroupNorm { src, .. }
            | Op::Silu { src }
            | Op::Upsample { src }
            | Op::Attention { src, .. }
            | Op::Dropout { src, .. } => [Some(src), None],
            Op::AddChannel { src, v } => [Some(src), Some(v)],
            Op::Add { a, b } | Op::Concat { a, b } => [Some(a), Some(b)],
        }
    }
}

/// A node: its op and per-image output shape `h × w × c`.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Node {
    /// Values per image.
    pub fn size(&self) -> usize {
        self.h * self.w * self.c
    }
}

/// A named parameter tensor: name, PyTorch shape, offset in the flat vector.
pub type TensorSpec = crate::tensors::NamedTensor<usize>;

/// The graph: nodes in evaluation order (the last is the output) and the
/// parameter tensors in the flat layout.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub tensors: Vec<TensorSpec>,
    pub num_params: usize,
}

/// (offset, length, initialiser) of each parameter tensor, in order.
pub type InitList = Vec<(usize, usize, Init)>;

/// How a freshly added tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in) (PyTorch's default for Conv / Linear).
    Uniform {
        fan_in: usize,
    },
    Const(f32),
}

impl Graph {
    /// Any flat vector in this graph's parameter layout cut into its named
    /// tensors (PyTorch names and shapes).
    pub fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<NamedTensor<&'a [f32]>> {
        self.tensors
            .iter()
            .map(|(n, s, o)| {
                (
                    n.clone(),
                    s.clone(),
                    &flat[*o..*o + s.iter().product::<usize>()],
                )
            })
            .collect()
    }
    /// Names and shapes of the parameter tensors.
    pub fn tensor_shapes(&self) -> Vec<TensorShape> {
        self.tensors
            .iter()
            .map(|(n, s, _)| (n.clone(), s.clone()))
            .collect()
    }
    fn param(
        &mut self,
        name: String,
        shape: Vec<usize>,
        inits: &mut Vec<(usize, usize, Init)>,
        init: Init,
    ) -> usize {
        let off = self.num_params;
        let n: usize = shape.iter().product();
        self.num_params += n;
        inits.push((off, n, init));
        self.tensors.push((name, shape, off));
        off
    }
    fn push(&mut self, op: Op, h: usize, w: usize, c: usize) -> usize {
        self.nodes.push(Node { op, h, w, c });
        self.nodes.len() - 1
    }
    pub fn input(&mut self, h: usize, w: usize, c: usize) -> usize {
        self.push(Op::Input, h, w, c)
    }
    pub fn time(&mut self, emb_dim: usize) -> usize {
        self.push(Op::Time, 1, 1, emb_dim)
    }
    /// Label embedding `name.weight` `[classes, dim]` (U(−1, 1)), see
    /// [`super::label`].
    pub fn label(
        &mut self,
        inits: &mut Vec<(usize, usize, Init)>,
        classes: usize,
        dim: usize,
        name: &str,
    ) -> usize {
        let table = self.param(
            format!("{name}.weight"),
            vec![classes, dim],
            inits,
            Init::Uniform { fan_in: 1 },
        );
        self.push(Op::Label { table, classes }, 1, 1, dim)
    }
    /// k×k convolution (`k` 1 or 3, padding (k−1)/2) with `name.weight`
    /// `[cout, cin, k, k]` and `name.bias` `[cout]`.
    pub fn conv(
        &mut self,
        inits: &mut Vec<(usize, usize, Init)>,
        src: usize,
        cout: usize,
        k: usize,
        stride: usize,
        name: &str,
    ) -> usize {
        let n = &self.nodes[src];
        let (h, w, cin) = (n.h, n.w, n.c);
        let fan_in = cin * k * k;
        let wo = self.param(
            format!("{name}.weight"),
            vec![cout, cin, k, k],
            inits,
            Init::Uniform { fan_in },
        );
        let bo = self.param(
            format!("{name}.bias"),
            vec![cout],
            inits,
            Init::Uniform { fan_in },
        );
        let (ho, wwo) = (
            super::conv::out_size(h, k, stride),
            super::conv::out_size(w, k, stride),
        );
        self.push(
            Op::Conv {
                src,
                k,
                stride,
                w: wo,
                b: bo,
            },
            ho,
            wwo,
            cout,
        )
    }
    /// Dense layer on the flattened (NHWC) image: `name.weight` `[out, h·w·c]`.
    pub fn dense(
        &mut self,
        inits: &mut Vec<(usize, usize, Init)>,
        src: usize,
        out: usize,
        name: &str,
    ) -> usize {
        let fan_in = self.nodes[src].size();
        let wo = self.param(
            format!("{name}.weight"),
            vec![out, fan_in],
            inits,
            Init::Uniform { fan_in },
        );
        let bo = self.param(
            format!("{name}.bias"),
            vec![out],
            inits,
            Init::Uniform { fan_in },
        );
        self.push(Op::Dense { src, w: wo, b: bo }, 1, 1, out)
    }
    /// GroupNorm with `name.weight` (γ = 1) and `name.bias` (β = 0), `[c]`.
    pub fn group_norm(
        &mut self,
        inits: &mut Vec<(usize, usize, Init)>,
        src: usize,
        groups: usize,
        name: &str,
    ) -> usize {
        let n = self.nodes[src].clone();
        assert!(
            groups >= 1 && n.c.is_multiple_of(groups),
            "groups must divide channels"
        );
        let g = self.param(format!("{name}.weight"), vec![n.c], inits, Init::Const(1.0));
        let b = self.param(format!("{name}.bias"), vec![n.c], inits, Init::Const(0.0));
        self.push(Op::GroupNorm { src, groups, g, b }, n.h, n.w, n.c)
    }
    pub fn silu(&mut self, src: usize) -> usize {
        let n = self.nodes[src].clone();
        self.push(Op::Silu { src }, n.h, n.w, n.c)
    }
    pub fn add_channel(&mut self, src: usize, v: usize) -> usize {
        let n = self.nodes[src].clone();
        assert_eq!(self.nodes[v].size(), n.c, "channel vector width");
        self.push(Op::AddChannel { src, v }, n.h, n.w, n.c)
    }
    pub fn add(&mut self, a: usize, b: usize) -> usize {
        let n = self.nodes[a].clone();
        assert_eq!(
            n,
            Node {
                op: n.op.clone(),
                ..self.nodes[b].clone()
            },
            "add: shapes differ"
        );
        self.push(Op::Add { a, b }, n.h, n.w, n.c)
    }
    pub fn concat(&mut self, a: usize, b: usize) -> usize {
        let (na, nb) = (self.nodes[a].clone(), self.nodes[b].clone());
        assert!(na.h == nb.h && na.w == nb.w, "concat: spatial sizes differ");
        self.push(Op::Concat { a, b }, na.h, na.w, na.c + nb.c)
    }
    pub fn upsample(&mut self, src: usize) -> usize {
        let n = self.nodes[src].clone();
        self.push(Op::Upsample { src }, 2 * n.h, 2 * n.w, n.c)
    }

    /// Output node (the last).
    pub fn output(&self) -> &Node {
        self.nodes.last().expect("graph has nodes")
    }
}

/// Node values, normalisation statistics, node gradients and convolution
/// scratch (permuted weights, per-image weight-gradient partials); buffers
/// grow to the largest batch seen and are reused.
#[derive(Clone, Debug, Default)]
pub struct GraphCache {
    pub images: usize,
    pub vals: Vec<Vec<f32>>,
    pub grads: Vec<Vec<f32>>,
    pub stats: Vec<Vec<f64>>,
    pub scratch: Vec<f32>,
    /// Per-image class labels for a `Label` node (set by the caller before
    /// [`Graph::forward`]; empty: the ∅ row for every image).
    pub labels: Vec<u32>,
    /// Backward: whether a node's gradient buffer holds this pass's value.
    pub written: Vec<bool>,
    /// Backward: how many nodes read each node.
    pub readers: Vec<u32>,
    /// Masks of the `Dropout` nodes (set by the caller before
    /// [`Graph::forward`]; `None`: dropout is the identity).
    pub dropout: Option<DropoutKey>,
}

impl GraphCache {
    fn resize(&mut self, g: &Graph, images: usize) {
        self.vals.resize_with(g.nodes.len(), Vec::new);
        self.stats.resize_with(g.nodes.len(), Vec::new);
        for (i, n) in g.nodes.iter().enumerate() {
            let need = images * n.size();
            if self.vals[i].len() < need {
                self.vals[i].resize(need, 0.0);
            }
        }
    }

    /// Value of node `i` for the last batch.
    pub fn value(&self, g: &Graph, i: usize) -> &[f32] {
        &self.vals[i][..self.images * g.nodes[i].size()]
    }

    /// ∂L/∂(node `i`) after [`Graph::backward`].
    pub fn grad(&self, g: &Graph, i: usize) -> &[f32] {
        // A convolution read only by the AddChannel after it shares that
        // node's gradient buffer (see `backward`).
        let passed = matches!(g.nodes.get(i + 1).map(|n| &n.op), Some(&Op::AddChannel { src, .. }) if src == i)
            && matches!(g.nodes[i].op, Op::Conv { .. } | Op::Dense { .. })
            && g.nodes
                .iter()
                .flat_map(|n| n.op.inputs().into_iter().flatten())
                .filter(|&j| j == i)
                .count()
                == 1;
        let j = if passed { i + 1 } else { i };
        &self.grads[j][..self.images * g.nodes[i].size()]
    }
}

/// Inference buffers of [`Graph::infer`]: a pool of node-value buffers
/// (`slot_of[i]` is node `i`'s), GroupNorm statistics and convolution
/// scratch, plus NHWC/NCHW staging for callers; all grow and are reused.
#[derive(Clone, Debug, Default)]
pub struct InferCache {
    pub slots: Vec<Vec<f32>>,
    pub slot_of: Vec<usize>,
    pub stats: Vec<f64>,
    pub scratch: Vec<f32>,
    pub stage_in: Vec<f32>,
    pub stage_out: Vec<f32>,
    /// Per-image times of the current block (staging for callers).
    pub times: Vec<f64>,
    /// Per-image labels of the current block for a `Label` node (empty: ∅).
    pub labels: Vec<u32>,
}

/// Fill `params` as the `inits` list says, drawing uniforms in tensor order
/// from `rng` (top 24 bits of each u32, as [`super::Mlp::new`]).
pub fn init_params(params: &mut [f32], inits: &[(usize, usize, Init)], rng: &mut impl rand::Rng) {
    for &(off, n, init) in inits {
        for p in &mut params[off..off + n] {
            *p = match init {
                Init::Const(v) => v,
                Init::Uniform { fan_in } => {
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    let u = (rng.next_u32() >> 8) as f64 * (1.0 / (1u64 << 24) as f64);
                    (bound * (2.0 * u - 1.0)) as f32
                }
            };
        }
    }
}

/// NCHW rows (`[images, c·h·w]`) to NHWC.
pub fn nchw_to_nhwc(x: &[f32], images: usize, c: usize, hw: usize, out: &mut [f32]) {
    for b in 0..images {
        let (xi, oi) = (
            &x[b * c * hw..(b + 1) * c * hw],
            &mut out[b * c * hw..(b + 1) * c * hw],
        );
        for ch in 0..c {
            for p in 0..hw {
                oi[p * c + ch] = xi[ch * hw + p];
            }
        }
    }
}

/// NHWC to NCHW rows.
pub fn nhwc_to_nchw(x: &[f32], images: usize, c: usize, hw: usize, out: &mut [f32]) {
    for b in 0..images {
        let (xi, oi) = (
            &x[b * c * hw..(b + 1) * c * hw],
            &mut out[b * c * hw..(b + 1) * c * hw],
        );
        for ch in 0..c {
            for p in 0..hw {
                oi[ch * hw + p] = xi[p * c + ch];
            }
        }
    }
}
