//! Timing probe, not a test: `cargo test --release --test nn_timing -- --ignored --nocapture`.
//! Prints ms per training step (forward + backward, batch 512) and per
//! inference on 10,000 rows, with 1 and 2 rayon threads.

use std::time::Instant;

use ndarray::{Array1, Array2};
use scoresde::nn::{Adam, Mlp, MlpConfig, TrainCache};
use scoresde::rng::{fill_normal, stream};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore = "timing probe; run explicitly"]
fn timing_probe() {
    let net0 = Mlp::new(MlpConfig::new(2), 0).unwrap();
    let mut xv = vec![0.0; 20_000];
    fill_normal(&mut stream(1, 0, 0), &mut xv);
    let x = Array2::from_shape_vec((10_000, 2), xv).unwrap();
    let xb = x.slice(ndarray::s![..512, ..]).to_owned();
    let t = Array1::from_shape_fn(512, |i| (i as f32 + 0.5) / 512.0);
    let d_out = Array2::from_elem((512, 2), 1e-3f32);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = net0.clone();
            let mut cache = TrainCache::new();
            let mut grads = vec![0.0; net.num_params()];
            let mut adam = Adam::new(1e-5, net.num_params());
            let mut fb = Vec::new();
            let mut step = Vec::new();
            for i in 0..260 {
                let t0 = Instant::now();
                net.forward_train(xb.view(), t.view(), &mut cache);
                net.backward(&mut cache, d_out.view(), &mut grads);
                let t1 = Instant::now();
                adam.update(net.params_mut(), &grads);
                let t2 = Instant::now();
                if i >= 20 {
                    fb.push((t1 - t0).as_secs_f64() * 1e3);
                    step.push((t2 - t0).as_secs_f64() * 1e3);
                }
            }
            let mut out = Array2::zeros((10_000, 2));
            let mut inf = Vec::new();
            for i in 0..25 {
                let t0 = Instant::now();
                net.forward_t(x.view(), 0.5, out.view_mut());
                if i >= 5 {
                    inf.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            let fwd_flop = 2.0 * 10_000.0 * (34.0 * 256.0 + 2.0 * 256.0 * 256.0 + 256.0 * 2.0);
            let inf_ms = median(inf);
            println!(
                "threads {threads}: train fwd+bwd {:.2} ms, +Adam {:.2} ms per step (batch 512); inference 10k rows {:.2} ms ({:.1} GFLOP/s, {:.2} M evals/s)",
                median(fb),
                median(step),
                inf_ms,
                fwd_flop / inf_ms / 1e6,
                10.0 / inf_ms
            );
        });
    }
}

#[test]
#[ignore = "timing probe; run explicitly"]
fn timing_kernels() {
    use scoresde::backend::gemm::{gemm, MatRef};
    use scoresde::nn::layers::bias_silu;
    let n = 256 * 256;
    let mut z = vec![0.3f32; n];
    let b = vec![0.1f32; 256];
    let mut s = vec![0.0f32; n];
    let a = vec![0.01f32; 512 * 256];
    let w = vec![0.01f32; 256 * 256];
    let mut c = vec![0.0f32; 512 * 256];
    for rows in [64usize, 128, 256, 512] {
        let reps = 200;
        let t0 = Instant::now();
        for _ in 0..reps {
            gemm(
                MatRef::row_major(&a[..rows * 256], rows, 256),
                MatRef::transposed(&w, 256, 256),
                &mut c[..rows * 256],
                false,
                false,
            );
        }
        let dt = t0.elapsed().as_secs_f64() / reps as f64;
        println!(
            "gemm {rows}x256x256: {:.1} GFLOP/s",
            2.0 * (rows * 256 * 256) as f64 / dt / 1e9
        );
    }
    let reps = 500;
    let t0 = Instant::now();
    for _ in 0..reps {
        bias_silu(&mut z, &b, None);
        z.iter_mut().for_each(|v| *v *= -1.0);
    }
    println!(
        "bias_silu inference: {:.2} ns/elem",
        t0.elapsed().as_secs_f64() / reps as f64 / n as f64 * 1e9
    );
    let t0 = Instant::now();
    for _ in 0..reps {
        bias_silu(&mut z, &b, Some(&mut s));
        z.iter_mut().for_each(|v| *v *= -1.0);
    }
    println!(
        "bias_silu training: {:.2} ns/elem",
        t0.elapsed().as_secs_f64() / reps as f64 / n as f64 * 1e9
    );
}
