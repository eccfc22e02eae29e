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
//! λ(t) = sigma(t)² is the mean of (f_θ − target)², target = ±ε.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{self, Mlp, MlpConfig};
use crate::score::Score;
use crate::sde::{Sde, SdeConfig};

/// Checkpoint format version written into `config.json`.
pub const FORMAT_VERSION: u32 = 1;
/// File names inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

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

/// The JSON config stored beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub format_version: u32,
    pub sde: SdeConfig,
    pub parameterization: Parameterization,
    pub net: MlpConfig,
    /// Name of the data set the model was trained on.
    pub data: String,
    /// Training steps taken when these weights were saved.
    pub step: u64,
}

/// A score network bound to its SDE: implements [`Score`].
#[derive(Debug)]
pub struct ScoreModel {
    pub config: ModelConfig,
    pub net: Mlp,
    sde: Box<dyn Sde>,
}

impl ScoreModel {
    /// Bind `net` to the SDE and parameterisation in `config`.
    pub fn new(config: ModelConfig, net: Mlp) -> Result<Self> {
        let sde = config.sde.build()?;
        Ok(ScoreModel { config, net, sde })
    }

    /// The SDE the model was trained with.
    pub fn sde(&self) -> &dyn Sde {
        self.sde.as_ref()
    }

    /// Write `model.safetensors` (PyTorch `nn.Sequential` names) and
    /// `config.json` into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_string_pretty(&self.config)
            .map_err(|e| Error::format(dir.join(CONFIG_FILE), e.to_string()))?;
        let mut meta = BTreeMap::new();
        meta.insert("config".to_string(), json.clone());
        nn::save_mlp(&dir.join(MODEL_FILE), &self.net, &meta)?;
        crate::fsutil::write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
    }

    /// Load a checkpoint directory written by [`ScoreModel::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let config = read_config(dir)?;
        let (net, _) = nn::load_mlp(&dir.join(MODEL_FILE), config.net.clone())?;
        ScoreModel::new(config, net)
    }
}

/// Read and check `config.json` of a checkpoint directory.
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path: PathBuf = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        msg: format!("cannot read ({e}); is this a directory written by `scoresde train`?"),
    })?;
    let config: ModelConfig = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        msg: format!("invalid config: {e}"),
    })?;
    if config.format_version != FORMAT_VERSION {
        return Err(Error::Checkpoint {
            path,
            msg: format!(
                "format version {} is not supported (expected {FORMAT_VERSION})",
                config.format_version
            ),
        });
    }
    Ok(config)
}

impl Score for ScoreModel {
    fn dim(&self) -> usize {
        self.config.net.data_dim
    }

    /// s(x,t) = −c f_θ(x,t) / sigma(t), c = +1 (ε-prediction) or −1 (VE).
    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.net.forward_t(x, t, out.view_mut());
        let k = -self.config.parameterization.eps_sign() / self.sde.sigma(t) as f32;
        out.mapv_inplace(|v| k * v);
    }

    fn describe(&self) -> String {
        format!(
            "MLP score model ({} SDE, {} steps on {})",
            self.config.sde.name(),
            self.config.step,
            self.config.data
        )
    }
}
