//! The closed-form marginals p_t(x | x0) = N(alpha(t) x0, sigma(t)² I) against
//! a fine Euler–Maruyama simulation of the forward SDE dx = f(t) x dt + g(t) dw,
//! and the discrete DDPM schedule against the VP SDE it discretises.

use rand_distr::{Distribution, StandardNormal};
use scoresde::rng;
use scoresde::sde::{DiscreteSchedule, SdeConfig};

/// Simulate `paths` scalar forward paths from x0 with `steps` EM steps to each
/// checkpoint time; compare sample mean and variance with alpha(t) x0 and
/// sigma(t)² within 4 standard errors (SE(mean) = sigma/sqrt(n),
/// SE(var) = sigma² sqrt(2/(n−1))) plus the O(dt) bias of EM (< 1e-3 here).
#[test]
fn forward_sde_matches_closed_form_marginal() {
    let paths = 20_000;
    let x0 = 1.5_f64;
    let dt = 1e-4;
    for name in ["vp", "subvp", "ve"] {
        let sde = SdeConfig::by_name(name).unwrap().build().unwrap();
        let mut rngs: Vec<_> = (0..paths).map(|i| rng::stream(11, 0, i as u64)).collect();
        let mut x = vec![x0; paths];
        let mut t = 0.0;
        for &t_check in &[0.05, 0.3, 1.0] {
            while t < t_check - 1e-12 {
                let (f, g) = (sde.drift_coef(t), sde.diffusion(t));
                for (xv, r) in x.iter_mut().zip(rngs.iter_mut()) {
                    let z: f64 = StandardNormal.sample(r);
                    *xv += f * *xv * dt + g * dt.sqrt() * z;
                }
                t += dt;
            }
            let n = paths as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let (a, s) = (sde.alpha(t_check), sde.sigma(t_check));
            let se_mean = s / n.sqrt();
            let se_var = s * s * (2.0 / (n - 1.0)).sqrt();
            let bias = 1e-3 * (1.0 + s * s);
            assert!(
                (mean - a * x0).abs() < 4.0 * se_mean + bias,
                "{name} t={t_check}: mean {mean} vs {}",
                a * x0
            );
            assert!(
                (var - s * s).abs() < 4.0 * se_var + bias,
                "{name} t={t_check}: var {var} vs {}",
                s * s
            );
        }
    }
}

/// ln alpha_bar_i of the linear schedule differs from −∫_0^{t_i} beta by O(1/N):
/// doubling N halves the worst error.
#[test]
fn discrete_schedule_converges_to_vp_sde_at_first_order() {
    let sde = SdeConfig::by_name("vp").unwrap().build().unwrap();
    let worst = |n: usize| {
        let sched = DiscreteSchedule::vp_linear(n, 0.1, 20.0).unwrap();
        (0..n)
            .map(|i| {
                let exact = 2.0 * sde.alpha(sched.time(i)).ln();
                (sched.alpha_bars[i].ln() - exact).abs()
            })
            .fold(0.0, f64::max)
    };
    let (e1, e2, e4) = (worst(500), worst(1000), worst(2000));
    // Leading term: ln(1 − beta) ≈ −beta − beta²/2, so the gap is ≈ ½ Σ beta_i²
    // ≈ ∫ beta² dt / (2N) ≈ 0.067 at N = 1000.
    assert!(e2 < 0.08, "error at N=1000 is {e2}");
    for (coarse, fine) in [(e1, e2), (e2, e4)] {
        let ratio = fine / coarse;
        assert!(
            (0.4..0.6).contains(&ratio),
            "error ratio {ratio} is not first order"
        );
    }
}
