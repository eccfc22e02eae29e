//! Documented caps on every size a user passes, and the check that what a
//! command is about to allocate fits in the memory the machine has.
//!
//! Every count is checked before any work starts; a value past its cap, or
//! one whose buffers would not fit in available memory, is refused with
//! one `invalid NAME = VALUE: expected ...` error instead of an abort in the
//! allocator.

use crate::error::{Error, Result};

/// Worker threads (`--threads`).
pub const MAX_THREADS: usize = 1024;
/// Sampler steps (`--steps`, `--sample-steps`) and compare NFE budgets.
pub const MAX_SAMPLER_STEPS: usize = 1_000_000;
/// Total training steps (`train --steps`, `demo --train-steps`): 10⁹ steps
/// already take days at the toy2d training rates of BENCHMARKS.md; beyond
/// it a run never ends.
pub const MAX_TRAIN_STEPS: u64 = 1_000_000_000;
/// Training batch size (`train --batch`).
pub const MAX_BATCH: usize = 1 << 20;
/// Seeds per compare cell (`compare --seeds`).
pub const MAX_SEEDS: usize = 1000;
/// Samples per compare run (`compare -n`).
pub const MAX_COMPARE_N: usize = 1_000_000;
/// Samples per compare cell over all its seeds (`-n` × `--seeds`).
pub const MAX_COMPARE_N_SEEDS: usize = 100_000_000;
/// Samples the quadratic-time metrics (MMD) of `sample` use; more samples
/// are subsampled to the first this many (as `compare` does).
pub const MAX_QUADRATIC_METRIC_N: usize = 10_000;

/// Memory the process may plan to use: `MemAvailable` of `/proc/meminfo`
/// (Linux), else 8 GiB.
pub fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb.saturating_mul(1024))
        .unwrap_or(8 << 30)
}

/// Human-readable byte count.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Refuse `name = value` if `value > max`.
pub fn check_cap(name: &str, value: usize, max: usize, why: &str) -> Result<()> {
    if value > max {
        return Err(Error::invalid(name, value, format!("1..={max} ({why})")));
    }
    Ok(())
}

/// Refuse `name = value` if the `bytes` it makes the command allocate
/// (computed in f64 so huge values cannot overflow) exceed half the memory
/// available (the machine is shared, and estimates are estimates); `what`
/// says what the bytes are for.
pub fn check_memory(name: &str, value: impl ToString, bytes: f64, what: &str) -> Result<()> {
    let avail = available_memory() as f64 / 2.0;
    if bytes.is_nan() || bytes > avail {
        return Err(Error::invalid(
            name,
            value,
            format!(
                "a value whose {what} fit in memory (they need {}, half of what this machine has available is {})",
                human_bytes(bytes),
                human_bytes(avail)
            ),
        ));
    }
    Ok(())
}

/// The sizes of a `compare` run: `n` ≤ [`MAX_COMPARE_N`], `seeds` ≤
/// [`MAX_SEEDS`], every NFE budget ≤ [`MAX_SAMPLER_STEPS`], and the samples
/// kept for the report (one set per sampler and budget, plus the
/// reference draws) within available memory.
pub fn check_compare_sizes(n: usize, seeds: usize, nfe: &[usize]) -> Result<()> {
    check_cap("n", n, MAX_COMPARE_N, "samples per compare run")?;
    check_cap("seeds", seeds, MAX_SEEDS, "seeds per compare cell")?;
    if n.saturating_mul(seeds) > MAX_COMPARE_N_SEEDS {
        return Err(Error::invalid(
            "n",
            n,
            format!(
                "n x seeds <= {MAX_COMPARE_N_SEEDS} (with seeds = {seeds}: n <= {})",
                MAX_COMPARE_N_SEEDS / seeds.max(1)
            ),
        ));
    }
    if let Some(&b) = nfe.iter().find(|&&b| b > MAX_SAMPLER_STEPS) {
        return Err(Error::invalid(
            "nfe",
            b,
            format!("budgets in 1..={MAX_SAMPLER_STEPS}"),
        ));
    }
    // 2-D f32 points: about 20 samplers × the budgets, plus 2·seeds draws.
    let sets = 20.0 * nfe.len() as f64 + 2.0 * seeds as f64 + 4.0;
    check_memory("n", n, 8.0 * n as f64 * sets, "samples kept for the report")
}
