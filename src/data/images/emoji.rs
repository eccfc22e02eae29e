//! The Noto emoji sprite sheet (`emoji-datasource-google`, 16 px sheet):
//! 16×16 RGBA sprites on a grid of 18 px cells with a 1 px transparent
//! border, sprite (sx, sy) at pixel (sx·18 + 1, sy·18 + 1).
//!
//! Labels ([`load_emoji_sheet_labelled`]): the sprite's Unicode category
//! from the data source's `emoji.json.gz`, whose entries give `category`,
//! `sheet_x`, `sheet_y` and, under `skin_variations`, the cells of the
//! skin-tone variants (labelled with their base emoji's category). Label k
//! is the k-th of [`CATEGORIES`] (Unicode's group order).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use ndarray::Array2;

use super::{u8_to_unit, ImageSet};
use crate::error::{Error, Result};

/// Sprite side in pixels.
pub const SPRITE: usize = 16;
/// Cell pitch in pixels (sprite + 2 px border).
pub const CELL: usize = 18;

/// The emoji categories, in Unicode's group order: label k is `CATEGORIES[k]`.
pub const CATEGORIES: [&str; 10] = [
    "Smileys & Emotion",
    "People & Body",
    "Component",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
];

/// Largest `emoji.json.gz` read, compressed and decompressed.
const MAX_JSON_GZ_BYTES: u64 = 16 << 20;
const MAX_JSON_BYTES: u64 = 64 << 20;

/// The category label ([`CATEGORIES`] index) of every sheet cell
/// `(sheet_x, sheet_y)` that `emoji.json.gz` lists, skin-tone variants
/// included.
pub fn emoji_categories(json_gz: &Path) -> Result<HashMap<(usize, usize), u8>> {
    let gz = crate::fsutil::read_regular(json_gz, MAX_JSON_GZ_BYTES, "a gzip JSON file")?;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| Error::format(json_gz, format!("not gzip: {e}")))?;
    if text.len() as u64 > MAX_JSON_BYTES {
        return Err(Error::format(
            json_gz,
            format!("decompresses to more than {MAX_JSON_BYTES} bytes"),
        ));
    }
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&text)
        .map_err(|e| Error::format(json_gz, format!("not a JSON list of emoji: {e}")))?;
    let bad = |i: usize, what: &str| Error::format(json_gz, format!("entry {i}: {what}"));
    let cell = |i: usize, v: &serde_json::Value| -> Result<(usize, usize)> {
        let coord = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .map(|c| c as usize)
                .ok_or_else(|| bad(i, &format!("no integer '{k}'")))
        };
        Ok((coord("sheet_x")?, coord("sheet_y")?))
    };
    let mut map = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let cat = e
            .get("category")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad(i, "no 'category' string"))?;
        let label = CATEGORIES.iter().position(|&c| c == cat).ok_or_else(|| {
            bad(
                i,
                &format!("unknown category '{cat}' (expected one of {CATEGORIES:?})"),
            )
        })? as u8;
        map.insert(cell(i, e)?, label);
        if let Some(vars) = e
            .get("skin_variations")
            .and_then(serde_json::Value::as_object)
        {
            for v in vars.values() {
                map.insert(cell(i, v)?, label);
            }
        }
    }
    Ok(map)
}

/// [`load_emoji_sheet`] with each sprite labelled by its category
/// ([`emoji_categories`] of `json_gz`); a non-empty cell that the JSON does
/// not list is an error.
pub fn load_emoji_sheet_labelled(sheet: &Path, json_gz: &Path) -> Result<ImageSet> {
    let cats = emoji_categories(json_gz)?;
    let (mut set, cells) = load_cells(sheet)?;
    let labels = cells
        .iter()
        .map(|c| {
            cats.get(c).copied().ok_or_else(|| {
                Error::format(
                    json_gz,
                    format!(
                        "lists no emoji for the non-empty sheet cell (sheet_x {}, sheet_y {}) of {}",
                        c.0,
                        c.1,
                        sheet.display()
                    ),
                )
            })
        })
        .collect::<Result<Vec<u8>>>()?;
    set.labels = Some(labels);
    Ok(set)
}

/// Load every non-empty sprite as an RGB image composited over white:
/// `c = (a·c_s + (255 − a)·255) / 255` per channel (`a` the sprite's alpha),
/// cells in row-major order (sy, then sx); cells whose alpha is all zero are
/// skipped. Output is `[n, 3·16·16]` in `[c, h, w]` order.
pub fn load_emoji_sheet(path: &Path) -> Result<ImageSet> {
    load_cells(path).map(|(set, _)| set)
}

/// [`load_emoji_sheet`] and the `(sx, sy)` cell of each image.
fn load_cells(path: &Path) -> Result<(ImageSet, Vec<(usize, usize)>)> {
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
    let mut cells = Vec::new();
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
            cells.push((sx, sy));
        }
    }
    let n = cells.len();
    if n == 0 {
        return Err(Error::format(path, "sprite sheet has no non-empty cell"));
    }
    let pixels = Array2::from_shape_vec((n, 3 * SPRITE * SPRITE), pixels)
        .map_err(|e| Error::format(path, e.to_string()))?;
    let set = ImageSet {
        channels: 3,
        height: SPRITE,
        width: SPRITE,
        pixels,
        labels: None,
    };
    Ok((set, cells))
}
