//! `scoresde sample`: draw samples from a checkpoint and write them as
//! `.npy` and pictures (with the 2-D reference metrics).

use std::path::Path;

use anyhow::{bail, Context, Result};

use scoresde::app::reference::Reference;
use scoresde::data::Toy;
use scoresde::guidance::labels::{self, LabelSource};
use scoresde::imaging;
use scoresde::model::ScoreModel;
use scoresde::samplers::{self, SampleOptions};
use scoresde::score::Score;
use scoresde::{npy, viz};

use crate::args::{parse_clip, Clip, SampleArgs};

pub(crate) fn run_sample(a: SampleArgs) -> Result<()> {
    // Arguments first, then the model: nothing slow happens before both are
    // checked, and the output folder is created only after every check.
    let sampler = samplers::by_name(&a.sampler, a.steps)?;
    if a.n == Some(0) {
        bail!("invalid n = 0: expected an integer >= 1");
    }
    if a.batch == 0 {
        bail!("invalid batch = 0: expected an integer >= 1");
    }
    if a.grid == Some(0) {
        bail!("invalid grid = 0: expected an integer >= 1");
    }
    let clip_x0 = a.clip_x0.as_deref().map(parse_clip).transpose()?;
    let guidance = parse_guidance(&a)?;
    let label_source = parse_labels(&a)?;
    let classifier_args = parse_classifier_args(&a)?;
    let npy_path = a.out.join("samples.npy");
    let png_path = a.out.join("samples.png");
    let gif_path = a.out.join("reverse.gif");
    if !a.force {
        for p in [&npy_path, &png_path, &gif_path] {
            if std::fs::symlink_metadata(p).is_ok() {
                bail!(
                    "{} exists; pass --force to overwrite or choose another --out",
                    p.display()
                );
            }
        }
    }
    scoresde::fsutil::check_writable_dir("out", &a.out)?;
    let model = ScoreModel::load(&a.model)?;
    let image_shape = imaging::image_shape_of(&model.config);
    if image_shape.is_none() {
        if let Some(g) = a.grid {
            bail!("invalid grid = {g}: expected no --grid: it sets the image grid, and this model makes 2-D points");
        }
    }
    let dim = Score::dim(&model);
    if image_shape.is_none() && dim != 2 {
        bail!(
            "{}: the model makes points of {dim} values, neither 2-D nor a known image shape; \
             its samples cannot be shown or scored",
            a.model.display()
        );
    }
    let grid = a.grid.unwrap_or(64);
    // One grid's worth for an image model (10,000 images at 1,000 steps
    // would take the better part of an hour); enough points for the 2-D
    // metrics otherwise.
    let n =
        a.n.unwrap_or(if image_shape.is_some() { grid } else { 10_000 });
    sampler.validate(model.sde())?;
    let classifier = match &classifier_args {
        None => None,
        Some(c) => Some((load_matching_classifier(c, &model)?, c)),
    };
    let plan = match &classifier {
        Some((clf, c)) => Plan::Score(Some(classifier_guided(&model, clf, c)?)),
        None => plan(&model, &a, guidance, label_source, n)?,
    };
    // The samples, a trajectory of at most 41 frames and, for 2-D data, the
    // reference draws of the metrics.
    let d = dim as f64;
    let metric_n = n.min(scoresde::limits::MAX_QUADRATIC_METRIC_N);
    let bytes = 4.0
        * d
        * (n as f64
            + if a.gif {
                41.0 * n.min(4000) as f64
            } else {
                0.0
            })
        + if image_shape.is_none() {
            8.0 * 24.0 * metric_n as f64
        } else {
            0.0
        };
    scoresde::limits::check_memory("n", n, bytes, "samples")?;
    let mut opts = SampleOptions::new(n, a.seed);
    opts.batch = a.batch;
    if a.gif {
        opts.record_every = Some((a.steps / 40).max(1));
        opts.record_rows = if image_shape.is_some() {
            n.min(grid.max(1))
        } else {
            n.min(4000)
        };
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let _lock = scoresde::fsutil::lock_dir(&a.out)?;
    let start = std::time::Instant::now();
    let clip = match clip_x0 {
        Some(Clip::Off) => None,
        Some(Clip::At(c)) => Some(c),
        None => image_shape.is_some().then_some(1.0),
    };
    let run = |base: &dyn Score, o: &SampleOptions| {
        let clipped = clip.map(|clip| scoresde::score::ClipX0 {
            inner: base,
            sde: model.sde(),
            clip,
        });
        let score: &dyn Score = match &clipped {
            Some(c) => c,
            None => base,
        };
        samplers::sample(sampler.as_ref(), model.sde(), score, o)
    };
    let out = match &plan {
        Plan::Score(c) => run(c.as_deref().unwrap_or(&model), &opts)?,
        Plan::Labels(labels) => labels::sample_labelled(labels, dim, &opts, |k, o| {
            run(class_score(&model, k, guidance)?.as_ref(), o)
        })?,
    };
    let seconds = start.elapsed().as_secs_f64();
    if let Some(shape) = image_shape {
        let paths = imaging::write_image_samples(
            &a.out,
            out.samples.view(),
            shape,
            grid,
            out.trajectory.as_ref(),
        )?;
        if out.trajectory.is_none() {
            // --force: an older GIF must not sit beside the new samples.
            remove_stale(&gif_path)?;
        }
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        println!(
            "{} images with {} (NFE {}) in {seconds:.1} s -> {}",
            n,
            sampler.label(),
            out.nfe,
            names.join(", ")
        );
        return Ok(());
    }
    npy::write(&npy_path, out.samples.view())?;
    if out.trajectory.is_none() {
        remove_stale(&gif_path)?;
    }
    let mut caption = format!("NFE {}, {:.1} s", out.nfe, seconds);
    // The reference metrics compare with the whole data set, not a class.
    if let (Ok(data), None) = (Toy::from_name(&model.config.data), a.class) {
        // MMD is quadratic in the count: the metrics use the first
        // metric_n samples (all of them up to the cap), as `compare` does.
        let reference = Reference::new(
            data,
            metric_n,
            scoresde::rng::derive(a.seed, scoresde::rng::domain::SAMPLE_REFERENCE, 0),
        );
        let scored = out.samples.slice(ndarray::s![..metric_n, ..]).to_owned();
        let q = reference.quality(data, &scored);
        if metric_n < n {
            println!(
                "metrics on the first {metric_n} of {} samples (MMD is quadratic in the count)",
                n
            );
        }
        caption = format!(
            "SWD {:.4} ({:.2}x floor), {caption}",
            q.swd.mean,
            q.swd.mean / reference.floor.mean
        );
        println!(
            "SWD {} (floor {}), MMD² {:.2e}{}",
            q.swd,
            reference.floor,
            q.mmd,
            q.in_support
                .zip(q.in_box)
                .map(|(s, b)| format!(
                    ", in squares {:.1}%, in [-4,4]² {:.1}%",
                    100.0 * s,
                    100.0 * b
                ))
                .unwrap_or_default()
        );
    }
    let panel = viz::Panel {
        title: sampler.label(),
        caption,
        points: out.samples.view(),
    };
    viz::scatter_panels(&png_path, &[panel], &viz::ScatterOptions::default())?;
    if let Some(tr) = &out.trajectory {
        let frames: Vec<_> = tr.frames.iter().map(|f| f.view()).collect();
        let labels: Vec<String> = tr.times.iter().map(|t| format!("t = {t:.3}")).collect();
        viz::trajectory_gif(&gif_path, &frames, &labels, &viz::GifOptions::default())?;
    }
    println!(
        "{} samples with {} (NFE {}) in {seconds:.1} s -> {}",
        n,
        sampler.label(),
        out.nfe,
        a.out.display()
    );
    Ok(())
}

/// `--guidance` and `--guidance-interval`, checked before the model loads:
/// (w, interval).
type Guidance = Option<(f64, Option<(f64, f64)>)>;

fn parse_guidance(a: &SampleArgs) -> Result<Guidance> {
    if let Some(w) = a.guidance {
        if !(w.is_finite() && w >= 0.0) {
            bail!("invalid guidance = {w}: expected a finite number >= 0");
        }
    }
    let interval = match &a.guidance_interval {
        None => None,
        Some(s) => {
            if a.guidance.is_none() {
                bail!("invalid guidance-interval = {s}: expected no --guidance-interval without --guidance W");
            }
            let parts: Vec<&str> = s.split(',').collect();
            let bad = || {
                anyhow::anyhow!(
                    "invalid guidance-interval = {s}: expected lo,hi with 0 <= lo < hi, both finite \
                     (noise levels sigma/alpha between which guidance is applied)"
                )
            };
            let [lo, hi] = parts[..] else {
                return Err(bad());
            };
            let (lo, hi) = (
                lo.trim().parse::<f64>().map_err(|_| bad())?,
                hi.trim().parse::<f64>().map_err(|_| bad())?,
            );
            if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo < hi) {
                return Err(bad());
            }
            Some((lo, hi))
        }
    };
    Ok(a.guidance.map(|w| (w, interval)))
}

/// Checked `--classifier DIR --class K --classifier-scale G`.
struct ClassifierArgs<'a> {
    dir: &'a Path,
    class: usize,
    scale: f64,
}

/// `--classifier` and `--classifier-scale`, checked before the model
/// loads (scale default 1); `None` without `--classifier`.
fn parse_classifier_args(a: &SampleArgs) -> Result<Option<ClassifierArgs<'_>>> {
    let Some(dir) = &a.classifier else {
        if let Some(g) = a.classifier_scale {
            bail!("invalid classifier-scale = {g}: expected no --classifier-scale without --classifier DIR");
        }
        return Ok(None);
    };
    let g = a.classifier_scale.unwrap_or(1.0);
    if !(g.is_finite() && g >= 0.0) {
        bail!("invalid classifier-scale = {g}: expected a finite number >= 0");
    }
    let Some(class) = a.class else {
        bail!(
            "invalid classifier = {}: expected --class K with --classifier (the class to guide towards)",
            dir.display()
        );
    };
    if let Some(w) = a.guidance {
        bail!(
            "invalid guidance = {w}: expected no --guidance with --classifier (classifier-free and classifier guidance are alternatives)"
        );
    }
    Ok(Some(ClassifierArgs {
        dir,
        class,
        scale: g,
    }))
}

/// The classifier in `dir`, if it was trained on the model's data, shape
/// and SDE.
fn load_matching_classifier(
    c: &ClassifierArgs,
    model: &ScoreModel,
) -> Result<scoresde::guidance::TrainedClassifier> {
    use scoresde::guidance::NoisyClassifier;
    let clf = scoresde::checkpoint::classifier::load_classifier(c.dir)?;
    let d = c.dir.display();
    if clf.config.data != model.config.data {
        bail!(
            "invalid classifier = {d}: expected a classifier of the model's data {} (it was trained on {})",
            model.config.data,
            clf.config.data
        );
    }
    let dim = Score::dim(model);
    if clf.input_dim() != dim {
        bail!(
            "invalid classifier = {d}: expected inputs of the model's {dim} values (it takes {})",
            clf.input_dim()
        );
    }
    if clf.config.sde != model.config.sde {
        bail!(
            "invalid classifier = {d}: expected a classifier trained on the model's {} SDE {:?} (it was trained on {:?})",
            model.config.sde.name(),
            model.config.sde,
            clf.config.sde
        );
    }
    let n = clf.label_count();
    let k = c.class;
    if k >= n {
        bail!(
            "invalid class = {k}: expected a class in 0..={} (the classifier has {n} classes)",
            n - 1
        );
    }
    Ok(clf)
}

/// The model's score guided by `clf` towards `--class K` with scale `G`.
fn classifier_guided<'m>(
    model: &'m ScoreModel,
    clf: &'m scoresde::guidance::TrainedClassifier,
    c: &ClassifierArgs,
) -> Result<Box<dyn Score + 'm>> {
    Ok(Box::new(scoresde::guidance::ClassifierGuidance::new(
        model, clf, c.class, c.scale,
    )?))
}

/// `--labels`, checked before the model loads: not with `--class`, and
/// `null` not with `--guidance`.
fn parse_labels(a: &SampleArgs) -> Result<Option<LabelSource>> {
    let Some(s) = &a.labels else {
        return Ok(None);
    };
    let source = LabelSource::parse(s)?;
    if let Some(k) = a.class {
        bail!("invalid labels = {s}: expected no --labels with --class {k} (every sample is of class {k})");
    }
    if let (LabelSource::Null, Some(w)) = (source, a.guidance) {
        bail!("invalid guidance = {w}: expected no --guidance with --labels null (guidance needs a class)");
    }
    Ok(Some(source))
}

/// What a sampler run draws from: one score (`None`: the model's own),
/// or a label per sample of a class-conditional model.
enum Plan<'m> {
    Score(Option<Box<dyn Score + 'm>>),
    Labels(Vec<usize>),
}

/// The score of `--class K` (with classifier-free guidance under
/// `--guidance`); without `--class` on a class-conditional model, the
/// labels of the `n` samples from `--labels` (default: the training
/// labels' frequencies); else the model's own score.
fn plan<'m>(
    model: &'m ScoreModel,
    a: &SampleArgs,
    guidance: Guidance,
    source: Option<LabelSource>,
    n: usize,
) -> Result<Plan<'m>> {
    let classes = model.config.net.n_classes();
    let Some(k) = a.class else {
        if classes == 0 {
            if let Some(s) = &a.labels {
                bail!(
                    "invalid labels = {s}: expected no --labels: the model in {} is unconditional",
                    a.model.display()
                );
            }
            if let Some((w, _)) = guidance {
                bail!(
                    "invalid guidance = {w}: expected no --guidance: the model in {} is unconditional \
                     (classifier-free guidance needs a class-conditional model and a class)",
                    a.model.display()
                );
            }
            return Ok(Plan::Score(None));
        }
        let weights = match source.unwrap_or(LabelSource::Data) {
            LabelSource::Null => return Ok(Plan::Score(None)),
            LabelSource::Uniform => vec![1.0; classes],
            LabelSource::Data => {
                let data = scoresde::data::TrainData::by_name(&model.config.data, None, None)?;
                match data.class_weights() {
                    Some(w) if w.len() == classes => w,
                    _ => bail!(
                        "invalid labels = data: expected the {classes} class frequencies of the training \
                         data {}, which it does not label so; pass --labels uniform or --class K",
                        model.config.data
                    ),
                }
            }
        };
        return Ok(Plan::Labels(labels::draw_labels(&weights, n, a.seed)?));
    };
    if classes == 0 {
        bail!(
            "invalid class = {k}: expected no --class: the model in {} is unconditional \
             (train with --conditional for a class-conditional model)",
            a.model.display()
        );
    }
    if k >= classes {
        bail!(
            "invalid class = {k}: expected a class in 0..={} (the model has {classes} classes)",
            classes - 1
        );
    }
    Ok(Plan::Score(Some(class_score(model, k, guidance)?)))
}

/// The score of class `k` of a class-conditional model, with
/// classifier-free guidance under `guidance`.
fn class_score(
    model: &ScoreModel,
    k: usize,
    guidance: Guidance,
) -> scoresde::Result<Box<dyn Score + '_>> {
    use scoresde::guidance::{ClassifierFree, Condition, ConditionalScore};
    match guidance {
        None => model.with_condition(Condition::Class(k)),
        Some((w, interval)) => Ok(Box::new(ClassifierFree::new(
            model,
            k,
            w,
            interval,
            model.sde(),
        )?)),
    }
}

/// Remove an output of an earlier run that this run does not rewrite
/// (only reached with --force, which allows replacing it).
fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
}
