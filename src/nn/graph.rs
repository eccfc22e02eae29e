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
//! Why one file (~950 lines): the ops' forward and backward are two
//! `match`es over the same [`Op`] enum that must stay in step (an op's
//! backward reads exactly the buffers its forward kept), and both walk the
//! same private node-buffer layout of [`GraphCache`]; splitting them would
//! put an op's forward and its derivative in different files.

use rayon::prelude::*;

use crate::tensors::{NamedTensor, TensorShape};

use super::attention::{attention_backward, attention_forward};
use super::conv::{conv_backward, conv_forward, copy_run, ConvShape};
use super::dropout::{dropout_backward, dropout_forward, DropoutKey};
use super::embed::time_embedding;
use super::layers::{silu, silu_backward_add, silu_backward_set};
use super::norm::{group_norm_backward, group_norm_forward, group_norm_silu_forward};

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

    /// Run the graph on `images` images: `x` NHWC (`[images, input size]`),
    /// `t` one time per image (ignored without a `Time` node). Node values
    /// go into `cache` (every one is kept for [`Graph::backward`]); the
    /// output is `cache.value(last)`.
    pub fn forward(
        &self,
        params: &[f32],
        images: usize,
        x: &[f32],
        t: &[f64],
        cache: &mut GraphCache,
    ) {
        cache.resize(self, images);
        let GraphCache {
            vals,
            stats,
            scratch,
            labels,
            dropout,
            ..
        } = cache;
        let mut i = 0;
        while i < self.nodes.len() {
            let node = &self.nodes[i];
            let (done, rest) = vals.split_at_mut(i);
            if let Op::Dropout { src, p, layer } = node.op {
                let y = &mut rest[0][..images * node.size()];
                dropout_forward(&done[src], y, node.size(), p, layer, *dropout);
                i += 1;
                continue;
            }
            if let (Op::GroupNorm { src, groups, g, b }, Some(Op::Silu { src: s })) =
                (&node.op, self.nodes.get(i + 1).map(|n| &n.op))
            {
                if *s == i {
                    // GroupNorm → SiLU in one pass over each image; both
                    // values kept (the SiLU backward reads them).
                    let n = images * node.size();
                    let (yg, ys) = rest.split_at_mut(1);
                    stats[i].resize(images * groups * 2, 0.0);
                    group_norm_silu_forward(
                        &done[*src],
                        images,
                        node.h * node.w,
                        node.c,
                        *groups,
                        &params[*g..*g + node.c],
                        &params[*b..*b + node.c],
                        &mut yg[0][..n],
                        &mut ys[0][..n],
                        &mut stats[i],
                    );
                    i += 2;
                    continue;
                }
            }
            let y = &mut rest[0][..images * node.size()];
            let val = |j: usize| &done[j][..];
            self.eval(
                i,
                params,
                images,
                x,
                (t, labels),
                val,
                y,
                &mut stats[i],
                scratch,
                Fuse::None,
            );
            i += 1;
        }
        cache.images = images;
    }

    /// Inference: like [`Graph::forward`] but a node's buffer is recycled
    /// once its last reader has run, so only the live values (the skip
    /// connections and the current block) are held. Returns the output
    /// (NHWC, `[images, out size]`).
    pub fn infer<'c>(
        &self,
        params: &[f32],
        images: usize,
        x: &[f32],
        t: &[f64],
        cache: &'c mut InferCache,
    ) -> &'c [f32] {
        let n = self.nodes.len();
        let mut last_use: Vec<usize> = (0..n).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for j in node.op.inputs().into_iter().flatten() {
                last_use[j] = i;
            }
        }
        last_use[n - 1] = n;
        let InferCache {
            slots,
            slot_of,
            stats,
            scratch,
            labels,
            ..
        } = cache;
        slot_of.clear();
        // Buffers kept from an earlier call are all free again.
        let mut free: Vec<usize> = (0..slots.len()).rev().collect();
        let mut i = 0;
        while i < n {
            let node = &self.nodes[i];
            // A node read only by the next one that is an elementwise
            // follow-up (`Conv → AddChannel`, `GroupNorm → Silu`) is
            // evaluated with it in one pass into one buffer; the pair's
            // value is the follow-up's, with the bits of the two passes.
            let fuse = match self.nodes.get(i + 1).map(|nx| &nx.op) {
                Some(&Op::AddChannel { src, v }) if src == i && last_use[i] == i + 1 => {
                    if matches!(node.op, Op::Conv { .. }) {
                        Fuse::AddChannel(v)
                    } else {
                        Fuse::None
                    }
                }
                Some(&Op::Silu { src }) if src == i && last_use[i] == i + 1 => {
                    if matches!(node.op, Op::GroupNorm { .. }) {
                        Fuse::Silu
                    } else {
                        Fuse::None
                    }
                }
                _ => Fuse::None,
            };
            let span = if fuse == Fuse::None { 1 } else { 2 };
            let slot = free.pop().unwrap_or_else(|| {
                slots.push(Vec::new());
                slots.len() - 1
            });
            let mut buf = std::mem::take(&mut slots[slot]);
            if buf.len() < images * node.size() {
                buf.resize(images * node.size(), 0.0);
            }
            let y = &mut buf[..images * node.size()];
            let val = |j: usize| &slots[slot_of[j]][..];
            self.eval(
                i,
                params,
                images,
                x,
                (t, labels),
                val,
                y,
                stats,
                scratch,
                fuse,
            );
            slots[slot] = buf;
            for _ in 0..span {
                slot_of.push(slot);
            }
            for k in i..i + span {
                for j in self.nodes[k].op.inputs().into_iter().flatten() {
                    if j < i && last_use[j] < i + span && !free.contains(&slot_of[j]) {
                        free.push(slot_of[j]);
                    }
                }
            }
            i += span;
        }
        &slots[slot_of[n - 1]][..images * self.output().size()]
    }

    /// Evaluate node `i` into `y` given the values of earlier nodes
    /// (`val(j)`, at least `images` rows each); `stats` receives the
    /// GroupNorm statistics, `scratch` is convolution scratch.
    #[allow(clippy::too_many_arguments)]
    fn eval<'v>(
        &self,
        i: usize,
        params: &[f32],
        images: usize,
        x: &[f32],
        (t, labels): (&[f64], &[u32]),
        val: impl Fn(usize) -> &'v [f32],
        y: &mut [f32],
        stats: &mut Vec<f64>,
        scratch: &mut Vec<f32>,
        fuse: Fuse,
    ) {
        let node = &self.nodes[i];
        match node.op {
            Op::Input => y.copy_from_slice(&x[..y.len()]),
            Op::Time => {
                for (row, &tt) in y.chunks_exact_mut(node.c).zip(t) {
                    time_embedding(tt, row);
                }
            }
            Op::Label { table, classes } => {
                let tab = &params[table..table + classes * node.c];
                super::label::table_forward(y, tab, node.c, labels);
            }
            Op::Conv { .. } | Op::Dense { .. } => {
                let (src, s, w, b) = self.linear_op(node, images);
                let add = match fuse {
                    Fuse::AddChannel(v) => Some(&val(v)[..images * node.c]),
                    _ => None,
                };
                conv_forward(
                    val(src),
                    &s,
                    &params[w..w + node.c * s.kdim()],
                    &params[b..b + node.c],
                    add,
                    y,
                    scratch,
                );
            }
            Op::GroupNorm { src, groups, g, b } => {
                stats.resize(images * groups * 2, 0.0);
                group_norm_forward(
                    val(src),
                    images,
                    node.h * node.w,
                    node.c,
                    groups,
                    &params[g..g + node.c],
                    &params[b..b + node.c],
                    fuse == Fuse::Silu,
                    y,
                    stats,
                );
            }
            Op::Silu { src } => {
                let n = y.len();
                y.par_chunks_mut(4096)
                    .zip(val(src)[..n].par_chunks(4096))
                    .for_each(|(yc, xc)| silu(xc, yc));
            }
            Op::AddChannel { src, v } => {
                let per = node.size();
                let (xs, vs) = (val(src), val(v));
                y.par_chunks_mut(per).enumerate().for_each(|(b, yi)| {
                    let vv = &vs[b * node.c..(b + 1) * node.c];
                    for (yr, xr) in yi
                        .chunks_exact_mut(node.c)
                        .zip(xs[b * per..(b + 1) * per].chunks_exact(node.c))
                    {
                        for ((o, &xv), &cv) in yr.iter_mut().zip(xr).zip(vv) {
                            *o = xv + cv;
                        }
                    }
                });
            }
            Op::Add { a, b } => {
                for ((o, &u), &v) in y.iter_mut().zip(val(a)).zip(val(b)) {
                    *o = u + v;
                }
            }
            Op::Concat { a, b } => {
                let (ca, cb) = (self.nodes[a].c, self.nodes[b].c);
                for ((yr, ar), br) in y
                    .chunks_exact_mut(ca + cb)
                    .zip(val(a).chunks_exact(ca))
                    .zip(val(b).chunks_exact(cb))
                {
                    copy_run(&mut yr[..ca], ar);
                    copy_run(&mut yr[ca..], br);
                }
            }
            Op::Upsample { src } => {
                let sn = &self.nodes[src];
                let (h, w, c) = (sn.h, sn.w, sn.c);
                let xs = val(src);
                y.par_chunks_mut(node.size())
                    .enumerate()
                    .for_each(|(b, yi)| {
                        for oy in 0..2 * h {
                            for ox in 0..2 * w {
                                let s = &xs[((b * h + oy / 2) * w + ox / 2) * c..][..c];
                                copy_run(&mut yi[(oy * 2 * w + ox) * c..][..c], s);
                            }
                        }
                    });
            }
            Op::Attention { src, heads } => {
                let n = node.h * node.w;
                attention_forward(val(src), y, stats, images, n, node.c, heads);
            }
            Op::Dropout { src, .. } => y.copy_from_slice(&val(src)[..y.len()]),
        }
    }

    /// For a `Conv` or `Dense` node: its source node, the convolution shape
    /// (a dense layer is a 1x1 convolution over a 1x1 image of the flattened
    /// source), and the offsets of its weight and bias.
    fn linear_op(&self, node: &Node, images: usize) -> (usize, ConvShape, usize, usize) {
        match node.op {
            Op::Conv {
                src,
                k,
                stride,
                w,
                b,
            } => {
                let sn = &self.nodes[src];
                let s = ConvShape {
                    images,
                    h: sn.h,
                    w: sn.w,
                    cin: sn.c,
                    cout: node.c,
                    k,
                    stride,
                };
                (src, s, w, b)
            }
            Op::Dense { src, w, b } => {
                let s = ConvShape {
                    images,
                    h: 1,
                    w: 1,
                    cin: self.nodes[src].size(),
                    cout: node.c,
                    k: 1,
                    stride: 1,
                };
                (src, s, w, b)
            }
            _ => unreachable!("linear_op is called for Conv and Dense nodes only"),
        }
    }

    /// Backward for the batch last run through [`Graph::forward`] with the
    /// same `params`: `d_out` is ∂L/∂output (NHWC, `[images, out size]`);
    /// OVERWRITES `grads` (flat layout) with ∂L/∂θ. Returns nothing for the
    /// inputs (∂L/∂x stays in `cache` as node 0's gradient).
    pub fn backward(
        &self,
        params: &[f32],
        cache: &mut GraphCache,
        d_out: &[f32],
        grads: &mut [f32],
    ) {
        let images = cache.images;
        grads.fill(0.0);
        let GraphCache {
            vals,
            stats,
            scratch,
            grads: gv,
            labels,
            written,
            readers,
            dropout,
            ..
        } = cache;
        readers.clear();
        readers.resize(self.nodes.len(), 0);
        for n in &self.nodes {
            for j in n.op.inputs().into_iter().flatten() {
                readers[j] += 1;
            }
        }
        // A node's gradient buffer is not zeroed: its first writer in the
        // reverse sweep overwrites it (`0 + v`, the bits of adding into
        // zeros) and later ones add.
        gv.resize_with(self.nodes.len(), Vec::new);
        for (g, n) in gv.iter_mut().zip(&self.nodes) {
            if g.len() < images * n.size() {
                g.resize(images * n.size(), 0.0);
            }
        }
        written.clear();
        written.resize(self.nodes.len(), false);
        let last = self.nodes.len() - 1;
        gv[last][..d_out.len()].copy_from_slice(d_out);
        written[last] = true;
        // Marks node `j` written; true if this is its first write.
        let first = |written: &mut Vec<bool>, j: usize| !std::mem::replace(&mut written[j], true);
        for i in (0..self.nodes.len()).rev() {
            let node = &self.nodes[i];
            let (gbefore, grest) = gv.split_at_mut(i);
            let len = images * node.size();
            if !written[i] {
                // No reader sent a gradient: it is zero.
                grest[0][..len].fill(0.0);
                written[i] = true;
            }
            // A convolution whose only reader is the next node, an
            // AddChannel, has that node's gradient (y = conv + v): it is
            // read in place instead of copied.
            let passes = |i: usize| match self.nodes.get(i + 1).map(|n| &n.op) {
                Some(&Op::AddChannel { src, .. }) => {
                    src == i
                        && readers[i] == 1
                        && matches!(self.nodes[i].op, Op::Conv { .. } | Op::Dense { .. })
                }
                _ => false,
            };
            let gy = if passes(i) {
                &grest[1][..len]
            } else {
                &grest[0][..len]
            };
            match node.op {
                Op::Input | Op::Time => {}
                Op::Label { table, classes } => {
                    let d_table = &mut grads[table..table + classes * node.c];
                    super::label::table_backward(gy, d_table, node.c, labels);
                }
                Op::Conv { .. } | Op::Dense { .. } => {
                    let (src, s, w, b) = self.linear_op(node, images);
                    let dx = needs_grad(&self.nodes, src).then(|| &mut gbefore[src][..]);
                    let ow = dx.is_some() && first(written, src);
                    self.conv_bwd(params, grads, &vals[src], &s, w, b, gy, dx, ow, scratch);
                }
                Op::GroupNorm { src, groups, g, b } => {
                    let c = node.c;
                    let (gg, rest) = grads[g..].split_at_mut(c);
                    let ow = first(written, src);
                    group_norm_backward(
                        &vals[src],
                        images,
                        node.h * node.w,
                        c,
                        groups,
                        &params[g..g + c],
                        &stats[i],
                        gy,
                        &mut gbefore[src],
                        ow,
                        gg,
                        &mut rest[b - g - c..b - g],
                    );
                }
                Op::Silu { src } => {
                    let (xs, ys) = (&vals[src], &vals[i]);
                    let ow = first(written, src);
                    gbefore[src][..gy.len()]
                        .par_chunks_mut(4096)
                        .zip(gy.par_chunks(4096))
                        .zip(xs.par_chunks(4096).zip(ys.par_chunks(4096)))
                        .for_each(|((dx, dy), (x, y))| {
                            if ow {
                                silu_backward_set(dx, dy, x, y)
                            } else {
                                silu_backward_add(dx, dy, x, y)
                            }
                        });
                }
                Op::AddChannel { src, v } => {
                    let per = node.size();
                    if passes(src) {
                        written[src] = true;
                    } else {
                        add_into(&mut gbefore[src][..len], gy, first(written, src));
                    }
                    let dv = &mut gbefore[v];
                    if first(written, v) {
                        dv[..images * node.c].fill(0.0);
                    }
                    for b in 0..images {
                        let dvb = &mut dv[b * node.c..(b + 1) * node.c];
                        for row in gy[b * per..(b + 1) * per].chunks_exact(node.c) {
                            for (d, &g) in dvb.iter_mut().zip(row) {
                                *d += g;
                            }
                        }
                    }
                }
                Op::Add { a, b } => {
                    add_into(&mut gbefore[a][..len], gy, first(written, a));
                    add_into(&mut gbefore[b][..len], gy, first(written, b));
                }
                Op::Concat { a, b } => {
                    let (ca, cb) = (self.nodes[a].c, self.nodes[b].c);
                    for (j, c0, cj) in [(a, 0, ca), (b, ca, cb)] {
                        let ow = first(written, j);
                        for (gr, dr) in gy
                            .chunks_exact(ca + cb)
                            .zip(gbefore[j].chunks_exact_mut(cj))
                        {
                            add_into(dr, &gr[c0..c0 + cj], ow);
                        }
                    }
                }
                Op::Upsample { src } => {
                    let sn = &self.nodes[src];
                    let (h, w, c) = (sn.h, sn.w, sn.c);
                    let per = sn.size();
                    let ow = first(written, src);
                    gbefore[src][..images * per]
                        .par_chunks_mut(per)
                        .enumerate()
                        .for_each(|(b, dxi)| {
                            if ow {
                                dxi.fill(0.0);
                            }
                            let gi = &gy[b * 4 * per..(b + 1) * 4 * per];
                            for oy in 0..2 * h {
                                for ox in 0..2 * w {
                                    let g = &gi[(oy * 2 * w + ox) * c..][..c];
                                    for (d, &v) in
                                        dxi[(oy / 2 * w + ox / 2) * c..][..c].iter_mut().zip(g)
                                    {
                                        *d += v;
                                    }
                                }
                            }
                        });
                }
                Op::Attention { src, heads } => {
                    let (n, c) = (node.h * node.w, node.c);
                    let ow = first(written, src);
                    let dx = &mut gbefore[src];
                    attention_backward(&vals[src], &mut stats[i], gy, dx, ow, images, n, c, heads);
                }
                Op::Dropout { src, p, layer } => {
                    let ow = first(written, src);
                    let dx = &mut gbefore[src][..len];
                    dropout_backward(gy, dx, node.size(), p, layer, *dropout, ow);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_bwd(
        &self,
        params: &[f32],
        grads: &mut [f32],
        x: &[f32],
        s: &ConvShape,
        w: usize,
        b: usize,
        gy: &[f32],
        dx: Option<&mut [f32]>,
        overwrite: bool,
        scratch: &mut Vec<f32>,
    ) {
        let wl = s.cout * s.kdim();
        let (gw, gb) = grads[w..].split_at_mut(b - w);
        conv_backward(
            x,
            s,
            &params[w..w + wl],
            gy,
            &mut gw[..wl],
            &mut gb[..s.cout],
            dx,
            overwrite,
            scratch,
        );
    }
}

/// An elementwise follow-up evaluated in the same pass as its only input
/// (inference, [`Graph::infer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fuse {
    None,
    /// `Conv` then `AddChannel { v }`: the channel vector added in the
    /// convolution's bias pass.
    AddChannel(usize),
    /// `GroupNorm` then `Silu`: SiLU applied in the normalisation pass.
    Silu,
}

/// Only nodes that (transitively) depend on parameters or on the input need
/// a gradient; the `Time` node does not (a `Label` node's gradient goes
/// to its table).
fn needs_grad(nodes: &[Node], i: usize) -> bool {
    !matches!(nodes[i].op, Op::Time)
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

/// `d += g`, or `d = 0 + g` (the bits of adding into zeros) with `set`.
fn add_into(d: &mut [f32], g: &[f32], set: bool) {
    if set {
        for (d, &g) in d.iter_mut().zip(g) {
            *d = 0.0 + g;
        }
    } else {
        for (d, &g) in d.iter_mut().zip(g) {
            *d += g;
        }
    }
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
