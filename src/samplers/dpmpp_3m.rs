//! DPM-Solver++(3M): third-order multistep solver in data prediction (Lu et
//! al. 2022, "DPM-Solver++", §4 and App. B), deterministic (`dpmpp-3m`) or
//! as the reverse-SDE solver of k-diffusion's `sample_dpmpp_3m_sde`
//! (`dpmpp-3m-sde`, eta > 0).

use ndarray::{Array2, Ix2, Zip};

use super::ancestral::{
    build, data_step, Ancestral, AncestralParams, Denoised, Family, Keys, Label, Rule, Step,
};
use super::phi::phi;
use super::{Entry, Nfe, Noise, Schedule};

static ODE: Family = Family {
    spec: "dpmpp-3m",
    label: "dpmpp_3m",
    label_style: Label::Steps,
    keys: Keys::Schedule,
    default_schedule: Schedule::LogSnr,
    cost: Nfe::ONE,
    eta_max: f64::INFINITY,
};

static SDE: Family = Family {
    spec: "dpmpp-3m-sde",
    label: "dpmpp_3m_sde",
    label_style: Label::Eta,
    keys: Keys::ScheduleFirst,
    default_schedule: Schedule::LogSnr,
    cost: Nfe::ONE,
    eta_max: f64::INFINITY,
};

pub(super) const REGISTRY: &[Entry] = &[
    Entry {
        name: "dpmpp-3m",
        aliases: &["dpmpp_3m", "dpm-solver++-3m"],
        help: "DPM-Solver++(3M) on the PF-ODE, orders 1, 2 to start, lower order final below 15 steps; NFE N; schedule (logsnr)",
        build: |p, steps| build(p, &ODE, DpmPP3M::ode(steps)),
    },
    Entry {
        name: "dpmpp-3m-sde",
        aliases: &["dpmpp_3m_sde"],
        help: "DPM-Solver++(3M) SDE (k-diffusion sample_dpmpp_3m_sde); NFE N; schedule (logsnr), eta (1), s_noise (1), noise",
        build: |p, steps| build(p, &SDE, DpmPP3M::sde(steps)),
    },
];

/// DPM-Solver++(3M) over the N steps of a schedule (default uniform in
/// lambda: the DPM-Solver family's choice, and k-diffusion's author pairs the
/// 3M SDE with this "exponential" spacing). In the data-scaled variables
/// (x̃ = x/alpha, lambda = −ln σ̃, D_i = D(x̃_i; σ̃_i) at grid time t_i), with
/// h = lambda_{i+1} − lambda_i, ĥ = (1 + eta) h and the previous steps
/// h_1, h_2, r0 = h_1/h, r1 = h_2/h:
///
/// ```text
///   d1_0 = (D_i − D_{i−1})/r0,   d1_1 = (D_{i−1} − D_{i−2})/r1
///   d1 = d1_0 + (d1_0 − d1_1) r0/(r0 + r1)     (≈ h D'(lambda_i))
///   d2 = (d1_0 − d1_1)/(r0 + r1)                (≈ h² D''(lambda_i)/2)
///   x̃ ← e^{−ĥ} x̃ + ĥ φ_1(−ĥ) D_i + ĥ φ_2(−ĥ) d1 + 2 ĥ φ_3(−ĥ) d2
///        + s_noise σ̃_{i+1} sqrt(1 − e^{−2 eta h}) z,   z = noise of t_i → t_{i+1}
/// ```
///
/// (φ_k as in `phi::phi`; e^{−ĥ} = (σ̃_{i+1}/σ̃_i) e^{−eta h}). This is
/// the exact solution of dx̃ = (1 + eta)(D − x̃) dlambda + noise with D
/// replaced by its quadratic Taylor model in lambda. The second-order step
/// drops the d2 term with d1 = (D_i − D_{i−1})/r0, the first-order step both.
/// Note: k-diffusion's `sample_dpmpp_3m_sde` and DPM-Solver's multistep
/// third-order update weight d2 by ĥ φ_3(−ĥ) (their `phi_3`), half the
/// Taylor coefficient, which leaves an O(h³ D'') local error: second order
/// globally, with a small constant (measured on VP, 64..128 steps: slope
/// 2.05 on Gaussian data and ~2.2 on a 2-D mixture, error 7.9e-5 and
/// 1.9e-4 at 128 steps, against 1.1e-6 and 7.7e-5 with the Taylor weight,
/// slopes 4.0 and 3.0; at 12–16 steps the halved weight is slightly
/// better). We use the Taylor weight: this is the unique exponential
/// Adams–Bashforth formula exact for D quadratic in lambda, the same one
/// UniPC's order-3 predictor gives.
///
/// Order of step i (0-based): min(3, i + 1) (warm-up: no history yet), and
/// for N < 15 also min(·, N − i) (lower order final, diffusers'
/// `DPMSolverMultistepScheduler` rule for few steps; DPM-Solver's own code
/// uses N < 10; from 15 steps on every step after the warm-up is third
/// order). The last step goes to σ̃_min like the others. eta = 0
/// (`dpmpp-3m`) is the PF-ODE solver and draws no noise; eta = 1 is the
/// reverse SDE (k-diffusion's default). NFE = N. Any SDE with alpha,
/// sigma > 0 (VP, sub-VP, VE).
pub type DpmPP3M = Ancestral<DpmPP3MRule>;

impl DpmPP3M {
    /// The deterministic solver, N steps uniform in log-SNR.
    pub fn ode(steps: usize) -> Self {
        let mut ode = Ancestral::on(&ODE, steps, DpmPP3MRule);
        ode.params.eta = 0.0;
        ode
    }

    /// The SDE solver with eta = 1.
    pub fn sde(steps: usize) -> Self {
        Ancestral::on(&SDE, steps, DpmPP3MRule)
    }
}

/// The rule of [`DpmPP3M`].
#[derive(Clone, Copy, Debug)]
pub struct DpmPP3MRule;

impl Rule for DpmPP3MRule {
    /// D_i, D_{i−1}, D_{i−2}, h_{i−1} and h_{i−2}.
    type State = Denoised;

    /// The ODE spec at eta = 0 with the default noise, else the SDE spec.
    fn family(&self, p: &AncestralParams) -> &'static Family {
        if p.eta == 0.0 && p.s_noise == 1.0 && p.noise == Noise::Steps {
            &ODE
        } else {
            &SDE
        }
    }

    fn state(&self, dim: Ix2) -> Denoised {
        Denoised::new(2, dim)
    }

    fn step(&self, s: &mut Step, hist: &mut Denoised, x: &mut Array2<f64>) {
        let (i, n) = (s.i, s.steps());
        let h = s.h();
        let hh = (1.0 + s.p.eta) * h;
        let mut order = (i + 1).min(3);
        if n < 15 {
            order = order.min(n - i);
        }
        let c_x = (-hh).exp();
        let c0 = hh * phi(1, -hh);
        let c1 = hh * phi(2, -hh);
        let c2 = 2.0 * hh * phi(3, -hh);
        let (r0, r1) = (hist.h(1) / h, hist.h(2) / h);
        let (d0, prev) = hist.split();
        s.denoise(x, d0);
        match order {
            1 => data_step(x, (c_x, c0), d0),
            2 => Zip::from(&mut *x)
                .and(&*d0)
                .and(&prev[0])
                .for_each(|xv, &d, &p| {
                    *xv = c_x * *xv + c0 * d + c1 * (d - p) / r0;
                }),
            _ => {
                let w = r0 / (r0 + r1);
                Zip::from(&mut *x)
                    .and(&*d0)
                    .and(&prev[0])
                    .and(&prev[1])
                    .for_each(|xv, &d, &p, &pp| {
                        let d1_0 = (d - p) / r0;
                        let d1_1 = (p - pp) / r1;
                        let d1 = d1_0 + (d1_0 - d1_1) * w;
                        let d2 = (d1_0 - d1_1) / (r0 + r1);
                        *xv = c_x * *xv + c0 * d + c1 * d1 + c2 * d2;
                    })
            }
        }
        s.add_noise(x, s.sde_noise_std(h));
        // Shift the history: D_{i−2} ← D_{i−1} ← D_i.
        hist.push(h);
    }
}
