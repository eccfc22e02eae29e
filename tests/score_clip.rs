//! `ClipX0`: the score adapter that clips the denoised estimate x̂0 to the
//! data range. It must leave in-range elements untouched, put clipped ones
//! on the bound, leave an exact in-range score's samples alone, and keep a
//! wrong model's deterministic samples inside the range.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::{ClipX0, GaussianScore, Score};
use scoresde::sde::{Sde, VpSde};

fn gaussian(mu: [f64; 2], s: f64) -> GaussianScore<VpSde> {
    GaussianScore {
        sde: VpSde::default(),
        mu: mu.to_vec(),
        s,
    }
}

/// A score model whose ε̂ is off by a constant `bias` at every x and t:
/// s = s_exact − bias/sigma(t).
struct Biased<'a> {
    inner: &'a dyn Score,
    sde: VpSde,
    bias: f64,
}

impl Score for Biased<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.inner.score(x, t, out.view_mut());
        let shift = (self.bias / self.sde.sigma(t)) as f32;
        out.mapv_inplace(|v| v - shift);
    }
}

fn x0_of(sde: &VpSde, x: f32, s: f32, t: f64) -> f64 {
    let (a, sg) = (sde.alpha(t), sde.sigma(t));
    (x as f64 + sg * sg * s as f64) / a
}

#[test]
fn in_range_elements_are_untouched_and_the_rest_land_on_the_bound() {
    let sde = VpSde::default();
    // Coordinate 1's data sit at 3, far outside [-1, 1]: clipped at most t.
    let inner = gaussian([0.0, 3.0], 0.1);
    let clip = ClipX0 {
        inner: &inner,
        sde: &sde,
        clip: 1.0,
    };
    let x = Array2::from_shape_fn((41, 2), |(i, j)| (i as f32 - 20.0) * 0.15 + j as f32);
    let (mut clipped_count, mut kept_count) = (0, 0);
    for t in [sde.t_eps(), 0.01, 0.3, 0.7, 1.0] {
        let mut s = Array2::zeros(x.raw_dim());
        let mut sc = Array2::zeros(x.raw_dim());
        inner.score(x.view(), t, s.view_mut());
        clip.score(x.view(), t, sc.view_mut());
        for ((&xv, &sv), &scv) in x.iter().zip(&s).zip(&sc) {
            let x0 = x0_of(&sde, xv, sv, t);
            if x0.abs() <= 1.0 {
                assert_eq!(
                    sv.to_bits(),
                    scv.to_bits(),
                    "t {t} x {xv}: changed in range"
                );
                kept_count += 1;
            } else {
                let x0c = x0_of(&sde, xv, scv, t);
                assert!(
                    (x0c - x0.signum()).abs() < 1e-3,
                    "t {t} x {xv}: x̂0 {x0} clipped to {x0c}"
                );
                clipped_count += 1;
            }
        }
    }
    assert!(
        clipped_count > 50 && kept_count > 50,
        "{clipped_count} / {kept_count}"
    );
}

#[test]
fn an_exact_score_inside_the_range_is_almost_never_clipped() {
    // Data N((0.3, -0.2), 0.2² I) lie inside [-1, 1] (3.5 SD from the edge):
    // the exact posterior mean x̂0 leaves the range only in the rare tail,
    // so DDIM gives the same samples, row for row, with and without clipping.
    let sde = VpSde::default();
    let n = 4000;
    let inner = gaussian([0.3, -0.2], 0.2);
    let clip = ClipX0 {
        inner: &inner,
        sde: &sde,
        clip: 1.0,
    };
    let ddim = by_name("ddim", 100).unwrap();
    let opts = SampleOptions::new(n, 3);
    let plain = sample(ddim.as_ref(), &sde, &inner, &opts).unwrap().samples;
    let clipped = sample(ddim.as_ref(), &sde, &clip, &opts).unwrap().samples;
    let differing = plain
        .rows()
        .into_iter()
        .zip(clipped.rows())
        .filter(|(a, b)| a != b)
        .count();
    // P(|x0 − mu| > 3.5 s) per coordinate is 4.7e-4: about 4 of 8,000.
    assert!(differing <= 20, "{differing} of {n} rows changed");
}

#[test]
fn clipping_keeps_a_biased_model_inside_the_range() {
    // A model whose ε̂ is off by 0.5 everywhere throws DDIM's samples out of
    // [-1, 1]; with x̂0 clipped, the last step lands within
    // alpha(ε)·1 + sigma(ε)·|ε̂| of the range.
    let sde = VpSde::default();
    let exact = gaussian([0.3, -0.2], 0.2);
    let bad = Biased {
        inner: &exact,
        sde,
        bias: 0.5,
    };
    let clipped = ClipX0 {
        inner: &bad,
        sde: &sde,
        clip: 1.0,
    };
    let ddim = by_name("ddim", 50).unwrap();
    let opts = SampleOptions::new(2000, 5);
    let max_abs = |x: &Array2<f32>| x.iter().fold(0f32, |m, &v| m.max(v.abs()));
    let raw = max_abs(&sample(ddim.as_ref(), &sde, &bad, &opts).unwrap().samples);
    let fixed = max_abs(
        &sample(ddim.as_ref(), &sde, &clipped, &opts)
            .unwrap()
            .samples,
    );
    assert!(
        raw > 1.5,
        "the biased model stayed in range ({raw}): no test"
    );
    assert!(fixed <= 1.1, "clipped samples leave the range: {fixed}");
}
