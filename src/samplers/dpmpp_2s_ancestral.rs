//! DPM-Solver++(2S) ancestral: k-diffusion's `sample_dpmpp_2s_ancestral`,
//! a two-stage (midpoint in lambda) data-prediction step to σ_down followed
//! by fresh noise of std σ_up (Lu et al. 2022, "DPM-Solver++"; ancestral form
//! by K. Crowson).

use ndarray::{Array2, Ix2};

use super::ancestral::{
    build, data_step, data_step_into, zeros, Ancestral, AncestralParams, Family, Keys, Label, Rule,
    Step,
};
use super::{Entry, Nfe, Schedule};

static FAMILY: Family = Family {
    spec: "dpmpp-2s-ancestral",
    label: "dpmpp_2s_ancestral",
    label_style: Label::Eta,
    keys: Keys::ScheduleFirst,
    default_schedule: Schedule::Karras { rho: 7.0 },
    cost: Nfe::TWO,
    eta_max: 1.0,
};

pub(super) const REGISTRY: &[Entry] = &[Entry {
    name: "dpmpp-2s-ancestral",
    aliases: &["dpmpp_2s_ancestral", "dpmpp-2s-a"],
    help: "DPM-Solver++(2S) ancestral (k-diffusion sample_dpmpp_2s_ancestral); NFE 2N; schedule (karras:rho=7), eta (1, in [0, 1]), s_noise (1), noise",
    build: |p, steps| build(p, &FAMILY, DpmPP2SAncestral::new(steps)),
}];

/// DPM-Solver++(2S) ancestral over the N steps of a schedule (default Karras
/// rho = 7, k-diffusion's usual pairing). In the data-scaled variables
/// (x̃ = x/alpha, lambda = −ln σ̃), step i from σ̃ = σ̃_i to σ̃' = σ̃_{i+1}:
///
/// ```text
///   (σ_d, σ_u) = ancestral_split(σ̃, σ̃', eta)     σ_d² + σ_u² = σ̃'²
///   h = ln(σ̃/σ_d),  σ_s = sqrt(σ̃ σ_d)            (lambda_s = lambda_i + h/2)
///   D_i = D(x̃; σ̃)
///   x̃_s = (σ_s/σ̃) x̃ + (1 − e^{−h/2}) D_i
///   D_s = D(x̃_s; σ_s)
///   x̃ ← (σ_d/σ̃) x̃ + (1 − e^{−h}) D_s + s_noise σ_u z,   z = noise of t_i → t_{i+1}
/// ```
///
/// i.e. DPM-Solver-2 (midpoint, data prediction) on the PF-ODE down to σ_d,
/// then the noise that brings the variance back to σ̃'². For eta ≤ 1,
/// σ_d ≥ σ̃'²/σ̃, so the midpoint σ_s ≥ σ̃' ≥ σ̃_min: the model is never asked
/// below the grid (eta must be in [0, 1]). Every step, the last included,
/// is noised, so the output samples the marginal at ε; eta = 0 is the
/// deterministic DPM-Solver++(2S). NFE = 2N. Any SDE (VP, sub-VP, VE).
pub type DpmPP2SAncestral = Ancestral<DpmPP2SAncestralRule>;

impl DpmPP2SAncestral {
    /// eta = 1, s_noise = 1, Karras rho = 7.
    pub fn new(steps: usize) -> Self {
        Ancestral::on(&FAMILY, steps, DpmPP2SAncestralRule)
    }
}

/// The rule of [`DpmPP2SAncestral`].
#[derive(Clone, Copy, Debug)]
pub struct DpmPP2SAncestralRule;

impl Rule for DpmPP2SAncestralRule {
    /// D and x̃_s.
    type State = [Array2<f64>; 2];

    fn family(&self, _: &AncestralParams) -> &'static Family {
        &FAMILY
    }

    fn state(&self, dim: Ix2) -> Self::State {
        zeros(dim)
    }

    fn step(&self, s: &mut Step, [d, x_s]: &mut Self::State, x: &mut Array2<f64>) {
        let sig = s.sigma();
        let (sig_d, sig_u) = s.split(s.sigma_next());
        let h = (sig / sig_d).ln();
        let sig_s = (sig * sig_d).sqrt();
        s.denoise(x, d);
        data_step_into(x_s, x, (sig_s / sig, -(-0.5 * h).exp_m1()), d);
        s.denoise_at(x_s, sig_s, d);
        data_step(x, (sig_d / sig, -(-h).exp_m1()), d);
        s.add_noise(x, s.p.s_noise * sig_u);
    }
}
