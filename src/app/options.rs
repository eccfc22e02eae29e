//! Option resolution of a training run: what the user set, else what a
//! resumed checkpoint stored, else the image set's [`preset`], else the
//! defaults of [`TrainOptions::spec`] (the one place they are written).

use std::path::{Path, PathBuf};

use super::presets::{preset, ImagePreset};
use crate::checkpoint::{Checkpoint, TrainConfig};
use crate::data::{Toy, TrainData};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::nn::{MlpConfig, NetConfig, UNetConfig};
use crate::sde::SdeConfig;
use crate::train::{OnNonFinite, TrainOptions};

/// Data set of a run that names none.
pub const DEFAULT_DATA: Toy = Toy::Checkerboard;
/// Noise process of a run that names none.
pub const DEFAULT_SDE: &str = "vp";
/// Parent folder of a fresh run's checkpoint folder (`runs/<data>`).
pub const DEFAULT_RUNS_DIR: &str = "runs";

/// The settings a user gave for a training run (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct TrainRequest {
    pub data: Option<String>,
    pub image_size: Option<usize>,
    pub channels: Option<usize>,
    pub net: Option<String>,
    pub widths: Option<Vec<usize>>,
    pub sample_every: Option<u64>,
    pub sde: Option<String>,
    pub steps: Option<u64>,
    pub batch: Option<usize>,
    pub lr: Option<f64>,
    pub ema: Option<f64>,
    pub hidden: Option<usize>,
    pub depth: Option<usize>,
    pub seed: Option<u64>,
    pub out: Option<PathBuf>,
    /// The folder of the run to continue (the checkpoint is loaded by the
    /// caller and passed to [`resolve_train`]).
    pub resume: Option<PathBuf>,
    pub checkpoint_every: Option<u64>,
    pub on_nonfinite: Option<OnNonFinite>,
}

/// The options of the run `req` asks for, continuing `resumed` if given:
/// every setting is the request's, else the checkpoint's, else the
/// preset's, else the default. Errors name the setting and the value.
pub fn resolve_train(req: &TrainRequest, resumed: Option<&Checkpoint>) -> Result<TrainOptions> {
    let defaults = TrainOptions::spec(DEFAULT_DATA);
    let on_nonfinite = req.on_nonfinite.unwrap_or(defaults.on_nonfinite);
    let saved = resumed.map(|c| {
        let train = c.state.as_ref().map(|s| s.train.clone());
        (c.model.config.clone(), train)
    });
    let data = resolve_data(req, saved.as_ref())?;
    if data.image_shape().is_none() {
        if let Some(k) = req.sample_every {
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
    let sde = match (&req.sde, &saved) {
        (Some(name), _) => SdeConfig::by_name(name)?,
        (None, Some((cfg, _))) => cfg.sde,
        (None, None) => SdeConfig::by_name(DEFAULT_SDE)?,
    };
    let preset = data
        .image_shape()
        .map(|(c, h, w)| preset(data.name(), c, h, w));
    let net = resolve_net(req, &data, saved.as_ref().map(|(c, _)| c), preset.as_ref())?;
    let tc = saved.as_ref().and_then(|(_, t)| t.clone());
    let out = req
        .resume
        .clone()
        .or(req.out.clone())
        .unwrap_or_else(|| Path::new(DEFAULT_RUNS_DIR).join(data.name()));
    let p = preset.as_ref();
    Ok(TrainOptions {
        steps: req.steps.or(p.map(|p| p.steps)).unwrap_or(defaults.steps),
        batch: req
            .batch
            .or(tc.as_ref().map(|t| t.batch))
            .or(p.map(|p| p.batch))
            .unwrap_or(defaults.batch),
        lr: req
            .lr
            .or(tc.as_ref().map(|t| t.lr))
            .or(p.map(|p| p.lr))
            .unwrap_or(defaults.lr),
        ema_decay: req
            .ema
            .or(tc.as_ref().map(|t| t.ema_decay))
            .unwrap_or(defaults.ema_decay),
        seed: req
            .seed
            .or(tc.as_ref().map(|t| t.seed))
            .unwrap_or(defaults.seed),
        out_dir: Some(out),
        checkpoint_every: req.checkpoint_every.unwrap_or(defaults.checkpoint_every),
        progress: false,
        on_nonfinite,
        sample_every: req
            .sample_every
            .or(p.map(|p| p.sample_every))
            .unwrap_or(defaults.sample_every),
        data,
        sde,
        net,
    })
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
    match (&req.data, saved) {
        (Some(name), _) => {
            // On resume of a folder run, size and channels default to the
            // stored ones (a different folder is then named by the check).
            let stored = fingerprint.as_ref().filter(|fp| !fp.is_bundled());
            let is_folder =
                Path::new(name).is_dir() && Toy::from_name(name).is_err() && !is_image_set(name);
            let (size, channels) = match stored {
                Some(fp) if is_folder => (
                    req.image_size.or(Some(fp.image_size)),
                    req.channels.or(Some(fp.channels)),
                ),
                _ => (req.image_size, req.channels),
            };
            TrainData::by_name(name, size, channels)
        }
        (None, Some((cfg, _))) => match &fingerprint {
            // A bundled set: loaded by name, its files compared on resume.
            Some(fp) if fp.is_bundled() => {
                TrainData::by_name(&cfg.data, req.image_size, req.channels)
            }
            // A folder run: its absolute path, size and channels are stored.
            Some(fp) => {
                for (name, v, saved) in [
                    ("image-size", req.image_size, fp.image_size),
                    ("channels", req.channels, fp.channels),
                ] {
                    if let Some(v) = v.filter(|&v| v != saved) {
                        return Err(Error::invalid(
                            name,
                            v,
                            format!(
                                "the checkpoint's {saved} (leave {name} unset when resuming)"
                            ),
                        ));
                    }
                }
                TrainData::from_fingerprint(&cfg.data, fp)
            }
            None => {
                let is_folder = Toy::from_name(&cfg.data).is_err() && !is_image_set(&cfg.data);
                let (size, channels) = match (&cfg.net, is_folder) {
                    (_, false) => (req.image_size, req.channels),
                    (NetConfig::UNet(u), true) => (Some(u.height), Some(u.channels)),
                    (NetConfig::Mlp(_), true) => (req.image_size, req.channels),
                };
                TrainData::by_name(&cfg.data, size, channels)
            }
        },
        (None, None) => {
            if let Some((name, v)) = req
                .image_size
                .map(|v| ("image-size", v))
                .or(req.channels.map(|v| ("channels", v)))
            {
                return Err(Error::invalid(
                    name,
                    v,
                    format!("no {name}: it applies to folders of images (name a folder as the data)"),
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
        (None, Some(p)) => match req.net.as_deref() {
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
            if let Some(other) = req.net.as_deref().filter(|&n| n != "mlp") {
                return Err(Error::invalid(
                    "net",
                    other,
                    "mlp: toy data sets use the MLP (mlp)",
                ));
            }
            MlpConfig::new(2).into()
        }
    };
    match &base {
        NetConfig::Mlp(_) if req.widths.is_some() => {
            return Err(Error::Mismatch(
                "widths set the U-Net; this run uses the MLP (set hidden/depth, or net = unet)"
                    .into(),
            ))
        }
        NetConfig::UNet(_) if req.hidden.is_some() || req.depth.is_some() => {
            return Err(Error::Mismatch(
                "hidden/depth set the MLP; this run uses the U-Net (set widths, or net = mlp)"
                    .into(),
            ))
        }
        _ => {}
    }
    Ok(match base {
        NetConfig::Mlp(m) => NetConfig::Mlp(MlpConfig {
            hidden: req.hidden.unwrap_or(m.hidden),
            depth: req.depth.unwrap_or(m.depth),
            ..m
        }),
        NetConfig::UNet(u) => NetConfig::UNet(UNetConfig {
            widths: req.widths.clone().unwrap_or(u.widths.clone()),
            ..u
        }),
    })
}
