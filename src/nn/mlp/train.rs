//! Training of the MLP: the forward pass that keeps its activations in a
//! [`TrainCache`] and the backward pass that reads them.

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

use super::forward::fill_input;
use super::{Mlp, MlpConfig, Times};
use crate::backend::gemm::{gemm_packed, MatRef, PackedB};
use crate::nn::layers::{bias_add, bias_silu, linear_backward};

impl Mlp {
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
        par_fill_input(&self.cfg, x, t, &mut cache.input);
        cache.labels.clear();
        if self.cfg.n_classes > 0 {
            assert!(
                labels.is_empty() || labels.len() == rows,
                "one label per row"
            );
            cache.labels.extend_from_slice(labels);
            self.add_labels(&mut cache.input, rows, labels);
        }
        let packs = self.packed_weights_with(true);
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers[..last].iter().enumerate() {
            let (done, todo) = cache.act.split_at_mut(l);
            let a_in: &[f32] = if l == 0 { &cache.input } else { &done[l - 1] };
            let z = &mut todo[0];
            let b = &self.params[layer.b_range()];
            par_linear(a_in, rows, &packs[l], z, Some(&mut cache.dsilu[l]), b);
        }
        let layer = &self.layers[last];
        let a_in: &[f32] = if last == 0 {
            &cache.input
        } else {
            &cache.act[last - 1]
        };
        let b = &self.params[layer.b_range()];
        par_linear(a_in, rows, &packs[last], &mut cache.out, None, b);
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
            crate::nn::label::mlp_table_grad(
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
}

/// Rows per rayon task in the training-pass elementwise kernels.
const PAR_ROWS: usize = 64;

/// Multiply-adds of a layer below which [`par_linear`] stays on one thread.
const PAR_MIN_MACS: usize = 1 << 17;

/// One layer of the training forward on a `[rows, fan_in]` batch `a`:
/// `z = a·Wᵀ` (`pack` holds `Wᵀ`), then with `dsilu` the fused bias +
/// SiLU ([`bias_silu`], keeping SiLU'), without it the bias alone. The
/// rows go in one contiguous block per rayon thread, each block doing its
/// product and then its bias pass while the block is in cache: one
/// parallel region per layer. Every row is computed as alone (the GEMM's
/// rows are independent), so the bits do not depend on the thread count.
fn par_linear(
    a: &[f32],
    rows: usize,
    pack: &PackedB,
    z: &mut [f32],
    dsilu: Option<&mut [f32]>,
    b: &[f32],
) {
    let (fan_in, fan_out) = (pack.rows(), pack.cols());
    let block = |start: usize, zc: &mut [f32], dc: Option<&mut [f32]>| {
        let len = zc.len() / fan_out.max(1);
        let a = MatRef::row_major(&a[start * fan_in..], len, fan_in);
        gemm_packed(a, pack, zc, false, false);
        match dc {
            Some(dc) => bias_silu(zc, b, Some(dc)),
            None => bias_add(zc, b),
        }
    };
    let tasks = rayon::current_num_threads()
        .min(rows / PAR_ROWS)
        .min(rows * fan_in * fan_out / PAR_MIN_MACS);
    let z = &mut z[..rows * fan_out];
    if tasks <= 1 || fan_out == 0 {
        block(0, z, dsilu.map(|d| &mut d[..rows * fan_out]));
        return;
    }
    let per = rows.div_ceil(tasks).next_multiple_of(8) * fan_out;
    match dsilu {
        Some(d) => z
            .par_chunks_mut(per)
            .zip(d[..rows * fan_out].par_chunks_mut(per))
            .enumerate()
            .for_each(|(i, (zc, dc))| block(i * per / fan_out, zc, Some(dc))),
        None => z
            .par_chunks_mut(per)
            .enumerate()
            .for_each(|(i, zc)| block(i * per / fan_out, zc, None)),
    }
}

/// [`fill_input`] with per-row times, row blocks split across rayon threads
/// (each row is built independently, so bit-identical for any thread count).
fn par_fill_input(cfg: &MlpConfig, x: ArrayView2<f32>, t: ArrayView1<f32>, input: &mut [f32]) {
    let rows = x.nrows();
    let in0 = cfg.input_dim();
    if rayon::current_num_threads() == 1 || rows <= PAR_ROWS {
        fill_input(cfg, x, Times::Rows(t), input);
        return;
    }
    input
        .par_chunks_mut(PAR_ROWS * in0)
        .enumerate()
        .for_each(|(c, dst)| {
            let start = c * PAR_ROWS;
            let end = start + dst.len() / in0;
            fill_input(
                cfg,
                x.slice(ndarray::s![start..end, ..]),
                Times::Rows(t.slice(ndarray::s![start..end])),
                dst,
            );
        });
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
