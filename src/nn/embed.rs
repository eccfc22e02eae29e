//! Sinusoidal time embedding (Transformer / DDPM style), as in
//! `shared/bench/SPEC.md`.
//!
//! ```text
//!   half = emb_dim / 2                       (16 for emb_dim = 32)
//!   f_k  = exp(-ln(10000) · k / half),       k = 0 .. half-1
//!   emb(t) = [sin(1000 t f_k)]_k ++ [cos(1000 t f_k)]_k
//! ```
//!
//! The angle `1000 t f_k` and its sine/cosine are computed in f64 and the
//! result is rounded to f32 once.

/// Scale applied to t ∈ [0, 1] before the sinusoids (SPEC: 1000).
pub const TIME_SCALE: f64 = 1000.0;

/// Frequency f_k = exp(-ln(10000) · k / half) of sinusoid `k`.
pub fn frequency(k: usize, half: usize) -> f64 {
    (-(10000.0f64).ln() * k as f64 / half as f64).exp()
}

/// Write emb(t) into `out` (length `emb_dim`, even): `out[k] = sin(1000 t f_k)`,
/// `out[half + k] = cos(1000 t f_k)`. An odd trailing slot (never produced by
/// a validated config) is set to 0.
pub fn time_embedding(t: f64, out: &mut [f32]) {
    let half = out.len() / 2;
    for k in 0..half {
        let angle = TIME_SCALE * t * frequency(k, half);
        let (s, c) = angle.sin_cos();
        out[k] = s as f32;
        out[half + k] = c as f32;
    }
    if out.len() % 2 == 1 {
        out[2 * half] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_matches_spec_values() {
        let mut e = [0f32; 32];
        time_embedding(0.0, &mut e);
        assert!(e[..16].iter().all(|&v| v == 0.0));
        assert!(e[16..].iter().all(|&v| v == 1.0));
        time_embedding(0.25, &mut e);
        // k = 0: f_0 = 1, angle = 250.
        assert_eq!(e[0], 250f64.sin() as f32);
        assert_eq!(e[16], 250f64.cos() as f32);
        // k = 8: f_8 = 10000^(-1/2) = 0.01, angle = 2.5.
        assert!((e[8] as f64 - 2.5f64.sin()).abs() < 1e-7);
        assert!((e[24] as f64 - 2.5f64.cos()).abs() < 1e-7);
    }
}
