//! Quadrature of the multistep samplers: Gauss–Legendre rules and the
//! integrals of Lagrange basis polynomials (the Adams–Bashforth weights of
//! LMS / iPNDM-style methods in σ̃ and the tAB weights of DEIS in t).

use crate::sde::Sde;

/// Gauss–Legendre nodes and weights on [−1, 1] (Newton on P_n from the
/// Chebyshev-like first guesses; converges to rounding in a few steps).
pub(crate) fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            // P_n(x) and P_n'(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            let p = if n == 0 { 1.0 } else { p1 };
            let pm1 = if n == 1 { 1.0 } else { p0 };
            dp = n as f64 * (x * p - pm1) / (x * x - 1.0);
            let dx = p / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        out.push((x, 2.0 / ((1.0 - x * x) * dp * dp)));
    }
    out
}

/// The Lagrange basis polynomial ℓ_j of `nodes` at `x`.
pub(crate) fn lagrange(nodes: &[f64], j: usize, x: f64) -> f64 {
    nodes
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != j)
        .map(|(_, &xk)| (x - xk) / (nodes[j] - xk))
        .product()
}

/// ∫_a^b ℓ_j(x) dx for every j: the Adams–Bashforth weights of `nodes` over
/// [a, b]. ℓ_j has degree len − 1 ≤ 7, so the 4-point Gauss–Legendre rule
/// (exact to degree 7) gives it exactly up to rounding.
pub(crate) fn lagrange_integrals(nodes: &[f64], a: f64, b: f64) -> Vec<f64> {
    debug_assert!(nodes.len() <= 8);
    let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
    let gl = gauss_legendre(4);
    (0..nodes.len())
        .map(|j| {
            gl.iter()
                .map(|&(x, w)| w * lagrange(nodes, j, mid + half * x))
                .sum::<f64>()
                * half
        })
        .collect()
}

/// Widest panel, in u = ln σ̃, of [`weighted_lagrange_integrals`].
pub(crate) const PANEL_WIDTH: f64 = 0.25;

/// ∫ ℓ_j(t(σ̃)) dσ̃ from σ̃_a to σ̃_b for every j, where ℓ_j is the Lagrange
/// basis of the SDE times `nodes` and t(σ̃) the SDE time of a noise level
/// (the tAB weights of DEIS). Integrated in u = ln σ̃ as
/// ∫ ℓ_j(t(e^u)) e^u du by 8-point Gauss–Legendre on panels of width at most
/// [`PANEL_WIDTH`]. Why that is exact to rounding: on VE, t is linear in u and
/// the integrand is a polynomial times e^u, whose 16th derivative over a panel
/// of half-width 1/8 bounds the error by ~1e-25 relative; on VP, t(u) solves
/// a quadratic in softplus(2u) = ln(1 + e^{2u}), analytic for |Im u| < π/2,
/// so the panel's Bernstein ellipse has ρ ≈ 25 and the error is below
/// ρ^{−16} ≈ 1e-22 (sub-VP is alike).
/// (The unit test below checks both against refinement and a closed form.)
pub(crate) fn weighted_lagrange_integrals(
    sde: &dyn Sde,
    nodes: &[f64],
    sigma_a: f64,
    sigma_b: f64,
    panel_width: f64,
) -> Vec<f64> {
    let (ua, ub) = (sigma_a.ln(), sigma_b.ln());
    let panels = (((ub - ua).abs() / panel_width).ceil() as usize).max(1);
    let gl = gauss_legendre(8);
    let du = (ub - ua) / panels as f64;
    let mut out = vec![0.0; nodes.len()];
    for p in 0..panels {
        let mid = ua + (p as f64 + 0.5) * du;
        for &(x, w) in &gl {
            let u = mid + 0.5 * du * x;
            let t = sde.t_of_lambda(-u);
            let wu = w * 0.5 * du * u.exp();
            for (j, o) in out.iter_mut().enumerate() {
                *o += wu * lagrange(nodes, j, t);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{LinearBeta, SubVpSde, VeSde, VpSde};

    #[test]
    fn gauss_legendre_is_exact_to_degree_2n_minus_1() {
        for n in 1..=8 {
            let gl = gauss_legendre(n);
            for deg in 0..2 * n {
                let got: f64 = gl.iter().map(|&(x, w)| w * x.powi(deg as i32)).sum();
                let want = if deg % 2 == 1 {
                    0.0
                } else {
                    2.0 / (deg as f64 + 1.0)
                };
                assert!(
                    (got - want).abs() < 1e-14,
                    "n {n} deg {deg}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn adams_bashforth_weights_on_equal_steps() {
        // Nodes 0, −1, −2, −3 over [0, 1]: AB4's 55/24, −59/24, 37/24, −9/24.
        let w = lagrange_integrals(&[0.0, -1.0, -2.0, -3.0], 0.0, 1.0);
        for (g, want) in w.iter().zip([55.0, -59.0, 37.0, -9.0]) {
            assert!((g - want / 24.0).abs() < 1e-14, "{w:?}");
        }
        let w = lagrange_integrals(&[0.0, -1.0], 0.0, 1.0);
        assert!((w[0] - 1.5).abs() < 1e-15 && (w[1] + 0.5).abs() < 1e-15);
    }

    #[test]
    fn tab_weights_are_converged_and_exact_on_ve() {
        let beta = LinearBeta {
            beta_min: 0.1,
            beta_max: 20.0,
        };
        let sdes: Vec<Box<dyn Sde>> = vec![
            Box::new(VpSde::default()),
            Box::new(SubVpSde { beta, eps: 1e-3 }),
            Box::new(VeSde {
                sigma_min: 0.01,
                sigma_max: 50.0,
                eps: 1e-5,
            }),
        ];
        for sde in &sdes {
            let st = |t: f64| sde.sigma(t) / sde.alpha(t);
            for (nodes, a, b) in [
                (vec![0.5, 0.6, 0.7], 0.5, 0.4),
                (vec![1.0], 1.0, sde.t_eps()),
                (vec![0.01, 0.02, 0.03], 0.01, sde.t_eps()),
                (vec![0.9, 1.0], 0.9, 0.2),
            ] {
                let (sa, sb) = (st(a), st(b));
                let w = weighted_lagrange_integrals(sde.as_ref(), &nodes, sa, sb, PANEL_WIDTH);
                let fine =
                    weighted_lagrange_integrals(sde.as_ref(), &nodes, sa, sb, PANEL_WIDTH / 8.0);
                let scale = (sa - sb).abs();
                for (x, y) in w.iter().zip(&fine) {
                    assert!(
                        (x - y).abs() < 1e-12 * scale,
                        "{sde:?} {nodes:?}: {x} vs {y}"
                    );
                }
                // The weights sum to ∫ dσ̃ (the basis sums to 1).
                let sum: f64 = w.iter().sum();
                assert!(
                    (sum - (sb - sa)).abs() < 1e-12 * scale,
                    "{sum} vs {}",
                    sb - sa
                );
            }
        }
        // VP, independently in t: dσ̃/dt = g²/(2 alpha² σ̃), as d(σ̃²)/dt = g²/alpha².
        let vp = VpSde::default();
        let st = |t: f64| vp.sigma(t) / vp.alpha(t);
        let dst = |t: f64| vp.diffusion(t).powi(2) / (2.0 * vp.alpha(t).powi(2) * st(t));
        let (nodes, a, b) = ([0.3, 0.35, 0.42], 0.3, 0.25);
        let w = weighted_lagrange_integrals(&vp, &nodes, st(a), st(b), PANEL_WIDTH);
        let gl = gauss_legendre(8);
        for (j, wj) in w.iter().enumerate() {
            let (m, h) = (0.5 * (a + b), 0.5 * (b - a));
            let want: f64 = gl
                .iter()
                .map(|&(x, wx)| wx * h * lagrange(&nodes, j, m + h * x) * dst(m + h * x))
                .sum();
            assert!(
                (wj - want).abs() < 1e-12 * want.abs().max(1e-3),
                "{j}: {wj} vs {want}"
            );
        }
        // VE, one node pair: t(σ̃) = ln(σ̃/σ_min)/ln(σ_max/σ_min), so
        // ℓ_0(t) = (t − t1)/(t0 − t1) integrates in closed form.
        let ve = VeSde {
            sigma_min: 0.01,
            sigma_max: 50.0,
            eps: 1e-5,
        };
        let (t0, t1) = (0.6, 0.8);
        let (sa, sb) = (ve.sigma(0.6), ve.sigma(0.3));
        let k = (50.0f64 / 0.01).ln();
        // ∫ (ln(σ/σ_min)/k − t1) dσ = [σ (ln(σ/σ_min) − 1)/k − t1 σ].
        let prim = |s: f64| s * ((s / 0.01).ln() - 1.0) / k - t1 * s;
        let want = (prim(sb) - prim(sa)) / (t0 - t1);
        let w = weighted_lagrange_integrals(&ve, &[t0, t1], sa, sb, PANEL_WIDTH);
        assert!(
            (w[0] - want).abs() < 1e-12 * want.abs(),
            "{} vs {want}",
            w[0]
        );
    }
}
