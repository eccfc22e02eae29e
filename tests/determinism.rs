//! Same seed, same bytes: sampler output from the MLP score model must not
//! depend on the chunk (batch) size or on the number of threads, because
//! sample i draws all its noise from its own stream and every row of a
//! network evaluation is computed independently of the other rows.

use ndarray::Array2;
use scoresde::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use scoresde::nn::{Mlp, MlpConfig, ScoreNet};
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::sde::SdeConfig;

fn model() -> ScoreModel {
    let sde = SdeConfig::by_name("vp").unwrap();
    let net = MlpConfig::new(2);
    let config = ModelConfig {
        format_version: FORMAT_VERSION,
        sde,
        parameterization: Parameterization::for_sde(&sde),
        net: net.clone().into(),
        data: "checkerboard".into(),
        step: 0,
        output: None,
    };
    ScoreModel::new(config, ScoreNet::Mlp(Mlp::new(net, 7).unwrap())).unwrap()
}

fn run(model: &ScoreModel, spec: &str, batch: usize, threads: usize) -> Array2<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut opts = SampleOptions::new(600, 42);
    opts.batch = batch;
    pool.install(|| {
        sample(
            by_name(spec, 20).unwrap().as_ref(),
            model.sde(),
            model,
            &opts,
        )
        .unwrap()
        .samples
    })
}

fn bytes(a: &Array2<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn samples_are_identical_across_batch_sizes_and_threads() {
    let m = model();
    for spec in ["ddpm", "em"] {
        let reference = bytes(&run(&m, spec, 512, 1));
        for (batch, threads) in [(1, 1), (7, 1), (512, 2), (7, 2), (600, 2)] {
            assert_eq!(
                bytes(&run(&m, spec, batch, threads)),
                reference,
                "{spec}: batch {batch}, {threads} threads differs"
            );
        }
        // A different seed gives different samples (the streams are used).
        let mut opts = SampleOptions::new(600, 43);
        opts.batch = 512;
        let other = sample(by_name(spec, 20).unwrap().as_ref(), m.sde(), &m, &opts).unwrap();
        assert_ne!(bytes(&other.samples), reference);
    }
}

/// A saved and reloaded model gives bit-identical samples; a truncated or
/// mismatched checkpoint is a clear error, not a panic.
#[test]
fn checkpoint_round_trip_is_bit_identical() {
    let m = model();
    let dir = std::env::temp_dir().join(format!("scoresde-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    m.save(&dir).unwrap();
    let loaded = ScoreModel::load(&dir).unwrap();
    assert_eq!(loaded.config, m.config);
    assert_eq!(
        bytes(&run(&m, "em", 100, 2)),
        bytes(&run(&loaded, "em", 100, 2))
    );

    // Truncate the weights.
    let weights = dir.join(scoresde::checkpoint::MODEL_FILE);
    let full = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &full[..full.len() / 2]).unwrap();
    let err = ScoreModel::load(&dir).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // Weights of a different shape than the config says.
    std::fs::write(&weights, &full).unwrap();
    let cfg_path = dir.join(scoresde::checkpoint::CONFIG_FILE);
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, cfg.replace("\"hidden\": 256", "\"hidden\": 128")).unwrap();
    let err = ScoreModel::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("net.0.weight") || err.contains("shape"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
