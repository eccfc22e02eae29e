//! LMS (k-diffusion's `sample_lms`): the variable-step Adams–Bashforth
//! linear multistep method of the probability-flow ODE in σ̃.

use super::multistep::{Multistep, StepAt, Weights};
use super::quadrature::lagrange_integrals;
use super::stepper::{entry, Info, Stepper};
use super::{Entry, Schedule};

pub(super) const REGISTRY: &[Entry] = &[entry::<Multistep<LmsWeights>>(
    &["k-lms", "k_lms"],
    "LMS (k-diffusion): Adams-Bashforth in sigma; NFE N; order (4, 1..4), schedule (karras:rho=7)",
)];

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
pub type Lms = Stepper<Multistep<LmsWeights>>;

/// The weights of [`Lms`].
pub struct LmsWeights;

impl Weights for LmsWeights {
    const INFO: Info = Info {
        spec: "lms",
        label: "lms",
        default_schedule: &Schedule::Karras { rho: 7.0 },
        noisy: false,
    };
    const ORDERS: (usize, usize) = (4, 4);

    fn weights(s: &StepAt) -> Vec<f64> {
        // Nodes σ̃_i, σ̃_{i−1}, … shifted by σ̃_i.
        let (i, sig) = (s.i, s.sigmas);
        let nodes: Vec<f64> = (0..s.k).map(|j| sig[i - j] - sig[i]).collect();
        lagrange_integrals(&nodes, 0.0, sig[i + 1] - sig[i])
    }
}
