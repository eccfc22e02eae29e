//! Class 4 (unbounded reads, memory amplification), measured: hostile
//! files whose headers promise far more than they hold, or whose
//! compressed bytes expand enormously, are refused while the process's
//! peak RSS (`VmHWM` of `/proc/self/status`) stays under [`RSS_BOUND`].
//!
//! The limits under test (see docs/robustness.md):
//! - images: width × height from the header ≤ `MAX_DECODED_PIXELS`
//!   (16 Mi), checked before any pixel is decoded;
//! - IDX: decoded size ≤ `MAX_FILE_BYTES` (64 MiB) and ≤ what the file can
//!   hold (its size, or 1032× it when gzipped), checked before reading;
//!   reading stops one byte past the header's promise;
//! - networks (classifier, checkpoints): allocated only if the file is big
//!   enough to hold their parameters.
//!
//! Every test in this binary is bounded, so the process-wide peak is a fair
//! bound for each of them.

use std::io::Write;
use std::path::{Path, PathBuf};

use scoresde::data::images::{self, ColorMode, MAX_DECODED_PIXELS};

/// Peak RSS every test here must stay under (the test binary itself
/// needs a few MB; the bombs would need 0.5–2 GB).
const RSS_BOUND: u64 = 200 << 20;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-bombs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn assert_rss_bounded(what: &str) {
    let rss = peak_rss();
    assert!(
        rss < RSS_BOUND,
        "{what}: peak RSS {} MB exceeds {} MB",
        rss >> 20,
        RSS_BOUND >> 20
    );
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A valid grey PNG of `w × h` zero pixels, compressed row by row (the
/// raw image is never held in memory): 16000² is about 250 KB.
fn png_bomb(path: &Path, w: u32, h: u32) {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let row = vec![0u8; w as usize + 1];
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    let idat = z.finish().unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &idat);
    png_chunk(&mut out, b"IEND", &[]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn png_decompression_bombs_are_refused_before_decoding() {
    let d = tmpdir("png");
    // 16000² = 256 Mi pixels (1 GiB as RGBA) in about 250 KB.
    png_bomb(&d.join("a.png"), 16000, 16000);
    let len = std::fs::metadata(d.join("a.png")).unwrap().len();
    assert!(len < 2 << 20, "the bomb is small: {len} bytes");
    let e = images::load_folder(&d, 16, ColorMode::Rgb).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("16000x16000") && m.contains("limit"), "{m}");
    assert_rss_bounded("16000x16000 PNG in a folder");

    // Just past the limit (a long thin strip), through decode_image.
    let side = 64u32;
    let long = (MAX_DECODED_PIXELS / side as u64) as u32 + 1;
    let p = d.join("strip.png");
    png_bomb(&p, side, long);
    let m = images::decode_image(&p).unwrap_err().to_string();
    assert!(m.contains("pixel limit"), "{m}");
    // At the limit it decodes (the limit is the documented one, not lower).
    png_bomb(&p, side, long - 1);
    let img = images::decode_image(&p).unwrap();
    assert_eq!((img.width(), img.height()), (side, long - 1));
    assert_rss_bounded("strip PNGs");
}

fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

#[test]
fn gzip_idx_bombs_read_no_more_than_promised() {
    let d = tmpdir("idx");
    // (1) A header promising 766 MB (over the cap) over a 150 KB gzip.
    let p = d.join("big-header.gz");
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&idx_header(&[60000, 113, 113])).unwrap();
    z.write_all(&vec![0u8; 64 << 20]).unwrap();
    std::fs::write(&p, z.finish().unwrap()).unwrap();
    let m = images::load_idx(&p).unwrap_err().to_string();
    assert!(m.contains("limit"), "{m}");

    // (2) A small honest header followed by 512 MiB of zeros in ~500 KB:
    // reading stops one byte past the promised 7840 bytes.
    let p = d.join("long-tail.gz");
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&idx_header(&[10, 28, 28])).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..512 {
        z.write_all(&block).unwrap();
    }
    std::fs::write(&p, z.finish().unwrap()).unwrap();
    let m = images::load_idx(&p).unwrap_err().to_string();
    assert!(m.contains("has more"), "{m}");

    // (3) Under the cap, but more than a file of this size can hold
    // (1032x its size): refused before any buffer grows.
    let p = d.join("promise.gz");
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&idx_header(&[1000, 100, 100])).unwrap();
    z.write_all(&[0u8; 100]).unwrap();
    std::fs::write(&p, z.finish().unwrap()).unwrap();
    let m = images::load_idx(&p).unwrap_err().to_string();
    assert!(m.contains("can hold"), "{m}");
    assert_rss_bounded("IDX bombs");
}

#[test]
fn a_classifier_config_for_a_huge_network_allocates_nothing() {
    use scoresde::nn::classifier::{Classifier, ClassifierConfig};
    let d = tmpdir("clf");
    let mut cfg = ClassifierConfig::new(4, 256, 256, 1000);
    cfg.widths = vec![512, 512, 512];
    cfg.hidden = 4096;
    for (name, cfg) in [
        ("huge", cfg),
        ("default", ClassifierConfig::new(1, 28, 28, 10)),
    ] {
        let p = d.join(format!("{name}.safetensors"));
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("config".to_string(), serde_json::to_string(&cfg).unwrap());
        let v = [0.0f32; 4];
        scoresde::tensors::save_tensors(&p, &[("x".to_string(), vec![4], &v[..])], &meta).unwrap();
        let m = Classifier::load(&p).unwrap_err().to_string();
        assert!(m.contains("cannot hold"), "{name}: {m}");
    }
    assert_rss_bounded("classifier configs");
}
