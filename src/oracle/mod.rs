//! Exact-score oracles: `Score` implementations that need no training.

pub mod checkerboard;

pub use checkerboard::CheckerboardScore;
