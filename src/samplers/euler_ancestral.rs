//! Euler ancestral (k-diffusion's `sample_euler_ancestral`): an Euler step of
//! the probability-flow ODE in σ̃ down to σ̃_down, then fresh noise of std
//! σ̃_up, so each step lands at the next grid level σ̃_{i+1}.

use ndarray::{Array2, Ix2};

use super::ancestral::{build, zeros, Ancestral, AncestralParams, Family, Keys, Label, Rule, Step};
use super::{Entry, Nfe, Schedule};

static FAMILY: Family = Family {
    spec: "euler-ancestral",
    label: "euler_ancestral",
    label_style: Label::EtaSNoise,
    keys: Keys::EtaFirst,
    default_schedule: Schedule::Karras { rho: 7.0 },
    cost: Nfe::ONE,
    eta_max: f64::INFINITY,
};

pub(super) const REGISTRY: &[Entry] = &[Entry {
    name: "euler-ancestral",
    aliases: &["euler_ancestral", "euler-a", "euler_a"],
    help:
        "Euler ancestral (k-diffusion); NFE N; eta (1), s_noise (1), schedule (karras:rho=7), noise",
    build: |p, steps| build(p, &FAMILY, EulerAncestral::new(steps)),
}];

/// Euler ancestral over the N steps of a schedule (default Karras ρ = 7, the
/// schedule k-diffusion's samplers are used with), in the data-scaled
/// variables x̃ = x/alpha, σ̃ = sigma/alpha. Step i, from σ̃_i to σ̃_{i+1}, with
/// D_i = D(x̃_i; σ̃_i) and the split of [`ancestral_split`](super::scaled::ancestral_split)
/// (σ̃_down² + σ̃_up² = σ̃_{i+1}²):
///
/// ```text
///   σ̃_up   = min(σ̃_{i+1}, eta σ̃_{i+1} sqrt(1 − σ̃_{i+1}²/σ̃_i²)),   σ̃_down = sqrt(σ̃_{i+1}² − σ̃_up²)
///   x̃_{i+1} = x̃_i + (σ̃_down − σ̃_i) (x̃_i − D_i)/σ̃_i + s_noise σ̃_up z_i
/// ```
///
/// with z_i the noise of the step t_i → t_{i+1}. At eta = 1 the split is the
/// DDPM posterior's (σ̃_down = σ̃_{i+1}²/σ̃_i), at eta = 0 it is the Euler
/// method on the PF-ODE. The last step goes to σ̃_N = σ̃(ε) > 0 like the
/// others, so it adds its (small) noise too: the output is a draw of p_ε,
/// x = alpha(ε) x̃_N. One step (N = 1) is one Euler ancestral step from σ̃(T).
/// eta > 1 is allowed (σ̃_down = 0 once eta² (1 − r²) ≥ 1: the step jumps to
/// D_i and re-noises). NFE = N.
pub type EulerAncestral = Ancestral<EulerAncestralRule>;

impl EulerAncestral {
    /// eta = 1, s_noise = 1, Karras ρ = 7, per-step noise streams.
    pub fn new(steps: usize) -> Self {
        Ancestral::on(&FAMILY, steps, EulerAncestralRule)
    }
}

/// The rule of [`EulerAncestral`].
#[derive(Clone, Copy, Debug)]
pub struct EulerAncestralRule;

impl Rule for EulerAncestralRule {
    /// D_i and ε̂_i.
    type State = [Array2<f64>; 2];

    fn family(&self, _: &AncestralParams) -> &'static Family {
        &FAMILY
    }

    fn state(&self, dim: Ix2) -> Self::State {
        zeros(dim)
    }

    fn step(&self, s: &mut Step, [den, d]: &mut Self::State, x: &mut Array2<f64>) {
        s.eps(x, den, d);
        let (down, up) = s.split(s.sigma_next());
        x.scaled_add(down - s.sigma(), d);
        s.add_noise(x, s.p.s_noise * up);
    }
}
