//! Image metrics: Jacobi eigen-decomposition, matrix square root, Fréchet
//! distance against closed forms, and the image grid writers.

use ndarray::Array2;
use rand::RngExt;
use scoresde::metrics::image::*;
use scoresde::viz::grid::{image_grid_gif, image_grid_png, render_grid, GridOptions};

fn rand_sym(d: usize, seed: u64) -> Vec<f64> {
    let mut r = scoresde::rng::stream(seed, 1, 2);
    let b: Vec<f64> = (0..d * d).map(|_| r.random::<f64>() - 0.5).collect();
    // A = B Bᵀ + 0.1 I (symmetric positive definite).
    let mut a = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            a[i * d + j] = (0..d).map(|k| b[i * d + k] * b[j * d + k]).sum::<f64>()
                + if i == j { 0.1 } else { 0.0 };
        }
    }
    a
}

#[test]
fn jacobi_reconstructs_and_sqrtm_squares_back() {
    let d = 12;
    let a = rand_sym(d, 1);
    let (lam, v) = jacobi_eigh(&a, d);
    for i in 0..d {
        for j in 0..d {
            let rec: f64 = (0..d).map(|k| v[i * d + k] * lam[k] * v[j * d + k]).sum();
            assert!(
                (rec - a[i * d + j]).abs() < 1e-10,
                "A = V Λ Vᵀ at ({i},{j})"
            );
        }
    }
    let s = sqrtm_psd(&a, d);
    for i in 0..d {
        for j in 0..d {
            let sq: f64 = (0..d).map(|k| s[i * d + k] * s[k * d + j]).sum();
            assert!((sq - a[i * d + j]).abs() < 1e-10);
        }
    }
    // Known case: the rotation R(30°) of diag(4, 9) has square root R diag(2, 3) Rᵀ.
    let (c, sn) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let m = |l1: f64, l2: f64| {
        vec![
            c * c * l1 + sn * sn * l2,
            c * sn * (l1 - l2),
            c * sn * (l1 - l2),
            sn * sn * l1 + c * c * l2,
        ]
    };
    let got = sqrtm_psd(&m(4.0, 9.0), 2);
    for (g, w) in got.iter().zip(m(2.0, 3.0)) {
        assert!((g - w).abs() < 1e-12, "{got:?}");
    }
}

#[test]
fn frechet_distance_matches_closed_forms() {
    // Diagonal covariances commute: FD = ‖Δμ‖² + Σ (√a_i − √b_i)².
    let (mu1, mu2) = (vec![0.0, 1.0, 2.0], vec![1.0, 1.0, 0.0]);
    let diag = |v: [f64; 3]| {
        let mut c = vec![0.0; 9];
        for i in 0..3 {
            c[i * 4] = v[i];
        }
        c
    };
    let fd = frechet_distance(&mu1, &diag([1.0, 4.0, 9.0]), &mu2, &diag([4.0, 1.0, 9.0]));
    assert!((fd - (5.0 + 1.0 + 1.0)).abs() < 1e-10, "{fd}");
    // Non-commuting case: same covariance, FD = ‖Δμ‖² exactly.
    let a = rand_sym(6, 3);
    let fd = frechet_distance(&[0.0; 6], &a, &[0.5; 6], &a);
    assert!((fd - 1.5).abs() < 1e-9, "{fd}");
}

#[test]
fn frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_noise() {
    let mut r = scoresde::rng::stream(4, 1, 2);
    let (n, d) = (2000, 8);
    let x = Array2::from_shape_fn((n, d), |(_, j)| (r.random::<f32>() - 0.5) * (j + 1) as f32);
    assert!(frechet_distance_features(x.view(), x.view()) < 1e-9);
    let mut prev = 0.0;
    for s in [0.1f32, 0.3, 1.0] {
        let y = Array2::from_shape_fn((n, d), |(i, j)| x[[i, j]] + s * (r.random::<f32>() - 0.5));
        let fd = frechet_distance_features(x.view(), y.view());
        assert!(fd > prev, "noise {s}: FD {fd} should exceed {prev}");
        prev = fd;
    }
}

#[test]
fn classifier_scores_and_nearest_neighbours() {
    let p = Array2::from_shape_vec((4, 2), vec![0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.3, 0.7]).unwrap();
    let (conf, ent) = classifier_scores(&p);
    assert!((conf - 0.75).abs() < 1e-12);
    assert!(
        (ent - 2f64.ln()).abs() < 1e-12,
        "two labels twice each: ln 2"
    );
    let train = Array2::from_shape_vec((2, 2), vec![0.0, 0.0, 3.0, 4.0]).unwrap();
    let gen = Array2::from_shape_vec((2, 2), vec![3.0, 4.0, 0.0, 1.0]).unwrap();
    assert_eq!(
        nearest_neighbor_l2(gen.view(), train.view()),
        vec![0.0, 1.0]
    );
}

#[test]
fn image_grid_upscales_and_writes_png_and_gif() {
    // Two 1×2 grey images: [−1, 1] and [0, NaN]; scale 3, pad 1, 2 columns.
    let x = Array2::from_shape_vec((2, 2), vec![-1.0, 1.0, 0.0, f32::NAN]).unwrap();
    let o = GridOptions {
        cols: 2,
        scale: 3,
        pad: 1,
        ..GridOptions::new(1, 1, 2)
    };
    let (rgb, w, h) = render_grid(x.view(), &o).unwrap();
    assert_eq!((w, h), (2 * 7 + 1, 5));
    let px = |x: usize, y: usize| rgb[(y * w as usize + x) * 3];
    assert_eq!(
        [px(1, 1), px(3, 3), px(4, 1), px(7, 2), px(8, 2), px(11, 2)],
        [0, 0, 255, 255, 128, 0]
    );
    let dir = std::env::temp_dir().join(format!("scoresde-grid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rgbimg = Array2::from_shape_fn((5, 3 * 16), |(i, j)| ((i + j) % 7) as f32 / 3.0 - 1.0);
    let og = GridOptions::new(3, 4, 4);
    image_grid_png(&dir.join("g.png"), rgbimg.view(), &og).unwrap();
    let back = image::open(dir.join("g.png")).unwrap();
    assert_eq!((back.width(), back.height()), (5 * 18 + 2, 18 + 2));
    let frames = [rgbimg.view(), rgbimg.view()];
    image_grid_gif(&dir.join("g.gif"), &frames, &og, 10, 80, 500).unwrap();
    assert!(std::fs::metadata(dir.join("g.gif")).unwrap().len() > 100);
    assert!(image_grid_png(
        &dir.join("bad.png"),
        rgbimg.view(),
        &GridOptions::new(1, 4, 4)
    )
    .is_err());
}

/// The committed classifier loads and classifies the first 2000 MNIST test
/// images: measured 98.4% on all 10k; with n = 2000 the standard error is
/// ≈ 0.3%, so 97% is more than 4 standard errors below.
#[test]
fn committed_mnist_classifier_is_accurate() {
    use scoresde::data::images::{load_mnist_dir, Split};
    use scoresde::nn::classifier::Classifier;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let clf = Classifier::load(&root.join("mnist-classifier.safetensors")).unwrap();
    let test = load_mnist_dir(&root.join("mnist"), Split::Test)
        .unwrap()
        .take(2000);
    let acc = clf.accuracy(&test).unwrap();
    assert!(acc >= 0.97, "accuracy {acc}");
}
