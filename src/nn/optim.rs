//! Optimiser and parameter averaging on flat parameter vectors.

use rayon::prelude::*;

use crate::backend::simd::dispatch_simd;
use crate::error::{Error, Result};

/// Adam (Kingma & Ba), PyTorch's `torch.optim.Adam` with
/// `weight_decay = 0`, `amsgrad = False`. At step k = 1, 2, …:
///
/// ```text
///   m ← m + (1 − β₁)(g − m)                 (= β₁ m + (1 − β₁) g; PyTorch's lerp)
///   v ← β₂ v + (1 − β₂) g²
///   step_size = lr / (1 − β₁^k)
///   denom     = √v · (1 / √(1 − β₂^k)) + eps
///   θ ← θ − step_size · m / denom
/// ```
///
/// The bias corrections are computed in f64 (PyTorch computes them as Python
/// floats) and rounded to f32 once per step. Per element the operations are
/// PyTorch's (`lerp_`, `mul_().addcmul_()`, `sqrt() / c + eps`,
/// `addcdiv_(m, denom, value = −step_size)`) with three multiply-adds fused
/// (`m`, `v` and `denom` each take one FMA) and the division by
/// `√(1 − β₂^k)` replaced by a multiplication with its reciprocal: one
/// division and one square root per element instead of two divisions and
/// a square root, which halves the time of the update (the divider, not
/// memory, bounded it). The results differ from PyTorch's in the last bits
/// only.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// First moment m, flat parameter layout.
    pub m: Vec<f32>,
    /// Second moment v, flat parameter layout.
    pub v: Vec<f32>,
    /// Number of updates done so far (k of the last update).
    pub step: u64,
}

impl Adam {
    /// Adam with β₁ = 0.9, β₂ = 0.999, eps = 1e-8 and zero moments for
    /// `n_params` parameters.
    pub fn new(lr: f64, n_params: usize) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
            step: 0,
        }
    }

    /// Restore saved state (moments and step count), checking lengths.
    pub fn set_state(&mut self, m: &[f32], v: &[f32], step: u64) -> Result<()> {
        if m.len() != self.m.len() || v.len() != self.v.len() {
            return Err(Error::Mismatch(format!(
                "Adam state has {} / {} values, expected {}",
                m.len(),
                v.len(),
                self.m.len()
            )));
        }
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        self.step = step;
        Ok(())
    }

    /// One Adam step: `params ← params − step_size · m / denom` (see the type
    /// docs). Panics if the slices do not match the state length.
    pub fn update(&mut self, params: &mut [f32], grads: &[f32]) {
        self.step_impl(params, grads, None);
    }

    /// [`Adam::update`] and then [`Ema::update`] with the new parameters, in
    /// one pass over the five arrays (element by element, so the same bits
    /// as the two calls in turn). Returns `false` if any new parameter or
    /// EMA value is NaN or ±∞. Panics on mismatched lengths.
    pub fn update_with_ema(&mut self, params: &mut [f32], grads: &[f32], ema: &mut Ema) -> bool {
        assert_eq!(
            ema.shadow.len(),
            self.m.len(),
            "EMA: shadow length differs from Adam state"
        );
        let e = EmaConsts::new(ema.decay);
        self.step_impl(params, grads, Some((&mut ema.shadow, e)))
    }

    /// The shared update; returns whether every new parameter (and shadow
    /// value, with `ema`) is finite.
    fn step_impl(
        &mut self,
        params: &mut [f32],
        grads: &[f32],
        ema: Option<(&mut [f32], EmaConsts)>,
    ) -> bool {
        assert_eq!(
            params.len(),
            self.m.len(),
            "Adam: params length differs from state"
        );
        assert_eq!(
            grads.len(),
            self.m.len(),
            "Adam: grads length differs from state"
        );
        self.step += 1;
        let k = self.step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - self.beta1.powi(k);
        let bc2 = 1.0 - self.beta2.powi(k);
        let c = AdamConsts {
            w1: (1.0 - self.beta1) as f32,
            b2: self.beta2 as f32,
            w2: (1.0 - self.beta2) as f32,
            inv_bc2_sqrt: (1.0 / bc2.sqrt()) as f32,
            eps: self.eps as f32,
            step_size: (self.lr / bc1) as f32,
        };
        let (m, v) = (&mut self.m[..], &mut self.v[..]);
        let (shadow, e) = ema.unzip();
        let run =
            |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: Option<&mut [f32]>| {
                let mut worst = 0u32;
                adam_dispatch(p, g, m, v, c, s.zip(e), &mut worst);
                worst < 0x7f80_0000
            };
        let serial = rayon::current_num_threads() == 1 || params.len() <= PAR_ELEMS;
        match shadow {
            s if serial => run(params, grads, m, v, s),
            // Elementwise, so splitting into chunks gives the same bits for
            // any thread count.
            None => params
                .par_chunks_mut(PAR_ELEMS)
                .zip(grads.par_chunks(PAR_ELEMS))
                .zip(m.par_chunks_mut(PAR_ELEMS).zip(v.par_chunks_mut(PAR_ELEMS)))
                .map(|((p, g), (m, v))| run(p, g, m, v, None))
                .reduce(|| true, |a, b| a && b),
            Some(s) => params
                .par_chunks_mut(PAR_ELEMS)
                .zip(grads.par_chunks(PAR_ELEMS))
                .zip(m.par_chunks_mut(PAR_ELEMS).zip(v.par_chunks_mut(PAR_ELEMS)))
                .zip(s.par_chunks_mut(PAR_ELEMS))
                .map(|(((p, g), (m, v)), s)| run(p, g, m, v, Some(s)))
                .reduce(|| true, |a, b| a && b),
        }
    }
}

/// Index of the first NaN or ±∞ in `x`, `None` when every value is finite.
///
/// Scans 256-value chunks with a branch-free maximum of `|bits|` (finite
/// exactly when `bits & 0x7fff_ffff < 0x7f800000`), which vectorises; only
/// a failing chunk is searched element by element.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    if rayon::current_num_threads() == 1 || x.len() <= PAR_ELEMS {
        let mut found = None;
        find_dispatch(x, &mut found);
        return found;
    }
    // Chunks searched as rayon tasks; the first chunk with a hit wins, so
    // the answer is the same for any thread count.
    x.par_chunks(PAR_ELEMS)
        .enumerate()
        .find_map_first(|(c, chunk)| {
            let mut found = None;
            find_dispatch(chunk, &mut found);
            found.map(|i| c * PAR_ELEMS + i)
        })
}

fn find_dispatch(x: &[f32], found: &mut Option<usize>) {
    dispatch_simd!(find_generic(x, found))
}

#[inline(always)]
fn find_generic(x: &[f32], found: &mut Option<usize>) {
    const CHUNK: usize = 256;
    *found = x.chunks(CHUNK).enumerate().find_map(|(c, chunk)| {
        let worst = chunk
            .iter()
            .fold(0u32, |acc, v| acc.max(v.to_bits() & 0x7fff_ffff));
        if worst < 0x7f80_0000 {
            return None;
        }
        chunk
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| c * CHUNK + i)
    });
}

/// Elements per rayon task in the optimiser and EMA updates.
const PAR_ELEMS: usize = 1 << 14;

fn adam_dispatch(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: AdamConsts,
    ema: Option<(&mut [f32], EmaConsts)>,
    worst: &mut u32,
) {
    dispatch_simd!(adam_kernel(params, grads, m, v, c, ema, worst))
}

#[derive(Clone, Copy)]
struct AdamConsts {
    w1: f32,
    b2: f32,
    w2: f32,
    inv_bc2_sqrt: f32,
    eps: f32,
    step_size: f32,
}

/// `decay` and `1 − decay` in f32, as [`Ema::update`] uses them.
#[derive(Clone, Copy)]
struct EmaConsts {
    d: f32,
    w: f32,
}

impl EmaConsts {
    fn new(decay: f64) -> Self {
        EmaConsts {
            d: decay as f32,
            w: (1.0 - decay) as f32,
        }
    }
}

/// The Adam update of every element (then the EMA of the new value, when
/// given); `worst` receives the largest `|bits|` of the new values, so
/// `worst < 0x7f80_0000` exactly when all are finite.
#[inline(always)]
fn adam_kernel(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: AdamConsts,
    ema: Option<(&mut [f32], EmaConsts)>,
    worst: &mut u32,
) {
    let adam = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
        *m = c.w1.mul_add(g - *m, *m);
        *v = c.b2.mul_add(*v, c.w2 * g * g);
        let denom = v.sqrt().mul_add(c.inv_bc2_sqrt, c.eps);
        *p += (-c.step_size * *m) / denom;
    };
    let mut acc = 0u32;
    match ema {
        None => {
            for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
                adam(p, g, m, v);
                acc = acc.max(p.to_bits() & 0x7fff_ffff);
            }
        }
        Some((shadow, e)) => {
            let it = params.iter_mut().zip(grads).zip(m).zip(v).zip(shadow);
            for ((((p, &g), m), v), s) in it {
                adam(p, g, m, v);
                *s = e.d * *s + e.w * *p;
                acc = acc
                    .max(p.to_bits() & 0x7fff_ffff)
                    .max(s.to_bits() & 0x7fff_ffff);
            }
        }
    }
    *worst = acc;
}

/// Exponential moving average of parameters:
/// `shadow ← decay · shadow + (1 − decay) · params`, with `shadow` starting
/// at the initial parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Ema {
    pub decay: f64,
    pub shadow: Vec<f32>,
}

impl Ema {
    /// EMA starting at `params`.
    pub fn new(decay: f64, params: &[f32]) -> Self {
        Ema {
            decay,
            shadow: params.to_vec(),
        }
    }

    /// Restore a saved shadow, checking its length.
    pub fn set_shadow(&mut self, shadow: &[f32]) -> Result<()> {
        if shadow.len() != self.shadow.len() {
            return Err(Error::Mismatch(format!(
                "EMA shadow has {} values, expected {}",
                shadow.len(),
                self.shadow.len()
            )));
        }
        self.shadow.copy_from_slice(shadow);
        Ok(())
    }

    /// `shadow ← decay · shadow + (1 − decay) · params`.
    pub fn update(&mut self, params: &[f32]) {
        assert_eq!(
            params.len(),
            self.shadow.len(),
            "EMA: params length differs"
        );
        let EmaConsts { d, w } = EmaConsts::new(self.decay);
        let kernel = |shadow: &mut [f32], params: &[f32]| {
            for (s, &p) in shadow.iter_mut().zip(params) {
                *s = d * *s + w * p;
            }
        };
        if rayon::current_num_threads() == 1 || params.len() <= PAR_ELEMS {
            kernel(&mut self.shadow, params);
            return;
        }
        self.shadow
            .par_chunks_mut(PAR_ELEMS)
            .zip(params.par_chunks(PAR_ELEMS))
            .for_each(|(s, p)| kernel(s, p));
    }
}

#[cfg(test)]
mod tests {
    use super::{first_non_finite, Adam, Ema};

    /// The fused pass gives the bits of `Adam::update` then `Ema::update`,
    /// serial and split across threads, and reports overflow.
    #[test]
    fn update_with_ema_equals_the_two_updates() {
        let n = 3 * super::PAR_ELEMS + 17;
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 1e-2).collect();
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (mut a1, mut a2) = (Adam::new(1e-3, n), Adam::new(1e-3, n));
                let (mut e1, mut e2) = (Ema::new(0.999, &p0), Ema::new(0.999, &p0));
                let (mut p1, mut p2) = (p0.clone(), p0.clone());
                for _ in 0..3 {
                    a1.update(&mut p1, &g);
                    e1.update(&p1);
                    assert!(a2.update_with_ema(&mut p2, &g, &mut e2));
                }
                assert_eq!(p1, p2);
                assert_eq!(e1.shadow, e2.shadow);
                assert_eq!(a1, a2);
                // A learning rate that overflows weights is reported (the
                // gradients have both signs, so some steps go up).
                a2.lr = 1e38;
                p2.fill(3e38);
                assert!(!a2.update_with_ema(&mut p2, &g, &mut e2));
            });
        }
    }

    /// The update compiled for the widest vector unit (hardware FMA) gives
    /// the bits of the baseline build (`mul_add` in software).
    #[test]
    fn dispatched_update_matches_baseline_bits() {
        let n = 1000;
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 1e-2).collect();
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let c = super::AdamConsts {
            w1: 0.1,
            b2: 0.999,
            w2: 1e-3,
            inv_bc2_sqrt: 3.7,
            eps: 1e-8,
            step_size: 1.3e-3,
        };
        let e = super::EmaConsts::new(0.999);
        let mut state = [
            p0.clone(),
            g.iter().map(|x| x * 0.5).collect(),
            vec![1e-6; n],
            p0.clone(),
        ];
        let mut twin = state.clone();
        for _ in 0..3 {
            let [p, m, v, s] = &mut state;
            let mut w1 = 0;
            super::adam_dispatch(p, &g, m, v, c, Some((s, e)), &mut w1);
            let [p, m, v, s] = &mut twin;
            let mut w2 = 0;
            super::adam_kernel(p, &g, m, v, c, Some((s, e)), &mut w2);
            assert_eq!(w1, w2);
        }
        assert_ne!(state[0], p0, "the parameters moved");
        for (a, b) in state.iter().zip(&twin) {
            assert_eq!(a, b);
        }
    }

    #[test]
    fn first_non_finite_finds_the_first_bad_value_anywhere() {
        let edge = [f32::MAX, -f32::MAX, f32::MIN_POSITIVE, 1e-45, -0.0, 0.0];
        let mut x: Vec<f32> = (0..1000).map(|i| edge[i % edge.len()]).collect();
        assert_eq!(first_non_finite(&x), None);
        assert_eq!(first_non_finite(&[]), None);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
            for at in [0, 255, 256, 511, 999] {
                let keep = x[at];
                x[at] = bad;
                assert_eq!(first_non_finite(&x), Some(at), "{bad} at {at}");
                // A later bad value does not hide the first one.
                x[999] = f32::NAN;
                assert_eq!(first_non_finite(&x), Some(at), "{bad} at {at}");
                x[999] = edge[999 % edge.len()];
                x[at] = keep;
            }
        }
    }
}
