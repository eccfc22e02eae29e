//! The shared rasteriser: a 2-D point set → an RGB image of its density (a
//! 2-D histogram on a fixed range, colour-mapped) or a plain scatter.

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// How points are turned into pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A 2-D histogram with `bins × bins` cells, smoothly (bilinearly)
    /// upsampled to the image size and colour-mapped.
    Density,
    /// Every point drawn as a small translucent dot.
    Scatter,
}

/// How bin counts are mapped to colour intensity before the colormap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// `ln(1 + count) / ln(1 + max)`: shows both the modes and the sparse tails.
    Log,
    /// `sqrt(count / max)`: closer to linear, tails fainter.
    Sqrt,
}

/// The colour ramp of [`Style::Density`]. [`Colormap::Ink`] draws on white
/// (empty space is white); [`Colormap::Viridis`] fills the whole square, empty
/// space being its darkest purple, as in most density figures that use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    /// Sequential light-to-dark blue (matplotlib "Blues"): dark ink on white.
    Ink,
    /// The perceptually uniform "viridis" ramp (purple → yellow).
    Viridis,
}

/// Options shared by every density renderer in [`crate::viz`].
#[derive(Debug, Clone, PartialEq)]
pub struct DensityOptions {
    /// Plotted range `[(x_min, x_max), (y_min, y_max)]`; points outside are
    /// not drawn. Default `[-4.5, 4.5]²`.
    pub range: [(f32, f32); 2],
    /// Histogram cells per axis for [`Style::Density`] (1..=4096). Default 96.
    pub bins: usize,
    /// Density (default) or plain scatter.
    pub style: Style,
    /// Count → intensity mapping. Default [`Scale::Log`].
    pub scale: Scale,
    /// Colour ramp. Default [`Colormap::Ink`].
    pub colormap: Colormap,
    /// Opacity of one dot in [`Style::Scatter`] (0, 1]. Default 0.3.
    pub point_alpha: f32,
    /// Standard deviation, in histogram cells, of a Gaussian blur applied to
    /// the counts before colour mapping (0 = raw histogram, at most 16).
    /// Default 0.8: isolated points become soft dots instead of squares.
    pub smoothing: f32,
}

impl Default for DensityOptions {
    fn default() -> Self {
        DensityOptions {
            range: [(-4.5, 4.5), (-4.5, 4.5)],
            bins: 96,
            style: Style::Density,
            scale: Scale::Log,
            colormap: Colormap::Ink,
            point_alpha: 0.3,
            smoothing: 0.8,
        }
    }
}

impl DensityOptions {
    /// Checks every field; called by all renderers before drawing.
    pub fn validate(&self) -> Result<()> {
        for (axis, &(lo, hi)) in ["x", "y"].iter().zip(&self.range) {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(Error::invalid(
                    format!("range ({axis})"),
                    format!("[{lo}, {hi}]"),
                    "finite bounds with min < max",
                ));
            }
        }
        if !(1..=4096).contains(&self.bins) {
            return Err(Error::invalid("bins", self.bins, "1..=4096"));
        }
        if !(self.point_alpha > 0.0 && self.point_alpha <= 1.0) {
            return Err(Error::invalid("point_alpha", self.point_alpha, "in (0, 1]"));
        }
        if !(0.0..=16.0).contains(&self.smoothing) {
            return Err(Error::invalid("smoothing", self.smoothing, "0..=16 cells"));
        }
        Ok(())
    }
}

/// Separable Gaussian blur of an `n × n` grid (zero padding), in place.
fn blur(grid: &mut [f32], n: usize, sigma: f32) {
    if sigma <= 0.0 || n < 2 {
        return;
    }
    let r = (3.0 * sigma).ceil() as usize;
    let kernel: Vec<f32> = (0..=2 * r)
        .map(|k| {
            let d = k as f32 - r as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let ksum: f32 = kernel.iter().sum();
    // 1-D convolution of element `i` of a line read through `at`.
    let conv = |i: usize, at: &dyn Fn(usize) -> f32| {
        let mut acc = 0.0;
        for (k, w) in kernel.iter().enumerate() {
            if let Some(o) = (i + k).checked_sub(r).filter(|&o| o < n) {
                acc += w * at(o);
            }
        }
        acc / ksum
    };
    let mut tmp = vec![0.0f32; n * n];
    for row in 0..n {
        for col in 0..n {
            tmp[row * n + col] = conv(col, &|o| grid[row * n + o]);
        }
    }
    for row in 0..n {
        for col in 0..n {
            grid[row * n + col] = conv(row, &|o| tmp[o * n + col]);
        }
    }
}

const BLUES: [[u8; 3]; 9] = [
    [0xf7, 0xfb, 0xff],
    [0xde, 0xeb, 0xf7],
    [0xc6, 0xdb, 0xef],
    [0x9e, 0xca, 0xe1],
    [0x6b, 0xae, 0xd6],
    [0x42, 0x92, 0xc6],
    [0x21, 0x71, 0xb5],
    [0x08, 0x51, 0x9c],
    [0x08, 0x30, 0x6b],
];

const VIRIDIS: [[u8; 3]; 9] = [
    [0x44, 0x01, 0x54],
    [0x47, 0x2d, 0x7b],
    [0x3b, 0x52, 0x8b],
    [0x2c, 0x72, 0x8e],
    [0x21, 0x91, 0x8c],
    [0x28, 0xae, 0x80],
    [0x5e, 0xc9, 0x62],
    [0xad, 0xdc, 0x30],
    [0xfd, 0xe7, 0x25],
];

impl Colormap {
    /// Colour for intensity `v` in [0, 1] (NaN counts as 0). For
    /// [`Colormap::Ink`], 0 is white and the first 5 % fades in from white,
    /// so the density has no hard edge where it drops to zero.
    pub fn color(self, v: f32) -> [u8; 3] {
        let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        let ramp = match self {
            Colormap::Ink => &BLUES,
            Colormap::Viridis => return lerp_ramp(&VIRIDIS, v),
        };
        if v == 0.0 {
            return [255, 255, 255];
        }
        const FADE: f32 = 0.05;
        if v < FADE {
            let c = ramp[0];
            let f = v / FADE;
            let mix = |a: u8| (255.0 + (a as f32 - 255.0) * f).round() as u8;
            [mix(c[0]), mix(c[1]), mix(c[2])]
        } else {
            lerp_ramp(ramp, (v - FADE) / (1.0 - FADE))
        }
    }

    /// The colour used for dots in [`Style::Scatter`].
    fn ink(self) -> [u8; 3] {
        match self {
            Colormap::Ink => BLUES[8],
            Colormap::Viridis => VIRIDIS[0],
        }
    }
}

fn lerp_ramp(ramp: &[[u8; 3]], t: f32) -> [u8; 3] {
    let x = t.clamp(0.0, 1.0) * (ramp.len() - 1) as f32;
    let i = (x.floor() as usize).min(ramp.len() - 2);
    let f = x - i as f32;
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let a = ramp[i][c] as f32;
        let b = ramp[i + 1][c] as f32;
        *o = (a + (b - a) * f).round() as u8;
    }
    out
}

/// Renders `points` (shape `(n, 2)`) into a `width × height` RGB buffer
/// (row-major, 3 bytes per pixel, y axis pointing up). Rows with a
/// non-finite coordinate and points outside `opts.range` are skipped; an empty
/// point set gives a blank image (white, or the colormap's zero colour).
///
/// Errors if `points` does not have 2 columns, the size is 0 or above
/// 16384, or `opts` is invalid.
pub fn render_density(
    points: ArrayView2<'_, f32>,
    width: u32,
    height: u32,
    opts: &DensityOptions,
) -> Result<Vec<u8>> {
    render_density_levels(points, width, height, opts, None)
}

/// [`render_density`] with the colour-mapped intensity rounded to `levels`
/// steps, so a density image uses at most `levels + 1` colours (GIF frames
/// then get an exact palette instead of a noisy quantised one).
pub(crate) fn render_density_levels(
    points: ArrayView2<'_, f32>,
    width: u32,
    height: u32,
    opts: &DensityOptions,
    levels: Option<u32>,
) -> Result<Vec<u8>> {
    opts.validate()?;
    if points.ncols() != 2 {
        return Err(Error::invalid(
            "points shape",
            format!("{:?}", points.shape()),
            "(n, 2)",
        ));
    }
    for (name, v) in [("width", width), ("height", height)] {
        if !(1..=16384).contains(&v) {
            return Err(Error::invalid(name, v, "1..=16384 pixels"));
        }
    }
    let (w, h) = (width as usize, height as usize);
    // Background: the colormap's zero for densities, white for scatters.
    let bg = match opts.style {
        Style::Density => opts.colormap.color(0.0),
        Style::Scatter => [255, 255, 255],
    };
    let mut buf: Vec<u8> = bg.iter().copied().cycle().take(w * h * 3).collect();
    let [(x0, x1), (y0, y1)] = opts.range;
    // Fractional position of each point in [0, 1)², y flipped (row 0 = top).
    let unit = points.rows().into_iter().filter_map(|r| {
        let (x, y) = (r[0], r[1]);
        if !(x.is_finite() && y.is_finite()) {
            return None;
        }
        let u = (x - x0) / (x1 - x0);
        let v = (y1 - y) / (y1 - y0);
        ((0.0..1.0).contains(&u) && (0.0..1.0).contains(&v)).then_some((u, v))
    });
    match opts.style {
        Style::Density => {
            let n = opts.bins;
            let mut counts = vec![0u32; n * n];
            for (u, v) in unit {
                let i = ((v * n as f32) as usize).min(n - 1);
                let j = ((u * n as f32) as usize).min(n - 1);
                counts[i * n + j] += 1;
            }
            if counts.iter().all(|&c| c == 0) {
                return Ok(buf);
            }
            let mut dens: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
            blur(&mut dens, n, opts.smoothing);
            let max = dens.iter().copied().fold(0.0f32, f32::max);
            let norm_log = (1.0 + max).ln();
            let intensity: Vec<f32> = dens
                .iter()
                .map(|&c| match opts.scale {
                    Scale::Log => (1.0 + c).ln() / norm_log,
                    Scale::Sqrt => (c / max).sqrt(),
                })
                .collect();
            // Bilinear sampling of the bin grid at each pixel centre.
            let coord = |p: usize, size: usize| {
                let s =
                    ((p as f32 + 0.5) / size as f32 * n as f32 - 0.5).clamp(0.0, (n - 1) as f32);
                let a = (s.floor() as usize).min(n.saturating_sub(2));
                let b = (a + 1).min(n - 1);
                (a, b, s - a as f32)
            };
            let cols: Vec<_> = (0..w).map(|px| coord(px, w)).collect();
            for py in 0..h {
                let (ra, rb, fy) = coord(py, h);
                for (px, &(ca, cb, fx)) in cols.iter().enumerate() {
                    let top = intensity[ra * n + ca] * (1.0 - fx) + intensity[ra * n + cb] * fx;
                    let bot = intensity[rb * n + ca] * (1.0 - fx) + intensity[rb * n + cb] * fx;
                    let mut val = top * (1.0 - fy) + bot * fy;
                    if let Some(l) = levels {
                        val = (val * l as f32).round() / l as f32;
                    }
                    let o = (py * w + px) * 3;
                    buf[o..o + 3].copy_from_slice(&opts.colormap.color(val));
                }
            }
        }
        Style::Scatter => {
            let ink = opts.colormap.ink();
            let a = opts.point_alpha;
            // A plus-shaped dot: centre at full alpha, arms at half.
            const DOT: [(isize, isize, f32); 5] = [
                (0, 0, 1.0),
                (1, 0, 0.5),
                (-1, 0, 0.5),
                (0, 1, 0.5),
                (0, -1, 0.5),
            ];
            for (u, v) in unit {
                let (cx, cy) = ((u * w as f32) as isize, (v * h as f32) as isize);
                for (dx, dy, k) in DOT {
                    let (x, y) = (cx + dx, cy + dy);
                    if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
                        continue;
                    }
                    let o = (y as usize * w + x as usize) * 3;
                    for c in 0..3 {
                        let old = buf[o + c] as f32;
                        buf[o + c] = (old + (ink[c] as f32 - old) * a * k).round() as u8;
                    }
                }
            }
        }
    }
    Ok(buf)
}
