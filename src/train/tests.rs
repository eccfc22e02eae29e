//! The weighted loss of every training target against finite differences.

use super::{Recipe, TrainOptions, Trainer};
use crate::data::Toy;
use crate::nn::MlpConfig;

/// d loss / dθ_i by central differences in f64 of the f32 network's loss
/// matches the backward pass: |fd − g| ≤ 2% |g| + 2e-3 (h = 1e-3; the f32
/// outputs round the loss at ~1e-7, i.e. 1e-4 in the quotient).
#[test]
fn every_target_loss_matches_finite_differences() {
    for (sde, target) in [
        ("vp", "eps"),
        ("vp", "eps:min_snr=5,density=lognormal"),
        ("vp", "x0:min_snr=5"),
        ("vp", "v"),
        ("ve", "edm:sigma_data=0.5"),
        ("vp", "edm"),
        ("linear", "velocity"),
    ] {
        let mut opts = TrainOptions::spec(Toy::Checkerboard);
        opts.sde = crate::sde::SdeConfig::by_name(sde).unwrap();
        opts.net = MlpConfig {
            hidden: 16,
            depth: 1,
            ..MlpConfig::new(2)
        }
        .into();
        opts.batch = 8;
        opts.recipe = Recipe {
            target: super::Objective::parse(target).unwrap().spec(),
            ..Recipe::default()
        };
        let mut tr = Trainer::new(opts).unwrap();
        tr.draw_batch();
        tr.batch_loss(true);
        let grads = tr.grads.clone();
        let n = grads.len();
        for i in (0..n).step_by(n / 13 + 1) {
            let h = 1e-3f32;
            let p0 = tr.net.params()[i];
            tr.net.params_mut()[i] = p0 + h;
            let up = tr.batch_loss(false);
            tr.net.params_mut()[i] = p0 - h;
            let down = tr.batch_loss(false);
            tr.net.params_mut()[i] = p0;
            let fd = (up - down) / (2.0 * h as f64);
            let g = grads[i] as f64;
            assert!(
                (fd - g).abs() <= 0.02 * g.abs() + 2e-3,
                "{sde} {target} param {i}: fd {fd} vs backward {g}"
            );
        }
    }
}
