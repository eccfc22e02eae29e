//! Denoising score matching (DSM) training.
//!
//! Each step draws a batch x0 from the data, t ~ U(ε, 1), ε ~ N(0, I), forms
//! x_t = alpha(t) x0 + sigma(t) ε and minimises
//!
//! ```text
//!   L(θ) = mean_{batch, dims} (f_θ(x_t, t) − c ε)²
//! ```
//!
//! which is DSM with weighting λ(t) = sigma(t)², since
//! sigma² ‖s_θ − ∇ log p(x_t|x0)‖² = ‖f_θ − c ε‖² with s_θ = −c f_θ/sigma
//! (c = +1 for ε-prediction, −1 for VE's sigma-scaled output).
//! Adam updates θ; an exponential moving average (EMA) of θ is what samplers use.
//!
//! All randomness of step k comes from `rng::stream(seed, TRAIN, k)` and the
//! data stream of step k, so a run is a function of its seed and step count,
//! and a run resumed from a checkpoint ([`Trainer::resume`]) ends with the
//! same bytes as one that never stopped.
//!
//! A class-conditional network (`n_classes > 0`) is trained on the data's
//! labels ([`TrainData::labels`]) with label dropout: each label is
//! replaced by ∅ with probability `label_dropout` (stream
//! `(seed, LABEL_DROP, k)`), so the one network learns s(x, t | y) and
//! s(x, t | ∅) for classifier-free guidance.

use std::path::PathBuf;

use ndarray::{Array1, Array2};
use rand::RngExt;

use crate::convert::Coeffs;
use crate::error::{Error, Result};
use crate::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use crate::nn::optim::first_non_finite;
use crate::nn::{Adam, Ema, NetCache, NetConfig, ScoreNet};
use crate::rng::{self, StreamRng};
use crate::sde::Sde;

pub mod checkpoint;
pub mod classifier;
pub mod noisy;
mod options;
pub mod recipe;
mod run;
pub mod state;
pub mod target;

pub use options::{
    OnNonFinite, TrainOptions, DEFAULT_CHECKPOINT_EVERY, DEFAULT_LABEL_DROPOUT, PREVIEW_IMAGES,
    PREVIEW_SAMPLER,
};
pub use recipe::{LrDecay, Recipe, EMA_WARMUP};
use run::run;
pub use run::{log_lines, run_trainer, run_with, TrainEvent, ADVICE_LR, ADVICE_SKIP};
pub use state::{TrainConfig, TrainState};
pub use target::{Objective, TARGETS};

use checkpoint::Checkpoint;

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Mean loss over the last min(steps, 200) steps.
    pub final_loss: f64,
    pub seconds: f64,
    pub steps_per_sec: f64,
    /// Mean loss per block of `steps / 100` steps (for a loss curve).
    pub loss_curve: Vec<(u64, f64)>,
    /// Step the run started from (0, or the resumed checkpoint's step).
    pub start_step: u64,
    /// Steps skipped for a non-finite loss or gradient (`OnNonFinite::Skip`).
    pub skipped: u64,
}

/// The state of a run: raw weights, Adam moments, EMA weights, step.
pub struct Trainer {
    pub opts: TrainOptions,
    pub net: ScoreNet,
    pub adam: Adam,
    pub ema: Ema,
    pub step: u64,
    sde: Box<dyn Sde>,
    param: Parameterization,
    objective: Objective,
    /// Per-sample loss weight w_i of the batch.
    weight: Vec<f32>,
    cache: NetCache,
    grads: Vec<f32>,
    x_t: Array2<f32>,
    t: Array1<f32>,
    target: Array2<f32>,
    d_out: Array2<f32>,
    /// Labels of the batch (class-conditional networks; ∅ = n_classes).
    labels: Vec<u32>,
}

impl Trainer {
    /// A fresh run: PyTorch-default initialisation from `opts.seed`.
    pub fn new(opts: TrainOptions) -> Result<Self> {
        opts.validate()?;
        let sde = opts.sde.build()?;
        let net = ScoreNet::new(opts.net.clone(), opts.seed)?;
        let adam = Adam::new(opts.lr, net.num_params());
        let ema = Ema::new(opts.ema_decay, net.params());
        let n_params = net.num_params();
        let (b, d) = (opts.batch, opts.net.data_dim());
        Ok(Trainer {
            param: Parameterization::for_sde(&opts.sde),
            objective: opts.recipe.objective()?,
            weight: vec![1.0; b],
            sde,
            net,
            adam,
            ema,
            step: 0,
            cache: NetCache::default(),
            grads: vec![0.0; n_params],
            x_t: Array2::zeros((b, d)),
            t: Array1::zeros(b),
            target: Array2::zeros((b, d)),
            d_out: Array2::zeros((b, d)),
            labels: Vec::new(),
            opts,
        })
    }

    /// Continue the run saved in `ckpt` with `opts`. The data set, SDE,
    /// network, seed, batch size and EMA decay must equal the saved ones
    /// (the learning rate may change); otherwise the error names what
    /// differs. With the same options the result is bit-identical to a run
    /// that never stopped.
    pub fn resume(opts: TrainOptions, ckpt: Checkpoint) -> Result<Self> {
        let dir = ckpt.dir.display().to_string();
        let cfg = &ckpt.model.config;
        let state = ckpt.state.ok_or_else(|| Error::Checkpoint {
            path: ckpt.dir.clone(),
            msg: "holds no training state (train_state.safetensors); it cannot be resumed".into(),
        })?;
        let differs = |what: &str, ours: String, saved: String| Error::ResumeMismatch {
            what: what.to_string(),
            ours,
            saved,
            dir: dir.clone(),
        };
        if opts.data.name() != cfg.data {
            return Err(differs(
                "data",
                opts.data.name().to_string(),
                cfg.data.clone(),
            ));
        }
        if opts.sde != cfg.sde {
            return Err(differs(
                "sde",
                format!("{:?}", opts.sde),
                format!("{:?}", cfg.sde),
            ));
        }
        match (&opts.net, &cfg.net) {
            (NetConfig::Mlp(o), NetConfig::Mlp(c)) => {
                for (what, a, b) in [
                    ("hidden", o.hidden, c.hidden),
                    ("depth", o.depth, c.depth),
                    ("data_dim", o.data_dim, c.data_dim),
                    ("emb_dim", o.emb_dim, c.emb_dim),
                    ("n_classes", o.n_classes, c.n_classes),
                ] {
                    if a != b {
                        return Err(differs(what, a.to_string(), b.to_string()));
                    }
                }
            }
            (o, c) if o != c => {
                return Err(differs("net", format!("{o:?}"), format!("{c:?}")));
            }
            _ => {}
        }
        let (ours, saved) = (opts.train_config(), &state.train);
        if let Some(old) = &saved.data {
            match &ours.data {
                Some(now) => {
                    if let Some(what) = old.diff(now) {
                        return Err(Error::Mismatch(format!(
                            "the training data changed since the checkpoint {dir} was saved: {what}; \
                             a resumed run must train on the same data (restore the folder, or start \
                             a new run in another folder)"
                        )));
                    }
                }
                None => {
                    return Err(differs(
                        "data",
                        opts.data.name().to_string(),
                        format!("the folder {}", old.path),
                    ))
                }
            }
        }
        for (what, a, b) in [
            ("seed", ours.seed.to_string(), saved.seed.to_string()),
            (
                "recipe",
                format!("{:?}", ours.recipe),
                format!("{:?}", saved.recipe),
            ),
            ("batch", ours.batch.to_string(), saved.batch.to_string()),
            (
                "label-dropout",
                ours.label_dropout.map_or("none".into(), |p| p.to_string()),
                saved.label_dropout.map_or("none".into(), |p| p.to_string()),
            ),
            (
                "ema",
                ours.ema_decay.to_string(),
                saved.ema_decay.to_string(),
            ),
        ] {
            if a != b {
                return Err(differs(what, a, b));
            }
        }
        if cfg.step > opts.steps {
            return Err(Error::invalid(
                "steps",
                opts.steps,
                format!(
                    "at least the checkpoint's step {} (steps is the total)",
                    cfg.step
                ),
            ));
        }
        let mut t = Trainer::new(opts)?;
        t.net.params_mut().copy_from_slice(&state.params);
        t.adam
            .set_state(&state.adam_m, &state.adam_v, state.adam_step)?;
        t.ema.set_shadow(ckpt.model.net.params())?;
        t.step = cfg.step;
        Ok(t)
    }

    /// Save the EMA model and the training state into `dir`
    /// ([`checkpoint::save`]: atomic, keeps the previous set in `dir/prev`).
    pub fn save_checkpoint(&self, dir: &std::path::Path) -> Result<()> {
        let state = TrainState {
            train: self.opts.train_config(),
            params: self.net.params().to_vec(),
            adam_m: self.adam.m.clone(),
            adam_v: self.adam.v.clone(),
            adam_step: self.adam.step,
        };
        checkpoint::save(dir, &self.ema_model()?, Some(&state))
    }

    /// Fill x_t (the network's input c_in x_t), t, the target and the
    /// weights for step `self.step`. The SPEC objective draws t ~ U(ε, T)
    /// and sets target c ε, w = 1.
    fn draw_batch(&mut self) {
        let (b, d) = self.x_t.dim();
        let data_seed = rng::derive(self.opts.seed, rng::domain::TRAIN_DATA, self.step);
        let mut x0 = self.opts.data.sample(b, data_seed);
        let classes = self.opts.net.n_classes();
        if classes > 0 {
            self.labels = self.opts.data.labels(&x0, data_seed).unwrap_or_default();
            let mut r: StreamRng = rng::stream(self.opts.seed, rng::domain::LABEL_DROP, self.step);
            let null = crate::nn::label::null_label(classes);
            for y in &mut self.labels {
                if r.random::<f64>() < self.opts.label_dropout {
                    *y = null;
                }
            }
        }
        let mut r: StreamRng = rng::stream(self.opts.seed, rng::domain::TRAIN, self.step);
        if self.opts.recipe.flip {
            if let Some((_, h, w)) = self.opts.data.image_shape() {
                for mut row in x0.outer_iter_mut() {
                    if r.random::<bool>() {
                        let row = row.as_slice_mut().expect("rows of a batch are contiguous");
                        debug_assert_eq!(row.len() % (h * w), 0);
                        row.chunks_mut(w).for_each(<[f32]>::reverse);
                    }
                }
            }
        }
        let c = self.param.eps_sign();
        let obj = self.objective;
        let mut eps = vec![0.0f32; d];
        for i in 0..b {
            let t = obj.draw_t(self.sde.as_ref(), &mut r);
            let (alpha, sigma) = (self.sde.alpha(t) as f32, self.sde.sigma(t) as f32);
            rng::fill_normal(&mut r, &mut eps);
            self.t[i] = t as f32;
            for j in 0..d {
                self.x_t[[i, j]] = alpha * x0[[i, j]] + sigma * eps[j];
                self.target[[i, j]] = c * eps[j];
            }
            if let Some(out) = obj.output {
                let k = Coeffs::at(self.sde.as_ref(), t);
                let c_in = out.input_scale(&k);
                for j in 0..d {
                    let x = self.x_t[[i, j]] as f64;
                    let y = out.target(&k, x, x0[[i, j]] as f64, eps[j] as f64);
                    self.target[[i, j]] = y as f32;
                    self.x_t[[i, j]] = (x * c_in) as f32;
                }
                self.weight[i] = obj.weight(&k) as f32;
            } else if obj.weighting != target::Weighting::None {
                self.weight[i] = obj.weight(&Coeffs::at(self.sde.as_ref(), t)) as f32;
            }
        }
    }

    /// One Adam step on a fresh batch; returns the batch loss. A non-finite
    /// loss or gradient returns [`Error::NonFinite`] (1-based step) before
    /// anything is updated, so the state is still that of the last step.
    pub fn train_step(&mut self) -> Result<f64> {
        self.draw_batch();
        let loss = self.batch_loss(false);
        if !loss.is_finite() {
            return Err(self.non_finite(format!("loss ({loss})")));
        }
        self.net
            .backward(&mut self.cache, self.d_out.view(), &mut self.grads);
        self.apply_update(loss)
    }

    /// The loss of the drawn batch, mean_i w_i · mean_dims (F − y)², with
    /// its gradient in the output written to `d_out` (and, with
    /// `backward`, in the parameters to `grads`).
    fn batch_loss(&mut self, backward: bool) -> f64 {
        // Dropout masks of step k: (seed, k, image, element), see nn::dropout.
        let key = crate::nn::dropout::DropoutKey::new(self.opts.seed, self.step);
        self.net.set_dropout_key(&mut self.cache, Some(key));
        if self.labels.is_empty() {
            self.net
                .forward_train(self.x_t.view(), self.t.view(), &mut self.cache);
        } else {
            self.net.forward_train_labelled(
                self.x_t.view(),
                self.t.view(),
                &self.labels,
                &mut self.cache,
            );
        }
        let out = self.cache.output();
        let n = out.len() as f64;
        let mut loss = 0.0f64;
        let scale = (2.0 / n) as f32;
        // w = 1 (the SPEC objective) multiplies exactly, so its bits are unchanged.
        let dim = self.target.ncols().max(1);
        for (k, ((d, &o), &y)) in self
            .d_out
            .iter_mut()
            .zip(out.iter())
            .zip(self.target.iter())
            .enumerate()
        {
            let w = self.weight[k / dim];
            let r = o - y;
            loss += (w as f64) * (r as f64) * (r as f64);
            *d = scale * w * r;
        }
        loss /= n;
        if backward {
            self.net
                .backward(&mut self.cache, self.d_out.view(), &mut self.grads);
        }
        loss
    }

    /// Adam and EMA on `self.grads`, after the non-finite checks.
    fn apply_update(&mut self, loss: f64) -> Result<f64> {
        if let Some(i) = first_non_finite(&self.grads) {
            return Err(self.non_finite(format!("gradient ({} at parameter {i})", self.grads[i])));
        }
        let recipe = &self.opts.recipe;
        self.adam.lr = recipe.lr(self.opts.lr, self.step, self.opts.steps);
        self.ema.decay = recipe.ema_decay(self.opts.ema_decay, self.step);
        let finite = self
            .adam
            .update_with_ema(self.net.params_mut(), &self.grads, &mut self.ema);
        // Finite gradients with a huge learning rate can still overflow the
        // weights; such a state must never reach a checkpoint.
        if !finite {
            return Err(Error::NonFinite {
                step: self.step + 1,
                what: "weights after the Adam update".into(),
                hint: "this cannot be skipped".into(),
            });
        }
        self.step += 1;
        Ok(loss)
    }

    fn non_finite(&self, what: String) -> Error {
        Error::NonFinite {
            step: self.step + 1,
            what,
            hint: String::new(),
        }
    }

    /// Write `dir/samples/step_NNNNNNN.png`: [`PREVIEW_IMAGES`] samples of
    /// the EMA model drawn with [`PREVIEW_SAMPLER`] and seed 0 (the same
    /// noise at every step, so successive grids show the model converging).
    pub fn write_preview(&self, dir: &std::path::Path) -> Result<PathBuf> {
        let Some((c, h, w)) = self.opts.data.image_shape() else {
            return Err(Error::invalid(
                "data set",
                self.opts.data.name(),
                "image data",
            ));
        };
        let model = self.ema_model()?;
        let sampler = crate::samplers::by_name(PREVIEW_SAMPLER.0, PREVIEW_SAMPLER.1)?;
        let opts = crate::samplers::SampleOptions::new(PREVIEW_IMAGES, 0);
        let out = crate::samplers::sample(sampler.as_ref(), model.sde(), &model, &opts)?;
        let samples_dir = dir.join("samples");
        std::fs::create_dir_all(&samples_dir).map_err(|e| Error::io(&samples_dir, e))?;
        let path = samples_dir.join(format!("step_{:07}.png", self.step));
        let mut grid = crate::viz::grid::GridOptions::new(c, h, w);
        grid.scale = (64 / h.max(w)).clamp(1, 8);
        crate::viz::grid::image_grid_png(&path, out.samples.view(), &grid)?;
        Ok(path)
    }

    /// The model with EMA weights, as samplers should use it.
    pub fn ema_model(&self) -> Result<ScoreModel> {
        let mut net = self.net.clone();
        net.params_mut().copy_from_slice(&self.ema.shadow);
        let config = ModelConfig {
            format_version: FORMAT_VERSION,
            sde: self.opts.sde,
            parameterization: self.param,
            net: self.opts.net.clone(),
            data: self.opts.data.name().to_string(),
            step: self.step,
            output: self.objective.output,
        };
        ScoreModel::new(config, net)
    }
}

/// Train as `opts` says; returns the EMA model and a summary.
pub fn train(opts: &TrainOptions) -> Result<(ScoreModel, TrainSummary)> {
    run(Trainer::new(opts.clone())?)
}

/// Continue the run saved in `ckpt` up to `opts.steps` in total (see
/// [`Trainer::resume`]).
pub fn resume(opts: &TrainOptions, ckpt: Checkpoint) -> Result<(ScoreModel, TrainSummary)> {
    run(Trainer::resume(opts.clone(), ckpt)?)
}

#[cfg(test)]
mod tests;
