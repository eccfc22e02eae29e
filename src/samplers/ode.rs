//! Fixed-step solvers of the probability-flow ODE (Song et al. 2021, eq. 13):
//!
//! ```text
//!   dx/dt = F(x, t) = f(t) x − ½ g(t)² s(x, t)
//! ```
//!
//! integrated from t = T to t = ε over the N steps of a schedule (default
//! uniform in t), h_k = t_{k+1} − t_k < 0. The state is kept in f64 between steps;
//! only the score sees an f32 copy. Deterministic: the only randomness is the
//! prior draw.

use ndarray::{Array2, Zip};

use super::ctx::write_back;
use super::params::SpecWriter;
use super::{Ctx, Entry, Nfe, Params, Sampler, Schedule};
use crate::error::Result;
use crate::sde::Sde;

fn build(method: OdeMethod, p: &mut Params, steps: usize) -> Result<Box<dyn Sampler>> {
    Ok(Box::new(ProbabilityFlowOde {
        steps,
        method,
        schedule: p.schedule(Schedule::Uniform)?,
    }))
}

pub(super) const REGISTRY: &[Entry] = &[
    Entry {
        name: "ode-euler",
        aliases: &["ode_euler"],
        help: "probability-flow ODE, Euler; NFE N; schedule (uniform)",
        build: |p, n| build(OdeMethod::Euler, p, n),
    },
    Entry {
        name: "ode-heun",
        aliases: &["ode_heun"],
        help: "probability-flow ODE, Heun (2nd order); NFE 2N; schedule (uniform)",
        build: |p, n| build(OdeMethod::Heun, p, n),
    },
    Entry {
        name: "ode-rk4",
        aliases: &["ode_rk4"],
        help: "probability-flow ODE, classical RK4; NFE 4N; schedule (uniform)",
        build: |p, n| build(OdeMethod::Rk4, p, n),
    },
];

/// Which fixed-step Runge–Kutta method advances the ODE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OdeMethod {
    /// x ← x + dt F(x, t). First order, NFE = N.
    Euler,
    /// Heun (explicit trapezoid): k1 = F(x, t), k2 = F(x + dt k1, t + dt),
    /// x ← x + dt (k1 + k2)/2. Second order, NFE = 2N (the last step ends
    /// at ε > 0, where the score is finite, so it needs no special case).
    Heun,
    /// Classical fourth-order Runge–Kutta. NFE = 4N.
    Rk4,
}

/// Probability-flow ODE sampler with a fixed-step method over a schedule.
#[derive(Clone, Debug)]
pub struct ProbabilityFlowOde {
    pub steps: usize,
    pub method: OdeMethod,
    pub schedule: Schedule,
}

impl ProbabilityFlowOde {
    /// N uniform steps of `method`.
    pub fn new(steps: usize, method: OdeMethod) -> Self {
        ProbabilityFlowOde {
            steps,
            method,
            schedule: Schedule::Uniform,
        }
    }

    fn method_name(&self) -> &'static str {
        match self.method {
            OdeMethod::Euler => "euler",
            OdeMethod::Heun => "heun",
            OdeMethod::Rk4 => "rk4",
        }
    }
}

impl Sampler for ProbabilityFlowOde {
    fn name(&self) -> String {
        SpecWriter::new(&format!("ode-{}", self.method_name()), self.steps)
            .schedule(&self.schedule, &Schedule::Uniform)
            .done()
    }

    fn label(&self) -> String {
        format!(
            "ode_{}({}{})",
            self.method_name(),
            self.steps,
            self.schedule.label_suffix(&Schedule::Uniform)
        )
    }

    fn cost(&self) -> Nfe {
        let per_step = match self.method {
            OdeMethod::Euler => 1,
            OdeMethod::Heun => 2,
            OdeMethod::Rk4 => 4,
        };
        Nfe::Fixed {
            per_step,
            offset: 0,
        }
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        self.schedule.grid(sde, self.steps).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) -> Result<()> {
        let grid = self.schedule.grid(ctx.sde, self.steps)?;
        let (ts, n) = (grid.times(), grid.steps());
        let mut x = x32.mapv(f64::from);
        let shape = x.raw_dim();
        let mut k1 = Array2::<f64>::zeros(shape);
        let mut k2 = Array2::<f64>::zeros(shape);
        let mut k3 = Array2::<f64>::zeros(shape);
        let mut k4 = Array2::<f64>::zeros(shape);
        let mut tmp = Array2::<f64>::zeros(shape);
        for k in 0..n {
            let (t, t_next) = (ts[k], ts[k + 1]);
            let h = t_next - t;
            ctx.pf_drift(x.view(), t, k1.view_mut());
            match self.method {
                OdeMethod::Euler => x.scaled_add(h, &k1),
                OdeMethod::Heun => {
                    axpy_into(&mut tmp, &x, h, &k1);
                    ctx.pf_drift(tmp.view(), t_next, k2.view_mut());
                    Zip::from(&mut x)
                        .and(&k1)
                        .and(&k2)
                        .for_each(|xv, &a, &b| *xv += 0.5 * h * (a + b));
                }
                OdeMethod::Rk4 => {
                    let t_mid = t + 0.5 * h;
                    axpy_into(&mut tmp, &x, 0.5 * h, &k1);
                    ctx.pf_drift(tmp.view(), t_mid, k2.view_mut());
                    axpy_into(&mut tmp, &x, 0.5 * h, &k2);
                    ctx.pf_drift(tmp.view(), t_mid, k3.view_mut());
                    axpy_into(&mut tmp, &x, h, &k3);
                    ctx.pf_drift(tmp.view(), t_next, k4.view_mut());
                    Zip::from(&mut x)
                        .and(&k1)
                        .and(&k2)
                        .and(&k3)
                        .and(&k4)
                        .for_each(|xv, &a, &b, &c, &d| {
                            *xv += h / 6.0 * (a + 2.0 * b + 2.0 * c + d)
                        });
                }
            }
            ctx.record_f64(k + 1, n, t_next, &x);
        }
        write_back(x32, &x);
        Ok(())
    }
}

/// out = x + h k.
fn axpy_into(out: &mut Array2<f64>, x: &Array2<f64>, h: f64, k: &Array2<f64>) {
    Zip::from(out)
        .and(x)
        .and(k)
        .for_each(|o, &xv, &kv| *o = xv + h * kv);
}
