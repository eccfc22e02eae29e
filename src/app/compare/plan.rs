//! Budget planning: which sampler runs at which step count or tolerance
//! for each NFE budget (see the [module docs](super) for the rule).

use super::options::{default_specs, CompareOptions, RTOL_RANGE};
use crate::error::{Error, Result};
use crate::samplers;
use crate::sde::Sde;

/// How one sampler maps budgets to runs.
pub(super) enum Plan {
    /// NFE = offset + per_step · steps.
    Fixed { per_step: f64, offset: f64 },
    /// NFE chosen by the sampler; one run per tolerance.
    Adaptive,
}

/// Sampler specs crossed with schedules and planned: explicit specs must
/// all work on `sde`, default ones that do not are returned with the reason.
#[allow(clippy::type_complexity)]
pub(super) fn plan_samplers(
    opts: &CompareOptions,
    sde: &dyn Sde,
) -> Result<(Vec<(String, Plan)>, Vec<(String, String)>)> {
    let mut skipped_samplers = Vec::new();
    let mut plans: Vec<(String, Plan)> = Vec::new();
    let explicit = opts.samplers.is_some();
    let specs = cross_schedules(
        &opts.samplers.clone().unwrap_or_else(default_specs),
        opts.schedules.as_deref(),
    )?;
    for spec in &specs {
        if plans.iter().any(|(s, _)| s == spec) {
            return Err(Error::invalid("samplers", spec, "each sampler spec once"));
        }
        match plan_sampler(spec, sde) {
            Ok(p) => plans.push((spec.clone(), p)),
            Err(e) if !explicit => skipped_samplers.push((spec.clone(), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    if plans.is_empty() {
        return Err(Error::invalid(
            "samplers",
            specs.join(","),
            format!(
                "at least one sampler that runs on the {} SDE",
                sde.config().name()
            ),
        ));
    }
    Ok((plans, skipped_samplers))
}

/// What one (sampler, budget) cell runs, or why it is left empty.
pub(super) enum CellPlan {
    Run {
        sampler: Box<dyn samplers::Sampler>,
        steps: Option<usize>,
        rtol: Option<f64>,
    },
    Skip(String),
}

/// The sampler of the cell at budget index `bi` of `k` ascending budgets.
pub(super) fn plan_cell(
    spec: &str,
    plan: &Plan,
    bi: usize,
    budget: usize,
    k: usize,
) -> Result<CellPlan> {
    Ok(match plan {
        Plan::Fixed { per_step, offset } => {
            let steps = (((budget as f64 - offset) / per_step).floor() as usize).max(1);
            let predicted = offset + per_step * steps as f64;
            if predicted > 2.0 * budget as f64 {
                CellPlan::Skip(format!("needs NFE {predicted} > 2 x budget at 1 step"))
            } else {
                CellPlan::Run {
                    sampler: samplers::by_name(spec, steps)?,
                    steps: Some(steps),
                    rtol: None,
                }
            }
        }
        Plan::Adaptive => {
            let rtol = rtol_for(bi, k);
            CellPlan::Run {
                sampler: samplers::by_name(&with_rtol(spec, rtol), 1)?,
                steps: None,
                rtol: Some(rtol),
            }
        }
    })
}

/// Build the sampler, check it accepts the SDE, and read its declared cost
/// ([`samplers::Sampler::cost`]).
pub(super) fn plan_sampler(spec: &str, sde: &dyn Sde) -> Result<Plan> {
    if samplers::Params::parse(spec)?.has("steps") {
        return Err(Error::invalid(
            "sampler",
            spec,
            "a spec without steps= (compare sets the steps from each NFE budget)",
        ));
    }
    let s = samplers::by_name(spec, 1)?;
    s.validate(sde)?;
    match s.cost() {
        samplers::Nfe::Fixed { per_step, offset } => Ok(Plan::Fixed {
            per_step: per_step as f64,
            offset: offset as f64,
        }),
        samplers::Nfe::Adaptive => {
            // Adaptive: it must accept a tolerance.
            let s = samplers::by_name(&with_rtol(spec, RTOL_RANGE.0), 1).map_err(|e| {
                Error::invalid(
                    "sampler",
                    spec,
                    format!("an adaptive sampler that takes rtol=… ({e})"),
                )
            })?;
            s.validate(sde)?;
            Ok(Plan::Adaptive)
        }
    }
}

/// Every spec with every schedule (`all`: every named schedule); a spec
/// that takes no `schedule=` (adaptive) is kept once, unchanged.
pub(super) fn cross_schedules(
    specs: &[String],
    schedules: Option<&[String]>,
) -> Result<Vec<String>> {
    let Some(schedules) = schedules else {
        return Ok(specs.to_vec());
    };
    let mut names: Vec<String> = Vec::new();
    for s in schedules {
        if s == "all" {
            names.extend(
                samplers::schedule::SCHEDULES
                    .iter()
                    .map(|n| n.0.to_string()),
            );
        } else {
            samplers::Schedule::parse(s)?;
            names.push(s.clone());
        }
    }
    let mut out = Vec::new();
    for spec in specs {
        let sep = if spec.contains(':') { "," } else { ":" };
        let crossed: Vec<String> = names
            .iter()
            .map(|n| format!("{spec}{sep}schedule={n}"))
            .filter(|c| samplers::by_name(c, 1).is_ok())
            .collect();
        if crossed.is_empty() {
            out.push(spec.clone());
        } else {
            out.extend(crossed);
        }
    }
    Ok(out)
}

/// `spec` with `rtol=<rtol>` added to its parameters.
pub(super) fn with_rtol(spec: &str, rtol: f64) -> String {
    let sep = if spec.contains(':') { "," } else { ":" };
    format!("{spec}{sep}rtol={rtol:e}")
}

/// Tolerance for budget index i of k (ascending budgets): log-spaced from
/// RTOL_RANGE.0 (i = 0) to RTOL_RANGE.1 (i = k − 1).
pub(super) fn rtol_for(i: usize, k: usize) -> f64 {
    let (a, b) = (RTOL_RANGE.0.log10(), RTOL_RANGE.1.log10());
    let f = if k <= 1 {
        1.0
    } else {
        i as f64 / (k - 1) as f64
    };
    10f64.powf(a + f * (b - a))
}
