//! Mean ± standard error over repeated measurements (e.g. over seeds).

use std::fmt;

/// Mean and standard error of n measurements x_1..x_n:
/// mean = (1/n) Σ x_i, se = s / √n with the sample standard deviation
/// s = √( Σ (x_i − mean)² / (n − 1) ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSe {
    /// Sample mean (NaN when n = 0).
    pub mean: f64,
    /// Standard error s / √n (NaN when n < 2).
    pub se: f64,
    /// Number of measurements.
    pub n: usize,
}

impl MeanSe {
    /// Summarise `xs` (f64 two-pass: mean, then squared deviations).
    pub fn from_samples(xs: &[f64]) -> MeanSe {
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let se = if n < 2 {
            f64::NAN
        } else {
            let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n - 1) as f64).sqrt() / (n as f64).sqrt()
        };
        MeanSe { mean, se, n }
    }
}

/// "0.0491 ± 0.0012": 4 decimals unless a precision is given (`{:.2}`).
impl fmt::Display for MeanSe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(4);
        write!(f, "{:.p$} ± {:.p$}", self.mean, self.se, p = p)
    }
}
