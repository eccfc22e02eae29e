//! The application layer: what the `scoresde` commands do beyond the
//! library core (the `demo`, `compare`'s orchestration, training option
//! resolution and the image presets, progress bars).
//!
//! Dependencies point one way: `app` uses the core (`sde`, `score`,
//! `samplers`, `nn`, `metrics`, `oracle`, `data`, `train`, `checkpoint`,
//! ...), and no core module imports `app`.

pub mod bars;
pub mod compare;
pub mod demo;
pub mod options;
pub mod presets;
pub mod reference;
pub mod serve;

/// How a library message says that setting `force` replaces existing
/// outputs (`demo`, `compare`); a front end may spell it as its own option.
pub const ADVICE_FORCE: &str = "set force to replace them";
