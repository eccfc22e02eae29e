//! Reference values of the image metrics with the committed classifier:
//! the MNIST training split (10k) against the test set (the floor of the
//! Fréchet distance), and test images' nearest-neighbour distance to the
//! training set (what "not memorised" looks like).
//! `cargo run --release --example image_metrics_floor`
use std::path::Path;

use scoresde::data::images::{load_mnist_dir, Split};
use scoresde::metrics::image::image_metrics;
use scoresde::nn::classifier::Classifier;

fn main() -> anyhow::Result<()> {
    let clf = Classifier::load(Path::new("data/mnist-classifier.safetensors"))?;
    let train = load_mnist_dir(Path::new("data/mnist"), Split::Train)?;
    let test = load_mnist_dir(Path::new("data/mnist"), Split::Test)?;
    println!("test accuracy {:.4}", clf.accuracy(&test)?);
    let m = image_metrics(&clf, train.pixels.view(), test.pixels.view(), None);
    println!(
        "train(10k) vs test: FD {:.4}, mean max-prob {:.4}, label entropy {:.4} (ln 10 = {:.4})",
        m.fd,
        m.mean_max_prob,
        m.label_entropy,
        10f64.ln()
    );
    let sub = test.take(500);
    let m = image_metrics(
        &clf,
        sub.pixels.view(),
        test.pixels.view(),
        Some(train.pixels.view()),
    );
    println!(
        "test[0..500] vs test: FD {:.4}; NN L2 to train: mean {:.3}, min {:.3}",
        m.fd,
        m.nn_mean.unwrap_or(f64::NAN),
        m.nn_min.unwrap_or(f64::NAN)
    );
    Ok(())
}
