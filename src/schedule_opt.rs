//! Optimised time schedules: the K-NFE grid that minimises a solver's
//! endpoint error against a tight adaptive teacher (`scoresde schedule`).
//!
//! For M prior draws x_T (the same per-sample streams every sampler uses)
//! the teacher is the probability-flow ODE solved by Dormand–Prince at
//! rtol = atol = [`TEACHER_TOL`], giving x*_ε = Φ(x_T). A grid
//! T = t_0 > t_1 > … > t_N = ε with N = (K − offset)/per_step steps is scored by
//!
//! ```text
//!   E(grid) = sqrt( mean_i ‖ solver(x_T,i; grid) − x*_ε,i ‖² )
//! ```
//!
//! Start: the best of the named schedules. Search: coordinate descent on the
//! interior points in lambda = ln(alpha/sigma): each λ_i in turn is moved by
//! a golden-section search inside (λ_{i−1}, λ_{i+1}), for `sweeps` sweeps or
//! until a sweep gains less than 0.1%. Unlike dynamic programming over
//! per-step local errors, this optimises the solver's actual global error, so
//! it also fits multistep solvers whose steps do not decouple. E never
//! increases, so the result is at least as good as every named schedule on
//! the training draws; held-out quality is measured separately (compare).
//! The objective is meant for deterministic solvers (for a stochastic one it
//! mixes in the distance between its noise and the ODE path).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::samplers::{self, schedule::SCHEDULES, Nfe, SampleOptions, Schedule};
use crate::score::Score;
use crate::sde::Sde;

/// Tolerance of the teacher's Dormand–Prince solve.
pub const TEACHER_TOL: f64 = 1e-8;

/// Settings of an optimisation.
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    /// Sampler spec (without steps= or schedule=).
    pub sampler: String,
    /// Budget K in model evaluations per sample.
    pub nfe: usize,
    /// Prior draws M.
    pub n: usize,
    /// Seed of the prior draws.
    pub seed: u64,
    /// Coordinate-descent sweeps at most.
    pub sweeps: usize,
}

impl OptimizeOptions {
    /// Defaults: 512 draws, seed 0, 8 sweeps.
    pub fn new(sampler: &str, nfe: usize) -> Self {
        OptimizeOptions {
            sampler: sampler.to_string(),
            nfe,
            n: 512,
            seed: 0,
            sweeps: 8,
        }
    }
}

/// The optimised grid and how it compares with the named schedules.
#[derive(Clone, Debug, Serialize)]
pub struct Optimized {
    /// Sampler spec the grid is for.
    pub sampler: String,
    pub nfe: usize,
    pub steps: usize,
    /// t_0 = T, …, t_{N−1} (the grid without its last point ε), the form
    /// `schedule=FILE` reads.
    pub times: Vec<f64>,
    /// E of the optimised grid.
    pub error: f64,
    /// E of each named schedule.
    pub named: Vec<(String, f64)>,
    /// Objective evaluations (sampler runs) used.
    pub evaluations: usize,
}

/// Find the grid; see the module doc.
pub fn optimize(sde: &dyn Sde, score: &dyn Score, opts: &OptimizeOptions) -> Result<Optimized> {
    let probe = samplers::by_name(&opts.sampler, 1)?;
    let steps = match probe.cost() {
        Nfe::Fixed { per_step, offset } => {
            let s = (opts.nfe as isize - offset) / per_step as isize;
            if s < 1 {
                return Err(Error::invalid(
                    "nfe",
                    opts.nfe,
                    format!(
                        "at least {} for {}",
                        per_step as isize + offset,
                        opts.sampler
                    ),
                ));
            }
            s as usize
        }
        Nfe::Adaptive => {
            return Err(Error::invalid(
                "sampler",
                &opts.sampler,
                "a fixed-step sampler (an adaptive one has no grid)",
            ))
        }
    };
    if opts.n == 0 || opts.n > 100_000 {
        return Err(Error::invalid("n", opts.n, "1 ..= 100000 draws"));
    }
    let build = |sched: &Schedule| -> Result<Box<dyn samplers::Sampler>> {
        let spec = format!(
            "{}{}schedule={}",
            opts.sampler,
            if opts.sampler.contains(':') { "," } else { ":" },
            sched.spec()
        );
        let s = samplers::by_name(&spec, steps)?;
        s.validate(sde)?;
        Ok(s)
    };
    let so = SampleOptions::new(opts.n, opts.seed);
    let teacher = samplers::by_name(
        &format!("ode-rk45:rtol={TEACHER_TOL:e},atol={TEACHER_TOL:e}"),
        1,
    )?;
    let target = samplers::sample(teacher.as_ref(), sde, score, &so)?.samples;
    let mut evaluations = 0usize;
    let mut objective = |sched: &Schedule| -> Result<f64> {
        evaluations += 1;
        let out = samplers::sample(build(sched)?.as_ref(), sde, score, &so)?.samples;
        let sq: f64 = out
            .iter()
            .zip(target.iter())
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum();
        let e = (sq / opts.n as f64).sqrt();
        Ok(if e.is_finite() { e } else { f64::INFINITY })
    };

    let mut named = Vec::new();
    let mut best: Option<(Vec<f64>, f64)> = None;
    for (name, _) in SCHEDULES {
        let sched = Schedule::parse(name)?;
        let e = objective(&sched)?;
        named.push((name.to_string(), e));
        if best.as_ref().is_none_or(|b| e < b.1) {
            let g = sched.grid(sde, steps)?;
            best = Some((g.times().iter().map(|&t| sde.lambda(t)).collect(), e));
        }
    }
    let (mut lam, mut err) = best.expect("SCHEDULES is not empty");
    let to_times = |lam: &[f64]| -> Vec<f64> {
        let mut times: Vec<f64> = lam[..lam.len() - 1]
            .iter()
            .map(|&l| sde.t_of_lambda(l).clamp(sde.t_eps(), sde.t_max()))
            .collect();
        times[0] = sde.t_max();
        times
    };
    let to_schedule = |lam: &[f64]| Schedule::List {
        times: to_times(lam),
        source: None,
    };
    const GOLD: f64 = 0.381_966_011_250_105_1;
    for _ in 0..opts.sweeps {
        let before = err;
        for i in 1..steps {
            let (lo, hi) = (lam[i - 1], lam[i + 1]);
            // Search the middle 98% of the bracket so neighbours stay apart.
            let (mut a, mut b) = (lo + 0.01 * (hi - lo), hi - 0.01 * (hi - lo));
            let mut eval = |l: f64, lam: &mut Vec<f64>| -> Result<f64> {
                let keep = lam[i];
                lam[i] = l;
                let e = objective(&to_schedule(lam));
                lam[i] = keep;
                e
            };
            let mut c = a + GOLD * (b - a);
            let mut d = b - GOLD * (b - a);
            let (mut fc, mut fd) = (eval(c, &mut lam)?, eval(d, &mut lam)?);
            for _ in 0..14 {
                if fc < fd {
                    b = d;
                    d = c;
                    fd = fc;
                    c = a + GOLD * (b - a);
                    fc = eval(c, &mut lam)?;
                } else {
                    a = c;
                    c = d;
                    fc = fd;
                    d = b - GOLD * (b - a);
                    fd = eval(d, &mut lam)?;
                }
            }
            let (l, f) = if fc < fd { (c, fc) } else { (d, fd) };
            if f < err {
                lam[i] = l;
                err = f;
            }
        }
        if err > before * 0.999 {
            break;
        }
    }
    Ok(Optimized {
        sampler: opts.sampler.clone(),
        nfe: opts.nfe,
        steps,
        times: to_times(&lam),
        error: err,
        named,
        evaluations,
    })
}
