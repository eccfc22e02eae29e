//! The subcommands' options (clap `Args`) and the parsers of their values.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use scoresde::app::demo;
use scoresde::samplers;

#[derive(Args)]
pub(crate) struct InpaintArgs {
    /// Checkpoint directory of an image model of --data's shape.
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Instead of a model: the exact empirical oracle, `<data>-empirical` (e.g. digits-empirical).
    #[arg(long)]
    pub(crate) oracle: Option<String>,
    /// Image set: digits, mnist, mnist16 or emoji (the training split).
    #[arg(long, default_value = "digits")]
    pub(crate) data: String,
    /// Image index, or a comma-separated list (`3,17,40`).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub(crate) index: String,
    /// Hidden part: center, bottom, left, random:P, a PNG of the image size (white = hidden),
    /// or colorize (colour images: keep each pixel's grey level, generate its colour).
    #[arg(long, default_value = "bottom")]
    pub(crate) mask: String,
    /// replacement (score_sde's, with any --sampler) or repaint (resampling, --jump, --resample).
    #[arg(long, default_value = "repaint")]
    pub(crate) method: String,
    /// Sampler spec for --method replacement [default: em].
    #[arg(long)]
    pub(crate) sampler: Option<String>,
    /// Steps [default: 100 for repaint, 200 for replacement].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) steps: Option<usize>,
    /// RePaint jump length.
    #[arg(long, default_value_t = 10, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) jump: usize,
    /// RePaint resample count (1 = plain replacement on the ancestral step).
    #[arg(long, default_value_t = 3, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) resample: usize,
    /// Completions per image.
    #[arg(short, long, default_value_t = 4, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) n: usize,
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) seed: u64,
    /// Output directory (inpaint.png).
    #[arg(long, default_value = "outputs/inpaint")]
    pub(crate) out: PathBuf,
    /// Overwrite an existing inpaint.png.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// TCP port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Address to listen on; other than 127.0.0.1 makes the page reachable from other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Directory whose checkpoints the page offers; no file outside it is read.
    #[arg(long, default_value = "runs")]
    pub(crate) runs: PathBuf,
    /// Jobs running at once.
    #[arg(long, default_value_t = 2, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) max_jobs: usize,
}

/// Where scores come from: a trained model or an exact oracle.
#[derive(Args)]
pub(crate) struct ScoreArgs {
    /// Checkpoint directory written by `scoresde train`.
    #[arg(long, conflicts_with_all = ["oracle", "sde"], required_unless_present = "oracle")]
    pub(crate) model: Option<PathBuf>,
    /// Exact-score oracle instead of a model: checkerboard, 8gaussians or 25gaussians; for `compare` also digits-empirical, mnist-empirical, mnist16-empirical, emoji-empirical (the exact score of the noised training images).
    #[arg(long)]
    pub(crate) oracle: Option<String>,
    /// Noise process of the oracle: vp, subvp, ve (a model brings its own).
    #[arg(long)]
    pub(crate) sde: Option<String>,
}

#[derive(Args)]
pub(crate) struct ScheduleArgs {
    #[command(flatten)]
    pub(crate) score: ScoreArgs,
    /// Sampler spec whose grid is optimised (a deterministic one), e.g. `dpm-solver++`.
    #[arg(long)]
    pub(crate) sampler: String,
    /// NFE budget K.
    #[arg(long)]
    pub(crate) nfe: usize,
    /// Prior draws the error is averaged over.
    #[arg(short, long, default_value_t = 512)]
    pub(crate) n: usize,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Output JSON file, read back by `schedule=FILE`.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Generated images: a .npy file ([n, c*h*w] or [n, c, h, w], values in [-1, 1]) or a folder of PNG/JPEG files.
    #[arg(long)]
    pub(crate) samples: PathBuf,
    /// Data set the images imitate: mnist, mnist16, digits, emoji.
    #[arg(long)]
    pub(crate) data: String,
}

#[derive(Args)]
pub(crate) struct CompareArgs {
    #[command(flatten)]
    pub(crate) score: ScoreArgs,
    /// Reference data set (default: the model's data set / the oracle's).
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Comma-separated sampler specs, e.g. `em,ddpm,edm:churn=10,s_noise=1.003`
    /// (a token that is not a sampler name continues the spec before it;
    /// default: every registered sampler that runs on the SDE).
    #[arg(long)]
    pub(crate) samplers: Option<String>,
    /// Comma-separated schedules to cross every sampler with (`all`: every
    /// named schedule), e.g. `uniform,logsnr,karras` (default: each sampler's own).
    #[arg(long, value_delimiter = ',')]
    pub(crate) schedules: Option<Vec<String>>,
    /// Comma-separated NFE budgets [default: 5,10,20,50,100,250,500,1000;
    /// for images 5,10,20,50,100,250].
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = parse_usize, allow_negative_numbers = true
    )]
    pub(crate) nfe: Option<Vec<usize>>,
    /// Samples per run [default: 5000 with a 2-D oracle, 1000 with a 2-D
    /// model, 250 for images].
    #[arg(short, long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) n: Option<usize>,
    /// Sampling seeds (and independent reference draws) per cell.
    #[arg(long, default_value_t = scoresde::app::compare::DEFAULT_SEEDS, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) seeds: usize,
    /// Base seed.
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) seed: u64,
    /// Name of the comparison (default: <data>-<sde> or the model folder's name).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Parent output directory; results go to <out>/<name>/.
    #[arg(long, default_value = "runs/compare")]
    pub(crate) out: PathBuf,
    /// Overwrite an existing comparison of the same name.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "runs/demo")]
    pub(crate) out: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = demo::DEFAULT_TRAIN_STEPS, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) train_steps: u64,
    /// Sampler steps (NFE) for both samplers.
    #[arg(long, default_value_t = demo::DEFAULT_SAMPLE_STEPS, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) sample_steps: usize,
    /// Number of samples.
    #[arg(short, long, default_value_t = 10_000, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) n: usize,
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) seed: u64,
    /// Replace the outputs (model/, results, pictures) of an earlier demo in --out.
    #[arg(long)]
    pub(crate) force: bool,
    /// Training recipe: tuned or spec (the SPEC recipe of the earlier demo).
    #[arg(long, default_value = "tuned")]
    pub(crate) recipe: String,
    /// Training target replacing the recipe's (see `train --help`).
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Noise process: vp, subvp, ve, linear.
    #[arg(long, default_value = "vp")]
    pub(crate) sde: String,
    /// The samplers, comma-separated [default: ddpm,em on VP; em,ode-heun otherwise].
    #[arg(long, value_delimiter = ',')]
    pub(crate) samplers: Option<Vec<String>>,
    /// Fourier features of the MLP input: FREQS:SCALE (octaves up to SCALE) or off
    /// [default: the recipe's, 6:32 tuned, off spec].
    #[arg(long)]
    pub(crate) fourier: Option<String>,
    /// Hidden width of the MLP [default: 256].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) hidden: Option<usize>,
    /// Number of hidden layers of the MLP [default: 3].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) depth: Option<usize>,
}

/// Options left out take their default, or with --resume the checkpoint's value.
#[derive(Args)]
pub(crate) struct TrainArgs {
    /// Data set: a toy (checkerboard, moons, swissroll, 8gaussians, 25gaussians, rings, spirals, pinwheel),
    /// images (mnist, mnist16, digits, emoji) or a folder of PNG/JPEG files [default: checkerboard].
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Side of folder images after resizing [default: 16].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) image_size: Option<usize>,
    /// Channels of folder images: 1 (grey) or 3 (RGB) [default: 3].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) channels: Option<usize>,
    /// Network for image data: unet or mlp [default: per data set].
    #[arg(long)]
    pub(crate) net: Option<String>,
    /// U-Net channel widths per level, comma-separated, e.g. 32,64 [default: per data set].
    #[arg(long, value_delimiter = ',', value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) widths: Option<Vec<usize>>,
    /// U-Net residual blocks per level on the way down and up, 1..=8 [default: 1].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) res_blocks: Option<usize>,
    /// U-Net self-attention at these level sides, comma-separated (the image
    /// side halves per level: digits 8,4; mnist 28,14,7), e.g. 7 for MNIST's
    /// lowest level; at most 256 positions per level [default: none].
    #[arg(long, value_delimiter = ',', value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) attention: Option<Vec<usize>>,
    /// Heads of each attention block; must divide the level's width [default: 1].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) attn_heads: Option<usize>,
    /// U-Net dropout rate in the residual blocks (training only), in [0, 1) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) dropout: Option<f64>,
    /// For image data: write a grid of samples to <out>/samples/ every this many steps (0 = never) [default: per data set].
    #[arg(long, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) sample_every: Option<u64>,
    /// Noise process: vp, subvp, ve, linear (the flow-matching path) [default: vp].
    #[arg(long)]
    pub(crate) sde: Option<String>,
    /// Training recipe: tuned (the data set's best measured target and
    /// schedules, and for MNIST class labels) or spec (docs/SPEC.md's, bit
    /// for bit, unconditional) [default: tuned].
    #[arg(long)]
    pub(crate) recipe: Option<String>,
    /// Training target `name[:key=value,...]` replacing the recipe's
    /// (`--help` lists them).
    #[arg(long, long_help = scoresde::train::target::help())]
    pub(crate) target: Option<String>,
    /// Mirror each training image left-right with probability 1/2 (for data
    /// whose content allows it, e.g. emoji; not digits).
    #[arg(long)]
    pub(crate) flip: bool,
    /// Train a class-conditional network on the data's labels (digits and
    /// MNIST classes, the emoji's 10 categories, the 8 or 25 Gaussians' components, the
    /// checkerboard's 8 squares), for `sample --class K --guidance W`;
    /// `--conditional` alone is `on` [default: on for mnist with the tuned
    /// recipe, off otherwise; a resumed run's].
    #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on", value_parser = parse_on_off)]
    pub(crate) conditional: Option<bool>,
    /// With --conditional: probability that a training label is replaced
    /// by the null label, which teaches the unconditional score [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) label_dropout: Option<f64>,
    /// Total training steps (a resumed run continues up to this) [default: 20000; per data set for images].
    #[arg(long, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) steps: Option<u64>,
    /// Batch size [default: 512; per data set for images].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) batch: Option<usize>,
    /// Adam learning rate [default: 0.001]; may change on --resume.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) lr: Option<f64>,
    /// EMA decay of the weights used for sampling [default: 0.999].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) ema: Option<f64>,
    /// Hidden width of the MLP [default: 256].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) hidden: Option<usize>,
    /// Number of hidden layers of the MLP [default: 3].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) depth: Option<usize>,
    /// Fourier features of the MLP input: FREQS:SCALE (octaves up to SCALE) or off
    /// [default: 6:32 on 2-D data with the tuned recipe; off with --recipe spec].
    #[arg(long)]
    pub(crate) fourier: Option<String>,
    /// Seed of initialisation, data order and noise [default: 0].
    #[arg(long, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) seed: Option<u64>,
    /// Checkpoint directory (default: runs/<data>, or the --resume directory).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = scoresde::train::DEFAULT_CHECKPOINT_EVERY, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) checkpoint_every: u64,
    /// Continue the run whose checkpoint is in DIR (falls back to DIR/prev if
    /// the last save was interrupted).
    #[arg(long, value_name = "DIR")]
    pub(crate) resume: Option<PathBuf>,
    /// On a NaN/Inf loss or gradient: stop (keep the last checkpoint, exit
    /// non-zero) or skip (leave the weights unchanged for that batch and count it).
    #[arg(long, default_value = "stop")]
    pub(crate) on_nonfinite: String,
    /// Start a fresh run even if --out already holds a checkpoint (the old one
    /// is kept in <out>/prev until the first new save completes).
    #[arg(long)]
    pub(crate) force: bool,
}

/// `train-classifier`: cross-entropy on noised labelled data.
#[derive(Args)]
pub(crate) struct TrainClassifierArgs {
    /// Labelled data set: 8gaussians, 25gaussians, checkerboard (its 8 squares), digits, mnist, mnist16, emoji.
    #[arg(long, default_value = "8gaussians")]
    pub(crate) data: String,
    /// Noise process of the score model it will guide: vp, subvp, ve, linear.
    #[arg(long, default_value = "vp")]
    pub(crate) sde: String,
    /// Training steps.
    #[arg(long, default_value_t = 2000, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) steps: u64,
    /// Batch size.
    #[arg(long, default_value_t = 256, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) batch: usize,
    /// Adam learning rate (halved for the last quarter of the steps).
    #[arg(long, default_value_t = 2e-3, allow_negative_numbers = true)]
    pub(crate) lr: f64,
    /// Points: hidden width of the MLP [default: 128].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) hidden: Option<usize>,
    /// Points: hidden layers of the MLP [default: 2].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) depth: Option<usize>,
    /// Images: channels of the three conv layers, comma-separated [default: 16,32,32].
    #[arg(long, value_delimiter = ',', value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) widths: Option<Vec<usize>>,
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) seed: u64,
    /// Output directory (classifier.safetensors) [default: runs/<data>-classifier].
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Replace a classifier already in --out.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args)]
pub(crate) struct SampleArgs {
    /// Checkpoint directory written by `scoresde train`.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Sampler spec `name[:key=value,...]`, e.g. `ddpm`, `em`,
    /// `dpm-solver++:schedule=karras` (`--help` lists them all).
    #[arg(long, default_value = "ddpm", long_help = samplers::help())]
    pub(crate) sampler: String,
    /// Sampler steps.
    #[arg(long, default_value_t = 1000, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) steps: usize,
    /// Number of samples [default: the grid's 64 for image models, 10000
    /// for 2-D models].
    #[arg(short, long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) n: Option<usize>,
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    pub(crate) seed: u64,
    /// Samples per work chunk (does not change the output).
    #[arg(long, default_value_t = 500, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) batch: usize,
    /// Output directory for samples.npy, samples.png (and reverse.gif).
    #[arg(long, default_value = "outputs/samples")]
    pub(crate) out: PathBuf,
    /// Image models: how many samples the PNG grid (and GIF) shows [default: 64].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) grid: Option<usize>,
    /// Also write an animated GIF of the reverse process.
    #[arg(long)]
    pub(crate) gif: bool,
    /// Clip the denoised estimate x̂0 to [-C, C] inside every model call
    /// ("thresholding"; images live in [-1, 1]). Bounds the error that
    /// deterministic samplers (ddim, ode-*, dpm-solver++, edm) carry from
    /// high noise levels. `off` disables it [default: 1 for image models,
    /// off for 2-D data].
    #[arg(long, value_name = "C|off", allow_hyphen_values = true)]
    pub(crate) clip_x0: Option<String>,
    /// Class-conditional models: sample class K (0 ..= classes − 1).
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    pub(crate) class: Option<usize>,
    /// Class-conditional models without --class: each sample's label comes
    /// from the training labels' frequencies (`data`), all classes equally
    /// often (`uniform`), or no label, the null-label score (`null`)
    /// [default: data].
    #[arg(long, value_name = "data|uniform|null")]
    pub(crate) labels: Option<String>,
    /// Classifier-free guidance weight w >= 0 (with --class, or per sample
    /// with --labels data|uniform),
    /// ε = (1 + w) ε(x, y) − w ε(x, ∅) [default: 0, plain conditional sampling].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) guidance: Option<f64>,
    /// With --guidance: guide only for noise levels sigma/alpha in
    /// [lo, hi] (`lo,hi`); outside it one conditional call per step.
    #[arg(long, value_name = "LO,HI", allow_hyphen_values = true)]
    pub(crate) guidance_interval: Option<String>,
    /// Classifier guidance with the noise-conditional classifier in DIR
    /// (from `train-classifier`) towards --class K:
    /// s(x, t | K) = s(x, t) + G ∇_x ln p_t(K | x).
    #[arg(long, value_name = "DIR")]
    pub(crate) classifier: Option<PathBuf>,
    /// With --classifier: the guidance scale G >= 0 [default: 1, Bayes' rule].
    #[arg(long, value_name = "G", allow_negative_numbers = true)]
    pub(crate) classifier_scale: Option<f64>,
    /// Overwrite existing outputs.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `--clip-x0` value: off, or a positive bound.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Clip {
    Off,
    At(f64),
}

pub(crate) fn parse_clip(s: &str) -> Result<Clip> {
    if s == "off" {
        return Ok(Clip::Off);
    }
    match s.parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 => Ok(Clip::At(c)),
        _ => bail!("invalid clip-x0 = {s}: expected a finite number > 0 or `off`"),
    }
}

/// `on` or `off`.
pub(crate) fn parse_on_off(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got {s}")),
    }
}

/// A count: a non-negative integer, also in exponent form (`1e6`).
pub(crate) fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("expected a non-negative integer, got {s}");
    if let Ok(v) = s.parse::<u64>() {
        return Ok(v);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 => Ok(v as u64),
        Ok(v) if v.is_finite() && v >= 1.8e19 => {
            Err(format!("{s} is too large (at most {})", u64::MAX))
        }
        _ => Err(bad()),
    }
}

pub(crate) fn parse_usize(s: &str) -> std::result::Result<usize, String> {
    parse_u64(s).and_then(|v| usize::try_from(v).map_err(|_| format!("{s} is too large")))
}
