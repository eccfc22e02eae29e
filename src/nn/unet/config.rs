//! [`UNetConfig`]: the U-Net's shape, its checks, and the graph it builds
//! (the layout in the [parent module's doc](super)).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::graph::{Graph, InitList};

fn default_widths() -> Vec<usize> {
    vec![32, 64, 64]
}
fn one() -> usize {
    1
}
fn default_emb() -> usize {
    32
}
fn default_time_dim() -> usize {
    128
}
fn default_groups() -> usize {
    8
}

/// Shape of a [`UNet`] (serialised into the checkpoint's JSON config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Image channels (1 grey, 3 RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Channel width of each resolution level (default [32, 64, 64]); the
    /// image side is halved between levels, so it must be divisible by
    /// 2^(levels − 1).
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// Residual blocks per level on the way down and up (default 1).
    #[serde(default = "one")]
    pub res_blocks: usize,
    /// Sinusoidal embedding width, even (default 32).
    #[serde(default = "default_emb")]
    pub emb_dim: usize,
    /// Width of the time MLP (default 128).
    #[serde(default = "default_time_dim")]
    pub time_dim: usize,
    /// Largest GroupNorm group count (default 8); each norm uses the largest
    /// divisor of its channel count not above this.
    #[serde(default = "default_groups")]
    pub groups: usize,
    /// Classes of a class-conditional network (0: unconditional, and the
    /// field is not written); see [`super::label`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_classes: usize,
    /// Sides (feature-map heights) of the levels with self-attention, e.g.
    /// `[7]` for MNIST's lowest level (default none; not written when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<usize>,
    /// Heads of each attention block (default 1; not written when 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub attn_heads: usize,
    /// Dropout rate in the ResBlocks, in [0, 1) (default 0; not written when 0).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub dropout: f64,
}

// `dropout` is validated finite, so equality is reflexive on every config
// that builds a network.
impl Eq for UNetConfig {}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
fn is_one(n: &usize) -> bool {
    *n == 1
}
fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

impl UNetConfig {
    /// Default widths for a `channels × height × width` image.
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        UNetConfig {
            channels,
            height,
            width,
            widths: default_widths(),
            res_blocks: 1,
            emb_dim: 32,
            time_dim: 128,
            groups: 8,
            n_classes: 0,
            attention: Vec::new(),
            attn_heads: 1,
            dropout: 0.0,
        }
    }

    /// Values per image, `channels·height·width`.
    pub fn data_dim(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn validate(&self) -> Result<()> {
        if !(1..=4).contains(&self.channels) {
            return Err(Error::invalid("channels", self.channels, "1..=4"));
        }
        if self.widths.is_empty()
            || self.widths.len() > 6
            || self.widths.iter().any(|&w| w == 0 || w > 1024)
        {
            return Err(Error::invalid(
                "widths",
                format!("{:?}", self.widths),
                "1..=6 levels of 1..=1024 channels",
            ));
        }
        let f = 1usize << (self.widths.len() - 1);
        for (name, side) in [("height", self.height), ("width", self.width)] {
            if side == 0 || side > 1024 || side % f != 0 {
                return Err(Error::invalid(
                    name,
                    side,
                    format!(
                        "1..=1024 and divisible by {f} (2^(levels−1) for {} levels)",
                        self.widths.len()
                    ),
                ));
            }
        }
        if !(1..=8).contains(&self.res_blocks) {
            return Err(Error::invalid("res_blocks", self.res_blocks, "1..=8"));
        }
        if self.emb_dim == 0 || !self.emb_dim.is_multiple_of(2) || self.emb_dim > 4096 {
            return Err(Error::invalid(
                "emb_dim",
                self.emb_dim,
                "an even number in 2..=4096",
            ));
        }
        if !(1..=4096).contains(&self.time_dim) {
            return Err(Error::invalid("time_dim", self.time_dim, "1..=4096"));
        }
        if !(1..=64).contains(&self.groups) {
            return Err(Error::invalid("groups", self.groups, "1..=64"));
        }
        crate::nn::label::check_classes(self.n_classes)?;
        crate::nn::dropout::check_rate(self.dropout)?;
        crate::nn::attention::check_attention(
            &self.attention,
            self.attn_heads,
            self.height,
            self.width,
            &self.widths,
        )
    }

    /// Whether level `l` has attention blocks.
    fn attends(&self, l: usize) -> bool {
        self.attention.contains(&(self.height >> l))
    }

    fn groups_for(&self, c: usize) -> usize {
        (1..=self.groups.min(c))
            .rev()
            .find(|g| c.is_multiple_of(*g))
            .unwrap_or(1)
    }

    /// Build the graph and the parameter initialisers.
    pub fn build(&self) -> Result<(Graph, InitList)> {
        self.validate()?;
        let mut g = Graph::default();
        let mut ini = Vec::new();
        let x = g.input(self.height, self.width, self.channels);
        let mut te = g.time(self.emb_dim);
        if self.n_classes > 0 {
            let lab = g.label(&mut ini, self.n_classes + 1, self.emb_dim, "label_emb");
            te = g.add(te, lab);
        }
        let t1 = g.conv(&mut ini, te, self.time_dim, 1, 1, "time.0");
        let t1 = g.silu(t1);
        let t2 = g.conv(&mut ini, t1, self.time_dim, 1, 1, "time.2");
        let ts = g.silu(t2);
        let res = |g: &mut Graph, ini: &mut Vec<_>, x: usize, cout: usize, name: &str| -> usize {
            let cin = g.nodes[x].c;
            let h = g.group_norm(ini, x, self.groups_for(cin), &format!("{name}.norm1"));
            let h = g.silu(h);
            let h = g.conv(ini, h, cout, 3, 1, &format!("{name}.conv1"));
            let v = g.conv(ini, ts, cout, 1, 1, &format!("{name}.temb"));
            let h = g.add_channel(h, v);
            let h = g.group_norm(ini, h, self.groups_for(cout), &format!("{name}.norm2"));
            let mut h = g.silu(h);
            if self.dropout > 0.0 {
                h = g.dropout(h, self.dropout);
            }
            let h = g.conv(ini, h, cout, 3, 1, &format!("{name}.conv2"));
            let skip = if cin != cout {
                g.conv(ini, x, cout, 1, 1, &format!("{name}.skip"))
            } else {
                x
            };
            g.add(h, skip)
        };
        let attn = |g: &mut Graph, ini: &mut Vec<_>, x: usize, name: &str| -> usize {
            let groups = self.groups_for(g.nodes[x].c);
            let name = format!("{name}.attn");
            g.attention_block(ini, x, groups, self.attn_heads, &name)
        };
        let levels = self.widths.len();
        let mut h = g.conv(&mut ini, x, self.widths[0], 3, 1, "conv_in");
        let mut skips = Vec::new();
        for (l, &wl) in self.widths.iter().enumerate() {
            for r in 0..self.res_blocks {
                let name = format!("down.{l}.res.{r}");
                h = res(&mut g, &mut ini, h, wl, &name);
                if self.attends(l) {
                    h = attn(&mut g, &mut ini, h, &name);
                }
                skips.push(h);
            }
            if l + 1 < levels {
                h = g.conv(&mut ini, h, wl, 3, 2, &format!("down.{l}.down"));
            }
        }
        h = res(&mut g, &mut ini, h, self.widths[levels - 1], "mid");
        if self.attends(levels - 1) {
            h = attn(&mut g, &mut ini, h, "mid");
        }
        for (l, &wl) in self.widths.iter().enumerate().rev() {
            for r in 0..self.res_blocks {
                let s = skips.pop().expect("one skip per down block");
                h = g.concat(h, s);
                let name = format!("up.{l}.res.{r}");
                h = res(&mut g, &mut ini, h, wl, &name);
                if self.attends(l) {
                    h = attn(&mut g, &mut ini, h, &name);
                }
            }
            if l > 0 {
                h = g.upsample(h);
                h = g.conv(&mut ini, h, wl, 3, 1, &format!("up.{l}.up"));
            }
        }
        let c0 = g.nodes[h].c;
        h = g.group_norm(&mut ini, h, self.groups_for(c0), "out.norm");
        h = g.silu(h);
        g.conv(&mut ini, h, self.channels, 3, 1, "out.conv");
        Ok((g, ini))
    }
}
