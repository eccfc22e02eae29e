//! DPM-Solver++(2S) ancestral: k-diffusion's `sample_dpmpp_2s_ancestral`,
//! a two-stage (midpoint in lambda) data-prediction step to σ_down followed
//! by fresh noise of std σ_up (Lu et al. 2022, "DPM-Solver++"; ancestral form
//! by K. Crowson).

use ndarray::{Array2, Zip};

use super::ancestral::{Ancestral, AncestralParams, Family, Keys, Label};
use super::scaled::{add_noise, ancestral_split, run_scaled, time_of_sigma};
use super::{Ctx, Entry, Nfe, Params, Schedule};
use crate::error::Result;

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
    build: |p: &mut Params, steps| {
        let params = AncestralParams::parse(p, &FAMILY, DpmPP2SAncestral::new(steps).params)?;
        Ok(Box::new(DpmPP2SAncestral { params }))
    },
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
#[derive(Clone, Debug)]
pub struct DpmPP2SAncestral {
    pub params: AncestralParams,
}

impl DpmPP2SAncestral {
    /// eta = 1, s_noise = 1, Karras rho = 7.
    pub fn new(steps: usize) -> Self {
        DpmPP2SAncestral {
            params: AncestralParams::new(steps, FAMILY.default_schedule.clone()),
        }
    }
}

impl Ancestral for DpmPP2SAncestral {
    fn family(&self) -> &'static Family {
        &FAMILY
    }

    fn params(&self) -> &AncestralParams {
        &self.params
    }

    fn solve(&self, ctx: &mut Ctx, x32: &mut Array2<f32>) -> Result<()> {
        let p = &self.params;
        let sde = ctx.sde;
        let lv = p.levels(sde)?;
        let mut d = Array2::<f64>::zeros(x32.raw_dim());
        let mut x_s = d.clone();
        let mut z = Array2::<f32>::zeros(x32.raw_dim());
        run_scaled(ctx, x32, &lv, |ctx, i, x| {
            let sig = lv.sigma[i];
            let (sig_d, sig_u) = ancestral_split(sig, lv.sigma[i + 1], p.eta);
            let h = (sig / sig_d).ln();
            let sig_s = (sig * sig_d).sqrt();
            ctx.denoise_scaled(x, lv.t[i], &mut d);
            let (cx, cd) = (sig_s / sig, -(-0.5 * h).exp_m1());
            Zip::from(&mut x_s)
                .and(&*x)
                .and(&d)
                .for_each(|o, &xv, &dv| *o = cx * xv + cd * dv);
            ctx.denoise_scaled(&x_s, time_of_sigma(sde, sig_s), &mut d);
            let (cx, cd) = (sig_d / sig, -(-h).exp_m1());
            Zip::from(&mut *x)
                .and(&d)
                .for_each(|xv, &dv| *xv = cx * *xv + cd * dv);
            add_noise(ctx, x, &mut z, (lv.t[i], lv.t[i + 1]), p.s_noise * sig_u);
        })
    }
}
