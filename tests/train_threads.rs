//! A training run is a function of its seed and step count, not of the
//! rayon thread count: the row-split GEMMs, the row-block elementwise
//! kernels and the chunked Adam / EMA updates all produce the same bits.

use scoresde::data::Toy;
use scoresde::train::{TrainOptions, Trainer};

fn train_with_threads(threads: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut opts = TrainOptions::spec(Toy::Checkerboard);
        opts.batch = 96;
        let mut tr = Trainer::new(opts).unwrap();
        for _ in 0..3 {
            tr.train_step().unwrap();
        }
        (
            tr.net.params().to_vec(),
            tr.ema.shadow.clone(),
            tr.adam.v.clone(),
        )
    })
}

#[test]
fn training_is_bit_identical_for_1_2_and_3_threads() {
    let one = train_with_threads(1);
    // The parameters moved (so the comparison is not of untouched inits).
    let init = Trainer::new(TrainOptions::spec(Toy::Checkerboard)).unwrap();
    assert_ne!(one.0, init.net.params());
    for k in [2, 3] {
        let other = train_with_threads(k);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one.0), bits(&other.0), "params differ at {k} threads");
        assert_eq!(bits(&one.1), bits(&other.1), "EMA differs at {k} threads");
        assert_eq!(
            bits(&one.2),
            bits(&other.2),
            "Adam v differs at {k} threads"
        );
    }
}
