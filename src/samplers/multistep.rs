//! The shared loop of the explicit multistep samplers in σ̃ (LMS, iPNDM,
//! DEIS): each step evaluates the denoiser once, keeps the last few slopes
//! ε̂ = (x̃ − D)/σ̃, and moves x̃ by a weighted sum of them,
//!
//! ```text
//!   x̃_{i+1} = x̃_i + Σ_{j<k} c_ij ε̂_{i−j},   k = min(i + 1, order)
//! ```
//!
//! with the weights c_ij the only part that differs between the methods: a
//! method implements [`Weights`], and [`Multistep`] of it is the [`Rule`] of
//! its [`super::stepper::Stepper`] (key `order`).

use std::collections::VecDeque;
use std::marker::PhantomData;

use ndarray::Array2;

use super::params::SpecWriter;
use super::scaled::{run_scaled, to_d, Levels};
use super::stepper::{Info, Rule};
use super::{Ctx, Params, Schedule};
use crate::error::{Error, Result};
use crate::sde::Sde;

/// The last few ε̂ of a multistep method, newest first (buffers recycled).
pub(crate) struct History {
    items: VecDeque<Array2<f64>>,
    cap: usize,
}

impl History {
    /// Keeps at most `cap` ≥ 1 entries.
    pub(crate) fn new(cap: usize) -> Self {
        History {
            items: VecDeque::with_capacity(cap + 1),
            cap: cap.max(1),
        }
    }

    /// Push ε̂ = (x̃ − D)/σ̃ as the newest entry, dropping the oldest beyond cap.
    pub(crate) fn push(&mut self, x_tilde: &Array2<f64>, denoised: &Array2<f64>, sigma: f64) {
        let mut e = if self.items.len() == self.cap {
            self.items
                .pop_back()
                .unwrap_or_else(|| Array2::zeros(x_tilde.raw_dim()))
        } else {
            Array2::zeros(x_tilde.raw_dim())
        };
        to_d(x_tilde, denoised, sigma, &mut e);
        self.items.push_front(e);
    }

    /// Number of entries kept.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// x̃ ← x̃ + Σ_j c_j ε̂_{newest − j} for the given coefficients.
    pub(crate) fn add_to(&self, x_tilde: &mut Array2<f64>, coeffs: &[f64]) {
        for (&c, e) in coeffs.iter().zip(&self.items) {
            x_tilde.scaled_add(c, e);
        }
    }
}

/// One step's view of the grid for the weights: step i, the k slopes kept,
/// the grid's times and noise levels σ̃, and the SDE.
pub struct StepAt<'a> {
    pub i: usize,
    pub k: usize,
    pub times: &'a [f64],
    pub sigmas: &'a [f64],
    pub sde: &'a dyn Sde,
}

/// Run the multistep method of `order` over the `steps` steps of `schedule`
/// with the weights c_i0 … c_i(k−1) of `weights` (newest slope first), from
/// the prior draws in `x32` to x = alpha(ε) x̃_N.
pub(crate) fn run_multistep(
    ctx: &mut Ctx,
    x32: &mut Array2<f32>,
    (schedule, steps, order): (&Schedule, usize, usize),
    mut weights: impl FnMut(&StepAt) -> Vec<f64>,
) -> Result<()> {
    let sde = ctx.sde;
    let lv = Levels::new(&schedule.grid(sde, steps)?);
    let mut den = Array2::<f64>::zeros(x32.raw_dim());
    let mut eps = History::new(order);
    run_scaled(ctx, x32, &lv, |ctx, i, x| {
        ctx.denoise_scaled(x, lv.t[i], &mut den);
        eps.push(x, &den, lv.sigma[i]);
        let c = weights(&StepAt {
            i,
            k: eps.len(),
            times: &lv.t,
            sigmas: &lv.sigma,
            sde,
        });
        eps.add_to(x, &c);
    })
}

/// A multistep method: its name, its orders and its weights c_ij.
pub trait Weights: Send + Sync + 'static {
    const INFO: Info;
    /// Default order and the largest one (orders are 1 ..= `MAX_ORDER`).
    const ORDERS: (usize, usize);

    /// Display label, by default `label(N)` at the default order, else
    /// `label(N, order=k)`.
    fn label(order: usize, steps: usize) -> String {
        let name = Self::INFO.label;
        match order == Self::ORDERS.0 {
            true => format!("{name}({steps})"),
            false => format!("{name}({steps}, order={order})"),
        }
    }

    /// c_i0 … c_i(k−1), newest slope first.
    fn weights(s: &StepAt) -> Vec<f64>;
}

/// The [`Rule`] of a multistep method `W` of order `order` (key `order`).
pub struct Multistep<W> {
    pub order: usize,
    method: PhantomData<fn() -> W>,
}

impl<W: Weights> Multistep<W> {
    /// The method of order `order`.
    pub fn of_order(order: usize) -> Self {
        Multistep {
            order,
            method: PhantomData,
        }
    }
}

impl<W: Weights> Default for Multistep<W> {
    fn default() -> Self {
        Multistep::of_order(W::ORDERS.0)
    }
}

impl<W> Clone for Multistep<W> {
    fn clone(&self) -> Self {
        Multistep {
            order: self.order,
            method: PhantomData,
        }
    }
}

impl<W: Weights> std::fmt::Debug for Multistep<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(order={})", W::INFO.spec, self.order)
    }
}

impl<W: Weights> Rule for Multistep<W> {
    const INFO: Info = W::INFO;

    fn parse(p: &mut Params) -> Result<Self> {
        Ok(Multistep::of_order(p.usize("order", W::ORDERS.0)?))
    }

    fn spec(&self, w: SpecWriter) -> SpecWriter {
        w.usize("order", self.order, W::ORDERS.0)
    }

    fn label(&self, steps: usize, _: &Schedule) -> String {
        W::label(self.order, steps)
    }

    fn check(&self) -> Result<()> {
        let max = W::ORDERS.1;
        if !(1..=max).contains(&self.order) {
            let range = format!("1 <= order <= {max}");
            return Err(Error::invalid("order", self.order, range));
        }
        Ok(())
    }

    fn run(
        &self,
        ctx: &mut Ctx,
        x: &mut Array2<f32>,
        (sch, steps): (&Schedule, usize),
    ) -> Result<()> {
        run_multistep(ctx, x, (sch, steps, self.order), W::weights)
    }
}
