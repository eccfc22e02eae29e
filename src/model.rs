//! A trained score model: network + SDE + output parameterisation, and its
//! checkpoint on disk.
//!
//! The network f_θ(x, t) predicts, depending on the SDE,
//!
//! ```text
//!   VP, sub-VP:  f_θ ≈ ε          so  s(x,t) = −f_θ(x,t) / sigma(t)
//!   VE:          f_θ ≈ −ε         so  s(x,t) =  f_θ(x,t) / sigma(t)
//! ```
//!
//! where x_t = alpha(t) x0 + sigma(t) ε. Either way the DSM loss with
//! λ(t) = sigma(t)² is the mean of (f_θ − target)², target = ±ε. A model
//! trained on another target (x0, v, velocity, EDM) records its
//! [`Output`] and converts through [`crate::convert`].

use ndarray::{ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::convert::{Coeffs, Output};
use crate::error::Result;
use crate::guidance::{Condition, ConditionalScore};
use crate::nn::{NetConfig, ScoreNet};
use crate::score::Score;
use crate::sde::{Sde, SdeConfig};

/// Checkpoint format version written into `config.json` (2: checksums and
/// training state; the checkpoint layer stores it).
pub const FORMAT_VERSION: u32 = 2;

/// What the network's output means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameterization {
    /// f_θ ≈ ε, s = −f_θ / sigma(t) (VP, sub-VP).
    Eps,
    /// f_θ ≈ −ε, s = f_θ / sigma(t) (VE).
    SigmaScaled,
}

impl Parameterization {
    /// The parameterisation used for an SDE.
    pub fn for_sde(sde: &SdeConfig) -> Self {
        match sde {
            SdeConfig::Ve { .. } => Parameterization::SigmaScaled,
            _ => Parameterization::Eps,
        }
    }

    /// Sign c with target = c ε and s = −c f_θ / sigma.
    pub fn eps_sign(self) -> f32 {
        match self {
            Parameterization::Eps => 1.0,
            Parameterization::SigmaScaled => -1.0,
        }
    }
}

/// The model part of a checkpoint's config (stored in `model.safetensors`'
/// metadata; `config.json` holds it plus file checksums).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub format_version: u32,
    pub sde: SdeConfig,
    pub parameterization: Parameterization,
    pub net: NetConfig,
    /// Name of the data set the model was trained on.
    pub data: String,
    /// Training steps taken when these weights were saved.
    pub step: u64,
    /// What the output predicts when it is not the `parameterization`'s
    /// ±ε (absent in checkpoints of the ε target, so those are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
}

/// A score network bound to its SDE: implements [`Score`].
#[derive(Debug)]
pub struct ScoreModel {
    pub config: ModelConfig,
    pub net: ScoreNet,
    sde: Box<dyn Sde>,
}

impl ScoreModel {
    /// Bind `net` to the SDE and parameterisation in `config`.
    pub fn new(config: ModelConfig, net: ScoreNet) -> Result<Self> {
        if net.config() != config.net {
            return Err(crate::error::Error::Mismatch(format!(
                "network {:?} differs from the config's {:?}",
                net.config(),
                config.net
            )));
        }
        let sde = config.sde.build()?;
        Ok(ScoreModel { config, net, sde })
    }

    /// The SDE the model was trained with.
    pub fn sde(&self) -> &dyn Sde {
        self.sde.as_ref()
    }
}

impl Score for ScoreModel {
    fn dim(&self) -> usize {
        self.config.net.data_dim()
    }

    /// s(x,t) = −c f_θ(x,t) / sigma(t), c = +1 (ε-prediction) or −1 (VE);
    /// with an [`Output`], s = [`Output::score`] of f_θ(c_in x, t).
    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        if let Some(o) = self.config.output {
            let c = Coeffs::at(self.sde.as_ref(), t);
            let c_in = o.input_scale(&c);
            if c_in == 1.0 {
                self.net.forward_t(x, t, out.view_mut());
            } else {
                let scaled = x.mapv(|v| (v as f64 * c_in) as f32);
                self.net.forward_t(scaled.view(), t, out.view_mut());
            }
            ndarray::Zip::from(&mut out)
                .and(&x)
                .for_each(|o_, &xv| *o_ = o.score(&c, xv as f64, *o_ as f64) as f32);
            return;
        }
        self.net.forward_t(x, t, out.view_mut());
        let k = -self.config.parameterization.eps_sign() / self.sde.sigma(t) as f32;
        out.mapv_inplace(|v| k * v);
    }

    /// One network pass with a time per row; row i is bit-identical to
    /// [`Score::score`] of that row alone at `t[i]`.
    fn score_rows(&self, x: ArrayView2<f32>, t: &[f64], out: ArrayViewMut2<f32>) {
        self.score_rows_given(x, t, None, out)
    }

    fn describe(&self) -> String {
        format!(
            "{} score model ({} SDE, {} steps on {})",
            self.config.net.kind(),
            self.config.sde.name(),
            self.config.step,
            self.config.data
        )
    }
}

impl ScoreModel {
    /// [`Score::score_rows`], given one label per row for a conditional
    /// network (`None`: the network's unlabelled pass, ∅ for a conditional one).
    fn score_rows_given(
        &self,
        x: ArrayView2<f32>,
        t: &[f64],
        labels: Option<&[u32]>,
        mut out: ArrayViewMut2<f32>,
    ) {
        let forward = |x: ArrayView2<f32>, out: ArrayViewMut2<f32>| match (&self.net, labels) {
            (net, Some(y)) => net.forward_labelled(x, t, y, out),
            (ScoreNet::Mlp(m), None) => m.forward_rows(x, t, out),
            (ScoreNet::UNet(u), None) => u.forward_rows(x, t, out),
        };
        if let Some(o) = self.config.output {
            // As `score`, row by row: f_θ(c_in(t_i) x_i, t_i), then the
            // output's conversion at t_i.
            let coeffs: Vec<Coeffs> = t
                .iter()
                .map(|&ti| Coeffs::at(self.sde.as_ref(), ti))
                .collect();
            let mut scaled = x.to_owned();
            for (mut row, c) in scaled.outer_iter_mut().zip(&coeffs) {
                let c_in = o.input_scale(c);
                if c_in != 1.0 {
                    row.mapv_inplace(|v| (v as f64 * c_in) as f32);
                }
            }
            forward(scaled.view(), out.view_mut());
            for ((mut orow, xrow), c) in out.outer_iter_mut().zip(x.outer_iter()).zip(&coeffs) {
                ndarray::Zip::from(&mut orow)
                    .and(&xrow)
                    .for_each(|o_, &xv| *o_ = o.score(c, xv as f64, *o_ as f64) as f32);
            }
            return;
        }
        forward(x, out.view_mut());
        let c = -self.config.parameterization.eps_sign();
        for (mut row, &ti) in out.outer_iter_mut().zip(t) {
            let k = c / self.sde.sigma(ti) as f32;
            row.mapv_inplace(|v| k * v);
        }
    }
}

/// A class-conditional model given one condition: s(x, t | y), or
/// s(x, t | ∅) (the network's ∅ row) for [`Condition::Null`].
struct Conditioned<'a> {
    model: &'a ScoreModel,
    /// `None`: the unconditional model itself.
    label: Option<u32>,
}

impl Score for Conditioned<'_> {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn score(&self, x: ArrayView2<f32>, t: f64, out: ArrayViewMut2<f32>) {
        match self.label {
            None => self.model.score(x, t, out),
            Some(_) => self.score_rows(x, &vec![t; x.nrows()], out),
        }
    }
    fn score_rows(&self, x: ArrayView2<f32>, t: &[f64], out: ArrayViewMut2<f32>) {
        let labels = self.label.map(|y| vec![y; x.nrows()]);
        self.model.score_rows_given(x, t, labels.as_deref(), out)
    }
    fn describe(&self) -> String {
        let n = self.model.config.net.n_classes();
        match self.label {
            None => self.model.describe(),
            Some(y) if y as usize == n => format!("{} given no class", self.model.describe()),
            Some(y) => format!("{} given class {y}", self.model.describe()),
        }
    }
}

impl ConditionalScore for ScoreModel {
    /// The classes the network was trained on (0: an unconditional model).
    fn n_classes(&self) -> usize {
        self.config.net.n_classes()
    }

    /// s(x, t | c) of a class-conditional model; an unconditional model
    /// has only [`Condition::Null`] (itself).
    fn with_condition(&self, c: Condition) -> Result<Box<dyn Score + '_>> {
        let n = self.config.net.n_classes();
        if n == 0 {
            return match c {
                Condition::Null => Ok(Box::new(Conditioned {
                    model: self,
                    label: None,
                })),
                Condition::Class(k) => Err(crate::error::Error::invalid(
                    "class",
                    k,
                    "none: this model is unconditional (trained without class labels)",
                )),
            };
        }
        let label = match c.check(n)? {
            Condition::Null => crate::nn::label::null_label(n),
            Condition::Class(k) => k as u32,
        };
        Ok(Box::new(Conditioned {
            model: self,
            label: Some(label),
        }))
    }
}
