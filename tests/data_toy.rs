//! Toy data sets: shape, finiteness, determinism, prefix property, bounding
//! boxes, and the checkerboard's support and marginals (docs/SPEC.md definition).

use ndarray::{s, Array2};
use scoresde::data::Toy;

fn max_abs(x: &Array2<f32>) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn col_std(x: &Array2<f32>, j: usize) -> f64 {
    let c: Vec<f64> = x.column(j).iter().map(|&v| v as f64).collect();
    let m = c.iter().sum::<f64>() / c.len() as f64;
    (c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / c.len() as f64).sqrt()
}

#[test]
fn every_set_is_finite_well_shaped_and_inside_a_sensible_box() {
    for toy in Toy::ALL {
        let x = toy.sample(5000, 7);
        assert_eq!(x.shape(), &[5000, 2], "{toy}");
        assert!(x.iter().all(|v| v.is_finite()), "{toy}: non-finite value");
        let bound = if toy == Toy::Checkerboard { 4.0 } else { 6.0 };
        assert!(
            max_abs(&x) <= bound,
            "{toy}: |x| = {} > {bound}",
            max_abs(&x)
        );
        // Not collapsed and not wildly spread: each coordinate's std in [0.5, 4].
        for j in 0..2 {
            let sd = col_std(&x, j);
            assert!((0.5..4.0).contains(&sd), "{toy}: std of column {j} = {sd}");
        }
    }
}

#[test]
fn draws_are_deterministic_per_seed_and_differ_across_seeds() {
    for toy in Toy::ALL {
        let a = toy.sample(300, 11);
        let b = toy.sample(300, 11);
        let c = toy.sample(300, 12);
        assert_eq!(a, b, "{toy}: same seed, different draws");
        assert_ne!(a, c, "{toy}: different seeds, same draws");
    }
}

#[test]
fn first_k_points_do_not_depend_on_n() {
    for toy in Toy::ALL {
        let small = toy.sample(50, 3);
        let large = toy.sample(1234, 3);
        assert_eq!(
            small,
            large.slice(s![..50, ..]),
            "{toy}: prefix changed with n"
        );
        assert_eq!(toy.sample(0, 3).shape(), &[0, 2]);
    }
}

#[test]
fn names_round_trip_and_unknown_names_list_the_valid_ones() {
    for toy in Toy::ALL {
        assert_eq!(Toy::from_name(toy.name()).unwrap(), toy);
    }
    let names: Vec<&str> = Toy::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "checkerboard",
            "moons",
            "swissroll",
            "8gaussians",
            "25gaussians",
            "rings",
            "spirals",
            "pinwheel"
        ]
    );
    let msg = Toy::from_name("checkers").unwrap_err().to_string();
    assert!(msg.contains("checkers"), "{msg}");
    for n in names {
        assert!(msg.contains(n), "error message does not list {n}: {msg}");
    }
}

#[test]
fn checkerboard_is_entirely_in_support_with_uniform_marginals_and_equal_cells() {
    let n = 100_000;
    let x = Toy::Checkerboard.sample(n, 2024);
    assert_eq!(Toy::Checkerboard.in_support_fraction(x.view()), Some(1.0));
    assert_eq!(Toy::Checkerboard.in_box_fraction(x.view()), Some(1.0));
    // Both marginals are U(-4, 4): mean 0, variance 64/12, and
    // Var(sample variance) ≈ (μ4 − σ⁴)/n with μ4 = 8⁴/80.
    let nf = n as f64;
    let var_u = 64.0 / 12.0;
    let se_mean = (var_u / nf).sqrt();
    let se_var = ((4096.0 / 80.0 - var_u * var_u) / nf).sqrt();
    for j in 0..2 {
        let c: Vec<f64> = x.column(j).iter().map(|&v| v as f64).collect();
        let m = c.iter().sum::<f64>() / nf;
        let v = c.iter().map(|t| (t - m) * (t - m)).sum::<f64>() / (nf - 1.0);
        assert!(
            m.abs() < 4.0 * se_mean,
            "column {j}: mean {m} (se {se_mean})"
        );
        assert!(
            (v - var_u).abs() < 4.0 * se_var,
            "column {j}: var {v} vs {var_u} (se {se_var})"
        );
    }
    // Each of the 8 occupied 2×2 cells holds 1/8 of the points.
    let mut counts = std::collections::HashMap::new();
    for r in x.rows() {
        let key = ((r[0] / 2.0).floor() as i32, (r[1] / 2.0).floor() as i32);
        *counts.entry(key).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 8, "cells: {counts:?}");
    let se = (nf * 0.125 * 0.875).sqrt();
    for (cell, c) in counts {
        assert!(
            (cell.0 + cell.1).rem_euclid(2) == 0,
            "point in off-support cell {cell:?}"
        );
        assert!((c as f64 - nf / 8.0).abs() < 4.0 * se, "cell {cell:?}: {c}");
    }
}

#[test]
fn checkerboard_support_rejects_other_sets_and_only_applies_to_the_checkerboard() {
    let cb = Toy::Checkerboard;
    // Hand-picked points: (X, Y) in support iff ⌊X/2⌋ + ⌊Y/2⌋ is even.
    let pts = ndarray::array![
        [1.0f32, 1.0],
        [-1.0, -1.0],
        [3.0, -3.0],
        [1.0, -1.0],
        [-3.0, 1.0],
        [4.5, 0.5]
    ];
    let f = cb.in_support_fraction(pts.view()).unwrap();
    assert!((f - 0.5).abs() < 1e-12, "fraction {f}");
    // The box [-4, 4)² counts the empty squares too: only (4.5, 0.5) is out.
    let f = cb.in_box_fraction(pts.view()).unwrap();
    assert!((f - 5.0 / 6.0).abs() < 1e-12, "box fraction {f}");
    let edges = ndarray::array![[-4.0f32, -4.0], [3.999, 0.0], [4.0, 0.0], [0.0, -4.001]];
    let f = cb.in_box_fraction(edges.view()).unwrap();
    assert!((f - 0.5).abs() < 1e-12, "box fraction at the edges {f}");
    let g = Toy::EightGaussians.sample(5000, 1);
    let f = cb.in_support_fraction(g.view()).unwrap();
    assert!(f < 0.8, "8 Gaussians scored {f} in the checkerboard");
    assert_eq!(Toy::TwoMoons.in_support_fraction(g.view()), None);
    assert_eq!(Toy::TwoMoons.in_box_fraction(g.view()), None);
}

#[test]
fn mixtures_exist_exactly_for_the_gaussian_sets_and_match_their_samples() {
    for toy in Toy::ALL {
        let gm = toy.mixture();
        match toy {
            Toy::EightGaussians | Toy::TwentyFiveGaussians => {
                let gm = gm.unwrap();
                assert_eq!(gm.sample(100, 5), toy.sample(100, 5), "{toy}");
            }
            _ => assert!(gm.is_none(), "{toy}"),
        }
    }
    let g8 = Toy::EightGaussians.mixture().unwrap();
    assert_eq!(g8.n_modes(), 8);
    for mu in &g8.means {
        let r = (mu[0] * mu[0] + mu[1] * mu[1]).sqrt();
        assert!((r - 2.0 * 2f64.sqrt()).abs() < 1e-12);
    }
    assert!((g8.std - 2f64.sqrt() / 4.0).abs() < 1e-15);
    let g25 = Toy::TwentyFiveGaussians.mixture().unwrap();
    assert_eq!(g25.n_modes(), 25);
    assert_eq!(g25.std, 0.2);
    assert!(g25.means.contains(&vec![-4.0, 2.0]));
}
