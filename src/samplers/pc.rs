//! The predictor–corrector sampler of score_sde (Song et al. 2021): a
//! reverse-SDE predictor step per level with Langevin MCMC corrector steps.

use ndarray::{Array2, Zip};

use super::params::SpecWriter;
use super::steps::{euler_maruyama_update, reverse_diffusion_update, DiscreteStep};
use super::{Ctx, Entry, Nfe, Noise, Params, Sampler, Schedule};
use crate::error::{Error, Result};
use crate::sde::Sde;

fn build(predictor: Predictor, p: &mut Params, steps: usize) -> Result<Box<dyn Sampler>> {
    let d = PredictorCorrector::new(steps, predictor);
    let per_sample = p.usize("per_sample", 0)?;
    Ok(Box::new(PredictorCorrector {
        snr: p.f64("snr", d.snr)?,
        corrector_steps: p.usize("corrector_steps", d.corrector_steps)?,
        step_rule: match per_sample {
            0 => CorrectorStep::NoiseScale,
            1 => CorrectorStep::PerSampleNorms,
            v => return Err(Error::invalid("per_sample", v, "0 or 1")),
        },
        schedule: p.schedule(Schedule::Uniform)?,
        noise: p.noise()?,
        ..d
    }))
}

pub(super) const REGISTRY: &[Entry] = &[
    Entry {
        name: "pc",
        aliases: &[],
        help: "reverse-diffusion predictor + Langevin corrector; NFE N(1+c); snr (0.16), corrector_steps c (1), per_sample (0), schedule (uniform), noise",
        build: |p, n| build(Predictor::ReverseDiffusion, p, n),
    },
    Entry {
        name: "pc-em",
        aliases: &["pc_em"],
        help: "Euler–Maruyama predictor + Langevin corrector; NFE N(1+c); as pc",
        build: |p, n| build(Predictor::EulerMaruyama, p, n),
    },
];

/// The predictor of a [`PredictorCorrector`] sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predictor {
    /// The reverse-diffusion update (as `reverse-diffusion`).
    ReverseDiffusion,
    /// Euler–Maruyama on the reverse SDE (as `em`).
    EulerMaruyama,
}

/// How the Langevin corrector picks its step size eps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorrectorStep {
    /// score_sde's rule with the norms of each sample's own z and s:
    /// eps = 2 alpha_i (snr ||z|| / ||s||)². score_sde averages the norms
    /// over the batch; per sample keeps the output independent of batching.
    /// In high dimension the two agree (the norms concentrate); in low
    /// dimension eps depends on the state x, and Langevin with a
    /// state-dependent step eps(x) leaves p(x)/eps(x) invariant instead of p
    /// (here p ‖s‖², pushed away from the modes). On 2-D N(mu, 0.5² I) with
    /// the exact score, 100 levels give std 1.78 / 1.26 instead of 0.50
    /// (tests/samplers_sde_family.rs). Spec `pc:per_sample=1`.
    PerSampleNorms,
    /// The same rule with the norms replaced by their values for noise-
    /// dominated x_t, E‖z‖² = d and E‖s‖² = d / sigma(t)² (an upper bound on
    /// the Fisher information of p_t): eps = 2 alpha_i snr² sigma(t)². The
    /// step does not depend on x, so the corrector leaves p_t invariant as
    /// eps → 0; where the data scale dominates sigma(t) it is smaller than
    /// score_sde's (a more cautious corrector).
    NoiseScale,
}

/// Predictor–corrector sampler over the N steps of a schedule (default
/// uniform t_k = T − k (T − ε)/N).
/// At each t = t_k, first `corrector_steps` Langevin corrector steps
///
/// ```text
///   eps = 2 alpha_i (snr ‖z‖ / ‖s‖)²      (see CorrectorStep)
///   x ← x + eps s(x, t) + sqrt(2 eps) z,   z ~ N(0, I)
/// ```
///
/// with alpha_i = a² = (alpha(t)/alpha(t_next))² (score_sde's discrete
/// 1 − beta_i for VP and sub-VP; 1 for VE), then one predictor step to
/// t_next (no noise on the last one). The corrector's z comes from each
/// sample's stream; the predictor's is the step's noise (`noise=`).
/// NFE = N (1 + corrector_steps).
#[derive(Clone, Debug)]
pub struct PredictorCorrector {
    pub steps: usize,
    pub predictor: Predictor,
    /// Signal-to-noise ratio of the corrector (score_sde default 0.16).
    pub snr: f64,
    pub corrector_steps: usize,
    pub step_rule: CorrectorStep,
    pub schedule: Schedule,
    pub noise: Noise,
}

impl PredictorCorrector {
    /// score_sde's defaults: snr = 0.16, one corrector step per level.
    pub fn new(steps: usize, predictor: Predictor) -> Self {
        PredictorCorrector {
            steps,
            predictor,
            snr: 0.16,
            corrector_steps: 1,
            step_rule: CorrectorStep::NoiseScale,
            schedule: Schedule::Uniform,
            noise: Noise::Steps,
        }
    }
}

/// Largest accepted snr: for Gaussian p_t = N(m, v I) the corrector's step is
/// eps ≈ 2 snr² v and the update contracts x − m by 1 − eps/v, which
/// overshoots the mode at snr ≥ 1/sqrt(2) and diverges at snr ≥ 1.
const SNR_MAX: f64 = 0.5;

impl Sampler for PredictorCorrector {
    fn name(&self) -> String {
        let name = match self.predictor {
            Predictor::ReverseDiffusion => "pc",
            Predictor::EulerMaruyama => "pc-em",
        };
        SpecWriter::new(name, self.steps)
            .f64("snr", self.snr, 0.16)
            .usize("corrector_steps", self.corrector_steps, 1)
            .usize(
                "per_sample",
                (self.step_rule == CorrectorStep::PerSampleNorms) as usize,
                0,
            )
            .schedule(&self.schedule, &Schedule::Uniform)
            .noise(self.noise)
            .done()
    }

    fn label(&self) -> String {
        let p = match self.predictor {
            Predictor::ReverseDiffusion => "pc",
            Predictor::EulerMaruyama => "pc_em",
        };
        let rule = match self.step_rule {
            CorrectorStep::PerSampleNorms => ",per_sample",
            CorrectorStep::NoiseScale => "",
        };
        format!(
            "{p}({}, snr={}, corrector_steps={}{rule}{})",
            self.steps,
            self.snr,
            self.corrector_steps,
            self.schedule.label_suffix(&Schedule::Uniform)
        )
    }

    fn cost(&self) -> Nfe {
        Nfe::Fixed {
            per_step: 1 + self.corrector_steps,
            offset: 0,
        }
    }

    fn noise(&self) -> Noise {
        self.noise
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if !(self.snr > 0.0 && self.snr <= SNR_MAX) {
            return Err(Error::invalid(
                "snr",
                self.snr,
                format!("0 < snr <= {SNR_MAX} (score_sde uses 0.16)"),
            ));
        }
        self.schedule.grid(sde, self.steps).map(|_| ())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) -> Result<()> {
        let sde = ctx.sde;
        let grid = self.schedule.grid(sde, self.steps)?;
        let (ts, n) = (grid.times(), grid.steps());
        let mut score = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for k in 0..n {
            let (t, t_next) = (ts[k], ts[k + 1]);
            let step = DiscreteStep::new(sde, t, t_next);
            for _ in 0..self.corrector_steps {
                ctx.score(x.view(), t, score.view_mut());
                ctx.normal(&mut z);
                let alpha_i = step.a * step.a;
                langevin_correct(
                    x,
                    &score,
                    &z,
                    alpha_i,
                    self.snr,
                    sde.sigma(t),
                    self.step_rule,
                );
            }
            ctx.score(x.view(), t, score.view_mut());
            let last = k + 1 == n && !ctx.noisy_last_step();
            match self.predictor {
                Predictor::ReverseDiffusion => {
                    reverse_diffusion_update(ctx, x, &score, &mut z, step, last)
                }
                Predictor::EulerMaruyama => {
                    euler_maruyama_update(ctx, x, &score, &mut z, (t, t - t_next), last)
                }
            }
            ctx.record(k + 1, n, t_next, x.view());
        }
        Ok(())
    }
}

/// One Langevin corrector step on every row (sample) of `x`:
/// x ← x + eps s + sqrt(2 eps) z with eps from `rule`. A sample whose score
/// is zero, or so small that the step would leave f32 range, under the
/// per-sample rule is left as is (eps = 0) rather than overflowing.
fn langevin_correct(
    x: &mut Array2<f32>,
    score: &Array2<f32>,
    z: &Array2<f32>,
    alpha_i: f64,
    snr: f64,
    sigma_t: f64,
    rule: CorrectorStep,
) {
    let eps_const = 2.0 * alpha_i * (snr * sigma_t).powi(2);
    for ((mut xr, sr), zr) in x
        .outer_iter_mut()
        .zip(score.outer_iter())
        .zip(z.outer_iter())
    {
        let eps = match rule {
            CorrectorStep::NoiseScale => eps_const,
            CorrectorStep::PerSampleNorms => {
                let s2: f64 = sr.iter().map(|&v| (v as f64) * (v as f64)).sum();
                let z2: f64 = zr.iter().map(|&v| (v as f64) * (v as f64)).sum();
                let eps = 2.0 * alpha_i * snr * snr * z2 / s2;
                // A (near-)zero score would take an unbounded step: skip it
                // unless both the drift eps·‖s‖ and the noise sqrt(2 eps)‖z‖
                // stay far inside f32 range.
                let bound = 1e30;
                if s2 > 0.0 && eps * s2.sqrt() < bound && (2.0 * eps * z2).sqrt() < bound {
                    eps
                } else {
                    0.0
                }
            }
        };
        let (c_s, c_z) = (eps as f32, (2.0 * eps).sqrt() as f32);
        Zip::from(&mut xr)
            .and(&sr)
            .and(&zr)
            .for_each(|xv, &s, &zv| *xv += c_s * s + c_z * zv);
    }
}
