//! `scoresde` command-line tool: parses arguments and calls the library.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod args;
mod cmd;

use args::{
    parse_usize, CompareArgs, DemoArgs, EvalArgs, InpaintArgs, SampleArgs, ScheduleArgs, ServeArgs,
    TrainArgs, TrainClassifierArgs,
};

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
    Train(Box<TrainArgs>),
    /// Train a noise-conditional classifier p_t(y | x_t) for `sample --classifier`.
    TrainClassifier(TrainClassifierArgs),
    /// Draw samples from a trained model.
    Sample(SampleArgs),
    /// Compare samplers: sample quality against NFE and wall time, with a model or an exact oracle.
    Compare(CompareArgs),
    /// Score generated images: Fréchet distance, classifier scores, nearest neighbours, with floors.
    Eval(EvalArgs),
    /// Optimise a solver's time grid for an NFE budget against an adaptive ODE teacher.
    Schedule(ScheduleArgs),
    /// Serve the sampler explorer: a local web page to run samplers side by side and watch them.
    Serve(ServeArgs),
    /// Fill in the hidden part of data-set images (replacement or RePaint) and write a grid.
    Inpaint(InpaintArgs),
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

/// The library's advice spelled as this tool's options.
fn with_flag_names(msg: String) -> String {
    msg.replace(scoresde::train::ADVICE_LR, "lower --lr")
        .replace(
            scoresde::train::ADVICE_SKIP,
            "pass --on-nonfinite skip to skip such batches",
        )
        .replace(scoresde::app::ADVICE_FORCE, "pass --force to replace them")
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
            let msg = match e.downcast_ref::<scoresde::Error>() {
                Some(scoresde::Error::ResumeMismatch {
                    what,
                    ours,
                    saved,
                    dir,
                }) => format!(
                    "--{what} {ours} differs from {saved} in the checkpoint {dir}; \
                     a resumed run must use the same {what} (omit --{what} to take the saved one)"
                ),
                _ => one_line(&e),
            };
            eprintln!("error: {}", with_flag_names(msg));
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
    if let Command::Serve(a) = cli.command {
        return cmd::run_serve(a);
    }
    // The command runs on a worker of the pool, so that its parallel loops
    // fork and join inside the pool instead of each being injected from
    // this thread and waited for (two thread wake-ups per loop). The server
    // stays outside: it would hold a worker for its whole life.
    rayon::scope(|_| run_command(cli.command))
}

fn run_command(command: Command) -> Result<()> {
    match command {
        Command::Demo(a) => cmd::run_demo(a),
        Command::Train(a) => cmd::run_train(*a),
        Command::TrainClassifier(a) => cmd::run_train_classifier(a),
        Command::Sample(a) => cmd::run_sample(a),
        Command::Compare(a) => cmd::run_compare(a),
        Command::Eval(a) => cmd::run_eval(a),
        Command::Schedule(a) => cmd::run_schedule(a),
        Command::Serve(a) => cmd::run_serve(a),
        Command::Inpaint(a) => cmd::run_inpaint(a),
    }
}
