//! `scoresde` command-line tool: parses arguments and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use scoresde::data::{Toy, TrainData};
use scoresde::demo::{self, DemoOptions, Reference};
use scoresde::imaging;
use scoresde::model::ScoreModel;
use scoresde::nn::{MlpConfig, NetConfig, UNetConfig};
use scoresde::samplers::{self, SampleOptions};
use scoresde::sde::SdeConfig;
use scoresde::train::{self, OnNonFinite, TrainOptions};
use scoresde::{checkpoint, npy, viz};

#[derive(Parser)]
#[command(
    name = "scoresde",
    version,
    about = "Score-based diffusion models: train, sample, compare"
)]
struct Cli {
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, global = true, value_parser = parse_usize, allow_negative_numbers = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train on checkerboard, sample with DDPM and Euler–Maruyama, write pictures and a table.
    Demo(DemoArgs),
    /// Train a score model by denoising score matching.
    Train(TrainArgs),
    /// Draw samples from a trained model.
    Sample(SampleArgs),
    /// Compare samplers: sample quality against NFE and wall time, with a model or an exact oracle.
    Compare(CompareArgs),
    /// Score generated images: Fréchet distance, classifier scores, nearest neighbours, with floors.
    Eval(EvalArgs),
    /// Optimise a solver's time grid for an NFE budget against an adaptive ODE teacher.
    Schedule(ScheduleArgs),
}

#[derive(Args)]
struct ScheduleArgs {
    /// Checkpoint directory written by `scoresde train`.
    #[arg(long, conflicts_with_all = ["oracle", "sde"], required_unless_present = "oracle")]
    model: Option<PathBuf>,
    /// Exact-score oracle instead of a model: checkerboard, 8gaussians or 25gaussians.
    #[arg(long)]
    oracle: Option<String>,
    /// Noise process of the oracle: vp, subvp, ve (a model brings its own).
    #[arg(long)]
    sde: Option<String>,
    /// Sampler spec whose grid is optimised (a deterministic one), e.g. `dpm-solver++`.
    #[arg(long)]
    sampler: String,
    /// NFE budget K.
    #[arg(long)]
    nfe: usize,
    /// Prior draws the error is averaged over.
    #[arg(short, long, default_value_t = 512)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output JSON file, read back by `schedule=FILE`.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Generated images: a .npy file ([n, c*h*w] or [n, c, h, w], values in [-1, 1]) or a folder of PNG/JPEG files.
    #[arg(long)]
    samples: PathBuf,
    /// Data set the images imitate: mnist, mnist16, digits, emoji.
    #[arg(long)]
    data: String,
}

#[derive(Args)]
struct CompareArgs {
    /// Checkpoint directory written by `scoresde train`.
    #[arg(long, conflicts_with_all = ["oracle", "sde"], required_unless_present = "oracle")]
    model: Option<PathBuf>,
    /// Exact-score oracle instead of a model: checkerboard, 8gaussians or 25gaussians.
    #[arg(long)]
    oracle: Option<String>,
    /// Noise process of the oracle: vp, subvp, ve (a model brings its own).
    #[arg(long)]
    sde: Option<String>,
    /// Reference data set (default: the model's data set / the oracle's).
    #[arg(long)]
    data: Option<String>,
    /// Comma-separated sampler specs, e.g. `em,ddpm,edm:churn=10,s_noise=1.003`
    /// (a token that is not a sampler name continues the spec before it;
    /// default: every registered sampler that runs on the SDE).
    #[arg(long)]
    samplers: Option<String>,
    /// Comma-separated schedules to cross every sampler with (`all`: every
    /// named schedule), e.g. `uniform,logsnr,karras` (default: each sampler's own).
    #[arg(long, value_delimiter = ',')]
    schedules: Option<Vec<String>>,
    /// Comma-separated NFE budgets.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5,10,20,50,100,250,500,1000",
        value_parser = parse_usize, allow_negative_numbers = true
    )]
    nfe: Vec<usize>,
    /// Samples per run [default: 5000 with --oracle, 1000 with --model].
    #[arg(short, long, value_parser = parse_usize, allow_negative_numbers = true)]
    n: Option<usize>,
    /// Sampling seeds (and independent reference draws) per cell.
    #[arg(long, default_value_t = scoresde::compare::DEFAULT_SEEDS, value_parser = parse_usize, allow_negative_numbers = true)]
    seeds: usize,
    /// Base seed.
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    seed: u64,
    /// Name of the comparison (default: <data>-<sde> or the model folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Parent output directory; results go to <out>/<name>/.
    #[arg(long, default_value = "outputs/compare")]
    out: PathBuf,
    /// Overwrite an existing comparison of the same name.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Output directory.
    #[arg(long, default_value = "outputs/demo")]
    out: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = demo::DEFAULT_TRAIN_STEPS, value_parser = parse_u64, allow_negative_numbers = true)]
    train_steps: u64,
    /// Sampler steps (NFE) for both samplers.
    #[arg(long, default_value_t = demo::DEFAULT_SAMPLE_STEPS, value_parser = parse_usize, allow_negative_numbers = true)]
    sample_steps: usize,
    /// Number of samples.
    #[arg(short, long, default_value_t = 10_000, value_parser = parse_usize, allow_negative_numbers = true)]
    n: usize,
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    seed: u64,
    /// Replace the outputs (model/, results, pictures) of an earlier demo in --out.
    #[arg(long)]
    force: bool,
}

/// Options left out take their default, or with --resume the checkpoint's value.
#[derive(Args)]
struct TrainArgs {
    /// Data set: a toy (checkerboard, moons, swissroll, 8gaussians, 25gaussians, rings, spirals, pinwheel),
    /// images (mnist, mnist16, digits, emoji) or a folder of PNG/JPEG files [default: checkerboard].
    #[arg(long)]
    data: Option<String>,
    /// Side of folder images after resizing [default: 16].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    image_size: Option<usize>,
    /// Channels of folder images: 1 (grey) or 3 (RGB) [default: 3].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    channels: Option<usize>,
    /// Network for image data: unet or mlp [default: per data set].
    #[arg(long)]
    net: Option<String>,
    /// U-Net channel widths per level, comma-separated, e.g. 32,64 [default: per data set].
    #[arg(long, value_delimiter = ',', value_parser = parse_usize, allow_negative_numbers = true)]
    widths: Option<Vec<usize>>,
    /// For image data: write a grid of samples to <out>/samples/ every this many steps (0 = never) [default: per data set].
    #[arg(long, value_parser = parse_u64, allow_negative_numbers = true)]
    sample_every: Option<u64>,
    /// Noise process: vp, subvp, ve [default: vp].
    #[arg(long)]
    sde: Option<String>,
    /// Total training steps (a resumed run continues up to this) [default: 20000; per data set for images].
    #[arg(long, value_parser = parse_u64, allow_negative_numbers = true)]
    steps: Option<u64>,
    /// Batch size [default: 512; per data set for images].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    batch: Option<usize>,
    /// Adam learning rate [default: 0.001]; may change on --resume.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// EMA decay of the weights used for sampling [default: 0.999].
    #[arg(long, allow_negative_numbers = true)]
    ema: Option<f64>,
    /// Hidden width of the MLP [default: 256].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    hidden: Option<usize>,
    /// Number of hidden layers of the MLP [default: 3].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    depth: Option<usize>,
    /// Seed of initialisation, data order and noise [default: 0].
    #[arg(long, value_parser = parse_u64, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Checkpoint directory (default: runs/<data>, or the --resume directory).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 1000, value_parser = parse_u64, allow_negative_numbers = true)]
    checkpoint_every: u64,
    /// Continue the run whose checkpoint is in DIR (falls back to DIR/prev if
    /// the last save was interrupted).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// On a NaN/Inf loss or gradient: stop (keep the last checkpoint, exit
    /// non-zero) or skip (leave the weights unchanged for that batch and count it).
    #[arg(long, default_value = "stop")]
    on_nonfinite: String,
    /// Start a fresh run even if --out already holds a checkpoint (the old one
    /// is kept in <out>/prev until the first new save completes).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct SampleArgs {
    /// Checkpoint directory written by `scoresde train`.
    #[arg(long)]
    model: PathBuf,
    /// Sampler spec `name[:key=value,...]`, e.g. `ddpm`, `em`,
    /// `dpm-solver++:schedule=karras` (`--help` lists them all).
    #[arg(long, default_value = "ddpm", long_help = samplers::help())]
    sampler: String,
    /// Sampler steps.
    #[arg(long, default_value_t = 1000, value_parser = parse_usize, allow_negative_numbers = true)]
    steps: usize,
    /// Number of samples.
    #[arg(short, long, default_value_t = 10_000, value_parser = parse_usize, allow_negative_numbers = true)]
    n: usize,
    #[arg(long, default_value_t = 0, value_parser = parse_u64, allow_negative_numbers = true)]
    seed: u64,
    /// Samples per work chunk (does not change the output).
    #[arg(long, default_value_t = 500, value_parser = parse_usize, allow_negative_numbers = true)]
    batch: usize,
    /// Output directory for samples.npy, samples.png (and reverse.gif).
    #[arg(long, default_value = "outputs/samples")]
    out: PathBuf,
    /// Image models: how many samples the PNG grid (and GIF) shows [default: 64].
    #[arg(long, value_parser = parse_usize, allow_negative_numbers = true)]
    grid: Option<usize>,
    /// Also write an animated GIF of the reverse process.
    #[arg(long)]
    gif: bool,
    /// Clip the denoised estimate x̂0 to [-C, C] inside every model call
    /// ("thresholding"; images live in [-1, 1]). Bounds the error that
    /// deterministic samplers (ddim, ode-*, dpm-solver++, edm) carry from
    /// high noise levels. `off` disables it [default: 1 for image models,
    /// off for 2-D data].
    #[arg(long, value_name = "C|off", allow_hyphen_values = true)]
    clip_x0: Option<String>,
    /// Overwrite existing outputs.
    #[arg(long)]
    force: bool,
}

/// `--clip-x0` value: off, or a positive bound.
#[derive(Clone, Copy, Debug)]
enum Clip {
    Off,
    At(f64),
}

fn parse_clip(s: &str) -> Result<Clip> {
    if s == "off" {
        return Ok(Clip::Off);
    }
    match s.parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 => Ok(Clip::At(c)),
        _ => bail!("invalid clip-x0 = {s}: expected a finite number > 0 or `off`"),
    }
}

/// A count: a non-negative integer, also in exponent form (`1e6`).
fn parse_u64(s: &str) -> std::result::Result<u64, String> {
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

fn parse_usize(s: &str) -> std::result::Result<usize, String> {
    parse_u64(s).and_then(|v| usize::try_from(v).map_err(|_| format!("{s} is too large")))
}

/// The error and its causes on one line, each cause once (an I/O error
/// already names its OS error, which is also its source).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if msg.contains(&c) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&c);
    }
    msg
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // One line: clap's own message (it names the option and the
            // value), without the usage block.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("error: invalid arguments");
            eprintln!("{first}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(k) = cli.threads {
        let max = scoresde::limits::MAX_THREADS;
        if k == 0 || k > max {
            bail!("invalid threads = {k}: expected an integer >= 1 and <= {max}");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(k)
            .build_global()
            .context("setting the thread count")?;
    }
    match cli.command {
        Command::Demo(a) => run_demo(a),
        Command::Train(a) => run_train(a),
        Command::Sample(a) => run_sample(a),
        Command::Compare(a) => run_compare(a),
        Command::Eval(a) => run_eval(a),
        Command::Schedule(a) => run_schedule(a),
    }
}

fn run_demo(a: DemoArgs) -> Result<()> {
    for (name, v) in [
        ("train-steps", a.train_steps as usize),
        ("sample-steps", a.sample_steps),
        ("n", a.n),
    ] {
        if v == 0 {
            bail!("invalid {name} = 0: expected an integer >= 1");
        }
    }
    scoresde::fsutil::check_writable_dir("out", &a.out)?;
    let opts = DemoOptions {
        out_dir: a.out,
        train_steps: a.train_steps,
        sample_steps: a.sample_steps,
        samples: a.n,
        seed: a.seed,
        force: a.force,
        ..DemoOptions::default()
    };
    // Every size and the outputs already there, before training starts.
    opts.validate()?;
    let report = demo::run(&opts)?;
    println!(
        "trained {} steps on {} in {:.1} s (final loss {:.4})\n",
        opts.train_steps,
        opts.data.name(),
        report.train_seconds,
        report.final_loss
    );
    print!("{}", report.table.to_markdown());
    println!(
        "\nwrote {}/{{samples.png, reverse.gif, results.md, results.csv, model/}}",
        opts.out_dir.display()
    );
    Ok(())
}

fn run_train(a: TrainArgs) -> Result<()> {
    let on_nonfinite = OnNonFinite::from_name(&a.on_nonfinite)?;
    let mut resume_lock = None;
    // With --resume, unspecified options come from the checkpoint.
    let resume = match &a.resume {
        None => None,
        Some(dir) => {
            if let Some(out) = &a.out {
                if out != dir {
                    bail!(
                        "invalid out = {}: expected the --resume directory {} (a run resumes in place)",
                        out.display(),
                        dir.display()
                    );
                }
            }
            // Lock before loading: a run still writing here must not be read
            // half-saved, nor resumed twice.
            checkpoint::read_manifest(dir).or_else(|e| {
                checkpoint::read_manifest(&dir.join(checkpoint::PREV_DIR)).map_err(|_| e)
            })?;
            resume_lock = Some(scoresde::fsutil::lock_dir(dir)?);
            let (ckpt, skipped) = checkpoint::load_latest(dir)?;
            if let Some(why) = skipped {
                eprintln!(
                    "warning: resuming from {} because the newest save is unusable: {why}",
                    ckpt.dir.display()
                );
            }
            Some(ckpt)
        }
    };
    let saved = resume.as_ref().map(|c| {
        let train = c.state.as_ref().map(|s| s.train.clone());
        (c.model.config.clone(), train)
    });
    let fingerprint = saved
        .as_ref()
        .and_then(|(_, t)| t.as_ref())
        .and_then(|t| t.data.clone());
    let data = match (&a.data, &saved) {
        (Some(name), _) => {
            // On --resume of a folder run, size and channels default to the
            // stored ones (a different folder is then named by the check).
            let stored = fingerprint.as_ref().filter(|fp| !fp.is_bundled());
            let is_folder = std::path::Path::new(name).is_dir()
                && Toy::from_name(name).is_err()
                && !scoresde::data::source::IMAGE_SETS.contains(&name.as_str());
            let (size, channels) = match stored {
                Some(fp) if is_folder => (
                    a.image_size.or(Some(fp.image_size)),
                    a.channels.or(Some(fp.channels)),
                ),
                _ => (a.image_size, a.channels),
            };
            TrainData::by_name(name, size, channels)?
        }
        (None, Some((cfg, _))) => match &fingerprint {
            // A bundled set: loaded by name, its files compared on resume.
            Some(fp) if fp.is_bundled() => TrainData::by_name(&cfg.data, a.image_size, a.channels)?,
            // A folder run: its absolute path, size and channels are stored.
            Some(fp) => {
                for (flag, v, saved) in [
                    ("image-size", a.image_size, fp.image_size),
                    ("channels", a.channels, fp.channels),
                ] {
                    if v.is_some_and(|v| v != saved) {
                        bail!(
                            "invalid {flag} = {}: expected the checkpoint's {saved} (omit --{flag} on --resume)",
                            v.unwrap_or(0)
                        );
                    }
                }
                TrainData::from_fingerprint(&cfg.data, fp)?
            }
            None => {
                let is_folder = Toy::from_name(&cfg.data).is_err()
                    && !scoresde::data::source::IMAGE_SETS.contains(&cfg.data.as_str());
                let (size, channels) = match (&cfg.net, is_folder) {
                    (_, false) => (a.image_size, a.channels),
                    (NetConfig::UNet(u), true) => (Some(u.height), Some(u.channels)),
                    (NetConfig::Mlp(_), true) => (a.image_size, a.channels),
                };
                TrainData::by_name(&cfg.data, size, channels)?
            }
        },
        (None, None) => {
            if let Some((flag, v)) = a
                .image_size
                .map(|v| ("image-size", v))
                .or(a.channels.map(|v| ("channels", v)))
            {
                bail!("invalid {flag} = {v}: expected no --{flag}: it applies to folders of images (pass --data DIR)");
            }
            TrainData::Toy(Toy::Checkerboard)
        }
    };
    if data.image_shape().is_none() {
        if let Some(k) = a.sample_every {
            bail!("invalid sample-every = {k}: expected no --sample-every: previews are for image data, and {} is 2-D", data.name());
        }
    }
    let sde = match (&a.sde, &saved) {
        (Some(name), _) => SdeConfig::by_name(name)?,
        (None, Some((cfg, _))) => cfg.sde,
        (None, None) => SdeConfig::by_name("vp")?,
    };
    let preset = data
        .image_shape()
        .map(|(c, h, w)| imaging::preset(data.name(), c, h, w));
    let base_net = match (&saved, &preset) {
        (Some((cfg, _)), _) => cfg.net.clone(),
        (None, Some(p)) => match a.net.as_deref() {
            None => p.net.clone(),
            Some("mlp") => MlpConfig::new(data.dim()).into(),
            Some("unet") => match &p.net {
                NetConfig::UNet(u) => u.clone().into(),
                NetConfig::Mlp(_) => {
                    let (c, h, w) = data.image_shape().unwrap_or((1, 1, 1));
                    UNetConfig::new(c, h, w).into()
                }
            },
            Some(other) => bail!("invalid net = {other}: expected unet or mlp"),
        },
        (None, None) => {
            if a.net.as_deref().is_some_and(|n| n != "mlp") {
                bail!(
                    "invalid net = {}: toy data sets use the MLP (mlp)",
                    a.net.as_deref().unwrap_or("")
                );
            }
            MlpConfig::new(2).into()
        }
    };
    match &base_net {
        NetConfig::Mlp(_) if a.widths.is_some() => {
            bail!("--widths sets the U-Net; this run uses the MLP (set --hidden/--depth, or --net unet)")
        }
        NetConfig::UNet(_) if a.hidden.is_some() || a.depth.is_some() => {
            bail!("--hidden/--depth set the MLP; this run uses the U-Net (set --widths, or --net mlp)")
        }
        _ => {}
    }
    let net = match base_net {
        NetConfig::Mlp(m) => NetConfig::Mlp(MlpConfig {
            hidden: a.hidden.unwrap_or(m.hidden),
            depth: a.depth.unwrap_or(m.depth),
            ..m
        }),
        NetConfig::UNet(u) => NetConfig::UNet(UNetConfig {
            widths: a.widths.clone().unwrap_or(u.widths.clone()),
            ..u
        }),
    };
    let tc = saved.as_ref().and_then(|(_, t)| t.clone());
    let out = a
        .resume
        .clone()
        .or(a.out.clone())
        .unwrap_or_else(|| Path::new("runs").join(data.name()));
    let steps = a
        .steps
        .or(preset.as_ref().map(|p| p.steps))
        .unwrap_or(20_000);
    let opts = TrainOptions {
        data,
        sde,
        net,
        steps,
        batch: a
            .batch
            .or(tc.as_ref().map(|t| t.batch))
            .or(preset.as_ref().map(|p| p.batch))
            .unwrap_or(512),
        lr: a
            .lr
            .or(tc.as_ref().map(|t| t.lr))
            .or(preset.as_ref().map(|p| p.lr))
            .unwrap_or(1e-3),
        ema_decay: a.ema.or(tc.as_ref().map(|t| t.ema_decay)).unwrap_or(0.999),
        seed: a.seed.or(tc.as_ref().map(|t| t.seed)).unwrap_or(0),
        out_dir: Some(out.clone()),
        checkpoint_every: a.checkpoint_every,
        progress: true,
        on_nonfinite,
        sample_every: a
            .sample_every
            .or(preset.as_ref().map(|p| p.sample_every))
            .unwrap_or(0),
    };
    // Every check before any work starts; the folder is created only then.
    opts.validate()?;
    scoresde::fsutil::check_writable_dir("out", &out)?;
    let refuse_existing = |out: &Path| -> Result<()> {
        if resume.is_some() || a.force {
            return Ok(());
        }
        if let Some(p) = checkpoint::existing_checkpoint_file(out) {
            let what = match checkpoint::read_manifest(out) {
                Ok(m) => format!("already holds a checkpoint (step {})", m.step),
                Err(_) => format!("holds (part of) a checkpoint: {} exists", p.display()),
            };
            bail!(
                "{} {what}; pass --resume {} to continue it, --force to start over, or choose another --out",
                out.display(),
                out.display()
            );
        }
        Ok(())
    };
    refuse_existing(&out)?;
    let created = !out.exists();
    let _lock = match resume_lock {
        Some(l) => l,
        None => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let l = scoresde::fsutil::lock_dir(&out)?;
            // Under the lock: a concurrent run may have saved meanwhile.
            refuse_existing(&out)?;
            l
        }
    };
    // Build the run first: a resumed one checks its data, network and
    // settings against the checkpoint before anything is printed.
    let trainer = match resume {
        Some(ckpt) => train::Trainer::resume(opts.clone(), ckpt)?,
        None => train::Trainer::new(opts.clone())?,
    };
    if let Some((c, h, w)) = opts.data.image_shape() {
        eprintln!(
            "training a {} ({} parameters) on {} ({c}x{h}x{w} images): {} steps, batch {}, lr {}",
            opts.net.kind(),
            opts.net.num_params().unwrap_or(0),
            opts.data.name(),
            opts.steps,
            opts.batch,
            opts.lr
        );
    }
    let (_, summary) = train::run_trainer(trainer).inspect_err(|_| {
        if created {
            // A run that failed before its first save leaves no empty
            // folder behind (remove_dir only removes an empty one).
            let _ = std::fs::remove_dir(&out);
        }
    })?;
    println!(
        "trained steps {}..{} in {:.1} s ({:.1} steps/s), final loss {:.4}{}; checkpoint in {}",
        summary.start_step,
        steps,
        summary.seconds,
        summary.steps_per_sec,
        summary.final_loss,
        if summary.skipped > 0 {
            format!(", {} non-finite steps skipped", summary.skipped)
        } else {
            String::new()
        },
        out.display()
    );
    Ok(())
}

fn run_sample(a: SampleArgs) -> Result<()> {
    // Arguments first, then the model: nothing slow happens before both are
    // checked, and the output folder is created only after every check.
    let sampler = samplers::by_name(&a.sampler, a.steps)?;
    if a.n == 0 {
        bail!("invalid n = 0: expected an integer >= 1");
    }
    if a.batch == 0 {
        bail!("invalid batch = 0: expected an integer >= 1");
    }
    if a.grid == Some(0) {
        bail!("invalid grid = 0: expected an integer >= 1");
    }
    let clip_x0 = a.clip_x0.as_deref().map(parse_clip).transpose()?;
    let npy_path = a.out.join("samples.npy");
    let png_path = a.out.join("samples.png");
    let gif_path = a.out.join("reverse.gif");
    if !a.force {
        for p in [&npy_path, &png_path, &gif_path] {
            if std::fs::symlink_metadata(p).is_ok() {
                bail!(
                    "{} exists; pass --force to overwrite or choose another --out",
                    p.display()
                );
            }
        }
    }
    scoresde::fsutil::check_writable_dir("out", &a.out)?;
    let model = ScoreModel::load(&a.model)?;
    let image_shape = imaging::image_shape_of(&model.config);
    if image_shape.is_none() {
        if let Some(g) = a.grid {
            bail!("invalid grid = {g}: expected no --grid: it sets the image grid, and this model makes 2-D points");
        }
    }
    let dim = scoresde::score::Score::dim(&model);
    if image_shape.is_none() && dim != 2 {
        bail!(
            "{}: the model makes points of {dim} values, neither 2-D nor a known image shape; \
             its samples cannot be shown or scored",
            a.model.display()
        );
    }
    let grid = a.grid.unwrap_or(64);
    sampler.validate(model.sde())?;
    // The samples, a trajectory of at most 41 frames and, for 2-D data, the
    // reference draws of the metrics.
    let d = dim as f64;
    let metric_n = a.n.min(scoresde::limits::MAX_QUADRATIC_METRIC_N);
    let bytes = 4.0
        * d
        * (a.n as f64
            + if a.gif {
                41.0 * a.n.min(4000) as f64
            } else {
                0.0
            })
        + if image_shape.is_none() {
            8.0 * 24.0 * metric_n as f64
        } else {
            0.0
        };
    scoresde::limits::check_memory("n", a.n, bytes, "samples")?;
    let mut opts = SampleOptions::new(a.n, a.seed);
    opts.batch = a.batch;
    if a.gif {
        opts.record_every = Some((a.steps / 40).max(1));
        opts.record_rows = if image_shape.is_some() {
            a.n.min(grid.max(1))
        } else {
            a.n.min(4000)
        };
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let _lock = scoresde::fsutil::lock_dir(&a.out)?;
    let start = std::time::Instant::now();
    let clip = match clip_x0 {
        Some(Clip::Off) => None,
        Some(Clip::At(c)) => Some(c),
        None => image_shape.is_some().then_some(1.0),
    };
    let clipped = clip.map(|clip| scoresde::score::ClipX0 {
        inner: &model,
        sde: model.sde(),
        clip,
    });
    let score: &dyn scoresde::score::Score = match &clipped {
        Some(c) => c,
        None => &model,
    };
    let out = samplers::sample(sampler.as_ref(), model.sde(), score, &opts)?;
    let seconds = start.elapsed().as_secs_f64();
    if let Some(shape) = image_shape {
        let paths = imaging::write_image_samples(
            &a.out,
            out.samples.view(),
            shape,
            grid,
            out.trajectory.as_ref(),
        )?;
        if out.trajectory.is_none() {
            // --force: an older GIF must not sit beside the new samples.
            remove_stale(&gif_path)?;
        }
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        println!(
            "{} images with {} (NFE {}) in {seconds:.1} s -> {}",
            a.n,
            sampler.label(),
            out.nfe,
            names.join(", ")
        );
        return Ok(());
    }
    npy::write(&npy_path, out.samples.view())?;
    if out.trajectory.is_none() {
        remove_stale(&gif_path)?;
    }
    let mut caption = format!("NFE {}, {:.1} s", out.nfe, seconds);
    if let Ok(data) = Toy::from_name(&model.config.data) {
        // MMD is quadratic in the count: the metrics use the first
        // metric_n samples (all of them up to the cap), as `compare` does.
        let reference = Reference::new(data, metric_n, a.seed ^ 0x5EED);
        let scored = out.samples.slice(ndarray::s![..metric_n, ..]).to_owned();
        let q = reference.quality(data, &scored);
        if metric_n < a.n {
            println!(
                "metrics on the first {metric_n} of {} samples (MMD is quadratic in the count)",
                a.n
            );
        }
        caption = format!(
            "SWD {:.4} ({:.2}x floor), {caption}",
            q.swd.mean,
            q.swd.mean / reference.floor.mean
        );
        println!(
            "SWD {} (floor {}), MMD² {:.2e}{}",
            q.swd,
            reference.floor,
            q.mmd,
            q.in_support
                .zip(q.in_box)
                .map(|(s, b)| format!(
                    ", in squares {:.1}%, in [-4,4]² {:.1}%",
                    100.0 * s,
                    100.0 * b
                ))
                .unwrap_or_default()
        );
    }
    let panel = viz::Panel {
        title: sampler.label(),
        caption,
        points: out.samples.view(),
    };
    viz::scatter_panels(&png_path, &[panel], &viz::ScatterOptions::default())?;
    if let Some(tr) = &out.trajectory {
        let frames: Vec<_> = tr.frames.iter().map(|f| f.view()).collect();
        let labels: Vec<String> = tr.times.iter().map(|t| format!("t = {t:.3}")).collect();
        viz::trajectory_gif(&gif_path, &frames, &labels, &viz::GifOptions::default())?;
    }
    println!(
        "{} samples with {} (NFE {}) in {seconds:.1} s -> {}",
        a.n,
        sampler.label(),
        out.nfe,
        a.out.display()
    );
    Ok(())
}

fn run_schedule(a: ScheduleArgs) -> Result<()> {
    use scoresde::schedule_opt::{optimize, OptimizeOptions};
    if a.out.exists() && !a.force {
        bail!(
            "--out {} exists (pass --force to overwrite)",
            a.out.display()
        );
    }
    let mut opts = OptimizeOptions::new(&a.sampler, a.nfe);
    opts.n = a.n;
    opts.seed = a.seed;
    let result = match (a.model, a.oracle) {
        (Some(dir), _) => {
            let model = ScoreModel::load(&dir)?;
            optimize(model.sde(), &model, &opts)?
        }
        (None, Some(o)) => {
            let sde = SdeConfig::by_name(a.sde.as_deref().unwrap_or("vp"))?;
            let (oracle, oracle_sde) = scoresde::oracle::for_toy(Toy::from_name(&o)?, &sde)?;
            optimize(oracle_sde.as_ref(), oracle.as_ref(), &opts)?
        }
        (None, None) => bail!("pass --model DIR or --oracle checkerboard|8gaussians|25gaussians"),
    };
    let json = serde_json::to_string_pretty(&result)?;
    scoresde::fsutil::write_atomic(&a.out, json.as_bytes())?;
    println!(
        "{} at NFE {} ({} steps), endpoint RMS error against the RK45 teacher:",
        result.sampler, result.nfe, result.steps
    );
    for (name, e) in &result.named {
        println!("  {name:<16} {e:.3e}");
    }
    println!(
        "  {:<16} {:.3e}  ({} runs) -> {}",
        "optimised",
        result.error,
        result.evaluations,
        a.out.display()
    );
    Ok(())
}

/// Remove an output of an earlier run that this run does not rewrite
/// (only reached with --force, which allows replacing it).
fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
}

fn run_compare(a: CompareArgs) -> Result<()> {
    use scoresde::compare::{self, CompareOptions, Source};
    let source = match (a.model, a.oracle) {
        (Some(dir), _) => Source::Model(dir),
        (None, Some(o)) => Source::Oracle {
            data: Toy::from_name(&o)?,
            sde: SdeConfig::by_name(a.sde.as_deref().unwrap_or("vp"))?,
        },
        (None, None) => bail!("pass --model DIR or --oracle checkerboard|8gaussians|25gaussians"),
    };
    let mut opts = CompareOptions::new(source);
    opts.data = a.data.as_deref().map(Toy::from_name).transpose()?;
    opts.samplers = a.samplers.as_deref().map(samplers::split_specs);
    opts.schedules = a.schedules;
    opts.nfe = a.nfe;
    opts.n = a.n.unwrap_or(match opts.source {
        Source::Model(_) => compare::DEFAULT_N_MODEL,
        Source::Oracle { .. } => compare::DEFAULT_N,
    });
    opts.seeds = a.seeds;
    opts.seed = a.seed;
    opts.name = a.name;
    opts.out = a.out;
    opts.force = a.force;
    let start = std::time::Instant::now();
    let report = compare::run(&opts)?;
    for (spec, why) in &report.skipped_samplers {
        println!("skipped sampler {spec}: {why}");
    }
    for (spec, budget, why) in &report.skipped_cells {
        println!("skipped {spec} at budget {budget}: {why}");
    }
    print!("{}", report.table.to_markdown());
    println!();
    for n in &report.notes {
        println!("{n}");
    }
    println!(
        "\nwrote {}/{{results.csv, results.md, quality_vs_nfe.png, quality_vs_time.png, thumbnails.png}} in {:.1} s",
        report.out_dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_eval(a: EvalArgs) -> Result<()> {
    let (train, _) = imaging::eval_sets(&a.data)?;
    let shape = (train.channels, train.height, train.width);
    let x = imaging::load_samples(&a.samples, shape)?;
    let start = std::time::Instant::now();
    let report = imaging::evaluate(x.view(), &a.data)?;
    print!("{}", report.to_markdown(&a.data));
    println!("({:.1} s)", start.elapsed().as_secs_f64());
    Ok(())
}
