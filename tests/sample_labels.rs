//! Sampling a class-conditional model with a label per sample
//! (`guidance::labels`, `sample` without `--class`): the labels follow the
//! class weights within 4 SE, each sample lands in its label's mode of an
//! exact conditional mixture score, and the output is the same bits for
//! any batch size, thread count and sample count (prefix). `train --data
//! mnist` trains such a model by default.

use ndarray::Array2;
use scoresde::data::GaussianMixture;
use scoresde::guidance::labels::{draw_labels, label_frequencies, sample_labelled};
use scoresde::guidance::{Condition, ConditionalScore};
use scoresde::oracle::MixtureScore;
use scoresde::prelude::*;

/// Binomial counts of `labels` against weights `w`: each within 4 SE.
fn assert_counts_follow(labels: &[usize], w: &[f64]) {
    let n = labels.len() as f64;
    let total: f64 = w.iter().sum();
    for (k, &c) in label_frequencies(labels, w.len()).iter().enumerate() {
        let p = w[k] / total;
        let se = (n * p * (1.0 - p)).sqrt();
        assert!(
            (c - n * p).abs() <= 4.0 * se,
            "class {k}: {c} of {n}, expected {} ± {se}",
            n * p
        );
        if p == 0.0 {
            assert_eq!(c, 0.0, "class {k} has weight 0");
        }
    }
}

#[test]
fn labels_follow_the_weights_and_are_prefix_stable() {
    let w = [1.0, 2.0, 0.0, 5.0, 0.5];
    let labels = draw_labels(&w, 20_000, 7).unwrap();
    assert_counts_follow(&labels, &w);
    assert_eq!(draw_labels(&w, 300, 7).unwrap(), labels[..300]);
    assert_ne!(draw_labels(&w, 300, 8).unwrap(), labels[..300]);
    for bad in [vec![0.0, 0.0], vec![1.0, -1.0], vec![f64::NAN], vec![]] {
        let err = draw_labels(&bad, 5, 0).unwrap_err().to_string();
        assert!(err.contains("class weights"), "{err}");
    }
}

/// Three well-separated modes of unequal weight, labelled by component.
fn three_modes() -> MixtureScore {
    let mixture = GaussianMixture {
        means: vec![vec![-4.0, 0.0], vec![0.0, 4.0], vec![4.0, 0.0]],
        weights: vec![0.2, 0.3, 0.5],
        std: 0.3,
    };
    MixtureScore::new(mixture, &SdeConfig::by_name("vp").unwrap())
        .unwrap()
        .with_labels(vec![0, 1, 2])
        .unwrap()
}

fn run(m: &MixtureScore, labels: &[usize], opts: &SampleOptions) -> SampleOutput {
    let sampler = by_name("ddpm", 100).unwrap();
    sample_labelled(labels, 2, opts, |k, o| {
        let score = m.with_condition(Condition::Class(k))?;
        sample(sampler.as_ref(), m.sde(), score.as_ref(), o)
    })
    .unwrap()
}

#[test]
fn each_sample_lands_in_its_labels_mode() {
    let m = three_modes();
    let w = &m.mixture().weights;
    let labels = draw_labels(w, 3000, 0).unwrap();
    let out = run(&m, &labels, &SampleOptions::new(3000, 0));
    assert_eq!(out.nfe, 100);
    let mut wrong = 0;
    for (x, &y) in out.samples.rows().into_iter().zip(&labels) {
        let (k, _) = m.mixture().nearest(&[x[0] as f64, x[1] as f64]);
        wrong += usize::from(k != y);
    }
    // The modes are 13 σ apart: a sample of p(x | y) is in mode y.
    assert!(
        wrong <= 3,
        "{wrong} of 3000 samples outside their label's mode"
    );
    // So the modes' shares are the data's weights.
    assert_counts_follow(&labels, w);
}

#[test]
fn labelled_samples_do_not_depend_on_batch_threads_or_count() {
    let m = three_modes();
    let w = m.mixture().weights.clone();
    let labels = draw_labels(&w, 300, 3).unwrap();
    let with = |batch: usize, threads: usize, n: usize| -> SampleOutput {
        let mut o = SampleOptions::new(n, 3);
        o.batch = batch;
        o.record_every = Some(25);
        o.record_rows = 10;
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run(&m, &labels[..n], &o))
    };
    let base = with(500, 1, 300);
    let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (batch, threads) in [(7, 3), (64, 1), (64, 3)] {
        let other = with(batch, threads, 300);
        assert_eq!(
            bits(&base.samples),
            bits(&other.samples),
            "batch {batch}, {threads} threads"
        );
        let (a, b) = (
            base.trajectory.as_ref().unwrap(),
            other.trajectory.as_ref().unwrap(),
        );
        assert_eq!(a.times, b.times);
        for (fa, fb) in a.frames.iter().zip(&b.frames) {
            assert_eq!(
                bits(fa),
                bits(fb),
                "trajectory, batch {batch}, {threads} threads"
            );
        }
    }
    // The first 120 of 300 samples are the samples of 120.
    let prefix = with(64, 3, 120);
    assert_eq!(
        bits(&base.samples.slice(ndarray::s![..120, ..]).to_owned()),
        bits(&prefix.samples)
    );
    // The trajectory keeps the first 10 samples in sample order, ending at them.
    let tr = base.trajectory.unwrap();
    assert_eq!(tr.frames[0].nrows(), 10);
    let last = tr.frames.last().unwrap();
    assert_eq!(
        bits(last),
        bits(&base.samples.slice(ndarray::s![..10, ..]).to_owned())
    );
}
/// `train --data mnist` trains on the 10 labels (label dropout 0.1);
/// `--conditional off` and `--recipe spec` train unconditional, and an
/// unlabelled set refuses `--conditional on`.
#[test]
fn mnist_trains_conditional_by_default() {
    use scoresde::app::options::{resolve_train, DataRequest, HyperRequest, TrainRequest};
    let req = |data: &str, recipe: Option<&str>, conditional: Option<bool>| TrainRequest {
        data: DataRequest {
            name: Some(data.to_string()),
            ..DataRequest::default()
        },
        hyper: HyperRequest {
            recipe: recipe.map(String::from),
            conditional,
            ..HyperRequest::default()
        },
        ..TrainRequest::default()
    };
    let classes = |r: &TrainRequest| resolve_train(r, None).unwrap().net.n_classes();
    assert_eq!(classes(&req("mnist", None, None)), 10);
    assert_eq!(
        resolve_train(&req("mnist", None, None), None)
            .unwrap()
            .label_dropout,
        0.1
    );
    assert_eq!(classes(&req("mnist", None, Some(false))), 0);
    assert_eq!(classes(&req("mnist", Some("spec"), None)), 0);
    assert_eq!(classes(&req("digits", None, None)), 0);
    assert_eq!(classes(&req("digits", None, Some(true))), 10);
    let err = resolve_train(&req("moons", None, Some(true)), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("labelled data set"), "{err}");
}

/// `ScoreSource::Labelled` (what `compare` runs on a class-conditional
/// model) is labels from the run's seed, then the labelled sampler; it
/// refuses class weights and scores of different counts.
#[test]
fn a_labelled_source_draws_its_labels_from_the_run_seed() {
    use scoresde::guidance::labels::{Labelled, ScoreSource};
    let m = three_modes();
    let w = m.mixture().weights.clone();
    let conds: Vec<_> = (0..3)
        .map(|k| m.with_condition(Condition::Class(k)).unwrap())
        .collect();
    let classes: Vec<&dyn Score> = conds.iter().map(|c| c.as_ref()).collect();
    let source = ScoreSource::Labelled(Labelled::new(&w, &classes).unwrap());
    assert_eq!(source.dim(), 2);
    let opts = SampleOptions::new(200, 11);
    let sampler = by_name("ddpm", 100).unwrap();
    let got = source.sample(sampler.as_ref(), m.sde(), &opts).unwrap();
    let want = run(&m, &draw_labels(&w, 200, 11).unwrap(), &opts);
    assert_eq!(got.samples, want.samples);
    assert!(Labelled::new(&w[..2], &classes).is_err());
}
