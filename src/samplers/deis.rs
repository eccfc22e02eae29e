//! DEIS tAB (Zhang & Chen 2022, "Fast Sampling of Diffusion Models with
//! Exponential Integrator"): the exponential integrator of the
//! probability-flow ODE with the noise prediction ε̂ extrapolated by a
//! polynomial in the SDE time t (`sample_deis` with deis_mode='tab' in
//! ComfyUI's copy of k-diffusion, from zju-pi/diff-sampler).

use super::multistep::{Multistep, StepAt, Weights};
use super::quadrature::{weighted_lagrange_integrals, PANEL_WIDTH};
use super::stepper::{entry, Info, Stepper};
use super::{Entry, Schedule};

pub(super) const REGISTRY: &[Entry] = &[entry::<Multistep<DeisWeights>>(
    &["deis-tab", "deis_tab"],
    "DEIS tAB: eps extrapolated in t, integrated exactly in sigma; NFE N; order (3, 1..3), schedule (karras:rho=7)",
)];

/// DEIS tAB over the N steps of a schedule (default Karras ρ = 7, as for the
/// other k-diffusion-style samplers: ComfyUI's `deis` walks whatever σ grid it
/// is given, usually Karras), in noise (ε) prediction as in both references.
/// In x̃ = x/alpha, σ̃ = sigma/alpha the PF-ODE is dx̃/dσ̃ = ε̂(x̃, t(σ̃)): the
/// exponential integrator's linear part is exact (the identity) and only ε̂
/// is approximated. With ε̂_i = (x̃_i − D(x̃_i; σ̃_i))/σ̃_i and
/// k = min(i + 1, order), ε̂ is the polynomial in t through the last k
/// points (t_{i−j}, ε̂_{i−j}):
///
/// ```text
///   x̃_{i+1} = x̃_i + Σ_{j<k} C_ij ε̂_{i−j},   C_ij = ∫_{σ̃_i}^{σ̃_{i+1}} ℓ_j(t(σ̃)) dσ̃,
///   ℓ_j(t) = Π_{m<k, m≠j} (t − t_{i−m}) / (t_{i−j} − t_{i−m})
/// ```
///
/// (the paper's weight ∫ ½ Ψ(t_{i+1}, τ) g(τ)²/sigma(τ) ℓ_j(τ) dτ, with
/// Ψ(t, τ) = alpha(t)/alpha(τ), divided by alpha(t_{i+1}): the measure is
/// g²/(2 alpha sigma) dτ = dσ̃, as d(σ̃²)/dt = g²/alpha²). k = 1 is DDIM (exponential Euler,
/// C = σ̃_{i+1} − σ̃_i). ComfyUI maps its σ grid to the time of a VP SDE
/// fitted to EDM's σ range; here t is the SDE's own time (on VE, where ln σ̃
/// is linear in t, this is diffusers' `DEISMultistepScheduler`, which
/// extrapolates in ln σ̃). C_ij by composite Gauss–Legendre in ln σ̃
/// ([`weighted_lagrange_integrals`], exact to rounding). The warm-up steps
/// use orders 1, 2; the last step (to σ̃(ε) > 0) has the full order, as in
/// the references. The output is x = alpha(ε) x̃_N. Order k. NFE = N.
pub type Deis = Stepper<Multistep<DeisWeights>>;

/// The weights of [`Deis`].
pub struct DeisWeights;

impl Weights for DeisWeights {
    const INFO: Info = Info {
        spec: "deis",
        label: "deis",
        default_schedule: &Schedule::Karras { rho: 7.0 },
        noisy: false,
    };
    const ORDERS: (usize, usize) = (3, 3);

    fn label(order: usize, steps: usize) -> String {
        format!("deis_{order}({steps})")
    }

    fn weights(s: &StepAt) -> Vec<f64> {
        let (i, sig) = (s.i, s.sigmas);
        if s.k == 1 {
            vec![sig[i + 1] - sig[i]]
        } else {
            let nodes: Vec<f64> = (0..s.k).map(|j| s.times[i - j]).collect();
            weighted_lagrange_integrals(s.sde, &nodes, sig[i], sig[i + 1], PANEL_WIDTH)
        }
    }
}
