//! `scoresde inpaint`: complete the hidden part of data-set images with a
//! trained model or the exact empirical oracle, by replacement (any
//! sampler) or RePaint; writes a grid (per image: the original, the masked
//! input, the completions) and prints the known-pixel error and, for MNIST,
//! the bundled classifier's agreement with the original's label.

use anyhow::{bail, Context, Result};
use ndarray::Array2;

use scoresde::data::images::Split;
use scoresde::data::source::{data_dir, load_image_set};
use scoresde::guidance::{colorize, repaint, Mask, RepaintOptions, Replacement};
use scoresde::model::ScoreModel;
use scoresde::nn::classifier::{argmax, Classifier};
use scoresde::oracle::EmpiricalScore;
use scoresde::samplers::{self, SampleOptions};
use scoresde::score::{ClipX0, Score};
use scoresde::sde::{Sde, SdeConfig};

use crate::args::InpaintArgs;

pub(crate) fn run_inpaint(a: InpaintArgs) -> Result<()> {
    if a.n == 0 {
        bail!("invalid n = 0: expected an integer >= 1 (completions per image)");
    }
    let method = a.method.as_str();
    if !matches!(method, "replacement" | "repaint") {
        bail!("invalid method = {method}: expected replacement or repaint");
    }
    if method == "repaint" && a.sampler.is_some() {
        bail!(
            "invalid sampler = {}: expected no --sampler with --method repaint (it runs its own \
             ancestral steps; use --method replacement to choose a sampler)",
            a.sampler.as_deref().unwrap_or_default()
        );
    }
    let steps = a
        .steps
        .unwrap_or(if method == "repaint" { 100 } else { 200 });
    let sampler = samplers::by_name(a.sampler.as_deref().unwrap_or("em"), steps)?;
    let out_png = a.out.join("inpaint.png");
    if !a.force && std::fs::symlink_metadata(&out_png).is_ok() {
        bail!(
            "{} exists; pass --force to overwrite or choose another --out",
            out_png.display()
        );
    }
    scoresde::fsutil::check_writable_dir("out", &a.out)?;
    let set = load_image_set(&a.data, Split::Train)?;
    let (c, h, w) = (set.channels, set.height, set.width);
    let indices = parse_indices(&a.index, set.len())?;
    // Colorization is inpainting in the decoupled grey basis: the grey
    // plane known, the colour planes generated (guidance::colorize).
    let colorize = a.mask == colorize::COLORIZE;
    let mask = if colorize {
        colorize::grey_mask(c, h, w)?
    } else {
        Mask::parse(&a.mask, c, h, w, a.seed)?
    };

    // The score: a checkpoint (x̂0 clipped to the image range) or the oracle.
    let model;
    let oracle;
    let clipped;
    let (score, sde_box): (&dyn Score, Box<dyn Sde>) = match (&a.model, &a.oracle) {
        (Some(dir), None) => {
            model = ScoreModel::load(dir)?;
            let shape = scoresde::imaging::image_shape_of(&model.config);
            if shape != Some((c, h, w)) {
                bail!(
                    "{}: the model makes {}, data set {} has {c}x{h}x{w} images",
                    dir.display(),
                    shape.map_or("2-D points".to_string(), |(a, b, d)| format!(
                        "{a}x{b}x{d} images"
                    )),
                    a.data
                );
            }
            clipped = ClipX0 {
                inner: &model,
                sde: model.sde(),
                clip: 1.0,
            };
            (&clipped, model.config.sde.build()?)
        }
        (None, Some(o)) => {
            let want = format!("{}-empirical", a.data);
            if *o != want {
                bail!("invalid oracle = {o}: expected {want} (the empirical oracle of --data)");
            }
            let cfg = SdeConfig::by_name("vp")?;
            oracle = EmpiricalScore::new(set.pixels.view(), &cfg)?;
            (&oracle, cfg.build()?)
        }
        (Some(_), Some(_)) => bail!("pass either --model DIR or --oracle NAME, not both"),
        (None, None) => bail!("pass --model DIR or --oracle {}-empirical", a.data),
    };
    let sde = sde_box.as_ref();
    sampler.validate(sde)?;
    let hw = h * w;
    let decoupled = if colorize {
        Some(colorize::Decoupled::new(score, hw)?)
    } else {
        None
    };
    let score: &dyn Score = match &decoupled {
        Some(d) => d,
        None => score,
    };

    let d = set.dim();
    let known = mask.known_indices();
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut worst = 0f32;
    let mut completions: Vec<(usize, Array2<f32>)> = Vec::new();
    let start = std::time::Instant::now();
    let mut nfe = 0;
    for (k, &i) in indices.iter().enumerate() {
        let pixels = set.pixels.row(i).to_vec();
        // The point the completion runs on: the image, or its decoupled basis.
        let x0 = if colorize {
            let row = set.pixels.slice(ndarray::s![i..i + 1, ..]);
            colorize::decouple(row, hw).row(0).to_vec()
        } else {
            pixels.clone()
        };
        let seed = a.seed.wrapping_add(k as u64);
        let out = if method == "repaint" {
            let mut o = RepaintOptions::replacement(steps, a.n, seed);
            (o.jump, o.resample) = (a.jump.min(steps), a.resample);
            let r = repaint(score, sde, &mask, &x0, &o)?;
            nfe = r.nfe;
            r.samples
        } else {
            let imp = Replacement::new(score, sde, &mask, &x0)?;
            let mut r =
                samplers::sample(sampler.as_ref(), sde, &imp, &SampleOptions::new(a.n, seed))?;
            imp.paste(r.samples.view_mut());
            nfe = r.nfe;
            r.samples
        };
        for row in out.outer_iter() {
            for &j in &known {
                worst = worst.max((row[j] - x0[j]).abs());
            }
        }
        let masked: Vec<f32> = (0..d)
            .map(|j| if mask.is_known(j) { x0[j] } else { 0.0 })
            .collect();
        // Back to pixels: the masked input of colorization is the grey image.
        let (out, masked) = if colorize {
            let m = Array2::from_shape_vec((1, d), masked).context("masked row")?;
            (
                colorize::couple(out.view(), hw),
                colorize::couple(m.view(), hw).row(0).to_vec(),
            )
        } else {
            (out, masked)
        };
        rows.push(pixels);
        rows.push(masked);
        rows.extend(out.outer_iter().map(|r| r.to_vec()));
        completions.push((i, out));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cols = a.n + 2;
    let flat: Vec<f32> = rows.concat();
    let grid_x = Array2::from_shape_vec((rows.len(), d), flat).context("grid rows")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut grid = scoresde::viz::grid::GridOptions::new(c, h, w);
    grid.cols = cols;
    grid.scale = (64 / h.max(w)).clamp(1, 8);
    scoresde::viz::grid::image_grid_png(&out_png, grid_x.view(), &grid)?;
    println!(
        "{} images x {} completions ({method}, {} steps, NFE {nfe} each) in {seconds:.1} s -> {} \
         (per row: original, masked input, completions)",
        indices.len(),
        a.n,
        steps,
        out_png.display()
    );
    println!(
        "known {}: max |error| {worst:.2e} ({:.2e} of the data range [-1, 1])",
        if colorize {
            "grey levels (r+g+b)/sqrt(3)"
        } else {
            "pixels"
        },
        worst / 2.0
    );
    report_labels(&a.data, &set, &completions)?;
    Ok(())
}

/// `I` or `I,J,...`, each in 0..n.
fn parse_indices(s: &str, n: usize) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',') {
        match part.trim().parse::<usize>() {
            Ok(i) if i < n => v.push(i),
            _ => bail!(
                "invalid index = {part}: expected an image index in 0..={} (the data set has {n} images), \
                 or a comma-separated list of them",
                n.saturating_sub(1)
            ),
        }
    }
    Ok(v)
}

/// MNIST: the bundled classifier's label of each completion against the
/// original's label. Digits (no bundled classifier): how often the
/// completion's nearest training image (L2) is the original.
fn report_labels(
    data: &str,
    set: &scoresde::data::images::ImageSet,
    completions: &[(usize, Array2<f32>)],
) -> Result<()> {
    let total: usize = completions.iter().map(|(_, o)| o.nrows()).sum();
    if data == "mnist" {
        let clf = Classifier::load(&data_dir().join("mnist-classifier.safetensors"))?;
        let Some(labels) = &set.labels else {
            return Ok(());
        };
        let mut agree = 0;
        for (i, out) in completions {
            let (p, _) = clf.predict(out.view());
            agree += p
                .outer_iter()
                .filter(|r| argmax(r.as_slice().expect("rows")) == labels[*i] as usize)
                .count();
        }
        println!(
            "classifier label of the completion = the original's label: {agree}/{total} ({:.1}%)",
            100.0 * agree as f64 / total as f64
        );
    } else {
        let mut hits = 0;
        for (i, out) in completions {
            for r in out.outer_iter() {
                let nearest = (0..set.len())
                    .min_by(|&p, &q| {
                        let dp: f64 = sq(set.pixels.row(p).iter(), r.iter());
                        let dq: f64 = sq(set.pixels.row(q).iter(), r.iter());
                        dp.total_cmp(&dq)
                    })
                    .expect("a non-empty set");
                hits += usize::from(set.pixels.row(nearest) == set.pixels.row(*i));
            }
        }
        println!(
            "nearest training image of the completion = the original: {hits}/{total} ({:.1}%)",
            100.0 * hits as f64 / total as f64
        );
    }
    Ok(())
}

fn sq<'a>(a: impl Iterator<Item = &'a f32>, b: impl Iterator<Item = &'a f32>) -> f64 {
    a.zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}
