//! Steady-state allocation count of inference and training.
//!
//! Our code allocates nothing once its buffers have grown (the AVX-512 GEMM
//! kernel included); the fallback GEMM backend (`matrixmultiply`, on CPUs
//! without AVX-512F) allocates one packing buffer per product, which it
//! gives no way to supply. So the bound checked here is: at most one
//! allocation per GEMM call (4 per inference block, 4 + 7 per training
//! step of the SPEC network), and none anywhere else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array1, Array2};
use scoresde::nn::{Adam, Mlp, MlpConfig, TrainCache};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<F: FnMut()>(mut f: F) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

#[test]
fn steady_state_allocations_are_only_gemm_packing_buffers() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let mut net = Mlp::new(MlpConfig::new(2), 0).unwrap();
        let x = Array2::from_elem((256, 2), 0.3f32);
        let t = Array1::from_elem(256, 0.5f32);
        let mut out = Array2::zeros((256, 2));
        // Warm up: thread-local workspace and cache grow here.
        net.forward(x.view(), t.view(), out.view_mut());
        let n = count(|| net.forward(x.view(), t.view(), out.view_mut()));
        assert!(n <= 4, "inference on one 256-row block allocated {n} times");
        let n = count(|| net.forward_t(x.view(), 0.25, out.view_mut()));
        assert!(n <= 4, "scalar-t inference allocated {n} times");

        let mut cache = TrainCache::with_rows(&net, 256);
        let mut grads = vec![0.0; net.num_params()];
        let mut adam = Adam::new(1e-3, net.num_params());
        let d = Array2::from_elem((256, 2), 1e-3f32);
        let mut step = |net: &mut Mlp| {
            net.forward_train(x.view(), t.view(), &mut cache);
            net.backward(&mut cache, d.view(), &mut grads);
            adam.update(net.params_mut(), &grads);
        };
        step(&mut net);
        let n = count(|| step(&mut net));
        assert!(
            n <= 11,
            "training step allocated {n} times (4 forward + 7 backward GEMMs)"
        );
    });
}
