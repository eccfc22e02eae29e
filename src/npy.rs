//! NumPy `.npy` files of f32 arrays (format version 1.0 written; 1.0, 2.0
//! and 3.0 read).
//!
//! Layout: the magic `\x93NUMPY`, version bytes (1, 0), a little-endian u16
//! header length `HLEN`, then `HLEN` bytes of ASCII header — a Python dict
//! literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }` padded with
//! spaces and ended by `\n` so that 10 + HLEN is a multiple of 64 — then the
//! elements as little-endian f32 in C (row-major) order. The header is
//! byte-identical to what NumPy ≥ 1.23 writes (including its 21-digit
//! growth margin for the first axis before the padding).

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, ArrayView, Dimension, IxDyn};

use crate::error::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest `.npy` file read (4 GiB, counted as it is read); only regular
/// files are read (not devices or FIFOs).
pub const MAX_NPY_BYTES: u64 = 4 << 30;
const ALIGN: usize = 64;
/// NumPy leaves room for the first axis to grow to this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// The full v1.0 preamble (magic, version, length, header text) for a C-order
/// `<f4` array of the given shape; its length is a multiple of 64.
pub fn header_bytes(shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // 6 magic + 2 version + 2 length + dict + '\n', padded to ALIGN.
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    // NumPy pads by ALIGN - (unpadded % ALIGN): a full 64 when already aligned.
    let pad = ALIGN - unpadded % ALIGN;
    let hlen = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(10 + hlen);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(hlen as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// Write `a` (any dimension) to `path` as a `.npy` v1.0 file, atomically:
/// the bytes go to `<path>.tmp` in the same directory, which is flushed,
/// fsynced and then renamed over `path`. On error the temporary file is
/// removed and `path` is untouched.
pub fn write<D: Dimension>(path: impl AsRef<Path>, a: ArrayView<f32, D>) -> Result<()> {
    let path = path.as_ref();
    let header = header_bytes(a.shape());
    if header.len() - 10 > u16::MAX as usize {
        return Err(Error::format(
            path,
            "shape too long for an .npy v1.0 header",
        ));
    }
    crate::fsutil::write_atomic_with(path, |w| {
        w.write_all(&header)?;
        for v in a.iter() {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    })
}

/// Read a `.npy` file of little-endian f32 (`<f4`), C order, any dimension.
/// Every problem (bad magic, unknown version, malformed header, other dtype,
/// Fortran order, data length not matching the shape) is an
/// [`Error::Format`] naming the file; memory allocated is bounded by the
/// file's actual size, whatever the header claims.
pub fn read(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    let bytes = crate::fsutil::read_regular(path, MAX_NPY_BYTES, "an .npy file")?;
    parse(path, &bytes)
}

/// [`read`] a file that must hold a 2-D array.
pub fn read2(path: impl AsRef<Path>) -> Result<Array2<f32>> {
    let path = path.as_ref();
    let a = read(path)?;
    let shape = a.shape().to_vec();
    a.into_dimensionality()
        .map_err(|_| Error::format(path, format!("expected a 2-D array, found shape {shape:?}")))
}

/// Parse the bytes of a `.npy` file (`path` only names it in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<ArrayD<f32>> {
    let bad = |msg: String| Error::format(PathBuf::from(path), msg);
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err(bad("not an .npy file (missing \\x93NUMPY magic)".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start): (usize, usize) = match (major, minor) {
        (1, 0) if bytes.len() >= 10 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        (2 | 3, 0) if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        (1..=3, 0) => return Err(bad("truncated .npy preamble".into())),
        _ => return Err(bad(format!("unsupported .npy version {major}.{minor}"))),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "truncated header: claims {hlen} bytes, file has {}",
                bytes.len().saturating_sub(start)
            ))
        })?;
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| bad("header is not valid UTF-8".into()))?;
    let header = Header::parse(text).map_err(|m| bad(format!("malformed header: {m}")))?;
    if header.descr != "<f4" {
        return Err(bad(format!(
            "dtype '{}' is not supported (expected '<f4', little-endian f32)",
            header.descr
        )));
    }
    if header.fortran_order {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {:?} overflows", header.shape)))?;
    let data = &bytes[end..];
    if count.checked_mul(4) != Some(data.len()) {
        return Err(bad(format!(
            "shape {:?} needs {} data bytes, file has {}",
            header.shape,
            count as u128 * 4,
            data.len()
        )));
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    ArrayD::from_shape_vec(IxDyn(&header.shape), values)
        .map_err(|e| bad(format!("cannot build array: {e}")))
}

/// The three fields of an `.npy` header dict.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Parse the Python literal `{'descr': ..., 'fortran_order': ..., 'shape': (...), }`
    /// (keys in any order, single or double quotes, optional trailing commas,
    /// trailing whitespace / newline).
    fn parse(text: &str) -> std::result::Result<Header, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        p.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            p.ws();
            if p.eat(b'}') {
                break;
            }
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            match key.as_str() {
                "descr" => descr = Some(p.string()?),
                "fortran_order" => fortran = Some(p.boolean()?),
                "shape" => shape = Some(p.tuple()?),
                other => return Err(format!("unexpected key '{other}'")),
            }
            p.ws();
            if !p.eat(b',') {
                p.ws();
                p.expect(b'}')?;
                break;
            }
        }
        p.ws();
        if p.i != p.s.len() {
            return Err("trailing characters after the dict".into());
        }
        Ok(Header {
            descr: descr.ok_or("missing 'descr'")?,
            fortran_order: fortran.ok_or("missing 'fortran_order'")?,
            shape: shape.ok_or("missing 'shape'")?,
        })
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }

    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!("expected a dimension at byte {start}"));
            }
            let txt = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits");
            dims.push(
                txt.parse::<usize>()
                    .map_err(|_| format!("dimension {txt} too large"))?,
            );
            // Python allows an 'L' suffix in old (Python 2) headers.
            self.eat(b'L');
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}
