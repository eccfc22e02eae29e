//! Train the MNIST classifier used by the image metrics and save it.
//! `cargo run --release --example train_classifier [epochs] [out.safetensors]`
//! (default 8 epochs, `data/mnist-classifier.safetensors`).
use std::path::Path;
use std::time::Instant;

use scoresde::data::images::{load_mnist_dir, Split};
use scoresde::nn::classifier::ClassifierConfig;
use scoresde::nn::Network;
use scoresde::train::classifier::{train_classifier, ClassifierTraining};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let epochs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    let out = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "data/mnist-classifier.safetensors".into());
    let train = load_mnist_dir(Path::new("data/mnist"), Split::Train)?;
    let test = load_mnist_dir(Path::new("data/mnist"), Split::Test)?;
    let start = Instant::now();
    let opts = ClassifierTraining {
        epochs,
        ..Default::default()
    };
    let net = train_classifier(
        &train,
        ClassifierConfig::new(1, 28, 28, 10),
        &opts,
        |e, l| {
            eprintln!(
                "epoch {e}: loss {l:.4} ({:.0} s)",
                start.elapsed().as_secs_f64()
            )
        },
    )?;
    let acc = net.accuracy(&test)?;
    println!(
        "params {}, {epochs} epochs in {:.0} s, test accuracy {:.4}",
        net.num_params(),
        start.elapsed().as_secs_f64(),
        acc
    );
    net.save(Path::new(&out))?;
    Ok(())
}
