//! Colorization through the decoupled grey channel (score_sde's
//! `controllable_generation.py`): an orthogonal 3×3 change of colour basis
//! per pixel whose first coordinate is the grey level,
//!
//! ```text
//!   y = G x  per pixel,   G = [ (1, 1, 1)/√3 ; (−2, 1, 1)/√6 ; (0, 1, −1)/√2 ],   G Gᵀ = I
//!   y₀ = (r + g + b)/√3  (grey, known),   y₁, y₂  (colour, generated)
//! ```
//!
//! Because G is orthogonal and the forward process is isotropic
//! (x_t = α x₀ + σ ε, and G ε ~ N(0, I)), the decoupled data diffuse by the
//! same SDE, and the score of y is the rotated score of x:
//!
//! ```text
//!   p_Y(y) = p_X(Gᵀ y)   ⇒   s_Y(y, t) = G s_X(Gᵀ y, t)
//! ```
//!
//! ([`Decoupled`]). Colorization is then inpainting in the y basis with the
//! grey coordinate of every pixel known ([`grey_mask`]): replacement
//! ([`super::Replacement`]) or RePaint ([`super::repaint`]) run on `y`
//! unchanged, and [`couple`] maps the completions back. Rows are NCHW
//! (`[3, h, w]`), so the decoupled rows hold the grey plane first.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::Mask;
use crate::error::{Error, Result};
use crate::score::Score;

/// The mask spec of colorization in `scoresde inpaint --mask`.
pub const COLORIZE: &str = "colorize";

const S3: f64 = 0.577_350_269_189_625_8; // 1/√3
const S6: f64 = 0.408_248_290_463_863; // 1/√6
const S2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// G, rows = the new basis: y_j = Σ_i G[j][i] x_i.
pub const GREY_BASIS: [[f64; 3]; 3] = [[S3, S3, S3], [-2.0 * S6, S6, S6], [0.0, S2, -S2]];

fn check_rows(x: ArrayView2<f32>, hw: usize) -> usize {
    assert_eq!(
        x.ncols(),
        3 * hw,
        "colour rows have 3 planes of {hw} pixels"
    );
    hw
}

/// `out[:, j-plane] = Σ_i m[j][i] x[:, i-plane]` per pixel, in f64.
fn apply(m: &[[f64; 3]; 3], x: ArrayView2<f32>, hw: usize, mut out: ArrayViewMut2<f32>) {
    check_rows(x, hw);
    for (xr, mut or) in x.outer_iter().zip(out.outer_iter_mut()) {
        for p in 0..hw {
            let v = [xr[p] as f64, xr[hw + p] as f64, xr[2 * hw + p] as f64];
            for (j, row) in m.iter().enumerate() {
                or[j * hw + p] = (row[0] * v[0] + row[1] * v[1] + row[2] * v[2]) as f32;
            }
        }
    }
}

fn transpose(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut t = [[0.0; 3]; 3];
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j][i] = v;
        }
    }
    t
}

/// y = G x for every row of colour images of `hw` pixels.
pub fn decouple(x: ArrayView2<f32>, hw: usize) -> Array2<f32> {
    let mut y = Array2::zeros(x.raw_dim());
    apply(&GREY_BASIS, x, hw, y.view_mut());
    y
}

/// x = Gᵀ y, the inverse of [`decouple`].
pub fn couple(y: ArrayView2<f32>, hw: usize) -> Array2<f32> {
    let mut x = Array2::zeros(y.raw_dim());
    apply(&transpose(&GREY_BASIS), y, hw, x.view_mut());
    x
}

/// The mask of colorization in the decoupled basis: the grey plane known,
/// the two colour planes generated. Errors unless `channels` is 3.
pub fn grey_mask(channels: usize, height: usize, width: usize) -> Result<Mask> {
    if channels != 3 {
        return Err(Error::invalid(
            "mask",
            COLORIZE,
            format!("colour (3-channel) images to colorize; these have {channels} channel(s)"),
        ));
    }
    let hw = height * width;
    Mask::from_known((0..3 * hw).map(|j| j < hw).collect())
}

/// The score of the decoupled images y = G x: s_Y(y, t) = G s_X(Gᵀ y, t),
/// one evaluation of the wrapped score per call.
pub struct Decoupled<'a> {
    inner: &'a dyn Score,
    hw: usize,
}

impl<'a> Decoupled<'a> {
    /// Wrap the score of colour images of `hw` pixels (dimension 3·hw).
    pub fn new(inner: &'a dyn Score, hw: usize) -> Result<Self> {
        if inner.dim() != 3 * hw || hw == 0 {
            return Err(Error::invalid(
                "decoupled score",
                format!("dimension {}", inner.dim()),
                format!("3 planes of {hw} pixels ({})", 3 * hw),
            ));
        }
        Ok(Decoupled { inner, hw })
    }
}

impl Score for Decoupled<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn score(&self, y: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        let x = couple(y, self.hw);
        let mut s = Array2::<f32>::zeros(x.raw_dim());
        self.inner.score(x.view(), t, s.view_mut());
        apply(&GREY_BASIS, s.view(), self.hw, out.view_mut());
    }

    fn evals(&self, t: f64) -> usize {
        self.inner.evals(t)
    }

    fn describe(&self) -> String {
        format!("{} in the decoupled grey basis", self.inner.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_is_orthogonal_with_grey_first() {
        for (i, a) in GREY_BASIS.iter().enumerate() {
            for (j, b) in GREY_BASIS.iter().enumerate() {
                let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-15, "rows {i}, {j}: {dot}");
            }
        }
        let x = ndarray::arr2(&[[0.2f32, -0.4, 0.9, 0.1, 1.0, -1.0]]);
        let y = decouple(x.view(), 2);
        let grey = (0.2 + 0.9 + 1.0) / 3f64.sqrt();
        assert!((y[[0, 0]] as f64 - grey).abs() < 1e-6);
        let back = couple(y.view(), 2);
        for (a, b) in back.iter().zip(x.iter()) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!(grey_mask(1, 4, 4).is_err());
        let m = grey_mask(3, 2, 2).unwrap();
        assert_eq!(m.known_indices(), vec![0, 1, 2, 3]);
    }
}
