//! The commands that hand over to one library call: `demo`, `compare`,
//! `eval` and `schedule`.

mod inpaint;
mod sample;
mod serve;
mod train;
mod train_classifier;

pub(crate) use inpaint::run_inpaint;
pub(crate) use sample::run_sample;
pub(crate) use serve::run_serve;
pub(crate) use train::run_train;
pub(crate) use train_classifier::run_train_classifier;

use anyhow::{bail, Result};

use scoresde::app::demo::{self, DemoOptions};
use scoresde::data::Toy;
use scoresde::imaging;
use scoresde::model::ScoreModel;
use scoresde::samplers;
use scoresde::sde::SdeConfig;

use crate::args::{CompareArgs, DemoArgs, EvalArgs, ScheduleArgs};

pub(crate) fn run_demo(a: DemoArgs) -> Result<()> {
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
    let sde = SdeConfig::by_name(&a.sde)?;
    let (mut recipe, mut net) = match a.recipe.as_str() {
        "tuned" => (
            scoresde::app::presets::tuned_recipe("checkerboard", &sde),
            scoresde::app::presets::tuned_mlp("checkerboard").expect("checkerboard is a 2-D set"),
        ),
        "spec" => (
            scoresde::train::Recipe::default(),
            scoresde::nn::MlpConfig::new(2),
        ),
        other => bail!("invalid recipe = {other}: expected spec or tuned"),
    };
    if let Some(f) = &a.fourier {
        net.fourier = scoresde::nn::FourierConfig::parse(f)?;
    }
    net.hidden = a.hidden.unwrap_or(net.hidden);
    net.depth = a.depth.unwrap_or(net.depth);
    net.validate()?;
    if let Some(t) = &a.target {
        recipe.target = scoresde::train::Objective::parse(t)?.spec();
    }
    let samplers = a.samplers.unwrap_or_else(|| {
        if matches!(sde, SdeConfig::Vp { .. }) {
            vec!["ddpm".into(), "em".into()]
        } else {
            vec!["em".into(), "ode-heun".into()]
        }
    });
    let opts = DemoOptions {
        recipe,
        sde,
        net,
        samplers,
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

pub(crate) fn run_compare(a: CompareArgs) -> Result<()> {
    use scoresde::app::compare::{self, CompareOptions, Report, Source};
    let sde = || SdeConfig::by_name(a.score.sde.as_deref().unwrap_or("vp"));
    let (source, images) = match (a.score.model, a.score.oracle) {
        (Some(dir), _) => {
            let model = ScoreModel::load(&dir)?;
            let images = imaging::image_shape_of(&model.config).is_some();
            (Source::Model(dir), images)
        }
        (None, Some(o)) => match o.strip_suffix("-empirical") {
            Some(set) => (
                Source::ImageOracle {
                    data: set.to_string(),
                    sde: sde()?,
                },
                true,
            ),
            None => (
                Source::Oracle {
                    data: Toy::from_name(&o)?,
                    sde: sde()?,
                },
                false,
            ),
        },
        (None, None) => bail!(
            "pass --model DIR or --oracle checkerboard|8gaussians|25gaussians|digits-empirical|mnist-empirical|mnist16-empirical|emoji-empirical"
        ),
    };
    let mut opts = CompareOptions::new(source);
    opts.data = a.data.as_deref().map(Toy::from_name).transpose()?;
    opts.samplers = a.samplers.as_deref().map(samplers::split_specs);
    opts.schedules = a.schedules;
    opts.nfe = a.nfe.unwrap_or_else(|| {
        if images {
            compare::DEFAULT_NFE_IMAGE.to_vec()
        } else {
            compare::DEFAULT_NFE.to_vec()
        }
    });
    opts.n = a.n.unwrap_or(match (&opts.source, images) {
        (_, true) => compare::DEFAULT_N_IMAGE,
        (Source::Model(_), false) => compare::DEFAULT_N_MODEL,
        _ => compare::DEFAULT_N,
    });
    opts.seeds = a.seeds;
    opts.seed = a.seed;
    opts.name = a.name;
    opts.out = a.out;
    opts.force = a.force;
    let start = std::time::Instant::now();
    let (out_dir, table, skipped_samplers, skipped_cells, notes, files) =
        match compare::run_any(&opts)? {
            Report::Points(r) => (
                r.out_dir,
                r.table,
                r.skipped_samplers,
                r.skipped_cells,
                r.notes,
                "results.csv, results.md, quality_vs_nfe.png, quality_vs_time.png, thumbnails.png",
            ),
            Report::Images(r) => (
                r.out_dir,
                r.table,
                r.skipped_samplers,
                r.skipped_cells,
                Vec::new(),
                "results.csv, results.md, quality_vs_nfe.png, quality_vs_time.png, memorisation_vs_nfe.png, thumbnails.png",
            ),
        };
    for (spec, why) in &skipped_samplers {
        println!("skipped sampler {spec}: {why}");
    }
    for (spec, budget, why) in &skipped_cells {
        println!("skipped {spec} at budget {budget}: {why}");
    }
    print!("{}", table.to_markdown());
    println!();
    for n in &notes {
        println!("{n}");
    }
    println!(
        "\nwrote {}/{{{files}}} in {:.1} s",
        out_dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) fn run_eval(a: EvalArgs) -> Result<()> {
    let (train, _) = imaging::eval_sets(&a.data)?;
    let shape = (train.channels, train.height, train.width);
    let x = imaging::load_samples(&a.samples, shape)?;
    let start = std::time::Instant::now();
    let report = imaging::evaluate(x.view(), &a.data)?;
    print!("{}", report.to_markdown(&a.data));
    println!("({:.1} s)", start.elapsed().as_secs_f64());
    Ok(())
}

pub(crate) fn run_schedule(a: ScheduleArgs) -> Result<()> {
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
    let result = match (a.score.model, a.score.oracle) {
        (Some(dir), _) => {
            let model = ScoreModel::load(&dir)?;
            optimize(model.sde(), &model, &opts)?
        }
        (None, Some(o)) => {
            let sde = SdeConfig::by_name(a.score.sde.as_deref().unwrap_or("vp"))?;
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
