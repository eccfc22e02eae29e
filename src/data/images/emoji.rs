//! The Noto emoji sprite sheet (`emoji-datasource-google`, 16 px sheet):
//! 16×16 RGBA sprites on a grid of 18 px cells with a 1 px transparent
//! border, sprite (sx, sy) at pixel (sx·18 + 1, sy·18 + 1).

use std::path::Path;

use ndarray::Array2;

use super::{u8_to_unit, ImageSet};
use crate::error::{Error, Result};

/// Sprite side in pixels.
pub const SPRITE: usize = 16;
/// Cell pitch in pixels (sprite + 2 px border).
pub const CELL: usize = 18;

/// Load every non-empty sprite as an RGB image composited over white:
/// `c = (a·c_s + (255 − a)·255) / 255` per channel (`a` the sprite's alpha),
/// cells in row-major order (sy, then sx); cells whose alpha is all zero are
/// skipped. Output is `[n, 3·16·16]` in `[c, h, w]` order.
pub fn load_emoji_sheet(path: &Path) -> Result<ImageSet> {
    let img = super::decode_image(path)?.to_rgba8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < CELL || h < CELL {
        return Err(Error::format(
            path,
            format!("sheet is {w}x{h}, smaller than one {CELL}x{CELL} cell"),
        ));
    }
    let (nx, ny) = (w / CELL, h / CELL);
    let raw = img.as_raw();
    let mut pixels = Vec::new();
    let mut n = 0;
    for sy in 0..ny {
        for sx in 0..nx {
            let (x0, y0) = (sx * CELL + 1, sy * CELL + 1);
            let px = |x: usize, y: usize| &raw[((y0 + y) * w + x0 + x) * 4..][..4];
            if (0..SPRITE).all(|y| (0..SPRITE).all(|x| px(x, y)[3] == 0)) {
                continue;
            }
            for c in 0..3 {
                for y in 0..SPRITE {
                    for x in 0..SPRITE {
                        let p = px(x, y);
                        let a = p[3] as u32;
                        let v = (a * p[c] as u32 + (255 - a) * 255 + 127) / 255;
                        pixels.push(u8_to_unit(v as u8));
                    }
                }
            }
            n += 1;
        }
    }
    if n == 0 {
        return Err(Error::format(path, "sprite sheet has no non-empty cell"));
    }
    let pixels = Array2::from_shape_vec((n, 3 * SPRITE * SPRITE), pixels)
        .map_err(|e| Error::format(path, e.to_string()))?;
    Ok(ImageSet {
        channels: 3,
        height: SPRITE,
        width: SPRITE,
        pixels,
        labels: None,
    })
}
