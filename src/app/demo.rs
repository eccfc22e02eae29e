//! `scoresde demo`: train on checkerboard, sample with DDPM and reverse-SDE
//! Euler–Maruyama, and write a picture, a GIF and a table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::bars::{sample_bar, TrainBar};
pub use super::reference::{Quality, Reference, REF_DRAWS, SWD_PROJECTIONS};
use crate::data::Toy;
use crate::error::{Error, Result};
use crate::metrics::MeanSe;
use crate::report::Table;
use crate::samplers::{self, SampleOptions, SampleOutput, Sampler};
use crate::score::Score;
use crate::train::{self, TrainOptions};
use crate::viz;

/// Default training steps of the demo (docs/SPEC.md recipe, fewer steps).
pub const DEFAULT_TRAIN_STEPS: u64 = 12_000;
/// Default sampler steps (NFE) of the demo, for both samplers.
pub const DEFAULT_SAMPLE_STEPS: usize = 500;

/// Settings of the demo (timings of the defaults are in BENCHMARKS.md).
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub out_dir: PathBuf,
    pub data: Toy,
    pub train_steps: u64,
    pub sample_steps: usize,
    pub samples: usize,
    pub seed: u64,
    pub progress: bool,
    /// Replace the outputs of an earlier demo in `out_dir`.
    pub force: bool,
    /// Training recipe (default: the checkerboard's tuned one; `Recipe::default()`
    /// is the SPEC recipe of the earlier demo).
    pub recipe: crate::train::Recipe,
    /// Noise process.
    pub sde: crate::sde::SdeConfig,
    /// The network (default: the checkerboard's tuned MLP; `MlpConfig::new(2)`
    /// is the SPEC network of the earlier demo).
    pub net: crate::nn::MlpConfig,
    /// The two sampler specs (`ddpm` needs VP; on other processes `em` and `ode-heun`).
    pub samplers: Vec<String>,
}

fn vp() -> crate::sde::SdeConfig {
    crate::sde::SdeConfig::by_name("vp").expect("vp is a valid SDE name")
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            out_dir: PathBuf::from("runs/demo"),
            data: Toy::Checkerboard,
            train_steps: DEFAULT_TRAIN_STEPS,
            sample_steps: DEFAULT_SAMPLE_STEPS,
            samples: 10_000,
            seed: 0,
            progress: true,
            force: false,
            recipe: super::presets::tuned_recipe("checkerboard", &vp()),
            sde: vp(),
            net: super::presets::tuned_mlp("checkerboard").expect("checkerboard is a 2-D set"),
            samplers: vec!["ddpm".into(), "em".into()],
        }
    }
}

/// What the demo writes into its folder; any of them already there means an
/// earlier demo's outputs, which are only replaced with `force`.
pub const OUTPUTS: [&str; 5] = [
    "model",
    "results.md",
    "results.csv",
    "samples.png",
    "reverse.gif",
];

impl DemoOptions {
    /// Check every setting and the output folder before any work starts:
    /// step counts, the memory the samples need, and (without `force`)
    /// that no earlier demo's outputs would be replaced.
    pub fn validate(&self) -> Result<()> {
        let max = crate::limits::MAX_TRAIN_STEPS;
        if self.train_steps == 0 || self.train_steps > max {
            return Err(Error::invalid(
                "train-steps",
                self.train_steps,
                format!("an integer >= 1 and <= {max}"),
            ));
        }
        if self.samples == 0 {
            return Err(Error::invalid("n", 0, "an integer >= 1"));
        }
        crate::sde::check_steps(self.sample_steps).map_err(|_| {
            Error::invalid(
                "sample-steps",
                self.sample_steps,
                format!(
                    "an integer >= 1 and <= {}",
                    crate::limits::MAX_SAMPLER_STEPS
                ),
            )
        })?;
        // 3·REF_DRAWS reference draws, two sample sets and their
        // trajectories (41 frames of at most 4000 points), 2-D f32.
        let n = self.samples as f64;
        let bytes = 8.0 * (n * (3 * REF_DRAWS + 4) as f64 + 2.0 * 41.0 * n.min(4000.0));
        crate::limits::check_memory("n", self.samples, bytes, "samples and reference draws")?;
        if !self.force {
            for name in OUTPUTS {
                let p = self.out_dir.join(name);
                if std::fs::symlink_metadata(&p).is_ok() {
                    return Err(Error::invalid(
                        "out",
                        self.out_dir.display(),
                        format!(
                            "a folder without an earlier demo's outputs ({} exists; {})",
                            p.display(),
                            super::ADVICE_FORCE
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One row of the demo's table.
#[derive(Clone, Debug)]
pub struct DemoRow {
    pub sampler: String,
    pub nfe: usize,
    pub seconds: f64,
    pub quality: Quality,
}

/// What the demo produced.
pub struct DemoReport {
    pub train_seconds: f64,
    pub final_loss: f64,
    pub floor: MeanSe,
    pub rows: Vec<DemoRow>,
    pub table: Table,
}

fn sample_with_bar(
    sampler: &dyn Sampler,
    model: &dyn Score,
    sde: &dyn crate::sde::Sde,
    mut opts: SampleOptions,
    progress: bool,
) -> Result<(SampleOutput, f64)> {
    let bar = progress.then(|| {
        let (pb, p) = sample_bar(opts.n as u64, sampler.label(), 22);
        opts.progress = Some(p);
        pb
    });
    let start = Instant::now();
    let out = samplers::sample(sampler, sde, model, &opts)?;
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    Ok((out, start.elapsed().as_secs_f64()))
}

/// Run the demo end to end.
pub fn run(opts: &DemoOptions) -> Result<DemoReport> {
    opts.validate()?;
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io(&opts.out_dir, e))?;
    let _lock = crate::fsutil::lock_dir(&opts.out_dir)?;
    // Under the lock: a concurrent demo may have written meanwhile.
    opts.validate()?;
    let mut topts = TrainOptions::spec(opts.data);
    topts.steps = opts.train_steps;
    topts.seed = opts.seed;
    topts.out_dir = Some(opts.out_dir.join("model"));
    topts.checkpoint_every = opts.train_steps;
    topts.recipe = opts.recipe.clone();
    topts.sde = opts.sde;
    topts.net = opts.net.clone().into();
    let trainer = train::Trainer::new(topts)?;
    let (model, summary) = if opts.progress {
        let mut bar = TrainBar::new();
        train::run_with(trainer, &mut |e| bar.observe(e))?
    } else {
        train::run_trainer(trainer)?
    };

    let reference = Reference::new(opts.data, opts.samples, opts.seed);
    let sampler_list = opts
        .samplers
        .iter()
        .map(|s| samplers::by_name(s, opts.sample_steps))
        .collect::<Result<Vec<Box<dyn Sampler>>>>()?;
    let mut rows = Vec::new();
    let mut outputs = Vec::new();
    for s in &sampler_list {
        let mut so = SampleOptions::new(opts.samples, opts.seed);
        so.record_every = Some((opts.sample_steps / 40).max(1));
        so.record_rows = opts.samples.min(4000);
        let (out, seconds) = sample_with_bar(s.as_ref(), &model, model.sde(), so, opts.progress)?;
        let quality = reference.quality(opts.data, &out.samples);
        rows.push(DemoRow {
            sampler: s.label(),
            nfe: out.nfe,
            seconds,
            quality,
        });
        outputs.push(out);
    }

    let table = demo_table(&rows, &reference.floor);
    table.write_markdown(&opts.out_dir.join("results.md"))?;
    table.write_csv(&opts.out_dir.join("results.csv"))?;
    write_pictures(&opts.out_dir, opts.data, &reference, &rows, &outputs)?;
    Ok(DemoReport {
        train_seconds: summary.seconds,
        final_loss: summary.final_loss,
        floor: reference.floor,
        rows,
        table,
    })
}

/// The demo's table: sampler, NFE, seconds, SWD, SWD / floor, MMD, the
/// fractions in the support (the filled squares) and in the board's box.
pub fn demo_table(rows: &[DemoRow], floor: &MeanSe) -> Table {
    let mut t = Table::new(&[
        "sampler",
        "NFE",
        "seconds",
        "SWD (mean ± SE)",
        "SWD / floor",
        "MMD² (unbiased)",
        "in squares",
        "in [-4,4]²",
    ]);
    let pct = |f: Option<f64>| {
        f.map(|f| format!("{:.1}%", 100.0 * f))
            .unwrap_or_else(|| "-".into())
    };
    for r in rows {
        t.rows.push(vec![
            r.sampler.clone(),
            r.nfe.to_string(),
            format!("{:.1}", r.seconds),
            format!("{:.4} ± {:.4}", r.quality.swd.mean, r.quality.swd.se),
            format!("{:.2}", r.quality.swd.mean / floor.mean),
            format!("{:.2e}", r.quality.mmd),
            pct(r.quality.in_support),
            pct(r.quality.in_box),
        ]);
    }
    t.rows.push(vec![
        "data (noise floor)".into(),
        "-".into(),
        "-".into(),
        format!("{:.4} ± {:.4}", floor.mean, floor.se),
        "1.00".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    t
}

fn write_pictures(
    dir: &Path,
    data: Toy,
    reference: &Reference,
    rows: &[DemoRow],
    outputs: &[SampleOutput],
) -> Result<()> {
    let mut panels = vec![viz::Panel {
        title: format!("data ({})", data.name()),
        caption: format!("noise floor SWD {:.4}", reference.floor.mean),
        points: reference.draws[0].view(),
    }];
    for (r, o) in rows.iter().zip(outputs) {
        panels.push(viz::Panel {
            title: r.sampler.clone(),
            caption: format!(
                "SWD {:.4} ({:.2}x floor), NFE {}",
                r.quality.swd.mean,
                r.quality.swd.mean / reference.floor.mean,
                r.nfe
            ),
            points: o.samples.view(),
        });
    }
    viz::scatter_panels(
        &dir.join("samples.png"),
        &panels,
        &viz::ScatterOptions::default(),
    )?;
    // The GIF follows the last sampler (Euler–Maruyama) from noise to data.
    if let (Some(out), Some(row)) = (outputs.last(), rows.last()) {
        if let Some(tr) = &out.trajectory {
            let frames: Vec<_> = tr.frames.iter().map(|f| f.view()).collect();
            let labels: Vec<String> = tr
                .times
                .iter()
                .map(|t| format!("{}  t = {t:.3}", row.sampler))
                .collect();
            viz::trajectory_gif(
                &dir.join("reverse.gif"),
                &frames,
                &labels,
                &viz::GifOptions::default(),
            )?;
        }
    }
    Ok(())
}
