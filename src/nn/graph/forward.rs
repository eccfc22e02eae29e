//! The forward pass of a [`Graph`]: training (every node value kept for
//! the backward) and inference (node buffers pooled, elementwise ops fused).

use super::*;

impl Graph {
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
                crate::nn::label::table_forward(y, tab, node.c, labels);
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
    pub(super) fn linear_op(&self, node: &Node, images: usize) -> (usize, ConvShape, usize, usize) {
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
