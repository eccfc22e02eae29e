//! The exponential-integrator functions φ_k of the data-prediction solvers
//! (DPM-Solver++ 3M / 2M SDE, UniPC).

/// φ_k(z) = Σ_{j≥0} z^j / (j + k)! (φ_0 = e^z, φ_{k+1}(z) = (φ_k(z) − 1/k!)/z),
/// by its Taylor series for |z| < 1 (no cancellation) and by the recurrence
/// from e^z − 1 (`exp_m1`) otherwise. With z = −h:
/// 1 − e^{−h} = h φ_1(−h), e^{−h} − 1 + h = h² φ_2(−h).
pub(crate) fn phi(k: usize, z: f64) -> f64 {
    if z.abs() < 1.0 {
        // Terms z^j/(j+k)!, 30 terms: error < 1/30! for |z| < 1.
        let mut term = 1.0 / (1..=k).map(|i| i as f64).product::<f64>();
        let mut sum = term;
        for j in 1..30 {
            term *= z / (j + k) as f64;
            sum += term;
        }
        return sum;
    }
    if k == 0 {
        return z.exp();
    }
    // φ_1 = (e^z − 1)/z, then φ_{m+1} = (φ_m − 1/m!)/z.
    let mut p = z.exp_m1() / z;
    let mut fact = 1.0;
    for m in 1..k {
        fact *= m as f64;
        p = (p - 1.0 / fact) / z;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_matches_closed_forms_on_both_branches() {
        // Closed forms where their own cancellation is small (relative
        // rounding ~1e-16 / |z|^k for φ_k).
        for z in [-3.0f64, -1.5, -1.0, -0.999, -0.3, -1e-2, 0.5, 0.999, 2.0] {
            let want = [
                z.exp(),
                z.exp_m1() / z,
                (z.exp_m1() - z) / (z * z),
                (z.exp_m1() - z - 0.5 * z * z) / (z * z * z),
            ];
            for (k, w) in want.iter().enumerate() {
                let tol = 1e-13 + 1e-15 / z.abs().powi(k as i32);
                let got = phi(k, z);
                assert!(
                    (got - w).abs() <= tol * w.abs(),
                    "phi_{k}({z}) {got} vs {w}"
                );
            }
        }
        // Tiny z: the series' first two terms, 1/k! + z/(k+1)!.
        for z in [1e-8, -1e-8, 0.0] {
            for (k, (a, b)) in [(1.0, 0.5), (0.5, 1.0 / 6.0), (1.0 / 6.0, 1.0 / 24.0)]
                .iter()
                .enumerate()
            {
                let want = a + z * b;
                assert!((phi(k + 1, z) - want).abs() < 1e-16, "phi_{}({z})", k + 1);
            }
        }
    }
}
