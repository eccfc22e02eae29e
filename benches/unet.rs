//! U-Net throughput benchmark of the image path (`cargo bench --bench unet`).
//!
//! For each image preset (`--presets mnist,emoji`: the network of
//! `app::presets::preset`, e.g. MNIST's 1×28×28 U-Net with widths
//! [16, 32, 32], 175,761 parameters) and each rayon thread count (pools
//! built in-process; `benches/reference/run_unet.sh` also pins the process
//! to as many cores with `taskset`):
//! - training steps/s: `Trainer::train_step` (data draw, forward, backward,
//!   Adam, EMA) at batch `--batch` (32), `--train-steps` timed steps after
//!   `--warmup` steps;
//! - model evaluations/s for sampling: `Score::score` of the EMA model on
//!   `--images` (500) images per call, `--calls` timed calls (after one
//!   warm-up call) at times spread over (0, 1], evaluations = images × calls.
//!
//! Every figure is printed as `RESULT name threads value` (name
//! `<preset>_train_steps_per_s` or `<preset>_evals_per_s`).
//!
//! `--export DIR` instead writes, for each preset, what the PyTorch replica
//! (`benches/reference/unet_torch.py --check DIR`) needs to check that it
//! computes the same function: `DIR/<preset>/weights.safetensors` (the
//! network's own tensors, PyTorch names and shapes, via the project's
//! safetensors writer) and `DIR/<preset>/batch.safetensors` (`x [B, c, h, w]`,
//! `t [B]`, `target`, the network's output `out`, the DSM loss
//! `mean((out − target)²)` as `loss [1]`, and ∂loss/∂θ as `grad.<name>`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ndarray::{Array1, Array2};
use rand_distr::{Distribution, StandardNormal};
use scoresde::app::presets::preset;
use scoresde::data::TrainData;
use scoresde::nn::{NetCache, NetConfig, ScoreNet};
use scoresde::score::Score;
use scoresde::train::{TrainOptions, Trainer};

struct Args {
    threads: Vec<usize>,
    presets: Vec<String>,
    batch: usize,
    train_steps: usize,
    warmup: usize,
    images: usize,
    calls: usize,
    export: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        threads: vec![1, 2],
        presets: vec!["mnist".into(), "emoji".into()],
        batch: 32,
        train_steps: 60,
        warmup: 5,
        images: 500,
        calls: 6,
        export: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let val = |i: usize| -> &str {
        argv.get(i)
            .map(|s| s.as_str())
            .unwrap_or_else(|| panic!("option {} needs a value", argv[i - 1]))
    };
    let num = |i: usize| -> usize {
        val(i)
            .parse()
            .unwrap_or_else(|_| panic!("option {} needs an integer", argv[i - 1]))
    };
    let mut i = 0;
    while i < argv.len() {
        let mut takes = true;
        match argv[i].as_str() {
            "--threads" => {
                a.threads = val(i + 1)
                    .split(',')
                    .map(|s| s.parse().expect("--threads takes e.g. 1,2"))
                    .collect()
            }
            "--presets" => a.presets = val(i + 1).split(',').map(String::from).collect(),
            "--batch" => a.batch = num(i + 1),
            "--train-steps" => a.train_steps = num(i + 1),
            "--warmup" => a.warmup = num(i + 1),
            "--images" => a.images = num(i + 1),
            "--calls" => a.calls = num(i + 1),
            "--export" => a.export = Some(val(i + 1).to_string()),
            _ => takes = false, // `cargo bench` passes `--bench`
        }
        i += 1 + takes as usize;
    }
    a
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

fn result(name: &str, threads: usize, value: f64) {
    println!("RESULT {name} {threads} {value:.6e}");
}

/// The training options of `name`'s preset (VP SDE, seed 0) at `batch`.
fn options(name: &str, batch: usize) -> TrainOptions {
    let data = TrainData::by_name(name, None, None).expect("bundled image set");
    let (c, h, w) = data.image_shape().expect("image data");
    let p = preset(name, c, h, w);
    TrainOptions {
        net: p.net,
        batch,
        lr: p.lr,
        data,
        ..TrainOptions::spec(scoresde::data::Toy::Checkerboard)
    }
}

fn unet_of(net: &NetConfig) -> &scoresde::nn::UNetConfig {
    match net {
        NetConfig::UNet(u) => u,
        NetConfig::Mlp(_) => panic!("the image presets benchmarked here are U-Nets"),
    }
}

/// Write the weights, a batch, the output, the loss and its gradient of
/// `name`'s preset network (seed 0) into `dir/name/`.
fn export(dir: &Path, name: &str, batch: usize) {
    let opts = options(name, batch);
    let u = unet_of(&opts.net).clone();
    let net = ScoreNet::new(opts.net.clone(), 0).expect("preset network");
    let d = opts.net.data_dim();
    let x = opts.data.sample(batch, 1);
    let t = Array1::from_iter((0..batch).map(|i| (i as f32 + 0.5) / batch as f32));
    let mut rng = scoresde::rng::stream(0, scoresde::rng::domain::TRAIN, 0);
    let target = Array2::from_shape_fn((batch, d), |_| {
        <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
    });
    let mut cache = NetCache::default();
    net.forward_train(x.view(), t.view(), &mut cache);
    let out = cache.output().to_owned();
    let n = (batch * d) as f64;
    let mut loss = 0.0f64;
    let mut d_out = Array2::<f32>::zeros((batch, d));
    for ((g, &o), &y) in d_out.iter_mut().zip(out.iter()).zip(target.iter()) {
        let r = o - y;
        loss += (r as f64) * (r as f64);
        *g = (2.0 / n) as f32 * r;
    }
    loss /= n;
    let mut grads = vec![0.0f32; net.num_params()];
    net.backward(&mut cache, d_out.view(), &mut grads);
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).expect("export directory");
    let meta = BTreeMap::new();
    scoresde::tensors::save_tensors(
        &sub.join("weights.safetensors"),
        &net.named_tensors(),
        &meta,
    )
    .expect("write weights");
    let img = vec![batch, u.channels, u.height, u.width];
    let loss32 = [loss as f32];
    let mut batch_t: Vec<(String, Vec<usize>, &[f32])> = vec![
        ("x".into(), img.clone(), x.as_slice().expect("contiguous")),
        ("t".into(), vec![batch], t.as_slice().expect("contiguous")),
        (
            "target".into(),
            img.clone(),
            target.as_slice().expect("contiguous"),
        ),
        ("out".into(), img, out.as_slice().expect("contiguous")),
        ("loss".into(), vec![1], &loss32),
    ];
    for (tn, shape, g) in net.named_slices(&grads) {
        batch_t.push((format!("grad.{tn}"), shape, g));
    }
    scoresde::tensors::save_tensors(&sub.join("batch.safetensors"), &batch_t, &meta)
        .expect("write batch");
    println!(
        "{name}: {} parameters, loss {loss:.9} on a batch of {batch}, written to {}",
        net.num_params(),
        sub.display()
    );
}

fn main() {
    let args = parse_args();
    if let Some(dir) = &args.export {
        for name in &args.presets {
            export(Path::new(dir), name, args.batch);
        }
        return;
    }
    for name in &args.presets {
        let opts = options(name, args.batch);
        let u = unet_of(&opts.net);
        println!(
            "{name}: U-Net {}x{}x{} widths {:?} time_dim {}, {} parameters; batch {}, {} images per call",
            u.channels,
            u.height,
            u.width,
            u.widths,
            u.time_dim,
            ScoreNet::new(opts.net.clone(), 0)
                .expect("preset")
                .num_params(),
            args.batch,
            args.images
        );
        for &threads in &args.threads {
            pool(threads).install(|| {
                let mut tr = Trainer::new(opts.clone()).expect("preset options are valid");
                for _ in 0..args.warmup {
                    tr.train_step().expect("finite training");
                }
                let t0 = Instant::now();
                for _ in 0..args.train_steps {
                    tr.train_step().expect("finite training");
                }
                let sps = args.train_steps as f64 / t0.elapsed().as_secs_f64();
                result(&format!("{name}_train_steps_per_s"), threads, sps);

                let model = tr.ema_model().expect("EMA model");
                let x = opts.data.sample(args.images, 3);
                let mut out = Array2::<f32>::zeros(x.dim());
                model.score(x.view(), 0.5, out.view_mut());
                let t0 = Instant::now();
                for c in 0..args.calls {
                    let t = (c as f64 + 1.0) / args.calls as f64;
                    model.score(x.view(), t, out.view_mut());
                }
                let eps = (args.images * args.calls) as f64 / t0.elapsed().as_secs_f64();
                std::hint::black_box(&out);
                result(&format!("{name}_evals_per_s"), threads, eps);
                println!(
                    "{name} threads {threads}: train {sps:.2} steps/s, sampling {eps:.1} evals/s"
                );
            });
        }
    }
}
