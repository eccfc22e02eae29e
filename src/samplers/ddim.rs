//! DDIM (Song, Meng & Ermon 2021) on the continuous SDE's alpha, sigma.

use ndarray::{Array2, Zip};

use super::params::SpecWriter;
use super::stepper::{entry, Info, Rule, Stepper};
use super::{Ctx, Entry, Params, Schedule};
use crate::error::{Error, Result};

pub(super) const REGISTRY: &[Entry] = &[entry::<DdimStep>(
    &[],
    "DDIM; deterministic at eta=0 (default), ancestral at eta=1; NFE N; eta, schedule (uniform), noise",
)];

/// DDIM over the N steps of a schedule T = t_0 > … > t_N = ε (default
/// uniform t). From t to s < t, with x̂0 = (x + sigma_t² s(x,t))/alpha_t
/// and ε̂ = (x − alpha_t x̂0)/sigma_t = −sigma_t s(x,t):
///
/// ```text
///   c   = eta · sigma_s · sqrt(1 − alpha_t² sigma_s² / (alpha_s² sigma_t²))
///   x_s = alpha_s x̂0 + sqrt(sigma_s² − c²) ε̂ + c z,   z ~ N(0, I)
/// ```
///
/// c² at eta = 1 is the variance of the forward posterior q(x_s | x_t, x0),
/// sigma_s² sigma_{t|s}² / sigma_t² with sigma_{t|s}² = sigma_t² − (alpha_t/alpha_s)² sigma_s²;
/// for VP (sigma² = 1 − alpha²) it is DDIM's eq. 16,
/// eta sqrt((1 − ᾱ_s)/(1 − ᾱ_t)) sqrt(1 − ᾱ_t/ᾱ_s). (Writing the factor as
/// sigma_s/sigma_t · sqrt(1 − …) would drop a sigma_t and, with eta = 1, triple
/// the output std on N(mu, 0.5² I).) alpha_t sigma_s/(alpha_s sigma_t) =
/// exp(lambda_t − lambda_s), so the bracket is −expm1(2 (lambda_t − lambda_s)).
/// eta = 0 is deterministic (the probability-flow ODE's first-order
/// exponential integrator); eta = 1 is DDPM's ancestral sampling. The last step returns x̂0 (no
/// noise), like score_sde's final denoising. Works for any SDE here
/// (VE: alpha = 1). NFE = N.
pub type Ddim = Stepper<DdimStep>;

impl Ddim {
    /// N uniform steps with the given eta, per-step noise streams.
    pub fn new(steps: usize, eta: f64) -> Self {
        Stepper::with_rule(steps, DdimStep { eta })
    }
}

/// The update of [`Ddim`] with its noise level eta.
#[derive(Clone, Debug)]
pub struct DdimStep {
    pub eta: f64,
}

impl Rule for DdimStep {
    const INFO: Info = Info {
        spec: "ddim",
        label: "ddim",
        default_schedule: &Schedule::Uniform,
        noisy: true,
    };

    fn parse(p: &mut Params) -> Result<Self> {
        Ok(DdimStep {
            eta: p.f64("eta", 0.0)?,
        })
    }

    fn spec(&self, w: SpecWriter) -> SpecWriter {
        w.f64("eta", self.eta, 0.0)
    }

    fn label(&self, steps: usize, schedule: &Schedule) -> String {
        let suffix = schedule.label_suffix(&Schedule::Uniform);
        format!("ddim({steps}, eta={}{suffix})", self.eta)
    }

    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.eta) {
            return Err(Error::invalid("eta", self.eta, "0 <= eta <= 1"));
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>, grid: (&Schedule, usize)) -> Result<()> {
        let sde = ctx.sde;
        let grid = grid.0.grid(sde, grid.1)?;
        let (ts, n) = (grid.times(), grid.steps());
        let mut x0 = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for k in 0..n {
            let (t, s) = (ts[k], ts[k + 1]);
            ctx.x0(x.view(), t, x0.view_mut());
            if k + 1 == n {
                x.assign(&x0);
            } else {
                let (alpha_t, sigma_t) = (sde.alpha(t), sde.sigma(t));
                let (alpha_s, sigma_s) = (sde.alpha(s), sde.sigma(s));
                let bracket = -(2.0 * (sde.lambda(t) - sde.lambda(s))).exp_m1();
                let c = self.eta * sigma_s * bracket.max(0.0).sqrt();
                let c_eps = (sigma_s * sigma_s - c * c).max(0.0).sqrt();
                // x_s = alpha_s x̂0 + c_eps (x − alpha_t x̂0)/sigma_t + c z
                let c_x = (c_eps / sigma_t) as f32;
                let c_x0 = (alpha_s - c_eps * alpha_t / sigma_t) as f32;
                if c > 0.0 {
                    ctx.noise(t, s, &mut z);
                    let c_z = c as f32;
                    Zip::from(&mut *x)
                        .and(&x0)
                        .and(&z)
                        .for_each(|xv, &x0v, &zv| *xv = c_x * *xv + c_x0 * x0v + c_z * zv);
                } else {
                    Zip::from(&mut *x)
                        .and(&x0)
                        .for_each(|xv, &x0v| *xv = c_x * *xv + c_x0 * x0v);
                }
            }
            ctx.record(k + 1, n, s, x.view());
        }
        Ok(())
    }
}
