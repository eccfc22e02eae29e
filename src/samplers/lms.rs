//! LMS (k-diffusion's `sample_lms`): the variable-step Adams–Bashforth
//! linear multistep method of the probability-flow ODE in σ̃.

use ndarray::Array2;

use super::multistep::run_multistep;
use super::params::SpecWriter;
use super::quadrature::lagrange_integrals;
use super::{Ctx, Entry, Nfe, Params, Sampler, Schedule};
use crate::error::{Error, Result};
use crate::sde::Sde;

const DEFAULT_SCHEDULE: Schedule = Schedule::Karras { rho: 7.0 };

pub(super) const REGISTRY: &[Entry] = &[Entry {
    name: "lms",
    aliases: &["k-lms", "k_lms"],
    help: "LMS (k-diffusion): Adams-Bashforth in sigma; NFE N; order (4, 1..4), schedule (karras:rho=7)",
    build: |p: &mut Params, steps| {
        Ok(Box::new(Lms {
            order: p.usize("order", 4)?,
            schedule: p.schedule(DEFAULT_SCHEDULE)?,
            steps,
        }))
    },
}];

/// LMS over the N steps of a schedule (default Karras ρ = 7, as k-diffusion's
/// samplers are used), in x̃ = x/alpha, σ̃ = sigma/alpha with dx̃/dσ̃ = ε̂ =
/// (x̃ − D(x̃; σ̃))/σ̃. With ε̂_i = ε̂(x̃_i; σ̃_i) and k = min(i + 1, order),
/// the polynomial through the last k slopes, integrated over the step:
///
/// ```text
///   x̃_{i+1} = x̃_i + Σ_{j<k} c_ij ε̂_{i−j},   c_ij = ∫_{σ̃_i}^{σ̃_{i+1}} ℓ_j(σ̃) dσ̃,
///   ℓ_j(σ̃) = Π_{m<k, m≠j} (σ̃ − σ̃_{i−m}) / (σ̃_{i−j} − σ̃_{i−m})
/// ```
///
/// k-diffusion integrates ℓ_j with `scipy.integrate.quad` (epsrel 1e-4);
/// ℓ_j is a polynomial of degree k − 1 ≤ 3, so 4-point Gauss–Legendre
/// ([`lagrange_integrals`], exact to degree 7) gives c_ij exactly up to
/// rounding (computed in σ̃ − σ̃_i, which keeps the tiny last steps accurate).
/// The first step is Euler and the next ones warm up with orders 2, 3; every
/// later step, the last included (to σ̃(ε) > 0, k-diffusion's is to 0), has
/// the full order. The output is x = alpha(ε) x̃_N. order = 4 (default) is
/// fourth order on any smooth grid. NFE = N.
#[derive(Clone, Debug)]
pub struct Lms {
    pub steps: usize,
    pub order: usize,
    pub schedule: Schedule,
}

impl Lms {
    /// Order 4 on Karras ρ = 7.
    pub fn new(steps: usize) -> Self {
        Lms {
            steps,
            order: 4,
            schedule: DEFAULT_SCHEDULE,
        }
    }
}

impl Sampler for Lms {
    fn name(&self) -> String {
        SpecWriter::new("lms", self.steps)
            .usize("order", self.order, 4)
            .schedule(&self.schedule, &DEFAULT_SCHEDULE)
            .done()
    }

    fn label(&self) -> String {
        if self.order == 4 {
            format!("lms({})", self.steps)
        } else {
            format!("lms({}, order={})", self.steps, self.order)
        }
    }

    fn cost(&self) -> Nfe {
        Nfe::ONE
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if !(1..=4).contains(&self.order) {
            return Err(Error::invalid("order", self.order, "1 <= order <= 4"));
        }
        self.schedule.grid(sde, self.steps).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) -> Result<()> {
        let order = (&self.schedule, self.steps, self.order);
        run_multistep(ctx, x32, order, |s| {
            // Nodes σ̃_i, σ̃_{i−1}, … shifted by σ̃_i.
            let (i, sig) = (s.i, s.sigmas);
            let nodes: Vec<f64> = (0..s.k).map(|j| sig[i - j] - sig[i]).collect();
            lagrange_integrals(&nodes, 0.0, sig[i + 1] - sig[i])
        })
    }
}
