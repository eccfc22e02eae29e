//! Parameter layout, names, and safetensors save / load with its failure
//! modes (every bad file is an `Err`, never a panic).

use std::collections::BTreeMap;
use std::path::PathBuf;

use safetensors::tensor::{Dtype, TensorView};
use scoresde::error::Error;
use scoresde::nn::{load_mlp, save_mlp, Mlp, MlpConfig};
use scoresde::tensors::{load_tensors, save_tensors};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-nn-io-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn meta() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("config".into(), r#"{"data_dim":2}"#.into());
    m.insert("step".into(), "1234".into());
    m
}

#[test]
fn spec_network_has_141058_parameters_and_pytorch_names() {
    let net = Mlp::new(MlpConfig::new(2), 0).unwrap();
    assert_eq!(net.num_params(), 141_058);
    assert_eq!(MlpConfig::new(2).num_params(), Some(141_058));
    let named = net.named_tensors();
    let got: Vec<(String, Vec<usize>)> = named
        .iter()
        .map(|(n, s, _)| (n.clone(), s.clone()))
        .collect();
    let want: Vec<(String, Vec<usize>)> = vec![
        ("net.0.weight".into(), vec![256, 34]),
        ("net.0.bias".into(), vec![256]),
        ("net.2.weight".into(), vec![256, 256]),
        ("net.2.bias".into(), vec![256]),
        ("net.4.weight".into(), vec![256, 256]),
        ("net.4.bias".into(), vec![256]),
        ("net.6.weight".into(), vec![2, 256]),
        ("net.6.bias".into(), vec![2]),
    ];
    assert_eq!(got, want);
    // The named tensors tile the flat vector in order.
    let concat: Vec<f32> = named
        .iter()
        .flat_map(|(_, _, d)| d.iter().copied())
        .collect();
    assert_eq!(concat, net.params());
}

/// PyTorch default init: every entry of a layer with fan-in n lies in
/// [−1/√n, 1/√n], and the draws fill that range (max |w| > 0.95 bound).
/// Different seeds give different networks; the same seed the same one.
#[test]
fn init_is_uniform_within_pytorch_bounds_and_seeded() {
    let net = Mlp::new(MlpConfig::new(2), 5).unwrap();
    for (l, layer) in net.layers().iter().enumerate() {
        let bound = 1.0 / (layer.fan_in as f32).sqrt();
        let w = &net.params()[layer.w_offset..layer.b_offset];
        let b = &net.params()[layer.b_offset..layer.b_offset + layer.fan_out];
        for (kind, data) in [("weight", w), ("bias", b)] {
            let max = data.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(max <= bound, "layer {l} {kind}: {max} > {bound}");
            if data.len() >= 256 {
                assert!(
                    max > 0.95 * bound,
                    "layer {l} {kind}: {max} does not fill ±{bound}"
                );
                let mean = data.iter().map(|&v| v as f64).sum::<f64>() / data.len() as f64;
                assert!(
                    mean.abs() < 0.2 * bound as f64,
                    "layer {l} {kind}: mean {mean}"
                );
            }
        }
    }
    assert_eq!(net, Mlp::new(MlpConfig::new(2), 5).unwrap());
    assert_ne!(
        net.params(),
        Mlp::new(MlpConfig::new(2), 6).unwrap().params()
    );
}

#[test]
fn save_load_round_trip_is_bit_identical_and_atomic() {
    let dir = tmpdir("roundtrip");
    let path = dir.join("model.safetensors");
    let net = Mlp::new(MlpConfig::new(2), 1).unwrap();
    save_mlp(&path, &net, &meta()).unwrap();
    assert!(
        !dir.join("model.safetensors.tmp").exists(),
        "temporary file left behind"
    );
    let (back, m) = load_mlp(&path, MlpConfig::new(2)).unwrap();
    assert_eq!(m, meta());
    let a: Vec<u32> = net.params().iter().map(|v| v.to_bits()).collect();
    let b: Vec<u32> = back.params().iter().map(|v| v.to_bits()).collect();
    assert_eq!(a, b);
    // The header is what numpy/PyTorch readers use: F32, [256, 34].
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(
        header.contains(r#""net.0.weight":{"dtype":"F32","shape":[256,34]"#),
        "{header}"
    );
    // Overwriting an existing file works (rename over it).
    let other = Mlp::new(MlpConfig::new(2), 2).unwrap();
    save_mlp(&path, &other, &BTreeMap::new()).unwrap();
    let (back, m) = load_mlp(&path, MlpConfig::new(2)).unwrap();
    assert_eq!(back, other);
    assert!(m.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn expect_err_mentions(r: Result<impl std::fmt::Debug, Error>, needles: &[&str]) {
    let e = r.expect_err("expected an error");
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "error '{msg}' does not mention '{n}'");
    }
}

#[test]
fn bad_files_are_errors_naming_file_and_tensor() {
    let dir = tmpdir("bad");
    let good = dir.join("good.safetensors");
    let net = Mlp::new(MlpConfig::new(2), 1).unwrap();
    save_mlp(&good, &net, &meta()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cfg = || MlpConfig::new(2);

    // Missing file.
    let r = load_mlp(&dir.join("nope.safetensors"), cfg());
    assert!(matches!(r, Err(Error::Io { .. })));

    // Truncated at several points, including inside the 8-byte length.
    for cut in [0, 3, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.join(format!("trunc{cut}.safetensors"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let r = load_mlp(&p, cfg());
        assert!(matches!(r, Err(Error::Format { .. })), "cut {cut}: {r:?}");
        expect_err_mentions(r, &[&format!("trunc{cut}.safetensors")]);
    }

    // Garbage, and a header length far beyond the file.
    let p = dir.join("garbage.safetensors");
    std::fs::write(&p, b"this is not a safetensors file at all, just text").unwrap();
    assert!(matches!(load_mlp(&p, cfg()), Err(Error::Format { .. })));
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&p, &huge).unwrap();
    assert!(matches!(load_mlp(&p, cfg()), Err(Error::Format { .. })));

    // Wrong shape: a hidden-128 network loaded as hidden 256.
    let small = Mlp::new(
        MlpConfig {
            hidden: 128,
            ..cfg()
        },
        1,
    )
    .unwrap();
    let p = dir.join("small.safetensors");
    save_mlp(&p, &small, &BTreeMap::new()).unwrap();
    let r = load_mlp(&p, cfg());
    assert!(matches!(r, Err(Error::Checkpoint { .. })));
    expect_err_mentions(
        r,
        &[
            "small.safetensors",
            "net.0.weight",
            "[128, 34]",
            "[256, 34]",
        ],
    );

    // Wrong name: rename net.4.bias.
    let mut named = net.named_tensors();
    named[5].0 = "net.5.bias".into();
    let p = dir.join("renamed.safetensors");
    save_tensors(&p, &named, &BTreeMap::new()).unwrap();
    expect_err_mentions(
        load_mlp(&p, cfg()),
        &["renamed.safetensors", "missing tensor 'net.4.bias'"],
    );

    // Extra tensor.
    let mut named = net.named_tensors();
    let extra = [0.0f32; 3];
    named.push(("ema.step".into(), vec![3], &extra));
    let p = dir.join("extra.safetensors");
    save_tensors(&p, &named, &BTreeMap::new()).unwrap();
    expect_err_mentions(load_mlp(&p, cfg()), &["unexpected tensor 'ema.step'"]);

    // Wrong dtype: an F64 tensor.
    let f64_bytes: Vec<u8> = (0..4).flat_map(|i| (i as f64).to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F64, vec![4], &f64_bytes).unwrap();
    let buf = safetensors::serialize([("net.0.bias", view)], None).unwrap();
    let p = dir.join("f64.safetensors");
    std::fs::write(&p, buf).unwrap();
    expect_err_mentions(
        load_tensors(&p),
        &["f64.safetensors", "net.0.bias", "F64", "F32"],
    );

    // Saving a tensor whose data does not match its shape is refused.
    let bad = [0.0f32; 5];
    let r = save_tensors(
        &dir.join("x.safetensors"),
        &[("a".into(), vec![2, 3], &bad[..])],
        &BTreeMap::new(),
    );
    expect_err_mentions(r, &["'a'", "[2, 3]"]);

    std::fs::remove_dir_all(&dir).unwrap();
}

/// Flip every byte of the header (and the length prefix) in turn: loading
/// must return `Err` or, when the flip leaves a valid file with the same
/// tensors (e.g. inside a metadata value or JSON whitespace), exactly the
/// original parameters. Flipping the opening '{' must be an error.
#[test]
fn flipped_header_bytes_never_panic_or_corrupt() {
    let dir = tmpdir("flip");
    let net = Mlp::new(MlpConfig::new(2), 3).unwrap();
    let good = dir.join("good.safetensors");
    save_mlp(&good, &net, &meta()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(bytes[8], b'{');
    let p = dir.join("flipped.safetensors");
    let mut errors = 0;
    for i in 0..8 + n {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        std::fs::write(&p, &b).unwrap();
        match load_mlp(&p, MlpConfig::new(2)) {
            Err(Error::Format { .. } | Error::Checkpoint { .. }) => errors += 1,
            Err(e) => panic!("byte {i}: unexpected error kind {e:?}"),
            Ok((back, _)) => assert_eq!(back, net, "byte {i}: loaded different parameters"),
        }
        if i == 8 {
            assert!(
                load_mlp(&p, MlpConfig::new(2)).is_err(),
                "flipped '{{' accepted"
            );
        }
    }
    assert!(errors > n / 2, "only {errors} of {} flips rejected", 8 + n);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_named_checks_names_and_shapes() {
    let net = Mlp::new(MlpConfig::new(2), 1).unwrap();
    let owned: Vec<(String, Vec<usize>, Vec<f32>)> = net
        .named_tensors()
        .into_iter()
        .map(|(a, b, c)| (a, b, c.to_vec()))
        .collect();
    assert_eq!(Mlp::from_named(MlpConfig::new(2), &owned).unwrap(), net);
    let mut dup = owned.clone();
    dup.push(owned[0].clone());
    assert!(Mlp::from_named(MlpConfig::new(2), &dup).is_err());
    let mut short = owned.clone();
    short[1].2.pop();
    let e = Mlp::from_named(MlpConfig::new(2), &short)
        .unwrap_err()
        .to_string();
    assert!(e.contains("net.0.bias"), "{e}");
    let mut target = Mlp::new(MlpConfig::new(2), 9).unwrap();
    let before = target.clone();
    assert!(target.load_named(&short).is_err());
    assert_eq!(target, before, "failed load must not modify the network");
    assert!(Mlp::new(
        MlpConfig {
            emb_dim: 31,
            ..MlpConfig::new(2)
        },
        0
    )
    .is_err());
    assert!(Mlp::new(
        MlpConfig {
            data_dim: 0,
            ..MlpConfig::new(2)
        },
        0
    )
    .is_err());
    assert!(Mlp::new(
        MlpConfig {
            hidden: usize::MAX / 2,
            ..MlpConfig::new(2)
        },
        0
    )
    .is_err());
}

/// Adam moments and the EMA shadow, saved as named tensors next to the
/// parameters (prefixed names) and restored, continue bit-identically.
#[test]
fn optimizer_state_round_trips_through_safetensors() {
    use scoresde::nn::{Adam, Ema};
    let dir = tmpdir("optstate");
    let path = dir.join("ckpt.safetensors");
    let cfg = MlpConfig {
        hidden: 16,
        ..MlpConfig::new(2)
    };
    let mut net = Mlp::new(cfg.clone(), 4).unwrap();
    let mut adam = Adam::new(1e-3, net.num_params());
    let mut ema = Ema::new(0.99, net.params());
    let grads: Vec<f32> = (0..net.num_params())
        .map(|i| ((i % 13) as f32 - 6.0) * 0.01)
        .collect();
    for _ in 0..3 {
        adam.update(net.params_mut(), &grads);
        ema.update(net.params());
    }
    let mut all = net.named_tensors();
    for (prefix, flat) in [
        ("adam.m.", &adam.m),
        ("adam.v.", &adam.v),
        ("ema.", &ema.shadow),
    ] {
        for (n, s, d) in net.named_slices(flat) {
            all.push((format!("{prefix}{n}"), s, d));
        }
    }
    let mut meta = BTreeMap::new();
    meta.insert("adam.step".to_string(), adam.step.to_string());
    save_tensors(&path, &all, &meta).unwrap();

    let file = load_tensors(&path).unwrap();
    let pick = |prefix: &str| -> Vec<(String, Vec<usize>, Vec<f32>)> {
        file.tensors
            .iter()
            .filter_map(|(n, s, d)| {
                let rest = n.strip_prefix(prefix)?;
                (rest.starts_with("net.")).then(|| (rest.to_string(), s.clone(), d.clone()))
            })
            .collect()
    };
    let net2 = Mlp::from_named(cfg, &pick("")).unwrap();
    let mut m = vec![0.0; net2.num_params()];
    let mut v = vec![0.0; net2.num_params()];
    let mut shadow = vec![0.0; net2.num_params()];
    net2.unflatten_named(&pick("adam.m."), &mut m).unwrap();
    net2.unflatten_named(&pick("adam.v."), &mut v).unwrap();
    net2.unflatten_named(&pick("ema."), &mut shadow).unwrap();
    let step: u64 = file.metadata["adam.step"].parse().unwrap();
    let mut adam2 = Adam::new(1e-3, net2.num_params());
    adam2.set_state(&m, &v, step).unwrap();
    let mut ema2 = Ema::new(0.99, net2.params());
    ema2.set_shadow(&shadow).unwrap();
    assert_eq!(adam2, adam);
    assert_eq!(ema2, ema);

    let (mut a, mut b) = (net.clone(), net2.clone());
    adam.update(a.params_mut(), &grads);
    adam2.update(b.params_mut(), &grads);
    ema.update(a.params());
    ema2.update(b.params());
    assert_eq!(a, b);
    assert_eq!(ema.shadow, ema2.shadow);
    std::fs::remove_dir_all(&dir).unwrap();
}
