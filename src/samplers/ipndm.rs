//! iPNDM (Zhang & Chen's improved PNDM, as `sample_ipndm` in ComfyUI's copy
//! of k-diffusion, from zju-pi/diff-sampler): the Adams–Bashforth method of
//! the probability-flow ODE in σ̃ with the fixed equal-step coefficients,
//! warmed up by lower orders.

use super::multistep::{Multistep, StepAt, Weights};
use super::stepper::{entry, Info, Stepper};
use super::{Entry, Schedule};

pub(super) const REGISTRY: &[Entry] = &[entry::<Multistep<IpndmWeights>>(
    &[],
    "iPNDM (fixed-coefficient Adams-Bashforth in sigma); NFE N; order (4, 1..4), schedule (karras:rho=7)",
)];

/// The equal-step Adams–Bashforth coefficients of orders 1 to 4, newest first.
const AB: [&[f64]; 4] = [
    &[1.0],
    &[1.5, -0.5],
    &[23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0],
    &[55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0],
];

/// iPNDM over the N steps of a schedule (default Karras ρ = 7, as the
/// k-diffusion samplers are used), in x̃ = x/alpha, σ̃ = sigma/alpha with
/// dx̃/dσ̃ = ε̂ = (x̃ − D(x̃; σ̃))/σ̃. With ε̂_i = ε̂(x̃_i; σ̃_i) and
/// k = min(i + 1, order):
///
/// ```text
///   x̃_{i+1} = x̃_i + (σ̃_{i+1} − σ̃_i) Σ_{j<k} b^k_j ε̂_{i−j}
///   b¹ = (1),  b² = (3, −1)/2,  b³ = (23, −16, 5)/12,  b⁴ = (55, −59, 37, −9)/24
/// ```
///
/// The coefficients are those of equal steps whatever the grid (unlike LMS,
/// which integrates the interpolant over the actual steps). So iPNDM(4) is
/// fourth order on a grid uniform in σ̃ (`karras:rho=1`), but on a smoothly
/// graded grid such as Karras ρ = 7 the step ratios 1 + O(h) leave a local
/// error O(h³) and the method is second order there (what the tests
/// measure). ComfyUI returns D on a final step to σ = 0; our last
/// step goes to σ̃(ε) > 0 with the same update as the others. The output is
/// x = alpha(ε) x̃_N. NFE = N.
pub type Ipndm = Stepper<Multistep<IpndmWeights>>;

/// The weights of [`Ipndm`].
pub struct IpndmWeights;

impl Weights for IpndmWeights {
    const INFO: Info = Info {
        spec: "ipndm",
        label: "ipndm",
        default_schedule: &Schedule::Karras { rho: 7.0 },
        noisy: false,
    };
    const ORDERS: (usize, usize) = (4, 4);

    fn weights(s: &StepAt) -> Vec<f64> {
        let h = s.sigmas[s.i + 1] - s.sigmas[s.i];
        AB[s.k - 1].iter().map(|bj| h * bj).collect()
    }
}
