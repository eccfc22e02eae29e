//! The backward pass of a [`Graph`]: the nodes in reverse, ∂L/∂node into
//! the per-node buffers and ∂L/∂θ into the flat gradient.

use super::*;

impl Graph {
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
                    crate::nn::label::table_backward(gy, d_table, node.c, labels);
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

/// Only nodes that (transitively) depend on parameters or on the input need
/// a gradient; the `Time` node does not (a `Label` node's gradient goes
/// to its table).
fn needs_grad(nodes: &[Node], i: usize) -> bool {
    !matches!(nodes[i].op, Op::Time)
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
