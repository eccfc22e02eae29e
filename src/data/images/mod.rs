//! Image data sets as flat f32 arrays for the score networks.
//!
//! Layout: an [`ImageSet`] holds `n` images of `channels × height × width`
//! pixels; `pixels` is `[n, c·h·w]`, each row one image in `[c, h, w]`
//! (channel-major, then rows, then columns: NCHW flattened per image).
//! Every 8-bit value `v` is scaled to `x = v / 255 · 2 − 1 ∈ [−1, 1]`
//! (the 0..16 grey levels of the UCI digits: `x = v / 16 · 2 − 1`).
//!
//! Loaders: [`idx`] (MNIST / Fashion-MNIST IDX files, gzipped or raw, both
//! naming styles), [`digits`] (UCI 8×8 digits CSV), [`emoji`] (Noto sprite
//! sheet), [`folder`] (any folder of PNG/JPEG files resized to N×N).
//! Every malformed or truncated file gives an [`Error::Format`] naming the
//! file and what is wrong; header sizes are checked against hard caps and
//! the data actually present before anything large is allocated.

pub mod digits;
pub mod emoji;
pub mod folder;
pub mod idx;
pub mod resample;

use std::io::Read;
use std::path::Path;

use ndarray::Array2;

use crate::error::{Error, Result};

pub use digits::load_digits_csv;
pub use emoji::{load_emoji_sheet, load_emoji_sheet_labelled};
pub use folder::{load_folder, ColorMode};
pub use idx::{
    find_idx_pair, load_idx, load_idx_images, load_idx_labels, load_mnist_dir, IdxArray, Split,
};

/// A set of equally sized images, pixels in [−1, 1] (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `[n, channels·height·width]`, each row an image in `[c, h, w]` order.
    pub pixels: Array2<f32>,
    /// Class label per image, when the source has them.
    pub labels: Option<Vec<u8>>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.nrows()
    }
    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.nrows() == 0
    }
    /// Values per image, `c·h·w`.
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// The first `n` images (all of them if fewer).
    pub fn take(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            pixels: self.pixels.slice(ndarray::s![..n, ..]).to_owned(),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
            ..self.clone()
        }
    }
}

/// 8-bit value to [−1, 1]: `v / 255 · 2 − 1`.
#[inline]
pub fn u8_to_unit(v: u8) -> f32 {
    (v as f32 / 255.0) * 2.0 - 1.0
}

/// [−1, 1] back to 8 bits (clamped, rounded): `round((x + 1) / 2 · 255)`.
#[inline]
pub fn unit_to_u8(x: f32) -> u8 {
    let v = ((x + 1.0) * 0.5 * 255.0).round();
    if v.is_nan() {
        0
    } else {
        v.clamp(0.0, 255.0) as u8
    }
}

/// Largest decompressed file the loaders accept (64 MiB: full MNIST
/// train is 47 MB). IDX headers promising more are refused before any data
/// is read; other readers stop at this many bytes + 1.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Largest image, in pixels, that is decoded (16 Mi pixels, e.g.
/// 4096×4096: 64 MiB as RGBA8). The size comes from the file's header and
/// is checked before any pixel is decoded; the decoder is also given this
/// bound as its allocation limit.
pub const MAX_DECODED_PIXELS: u64 = 1 << 24;

/// Decode the image file `path` (PNG, JPEG or GIF): the file must be a
/// regular file of at most [`folder::MAX_IMAGE_FILE_BYTES`], and its
/// header's width × height at most [`MAX_DECODED_PIXELS`], checked before
/// decoding, so a small file claiming a huge image costs no memory.
pub fn decode_image(path: &Path) -> Result<image::DynamicImage> {
    let bytes = crate::fsutil::read_regular(path, folder::MAX_IMAGE_FILE_BYTES, "an image file")?;
    let bad = |e: image::ImageError| Error::format(path, format!("cannot decode image: {e}"));
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))
    };
    let (w, h) = reader()?.into_dimensions().map_err(bad)?;
    if w as u64 * h as u64 > MAX_DECODED_PIXELS {
        return Err(Error::format(
            path,
            format!(
                "image is {w}x{h} = {} pixels, more than the {MAX_DECODED_PIXELS}-pixel limit",
                w as u64 * h as u64
            ),
        ));
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(8 * MAX_DECODED_PIXELS);
    r.limits(limits);
    r.decode().map_err(bad)
}

/// Open `path` and return a reader of its contents, transparently
/// gunzipping when the file starts with the gzip magic `1f 8b`. Only
/// regular files are opened; reads are capped at [`MAX_FILE_BYTES`] + 1 so
/// a gzip bomb cannot exhaust memory.
pub fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    Ok(open_maybe_gz_sized(path)?.0)
}

/// [`open_maybe_gz`], plus the most bytes the contents can hold: the file's
/// size if raw, [`MAX_DEFLATE_RATIO`] times it if gzipped.
pub fn open_maybe_gz_sized(path: &Path) -> Result<(Box<dyn Read>, u64)> {
    let mut f = crate::fsutil::open_regular(path)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut magic = [0u8; 2];
    let got = read_full(&mut f, &mut magic).map_err(|e| Error::io(path, e))?;
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let chained = head.chain(f);
    let gz = got == 2 && magic == [0x1f, 0x8b];
    let r: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(chained))
    } else {
        Box::new(chained)
    };
    let most = if gz {
        len.saturating_mul(MAX_DEFLATE_RATIO)
    } else {
        len
    };
    Ok((Box::new(r.take(MAX_FILE_BYTES + 1)), most))
}

/// Deflate expands a byte to at most about 1032 bytes (a run of 258 bytes
/// per 2-bit code); a gzip file of `L` bytes holds at most 1032·L bytes.
pub const MAX_DEFLATE_RATIO: u64 = 1032;

/// Read until `buf` is full or EOF; returns the count read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Turn a decompression / read error into a format error naming the file.
pub(crate) fn read_err(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::UnexpectedEof => {
            Error::format(path, format!("corrupt or truncated compressed data: {e}"))
        }
        _ => Error::io(path, e),
    }
}
