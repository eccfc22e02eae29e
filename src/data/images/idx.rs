//! IDX files (MNIST, Fashion-MNIST): a big-endian header `00 00 08 NDIM`
//! (type 0x08 = unsigned byte), NDIM big-endian u32 sizes, then the values.
//! Images are `[N, rows, cols]`, labels `[N]`.
//!
//! Files may be gzipped (detected by content, not by name). Both naming
//! styles are found by [`find_idx_pair`]: `train-images-idx3-ubyte(.gz)`
//! (LeCun's site, Fashion-MNIST) and `train-images.idx3-ubyte(.gz)`
//! (Kaggle / some mirrors), plus the bundled `train10k-…` slice.

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::{open_maybe_gz_sized, read_err, read_full, u8_to_unit, ImageSet, MAX_FILE_BYTES};
use crate::error::{Error, Result};

/// Largest image side accepted from a header.
pub const MAX_SIDE: usize = 4096;

/// A decoded IDX array of bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Read an IDX file of unsigned bytes (gzipped or raw). The header's sizes
/// must multiply to at most [`MAX_FILE_BYTES`] and the body must hold
/// exactly that many bytes: the buffer grows only as data arrives, so a
/// header claiming billions of values over a short file fails cleanly.
pub fn load_idx(path: &Path) -> Result<IdxArray> {
    let (mut r, most) = open_maybe_gz_sized(path)?;
    let mut head = [0u8; 4];
    let got = read_full(&mut r, &mut head).map_err(|e| read_err(path, e))?;
    if got < 4 {
        return Err(Error::format(
            path,
            format!("file is {got} bytes, too short for an IDX header"),
        ));
    }
    if head[0] != 0 || head[1] != 0 {
        return Err(Error::format(
            path,
            format!(
                "not an IDX file: magic {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 NDIM",
                head[0], head[1], head[2], head[3]
            ),
        ));
    }
    if head[2] != 0x08 {
        return Err(Error::format(
            path,
            format!(
                "IDX data type 0x{:02x} is not supported (expected 0x08, unsigned byte)",
                head[2]
            ),
        ));
    }
    let ndim = head[3] as usize;
    if !(1..=4).contains(&ndim) {
        return Err(Error::format(
            path,
            format!("IDX header has {ndim} dimensions, expected 1..=4"),
        ));
    }
    let mut dbytes = vec![0u8; 4 * ndim];
    let got = read_full(&mut r, &mut dbytes).map_err(|e| read_err(path, e))?;
    if got < dbytes.len() {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {ndim} sizes need {} bytes, found {got}",
                4 * ndim
            ),
        ));
    }
    let dims: Vec<usize> = dbytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&t| t <= MAX_FILE_BYTES);
    let Some(total) = total else {
        return Err(Error::format(
            path,
            format!("IDX sizes {dims:?} exceed the {MAX_FILE_BYTES}-byte limit"),
        ));
    };
    // A file cannot hold more than its (decompressed) size: a header
    // promising more is refused before anything is read.
    if total > most {
        return Err(Error::format(
            path,
            format!(
                "truncated: IDX sizes {dims:?} need {total} data bytes, more than this file can hold (at most {most})"
            ),
        ));
    }
    let mut data = Vec::new();
    (&mut r)
        .take(total + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_err(path, e))?;
    if (data.len() as u64) < total {
        return Err(Error::format(
            path,
            format!(
                "truncated: IDX sizes {dims:?} need {total} data bytes, found {}",
                data.len()
            ),
        ));
    }
    if data.len() as u64 > total {
        return Err(Error::format(
            path,
            format!("IDX sizes {dims:?} need {total} data bytes but the file has more"),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Load an IDX image file `[N, rows, cols]` as a 1-channel [`ImageSet`]
/// (no labels).
pub fn load_idx_images(path: &Path) -> Result<ImageSet> {
    let a = load_idx(path)?;
    let [n, h, w] = a.dims[..] else {
        return Err(Error::format(
            path,
            format!(
                "IDX images must have 3 dimensions [N, rows, cols], found {:?}",
                a.dims
            ),
        ));
    };
    if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE {
        return Err(Error::format(
            path,
            format!("image size {h}x{w} outside 1..={MAX_SIDE}"),
        ));
    }
    let pixels =
        Array2::from_shape_vec((n, h * w), a.data.iter().map(|&v| u8_to_unit(v)).collect())
            .map_err(|e| Error::format(path, e.to_string()))?;
    Ok(ImageSet {
        channels: 1,
        height: h,
        width: w,
        pixels,
        labels: None,
    })
}

/// Load an IDX label file `[N]` (values 0..=255 kept as they are).
pub fn load_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let a = load_idx(path)?;
    if a.dims.len() != 1 {
        return Err(Error::format(
            path,
            format!("IDX labels must have 1 dimension [N], found {:?}", a.dims),
        ));
    }
    Ok(a.data)
}

/// Which half of an MNIST-style folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Find the images and labels files of `split` in `dir`, trying the
/// prefixes (`train`, `train10k` / `t10k`), both naming styles
/// (`-images-idx3-ubyte`, `-images.idx3-ubyte`) and `.gz` or no suffix.
pub fn find_idx_pair(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    let prefixes: &[&str] = match split {
        Split::Train => &["train", "train10k"],
        Split::Test => &["t10k", "test"],
    };
    let find = |kind: &str, nd: u8| -> Option<PathBuf> {
        for p in prefixes {
            for sep in ["-", "."] {
                for gz in [".gz", ""] {
                    let cand = dir.join(format!("{p}-{kind}{sep}idx{nd}-ubyte{gz}"));
                    if cand.is_file() {
                        return Some(cand);
                    }
                }
            }
        }
        None
    };
    let want = |kind: &str, nd: u8| {
        find(kind, nd).ok_or_else(|| {
            Error::format(dir, format!("no {}-{kind}-idx{nd}-ubyte[.gz] (or {}-{kind}.idx{nd}-ubyte[.gz]) file in this folder", prefixes[0], prefixes[0]))
        })
    };
    Ok((want("images", 3)?, want("labels", 1)?))
}

/// Load a labelled split from an MNIST-style folder (see [`find_idx_pair`]).
pub fn load_mnist_dir(dir: &Path, split: Split) -> Result<ImageSet> {
    let (ip, lp) = find_idx_pair(dir, split)?;
    let mut set = load_idx_images(&ip)?;
    let labels = load_idx_labels(&lp)?;
    if labels.len() != set.len() {
        return Err(Error::format(
            &lp,
            format!(
                "{} labels for {} images in {}",
                labels.len(),
                set.len(),
                ip.display()
            ),
        ));
    }
    set.labels = Some(labels);
    Ok(set)
}
