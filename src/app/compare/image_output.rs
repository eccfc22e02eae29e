//! What an image comparison writes: the Markdown and CSV tables and the
//! figures (FD against NFE and wall time, nearest-neighbour distance against
//! NFE, and the sheet of thumbnails: rows = samplers, columns = budgets, the
//! same first images, i.e. the same per-sample seeds, in every cell).

use std::path::Path;

use super::image::{ImageCell, ImageData, ImageSummary, NN_SUBSET, THUMB_IMAGES};
use super::output::{csv_rows, fmt_ms_p, fmt_sci, ms, push_skipped, sheet_cells, LEAD_COLUMNS};
use super::{CompareOptions, Plan};
use crate::error::Result;
use crate::metrics::{MeanSe, DC_K, PR_K};
use crate::report::Table;
use crate::sde::Sde;
use crate::viz;

fn f3(m: &MeanSe) -> String {
    fmt_ms_p(m, 3)
}

/// Metric columns of one summary, in table order.
fn metric_cells(q: &ImageSummary, floor: &ImageSummary) -> Vec<String> {
    let mut v = vec![
        f3(&q.fd),
        format!("{:.2}", q.fd.mean / floor.fd.mean),
        fmt_sci(&q.kid),
        f3(&q.precision),
        f3(&q.recall),
        f3(&q.density),
        f3(&q.coverage),
        f3(&q.nn),
        format!("{:.2}", q.nn.mean / floor.nn.mean),
    ];
    if let Some([c, e]) = &q.labels {
        v.extend([f3(c), f3(e)]);
    }
    v
}

/// The Markdown table: one row per run cell, then the floor row.
pub(super) fn results_table(cells: &[ImageCell], floor: &ImageSummary) -> Table {
    let mut headers = vec![
        "sampler",
        "budget",
        "steps",
        "NFE",
        "seconds",
        "FD",
        "FD / floor",
        "KID",
        "precision",
        "recall",
        "density",
        "coverage",
        "NN L2",
        "NN / floor",
    ];
    if floor.labels.is_some() {
        headers.extend(["confidence", "label entropy"]);
    }
    let mut t = Table::new(&headers);
    for c in cells {
        let mut row = c.table_lead(2);
        row.extend(metric_cells(&c.quality, floor));
        t.rows.push(row);
    }
    let mut row: Vec<String> = vec!["data (floor)".into(), "-".into(), "-".into(), "-".into()];
    row.push("-".into());
    row.extend(metric_cells(floor, floor));
    t.rows.push(row);
    t
}

/// Column names of the summary fields (each `_mean`, `_se`).
const FIELDS: [&str; 9] = [
    "fd",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "nn_l2",
    "confidence",
    "label_entropy",
];

fn summary_fields(q: &ImageSummary) -> [Option<MeanSe>; 9] {
    let l = q.labels;
    [
        Some(q.fd),
        Some(q.kid),
        Some(q.precision),
        Some(q.recall),
        Some(q.density),
        Some(q.coverage),
        Some(q.nn),
        l.map(|l| l[0]),
        l.map(|l| l[1]),
    ]
}

/// The CSV: one row per (sampler, budget) in sampler-then-budget order
/// (skipped cells with empty metrics and a note), then the floor row
/// (`sampler` = `data (floor)`).
pub(super) fn results_csv(
    cells: &[ImageCell],
    skipped: &[(String, usize, String)],
    floor: &ImageSummary,
    budgets: &[usize],
    plans: &[(String, Plan)],
) -> Table {
    let mut headers: Vec<String> = LEAD_COLUMNS.map(String::from).to_vec();
    for f in FIELDS {
        headers.push(format!("{f}_mean"));
        headers.push(format!("{f}_se"));
    }
    headers.push("note".into());
    let hs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new(&hs);
    let fields = |q: &ImageSummary| -> Vec<String> {
        summary_fields(q)
            .iter()
            .flat_map(|m| ms(m.as_ref()))
            .collect()
    };
    let width = headers.len();
    t.rows = csv_rows(plans, budgets, cells, skipped, (width - 1, width), |c| {
        let mut row = c.csv_lead();
        row.extend(fields(&c.quality));
        row.push(String::new());
        row
    });
    let mut row = vec!["data (floor)".to_string()];
    row.resize(LEAD_COLUMNS.len(), String::new());
    row.extend(fields(floor));
    row.push("training images against held-out images at the same n".into());
    t.rows.push(row);
    t
}

pub(super) fn results_markdown(
    label: &str,
    data: &ImageData,
    sde: &dyn Sde,
    opts: &CompareOptions,
    table: &Table,
    skipped_cells: &[(String, usize, String)],
    skipped_samplers: &[(String, String)],
) -> String {
    let tr = &data.train;
    let mut md = format!(
        "# Sampler comparison: {label}\n\n\
         Data: {} ({}x{}x{}; {} training, {} held-out images); SDE: {} (t from {} to {}); \
         {} images per run; {} seeds (each a different sampling seed and a different \
         held-out reference draw of {} images); base seed {}.\n\n\
         Every metric is mean ± SE over seeds. Features: {}. FD: Fréchet distance; KID: \
         unbiased, cubic polynomial kernel; precision / recall: k-NN manifolds, k = {PR_K}; \
         density / coverage: k = {DC_K}; NN L2: mean pixel distance of the first {} images \
         to their nearest training image (memorisation; 0 = copies). The floor row is the \
         same metric for {} training images against the same held-out draws (its NN L2: the \
         held-out images' distance to the training set).\n\n",
        data.name,
        tr.channels,
        tr.height,
        tr.width,
        tr.len(),
        data.held_out.len(),
        sde.config().name(),
        sde.t_max(),
        sde.t_eps(),
        opts.n,
        opts.seeds,
        opts.n,
        opts.seed,
        data.feature_space(),
        opts.n.min(NN_SUBSET),
        opts.n,
    );
    if data.classifier.is_some() {
        md.push_str(
            "Confidence: the classifier's mean max-probability; label entropy: of the \
             predicted-label histogram, in nats (ln 10 = 2.303 when balanced).\n\n",
        );
    }
    md.push_str(&table.to_markdown());
    push_skipped(&mut md, skipped_cells, skipped_samplers);
    md
}

pub(super) fn write_figures(
    dir: &Path,
    label: &str,
    data: &ImageData,
    plans: &[(String, Plan)],
    budgets: &[usize],
    cells: &[ImageCell],
    floor: &ImageSummary,
) -> Result<()> {
    let series = |x: &dyn Fn(&ImageCell) -> f64, y: &dyn Fn(&ImageSummary) -> MeanSe| {
        plans
            .iter()
            .map(|(spec, _)| {
                let cs: Vec<&ImageCell> = cells.iter().filter(|c| &c.spec == spec).collect();
                viz::Series {
                    name: spec.clone(),
                    points: cs.iter().map(|c| (x(c), y(&c.quality).mean)).collect(),
                    err: Some(cs.iter().map(|c| y(&c.quality).se).collect()),
                }
            })
            .filter(|s| !s.points.is_empty())
            .collect::<Vec<_>>()
    };
    let by_nfe = |c: &ImageCell| c.nfe as f64;
    let by_time = |c: &ImageCell| c.seconds.mean;
    let fd = |q: &ImageSummary| q.fd;
    let nn = |q: &ImageSummary| q.nn;
    let fd_label = format!("Fréchet distance, {} (mean ± SE)", data.feature_space());
    // (file, title, x label, y label, x, y, floor, floor label)
    type Plot<'a> = (
        &'a str,
        String,
        &'a str,
        &'a str,
        &'a dyn Fn(&ImageCell) -> f64,
        &'a dyn Fn(&ImageSummary) -> MeanSe,
        f64,
        &'a str,
    );
    // Diverged runs (FD 10⁵ at 4 NFE) would squeeze the curves that matter
    // into the bottom decade: the axes end at this multiple of the floor.
    const OFF_SCALE: f64 = 30.0;
    let plots: [Plot; 3] = [
        (
            "quality_vs_nfe.png",
            format!("Fréchet distance vs NFE: {label}"),
            "model evaluations per sample (NFE)",
            &fd_label,
            &by_nfe,
            &fd,
            floor.fd.mean,
            "floor (training vs held-out images)",
        ),
        (
            "quality_vs_time.png",
            format!("Fréchet distance vs wall time: {label}"),
            "seconds per run",
            &fd_label,
            &by_time,
            &fd,
            floor.fd.mean,
            "floor (training vs held-out images)",
        ),
        (
            "memorisation_vs_nfe.png",
            format!("Distance to the nearest training image vs NFE: {label}"),
            "model evaluations per sample (NFE)",
            "mean nearest-neighbour L2 to the training set (mean ± SE)",
            &by_nfe,
            &nn,
            floor.nn.mean,
            "held-out images",
        ),
    ];
    for (file, title, x_label, y_label, x, y, h, h_label) in plots {
        viz::line_plot(
            &dir.join(file),
            &viz::LinePlot {
                title,
                x_label: x_label.into(),
                y_label: y_label.into(),
                log_x: true,
                log_y: true,
                series: series(x, y),
                hline: Some((h, h_label.to_string())),
                y_max: Some(OFF_SCALE * h),
                ..viz::LinePlot::default()
            },
        )?;
    }
    let (rows, cols, grid) = sheet_cells(plans, budgets, cells, &|c: &ImageCell| {
        (c.spec.as_str(), c.budget, c.samples.view())
    });
    let tr = &data.train;
    let mut g = viz::grid::GridOptions::new(tr.channels, tr.height, tr.width);
    g.cols = (THUMB_IMAGES as f64).sqrt().ceil() as usize;
    g.scale = (48 / tr.height.max(tr.width)).clamp(1, 8);
    g.pad = 1;
    viz::image_thumbnail_grid(
        &dir.join("thumbnails.png"),
        &rows,
        &cols,
        &grid,
        &g,
        Some(&format!(
            "The first {THUMB_IMAGES} images of the first seed (same seeds in every cell): {label}"
        )),
    )
}
