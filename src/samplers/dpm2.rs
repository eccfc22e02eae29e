//! DPM2 and DPM2 ancestral (k-diffusion's `sample_dpm_2` and
//! `sample_dpm_2_ancestral`): the explicit midpoint method of the
//! probability-flow ODE in σ̃ with the midpoint taken in ln σ̃ (DPM-Solver-2's
//! r = 1/2), optionally followed by the ancestral re-noising.

use ndarray::{Array2, Ix2};

use super::ancestral::{build, zeros, Ancestral, AncestralParams, Family, Keys, Label, Rule, Step};
use super::{Entry, Nfe, Schedule};

static DPM2: Family = Family {
    spec: "dpm2",
    label: "dpm2",
    label_style: Label::Steps,
    keys: Keys::Schedule,
    default_schedule: Schedule::Karras { rho: 7.0 },
    cost: Nfe::TWO,
    eta_max: 1.0,
};

static DPM2_ANCESTRAL: Family = Family {
    spec: "dpm2-ancestral",
    label: "dpm2_ancestral",
    label_style: Label::EtaSNoise,
    keys: Keys::EtaFirst,
    default_schedule: Schedule::Karras { rho: 7.0 },
    cost: Nfe::TWO,
    eta_max: 1.0,
};

pub(super) const REGISTRY: &[Entry] = &[
    Entry {
        name: "dpm2",
        aliases: &["dpm_2", "dpm-2"],
        help: "DPM2 (k-diffusion): midpoint in log sigma; NFE 2N; schedule (karras:rho=7)",
        build: |p, steps| build(p, &DPM2, Dpm2::new(steps)),
    },
    Entry {
        name: "dpm2-ancestral",
        aliases: &["dpm_2_ancestral", "dpm2-a", "dpm2a"],
        help: "DPM2 ancestral (k-diffusion); NFE 2N; eta (1, at most 1), s_noise (1), schedule (karras:rho=7), noise",
        build: |p, steps| build(p, &DPM2_ANCESTRAL, Dpm2::new_ancestral(steps)),
    },
];

/// DPM2 over the N steps of a schedule (default Karras ρ = 7, as k-diffusion's
/// samplers are used), in x̃ = x/alpha, σ̃ = sigma/alpha, dx̃/dσ̃ = ε̂ =
/// (x̃ − D(x̃; σ̃))/σ̃. Step i goes from σ̃_i to a target σ̃' (σ̃' = σ̃_{i+1}
/// for DPM2; σ̃' = σ̃_down of the ancestral split for DPM2 ancestral):
///
/// ```text
///   σ̃_mid = sqrt(σ̃_i σ̃')                         (midpoint in ln σ̃)
///   x̃_mid = x̃_i + (σ̃_mid − σ̃_i) ε̂(x̃_i; σ̃_i)
///   x̃'    = x̃_i + (σ̃' − σ̃_i) ε̂(x̃_mid; σ̃_mid)
/// ```
///
/// and for DPM2 ancestral, with σ̃_down² + σ̃_up² = σ̃_{i+1}² (k-diffusion's
/// `get_ancestral_step`, eta):
///
/// ```text
///   x̃_{i+1} = x̃' + s_noise σ̃_up z_i,   z_i the noise of the step t_i → t_{i+1}
/// ```
///
/// The denoiser at σ̃_mid is evaluated at the SDE time t_of_lambda(−ln σ̃_mid).
/// k-diffusion falls back to one Euler step when σ̃' = 0 (the step to σ = 0);
/// our grid ends at σ̃(ε) > 0, so every step, the last included, is a
/// midpoint step and NFE = 2N. eta ≤ 1 keeps σ̃_down > 0 (eta > 1 could make
/// it 0, where ln σ̃_mid does not exist), so eta is limited to [0, 1]. The
/// ancestral last step re-noises to σ̃(ε) like every other step; the output is
/// x = alpha(ε) x̃_N. DPM2 is second order.
pub type Dpm2 = Ancestral<Dpm2Rule>;

impl Dpm2 {
    /// Deterministic DPM2 with Karras ρ = 7.
    pub fn new(steps: usize) -> Self {
        Ancestral::on(&DPM2, steps, Dpm2Rule { ancestral: false })
    }

    /// DPM2 ancestral with eta = 1, s_noise = 1, Karras ρ = 7.
    pub fn new_ancestral(steps: usize) -> Self {
        Ancestral::on(&DPM2_ANCESTRAL, steps, Dpm2Rule { ancestral: true })
    }
}

/// The rule of [`Dpm2`].
#[derive(Clone, Copy, Debug)]
pub struct Dpm2Rule {
    /// DPM2 ancestral (eta, s_noise, noise are used) rather than DPM2.
    pub ancestral: bool,
}

impl Rule for Dpm2Rule {
    /// x̃_mid, D and ε̂.
    type State = [Array2<f64>; 3];

    fn family(&self, _: &AncestralParams) -> &'static Family {
        if self.ancestral {
            &DPM2_ANCESTRAL
        } else {
            &DPM2
        }
    }

    fn state(&self, dim: Ix2) -> Self::State {
        zeros(dim)
    }

    fn step(&self, s: &mut Step, [x_mid, den, d]: &mut Self::State, x: &mut Array2<f64>) {
        let sig = s.sigma();
        let (target, up) = if self.ancestral {
            s.split(s.sigma_next())
        } else {
            (s.sigma_next(), 0.0)
        };
        let sigma_mid = (sig * target).sqrt();
        s.eps(x, den, d);
        x_mid.assign(x);
        x_mid.scaled_add(sigma_mid - sig, d);
        s.eps_at(x_mid, sigma_mid, den, d);
        x.scaled_add(target - sig, d);
        s.add_noise(x, s.p.s_noise * up);
    }
}
