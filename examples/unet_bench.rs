//! Time one U-Net training step (forward_train + backward) per batch on
//! 8x8 grey, 16x16 RGB and 28x28 grey images at the default widths, and
//! inference (`UNet::forward`) on the same batch (median of `reps` calls).
//! `cargo run --release --example unet_bench [batch] [reps] [small]`
use std::time::Instant;

use ndarray::{Array1, Array2};
use scoresde::nn::{UNet, UNetCache, UNetConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    // Third argument "small" halves every width.
    let k = if args.get(3).map(|s| s == "small").unwrap_or(false) {
        2
    } else {
        1
    };
    for (c, s, widths) in [
        (1, 8, vec![32 / k, 64 / k]),
        (3, 16, vec![32 / k, 64 / k, 64 / k]),
        (1, 28, vec![32 / k, 64 / k, 64 / k]),
    ] {
        let cfg = UNetConfig {
            widths,
            ..UNetConfig::new(c, s, s)
        };
        let net = UNet::new(cfg.clone(), 0).unwrap();
        let d = cfg.data_dim();
        let x = Array2::from_shape_fn((batch, d), |(i, j)| {
            ((i * 31 + j * 7) % 13) as f32 / 6.0 - 1.0
        });
        let t = Array1::from_shape_fn(batch, |i| (i as f32 + 0.5) / batch as f32);
        let mut cache = UNetCache::new();
        let mut grads = vec![0.0; net.num_params()];
        net.forward_train(x.view(), t.view(), &mut cache);
        net.backward(&mut cache, x.view(), &mut grads);
        let mut times = Vec::new();
        for _ in 0..reps {
            let st = Instant::now();
            net.forward_train(x.view(), t.view(), &mut cache);
            net.backward(&mut cache, x.view(), &mut grads);
            times.push(st.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut out = Array2::zeros((batch, d));
        let mut inf = Vec::new();
        for _ in 0..reps {
            let st = Instant::now();
            net.forward(x.view(), t.view(), out.view_mut());
            inf.push(st.elapsed().as_secs_f64() * 1e3);
        }
        let first = inf[0];
        inf.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{c}x{s}x{s} widths {:?} params {}: batch {batch}: train step median {:.1} ms (min {:.1}), inference median {:.1} ms (first {:.1})", cfg.widths, net.num_params(), times[times.len() / 2], times[0], inf[inf.len() / 2], first);
    }
}
