//! Class-label embedding of the class-conditional networks.
//!
//! A learned table E of `n_classes + 1` rows of width `emb_dim` (PyTorch
//! `nn.Embedding`, tensor `label_emb.weight [n_classes + 1, emb_dim]`); row
//! `n_classes` is ∅, "no label", which classifier-free guidance trains by
//! label dropout and asks for the unconditional score. The row of a point's
//! label is added to its sinusoidal time embedding:
//!
//! ```text
//!   e(t, y) = emb(t) + E[y]            y ∈ {0, …, n_classes − 1, ∅ = n_classes}
//!   ∂L/∂E[c] = Σ_{i : y_i = c} ∂L/∂e_i
//! ```
//!
//! In the MLP e enters the first linear layer, z₀ = W₀·[x; e] + b₀, so
//! ∂L/∂e_i = (∂L/∂z₀,i)·W₀[:, d..d+E] ([`mlp_table_grad`]); in the U-Net
//! graph E[y] is a node added to the time node ([`table_forward`],
//! [`table_backward`]). A network with `n_classes = 0` has no table and is
//! the unconditional network, parameter for parameter.
//!
//! Labels are `u32`; a caller that gives none gets ∅ for every row.

use crate::error::{Error, Result};

/// Name of the table tensor.
pub const TENSOR: &str = "label_emb.weight";

/// Largest class count a conditional network accepts.
pub const MAX_CLASSES: usize = 4096;

/// The ∅ ("unconditional") label of a network with `n_classes` classes.
pub fn null_label(n_classes: usize) -> u32 {
    n_classes as u32
}

/// Number of table values, `(n_classes + 1) · dim` (0 when unconditional).
pub fn table_len(n_classes: usize, dim: usize) -> usize {
    if n_classes == 0 {
        0
    } else {
        (n_classes + 1) * dim
    }
}

/// Check a config's class count.
pub fn check_classes(n_classes: usize) -> Result<()> {
    if n_classes > MAX_CLASSES {
        return Err(Error::invalid(
            "n_classes",
            n_classes,
            format!("0 (unconditional) ..= {MAX_CLASSES}"),
        ));
    }
    Ok(())
}

/// Check labels for a network of `n_classes` classes: each in
/// `0..=n_classes` (the last = ∅). Panics otherwise (a programming
/// error: the public entry points check classes before any network call).
pub fn assert_labels(labels: &[u32], n_classes: usize) {
    if let Some(&bad) = labels.iter().find(|&&y| y as usize > n_classes) {
        panic!("label {bad} out of range 0..={n_classes} (the last is the null label)");
    }
}

/// `out[i·stride + col ..][..dim] += E[labels[i]]` for every row i
/// (`labels` empty: ∅ for every row). `rows` rows of `out`.
pub fn add_rows(
    out: &mut [f32],
    rows: usize,
    stride: usize,
    col: usize,
    table: &[f32],
    dim: usize,
    labels: &[u32],
) {
    let null = table.len() / dim - 1;
    for i in 0..rows {
        let y = labels.get(i).map_or(null, |&y| y as usize);
        let e = &table[y * dim..(y + 1) * dim];
        for (o, &v) in out[i * stride + col..][..dim].iter_mut().zip(e) {
            *o += v;
        }
    }
}

/// Graph op forward: `y[i] = E[labels[i]]` (`[images, dim]`).
pub fn table_forward(y: &mut [f32], table: &[f32], dim: usize, labels: &[u32]) {
    y.fill(0.0);
    let rows = y.len() / dim;
    add_rows(y, rows, dim, 0, table, dim, labels);
}

/// Graph op backward: `d_table[labels[i]] += gy[i]`, rows in order (so the
/// sums do not depend on the thread count).
pub fn table_backward(gy: &[f32], d_table: &mut [f32], dim: usize, labels: &[u32]) {
    let null = d_table.len() / dim - 1;
    for (i, g) in gy.chunks_exact(dim).enumerate() {
        let y = labels.get(i).map_or(null, |&y| y as usize);
        for (d, &v) in d_table[y * dim..(y + 1) * dim].iter_mut().zip(g) {
            *d += v;
        }
    }
}

/// The MLP's table gradient: given g = ∂L/∂z₀ (`[rows, fan_out]`) and the
/// first layer's weight W₀ (`[fan_out, fan_in]`, the embedding in columns
/// `col..col + dim`), OVERWRITE `d_table` with
/// ∂L/∂E[c] = Σ_{i: y_i = c} g_i·W₀[:, col..col + dim]
/// computed as (Σ_{i: y_i = c} g_i)·W₀[:, col..]: the per-class row sums
/// first (in f64, rows in order), then one small product.
#[allow(clippy::too_many_arguments)]
pub fn mlp_table_grad(
    g: &[f32],
    rows: usize,
    w0: &[f32],
    fan_out: usize,
    fan_in: usize,
    col: usize,
    dim: usize,
    labels: &[u32],
    d_table: &mut [f32],
) {
    let classes = d_table.len() / dim;
    let mut sums = vec![0.0f64; classes * fan_out];
    for i in 0..rows {
        let y = labels.get(i).map_or(classes - 1, |&y| y as usize);
        let dst = &mut sums[y * fan_out..(y + 1) * fan_out];
        for (s, &v) in dst.iter_mut().zip(&g[i * fan_out..(i + 1) * fan_out]) {
            *s += v as f64;
        }
    }
    for c in 0..classes {
        let s = &sums[c * fan_out..(c + 1) * fan_out];
        for k in 0..dim {
            let mut acc = 0.0f64;
            for (j, &sj) in s.iter().enumerate() {
                acc += sj * w0[j * fan_in + col + k] as f64;
            }
            d_table[c * dim + k] = acc as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_backward_is_the_adjoint_of_table_forward() {
        // <table_forward(E), G> = <E, table_backward(G)> for any E, G.
        let (dim, labels) = (3, [2u32, 0, 2, 1]);
        let table: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let gy: Vec<f32> = (0..12).map(|i| (i as f32 * 0.71).cos()).collect();
        let mut y = vec![0.0; 12];
        table_forward(&mut y, &table, dim, &labels);
        let lhs: f64 = y.iter().zip(&gy).map(|(&a, &b)| a as f64 * b as f64).sum();
        let mut d = vec![0.0; 12];
        table_backward(&gy, &mut d, dim, &labels);
        let rhs: f64 = table
            .iter()
            .zip(&d)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        assert!((lhs - rhs).abs() < 1e-5, "{lhs} vs {rhs}");
        // Row 3 (∅) is used by no label: no gradient.
        assert!(d[9..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn no_labels_means_the_null_row() {
        let table = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut y = vec![0.0; 4];
        table_forward(&mut y, &table, 2, &[]);
        assert_eq!(y, [5.0, 6.0, 5.0, 6.0]);
    }
}
