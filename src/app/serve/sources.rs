//! Where a job's scores come from: the exact oracles, the exact score of a
//! bundled image set's empirical distribution, and the checkpoints found
//! under the runs directory.
//!
//! A source is named by an id: `oracle:<toy>` (checkerboard, 8gaussians,
//! 25gaussians), `empirical:<image set>` (digits, emoji), or
//! `checkpoint:<path relative to the runs directory>`. A checkpoint path is
//! resolved only inside the runs directory: it is canonicalised (every
//! symlink followed) and refused unless the result still lies under the
//! canonical runs directory, so neither `..` nor a symlink can reach out.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::data::source::bundled_shape;
use crate::data::Toy;
use crate::error::{Error, Result};
use crate::model::ScoreModel;
use crate::oracle::{EmpiricalScore, ORACLE_DATA};
use crate::score::Score;
use crate::sde::{Sde, SdeConfig};

/// Image sets offered as exact empirical-score sources (small enough that
/// one score evaluation of a 64-image batch takes milliseconds).
pub const EMPIRICAL_SETS: [&str; 2] = ["digits", "emoji"];
/// How deep below the runs directory checkpoints are looked for.
pub const SCAN_DEPTH: usize = 3;
/// At most this many checkpoints are listed.
pub const MAX_LISTED: usize = 200;

/// One entry of `GET /api/sources`.
#[derive(Clone, Debug, Serialize)]
pub struct SourceInfo {
    pub id: String,
    pub label: String,
    /// `points` (2-D) or `images`.
    pub kind: &'static str,
    /// Whether the request chooses the SDE (oracles) or the source brings
    /// its own (checkpoints: the SDE it was trained with).
    pub takes_sde: bool,
}

/// What samples look like and what they are scored against.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// 2-D points, scored against the toy set if it is one.
    Points { data: Option<Toy> },
    /// Images `(c, h, w)`, scored by `eval` against the named set if bundled.
    Images {
        shape: (usize, usize, usize),
        data: Option<String>,
    },
}

/// A source ready to sample from.
pub struct Loaded {
    pub score: Box<dyn Score>,
    pub sde: Box<dyn Sde>,
    pub kind: Kind,
    /// x̂0 clipping as `scoresde sample` applies it by default (image
    /// checkpoints: 1; everything else: none).
    pub clip_x0: Option<f64>,
    /// What the source is, for the report.
    pub label: String,
}

/// A checked source id.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    Oracle {
        data: Toy,
        sde: SdeConfig,
    },
    Empirical {
        data: &'static str,
        sde: SdeConfig,
    },
    /// Canonical path of a checkpoint directory inside the runs directory.
    Checkpoint {
        dir: PathBuf,
        rel: String,
    },
}

/// The sources offered: every oracle, every empirical set, and the
/// checkpoints under `runs` (a missing runs directory lists none).
pub fn list(runs: &Path) -> Vec<SourceInfo> {
    let mut out: Vec<SourceInfo> = ORACLE_DATA
        .iter()
        .map(|d| SourceInfo {
            id: format!("oracle:{d}"),
            label: format!("exact score: {d}"),
            kind: "points",
            takes_sde: true,
        })
        .collect();
    out.extend(EMPIRICAL_SETS.iter().map(|d| SourceInfo {
        id: format!("empirical:{d}"),
        label: format!("exact empirical score: {d} images"),
        kind: "images",
        takes_sde: true,
    }));
    let mut found = Vec::new();
    if let Ok(root) = runs.canonicalize() {
        scan(&root, &root, 0, &mut found);
    }
    found.sort();
    for rel in found.into_iter().take(MAX_LISTED) {
        let Ok(dir) = resolve_checkpoint(runs, &rel) else {
            continue;
        };
        let Ok(cfg) = crate::checkpoint::read_config(&dir) else {
            continue;
        };
        let images = crate::imaging::image_shape_of(&cfg).is_some();
        out.push(SourceInfo {
            label: format!(
                "checkpoint {rel} ({}, {} SDE, step {})",
                cfg.data,
                cfg.sde.name(),
                cfg.step
            ),
            id: format!("checkpoint:{rel}"),
            kind: if images { "images" } else { "points" },
            takes_sde: false,
        });
    }
    out
}

/// Checkpoint folders (holding `config.json`) below `dir`, as paths
/// relative to `root` with `/` separators; symlinks are not followed.
fn scan(root: &Path, dir: &Path, depth: usize, found: &mut Vec<String>) {
    if depth > SCAN_DEPTH || found.len() >= MAX_LISTED {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let p = e.path();
        if p.join("config.json").is_file() && p.join("model.safetensors").is_file() {
            if let Ok(rel) = p.strip_prefix(root) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                found.push(parts.join("/"));
            }
        }
        scan(root, &p, depth + 1, found);
    }
}

/// The canonical directory of checkpoint `rel` under `runs`, refused unless
/// it is a relative path of plain components that stays inside `runs`
/// after every symlink is resolved.
pub fn resolve_checkpoint(runs: &Path, rel: &str) -> Result<PathBuf> {
    let outside = || {
        Error::invalid(
            "source",
            format!("checkpoint:{rel}"),
            "a checkpoint directory inside the runs directory (a relative path without ..)",
        )
    };
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(outside());
    }
    let root = runs.canonicalize().map_err(|e| Error::io(runs, e))?;
    let dir = root.join(p).canonicalize().map_err(|e| Error::io(rel, e))?;
    if !dir.starts_with(&root) || !dir.is_dir() {
        return Err(outside());
    }
    Ok(dir)
}

impl SourceSpec {
    /// Parse a source id and the requested SDE (oracles: default `vp`;
    /// checkpoints bring their own and take none).
    pub fn parse(id: &str, sde: Option<&str>, runs: &Path) -> Result<SourceSpec> {
        let expected = "oracle:<checkerboard|8gaussians|25gaussians>, empirical:<digits|emoji> or checkpoint:<path under the runs directory>";
        let (kind, rest) = id
            .split_once(':')
            .ok_or_else(|| Error::invalid("source", id, expected))?;
        let sde_cfg = || SdeConfig::by_name(sde.unwrap_or("vp"));
        match kind {
            "oracle" => {
                let (data, sde) = (Toy::from_name(rest)?, sde_cfg()?);
                // The library's own check (a toy with an exact score, an
                // SDE it supports); building a mixture oracle is cheap.
                crate::oracle::for_toy(data, &sde)?;
                Ok(SourceSpec::Oracle { data, sde })
            }
            "empirical" => {
                let data = EMPIRICAL_SETS.iter().find(|&&d| d == rest).ok_or_else(|| {
                    Error::invalid(
                        "empirical",
                        rest,
                        format!("one of: {}", EMPIRICAL_SETS.join(", ")),
                    )
                })?;
                Ok(SourceSpec::Empirical {
                    data,
                    sde: sde_cfg()?,
                })
            }
            "checkpoint" => {
                if let Some(s) = sde {
                    return Err(Error::invalid(
                        "sde",
                        s,
                        "no sde with a checkpoint (it brings the SDE it was trained with)",
                    ));
                }
                Ok(SourceSpec::Checkpoint {
                    dir: resolve_checkpoint(runs, rest)?,
                    rel: rest.to_string(),
                })
            }
            _ => Err(Error::invalid("source", id, expected)),
        }
    }

    /// Build the score: the oracle, the empirical score of the set's
    /// training half (what `eval` compares against), or the checkpoint.
    pub fn load(&self) -> Result<Loaded> {
        match self {
            SourceSpec::Oracle { data, sde } => {
                let (score, sde_box) = crate::oracle::for_toy(*data, sde)?;
                Ok(Loaded {
                    score,
                    sde: sde_box,
                    kind: Kind::Points { data: Some(*data) },
                    clip_x0: None,
                    label: format!("exact score of {} ({} SDE)", data.name(), sde.name()),
                })
            }
            SourceSpec::Empirical { data, sde } => {
                let (train, _) = crate::imaging::eval_sets(data)?;
                let shape = (train.channels, train.height, train.width);
                debug_assert_eq!(bundled_shape(data), Some(shape));
                Ok(Loaded {
                    score: Box::new(EmpiricalScore::new(train.pixels.view(), sde)?),
                    sde: sde.build()?,
                    kind: Kind::Images {
                        shape,
                        data: Some(data.to_string()),
                    },
                    clip_x0: None,
                    label: format!(
                        "exact score of the {} {data} training images ({} SDE)",
                        train.len(),
                        sde.name()
                    ),
                })
            }
            SourceSpec::Checkpoint { dir, rel } => {
                let model = ScoreModel::load(dir)?;
                let shape = crate::imaging::image_shape_of(&model.config);
                let dim = model.dim();
                let kind = match shape {
                    Some(shape) => Kind::Images {
                        shape,
                        data: crate::data::source::IMAGE_SETS
                            .contains(&model.config.data.as_str())
                            .then(|| model.config.data.clone()),
                    },
                    None if dim == 2 => Kind::Points {
                        data: Toy::from_name(&model.config.data).ok(),
                    },
                    None => {
                        return Err(Error::Mismatch(format!(
                            "{rel}: the model makes points of {dim} values, neither 2-D nor a known image shape; \
                             its samples cannot be shown or scored"
                        )))
                    }
                };
                let label = format!(
                    "checkpoint {rel} ({}, {} SDE)",
                    model.config.data,
                    model.config.sde.name()
                );
                Ok(Loaded {
                    sde: model.config.sde.build()?,
                    clip_x0: shape.map(|_| 1.0),
                    score: Box::new(model),
                    kind,
                    label,
                })
            }
        }
    }
}
