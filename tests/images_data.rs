//! Image loaders: IDX (gz / raw, both naming styles, malformed files), the
//! digits CSV, the emoji sheet, folders of PNG/JPEG, and the bundled data.

use std::io::Write;
use std::path::{Path, PathBuf};

use scoresde::data::images::*;
use scoresde::Error;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-images-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn format_msg(r: Result<impl std::fmt::Debug, Error>, path: &Path) -> String {
    match r {
        Err(e @ Error::Format { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains(&path.display().to_string()),
                "message names the file: {m}"
            );
            m
        }
        other => panic!(
            "expected a format error for {}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn idx_pairs_load_in_both_naming_styles_gz_and_raw() {
    let pix: Vec<u8> = (0..3 * 2 * 3).map(|i| (i * 15) as u8).collect();
    let imgs = idx_bytes(&[3, 2, 3], &pix);
    let labs = idx_bytes(&[3], &[7, 0, 9]);
    for (style, zip) in [
        ("-images-idx3-ubyte", true),
        (".images-idx3-ubyte", false),
        ("-images-idx3-ubyte", false),
    ] {
        let d = tmpdir(&format!("pair{}{zip}", style.len()));
        let sep = if style.starts_with('.') { "." } else { "-" };
        let suffix = if zip { ".gz" } else { "" };
        let (ib, lb) = if zip {
            (gz(&imgs), gz(&labs))
        } else {
            (imgs.clone(), labs.clone())
        };
        std::fs::write(d.join(format!("train-images{sep}idx3-ubyte{suffix}")), ib).unwrap();
        std::fs::write(d.join(format!("train-labels{sep}idx1-ubyte{suffix}")), lb).unwrap();
        let set = load_mnist_dir(&d, Split::Train).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width),
            (3, 1, 2, 3)
        );
        assert_eq!(set.labels.as_deref(), Some(&[7u8, 0, 9][..]));
        assert_eq!(set.pixels[[0, 0]], -1.0);
        assert_eq!(set.pixels[[1, 1]], u8_to_unit(105));
        assert!(
            load_mnist_dir(&d, Split::Test).is_err(),
            "no t10k files here"
        );
    }
}

#[test]
fn malformed_idx_files_give_clear_errors() {
    let d = tmpdir("bad");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short", vec![0, 0], "too short"),
        ("magic", vec![1, 2, 8, 3, 0, 0, 0, 0], "not an IDX file"),
        (
            "dtype",
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            "data type",
        ),
        ("hdr", vec![0, 0, 8, 3, 0, 0, 0, 1], "truncated IDX header"),
        ("body", idx_bytes(&[2, 28, 28], &[0u8; 100]), "truncated"),
        ("extra", idx_bytes(&[1, 2, 2], &[0u8; 5]), "has more"),
        (
            "huge",
            idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[0u8; 10]),
            "limit",
        ),
        (
            "huge_gz",
            gz(&idx_bytes(&[60000, 40000, 40000], &[0u8; 10])),
            "limit",
        ),
        (
            "trunc_gz",
            {
                let g = gz(&idx_bytes(&[4, 4, 4], &[3u8; 64]));
                g[..g.len() / 2].to_vec()
            },
            "truncated",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let m = format_msg(load_idx_images(&p), &p);
        assert!(m.contains(want), "{name}: '{m}' should mention '{want}'");
    }
    let p = d.join("labels3d");
    std::fs::write(&p, idx_bytes(&[1, 1, 1], &[0])).unwrap();
    assert!(format_msg(load_idx_labels(&p), &p).contains("1 dimension"));
    // Label / image count mismatch names the labels file.
    std::fs::write(
        d.join("t10k-images-idx3-ubyte"),
        idx_bytes(&[2, 1, 1], &[0, 1]),
    )
    .unwrap();
    std::fs::write(
        d.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[3], &[0, 1, 2]),
    )
    .unwrap();
    let e = load_mnist_dir(&d, Split::Test).unwrap_err().to_string();
    assert!(e.contains("3 labels for 2 images"), "{e}");
}

#[test]
fn digits_csv_parses_and_rejects_bad_lines() {
    let d = tmpdir("csv");
    let line = |lab: u8| {
        (0..64)
            .map(|i| (i % 17).to_string())
            .chain([lab.to_string()])
            .collect::<Vec<_>>()
            .join(",")
    };
    let p = d.join("ok.csv.gz");
    std::fs::write(&p, gz(format!("{}\n{}\n\n", line(3), line(9)).as_bytes())).unwrap();
    let s = load_digits_csv(&p).unwrap();
    assert_eq!(
        (s.len(), s.height, s.labels.clone().unwrap()),
        (2, 8, vec![3, 9])
    );
    assert_eq!(s.pixels[[0, 0]], -1.0);
    assert_eq!(s.pixels[[0, 16]], 1.0);
    for (name, text, want) in [
        ("fields", "1,2,3\n".to_string(), "3 fields"),
        ("range", line(3).replacen("0,", "17,", 1), "outside 0..=16"),
        ("nan", line(3).replacen("0,", "x,", 1), "not an integer"),
        ("label", line(12), "outside 0..=9"),
    ] {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let m = format_msg(load_digits_csv(&p), &p);
        assert!(m.contains(want) && m.contains("line 1"), "{name}: {m}");
    }
}

#[test]
fn emoji_sheet_composites_over_white_and_skips_empty_cells() {
    let d = tmpdir("emoji");
    let mut img = image::RgbaImage::new(36, 36);
    // Cell (0,0): opaque red; (1,0): empty; (0,1): half-transparent black; (1,1): one opaque blue pixel.
    for y in 0..16 {
        for x in 0..16 {
            img.put_pixel(1 + x, 1 + y, image::Rgba([255, 0, 0, 255]));
            img.put_pixel(1 + x, 19 + y, image::Rgba([0, 0, 0, 128]));
        }
    }
    img.put_pixel(19 + 5, 19 + 7, image::Rgba([0, 0, 255, 255]));
    let p = d.join("sheet.png");
    img.save(&p).unwrap();
    let s = load_emoji_sheet(&p).unwrap();
    assert_eq!((s.len(), s.channels, s.height), (3, 3, 16));
    assert_eq!(
        [s.pixels[[0, 0]], s.pixels[[0, 256]], s.pixels[[0, 512]]],
        [1.0, -1.0, -1.0]
    );
    // 128/255 black over white: (127·255 + 127)/255 → 127.
    assert_eq!(s.pixels[[1, 0]], u8_to_unit(127));
    let (blue, white) = (7 * 16 + 5, 0);
    assert_eq!(
        [s.pixels[[2, blue]], s.pixels[[2, 512 + blue]]],
        [-1.0, 1.0]
    );
    assert_eq!(s.pixels[[2, white]], 1.0);
    let bad = d.join("bad.png");
    std::fs::write(&bad, b"\x89PNG not really").unwrap();
    format_msg(load_emoji_sheet(&bad), &bad);
}

#[test]
fn folder_loader_resizes_png_and_jpeg() {
    let d = tmpdir("folder");
    image::RgbImage::from_pixel(10, 6, image::Rgb([255, 255, 255]))
        .save(d.join("a.png"))
        .unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([0, 0, 0]))
        .save(d.join("b.JPG"))
        .unwrap();
    std::fs::write(d.join("notes.txt"), "ignored").unwrap();
    let g = load_folder(&d, 4, ColorMode::Grey).unwrap();
    assert_eq!((g.len(), g.channels, g.dim()), (2, 1, 16));
    assert!(g.pixels.row(0).iter().all(|&v| v == 1.0));
    assert!(
        g.pixels.row(1).iter().all(|&v| v < -0.95),
        "black JPEG stays near −1"
    );
    let c = load_folder(&d, 3, ColorMode::Rgb).unwrap();
    assert_eq!(c.dim(), 27);
    std::fs::write(d.join("c.png"), b"broken").unwrap();
    format_msg(load_folder(&d, 4, ColorMode::Grey), &d.join("c.png"));
    assert!(load_folder(&d, 0, ColorMode::Grey).is_err());
}

#[test]
fn bundled_data_sets_load_with_documented_sizes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let train = load_mnist_dir(&root.join("mnist"), Split::Train).unwrap();
    let mut counts = [0usize; 10];
    train
        .labels
        .as_ref()
        .unwrap()
        .iter()
        .for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    assert_eq!((train.height, train.width), (28, 28));
    let test = load_mnist_dir(&root.join("mnist"), Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert!(test.pixels.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert_eq!(
        load_digits_csv(&root.join("digits/digits.csv.gz"))
            .unwrap()
            .len(),
        1797
    );
    assert_eq!(
        load_emoji_sheet(&root.join("emoji/noto-emoji-16.png"))
            .unwrap()
            .len(),
        3786
    );
}

#[test]
fn emoji_sprites_are_labelled_by_category() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/emoji");
    let (sheet, json) = (root.join("noto-emoji-16.png"), root.join("emoji.json.gz"));
    let set = load_emoji_sheet_labelled(&sheet, &json).unwrap();
    // The same pixels as the unlabelled loader, in the same order.
    assert_eq!(set.pixels, load_emoji_sheet(&sheet).unwrap().pixels);
    let labels = set.labels.as_ref().unwrap();
    assert_eq!(labels.len(), 3786);
    let mut counts = [0usize; 10];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    // Counted from emoji.json.gz outside Rust (Python's json + gzip): per
    // category, the entries plus their skin-tone variants (3,786 cells in
    // all, every one a non-empty sprite of the sheet).
    let want = [
        ("Smileys & Emotion", 169),
        ("People & Body", 2261),
        ("Component", 5),
        ("Animals & Nature", 159),
        ("Food & Drink", 131),
        ("Travel & Places", 218),
        ("Activities", 85),
        ("Objects", 264),
        ("Symbols", 224),
        ("Flags", 270),
    ];
    for (k, (name, n)) in want.iter().enumerate() {
        assert_eq!(emoji::CATEGORIES[k], *name);
        assert_eq!(counts[k], *n, "{name}");
    }
    // Cell (0, 0) is HASH KEY, a symbol; it is the first non-empty cell.
    assert_eq!(emoji::CATEGORIES[labels[0] as usize], "Symbols");
    // `train --data emoji --conditional` sees 10 classes.
    let data = scoresde::data::TrainData::by_name("emoji", None, None).unwrap();
    assert_eq!(data.n_classes(), Some(10));
    // A JSON that misses a non-empty cell is an error naming the cell.
    let d = tmpdir("emoji-json");
    let partial = d.join("partial.json.gz");
    std::fs::write(
        &partial,
        gz(br#"[{"category":"Symbols","sheet_x":0,"sheet_y":0}]"#),
    )
    .unwrap();
    let err = load_emoji_sheet_labelled(&sheet, &partial)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sheet_x") && err.contains("partial.json.gz"),
        "{err}"
    );
    std::fs::write(
        &partial,
        gz(br#"[{"category":"Nope","sheet_x":0,"sheet_y":0}]"#),
    )
    .unwrap();
    let err = load_emoji_sheet_labelled(&sheet, &partial)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown category 'Nope'"), "{err}");
}
