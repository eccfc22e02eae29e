//! Inference of the MLP: ε̂ for a batch of rows, split into row blocks
//! across rayon threads, each block in the calling thread's workspace.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};

use super::{Mlp, MlpConfig, Times, BLOCK_ROWS, WORKSPACE};
use crate::backend::gemm::{gemm_packed, MatRef, PackedB};
use crate::backend::packcache::Packs;
use crate::backend::with_scratch;
use crate::nn::embed::{time_embedding, time_embedding_rows};
use crate::nn::layers::{bias_add, bias_silu};

impl Mlp {
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
    pub(super) fn packed_weights(&self) -> Packs<'_> {
        self.packed_weights_with(false)
    }

    /// [`Mlp::packed_weights`], with `parallel` the layers and their panels
    /// packed as rayon tasks (the same packs). Only for a caller that is
    /// alone in using the network (training): a thread holding the
    /// rebuild's write lock may run other queued tasks while it waits.
    pub(super) fn packed_weights_with(&self, parallel: bool) -> Packs<'_> {
        self.packed.get(|packs| {
            packs.resize_with(self.layers.len(), PackedB::new);
            let pack = |(pack, layer): (&mut PackedB, &super::LayerShape)| {
                let w = &self.params[layer.w_range()];
                let wt = MatRef::transposed(w, layer.fan_in, layer.fan_out);
                if parallel {
                    pack.pack_par(wt);
                } else {
                    pack.pack(wt);
                }
            };
            if parallel && rayon::current_num_threads() > 1 {
                use rayon::prelude::*;
                packs.par_iter_mut().zip(&self.layers).for_each(pack);
            } else {
                packs.iter_mut().zip(&self.layers).for_each(pack);
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
        fill_input(&self.cfg, x, t, input);
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
        crate::nn::label::assert_labels(labels, self.cfg.n_classes);
        self.check_io(x.nrows(), &x, &out);
        self.forward_split(x, Times::Labelled(t, labels), out);
    }

    /// Add E[y_i] to the time-embedding columns of `rows` input rows.
    pub(super) fn add_labels(&self, input: &mut [f32], rows: usize, labels: &[u32]) {
        if self.cfg.n_classes == 0 {
            return;
        }
        let (d, e) = (self.cfg.data_dim, self.cfg.emb_dim);
        let table = &self.params[self.table_offset()..];
        let in0 = self.cfg.input_dim();
        crate::nn::label::add_rows(input, rows, in0, d, table, e, labels);
    }
}

/// Build `concat(x_i, emb(t_i), ff(x_i))` rows into `input`
/// (`[rows, input_dim]`).
pub(super) fn fill_input(cfg: &MlpConfig, x: ArrayView2<f32>, t: Times, input: &mut [f32]) {
    let (d, e, in0) = (cfg.data_dim, cfg.emb_dim, cfg.input_dim());
    let rows = x.nrows();
    for (dst, src) in input.chunks_exact_mut(in0).zip(x.rows()) {
        for (o, &s) in dst[..d].iter_mut().zip(src) {
            *o = s;
        }
        if let Some(ff) = &cfg.fourier {
            ff.features(src.iter().copied(), &mut dst[d + e..]);
        }
    }
    match t {
        Times::Rows(tv) => time_embedding_rows(tv.iter().map(|&v| v as f64), input, in0, d, e),
        Times::RowsF64(tv) | Times::Labelled(tv, _) => {
            time_embedding_rows(tv.iter().copied(), input, in0, d, e)
        }
        Times::Scalar(tt) if rows > 0 => time_embedding(tt, &mut input[d..d + e]),
        Times::Scalar(_) => {}
    }
    if let Times::Scalar(_) = t {
        if rows > 1 {
            let (first, others) = input.split_at_mut(in0);
            for dst in others.chunks_exact_mut(in0) {
                dst[d..d + e].copy_from_slice(&first[d..d + e]);
            }
        }
    }
}
