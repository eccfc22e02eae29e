//! The settings of a comparison ([`CompareOptions`], [`Source`]), their
//! defaults, and the checks that do not depend on the score.

use std::path::PathBuf;

use crate::data::Toy;
use crate::error::{Error, Result};
use crate::samplers;
use crate::sde::SdeConfig;

/// Default NFE budgets.
pub const DEFAULT_NFE: [usize; 8] = [5, 10, 20, 50, 100, 250, 500, 1000];
/// Default samples per run with an exact-score oracle.
pub const DEFAULT_N: usize = 5_000;
/// Default samples per run with a trained network: the default grid costs
/// about 29 samplers × 1935 NFE × 3 seeds ≈ 170,000 evaluations per sample,
/// so 1,000 samples keep the whole grid to about 1.7·10⁸ evaluations.
pub const DEFAULT_N_MODEL: usize = 1_000;
/// Default number of sampling seeds (and reference draws).
pub const DEFAULT_SEEDS: usize = 3;
/// Projection directions of SWD (docs/SPEC.md).
pub const SWD_PROJECTIONS: usize = 256;
/// MMD and energy distance are O(n²): they use the first this many points of
/// each set (samples are i.i.d. and data draws prefix-consistent).
pub const PAIRWISE_SUBSET: usize = 2_000;
/// Tolerances given to adaptive samplers: rtol from 1e-1 to 1e-6.
pub const RTOL_RANGE: (f64, f64) = (1e-1, 1e-6);

/// The samplers compared by default: every name [`samplers::by_name`]
/// knows ([`samplers::SAMPLER_NAMES`]), with its default parameters; those
/// that reject the SDE are skipped with the reason.
pub fn default_specs() -> Vec<String> {
    samplers::SAMPLER_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Where scores come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A checkpoint directory written by `scoresde train`.
    Model(PathBuf),
    /// The exact score of a toy mixture (8 or 25 Gaussians) under an SDE.
    Oracle { data: Toy, sde: SdeConfig },
    /// The exact score of an image set's noised training split
    /// ([`crate::oracle::EmpiricalScore`]): `digits`, `mnist`, `mnist16`,
    /// `emoji`.
    ImageOracle { data: String, sde: SdeConfig },
}

/// Image sets with an empirical-score oracle (`--oracle <name>-empirical`).
pub const IMAGE_ORACLES: [&str; 4] = ["digits", "mnist", "mnist16", "emoji"];

/// Settings of a comparison.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub source: Source,
    /// Reference data set (default: the model's data set / the oracle's toy).
    pub data: Option<Toy>,
    /// Sampler specs (default: [`default_specs`], filtered by SDE).
    pub samplers: Option<Vec<String>>,
    /// Schedules to cross every sampler with (`schedule=` appended to each
    /// spec that takes one; samplers without a schedule run once). None: each
    /// sampler's own default.
    pub schedules: Option<Vec<String>>,
    /// NFE budgets.
    pub nfe: Vec<usize>,
    /// Samples per run.
    pub n: usize,
    /// Sampling seeds per cell.
    pub seeds: usize,
    /// Base seed of sampling and reference draws.
    pub seed: u64,
    /// Sub-folder name (default: `<toy>-<sde>` or the model folder's name).
    pub name: Option<String>,
    /// Parent output folder; results go to `out/<name>/`.
    pub out: PathBuf,
    /// Overwrite an existing comparison of the same name.
    pub force: bool,
    /// Show progress bars.
    pub progress: bool,
}

impl CompareOptions {
    /// Defaults for a source.
    pub fn new(source: Source) -> Self {
        CompareOptions {
            source,
            data: None,
            samplers: None,
            schedules: None,
            nfe: DEFAULT_NFE.to_vec(),
            n: DEFAULT_N,
            seeds: DEFAULT_SEEDS,
            seed: 0,
            name: None,
            out: PathBuf::from("runs/compare"),
            force: false,
            progress: true,
        }
    }
}

/// Check the options that do not depend on the score.
pub(super) fn check_options(opts: &CompareOptions) -> Result<()> {
    if opts.nfe.is_empty() {
        return Err(Error::invalid(
            "nfe",
            "(empty list)",
            "a comma-separated list of integers >= 1",
        ));
    }
    if let Some(b) = opts.nfe.iter().find(|&&b| b == 0) {
        return Err(Error::invalid("nfe", b, "budgets >= 1"));
    }
    crate::limits::check_compare_sizes(opts.n, opts.seeds, &opts.nfe)?;
    let mut sorted = opts.nfe.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != opts.nfe.len() {
        return Err(Error::invalid(
            "nfe",
            format!("{:?}", opts.nfe),
            "distinct budgets",
        ));
    }
    if opts.n < 2 {
        return Err(Error::invalid(
            "n",
            opts.n,
            "an integer >= 2 (MMD and energy need two points)",
        ));
    }
    if opts.seeds == 0 {
        return Err(Error::invalid(
            "seeds",
            0,
            "an integer >= 1 (>= 2 for standard errors)",
        ));
    }
    if let Some(list) = &opts.samplers {
        if list.is_empty() {
            return Err(Error::invalid(
                "samplers",
                "(empty list)",
                "at least one sampler spec",
            ));
        }
    }
    Ok(())
}

/// Files a 2-D comparison writes.
pub(super) const FILES_2D: [&str; 5] = [
    "results.csv",
    "results.md",
    "quality_vs_nfe.png",
    "quality_vs_time.png",
    "thumbnails.png",
];

/// Check the comparison name and that none of `files` exists in
/// `opts.out/<name>/` unless forced; returns that folder.
pub(super) fn check_out_dir(opts: &CompareOptions, name: &str, files: &[&str]) -> Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(Error::invalid(
            "name",
            name,
            "a non-empty folder name without path separators",
        ));
    }
    let out_dir = opts.out.join(name);
    if !opts.force {
        if let Some(f) = files
            .iter()
            .map(|f| out_dir.join(f))
            .find(|p| p.symlink_metadata().is_ok())
        {
            return Err(Error::invalid(
                "name",
                name,
                format!(
                    "a new comparison name: {} exists ({})",
                    f.display(),
                    crate::app::ADVICE_FORCE
                ),
            ));
        }
    }
    Ok(out_dir)
}
