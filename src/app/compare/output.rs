//! What `compare` writes: the "not distinguishable" notes, the Markdown and
//! CSV tables, and the figures (quality against NFE and wall time, and the
//! thumbnail grid).

use super::*;

/// For each budget: the samplers whose mean SWD is within 2 combined SE,
/// 2 sqrt(se_i² + se_best²), of the best (lowest) mean SWD at that budget.
/// Only cells that stayed within the budget (NFE ≤ budget) compete, so an
/// adaptive solver that overran its nominal budget is not ranked there.
pub(super) fn indistinguishable_notes(cells: &[Cell], budgets: &[usize]) -> Vec<String> {
    let mut notes = Vec::new();
    for &b in budgets {
        let at: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.budget == b && c.nfe <= b)
            .collect();
        let Some(best) = at
            .iter()
            .min_by(|x, y| x.quality.swd.mean.total_cmp(&y.quality.swd.mean))
        else {
            continue;
        };
        let se = |c: &Cell| {
            if c.quality.swd.se.is_finite() {
                c.quality.swd.se
            } else {
                0.0
            }
        };
        let tied: Vec<String> = at
            .iter()
            .filter(|c| {
                let band = 2.0 * (se(c).powi(2) + se(best).powi(2)).sqrt();
                c.quality.swd.mean - best.quality.swd.mean <= band
            })
            .map(|c| c.spec.clone())
            .collect();
        notes.push(format!(
            "NFE budget {b} (cells with NFE <= {b}): best SWD {} ({}); not distinguishable (within 2 combined SE): {}",
            fmt_ms(&best.quality.swd),
            best.spec,
            tied.join(", ")
        ));
    }
    notes
}

pub(super) fn fmt_ms(m: &MeanSe) -> String {
    fmt_ms_p(m, 4)
}

pub(super) fn fmt_ms_p(m: &MeanSe, p: usize) -> String {
    if m.mean.abs() >= 1e4 {
        return fmt_sci(m);
    }
    if m.se.is_finite() {
        format!("{:.p$} ± {:.p$}", m.mean, m.se)
    } else {
        format!("{:.p$}", m.mean)
    }
}

pub(super) fn fmt_sci(m: &MeanSe) -> String {
    if m.se.is_finite() {
        format!("{:.2e} ± {:.1e}", m.mean, m.se)
    } else {
        format!("{:.2e}", m.mean)
    }
}

pub(super) fn pct(m: &MeanSe) -> String {
    let p = MeanSe {
        mean: 100.0 * m.mean,
        se: 100.0 * m.se,
        n: m.n,
    };
    format!("{}%", fmt_ms_p(&p, 1))
}

/// The Markdown table: one row per run cell, then the data floor row.
pub(super) fn results_table(
    cells: &[Cell],
    floor: &Summary,
    mixture: bool,
    support: bool,
) -> Table {
    let mut headers = vec![
        "sampler",
        "budget",
        "steps",
        "NFE",
        "seconds",
        "SWD",
        "SWD / floor",
        "MMD²",
        "energy",
    ];
    if mixture {
        headers.extend(["mode coverage", "high quality", "mean log p"]);
    }
    if support {
        headers.push("in support");
    }
    headers.extend(["precision", "recall", "density", "coverage"]);
    let mut t = Table::new(&headers);
    let extra = |q: &Summary| -> Vec<String> {
        let mut v = Vec::new();
        if let Some([c, h, l]) = &q.mixture {
            v.extend([pct(c), pct(h), fmt_ms_p(l, 3)]);
        }
        if let Some(s) = &q.in_support {
            v.push(pct(s));
        }
        v.extend(q.prdc.iter().map(|m| fmt_ms_p(m, 3)));
        v
    };
    for c in cells {
        let mut row = c.table_lead(3);
        row.extend([
            fmt_ms(&c.quality.swd),
            format!("{:.2}", c.quality.swd.mean / floor.swd.mean),
            fmt_sci(&c.quality.mmd),
            fmt_sci(&c.quality.energy),
        ]);
        row.extend(extra(&c.quality));
        t.rows.push(row);
    }
    let mut row = vec![
        "data (noise floor)".to_string(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        fmt_ms(&floor.swd),
        "1.00".into(),
        fmt_sci(&floor.mmd),
        fmt_sci(&floor.energy),
    ];
    row.extend(extra(floor));
    t.rows.push(row);
    t
}

/// The CSV: one row per (sampler, budget) in sampler-then-budget order;
/// skipped cells have empty metric fields and a note.
pub(super) fn results_csv(
    cells: &[Cell],
    skipped: &[(String, usize, String)],
    floor: &Summary,
    budgets: &[usize],
    plans: &[(String, Plan)],
) -> Table {
    let mut headers = LEAD_COLUMNS.to_vec();
    headers.extend([
        "swd_mean",
        "swd_se",
        "swd_over_floor",
        "floor_mean",
        "floor_se",
        "mmd2_mean",
        "mmd2_se",
        "energy_mean",
        "energy_se",
        "mode_coverage_mean",
        "mode_coverage_se",
        "high_quality_mean",
        "high_quality_se",
        "log_density_mean",
        "log_density_se",
        "in_support_mean",
        "in_support_se",
        "note",
        "precision_mean",
        "precision_se",
        "recall_mean",
        "recall_se",
        "density_mean",
        "density_se",
        "coverage_mean",
        "coverage_se",
    ]);
    let mut t = Table::new(&headers);
    t.rows = csv_rows(plans, budgets, cells, skipped, (25, 34), |c| {
        let q = &c.quality;
        let mut row = c.csv_lead();
        row.extend(ms(Some(&q.swd)));
        row.push(format!("{}", q.swd.mean / floor.swd.mean));
        row.extend(ms(Some(&floor.swd)));
        row.extend(ms(Some(&q.mmd)));
        row.extend(ms(Some(&q.energy)));
        for i in 0..3 {
            row.extend(ms(q.mixture.as_ref().map(|m| &m[i])));
        }
        row.extend(ms(q.in_support.as_ref()));
        row.push(String::new());
        for m in &q.prdc {
            row.extend(ms(Some(m)));
        }
        row
    });
    t
}

/// The two CSV fields of a metric, `mean` and `se` (empty if absent).
pub(super) fn ms(m: Option<&MeanSe>) -> [String; 2] {
    match m {
        Some(m) => [format!("{}", m.mean), format!("{}", m.se)],
        None => [String::new(), String::new()],
    }
}

/// The headers of the columns [`Cell::csv_lead`] fills.
pub(super) const LEAD_COLUMNS: [&str; 8] = [
    "sampler",
    "name",
    "budget",
    "steps",
    "rtol",
    "nfe",
    "seconds_mean",
    "seconds_se",
];

impl<Q> Cell<Q> {
    /// The first columns of a Markdown table row: sampler spec, budget,
    /// steps (or the tolerance), NFE and the mean seconds to `digits` places.
    pub(super) fn table_lead(&self, digits: usize) -> Vec<String> {
        vec![
            self.spec.clone(),
            self.budget.to_string(),
            match (self.steps, self.rtol) {
                (Some(s), _) => s.to_string(),
                (None, Some(r)) => format!("rtol {r:.0e}"),
                _ => "-".into(),
            },
            self.nfe.to_string(),
            format!("{:.digits$}", self.seconds.mean),
        ]
    }

    /// The first columns of a CSV row, under [`LEAD_COLUMNS`].
    pub(super) fn csv_lead(&self) -> Vec<String> {
        vec![
            self.spec.clone(),
            self.sampler.clone(),
            self.budget.to_string(),
            self.steps.map(|s| s.to_string()).unwrap_or_default(),
            self.rtol.map(|r| format!("{r:e}")).unwrap_or_default(),
            self.nfe.to_string(),
            format!("{}", self.seconds.mean),
            format!("{}", self.seconds.se),
        ]
    }
}

/// The CSV rows of the cells in sampler-then-budget order: a cell that ran
/// as `row(cell)`; a skipped one as its spec and budget (columns 0 and 2)
/// and the reason in column `note` of `width` columns, the rest empty.
pub(super) fn csv_rows<Q>(
    plans: &[(String, Plan)],
    budgets: &[usize],
    cells: &[Cell<Q>],
    skipped: &[(String, usize, String)],
    (note, width): (usize, usize),
    mut row: impl FnMut(&Cell<Q>) -> Vec<String>,
) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (spec, _) in plans {
        for &b in budgets {
            if let Some(c) = cells.iter().find(|c| &c.spec == spec && c.budget == b) {
                rows.push(row(c));
            } else if let Some((_, _, why)) =
                skipped.iter().find(|(s, bb, _)| s == spec && *bb == b)
            {
                let mut r = vec![spec.clone(), String::new(), b.to_string()];
                r.resize(note, String::new());
                r.push(why.clone());
                r.resize(width, String::new());
                rows.push(r);
            }
        }
    }
    rows
}

#[allow(clippy::too_many_arguments)]
pub(super) fn results_markdown(
    label: &str,
    data: Toy,
    sde: &dyn Sde,
    opts: &CompareOptions,
    floor: &Summary,
    table: &Table,
    notes: &[String],
    skipped_cells: &[(String, usize, String)],
    skipped_samplers: &[(String, String)],
) -> String {
    let mut md = format!(
        "# Sampler comparison: {label}\n\n\
         Reference data: {}; SDE: {} (t from {} to {}); {} samples per run; {} seeds \
         (each a different sampling seed and a different reference draw); base seed {}.\n\n\
         Every metric is mean ± SE over seeds. SWD: {} directions, all {} points. \
         MMD² (unbiased, RBF, one median-heuristic bandwidth for the whole comparison) and \
         energy distance: the first {} points of each set. The noise floor is the same \
         metric between two independent data draws: SWD floor {}. Precision / recall (k-NN \
         manifolds, k = {}) and density / coverage (k = {}): the first {} points of each set \
         against the same reference points.\n\n",
        data.name(),
        sde.config().name(),
        sde.t_max(),
        sde.t_eps(),
        opts.n,
        opts.seeds,
        opts.seed,
        SWD_PROJECTIONS,
        opts.n,
        opts.n.min(PAIRWISE_SUBSET),
        fmt_ms(&floor.swd),
        crate::metrics::PR_K,
        crate::metrics::DC_K,
        opts.n.min(PAIRWISE_SUBSET),
    );
    md.push_str(&table.to_markdown());
    md.push_str("\n## Not distinguishable\n\n");
    for n in notes {
        md.push_str(&format!("- {n}\n"));
    }
    push_skipped(&mut md, skipped_cells, skipped_samplers);
    md
}

pub(super) fn write_figures(
    dir: &Path,
    label: &str,
    plans: &[(String, Plan)],
    budgets: &[usize],
    cells: &[Cell],
    floor: &Summary,
    reference: &Array2<f32>,
) -> Result<()> {
    let series = |x: &dyn Fn(&Cell) -> f64| -> Vec<viz::Series> {
        plans
            .iter()
            .map(|(spec, _)| {
                let cs: Vec<&Cell> = cells.iter().filter(|c| &c.spec == spec).collect();
                viz::Series {
                    name: spec.clone(),
                    points: cs.iter().map(|c| (x(c), c.quality.swd.mean)).collect(),
                    err: Some(cs.iter().map(|c| c.quality.swd.se).collect()),
                }
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let hline = Some((floor.swd.mean, "noise floor (data vs data)".to_string()));
    let by_nfe = |c: &Cell| c.nfe as f64;
    let by_time = |c: &Cell| c.seconds.mean;
    // (file, "quality vs ...", x-axis label, x of a cell)
    type Plot<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(&Cell) -> f64);
    let plots: [Plot; 2] = [
        (
            "quality_vs_nfe.png",
            "NFE",
            "model evaluations per sample (NFE)",
            &by_nfe,
        ),
        (
            "quality_vs_time.png",
            "wall time",
            "seconds per run",
            &by_time,
        ),
    ];
    for (file, versus, x_label, x) in plots {
        viz::line_plot(
            &dir.join(file),
            &viz::LinePlot {
                title: format!("Sample quality vs {versus}: {label}"),
                x_label: x_label.into(),
                y_label: "sliced Wasserstein distance (mean ± SE)".into(),
                log_x: true,
                log_y: true,
                series: series(x),
                hline: hline.clone(),
                ..viz::LinePlot::default()
            },
        )?;
    }
    let (rows, cols, grid) = sheet_cells(plans, budgets, cells, &|c: &Cell| {
        (c.spec.as_str(), c.budget, c.samples.view())
    });
    let r = reference
        .iter()
        .filter(|v| v.is_finite())
        .fold(4.5f32, |m, v| m.max(1.05 * v.abs()));
    let mut topts = viz::ThumbnailOptions {
        title: Some(format!("Samples (first seed): {label}")),
        ..viz::ThumbnailOptions::default()
    };
    topts.density.range = [(-r, r), (-r, r)];
    viz::thumbnail_grid(&dir.join("thumbnails.png"), &rows, &cols, &grid, &topts)
}

/// Row labels (sampler specs), column labels (`NFE b`) and the cells of a
/// thumbnail sheet; `part` gives a cell's (spec, budget, points or images).
#[allow(clippy::type_complexity)]
pub(super) fn sheet_cells<'a, C>(
    plans: &[(String, Plan)],
    budgets: &[usize],
    cells: &'a [C],
    part: &dyn Fn(&'a C) -> (&'a str, usize, ArrayView2<'a, f32>),
) -> (
    Vec<String>,
    Vec<String>,
    Vec<Vec<Option<ArrayView2<'a, f32>>>>,
) {
    let rows: Vec<String> = plans.iter().map(|(s, _)| s.clone()).collect();
    let cols: Vec<String> = budgets.iter().map(|b| format!("NFE {b}")).collect();
    let grid = rows
        .iter()
        .map(|spec| {
            budgets
                .iter()
                .map(|&b| {
                    cells
                        .iter()
                        .map(part)
                        .find_map(|(s, bb, v)| (s == spec && bb == b).then_some(v))
                })
                .collect()
        })
        .collect();
    (rows, cols, grid)
}

/// The "Skipped cells" and "Skipped samplers" sections of a results page.
pub(super) fn push_skipped(
    md: &mut String,
    skipped_cells: &[(String, usize, String)],
    skipped_samplers: &[(String, String)],
) {
    if !skipped_cells.is_empty() {
        md.push_str("\n## Skipped cells\n\n");
        for (s, b, why) in skipped_cells {
            md.push_str(&format!("- {s} at budget {b}: {why}\n"));
        }
    }
    if !skipped_samplers.is_empty() {
        md.push_str("\n## Skipped samplers\n\n");
        for (s, why) in skipped_samplers {
            md.push_str(&format!("- {s}: {why}\n"));
        }
    }
}
