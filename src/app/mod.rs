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
