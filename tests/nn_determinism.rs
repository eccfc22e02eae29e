//! Determinism of the network: (a) row i of an inference does not depend on
//! how many rows are in the call; (b) inference is bit-identical with 1 and
//! 2 rayon threads; (c) training gradients are reproducible (and, with this
//! backend, identical for 1 and 2 threads).

use ndarray::{s, Array1, Array2, ShapeBuilder};
use scoresde::nn::{Mlp, MlpConfig, TrainCache};
use scoresde::rng::{fill_normal, stream};

fn setup(rows: usize) -> (Mlp, Array2<f32>, Array1<f32>) {
    let net = Mlp::new(MlpConfig::new(2), 42).unwrap();
    let mut xv = vec![0.0; rows * 2];
    fill_normal(&mut stream(1, 0, 0), &mut xv);
    let x = Array2::from_shape_vec((rows, 2), xv).unwrap();
    let t = Array1::from_shape_fn(rows, |i| ((i * 37 % 1000) as f32 + 1.0) / 1000.0);
    (net, x, t)
}

fn run(net: &Mlp, x: &Array2<f32>, t: &Array1<f32>) -> Array2<f32> {
    let mut out = Array2::from_elem((x.nrows(), 2), f32::NAN);
    net.forward(x.view(), t.view(), out.view_mut());
    out
}

/// (a) Bit-identical rows for batch sizes 1, 7, 512 and 1000 (which crosses
/// the 256-row block boundary), for per-row and scalar times, and into a
/// column-major output.
#[test]
fn inference_rows_do_not_depend_on_batch_size() {
    let (net, x, t) = setup(1000);
    let full = run(&net, &x, &t);
    assert!(full.iter().all(|v| v.is_finite()));
    let first512 = run(
        &net,
        &x.slice(s![..512, ..]).to_owned(),
        &t.slice(s![..512]).to_owned(),
    );
    assert_eq!(first512, full.slice(s![..512, ..]), "512-row batch");
    for start in [0, 3, 255, 256, 511, 993] {
        let one = run(
            &net,
            &x.slice(s![start..start + 1, ..]).to_owned(),
            &t.slice(s![start..start + 1]).to_owned(),
        );
        assert_eq!(
            one,
            full.slice(s![start..start + 1, ..]),
            "batch 1 at row {start}"
        );
        let end = (start + 7).min(1000);
        let seven = run(
            &net,
            &x.slice(s![end - 7..end, ..]).to_owned(),
            &t.slice(s![end - 7..end]).to_owned(),
        );
        assert_eq!(
            seven,
            full.slice(s![end - 7..end, ..]),
            "batch 7 ending at {end}"
        );
    }
    // Scalar time: same rows whatever the batch, and equal to per-row times
    // when t is an f32 value.
    let tt = 0.375f32;
    let mut all = Array2::zeros((1000, 2));
    net.forward_t(x.view(), tt as f64, all.view_mut());
    let per_row = run(&net, &x, &Array1::from_elem(1000, tt));
    assert_eq!(all, per_row);
    let mut one = Array2::zeros((1, 2));
    net.forward_t(x.slice(s![600..601, ..]), tt as f64, one.view_mut());
    assert_eq!(one, all.slice(s![600..601, ..]));
    // Strided (column-major) output and a strided input view.
    let mut fout = Array2::zeros((1000, 2).f());
    net.forward(x.view(), t.view(), fout.view_mut());
    assert_eq!(fout, full);
    let xs = x.slice(s![..;2, ..]);
    let mut half = Array2::zeros((500, 2));
    net.forward(xs, t.slice(s![..;2]), half.view_mut());
    assert_eq!(half, full.slice(s![..;2, ..]));
}

/// (b) Inference with 1 and 2 rayon threads gives identical bits.
#[test]
fn inference_is_identical_with_1_and_2_threads() {
    let (net, x, t) = setup(3000);
    let with = |k: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(k)
            .build()
            .unwrap()
            .install(|| run(&net, &x, &t))
    };
    let one = with(1);
    let two = with(2);
    assert_eq!(one, two);
    assert_eq!(one, run(&net, &x, &t));
}

fn grads_with_threads(k: usize) -> (Vec<f32>, Array2<f32>) {
    let (net, x, t) = setup(512);
    let mut r = vec![0.0; 1024];
    fill_normal(&mut stream(2, 0, 0), &mut r);
    let r = Array2::from_shape_vec((512, 2), r).unwrap();
    rayon::ThreadPoolBuilder::new()
        .num_threads(k)
        .build()
        .unwrap()
        .install(|| {
            let mut cache = TrainCache::new();
            let mut g = vec![f32::NAN; net.num_params()];
            net.forward_train(x.view(), t.view(), &mut cache);
            net.backward(&mut cache, r.view(), &mut g);
            (g, cache.output().to_owned())
        })
}

/// (c) Training gradients are reproducible for a given thread count and,
/// since every GEMM splits only output rows and every reduction over the
/// batch runs in row order, identical for 1 and 2 threads.
#[test]
fn training_gradients_are_deterministic() {
    let (g1, y1) = grads_with_threads(1);
    assert!(g1.iter().all(|v| v.is_finite()));
    let (g1b, _) = grads_with_threads(1);
    let (g2, y2) = grads_with_threads(2);
    let (g2b, _) = grads_with_threads(2);
    assert_eq!(g1, g1b);
    assert_eq!(g2, g2b);
    assert_eq!(y1, y2);
    assert_eq!(g1, g2);
}

/// A reused cache with a smaller then larger batch gives the same results
/// as a fresh cache (no stale buffer contents leak in).
#[test]
fn train_cache_reuse_across_batch_sizes() {
    let (net, x, t) = setup(512);
    let r = Array2::from_elem((512, 2), 0.5f32);
    let mut fresh = TrainCache::new();
    let mut g_fresh = vec![0.0; net.num_params()];
    net.forward_train(x.view(), t.view(), &mut fresh);
    net.backward(&mut fresh, r.view(), &mut g_fresh);

    let mut reused = TrainCache::new();
    let mut g = vec![0.0; net.num_params()];
    net.forward_train(x.slice(s![..10, ..]), t.slice(s![..10]), &mut reused);
    net.backward(&mut reused, r.slice(s![..10, ..]), &mut g);
    net.forward_train(x.view(), t.view(), &mut reused);
    net.backward(&mut reused, r.view(), &mut g);
    assert_eq!(g, g_fresh);
}

/// Empty batches are valid: no output, all-zero gradients.
#[test]
fn empty_batches_do_not_panic() {
    let (net, _, _) = setup(1);
    let x = Array2::<f32>::zeros((0, 2));
    let t = Array1::<f32>::zeros(0);
    let mut out = Array2::<f32>::zeros((0, 2));
    net.forward(x.view(), t.view(), out.view_mut());
    net.forward_t(x.view(), 0.5, out.view_mut());
    let mut cache = TrainCache::new();
    net.forward_train(x.view(), t.view(), &mut cache);
    let mut g = vec![1.0; net.num_params()];
    net.backward(&mut cache, out.view(), &mut g);
    assert!(g.iter().all(|&v| v == 0.0));
}

/// Samplers share one network across rayon threads.
#[test]
fn network_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Mlp>();
    assert_send_sync::<TrainCache>();
}
