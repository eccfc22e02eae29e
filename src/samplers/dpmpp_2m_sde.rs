//! DPM-Solver++(2M) SDE: the second-order multistep reverse-SDE solver in
//! data prediction (Lu et al. 2022, "DPM-Solver++", SDE-DPM-Solver++(2M);
//! k-diffusion `sample_dpmpp_2m_sde`), with the midpoint or Heun correction.

use ndarray::{Array2, Ix2, Zip};

use super::ancestral::{
    build, data_step, Ancestral, AncestralParams, Denoised, Family, Keys, Label, Rule, Step,
};
use super::phi::phi;
use super::{Entry, Nfe, Schedule};

static MIDPOINT: Family = Family {
    spec: "dpmpp-2m-sde",
    label: "dpmpp_2m_sde",
    label_style: Label::Eta,
    keys: Keys::ScheduleFirst,
    default_schedule: Schedule::Karras { rho: 7.0 },
    cost: Nfe::ONE,
    eta_max: f64::INFINITY,
};

static HEUN: Family = Family {
    spec: "dpmpp-2m-sde-heun",
    label: "dpmpp_2m_sde_heun",
    label_style: Label::Eta,
    keys: Keys::ScheduleFirst,
    default_schedule: Schedule::Karras { rho: 7.0 },
    cost: Nfe::ONE,
    eta_max: f64::INFINITY,
};

pub(super) const REGISTRY: &[Entry] = &[
    Entry {
        name: "dpmpp-2m-sde",
        aliases: &["dpmpp_2m_sde"],
        help: "DPM-Solver++(2M) SDE, midpoint correction (k-diffusion sample_dpmpp_2m_sde); NFE N; schedule (karras:rho=7), eta (1), s_noise (1), noise",
        build: |p, steps| build(p, &MIDPOINT, DpmPP2MSde::new(steps, TwoMSolver::Midpoint)),
    },
    Entry {
        name: "dpmpp-2m-sde-heun",
        aliases: &["dpmpp_2m_sde_heun"],
        help: "DPM-Solver++(2M) SDE, Heun correction (solver_type=heun); NFE N; schedule (karras:rho=7), eta (1), s_noise (1), noise",
        build: |p, steps| build(p, &HEUN, DpmPP2MSde::new(steps, TwoMSolver::Heun)),
    },
];

/// The second-order correction of [`DpmPP2MSde`] (k-diffusion's
/// `solver_type`), its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwoMSolver {
    /// ½ (1 − e^{−ĥ}) (D_i − D_{i−1})/r.
    Midpoint,
    /// ĥ φ_2(−ĥ) (D_i − D_{i−1})/r, the Taylor-consistent weight.
    Heun,
}

/// DPM-Solver++(2M) SDE over the N steps of a schedule (default Karras
/// rho = 7, what k-diffusion/ComfyUI users pair "DPM++ 2M SDE" with). In the
/// data-scaled variables (x̃ = x/alpha, lambda = −ln σ̃, D_i = D(x̃_i; σ̃_i)),
/// h = lambda_{i+1} − lambda_i, ĥ = (1 + eta) h, r = h_{i−1}/h:
///
/// ```text
///   x̃ ← (σ̃_{i+1}/σ̃_i) e^{−eta h} x̃ + (1 − e^{−ĥ}) D_i + c (D_i − D_{i−1})/r
///        + s_noise σ̃_{i+1} sqrt(1 − e^{−2 eta h}) z,   z = noise of t_i → t_{i+1}
///   c = ½ (1 − e^{−ĥ})  (midpoint)   or   c = ĥ φ_2(−ĥ) = 1 − (1 − e^{−ĥ})/ĥ  (heun)
/// ```
///
/// The deterministic part is the exact solution of
/// dx̃ = (1 + eta)(D − x̃) dlambda with D linear in lambda (heun) or its
/// midpoint approximation, and the noise is the exact variance
/// σ̃_{i+1}² (1 − e^{−2 eta h}) of that Ornstein–Uhlenbeck-type step, so
/// eta = 1 solves the reverse SDE and eta = 0 is DPM-Solver++(2M) on the
/// PF-ODE (midpoint = `dpm-solver++` without its first-order last step).
/// The first step is first order (no history); every later step, the last
/// included (it goes to σ̃_min, not to 0), is second order and noised, so
/// the output samples the marginal at ε. NFE = N. Any SDE (VP, sub-VP, VE).
pub type DpmPP2MSde = Ancestral<TwoMSolver>;

impl DpmPP2MSde {
    /// eta = 1, s_noise = 1, Karras rho = 7.
    pub fn new(steps: usize, solver: TwoMSolver) -> Self {
        Ancestral::on(&MIDPOINT, steps, solver)
    }
}

impl Rule for TwoMSolver {
    /// D_i, D_{i−1} and h_{i−1}.
    type State = Denoised;

    fn family(&self, _: &AncestralParams) -> &'static Family {
        match self {
            TwoMSolver::Midpoint => &MIDPOINT,
            TwoMSolver::Heun => &HEUN,
        }
    }

    fn state(&self, dim: Ix2) -> Denoised {
        Denoised::new(1, dim)
    }

    fn step(&self, s: &mut Step, hist: &mut Denoised, x: &mut Array2<f64>) {
        let h = s.h();
        let hh = (1.0 + s.p.eta) * h;
        let c_x = (-hh).exp();
        let c0 = hh * phi(1, -hh);
        let h_1 = hist.h(1);
        let (d0, prev) = hist.split();
        s.denoise(x, d0);
        if s.i == 0 {
            data_step(x, (c_x, c0), d0);
        } else {
            let c = match self {
                TwoMSolver::Midpoint => 0.5 * c0,
                TwoMSolver::Heun => hh * phi(2, -hh),
            } * h
                / h_1;
            Zip::from(&mut *x)
                .and(&*d0)
                .and(&prev[0])
                .for_each(|xv, &d, &p| *xv = c_x * *xv + c0 * d + c * (d - p));
        }
        s.add_noise(x, s.sde_noise_std(h));
        hist.push(h);
    }
}
