//! Inpainting 8×8 digits with the exact empirical score: the known pixels
//! are kept; where the visible half identifies one training image, the
//! exact conditional (`KnownPixelsScore`) completes to that image, and
//! RePaint does so at least as often as replacement (both approximate the
//! conditional score from the noisy visible half, so they fall short of it:
//! measured 6/9 and 2/9 here).

use std::path::Path;

use scoresde::data::images::load_digits_csv;
use scoresde::guidance::{repaint, Mask, RepaintOptions, Replacement};
use scoresde::oracle::{EmpiricalScore, KnownPixelsScore};
use scoresde::prelude::*;

fn sq(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

#[test]
fn empirical_inpainting_keeps_known_pixels_and_finds_the_image() {
    let set =
        load_digits_csv(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits/digits.csv.gz"))
            .unwrap();
    let data = set.pixels.clone();
    let cfg = SdeConfig::by_name("vp").unwrap();
    let oracle = EmpiricalScore::new(data.view(), &cfg).unwrap();
    let sde = VpSde::default();
    let mask = Mask::parse("bottom", 1, 8, 8, 0).unwrap();
    let known = mask.known_indices();
    let sampler = by_name("em", 200).unwrap();
    let rows: Vec<Vec<f32>> = data.outer_iter().map(|r| r.to_vec()).collect();
    let visible = |a: &[f32], b: &[f32]| -> f64 {
        known.iter().map(|&j| ((a[j] - b[j]) as f64).powi(2)).sum()
    };
    let (mut cases, mut hit_exact, mut hit_rep, mut hit_rp) = (0, 0, 0, 0);
    for i in (0..data.nrows()).step_by(45) {
        let x0 = &rows[i];
        // Identified: every other image's visible half is at squared
        // distance > 2 (one pixel off by more than 1.4 of the range 2).
        let second = (0..rows.len())
            .filter(|&j| j != i && rows[j] != *x0)
            .map(|j| visible(&rows[j], x0))
            .fold(f64::INFINITY, f64::min);
        if second <= 2.0 {
            continue;
        }
        cases += 1;
        // The exact posterior puts all its weight on image i (and exact copies).
        let exact = KnownPixelsScore::new(&oracle, &mask, x0, 0.0).unwrap();
        let post = exact.posterior();
        assert!((0..rows.len())
            .filter(|&j| post[j] > 0.0)
            .all(|j| rows[j] == *x0));
        let nearest = |c: &[f32]| -> usize {
            (0..rows.len())
                .min_by(|&a, &b| sq(&rows[a], c).total_cmp(&sq(&rows[b], c)))
                .unwrap()
        };
        // Sampling the exact conditional score completes to the image.
        let ex = sample(
            sampler.as_ref(),
            &sde,
            &exact,
            &SampleOptions::new(1, i as u64),
        )
        .unwrap();
        hit_exact += usize::from(rows[nearest(ex.samples.row(0).as_slice().unwrap())] == *x0);
        let imp = Replacement::new(&oracle, &sde, &mask, x0).unwrap();
        let mut out = sample(
            sampler.as_ref(),
            &sde,
            &imp,
            &SampleOptions::new(1, i as u64),
        )
        .unwrap();
        imp.paste(out.samples.view_mut());
        let mut o = RepaintOptions::replacement(100, 1, i as u64);
        (o.jump, o.resample) = (10, 3);
        let rp = repaint(&oracle, &sde, &mask, x0, &o).unwrap();
        for c in [out.samples.row(0).to_vec(), rp.samples.row(0).to_vec()] {
            let err = known
                .iter()
                .map(|&j| (c[j] - x0[j]).abs())
                .fold(0f32, f32::max);
            assert!(err <= 2e-3, "image {i}: known pixels moved by {err}");
        }
        hit_rep += usize::from(rows[nearest(out.samples.row(0).as_slice().unwrap())] == *x0);
        hit_rp += usize::from(rows[nearest(rp.samples.row(0).as_slice().unwrap())] == *x0);
    }
    eprintln!(
        "{cases} identified images: exact {hit_exact}, replacement {hit_rep}, RePaint {hit_rp}"
    );
    assert!(cases >= 5, "only {cases} identified images");
    assert!(
        hit_exact as f64 >= 0.95 * cases as f64,
        "exact conditional {hit_exact}/{cases}"
    );
    assert!(
        hit_rp >= hit_rep,
        "RePaint {hit_rp} < replacement {hit_rep} of {cases}"
    );
}
