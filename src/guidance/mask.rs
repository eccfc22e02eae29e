//! Which coordinates of a point are known (observed) and which are to be
//! generated, for inpainting and imputation.

use std::path::Path;

use rand::RngExt;

use crate::error::{Error, Result};
use crate::rng;

/// A known/unknown split of the d coordinates of a point. For images the
/// coordinates are channel-major (c, h, w) and a spatial mask covers every
/// channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    known: Vec<bool>,
}

/// The mask specs [`Mask::parse`] accepts (each names the *hidden* part).
pub const MASK_SPECS: &str = "center, bottom, left, random:P (hide a fraction P in (0, 1) of pixels), a .png of the image's size (white = hidden), or colorize (colour images: keep the grey, generate the colour)";

impl Mask {
    /// A mask from one flag per coordinate (true = known). Errors unless at
    /// least one coordinate is unknown.
    pub fn from_known(known: Vec<bool>) -> Result<Mask> {
        if known.iter().all(|&k| k) {
            return Err(Error::invalid(
                "mask",
                "every coordinate known",
                "at least one coordinate to generate",
            ));
        }
        Ok(Mask { known })
    }

    /// The mask of an image of `channels` × `height` × `width` from a spec
    /// naming the hidden part: `center` (the central half-size square),
    /// `bottom` / `left` (that half), `random:P` (each pixel hidden with
    /// probability P, drawn from `seed`), or a PNG file of exactly
    /// height × width pixels whose light pixels (grey ≥ 128) are hidden.
    pub fn parse(
        spec: &str,
        channels: usize,
        height: usize,
        width: usize,
        seed: u64,
    ) -> Result<Mask> {
        let (h, w) = (height, width);
        let spatial: Vec<bool> =
            match spec {
                // `true` = hidden in this closure's output, inverted below.
                "center" => (0..h * w)
                    .map(|i| {
                        let (r, c) = (i / w, i % w);
                        (h / 4..h - h / 4).contains(&r) && (w / 4..w - w / 4).contains(&c)
                    })
                    .collect(),
                "bottom" => (0..h * w).map(|i| i / w >= h / 2).collect(),
                "left" => (0..h * w).map(|i| i % w < w / 2).collect(),
                s if s.starts_with("random:") => {
                    let p: f64 = s["random:".len()..].parse().map_err(|_| bad_spec(spec))?;
                    if !(p > 0.0 && p < 1.0) {
                        return Err(Error::invalid(
                            "mask random fraction",
                            p,
                            "a number in (0, 1)",
                        ));
                    }
                    let mut r = rng::stream(seed, rng::domain::MASK, 0);
                    (0..h * w).map(|_| r.random::<f64>() < p).collect()
                }
                s if s.to_ascii_lowercase().ends_with(".png") => png_hidden(Path::new(s), h, w)?,
                super::colorize::COLORIZE => return Err(Error::invalid(
                    "mask",
                    spec,
                    "a pixel mask: colorize hides no pixels but the colour of each, a mask in the \
                     decoupled grey basis (guidance::colorize::grey_mask)",
                )),
                _ => return Err(bad_spec(spec)),
            };
        let known = (0..channels)
            .flat_map(|_| spatial.iter().map(|&hidden| !hidden))
            .collect();
        Mask::from_known(known)
            .map_err(|_| Error::invalid("mask", spec, "a mask that hides at least one pixel"))
    }

    /// Number of coordinates d.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Always false (a mask has at least one unknown coordinate).
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Whether coordinate `j` is known.
    pub fn is_known(&self, j: usize) -> bool {
        self.known[j]
    }

    /// One flag per coordinate, true = known.
    pub fn known(&self) -> &[bool] {
        &self.known
    }

    /// Indices of the known coordinates.
    pub fn known_indices(&self) -> Vec<usize> {
        (0..self.len()).filter(|&j| self.known[j]).collect()
    }

    /// Indices of the unknown coordinates.
    pub fn unknown_indices(&self) -> Vec<usize> {
        (0..self.len()).filter(|&j| !self.known[j]).collect()
    }

    /// Error unless the mask has `d` coordinates.
    pub fn check_dim(&self, d: usize) -> Result<()> {
        if self.len() == d {
            Ok(())
        } else {
            Err(Error::invalid(
                "mask",
                format!("{} coordinates", self.len()),
                format!("one per coordinate of the data ({d})"),
            ))
        }
    }

    /// Error unless the mask has `d` coordinates and `x0`, the values it
    /// completes, is `d` finite values.
    pub fn check_known(&self, x0: &[f32], d: usize) -> Result<()> {
        self.check_dim(d)?;
        if x0.len() != d || x0.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "known values",
                format!("{} values", x0.len()),
                format!("{d} finite values"),
            ));
        }
        Ok(())
    }
}

fn bad_spec(spec: &str) -> Error {
    Error::invalid("mask", spec, MASK_SPECS)
}

/// Hidden pixels (grey ≥ 128) of a PNG that must be `h` × `w`.
fn png_hidden(path: &Path, h: usize, w: usize) -> Result<Vec<bool>> {
    let img = crate::data::images::decode_image(path)?.to_luma8();
    if (img.height() as usize, img.width() as usize) != (h, w) {
        return Err(Error::invalid(
            format!("mask {}", path.display()),
            format!("{}x{} pixels", img.width(), img.height()),
            format!("the data's image size {w}x{h}"),
        ));
    }
    Ok(img.pixels().map(|p| p.0[0] >= 128).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_masks_hide_the_named_part() {
        let m = Mask::parse("bottom", 1, 4, 4, 0).unwrap();
        assert_eq!(m.known_indices(), (0..8).collect::<Vec<_>>());
        let m = Mask::parse("left", 2, 2, 2, 0).unwrap();
        assert_eq!(
            m.known(),
            &[false, true, false, true, false, true, false, true]
        );
        let m = Mask::parse("center", 1, 8, 8, 0).unwrap();
        assert_eq!(m.unknown_indices().len(), 16);
        assert!(!m.is_known(27) && m.is_known(0));
        let m = Mask::parse("random:0.5", 1, 28, 28, 3).unwrap();
        let hidden = m.unknown_indices().len() as f64 / 784.0;
        // Binomial(784, 0.5): SE 0.018; 4 SE.
        assert!((hidden - 0.5).abs() < 0.072, "{hidden}");
    }

    #[test]
    fn bad_specs_are_errors_naming_the_value() {
        for s in ["top", "random:1.5", "random:x", "random:0"] {
            let e = Mask::parse(s, 1, 8, 8, 0).unwrap_err().to_string();
            assert!(e.contains("mask"), "{s}: {e}");
        }
        let e = Mask::parse("missing.png", 1, 8, 8, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.png"), "{e}");
    }
}
