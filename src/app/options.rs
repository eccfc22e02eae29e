//! Option resolution of a training run: what the user set, else what a
//! resumed checkpoint stored, else the image set's [`preset`], else the
//! defaults of [`TrainOptions::spec`] (the one place they are written).

use std::path::{Path, PathBuf};

use super::presets::{preset, tuned_recipe, ImagePreset};
use crate::data::{Toy, TrainData};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::nn::{MlpConfig, NetConfig, UNetConfig};
use crate::sde::SdeConfig;
use crate::train::checkpoint::Checkpoint;
use crate::train::TrainConfig;
use crate::train::{Objective, OnNonFinite, Recipe, TrainOptions};

/// Data set of a run that names none.
pub const DEFAULT_DATA: Toy = Toy::Checkerboard;
/// Noise process of a run that names none.
pub const DEFAULT_SDE: &str = "vp";
/// Parent folder of a fresh run's checkpoint folder (`runs/<data>`).
pub const DEFAULT_RUNS_DIR: &str = "runs";

/// The settings a user gave for a training run (`None`: not given), by
/// concern. `out` is the checkpoint folder of a fresh run; `resume` the
/// folder of the run to continue (its checkpoint is loaded by the caller
/// and passed to [`resolve_train`]).
#[derive(Clone, Debug, Default)]
pub struct TrainRequest {
    pub data: DataRequest,
    pub net: NetRequest,
    pub hyper: HyperRequest,
    pub run: RunRequest,
    pub out: Option<PathBuf>,
    pub resume: Option<PathBuf>,
}

/// The data set (a name or an image folder) and, for a folder, the side
/// images are resized to and their channels (1 or 3).
#[derive(Clone, Debug, Default)]
pub struct DataRequest {
    pub name: Option<String>,
    pub image_size: Option<usize>,
    pub channels: Option<usize>,
}

/// The network: its kind for image data (`unet` or `mlp`), the U-Net's
/// channel widths per level (`widths`), residual blocks per level, levels
/// with self-attention and their heads, and dropout rate, the MLP's hidden
/// width, layer count and input features (`hidden`, `depth`, `fourier`).
#[derive(Clone, Debug, Default)]
pub struct NetRequest {
    pub kind: Option<String>,
    /// Channel widths per level, e.g. `[32, 64]`.
    pub widths: Option<Vec<usize>>,
    pub res_blocks: Option<usize>,
    /// Sides of the levels with self-attention, e.g. `[7]`.
    pub attention: Option<Vec<usize>>,
    pub attn_heads: Option<usize>,
    /// Dropout rate of the residual blocks, in [0, 1).
    pub dropout: Option<f64>,
    pub hidden: Option<usize>,
    pub depth: Option<usize>,
    /// Fourier features of the MLP input, `FREQS:SCALE` or `off`
    /// ([`crate::nn::FourierConfig::parse`]).
    pub fourier: Option<String>,
}

impl NetRequest {
    /// The U-Net-only setting the request gives, if any (flag name).
    fn unet_only(&self) -> Option<&'static str> {
        [
            ("widths", self.widths.is_some()),
            ("res-blocks", self.res_blocks.is_some()),
            ("attention", self.attention.is_some()),
            ("attn-heads", self.attn_heads.is_some()),
            ("dropout", self.dropout.is_some()),
        ]
        .into_iter()
        .find_map(|(n, set)| set.then_some(n))
    }
}

/// Total steps, batch size, Adam learning rate (`lr`), EMA decay (`ema`)
/// and seed.
#[derive(Clone, Debug, Default)]
pub struct HyperRequest {
    pub steps: Option<u64>,
    pub batch: Option<usize>,
    /// May differ from a resumed run's.
    pub lr: Option<f64>,
    pub ema: Option<f64>,
    pub seed: Option<u64>,
    /// `spec` (docs/SPEC.md's recipe, bit for bit) or `tuned` (the data
    /// set's best measured recipe, [`super::presets::tuned_recipe`]).
    pub recipe: Option<String>,
    /// A training target spec replacing the recipe's ([`crate::train::target`]).
    pub target: Option<String>,
    /// Horizontal flips of image batches (image data only).
    pub flip: Option<bool>,
    /// Train a class-conditional network on the data's labels (`None`:
    /// the resumed run's, else the tuned recipe's
    /// [`super::presets::tuned_conditional`], else unconditional).
    pub conditional: Option<bool>,
    /// Label dropout of a conditional run (default
    /// [`crate::train::DEFAULT_LABEL_DROPOUT`], or the resumed run's).
    pub label_dropout: Option<f64>,
}

/// The noise process by name (`vp`, `subvp`, `ve`), the steps between
/// preview grids (image data only) and between checkpoints, and what to
/// do on a non-finite loss or gradient.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    pub sde: Option<String>,
    pub sample_every: Option<u64>,
    pub checkpoint_every: Option<u64>,
    /// Stop (the default) or skip such a step.
    pub on_nonfinite: Option<OnNonFinite>,
}

/// The options of the run `req` asks for, continuing `resumed` if given:
/// every setting is the request's, else the checkpoint's, else the
/// preset's, else the default. Errors name the setting and the value.
pub fn resolve_train(req: &TrainRequest, resumed: Option<&Checkpoint>) -> Result<TrainOptions> {
    let defaults = TrainOptions::spec(DEFAULT_DATA);
    let on_nonfinite = req.run.on_nonfinite.unwrap_or(defaults.on_nonfinite);
    let saved = resumed.map(|c| {
        let train = c.state.as_ref().map(|s| s.train.clone());
        (c.model.config.clone(), train)
    });
    let data = resolve_data(req, saved.as_ref())?;
    if data.image_shape().is_none() {
        if let Some(k) = req.run.sample_every {
            return Err(Error::invalid(
                "sample-every",
                k,
                format!(
                    "no sample-every: previews are for image data, and {} is 2-D",
                    data.name()
                ),
            ));
        }
    }
    let sde = match (&req.run.sde, &saved) {
        (Some(name), _) => SdeConfig::by_name(name)?,
        (None, Some((cfg, _))) => cfg.sde,
        (None, None) => SdeConfig::by_name(DEFAULT_SDE)?,
    };
    let preset = data
        .image_shape()
        .map(|(c, h, w)| preset(data.name(), c, h, w));
    let net = resolve_net(req, &data, saved.as_ref().map(|(c, _)| c), preset.as_ref())?;
    let tc = saved.as_ref().and_then(|(_, t)| t.clone());
    let net = resolve_classes(req, &data, net, saved.is_some())?;
    let label_dropout = req
        .hyper
        .label_dropout
        .or(tc.as_ref().and_then(|t| t.label_dropout))
        .unwrap_or(crate::train::DEFAULT_LABEL_DROPOUT);
    let out = req
        .resume
        .clone()
        .or(req.out.clone())
        .unwrap_or_else(|| Path::new(DEFAULT_RUNS_DIR).join(data.name()));
    let p = preset.as_ref();
    let recipe = resolve_recipe(req, &data, &sde, tc.as_ref())?;
    Ok(TrainOptions {
        recipe,
        steps: req
            .hyper
            .steps
            .or(p.map(|p| p.steps))
            .unwrap_or(defaults.steps),
        batch: req
            .hyper
            .batch
            .or(tc.as_ref().map(|t| t.batch))
            .or(p.map(|p| p.batch))
            .unwrap_or(defaults.batch),
        lr: req
            .hyper
            .lr
            .or(tc.as_ref().map(|t| t.lr))
            .or(p.map(|p| p.lr))
            .unwrap_or(defaults.lr),
        ema_decay: req
            .hyper
            .ema
            .or(tc.as_ref().map(|t| t.ema_decay))
            .unwrap_or(defaults.ema_decay),
        seed: req
            .hyper
            .seed
            .or(tc.as_ref().map(|t| t.seed))
            .unwrap_or(defaults.seed),
        out_dir: Some(out),
        checkpoint_every: req
            .run
            .checkpoint_every
            .unwrap_or(defaults.checkpoint_every),
        progress: false,
        on_nonfinite,
        sample_every: req
            .run
            .sample_every
            .or(p.map(|p| p.sample_every))
            .unwrap_or(defaults.sample_every),
        data,
        sde,
        net,
        label_dropout,
    })
}

/// The network with the data's classes for a conditional request; a
/// resumed run keeps the checkpoint's (conditional or not).
fn resolve_classes(
    req: &TrainRequest,
    data: &TrainData,
    net: NetConfig,
    resumed: bool,
) -> Result<NetConfig> {
    let tuned = matches!(req.hyper.recipe.as_deref(), None | Some("tuned"));
    let conditional = match (req.hyper.conditional, resumed) {
        (Some(c), _) => c,
        (None, true) => net.n_classes() > 0,
        (None, false) => tuned && super::presets::tuned_conditional(data.name()),
    };
    if resumed && !conditional && net.n_classes() > 0 {
        return Err(Error::invalid(
            "conditional",
            "off",
            "no conditional off on resume: the run being resumed is class-conditional",
        ));
    }
    if !conditional {
        if let Some(p) = req.hyper.label_dropout {
            return Err(Error::invalid(
                "label-dropout",
                p,
                "no label-dropout: it applies to conditional runs",
            ));
        }
        return Ok(net);
    }
    if resumed && net.n_classes() == 0 {
        return Err(Error::invalid(
            "conditional",
            "on",
            "no conditional on resume: the run being resumed is unconditional",
        ));
    }
    match data.n_classes() {
        Some(k) if k > 0 => Ok(net.with_classes(k)),
        _ => Err(Error::invalid(
            "conditional",
            data.name(),
            "a labelled data set (mnist, mnist16, digits, checkerboard, 8gaussians, 25gaussians)",
        )),
    }
}

/// The recipe: a resumed run's, else the named one (`spec` or `tuned`, the
/// default), with the target the request names.
fn resolve_recipe(
    req: &TrainRequest,
    data: &TrainData,
    sde: &SdeConfig,
    saved: Option<&TrainConfig>,
) -> Result<Recipe> {
    let mut recipe = match (req.hyper.recipe.as_deref(), saved) {
        (None, Some(t)) => t.recipe.clone().unwrap_or_default(),
        (None | Some("tuned"), _) => tuned_recipe(data.name(), sde),
        (Some("spec"), _) => Recipe::default(),
        (Some(other), _) => return Err(Error::invalid("recipe", other, "spec or tuned")),
    };
    if let Some(t) = &req.hyper.target {
        recipe.target = Objective::parse(t)?.spec();
    }
    if let Some(f) = req.hyper.flip {
        recipe.flip = f;
    }
    recipe.validate()?;
    Ok(recipe)
}

/// The data set: named, or the checkpoint's (a folder run's stored size and
/// channels), or the default.
fn resolve_data(
    req: &TrainRequest,
    saved: Option<&(ModelConfig, Option<TrainConfig>)>,
) -> Result<TrainData> {
    let fingerprint = saved
        .and_then(|(_, t)| t.as_ref())
        .and_then(|t| t.data.clone());
    let is_image_set = |name: &str| crate::data::source::IMAGE_SETS.contains(&name);
    match (&req.data.name, saved) {
        (Some(name), _) => {
            // On resume of a folder run, size and channels default to the
            // stored ones (a different folder is then named by the check).
            let stored = fingerprint.as_ref().filter(|fp| !fp.is_bundled());
            let is_folder =
                Path::new(name).is_dir() && Toy::from_name(name).is_err() && !is_image_set(name);
            let (size, channels) = match stored {
                Some(fp) if is_folder => (
                    req.data.image_size.or(Some(fp.image_size)),
                    req.data.channels.or(Some(fp.channels)),
                ),
                _ => (req.data.image_size, req.data.channels),
            };
            TrainData::by_name(name, size, channels)
        }
        (None, Some((cfg, _))) => match &fingerprint {
            // A bundled set: loaded by name, its files compared on resume.
            Some(fp) if fp.is_bundled() => {
                TrainData::by_name(&cfg.data, req.data.image_size, req.data.channels)
            }
            // A folder run: its absolute path, size and channels are stored.
            Some(fp) => {
                for (name, v, saved) in [
                    ("image-size", req.data.image_size, fp.image_size),
                    ("channels", req.data.channels, fp.channels),
                ] {
                    if let Some(v) = v.filter(|&v| v != saved) {
                        return Err(Error::invalid(
                            name,
                            v,
                            format!("the checkpoint's {saved} (leave {name} unset when resuming)"),
                        ));
                    }
                }
                TrainData::from_fingerprint(&cfg.data, fp)
            }
            None => {
                let is_folder = Toy::from_name(&cfg.data).is_err() && !is_image_set(&cfg.data);
                let (size, channels) = match (&cfg.net, is_folder) {
                    (_, false) => (req.data.image_size, req.data.channels),
                    (NetConfig::UNet(u), true) => (Some(u.height), Some(u.channels)),
                    (NetConfig::Mlp(_), true) => (req.data.image_size, req.data.channels),
                };
                TrainData::by_name(&cfg.data, size, channels)
            }
        },
        (None, None) => {
            if let Some((name, v)) = req
                .data
                .image_size
                .map(|v| ("image-size", v))
                .or(req.data.channels.map(|v| ("channels", v)))
            {
                return Err(Error::invalid(
                    name,
                    v,
                    format!(
                        "no {name}: it applies to folders of images (name a folder as the data)"
                    ),
                ));
            }
            Ok(TrainData::Toy(DEFAULT_DATA))
        }
    }
}

/// The network: the checkpoint's, else the preset's or the one named, with
/// the widths (U-Net) or hidden size and depth (MLP) the request sets.
fn resolve_net(
    req: &TrainRequest,
    data: &TrainData,
    saved: Option<&ModelConfig>,
    preset: Option<&ImagePreset>,
) -> Result<NetConfig> {
    let base = match (saved, preset) {
        (Some(cfg), _) => cfg.net.clone(),
        (None, Some(p)) => match req.net.kind.as_deref() {
            None => p.net.clone(),
            Some("mlp") => MlpConfig::new(data.dim()).into(),
            Some("unet") => match &p.net {
                NetConfig::UNet(u) => u.clone().into(),
                NetConfig::Mlp(_) => {
                    let (c, h, w) = data.image_shape().unwrap_or((1, 1, 1));
                    UNetConfig::new(c, h, w).into()
                }
            },
            Some(other) => return Err(Error::invalid("net", other, "unet or mlp")),
        },
        (None, None) => {
            if let Some(other) = req.net.kind.as_deref().filter(|&n| n != "mlp") {
                return Err(Error::invalid(
                    "net",
                    other,
                    "mlp (toy data sets use the MLP)",
                ));
            }
            // The tuned recipe's network (Fourier features), else SPEC's.
            match req.hyper.recipe.as_deref() {
                Some("spec") => MlpConfig::new(2),
                _ => super::presets::tuned_mlp(data.name()).unwrap_or(MlpConfig::new(2)),
            }
            .into()
        }
    };
    match &base {
        NetConfig::Mlp(_) if req.net.unet_only().is_some() => {
            return Err(Error::Mismatch(format!(
                "{} applies to the U-Net; this run uses the MLP (set hidden/depth, or net = unet)",
                req.net.unet_only().unwrap_or_default()
            )))
        }
        NetConfig::UNet(_)
            if req.net.hidden.is_some() || req.net.depth.is_some() || req.net.fourier.is_some() =>
        {
            return Err(Error::Mismatch(
                "hidden/depth/fourier set the MLP; this run uses the U-Net (set widths, or net = mlp)"
                    .into(),
            ))
        }
        _ => {}
    }
    Ok(match base {
        NetConfig::Mlp(m) => NetConfig::Mlp(MlpConfig {
            hidden: req.net.hidden.unwrap_or(m.hidden),
            depth: req.net.depth.unwrap_or(m.depth),
            fourier: match &req.net.fourier {
                Some(f) => crate::nn::FourierConfig::parse(f)?,
                None => m.fourier,
            },
            ..m
        }),
        NetConfig::UNet(u) => NetConfig::UNet(UNetConfig {
            widths: req.net.widths.clone().unwrap_or(u.widths.clone()),
            res_blocks: req.net.res_blocks.unwrap_or(u.res_blocks),
            attention: req.net.attention.clone().unwrap_or(u.attention.clone()),
            attn_heads: req.net.attn_heads.unwrap_or(u.attn_heads),
            dropout: req.net.dropout.unwrap_or(u.dropout),
            ..u
        }),
    })
}
