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
//! data stream of step k, so a run is a function of its seed and step count.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2};
use rand::RngExt;

use crate::data::Toy;
use crate::error::{Error, Result};
use crate::model::{ModelConfig, Parameterization, ScoreModel, FORMAT_VERSION};
use crate::nn::{Adam, Ema, Mlp, MlpConfig, TrainCache};
use crate::rng::{self, StreamRng};
use crate::sde::{Sde, SdeConfig};

/// Everything a training run needs.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub data: Toy,
    pub sde: SdeConfig,
    pub net: MlpConfig,
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    pub ema_decay: f64,
    pub seed: u64,
    /// Checkpoint directory (EMA weights + config), written every
    /// `checkpoint_every` steps and at the end.
    pub out_dir: Option<PathBuf>,
    pub checkpoint_every: u64,
    /// Show a progress bar with loss and it/s.
    pub progress: bool,
}

impl TrainOptions {
    /// SPEC.md's recipe on `data`: VP SDE, 3x256 MLP, batch 512, Adam 1e-3,
    /// EMA 0.999, 20,000 steps.
    pub fn spec(data: Toy) -> Self {
        TrainOptions {
            data,
            sde: SdeConfig::by_name("vp").expect("vp is a valid SDE name"),
            net: MlpConfig::new(2),
            steps: 20_000,
            batch: 512,
            lr: 1e-3,
            ema_decay: 0.999,
            seed: 0,
            out_dir: None,
            checkpoint_every: 5_000,
            progress: false,
        }
    }

    /// Reject invalid settings before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid("steps", self.steps, "an integer >= 1"));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", self.batch, "an integer >= 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid("lr", self.lr, "a finite number > 0"));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(Error::invalid("ema", self.ema_decay, "0 <= ema < 1"));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::invalid("checkpoint-every", 0, "an integer >= 1"));
        }
        self.sde.build().map(|_| ())
    }
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Mean loss over the last min(steps, 200) steps.
    pub final_loss: f64,
    pub seconds: f64,
    pub steps_per_sec: f64,
    /// Mean loss per block of `steps / 100` steps (for a loss curve).
    pub loss_curve: Vec<(u64, f64)>,
}

/// The state of a run: raw weights, Adam moments, EMA weights, step.
pub struct Trainer {
    pub opts: TrainOptions,
    pub net: Mlp,
    pub adam: Adam,
    pub ema: Ema,
    pub step: u64,
    sde: Box<dyn Sde>,
    param: Parameterization,
    cache: TrainCache,
    grads: Vec<f32>,
    x_t: Array2<f32>,
    t: Array1<f32>,
    target: Array2<f32>,
    d_out: Array2<f32>,
}

impl Trainer {
    /// A fresh run: PyTorch-default initialisation from `opts.seed`.
    pub fn new(opts: TrainOptions) -> Result<Self> {
        opts.validate()?;
        let sde = opts.sde.build()?;
        let net = Mlp::new(opts.net.clone(), opts.seed)?;
        let adam = Adam::new(opts.lr, net.num_params());
        let ema = Ema::new(opts.ema_decay, net.params());
        let n_params = net.num_params();
        let (b, d) = (opts.batch, opts.net.data_dim);
        Ok(Trainer {
            param: Parameterization::for_sde(&opts.sde),
            sde,
            net,
            adam,
            ema,
            step: 0,
            cache: TrainCache::new(),
            grads: vec![0.0; n_params],
            x_t: Array2::zeros((b, d)),
            t: Array1::zeros(b),
            target: Array2::zeros((b, d)),
            d_out: Array2::zeros((b, d)),
            opts,
        })
    }

    /// Fill x_t, t and the target c ε for step `self.step`.
    fn draw_batch(&mut self) {
        let (b, d) = self.x_t.dim();
        let data_seed = rng::splitmix64(self.opts.seed ^ rng::splitmix64(self.step));
        let x0 = self.opts.data.sample(b, data_seed);
        let mut r: StreamRng = rng::stream(self.opts.seed, rng::domain::TRAIN, self.step);
        let (t_eps, t_max) = (self.sde.t_eps(), self.sde.t_max());
        let c = self.param.eps_sign();
        let mut eps = vec![0.0f32; d];
        for i in 0..b {
            let t = t_eps + (t_max - t_eps) * r.random::<f64>();
            let (alpha, sigma) = (self.sde.alpha(t) as f32, self.sde.sigma(t) as f32);
            rng::fill_normal(&mut r, &mut eps);
            self.t[i] = t as f32;
            for j in 0..d {
                self.x_t[[i, j]] = alpha * x0[[i, j]] + sigma * eps[j];
                self.target[[i, j]] = c * eps[j];
            }
        }
    }

    /// One Adam step on a fresh batch; returns the batch loss.
    pub fn train_step(&mut self) -> Result<f64> {
        self.draw_batch();
        self.net
            .forward_train(self.x_t.view(), self.t.view(), &mut self.cache);
        let out = self.cache.output();
        let n = out.len() as f64;
        let mut loss = 0.0f64;
        let scale = (2.0 / n) as f32;
        for ((d, &o), &y) in self
            .d_out
            .iter_mut()
            .zip(out.iter())
            .zip(self.target.iter())
        {
            let r = o - y;
            loss += (r as f64) * (r as f64);
            *d = scale * r;
        }
        loss /= n;
        if !loss.is_finite() {
            return Err(Error::NonFinite {
                step: self.step,
                what: "loss".into(),
            });
        }
        self.net
            .backward(&mut self.cache, self.d_out.view(), &mut self.grads);
        if self.grads.iter().any(|g| !g.is_finite()) {
            return Err(Error::NonFinite {
                step: self.step,
                what: "gradient".into(),
            });
        }
        self.adam.update(self.net.params_mut(), &self.grads);
        self.ema.update(self.net.params());
        self.step += 1;
        Ok(loss)
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
        };
        ScoreModel::new(config, net)
    }
}

/// Train as `opts` says; returns the EMA model and a summary.
pub fn train(opts: &TrainOptions) -> Result<(ScoreModel, TrainSummary)> {
    let mut trainer = Trainer::new(opts.clone())?;
    let pb = if opts.progress {
        let pb = ProgressBar::new(opts.steps);
        pb.set_style(
            ProgressStyle::with_template(
                "train {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let block = (opts.steps / 100).max(1);
    let (mut block_sum, mut block_n) = (0.0, 0u64);
    let mut curve = Vec::new();
    let mut recent = std::collections::VecDeque::with_capacity(200);
    while trainer.step < opts.steps {
        let loss = trainer.train_step()?;
        block_sum += loss;
        block_n += 1;
        if recent.len() == 200 {
            recent.pop_front();
        }
        recent.push_back(loss);
        if trainer.step % block == 0 || trainer.step == opts.steps {
            curve.push((trainer.step, block_sum / block_n as f64));
            pb.set_message(format!("loss {:.4}", block_sum / block_n as f64));
            (block_sum, block_n) = (0.0, 0);
        }
        pb.inc(1);
        if let Some(dir) = &opts.out_dir {
            if trainer.step % opts.checkpoint_every == 0 || trainer.step == opts.steps {
                trainer.ema_model()?.save(dir)?;
            }
        }
    }
    pb.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let summary = TrainSummary {
        final_loss: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        seconds,
        steps_per_sec: opts.steps as f64 / seconds,
        loss_curve: curve,
    };
    Ok((trainer.ema_model()?, summary))
}
