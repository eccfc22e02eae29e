//! The adaptive probability-flow ODE sampler `ode-rk45`, on the generic
//! Dormand–Prince integrator of [`crate::dopri5`].

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::ctx::write_back;
use super::params::SpecWriter;
use super::{Ctx, Entry, Nfe, Params, Sampler};
use crate::dopri5::{dopri5_rows, Dopri5Options};
use crate::error::Result;
use crate::sde::Sde;

pub(super) const REGISTRY: &[Entry] = &[Entry {
    name: "ode-rk45",
    aliases: &["ode_rk45", "rk45"],
    help: "probability-flow ODE, adaptive Dormand–Prince per sample; NFE adaptive; rtol, atol (1e-5), max_steps (100000)",
    build: |p: &mut Params, _steps| {
        let d = Dopri5Options::DEFAULT;
        let rtol = p.f64("rtol", d.rtol)?;
        let atol = p.f64("atol", d.atol)?;
        let max_steps = p.usize("max_steps", d.max_steps)?;
        Ok(Box::new(Rk45::new(rtol, atol, max_steps)?))
    },
}];

/// Probability-flow ODE dx/dt = f(t) x − ½ g(t)² s(x, t) from T to ε with
/// adaptive [`dopri5`](crate::dopri5::dopri5) (defaults rtol = atol = 1e-5, as score_sde).
///
/// **Per-sample adaptivity, batched.** Every sample keeps its own time, step
/// sizes and accept/reject decisions ([`dopri5_rows`]); the samples of a
/// chunk advance together, and each stage evaluates all samples still
/// running in one [`Score::score_rows`](crate::score::Score::score_rows)
/// call with a time per row. Row i of such a call is bit-identical to a
/// call of that row alone, so a sample's trajectory never depends on the
/// other rows of its chunk and the output is the same bytes for any batch
/// size or thread count (and the same as integrating each sample alone).
/// Samples that finish leave the batch.
///
/// NFE is per sample: the mean over samples of the evaluations each sample
/// actually used (6 per attempted step + 2 to start), not the number of
/// batched calls (the batch runs as long as its slowest sample), rounded up per chunk (the driver reports
/// per-chunk NFE × rows, so the reported mean can differ by at most 1 from
/// the exact mean across batch sizes). The step count given to the sampler
/// is ignored; `max_steps` caps the attempts per sample. A sample that hits
/// the cap or whose step size underflows keeps its last accepted (finite)
/// state. Only the prior draw and the final state are recorded in a
/// trajectory (sample times differ).
#[derive(Clone, Copy, Debug)]
pub struct Rk45 {
    pub opts: Dopri5Options,
}

impl Rk45 {
    /// Checked tolerances (each > 0 and finite) and step cap (>= 1).
    pub fn new(rtol: f64, atol: f64, max_steps: usize) -> Result<Self> {
        let opts = Dopri5Options {
            rtol,
            atol,
            max_steps,
        };
        opts.check()?;
        Ok(Rk45 { opts })
    }
}

impl Sampler for Rk45 {
    fn name(&self) -> String {
        let d = Dopri5Options::DEFAULT;
        // Adaptive: the step count is not used; steps=1 keeps the spec canonical.
        SpecWriter::new("ode-rk45", 1)
            .f64("rtol", self.opts.rtol, d.rtol)
            .f64("atol", self.opts.atol, d.atol)
            .usize("max_steps", self.opts.max_steps, d.max_steps)
            .done()
    }

    fn label(&self) -> String {
        format!("ode_rk45(rtol={},atol={})", self.opts.rtol, self.opts.atol)
    }

    fn cost(&self) -> Nfe {
        Nfe::Adaptive
    }

    fn validate(&self, _sde: &dyn Sde) -> Result<()> {
        self.opts.check()
    }

    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) -> Result<()> {
        let sde = ctx.sde;
        let (rows, d) = x32.dim();
        let mut x = x32.mapv(f64::from);
        let Some(y) = x.as_slice_mut() else {
            unreachable!("a fresh Array2 is contiguous")
        };
        let field = |t: &[f64], ys: &[f64], dys: &mut [f64]| {
            let yv = ArrayView2::from_shape((t.len(), d), ys).expect("m x d view");
            let dv = ArrayViewMut2::from_shape((t.len(), d), dys).expect("m x d view");
            ctx.pf_drift_rows(yv, t, dv);
        };
        let stats = dopri5_rows(field, sde.t_max(), sde.t_eps(), y, d, &self.opts);
        let total_nfe: usize = stats.iter().map(|s| s.nfe).sum();
        // Per-sample mean for the driver, which multiplies by the row count.
        ctx.set_nfe(total_nfe.div_ceil(rows.max(1)));
        write_back(x32, &x);
        ctx.record(1, 1, sde.t_eps(), x32.view());
        Ok(())
    }
}
