//! Figures are written, decoded back with the image crate and checked for
//! size, content and placement of the density.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{AnimationDecoder, GenericImageView, RgbImage};
use ndarray::{Array2, ArrayView2};
use scoresde::viz::{
    line_plot, render_density, scatter_panels, thumbnail_grid, trajectory_gif, DensityOptions,
    GifOptions, LinePlot, Panel, ScatterOptions, Series, Style, ThumbnailOptions,
};
use scoresde::Error;

/// A fresh, unique file path in the system temp dir.
fn tmp(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "scoresde-viz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Deterministic standard normals (SplitMix64 + Box–Muller).
struct Gauss(u64);
impl Gauss {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

/// `n` points from a ring of 8 Gaussians of radius 3 (the usual 2-D toy).
fn ring(n: usize, seed: u64) -> Array2<f32> {
    let mut g = Gauss(seed);
    let mut a = Array2::zeros((n, 2));
    for i in 0..n {
        let k = (i % 8) as f32 * std::f32::consts::PI / 4.0;
        a[[i, 0]] = 3.0 * k.cos() + 0.15 * g.normal();
        a[[i, 1]] = 3.0 * k.sin() + 0.15 * g.normal();
    }
    a
}

fn gaussian(n: usize, seed: u64, centre: (f32, f32), sd: f32) -> Array2<f32> {
    let mut g = Gauss(seed);
    Array2::from_shape_fn((n, 2), |(_, j)| {
        (if j == 0 { centre.0 } else { centre.1 }) + sd * g.normal()
    })
}

fn luminance_variance(img: &RgbImage) -> f64 {
    let l: Vec<f64> = img
        .pixels()
        .map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0)
        .collect();
    let m = l.iter().sum::<f64>() / l.len() as f64;
    l.iter().map(|v| (v - m).powi(2)).sum::<f64>() / l.len() as f64
}

/// Mean brightness (0..255) of a rectangle.
fn mean_brightness(img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> f64 {
    let mut s = 0.0;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            let p = img.get_pixel(x, y);
            s += (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0;
        }
    }
    s / (w * h) as f64
}

fn no_tmp_left(path: &std::path::Path) {
    let mut t = path.as_os_str().to_os_string();
    t.push(".tmp");
    assert!(!PathBuf::from(t).exists(), "temporary file left behind");
}

#[test]
fn density_is_dark_where_the_points_are() {
    // All points in the top-right corner of [-4.5, 4.5]².
    let pts = gaussian(5000, 1, (3.0, 3.0), 0.3);
    let opts = DensityOptions::default();
    let rgb = render_density(pts.view(), 90, 90, &opts).unwrap();
    let img = RgbImage::from_raw(90, 90, rgb).unwrap();
    let top_right = mean_brightness(&img, 60, 0, 30, 30);
    let bottom_left = mean_brightness(&img, 0, 60, 30, 30);
    assert_eq!(bottom_left, 255.0, "no points there: must be white");
    assert!(
        top_right < 235.0,
        "top-right should be darker, got {top_right}"
    );
    // The cluster centre (3, 3) maps to pixel (75, 15): dark ink.
    let c = img.get_pixel(75, 15);
    assert!(c[0] < 100, "cluster centre should be dark, got {c:?}");

    // The plain-scatter style puts ink in the same place.
    let sc = DensityOptions {
        style: Style::Scatter,
        ..opts
    };
    let img = RgbImage::from_raw(90, 90, render_density(pts.view(), 90, 90, &sc).unwrap()).unwrap();
    assert!(mean_brightness(&img, 60, 0, 30, 30) < 250.0);
    assert_eq!(mean_brightness(&img, 0, 60, 30, 30), 255.0);
}

#[test]
fn density_skips_nan_inf_and_out_of_range_and_rejects_bad_shapes() {
    let mut pts = gaussian(200, 2, (0.0, 0.0), 0.5);
    pts[[0, 0]] = f32::NAN;
    pts[[1, 1]] = f32::INFINITY;
    pts[[2, 0]] = f32::NEG_INFINITY;
    pts[[3, 0]] = 1e30;
    let opts = DensityOptions::default();
    let rgb = render_density(pts.view(), 50, 50, &opts).unwrap();
    assert!(rgb.iter().any(|&v| v < 255));
    // Only non-finite points: a blank (white) image, no panic.
    let bad = Array2::from_elem((10, 2), f32::NAN);
    assert!(render_density(bad.view(), 20, 20, &opts)
        .unwrap()
        .iter()
        .all(|&v| v == 255));
    let empty = Array2::<f32>::zeros((0, 2));
    assert!(render_density(empty.view(), 20, 20, &opts)
        .unwrap()
        .iter()
        .all(|&v| v == 255));
    // Wrong shape and invalid options are errors.
    let three = Array2::<f32>::zeros((5, 3));
    assert!(matches!(
        render_density(three.view(), 20, 20, &opts),
        Err(Error::InvalidArgument { .. })
    ));
    let inverted = DensityOptions {
        range: [(1.0, -1.0), (-1.0, 1.0)],
        ..DensityOptions::default()
    };
    assert!(render_density(pts.view(), 20, 20, &inverted).is_err());
    assert!(render_density(pts.view(), 0, 20, &opts).is_err());
}

#[test]
fn scatter_panels_png_has_expected_size_and_content() {
    let a = ring(10_000, 3);
    let corner = gaussian(3000, 4, (-3.5, -3.5), 0.2); // bottom-left
    let path = tmp("panels.png");
    let opts = ScatterOptions {
        panel_px: 200,
        ..ScatterOptions::default()
    };
    let panels = [
        Panel {
            title: "data".into(),
            caption: "SWD 0.041 (1.3× floor), NFE 1000".into(),
            points: a.view(),
        },
        Panel {
            title: "corner".into(),
            caption: "c".into(),
            points: corner.view(),
        },
    ];
    scatter_panels(&path, &panels, &opts).unwrap();
    no_tmp_left(&path);
    let img = image::open(&path).unwrap().to_rgb8();
    // n·(panel + 32) × (panel + 76)
    assert_eq!(img.dimensions(), (2 * 232, 276));
    assert!(luminance_variance(&img) > 10.0);
    // Second panel's square starts at x = 232 + 16, y = 40.
    let (x0, y0) = (248, 40);
    let bl = mean_brightness(&img, x0 + 5, y0 + 150, 45, 45);
    let tr = mean_brightness(&img, x0 + 150, y0 + 5, 45, 45);
    assert!(
        bl < tr - 20.0,
        "bottom-left {bl} should be darker than top-right {tr}"
    );
    // The title band contains text (some dark pixels) above panel 1.
    assert!(mean_brightness(&img, 16, 5, 200, 30) < 254.0);
}

#[test]
fn scatter_panels_zero_panels_is_an_error_and_empty_points_draw() {
    let path = tmp("none.png");
    let r = scatter_panels(&path, &[], &ScatterOptions::default());
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    assert!(!path.exists());

    let empty = Array2::<f32>::zeros((0, 2));
    let nan = Array2::from_elem((100, 2), f32::NAN);
    let panels = [
        Panel {
            title: "empty".into(),
            caption: String::new(),
            points: empty.view(),
        },
        Panel {
            title: "all NaN · 日本 🎉".into(), // glyphs DejaVu lacks: no panic
            caption: "x".repeat(300),          // far too long: shrunk / clipped, not a panic
            points: nan.view(),
        },
    ];
    scatter_panels(&path, &panels, &ScatterOptions::default()).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (2 * 432, 476));
}

#[test]
fn scatter_panels_unwritable_path_is_an_io_error() {
    let pts = ring(100, 5);
    let path = tmp("missing-dir").join("sub").join("x.png");
    let r = scatter_panels(
        &path,
        &[Panel {
            title: "t".into(),
            caption: "c".into(),
            points: pts.view(),
        }],
        &ScatterOptions::default(),
    );
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
}

/// Noise-to-data frames: x_t = a·x0 + sqrt(1-a²)·z for a from 0 to 1.
fn trajectory(n_frames: usize, n: usize) -> (Vec<Array2<f32>>, Vec<String>) {
    let x0 = ring(n, 6);
    let z = gaussian(n, 7, (0.0, 0.0), 1.0);
    let mut frames = Vec::new();
    let mut labels = Vec::new();
    for k in 0..n_frames {
        let t = 1.0 - k as f32 / (n_frames - 1).max(1) as f32;
        let a = (1.0 - t).powf(0.7);
        frames.push(&x0 * a + &z * (1.0 - a * a).sqrt());
        labels.push(format!("t = {t:.2}"));
    }
    (frames, labels)
}

fn decode_gif(path: &std::path::Path) -> Vec<image::Frame> {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    image::codecs::gif::GifDecoder::new(f)
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap()
}

#[test]
fn trajectory_gif_has_all_frames_and_holds_the_last() {
    let (frames, labels) = trajectory(6, 2000);
    let views: Vec<ArrayView2<f32>> = frames.iter().map(|f| f.view()).collect();
    let path = tmp("traj.gif");
    let opts = GifOptions {
        size: 96,
        delay_ms: 50,
        hold_last_ms: 1000,
        ..GifOptions::default()
    };
    trajectory_gif(&path, &views, &labels, &opts).unwrap();
    no_tmp_left(&path);
    let decoded = decode_gif(&path);
    assert_eq!(decoded.len(), 6);
    for f in &decoded {
        assert_eq!(f.buffer().dimensions(), (96, 96 + 28));
    }
    let ms = |f: &image::Frame| {
        let (n, d) = f.delay().numer_denom_ms();
        n as f64 / d as f64
    };
    assert_eq!(ms(&decoded[0]), 50.0);
    assert_eq!(ms(&decoded[5]), 1000.0);
    // Noise (first) and data (last) frames differ.
    let first = decoded[0].buffer();
    let last = decoded[5].buffer();
    let diff = first
        .pixels()
        .zip(last.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(diff > 500, "frames should differ, {diff} pixels do");
    // Looping forever: the NETSCAPE2.0 extension is present.
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.windows(11).any(|w| w == b"NETSCAPE2.0"));
}

#[test]
fn trajectory_gif_subsamples_long_inputs_and_validates() {
    let (frames, labels) = trajectory(100, 300);
    let views: Vec<ArrayView2<f32>> = frames.iter().map(|f| f.view()).collect();
    let path = tmp("long.gif");
    let opts = GifOptions {
        size: 48,
        label_h: 16,
        max_frames: 12,
        speed: 30,
        ..GifOptions::default()
    };
    trajectory_gif(&path, &views, &labels, &opts).unwrap();
    assert_eq!(decode_gif(&path).len(), 12);
    assert_eq!(scoresde::viz::gif::frame_indices(100, 12).last(), Some(&99));

    assert!(trajectory_gif(&path, &[], &[], &opts).is_err());
    assert!(matches!(
        trajectory_gif(&path, &views, &labels[..3], &opts),
        Err(Error::Mismatch(_))
    ));
    // An all-NaN frame renders empty instead of panicking.
    let nan = Array2::from_elem((10, 2), f32::NAN);
    trajectory_gif(&path, &[nan.view()], &["t = 1".into()], &opts).unwrap();
    assert_eq!(decode_gif(&path).len(), 1);
}

#[test]
fn trajectory_gif_default_size_is_small_and_colours_exact() {
    // 60 frames of 10,000 points at the default 320 px: the paper-figure case.
    let (frames, labels) = trajectory(60, 10_000);
    let views: Vec<ArrayView2<f32>> = frames.iter().map(|f| f.view()).collect();
    let path = tmp("default.gif");
    trajectory_gif(&path, &views, &labels, &GifOptions::default()).unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes < 4_000_000, "GIF is {bytes} bytes");
    let decoded = decode_gif(&path);
    assert_eq!(decoded.len(), 60);
    // Each frame fits an exact palette, so the grey label band stays grey
    // (a lossy quantiser tints it with the density's blues).
    for f in [&decoded[0], &decoded[59]] {
        let b = f.buffer();
        assert_eq!(b.dimensions(), (320, 348));
        for y in 0..28 {
            for x in 0..320 {
                let p = b.get_pixel(x, y);
                assert!(p[0] == p[1] && p[1] == p[2], "({x},{y}) = {p:?}");
            }
        }
        assert!(
            (0..28).any(|y| (0..320).any(|x| b.get_pixel(x, y)[0] < 100)),
            "label drawn"
        );
    }
}

fn quality_plot() -> LinePlot {
    let nfe = [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
    let mk = |name: &str, c: f64, p: f64| Series {
        name: name.into(),
        points: nfe
            .iter()
            .map(|&n| (n, 0.03 + c * f64::powf(n, -p)))
            .collect(),
        err: Some(nfe.iter().map(|&n| 0.2 * c * f64::powf(n, -p)).collect()),
    };
    LinePlot {
        title: "Sample quality vs. NFE".into(),
        x_label: "NFE (score evaluations)".into(),
        y_label: "sliced Wasserstein distance".into(),
        log_x: true,
        log_y: true,
        series: vec![
            mk("DDPM ancestral", 2.0, 0.6),
            mk("reverse SDE (Euler–Maruyama)", 3.0, 0.5),
            mk("probability-flow ODE (Heun)", 1.0, 0.9),
        ],
        hline: Some((0.03, "noise floor".into())),
        ..LinePlot::default()
    }
}

#[test]
fn line_plot_png_for_all_axis_kinds() {
    for (lx, ly) in [(false, false), (true, false), (false, true), (true, true)] {
        let path = tmp("lines.png");
        let plot = LinePlot {
            log_x: lx,
            log_y: ly,
            size: (500, 350),
            ..quality_plot()
        };
        line_plot(&path, &plot).unwrap();
        no_tmp_left(&path);
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (500, 350));
        assert!(luminance_variance(&img) > 50.0, "log_x={lx} log_y={ly}");
        // Series colours (tab10 blue, orange) appear somewhere.
        let has = |c: [u8; 3]| img.pixels().any(|p| p.0 == c);
        assert!(has([0x1f, 0x77, 0xb4]) && has([0xff, 0x7f, 0x0e]));
    }
}

#[test]
fn line_plot_skips_bad_points_and_rejects_unplottable_input() {
    let path = tmp("bad.png");
    let mut plot = quality_plot();
    plot.series[0].points[0] = (f64::NAN, 1.0);
    plot.series[1].points[1] = (0.0, 1.0); // not on a log axis
    plot.series[2].points[2] = (5.0, -1.0);
    line_plot(&path, &plot).unwrap();

    let nothing = LinePlot {
        series: vec![Series {
            name: "all bad".into(),
            points: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
            err: None,
        }],
        ..LinePlot::default()
    };
    assert!(matches!(
        line_plot(&path, &nothing),
        Err(Error::InvalidArgument { .. })
    ));
    // Huge values whose padded range would overflow: an error, not a panic.
    let huge = LinePlot {
        series: vec![Series {
            name: "huge".into(),
            points: vec![(0.0, -1.7e308), (1.0, 1.7e308)],
            err: None,
        }],
        ..LinePlot::default()
    };
    assert!(line_plot(&path, &huge).is_err());
    // A series with no points next to a good one; glyphs DejaVu lacks.
    let mut partial = quality_plot();
    partial.series.push(Series {
        name: "empty 日本 🎉".into(),
        points: vec![],
        err: Some(vec![]),
    });
    partial.title = "σ(t) → 0, ∇ log p 日本 🎉".into();
    line_plot(&path, &partial).unwrap();
    let mut mismatched = quality_plot();
    mismatched.series[0].err = Some(vec![0.1]);
    assert!(matches!(
        line_plot(&path, &mismatched),
        Err(Error::Mismatch(_))
    ));
    // A single point on linear axes still gets a sensible range.
    let single = LinePlot {
        series: vec![Series {
            name: "one".into(),
            points: vec![(3.0, 3.0)],
            err: None,
        }],
        ..LinePlot::default()
    };
    line_plot(&path, &single).unwrap();
}

#[test]
fn thumbnail_grid_layout_and_missing_cells() {
    let a = ring(2000, 8);
    let corner = gaussian(2000, 9, (3.5, -3.5), 0.2); // bottom-right
    let rows: Vec<String> = vec!["DDPM".into(), "probability-flow ODE".into()];
    let cols: Vec<String> = vec!["NFE 10".into(), "NFE 100".into(), "NFE 1000".into()];
    let cells = vec![
        vec![Some(a.view()), None, Some(corner.view())],
        vec![Some(corner.view()), Some(a.view()), None],
    ];
    let path = tmp("grid.png");
    let opts = ThumbnailOptions {
        cell_px: 80,
        title: Some("samples".into()),
        ..ThumbnailOptions::default()
    };
    thumbnail_grid(&path, &rows, &cols, &cells, &opts).unwrap();
    no_tmp_left(&path);
    let img = image::open(&path).unwrap();
    let (w, h) = img.dimensions();
    assert_eq!(h, 40 + 30 + 2 * (80 + 10) + 12);
    assert!(w > 3 * 90 + 12, "width {w} must include a row-label column");
    let img = img.to_rgb8();
    assert!(luminance_variance(&img) > 10.0);
    // Cell (0, 2) holds the bottom-right cluster: its bottom-right is darker.
    let x0 = w - 12 - 90; // last column: one cell + gap before the right pad
    let y0 = 40 + 30;
    let br = mean_brightness(&img, x0 + 63, y0 + 63, 16, 16);
    let tl = mean_brightness(&img, x0 + 1, y0 + 1, 16, 16);
    assert!(br < tl - 20.0, "bottom-right {br} vs top-left {tl}");

    assert!(matches!(
        thumbnail_grid(&path, &rows, &cols, &cells[..1], &opts),
        Err(Error::Mismatch(_))
    ));
    assert!(thumbnail_grid(&path, &[], &cols, &[], &opts).is_err());
}

/// Writes sample figures to /tmp/scoresde-viz-samples for a human to look
/// at: `cargo test --test viz_figures -- --ignored --nocapture`.
#[test]
#[ignore]
fn render_samples_for_inspection() {
    let dir = PathBuf::from("/tmp/scoresde-viz-samples");
    std::fs::create_dir_all(&dir).unwrap();
    let data = ring(10_000, 10);
    let noise = gaussian(10_000, 11, (0.0, 0.0), 1.0);
    let (frames, labels) = trajectory(40, 10_000);
    let blurry = &frames[30];
    scatter_panels(
        &dir.join("panels.png"),
        &[
            Panel {
                title: "data".into(),
                caption: "10,000 points".into(),
                points: data.view(),
            },
            Panel {
                title: "reverse SDE (Euler–Maruyama)".into(),
                caption: "SWD 0.041 (1.3× floor), NFE 1000".into(),
                points: blurry.view(),
            },
            Panel {
                title: "prior N(0, I)".into(),
                caption: "SWD 2.31, NFE 0".into(),
                points: noise.view(),
            },
        ],
        &ScatterOptions::default(),
    )
    .unwrap();
    scatter_panels(
        &dir.join("panels_scatter_viridis.png"),
        &[
            Panel {
                title: "viridis, sqrt: data".into(),
                caption: "density".into(),
                points: data.view(),
            },
            Panel {
                title: "viridis, sqrt: prior".into(),
                caption: "density".into(),
                points: noise.view(),
            },
        ],
        &ScatterOptions {
            panel_px: 300,
            density: DensityOptions {
                style: Style::Density,
                colormap: scoresde::viz::Colormap::Viridis,
                scale: scoresde::viz::Scale::Sqrt,
                ..DensityOptions::default()
            },
        },
    )
    .unwrap();
    scatter_panels(
        &dir.join("panels_plain_scatter.png"),
        &[Panel {
            title: "plain scatter".into(),
            caption: "10,000 points".into(),
            points: data.view(),
        }],
        &ScatterOptions {
            density: DensityOptions {
                style: Style::Scatter,
                ..DensityOptions::default()
            },
            ..ScatterOptions::default()
        },
    )
    .unwrap();
    let views: Vec<ArrayView2<f32>> = frames.iter().map(|f| f.view()).collect();
    trajectory_gif(
        &dir.join("trajectory.gif"),
        &views,
        &labels,
        &GifOptions::default(),
    )
    .unwrap();
    let decoded = decode_gif(&dir.join("trajectory.gif"));
    for k in [0, decoded.len() / 2, decoded.len() - 1] {
        decoded[k]
            .buffer()
            .save(dir.join(format!("trajectory_frame{k:02}.png")))
            .unwrap();
    }
    line_plot(&dir.join("quality_vs_nfe.png"), &quality_plot()).unwrap();
    let wall = LinePlot {
        title: "Sample quality vs. wall time".into(),
        x_label: "wall time (s)".into(),
        y_label: "SWD".into(),
        log_x: false,
        log_y: false,
        ..quality_plot()
    };
    line_plot(&dir.join("quality_vs_time.png"), &wall).unwrap();
    let rows: Vec<String> = vec![
        "DDPM ancestral".into(),
        "reverse SDE (EM)".into(),
        "prob.-flow ODE (Heun)".into(),
    ];
    let cols: Vec<String> = vec![
        "NFE 10".into(),
        "NFE 50".into(),
        "NFE 200".into(),
        "NFE 1000".into(),
    ];
    let cells: Vec<Vec<Option<ArrayView2<f32>>>> = (0..3)
        .map(|r| {
            (0..4)
                .map(|c| {
                    if r == 2 && c == 3 {
                        None
                    } else {
                        Some(frames[(10 + 7 * c + 2 * r).min(39)].view())
                    }
                })
                .collect()
        })
        .collect();
    thumbnail_grid(
        &dir.join("grid.png"),
        &rows,
        &cols,
        &cells,
        &ThumbnailOptions {
            title: Some("Samples by sampler and NFE budget".into()),
            ..ThumbnailOptions::default()
        },
    )
    .unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        println!(
            "{} {} bytes",
            e.path().display(),
            e.metadata().unwrap().len()
        );
    }
}

/// `n` decaying curves with distinct names, like a sampler comparison.
fn many_series(n: usize) -> Vec<Series> {
    (0..n)
        .map(|k| Series {
            name: format!("sampler-{k}"),
            points: [5.0, 10.0, 20.0, 50.0]
                .iter()
                .map(|&x: &f64| (x, 1.0 + (k as f64 + 1.0) / x))
                .collect(),
            err: None,
        })
        .collect()
}

#[test]
fn long_legends_go_beside_the_chart_and_cover_no_data() {
    let path = tmp("side_legend.png");
    let (w, h) = (600, 400);
    let plot = LinePlot {
        log_x: true,
        log_y: true,
        series: many_series(20),
        hline: Some((1.0, "floor".into())),
        size: (w, h),
        ..LinePlot::default()
    };
    line_plot(&path, &plot).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert!(img.width() > w, "legend panel widens the image");
    assert_eq!(img.height(), h);
    // The first series' colour (tab10 blue) is in the panel, right of the chart.
    let in_panel = |c: [u8; 3]| {
        (w..img.width()).any(|x| (0..img.height()).any(|y| img.get_pixel(x, y).0 == c))
    };
    assert!(in_panel([0x1f, 0x77, 0xb4]) && in_panel([0xff, 0x7f, 0x0e]));
    // A legend longer than three columns of the chart's height: taller image.
    let tall = LinePlot {
        series: many_series(80),
        ..plot.clone()
    };
    line_plot(&path, &tall).unwrap();
    assert!(image::open(&path).unwrap().height() > h);
    // A short legend stays inside: the image is exactly `size`.
    let short = LinePlot {
        series: many_series(3),
        ..plot
    };
    line_plot(&path, &short).unwrap();
    assert_eq!(image::open(&path).unwrap().to_rgb8().dimensions(), (w, h));
}

#[test]
fn points_above_y_max_are_clamped_to_the_axis_end() {
    // With the axis capped, how far above the cap a diverged point lies
    // cannot change the picture.
    let render = |off: f64| {
        let mut series = many_series(8);
        series[2].points[0].1 = off;
        let plot = LinePlot {
            log_x: true,
            log_y: true,
            series,
            y_max: Some(30.0),
            ..LinePlot::default()
        };
        let path = tmp(&format!("ymax_{off}.png"));
        line_plot(&path, &plot).unwrap();
        std::fs::read(&path).unwrap()
    };
    assert_eq!(render(1e3), render(1e9));
    // Without the cap the same point stretches the axis: a different image.
    let uncapped = |off: f64| {
        let mut series = many_series(8);
        series[2].points[0].1 = off;
        let path = tmp(&format!("noymax_{off}.png"));
        line_plot(
            &path,
            &LinePlot {
                log_x: true,
                log_y: true,
                series,
                ..LinePlot::default()
            },
        )
        .unwrap();
        std::fs::read(&path).unwrap()
    };
    assert_ne!(uncapped(1e3), uncapped(1e9));
}
