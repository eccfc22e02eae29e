//! Times the probability-flow likelihood ([`scoresde::likelihood::nll`]) of
//! `N` points under a randomly initialised checkerboard-sized MLP score, and
//! prints a checksum of the NLL bits (to compare builds byte for byte).
//!
//! ```text
//! cargo run --release --example nll_speed -- [N] [exact|hutchinson]
//! ```

use ndarray::Array2;
use scoresde::likelihood::{nll, Divergence, LikelihoodOptions};
use scoresde::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use scoresde::nn::{Mlp, MlpConfig, ScoreNet};
use scoresde::sde::SdeConfig;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(500), |s| s.parse())?;
    let divergence = match args.get(2).map_or("exact", |s| s.as_str()) {
        "exact" => Divergence::Exact,
        _ => Divergence::Hutchinson { probes: 1 },
    };
    let sde = SdeConfig::by_name("vp")?;
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
    let model = ScoreModel::new(config, ScoreNet::Mlp(Mlp::new(net, 3)?))?;
    let x = Array2::from_shape_fn((n, 2), |(i, j)| ((i * 7 + j * 3) % 17) as f32 * 0.5 - 4.0);
    let opts = LikelihoodOptions {
        divergence,
        ..LikelihoodOptions::default()
    };
    let start = std::time::Instant::now();
    let r = nll(model.sde(), &model, x.view(), &opts)?;
    let secs = start.elapsed().as_secs_f64();
    let sum = r
        .nll
        .iter()
        .fold(0u64, |h, v| h.rotate_left(5) ^ v.to_bits());
    println!(
        "{n} points: {secs:.3} s, NFE {} per point, {:.4} nats/dim, checksum {sum:016x}",
        r.nfe, r.nats_per_dim
    );
    Ok(())
}
