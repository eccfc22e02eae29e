//! A small CNN image classifier on the same graph code as the U-Net, used
//! for image-quality metrics (its penultimate features give a Fréchet
//! distance, its softmax gives confidence / label-entropy scores):
//!
//! ```text
//!   h1 = SiLU(Conv3(x) → widths[0]),  h2 = SiLU(Conv3 s2 → widths[1]),  h3 = SiLU(Conv3 s2 → widths[2])
//!   f  = SiLU(Dense(flat(h3)) → hidden)         penultimate features
//!   z  = Dense(f) → classes                      logits;  p = softmax(z)
//!   L  = mean_i −log p_i[y_i]                    ∂L/∂z_i = (p_i − onehot(y_i)) / B
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::graph::{init_params, nchw_to_nhwc, Graph, GraphCache};
use super::network::{CacheState, NetCache, Network};
use crate::error::{Error, Result};
use crate::tensors::{NamedTensor, TensorShape};

/// Shape of a [`Classifier`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Channels of the three conv layers (the last two halve the side).
    pub widths: Vec<usize>,
    /// Width of the penultimate (feature) layer.
    pub hidden: usize,
    pub classes: usize,
}

impl ClassifierConfig {
    /// Default for MNIST-like images: widths [16, 32, 32], 128 features.
    pub fn new(channels: usize, height: usize, width: usize, classes: usize) -> Self {
        ClassifierConfig {
            channels,
            height,
            width,
            widths: vec![16, 32, 32],
            hidden: 128,
            classes,
        }
    }
    pub fn validate(&self) -> Result<()> {
        if self.widths.len() != 3 || self.widths.iter().any(|&w| w == 0 || w > 512) {
            return Err(Error::invalid(
                "widths",
                format!("{:?}", self.widths),
                "three widths in 1..=512",
            ));
        }
        for (n, v) in [("height", self.height), ("width", self.width)] {
            if v == 0 || v > 256 {
                return Err(Error::invalid(n, v, "1..=256"));
            }
        }
        if !(1..=4).contains(&self.channels)
            || !(2..=1000).contains(&self.classes)
            || !(1..=4096).contains(&self.hidden)
        {
            return Err(Error::invalid(
                "classifier config",
                format!("{self:?}"),
                "channels 1..=4, classes 2..=1000, hidden 1..=4096",
            ));
        }
        Ok(())
    }
}

/// One parameter block's initialiser: (offset, length, rule).
type Initializer = (usize, usize, super::graph::Init);

/// Node ids of the features and logits.
const FEATURES_FROM_END: usize = 2;

/// The classifier: graph + flat parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    cfg: ClassifierConfig,
    graph: Graph,
    params: Vec<f32>,
}

impl Classifier {
    /// PyTorch-default initialisation from stream `(seed, INIT, 1)`.
    pub fn new(cfg: ClassifierConfig, seed: u64) -> Result<Self> {
        let (g, ini) = Self::build(&cfg)?;
        let mut params = vec![0.0; g.num_params];
        init_params(
            &mut params,
            &ini,
            &mut crate::rng::stream(seed, crate::rng::domain::INIT, 1),
        );
        Ok(Classifier {
            cfg,
            graph: g,
            params,
        })
    }

    /// The graph of `cfg` and its initialisers, without allocating the
    /// parameters.
    fn build(cfg: &ClassifierConfig) -> Result<(Graph, Vec<Initializer>)> {
        cfg.validate()?;
        let mut g = Graph::default();
        let mut ini = Vec::new();
        let x = g.input(cfg.height, cfg.width, cfg.channels);
        let h = g.conv(&mut ini, x, cfg.widths[0], 3, 1, "conv1");
        let h = g.silu(h);
        let h = g.conv(&mut ini, h, cfg.widths[1], 3, 2, "conv2");
        let h = g.silu(h);
        let h = g.conv(&mut ini, h, cfg.widths[2], 3, 2, "conv3");
        let h = g.silu(h);
        let f = g.dense(&mut ini, h, cfg.hidden, "fc1");
        let f = g.silu(f);
        g.dense(&mut ini, f, cfg.classes, "fc2");
        Ok((g, ini))
    }
    pub fn config(&self) -> &ClassifierConfig {
        &self.cfg
    }
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    fn run(&self, x: ArrayView2<f32>, cache: &mut GraphCache) {
        let n = x.nrows();
        assert_eq!(
            x.ncols(),
            self.cfg.channels * self.cfg.height * self.cfg.width,
            "x must have c·h·w columns"
        );
        let xs: Vec<f32> = x.iter().copied().collect();
        let mut nhwc = vec![0.0; xs.len()];
        nchw_to_nhwc(
            &xs,
            n,
            self.cfg.channels,
            self.cfg.height * self.cfg.width,
            &mut nhwc,
        );
        self.graph.forward(&self.params, n, &nhwc, &[], cache);
    }

    /// Mean cross-entropy of `labels` on `x` (rows `[c, h, w]` in [−1, 1]);
    /// OVERWRITES `grads` with its gradient.
    pub fn loss_and_grad(
        &self,
        x: ArrayView2<f32>,
        labels: &[u8],
        cache: &mut GraphCache,
        grads: &mut [f32],
    ) -> f64 {
        let n = x.nrows();
        assert_eq!(labels.len(), n, "one label per row");
        self.run(x, cache);
        let k = self.cfg.classes;
        let logits = cache
            .value(&self.graph, self.graph.nodes.len() - 1)
            .to_vec();
        let mut d = vec![0.0f32; n * k];
        let mut loss = 0.0;
        for i in 0..n {
            let p = softmax(&logits[i * k..(i + 1) * k]);
            let y = labels[i] as usize;
            loss -= p[y].max(1e-30).ln();
            for j in 0..k {
                d[i * k + j] = ((p[j] - if j == y { 1.0 } else { 0.0 }) / n as f64) as f32;
            }
        }
        self.graph.backward(&self.params, cache, &d, grads);
        loss / n as f64
    }

    /// Class probabilities `[n, classes]` and penultimate features
    /// `[n, hidden]`, in blocks of 256 rows.
    pub fn predict(&self, x: ArrayView2<f32>) -> (Array2<f64>, Array2<f32>) {
        let n = x.nrows();
        let (k, hdim) = (self.cfg.classes, self.cfg.hidden);
        let mut probs = Array2::zeros((n, k));
        let mut feats = Array2::zeros((n, hdim));
        let mut cache = GraphCache::default();
        let last = self.graph.nodes.len() - 1;
        for start in (0..n).step_by(256) {
            let end = (start + 256).min(n);
            self.run(x.slice(ndarray::s![start..end, ..]), &mut cache);
            let logits = cache.value(&self.graph, last);
            for i in start..end {
                let p = softmax(&logits[(i - start) * k..(i - start + 1) * k]);
                for j in 0..k {
                    probs[[i, j]] = p[j];
                }
            }
            let f = cache.value(&self.graph, last - FEATURES_FROM_END + 1);
            for i in start..end {
                for j in 0..hdim {
                    feats[[i, j]] = f[(i - start) * hdim + j];
                }
            }
        }
        (probs, feats)
    }

    /// Save weights + JSON config (metadata key `config`) atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert(
            "config".into(),
            serde_json::to_string(&self.cfg).map_err(|e| Error::format(path, e.to_string()))?,
        );
        let t: Vec<_> = self
            .graph
            .tensors
            .iter()
            .map(|(n, s, o)| {
                (
                    n.clone(),
                    s.clone(),
                    &self.params[*o..*o + s.iter().product::<usize>()],
                )
            })
            .collect();
        crate::tensors::save_tensors(path, &t, &meta)
    }

    /// Load a file written by [`Classifier::save`].
    /// The file is read bounded ([`crate::tensors::MAX_TENSOR_FILE_BYTES`]), and
    /// the network its config describes is allocated only if the file is
    /// big enough to hold its parameters.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::fsutil::read_regular(
            path,
            crate::tensors::MAX_TENSOR_FILE_BYTES,
            "a safetensors file",
        )?;
        let file = crate::tensors::parse_tensors(path, &bytes)?;
        let cfg_text = file
            .metadata
            .get("config")
            .ok_or_else(|| Error::Checkpoint {
                path: path.into(),
                msg: "no 'config' metadata".into(),
            })?;
        let cfg: ClassifierConfig =
            serde_json::from_str(cfg_text).map_err(|e| Error::Checkpoint {
                path: path.into(),
                msg: format!("invalid config: {e}"),
            })?;
        let (graph, _) = Self::build(&cfg)?;
        if graph.num_params.saturating_mul(4) > bytes.len() {
            return Err(Error::Checkpoint {
                path: path.into(),
                msg: format!(
                    "{} bytes cannot hold the {} parameters its config {cfg:?} describes",
                    bytes.len(),
                    graph.num_params
                ),
            });
        }
        let mut net = Classifier::new(cfg, 0)?;
        let specs: Vec<_> = net
            .graph
            .tensors
            .iter()
            .map(|(n, s, _)| (n.clone(), s.clone()))
            .collect();
        crate::tensors::check_tensors(path, &file, &specs)?;
        super::unet::write_named(&net.graph, &mut net.params, &file.tensors).map_err(|e| {
            Error::Checkpoint {
                path: path.into(),
                msg: e.to_string(),
            }
        })?;
        Ok(net)
    }
}

fn softmax(z: &[f32]) -> Vec<f64> {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Training state of a [`Classifier`]: the graph cache and the logits.
#[derive(Debug, Default)]
pub struct ClassifierCache {
    graph: GraphCache,
    logits: Vec<f32>,
    rows: usize,
    classes: usize,
}

impl CacheState for ClassifierCache {
    fn output(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.rows, self.classes), &self.logits)
            .expect("cache logits have rows·classes values")
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Classifier {
    /// Logits `[rows, classes]` of the last run on `cache`.
    fn logits(&self, cache: &GraphCache) -> Vec<f32> {
        cache
            .value(&self.graph, self.graph.nodes.len() - 1)
            .to_vec()
    }
}

/// The classifier as a [`Network`]: its output is the logits `[n,
/// classes]`; it takes no time, so `t` is ignored.
impl Network for Classifier {
    fn kind(&self) -> &'static str {
        "classifier"
    }
    fn params(&self) -> &[f32] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    fn tensor_specs(&self) -> Vec<TensorShape> {
        self.graph.tensor_shapes()
    }
    fn named_slices<'a>(&self, flat: &'a [f32]) -> Vec<NamedTensor<&'a [f32]>> {
        self.graph.named_slices(flat)
    }
    fn load_tensors(&mut self, tensors: &[NamedTensor<&[f32]>]) -> Result<()> {
        let graph = &self.graph;
        super::network::unflatten_checked(graph.num_params, &mut self.params, |p| {
            super::unet::write_named(graph, p, tensors)
        })
    }
    fn unflatten_tensors(&self, tensors: &[NamedTensor<&[f32]>], flat: &mut [f32]) -> Result<()> {
        super::network::unflatten_checked(self.params.len(), flat, |tmp| {
            super::unet::write_named(&self.graph, tmp, tensors)
        })
    }
    fn forward(
        &self,
        x: ArrayView2<f32>,
        _t: ndarray::ArrayView1<f32>,
        mut out: ndarray::ArrayViewMut2<f32>,
    ) {
        let mut cache = GraphCache::default();
        self.run(x, &mut cache);
        for (o, v) in out.iter_mut().zip(self.logits(&cache)) {
            *o = v;
        }
    }
    fn forward_t(&self, x: ArrayView2<f32>, _t: f64, out: ndarray::ArrayViewMut2<f32>) {
        self.forward(x, ndarray::ArrayView1::from(&[][..]), out)
    }
    fn forward_train(
        &self,
        x: ArrayView2<f32>,
        _t: ndarray::ArrayView1<f32>,
        cache: &mut NetCache,
    ) {
        let c = cache.state::<ClassifierCache>();
        self.run(x, &mut c.graph);
        c.logits = self.logits(&c.graph);
        c.rows = x.nrows();
        c.classes = self.cfg.classes;
    }
    fn backward(&self, cache: &mut NetCache, d_out: ArrayView2<f32>, grads: &mut [f32]) {
        let c = cache.for_backward::<ClassifierCache>();
        let d: Vec<f32> = d_out.iter().copied().collect();
        self.graph.backward(&self.params, &mut c.graph, &d, grads);
    }
}
