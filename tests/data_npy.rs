//! .npy files: bit-identical round trips, NumPy's exact header bytes, and
//! clean errors (never panics) on malformed or truncated files.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, IxDyn};
use scoresde::{npy, Error};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-npy-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bits(a: &ArrayD<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn round_trip_is_bit_identical() {
    let dir = tmpdir("roundtrip");
    let specials = [
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234), // NaN with a payload
        f32::MIN_POSITIVE / 8.0,     // subnormal
        f32::MAX,
        -1.5e-7,
    ];
    let a2 = Array2::from_shape_fn((37, 3), |(i, j)| {
        if i < specials.len() {
            specials[(i + j) % specials.len()]
        } else {
            (i as f32 * 0.37 - j as f32).sin() * 1e3
        }
    });
    let p = dir.join("a.npy");
    npy::write(&p, a2.view()).unwrap();
    let back = npy::read2(&p).unwrap();
    assert_eq!(back.shape(), &[37, 3]);
    assert_eq!(bits(&back.clone().into_dyn()), bits(&a2.clone().into_dyn()));
    assert!(
        !dir.join("a.npy.tmp").exists(),
        "temporary file left behind"
    );

    // A transposed (non C-contiguous) view is written in logical C order.
    let t = a2.t();
    npy::write(&p, t).unwrap();
    let back = npy::read(&p).unwrap();
    assert_eq!(back.shape(), &[3, 37]);
    assert_eq!(bits(&back), bits(&t.to_owned().into_dyn()));

    for shape in [vec![], vec![5], vec![2, 3, 4], vec![0, 2]] {
        let n: usize = shape.iter().product();
        let a = ArrayD::from_shape_vec(IxDyn(&shape), (0..n).map(|i| i as f32 - 2.5).collect())
            .unwrap();
        npy::write(&p, a.view()).unwrap();
        let back = npy::read(&p).unwrap();
        assert_eq!(back.shape(), &shape[..]);
        assert_eq!(bits(&back), bits(&a));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn header_bytes_equal_numpys() {
    // What numpy >= 1.23 writes for np.save(f, np.zeros((3, 2), '<f4')):
    // 10-byte preamble, dict, 21 − len("3") growth spaces, padding spaces,
    // '\n'; 128 bytes in all, HLEN = 118 = 0x76.
    let mut want: Vec<u8> = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    want.extend_from_slice(b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
    want.extend_from_slice(&[b' '; 58]);
    want.push(b'\n');
    assert_eq!(want.len(), 128);
    assert_eq!(npy::header_bytes(&[3, 2]), want);

    let dir = tmpdir("header");
    let p = dir.join("h.npy");
    let a = Array2::from_shape_vec((3, 2), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    npy::write(&p, a.view()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[..128], &want[..]);
    assert_eq!(&bytes[128..132], &1.0f32.to_le_bytes());
    assert_eq!(bytes.len(), 128 + 24);

    // 1-D shapes use Python's one-element tuple "(5,)"; 0-d has no growth space.
    let h1 = npy::header_bytes(&[5]);
    assert_eq!(
        &h1[10..67],
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"
    );
    assert_eq!(h1.len(), 128);
    let h0 = npy::header_bytes(&[]);
    assert_eq!(
        &h0[10..65],
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (), }"
    );
    assert_eq!(h0.len(), 128); // 10 + 55 + 1 = 66 → padded to 128
                               // Dict + growth + '\n' for this shape fill exactly 128 bytes; NumPy's
                               // padlen = 64 − (len % 64) is then a full 64 spaces, never 0.
    let mut aligned = vec![1usize; 13];
    aligned.push(100);
    assert_eq!(npy::header_bytes(&aligned).len(), 192);
    for shape in [
        vec![1usize],
        vec![123456, 7],
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
    ] {
        let h = npy::header_bytes(&shape);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(*h.last().unwrap(), b'\n');
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A file with the given header dict text (padded like NumPy) and payload.
fn file_with(dir: &Path, name: &str, dict: &str, payload: &[u8]) -> PathBuf {
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let unpadded = 10 + dict.len() + 1;
    let pad = 64 - unpadded % 64;
    bytes.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend(std::iter::repeat_n(b' ', pad));
    bytes.push(b'\n');
    bytes.extend_from_slice(payload);
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_format_err(p: &Path, needle: &str) {
    match npy::read(p) {
        Err(Error::Format { path, msg }) => {
            assert_eq!(path, p);
            assert!(
                msg.contains(needle),
                "{}: message {msg:?} lacks {needle:?}",
                p.display()
            );
            let shown = Error::Format { path, msg }.to_string();
            assert!(shown.contains(&p.display().to_string()));
        }
        other => panic!("{}: expected a Format error, got {other:?}", p.display()),
    }
}

#[test]
fn malformed_or_truncated_files_are_format_errors() {
    let dir = tmpdir("bad");
    let good = dir.join("good.npy");
    let a = Array2::from_shape_fn((4, 2), |(i, j)| (i * 2 + j) as f32);
    npy::write(&good, a.view()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let data = vec![0u8; 24];

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "magic"),
        ("magic", b"\x93NUMPZ\x01\x00\x76\x00".to_vec(), "magic"),
        (
            "version",
            [&b"\x93NUMPY\x09\x00"[..], &bytes[8..]].concat(),
            "version 9.0",
        ),
        ("preamble", bytes[..9].to_vec(), "truncated"),
        ("header", bytes[..60].to_vec(), "truncated header"),
        ("data", bytes[..bytes.len() - 1].to_vec(), "data bytes"),
        ("extra", [&bytes[..], &[0u8; 4][..]].concat(), "data bytes"),
    ];
    for (name, content, needle) in cases {
        let p = dir.join(format!("{name}.npy"));
        std::fs::write(&p, content).unwrap();
        assert_format_err(&p, needle);
    }
    let dict_cases = [
        ("f8", "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", "'<f8'"),
        ("bigendian", "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", "'>f4'"),
        ("fortran", "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", "Fortran"),
        ("noshape", "{'descr': '<f4', 'fortran_order': False, }", "missing 'shape'"),
        ("garbage", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, x), }", "malformed"),
        ("notdict", "[1, 2]", "malformed"),
        ("lying", "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 100000000), }", "data bytes"),
        ("overflow", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", "overflows"),
        ("huge", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", "too large"),
    ];
    for (name, dict, needle) in dict_cases {
        let p = file_with(&dir, &format!("{name}.npy"), dict, &data);
        assert_format_err(&p, needle);
    }
    // Well-formed but with keys reordered and double quotes: accepted.
    let p = file_with(
        &dir,
        "reordered.npy",
        "{\"shape\": (3, 2), \"fortran_order\": False, \"descr\": \"<f4\"}",
        &data,
    );
    assert_eq!(npy::read2(&p).unwrap(), Array2::<f32>::zeros((3, 2)));
    // read2 insists on two dimensions.
    let p = file_with(
        &dir,
        "three.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 2), }",
        &data,
    );
    assert!(matches!(npy::read2(&p), Err(Error::Format { .. })));
    // A missing file is an Io error; so is writing into a missing directory.
    assert!(matches!(
        npy::read(dir.join("nope.npy")),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        npy::write(dir.join("no/such/dir.npy"), a.view()),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}
