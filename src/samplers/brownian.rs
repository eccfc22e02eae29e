//! Per-sample Brownian motion on [0, T], for noise that does not change with
//! the step count (`noise=brownian`).
//!
//! Sample i of a run with seed `seed` owns one d-dimensional Brownian motion
//! W_i, built by Lévy's midpoint construction on the dyadic points
//! u = k / 2^D of [0, T] (D = [`DEPTH`]):
//!
//! ```text
//!   W(0) = 0,   W(T) = sqrt(T) Z_root
//!   W(m) = (W(a) + W(b)) / 2 + sqrt((b − a) / 4) Z_node,   m = (a + b)/2
//! ```
//!
//! where each node's Z is drawn from its own stream, keyed by (seed, sample,
//! node). W(t) is evaluated by descending from the root to the dyadic point
//! nearest t (a virtual Brownian tree: nothing is stored but the last point
//! asked for), so it depends only on (seed, sample index, t) — not on the batch,
//! the thread or which other times were asked for. A step from t to s gets
//! z = (W(t) − W(s)) / sqrt(t − s) over the rounded times: exactly N(0, I),
//! independent over disjoint steps, and the steps of an N-step grid sum to
//! those of any coarser grid whose times they contain. Cost: D draws of d
//! normals per new time.

use rand::SeedableRng;

use crate::rng::{self, splitmix64, StreamRng};
use ndarray::Array2;

/// Depth of the dyadic grid: times are rounded to T / 2^DEPTH (≈ 2.3e-10 T).
pub const DEPTH: u32 = 32;

/// Stream domain of the Brownian nodes.
const DOMAIN: u64 = 0x4252_4f57;

/// The Brownian motions of rows `start..start + rows` of a run.
pub(super) struct BrownianTree {
    seed: u64,
    start: usize,
    d: usize,
    t_max: f64,
    /// Per row: the last dyadic index evaluated and W there.
    last: Vec<Option<(u64, Vec<f64>)>>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    z: Vec<f32>,
    /// W at the two ends of the step being drawn (one row at a time).
    wt: Vec<f64>,
    ws: Vec<f64>,
}

impl BrownianTree {
    pub(super) fn new(seed: u64, start: usize, rows: usize, d: usize, t_max: f64) -> Self {
        BrownianTree {
            seed,
            start,
            d,
            t_max,
            last: vec![None; rows],
            lo: vec![0.0; d],
            hi: vec![0.0; d],
            z: vec![0.0; d],
            wt: vec![0.0; d],
            ws: vec![0.0; d],
        }
    }

    fn index(&self, t: f64) -> u64 {
        let u = (t / self.t_max).clamp(0.0, 1.0);
        (u * (1u64 << DEPTH) as f64).round() as u64
    }

    /// Fill `z` (row r for sample start + r) with (W(t) − W(s)) / sqrt(|t − s|).
    /// Returns false (and leaves `z`) if t and s round to the same point.
    pub(super) fn increment(&mut self, t: f64, s: f64, z: &mut Array2<f32>) -> bool {
        let (kt, ks) = (self.index(t), self.index(s));
        if kt == ks {
            return false;
        }
        let dt = (kt.abs_diff(ks)) as f64 / (1u64 << DEPTH) as f64 * self.t_max;
        let inv = 1.0 / dt.sqrt();
        let sign = if kt > ks { 1.0 } else { -1.0 };
        let (mut wt, mut ws) = (std::mem::take(&mut self.wt), std::mem::take(&mut self.ws));
        for r in 0..z.nrows() {
            self.value(r, kt, &mut wt);
            self.value(r, ks, &mut ws);
            for (j, o) in z.row_mut(r).iter_mut().enumerate() {
                *o = (sign * (wt[j] - ws[j]) * inv) as f32;
            }
        }
        (self.wt, self.ws) = (wt, ws);
        true
    }

    /// W of row r at dyadic index k into `out`.
    fn value(&mut self, r: usize, k: u64, out: &mut [f64]) {
        if let Some((kl, w)) = &self.last[r] {
            if *kl == k {
                out.copy_from_slice(w);
                return;
            }
        }
        let sample = (self.start + r) as u64;
        let key = splitmix64(splitmix64(self.seed ^ DOMAIN) ^ sample);
        let node_rng =
            |node: u64| -> StreamRng { StreamRng::seed_from_u64(splitmix64(key ^ node)) };
        let full = 1u64 << DEPTH;
        // Node ids: root 1 (for W(T)), then heap order 2, 3, … of the
        // dyadic intervals, offset so the root's id is distinct.
        self.lo.iter_mut().for_each(|v| *v = 0.0);
        rng::fill_normal(&mut node_rng(1), &mut self.z);
        let root = self.t_max.sqrt();
        for (h, &zv) in self.hi.iter_mut().zip(&self.z) {
            *h = root * zv as f64;
        }
        let (mut a, mut b, mut heap) = (0u64, full, 1u64);
        loop {
            if k == a {
                out.copy_from_slice(&self.lo);
                break;
            }
            if k == b {
                out.copy_from_slice(&self.hi);
                break;
            }
            let m = (a + b) / 2;
            rng::fill_normal(&mut node_rng(2 * heap), &mut self.z);
            let sd = ((b - a) as f64 / full as f64 * self.t_max / 4.0).sqrt();
            let left = k < m;
            for j in 0..self.d {
                let mid = 0.5 * (self.lo[j] + self.hi[j]) + sd * self.z[j] as f64;
                if left {
                    self.hi[j] = mid;
                } else {
                    self.lo[j] = mid;
                }
            }
            if left {
                b = m;
                heap *= 2;
            } else {
                a = m;
                heap = 2 * heap + 1;
            }
        }
        match &mut self.last[r] {
            Some((kl, w)) => {
                *kl = k;
                w.copy_from_slice(out);
            }
            slot => *slot = Some((k, out.to_vec())),
        }
    }
}
