//! GFLOP/s of the network's GEMM shapes: `matrixmultiply` (via ndarray)
//! against `scoresde::backend::gemm` (the AVX-512 kernel when available),
//! measured alternately in one process. `cargo run --release --example gemm_shapes`.

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use scoresde::backend::gemm::{gemm, gemm_packed, MatRef, PackedB};

fn view<'a>(m: &MatRef<'a>) -> ArrayView2<'a, f32> {
    ArrayView2::from_shape((m.rows, m.cols).strides((m.rs, m.cs)), m.data).unwrap()
}

fn time<F: FnMut()>(flop: f64, mut f: F) -> f64 {
    let reps = ((3e8 / flop) as usize).clamp(3, 2000);
    f();
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.max(flop * reps as f64 / t0.elapsed().as_secs_f64() / 1e9);
    }
    best
}

fn main() {
    // (name, m, k, n, A transposed, B transposed)
    let shapes = [
        ("fwd 512x34x256", 512, 34, 256, false, true),
        ("fwd 512x256x256", 512, 256, 256, false, true),
        ("fwd 512x256x2", 512, 256, 2, false, true),
        ("dW 256x512x34 (At)", 256, 512, 34, true, false),
        ("dWt 34x512x256 (At)", 34, 512, 256, true, false),
        ("dW 256x512x256 (At)", 256, 512, 256, true, false),
        ("dW 2x512x256 (At)", 2, 512, 256, true, false),
        ("dX 512x256x256", 512, 256, 256, false, false),
        ("dX 512x2x256", 512, 2, 256, false, false),
    ];
    println!(
        "{:<24} {:>8} {:>8} {:>8} {:>6}",
        "shape", "mm", "gemm", "packed", "ratio"
    );
    for (name, m, k, n, at, bt) in shapes {
        let av: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let a = if at {
            MatRef::transposed(&av, m, k)
        } else {
            MatRef::row_major(&av, m, k)
        };
        let b = if bt {
            MatRef::transposed(&bv, k, n)
        } else {
            MatRef::row_major(&bv, k, n)
        };
        let mut c = vec![0.0f32; m * n];
        let flop = 2.0 * (m * k * n) as f64;
        let mut pb = PackedB::new();
        pb.pack(b);
        let (mut mm, mut ours, mut packed) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..3 {
            mm = mm.max(time(flop, || {
                let mut cv = ArrayViewMut2::from_shape((m, n), &mut c[..]).unwrap();
                general_mat_mul(1.0, &view(&a), &view(&b), 0.0, &mut cv);
            }));
            ours = ours.max(time(flop, || gemm(a, b, &mut c, false, false)));
            packed = packed.max(time(flop, || gemm_packed(a, &pb, &mut c, false, false)));
        }
        println!(
            "{name:<24} {mm:8.1} {ours:8.1} {packed:8.1} {:6.2}",
            ours / mm
        );
    }
}
