//! Langevin MCMC samplers: the predictor–corrector sampler of score_sde
//! (Song et al. 2021) and annealed Langevin dynamics of NCSN (Song & Ermon
//! 2019).

use ndarray::{Array2, Zip};

use super::euler_maruyama::euler_maruyama_update;
use super::reverse_diffusion::{reverse_diffusion_update, uniform_time, DiscreteStep};
use super::{Ctx, Sampler};
use crate::error::{Error, Result};
use crate::sde::{check_steps, Sde, SdeConfig};

/// The predictor of a [`PredictorCorrector`] sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predictor {
    /// [`super::ReverseDiffusion`]'s update.
    ReverseDiffusion,
    /// Euler–Maruyama on the reverse SDE (as [`super::EulerMaruyama`]).
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

/// Predictor–corrector sampler over N uniform steps t_k = T − k (T − ε)/N.
/// At each t = t_k, first `corrector_steps` Langevin corrector steps
///
/// ```text
///   eps = 2 alpha_i (snr ‖z‖ / ‖s‖)²      (see CorrectorStep)
///   x ← x + eps s(x, t) + sqrt(2 eps) z,   z ~ N(0, I)
/// ```
///
/// with alpha_i = a² = (alpha(t)/alpha(t_next))² (score_sde's discrete
/// 1 − beta_i for VP and sub-VP; 1 for VE), then one predictor step to
/// t_next (no noise on the last one). NFE = N (1 + corrector_steps).
#[derive(Clone, Debug)]
pub struct PredictorCorrector {
    pub steps: usize,
    pub predictor: Predictor,
    /// Signal-to-noise ratio of the corrector (score_sde default 0.16).
    pub snr: f64,
    pub corrector_steps: usize,
    pub step_rule: CorrectorStep,
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
        }
    }
}

/// Largest accepted snr: for Gaussian p_t = N(m, v I) the corrector's step is
/// eps ≈ 2 snr² v and the update contracts x − m by 1 − eps/v, which
/// overshoots the mode at snr ≥ 1/sqrt(2) and diverges at snr ≥ 1.
const SNR_MAX: f64 = 0.5;

impl Sampler for PredictorCorrector {
    fn name(&self) -> String {
        let p = match self.predictor {
            Predictor::ReverseDiffusion => "pc",
            Predictor::EulerMaruyama => "pc_em",
        };
        let rule = match self.step_rule {
            CorrectorStep::PerSampleNorms => ",per_sample",
            CorrectorStep::NoiseScale => "",
        };
        format!(
            "{p}({}, snr={}, corrector_steps={}{rule})",
            self.steps, self.snr, self.corrector_steps
        )
    }

    fn validate(&self, _sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)?;
        if !(self.snr > 0.0 && self.snr <= SNR_MAX) {
            return Err(Error::invalid(
                "snr",
                self.snr,
                format!("0 < snr <= {SNR_MAX} (score_sde uses 0.16)"),
            ));
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) {
        let sde = ctx.sde;
        let n = self.steps;
        let mut score = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for k in 0..n {
            let (t, t_next) = (uniform_time(sde, n, k), uniform_time(sde, n, k + 1));
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
            let last = k + 1 == n;
            match self.predictor {
                Predictor::ReverseDiffusion => {
                    reverse_diffusion_update(ctx, x, &score, &mut z, step, last)
                }
                Predictor::EulerMaruyama => {
                    euler_maruyama_update(ctx, x, &score, &mut z, t, t - t_next, last)
                }
            }
            ctx.record(k + 1, n, t_next, x.view());
        }
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

/// Annealed Langevin dynamics (NCSN, Song & Ermon 2019), for the VE SDE.
/// Noise levels sigma_i = sigma(t_i) on the uniform grid
/// t_i = T − (i − 1)(T − ε)/(L − 1), i = 1..L (L = steps; for VE a geometric
/// ladder from sigma_1 = sigma(T) to sigma_L = sigma(ε); L = 1 is the single
/// level sigma(ε)). At each level, `inner` steps of
///
/// ```text
///   alpha_i = lr · sigma_i² / sigma_L²
///   x ← x + (alpha_i / 2) s(x, t_i) + sqrt(alpha_i) z,   z ~ N(0, I)
/// ```
///
/// then, if `denoise`, one step x ← x + sigma_L² s(x, ε) (Tweedie's
/// E[x0 | x], one more NFE). NFE = L · inner + denoise.
///
/// Since −∇² log p_t ≤ I / sigma_t² for any data, alpha_i/2 times the
/// curvature is at most h = lr / (2 sigma_L²): the update never amplifies
/// x − mode when lr < 4 sigma_L² (h < 2), which `validate` requires.
///
/// Default lr = sigma_L² (h = ½; 1e-4 for our default VE), not NCSN's 2e-5
/// (h = 0.1 at sigma_L = 0.01): the step shrinks as sigma_i², so levels with
/// sigma_i below the data scale barely move x, and the variance carried in
/// from the last well-mixed level stays. On N(mu, 0.5² I) with 1000 levels the
/// exact variance recursion Var ← (1 − h_i)² Var + alpha_i gives an output std
/// of 0.524 with lr = 2e-5 and 0.505 with lr = sigma_L² (1.1 % high).
#[derive(Clone, Debug)]
pub struct AnnealedLangevin {
    pub steps: usize,
    pub inner: usize,
    /// Step scale; None: sigma(ε)².
    pub lr: Option<f64>,
    pub denoise: bool,
}

impl AnnealedLangevin {
    /// Defaults: lr = sigma(ε)², one step per level, final denoising on.
    pub fn new(steps: usize) -> Self {
        AnnealedLangevin {
            steps,
            inner: 1,
            lr: None,
            denoise: true,
        }
    }

    fn lr(&self, sde: &dyn Sde) -> f64 {
        self.lr.unwrap_or_else(|| sde.sigma(sde.t_eps()).powi(2))
    }

    fn level_time(&self, sde: &dyn Sde, i: usize) -> f64 {
        let l = self.steps;
        if l == 1 {
            return sde.t_eps();
        }
        let (t_max, t_eps) = (sde.t_max(), sde.t_eps());
        if i + 1 == l {
            t_eps
        } else {
            t_max - i as f64 * (t_max - t_eps) / (l - 1) as f64
        }
    }
}

impl Sampler for AnnealedLangevin {
    fn name(&self) -> String {
        let lr = self.lr.map_or("sigma_min^2".to_string(), |v| v.to_string());
        format!(
            "ald({}, inner={}, lr={lr}, denoise={})",
            self.steps, self.inner, self.denoise as u8
        )
    }

    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        check_steps(self.steps)?;
        let cfg = sde.config();
        if !matches!(cfg, SdeConfig::Ve { .. }) {
            return Err(Error::invalid(
                "sde",
                cfg.name(),
                "ve (annealed Langevin dynamics walks the VE noise ladder; use pc for vp/subvp)",
            ));
        }
        if self.inner == 0 {
            return Err(Error::invalid("inner", self.inner, "an integer >= 1"));
        }
        let lr_max = 4.0 * sde.sigma(sde.t_eps()).powi(2);
        let lr = self.lr(sde);
        if !(lr > 0.0 && lr < lr_max) {
            return Err(Error::invalid(
                "lr",
                lr,
                format!("0 < lr < 4 sigma(eps)^2 = {lr_max:e}"),
            ));
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx, x: &mut Array2<f32>) {
        let sde = ctx.sde;
        let l = self.steps;
        let n_records = l + self.denoise as usize;
        let sigma_l2 = sde.sigma(sde.t_eps()).powi(2);
        let mut score = Array2::<f32>::zeros(x.raw_dim());
        let mut z = Array2::<f32>::zeros(x.raw_dim());
        for i in 0..l {
            let t = self.level_time(sde, i);
            let alpha = self.lr(sde) * sde.sigma(t).powi(2) / sigma_l2;
            let (c_s, c_z) = ((0.5 * alpha) as f32, alpha.sqrt() as f32);
            for _ in 0..self.inner {
                ctx.score(x.view(), t, score.view_mut());
                ctx.normal(&mut z);
                Zip::from(&mut *x)
                    .and(&score)
                    .and(&z)
                    .for_each(|xv, &s, &zv| *xv += c_s * s + c_z * zv);
            }
            ctx.record(i + 1, n_records, t, x.view());
        }
        if self.denoise {
            let t = sde.t_eps();
            ctx.score(x.view(), t, score.view_mut());
            let c_s = sigma_l2 as f32;
            Zip::from(&mut *x)
                .and(&score)
                .for_each(|xv, &s| *xv += c_s * s);
            ctx.record(n_records, n_records, t, x.view());
        }
    }
}
