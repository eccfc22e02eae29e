//! Conversions between the quantities a denoiser can predict, in one place.
//!
//! Every process here has the Gaussian path x_t = α x0 + σ ε with
//! α' = f α and σσ' = ½ g² + f σ² (f = drift coefficient, g = diffusion), so
//! at a fixed (x, t) each of the following determines all the others:
//!
//! ```text
//!   ε          noise                      ε  = (x − α x0) / σ
//!   x0         denoised data              x0 = (x − σ ε) / α
//!   v          v = (α ε − σ x0) / r,      r  = √(α² + σ²)       (Salimans & Ho; r = 1 on VP)
//!   score      s = ∇ log p_t = −ε / σ
//!   velocity   u = α' x0 + σ' ε = f x + (g² / 2σ) ε             (the probability-flow ODE)
//! ```
//!
//! The inverses: from v, x0 = (α x − σ r v)/r², ε = (σ x + α r v)/r²; from
//! u, ε = 2σ (u − f x) / g². On the linear path (α = 1 − t, σ = t) the
//! velocity is u = ε − x0, the flow-matching target. Coefficients and the
//! arithmetic are f64 per element; the results are rounded to f32 once.
//!
//! [`Output`] says what a network's output F means; EDM preconditioning
//! (Karras et al. 2022) is one of them, written for the path through
//! x̃ = x/α and σ̃ = σ/α (so x̃ = x0 + σ̃ ε, EDM's own variables):
//!
//! ```text
//!   D(x̃; σ̃) = c_skip x̃ + c_out F(c_in x̃, t),    c_skip = σd² / (σ̃² + σd²),
//!   c_out = σ̃ σd / √(σ̃² + σd²),   c_in = 1 / √(σ̃² + σd²),   c_noise = t
//! ```
//!
//! c_noise is the process's own time t, a monotone function of σ̃, because
//! the networks' time embedding is built for t ∈ [0, 1].

use serde::{Deserialize, Serialize};

use crate::sde::Sde;

/// What a network's output F predicts (stored in checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    /// F ≈ ε.
    Eps,
    /// F ≈ x0.
    X0,
    /// F ≈ v = (α ε − σ x0) / r.
    V,
    /// F ≈ u, the probability-flow velocity (flow matching on the linear path).
    Velocity,
    /// EDM preconditioning with data standard deviation σd.
    Edm { sigma_data: f64 },
}

impl Output {
    /// c_in: the factor on x before the network (1 but for EDM).
    pub fn input_scale(&self, c: &Coeffs) -> f64 {
        match *self {
            Output::Edm { sigma_data } => 1.0 / c.sigma.hypot(c.alpha * sigma_data),
            _ => 1.0,
        }
    }

    /// (c_skip, c_out) of EDM in x̃ units.
    fn skip_out(c: &Coeffs, sigma_data: f64) -> (f64, f64) {
        let st = c.sigma / c.alpha;
        let n2 = st * st + sigma_data * sigma_data;
        (sigma_data * sigma_data / n2, st * sigma_data / n2.sqrt())
    }

    /// The quantity F is an affine function of, and F's value in it.
    fn as_quantity(&self, c: &Coeffs, x: f64, out: f64) -> (Quantity, f64) {
        match *self {
            Output::Eps => (Quantity::Eps, out),
            Output::X0 => (Quantity::X0, out),
            Output::V => (Quantity::V, out),
            Output::Velocity => (Quantity::Velocity, out),
            Output::Edm { sigma_data } => {
                let (skip, cout) = Self::skip_out(c, sigma_data);
                (Quantity::X0, skip * x / c.alpha + cout * out)
            }
        }
    }

    /// The score of x given the network output `out`.
    pub fn score(&self, c: &Coeffs, x: f64, out: f64) -> f64 {
        let (q, y) = self.as_quantity(c, x, out);
        c.convert(q, Quantity::Score, x, y)
    }

    /// The regression target of F for the point x = α x0 + σ ε.
    pub fn target(&self, c: &Coeffs, x: f64, x0: f64, eps: f64) -> f64 {
        match *self {
            Output::Eps => eps,
            Output::X0 => x0,
            Output::V => c.from_eps(Quantity::V, x, eps),
            Output::Velocity => c.from_eps(Quantity::Velocity, x, eps),
            Output::Edm { sigma_data } => {
                let (skip, cout) = Self::skip_out(c, sigma_data);
                (x0 - skip * x / c.alpha) / cout
            }
        }
    }

    /// a with δx0 = a · δF at fixed x.
    pub fn x0_gain(&self, c: &Coeffs) -> f64 {
        match *self {
            Output::Edm { sigma_data } => Self::skip_out(c, sigma_data).1,
            Output::Eps => c.x0_gain(Quantity::Eps),
            Output::X0 => 1.0,
            Output::V => c.x0_gain(Quantity::V),
            Output::Velocity => c.x0_gain(Quantity::Velocity),
        }
    }
}

/// One of the quantities a network can predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    Eps,
    X0,
    V,
    Score,
    Velocity,
}

impl Quantity {
    /// Every quantity, in the order of the module docs.
    pub const ALL: [Quantity; 5] = [
        Quantity::Eps,
        Quantity::X0,
        Quantity::V,
        Quantity::Score,
        Quantity::Velocity,
    ];
}

/// The path coefficients at one time t.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coeffs {
    pub alpha: f64,
    pub sigma: f64,
    /// Drift coefficient f(t) = α'/α.
    pub f: f64,
    /// g(t)².
    pub g2: f64,
}

impl Coeffs {
    /// The coefficients of `sde` at `t`.
    pub fn at(sde: &dyn Sde, t: f64) -> Self {
        Coeffs {
            alpha: sde.alpha(t),
            sigma: sde.sigma(t),
            f: sde.drift_coef(t),
            g2: sde.diffusion(t).powi(2),
        }
    }

    /// r = √(α² + σ²), the scale of the v of a non-VP path.
    pub fn r(&self) -> f64 {
        self.alpha.hypot(self.sigma)
    }

    /// Signal-to-noise ratio α²/σ².
    pub fn snr(&self) -> f64 {
        (self.alpha / self.sigma).powi(2)
    }

    /// ε of a point x whose quantity `q` is `y`.
    pub fn to_eps(&self, q: Quantity, x: f64, y: f64) -> f64 {
        let Coeffs {
            alpha,
            sigma,
            f,
            g2,
        } = *self;
        match q {
            Quantity::Eps => y,
            Quantity::X0 => (x - alpha * y) / sigma,
            Quantity::V => {
                let r = self.r();
                (sigma * x + alpha * r * y) / (r * r)
            }
            Quantity::Score => -sigma * y,
            Quantity::Velocity => 2.0 * sigma * (y - f * x) / g2,
        }
    }

    /// Quantity `q` of a point x whose noise is `eps`.
    pub fn from_eps(&self, q: Quantity, x: f64, eps: f64) -> f64 {
        let Coeffs {
            alpha,
            sigma,
            f,
            g2,
        } = *self;
        match q {
            Quantity::Eps => eps,
            Quantity::X0 => (x - sigma * eps) / alpha,
            Quantity::V => {
                let x0 = (x - sigma * eps) / alpha;
                (alpha * eps - sigma * x0) / self.r()
            }
            Quantity::Score => -eps / sigma,
            Quantity::Velocity => f * x + 0.5 * g2 / sigma * eps,
        }
    }

    /// Quantity `to` of a point x whose quantity `from` is `y`.
    pub fn convert(&self, from: Quantity, to: Quantity, x: f64, y: f64) -> f64 {
        if from == to {
            return y;
        }
        self.from_eps(to, x, self.to_eps(from, x, y))
    }

    /// The factor a with δx0 = a · δy for an error δy in quantity `q` at
    /// fixed x (the conversions are affine in y): −σ/α for ε, −σ/r for
    /// v, 1 for x0, σ²/α for the score, −2σ²/(α g²) for the velocity.
    pub fn x0_gain(&self, q: Quantity) -> f64 {
        let Coeffs {
            alpha, sigma, g2, ..
        } = *self;
        match q {
            Quantity::Eps => -sigma / alpha,
            Quantity::X0 => 1.0,
            Quantity::V => -sigma / self.r(),
            Quantity::Score => sigma * sigma / alpha,
            Quantity::Velocity => -2.0 * sigma * sigma / (alpha * g2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{LinearSde, SdeConfig};

    fn processes() -> Vec<Box<dyn Sde>> {
        let mut v: Vec<Box<dyn Sde>> = ["vp", "subvp", "ve"]
            .iter()
            .map(|n| SdeConfig::by_name(n).unwrap().build().unwrap())
            .collect();
        v.push(Box::new(LinearSde::default()));
        v
    }

    /// Every pair of quantities round-trips to 1e-9 relative, and the
    /// quantities of a known (x0, ε) are the closed forms of the module docs.
    #[test]
    fn round_trips_and_closed_forms() {
        for sde in processes() {
            for &t in &[0.01, 0.2, 0.5, 0.9] {
                let c = Coeffs::at(sde.as_ref(), t);
                let (x0, eps) = (0.7, -1.3);
                let x = c.alpha * x0 + c.sigma * eps;
                let h = 1e-6;
                let (a_dot, s_dot) = (
                    (sde.alpha(t + h) - sde.alpha(t - h)) / (2.0 * h),
                    (sde.sigma(t + h) - sde.sigma(t - h)) / (2.0 * h),
                );
                let want = [
                    (Quantity::Eps, eps),
                    (Quantity::X0, x0),
                    (Quantity::V, (c.alpha * eps - c.sigma * x0) / c.r()),
                    (Quantity::Score, -eps / c.sigma),
                    (Quantity::Velocity, a_dot * x0 + s_dot * eps),
                ];
                for (q, w) in want {
                    let got = c.from_eps(q, x, eps);
                    let tol = if q == Quantity::Velocity { 1e-5 } else { 1e-9 };
                    assert!(
                        (got - w).abs() <= tol * (1.0 + w.abs()),
                        "{:?} t={t} {q:?}: {got} vs {w}",
                        sde.config()
                    );
                }
                for a in Quantity::ALL {
                    for b in Quantity::ALL {
                        let ya = c.from_eps(a, x, eps);
                        let back = c.convert(b, a, x, c.convert(a, b, x, ya));
                        assert!(
                            (back - ya).abs() <= 1e-9 * (1.0 + ya.abs()),
                            "{a:?} -> {b:?} -> {a:?}: {ya} vs {back}"
                        );
                    }
                }
            }
        }
    }

    /// For every output, the target of an exact (x0, ε) converts back to
    /// the exact score, and x0_gain is the derivative of x0 in F.
    #[test]
    fn outputs_convert_to_the_score() {
        let outputs = [
            Output::Eps,
            Output::X0,
            Output::V,
            Output::Velocity,
            Output::Edm { sigma_data: 0.5 },
        ];
        for sde in processes() {
            for &t in &[0.01, 0.3, 0.8] {
                let c = Coeffs::at(sde.as_ref(), t);
                let (x0, eps) = (-0.4, 0.9);
                let x = c.alpha * x0 + c.sigma * eps;
                for o in outputs {
                    let y = o.target(&c, x, x0, eps);
                    let s = o.score(&c, x, y);
                    let want = -eps / c.sigma;
                    assert!(
                        (s - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "{o:?}: {s} vs {want}"
                    );
                    let h = 1e-5 * (1.0 + y.abs());
                    let x0_of =
                        |f: f64| c.convert(Quantity::Score, Quantity::X0, x, o.score(&c, x, f));
                    let d = (x0_of(y + h) - x0_of(y - h)) / (2.0 * h);
                    let g = o.x0_gain(&c);
                    assert!((d - g).abs() <= 1e-5 * (1.0 + g.abs()), "{o:?}: {d} vs {g}");
                }
            }
        }
    }

    /// x0_gain is the derivative of x0 with respect to each quantity.
    #[test]
    fn x0_gain_is_the_derivative() {
        for sde in processes() {
            let c = Coeffs::at(sde.as_ref(), 0.3);
            let x = 0.4;
            for q in Quantity::ALL {
                let y = c.from_eps(q, x, 0.2);
                let h = 1e-5 * (1.0 + y.abs());
                let d = (c.convert(q, Quantity::X0, x, y + h)
                    - c.convert(q, Quantity::X0, x, y - h))
                    / (2.0 * h);
                let g = c.x0_gain(q);
                assert!((d - g).abs() <= 1e-6 * (1.0 + g.abs()), "{q:?}: {d} vs {g}");
            }
        }
    }
}
