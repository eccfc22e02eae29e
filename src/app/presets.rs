//! Training defaults of the image data sets: network, batch, steps,
//! learning rate and preview interval per set ([`preset`]).

use crate::convert::Output;
use crate::nn::{FourierConfig, MlpConfig, NetConfig, UNetConfig};
use crate::sde::SdeConfig;
use crate::train::target::Density;
use crate::train::{LrDecay, Objective, Recipe, EMA_WARMUP};

/// Standard deviation per coordinate of the checkerboard (uniform on 8
/// 2×2 squares of the [-4, 4]² board: 8/√12 ≈ 2.3), EDM's σ_data.
pub const CHECKERBOARD_SIGMA_DATA: f64 = 2.3;

/// The best recipe measured for data set `name` within the data set's
/// default step count (same wall time per step; the ablations are in
/// docs/recipes.md), all with learning-rate warm-up and cosine decay and
/// the EMA warm-up:
/// - the 2-D sets: EDM preconditioning with σ_data =
///   [`CHECKERBOARD_SIGMA_DATA`] and the log-normal σ density
///   [`TOY_LOGNORMAL`] (measured on the checkerboard);
/// - digits: EDM preconditioning with σ_data = 0.5 (pixels in [−1, 1]) and
///   EDM's log-normal density;
/// - emoji: the SPEC objective (ε, uniform t) with the schedules (EDM
///   measured worse on it);
/// - the other image sets keep the SPEC recipe: `--target edm` measured
///   worse on MNIST (docs/recipes.md), which gains from labels instead
///   ([`tuned_conditional`]).
///
/// Any SDE takes the same recipe.
pub fn tuned_recipe(name: &str, sde: &SdeConfig) -> Recipe {
    let _ = sde;
    let schedules = Recipe {
        lr_warmup: 200,
        lr_decay: LrDecay::Cosine,
        final_lr: 0.05,
        ema_warmup: Some(EMA_WARMUP),
        ..Recipe::default()
    };
    let edm = |sigma_data: f64| Objective {
        output: Some(Output::Edm { sigma_data }),
        ..Objective::parse("edm").expect("edm is a registered target")
    };
    if crate::data::Toy::from_name(name).is_ok() {
        Recipe {
            target: Objective {
                density: TOY_LOGNORMAL,
                ..edm(CHECKERBOARD_SIGMA_DATA)
            }
            .spec(),
            ..schedules
        }
    } else if name == "emoji" {
        schedules
    } else if name == "digits" {
        Recipe {
            target: edm(0.5).spec(),
            ..schedules
        }
    } else {
        Recipe::default()
    }
}

/// The log-normal σ̃ density of the 2-D sets' tuned recipe, ln σ̃ ~
/// N(−2, 1.5²): centred lower and wider than EDM's N(−1.2, 1.2²), because
/// the checkerboard's edges are decided at σ̃ ≈ 0.01–0.1.
pub const TOY_LOGNORMAL: Density = Density::LogNormal {
    mean: -2.0,
    std: 1.5,
};

/// Whether `train --data name` trains class-conditional by default (on the
/// data's labels, with label dropout): MNIST, where the labels took the
/// Fréchet distance from 1.41× to below the floor in the same steps
/// (docs/recipes.md). `sample` then draws the labels from the training
/// labels' frequencies.
pub fn tuned_conditional(name: &str) -> bool {
    name == "mnist"
}

/// The network of the tuned recipe for data set `name`: for the 2-D sets
/// the SPEC MLP with [`TOY_FOURIER`] features of the input coordinates
/// (docs/recipes.md); `None` for the image sets (their [`preset`]).
pub fn tuned_mlp(name: &str) -> Option<MlpConfig> {
    crate::data::Toy::from_name(name).ok().map(|_| MlpConfig {
        fourier: Some(TOY_FOURIER),
        ..MlpConfig::new(2)
    })
}

/// The Fourier features of the 2-D sets' tuned MLP.
pub const TOY_FOURIER: FourierConfig = FourierConfig {
    freqs: 6,
    scale: 32.0,
};

/// Training defaults for an image set (chosen for the time per training
/// step; the measurements are in BENCHMARKS.md).
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePreset {
    pub net: NetConfig,
    pub batch: usize,
    pub steps: u64,
    pub lr: f64,
    /// Steps between preview grids.
    pub sample_every: u64,
}

/// Defaults for `c×h×w` images of data set `name`.
pub fn preset(name: &str, c: usize, h: usize, w: usize) -> ImagePreset {
    let unet = |widths: Vec<usize>| {
        NetConfig::UNet(UNetConfig {
            widths,
            time_dim: 64,
            ..UNetConfig::new(c, h, w)
        })
    };
    match name {
        // ~30 ms/step at batch 64: 6,000 steps ≈ 3 min.
        "digits" => ImagePreset {
            net: unet(vec![16, 32]),
            batch: 64,
            steps: 6_000,
            lr: 2e-3,
            sample_every: 500,
        },
        // 28×28: ~160 ms/step at batch 32 on one core (2 cores shared by
        // two trainings); 10,000 steps ≈ 30 min.
        "mnist" => ImagePreset {
            net: unet(vec![16, 32, 32]),
            batch: 32,
            steps: 10_000,
            lr: 2e-3,
            sample_every: 1_000,
        },
        _ if h <= 8 && w <= 8 => ImagePreset {
            net: NetConfig::Mlp(MlpConfig::new(c * h * w)),
            batch: 128,
            steps: 20_000,
            lr: 1e-3,
            sample_every: 2_000,
        },
        // emoji (3×16×16) ~110 ms/step at batch 64 on one core: 12,000
        // steps ≈ 25 min; mnist16 a little less.
        _ => ImagePreset {
            net: unet(if h.is_multiple_of(4) && w.is_multiple_of(4) {
                vec![16, 32, 32]
            } else {
                vec![16, 32]
            }),
            batch: 64,
            steps: 12_000,
            lr: 2e-3,
            sample_every: 1_000,
        },
    }
}
