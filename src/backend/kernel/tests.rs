use super::*;
use crate::backend::mat::naive;

fn view(data: &[f32], rows: usize, cols: usize, trans: bool) -> MatRef<'_> {
    if trans {
        MatRef::transposed(data, rows, cols)
    } else {
        MatRef::row_major(data, rows, cols)
    }
}

/// Small integers: every product and partial sum is exact in f32, so
/// the kernel must match the f64 product exactly.
fn check(m: usize, k: usize, n: usize) {
    let av: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 17) as f32) - 8.0).collect();
    let bv: Vec<f32> = (0..k * n).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
    let dv: Vec<f32> = (0..m * n).map(|i| ((i * 5 % 7) as f32) - 3.0).collect();
    let mut bp = vec![f32::NAN; packed_len(k, n)];
    for at in [false, true] {
        for bt in [false, true] {
            let (a, b) = (view(&av, m, k, at), view(&bv, k, n, bt));
            let want = naive(a, b);
            pack_b(b, &mut bp);
            let packed = KernelB::Packed { data: &bp, k, n };
            let forms = if bt {
                vec![packed]
            } else {
                vec![packed, KernelB::Rows(b)]
            };
            for kb in forms {
                let mut c = vec![f32::NAN; m * n];
                gemm_serial(a, kb, &mut c, Epilogue::Set, None);
                for (x, y) in c.iter().zip(&want) {
                    assert_eq!(*x as f64, *y, "m={m} k={k} n={n} at={at} bt={bt} {kb:?}");
                }
                gemm_serial(a, kb, &mut c, Epilogue::Add, None);
                for (x, y) in c.iter().zip(&want) {
                    assert_eq!(*x as f64, 2.0 * *y, "accumulate m={m} k={k} n={n}");
                }
                c.copy_from_slice(&dv);
                let mut sums = vec![f32::NAN; n];
                gemm_serial(a, kb, &mut c, Epilogue::Scale, Some(&mut sums));
                let mut want_sums = vec![0.0f64; n];
                for ((i, (x, y)), f) in c.iter().zip(&want).enumerate().zip(&dv) {
                    assert_eq!(*x as f64, *y * *f as f64, "scale m={m} k={k} n={n}");
                    want_sums[i % n] += *x as f64;
                }
                for (x, y) in sums.iter().zip(&want_sums) {
                    assert_eq!(*x as f64, *y, "column sums m={m} k={k} n={n}");
                }
            }
        }
    }
}

#[test]
fn kernel_matches_naive_on_odd_and_real_shapes() {
    if !available() {
        return;
    }
    for m in (1..40).step_by(3) {
        for k in (1..40).step_by(4) {
            for n in 1..40 {
                check(m, k, n);
            }
        }
    }
    for k in [0, 1, 2, 33, 34] {
        check(9, k, 17);
    }
    for (m, k, n) in [
        (37, 34, 256),
        (37, 256, 256),
        (37, 256, 2),
        (256, 40, 34),
        (2, 40, 256),
        (37, 2, 256),
    ] {
        check(m, k, n);
    }
}

/// Both packing paths (row-major and transposed `B`) give the layout of
/// the module docs, padding included.
#[test]
fn pack_b_matches_the_panel_layout() {
    for (k, n) in [(1, 1), (16, 16), (17, 33), (34, 256), (256, 2), (40, 47)] {
        let bv: Vec<f32> = (0..k * n).map(|i| i as f32 + 1.0).collect();
        for trans in [false, true] {
            let b = view(&bv, k, n, trans);
            let mut out = vec![f32::NAN; packed_len(k, n)];
            pack_b(b, &mut out);
            for j0 in (0..n).step_by(NR) {
                let w = panel_width(n, j0);
                for p in 0..k {
                    for jj in 0..w {
                        let want = if j0 + jj < n {
                            b.data[p * b.rs + (j0 + jj) * b.cs]
                        } else {
                            0.0
                        };
                        let got = out[j0 * k + p * w + jj];
                        assert_eq!(got, want, "k={k} n={n} trans={trans} p={p} j={}", j0 + jj);
                    }
                }
            }
        }
    }
}

/// Row i of a product is the same bits whatever rows surround it.
#[test]
fn rows_do_not_depend_on_m() {
    if !available() {
        return;
    }
    // n = 70: register tiles; n ≤ 8: the row-lane path (k = 37 leaves
    // a tail of 5 after the 16-wide blocks).
    for (k, n) in [(256, 70), (37, 2), (256, 3)] {
        check_rows_do_not_depend_on_m(k, n);
    }
}

fn check_rows_do_not_depend_on_m(k: usize, n: usize) {
    let m = 53;
    let av: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.377).sin()).collect();
    let bv: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.191).cos()).collect();
    let mut bp = vec![0.0; packed_len(k, n)];
    pack_b(MatRef::transposed(&bv, k, n), &mut bp);
    let packed = KernelB::Packed { data: &bp, k, n };
    let mut full = vec![0.0; m * n];
    gemm_serial(
        MatRef::row_major(&av, m, k),
        packed,
        &mut full,
        Epilogue::Set,
        None,
    );
    // In place from a row-major copy of B: the same bits.
    let rows: Vec<f32> = (0..k * n).map(|i| bv[(i % n) * k + i / n]).collect();
    let mut inplace = vec![0.0; m * n];
    let b_rows = KernelB::Rows(MatRef::row_major(&rows, k, n));
    gemm_serial(
        MatRef::row_major(&av, m, k),
        b_rows,
        &mut inplace,
        Epilogue::Set,
        None,
    );
    assert_eq!(inplace, full);
    // A stored transposed always takes the register tiles: the same
    // bits as the row-lane path.
    let at: Vec<f32> = (0..m * k).map(|i| av[(i % m) * k + i / m]).collect();
    let mut tiled = vec![0.0; m * n];
    gemm_serial(
        MatRef::transposed(&at, m, k),
        packed,
        &mut tiled,
        Epilogue::Set,
        None,
    );
    assert_eq!(tiled, full);
    for (start, len) in [(0, 1), (5, 7), (9, 1), (46, 7), (1, 52)] {
        let a = MatRef::row_major(&av[start * k..], len, k);
        let mut part = vec![0.0; len * n];
        gemm_serial(a, packed, &mut part, Epilogue::Set, None);
        assert_eq!(part, full[start * n..(start + len) * n]);
    }
    // The fused multiply rounds exactly like a separate pass.
    let dv: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.713).cos()).collect();
    let mut fused = dv.clone();
    let mut sums = vec![f32::NAN; n];
    gemm_serial(
        MatRef::row_major(&av, m, k),
        packed,
        &mut fused,
        Epilogue::Scale,
        Some(&mut sums),
    );
    let separate: Vec<f32> = full.iter().zip(&dv).map(|(x, f)| x * f).collect();
    assert_eq!(fused, separate);
    // The column sums ride in the stores with the bits of a separate
    // pass in row order.
    let mut want = vec![0.0; n];
    super::super::simd::sum_rows(&separate, &mut want);
    assert_eq!(sums, want);
}

/// Shapes whose `B` exceeds 1 MB take the cache-blocked loops
/// (`blocked`): within the f64 product's rounding bound
/// `|c − ĉ| ≤ k·ε·Σ_p |A[i,p]·B[p,j]|`, and with the bits of the unblocked
/// kernel (row blocks of `MR` rows or fewer never block), for `B` packed
/// and in place, set and accumulated, with column sums.
#[test]
fn blocked_products_match_f64_and_the_unblocked_bits() {
    if !available() {
        return;
    }
    for (m, k, n) in [(37, 300, 1000), (20, 1030, 300)] {
        assert!(blocked::wanted(m, k, n) && !blocked::wanted(MR, k, n));
        let av: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.377).sin()).collect();
        let bv: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.191).cos()).collect();
        let (a, b) = (MatRef::row_major(&av, m, k), MatRef::row_major(&bv, k, n));
        let want = naive(a, b);
        let mut bp = vec![0.0; packed_len(k, n)];
        pack_b(b, &mut bp);
        let packed = KernelB::Packed { data: &bp, k, n };
        for kb in [KernelB::Rows(b), packed] {
            let mut c = vec![f32::NAN; m * n];
            let mut sums = vec![f32::NAN; n];
            gemm_serial(a, kb, &mut c, Epilogue::Set, Some(&mut sums));
            for i in 0..m {
                for j in 0..n {
                    let mag: f64 = (0..k)
                        .map(|p| (av[i * k + p] as f64 * bv[p * n + j] as f64).abs())
                        .sum();
                    let tol = k as f64 * f32::EPSILON as f64 * mag;
                    let err = (c[i * n + j] as f64 - want[i * n + j]).abs();
                    assert!(err <= tol, "m={m} k={k} n={n} ({i},{j}): {err} > {tol}");
                }
            }
            let mut want_sums = vec![0.0; n];
            crate::backend::simd::sum_rows(&c, &mut want_sums);
            assert_eq!(sums, want_sums, "column sums in row order");
            let mut acc = c.clone();
            gemm_serial(a, kb, &mut acc, Epilogue::Add, None);
            for i0 in (0..m).step_by(MR) {
                let r = MR.min(m - i0);
                let part_a = MatRef::row_major(&av[i0 * k..], r, k);
                let mut part = vec![0.0; r * n];
                gemm_serial(part_a, kb, &mut part, Epilogue::Set, None);
                assert_eq!(part, c[i0 * n..(i0 + r) * n], "rows {i0}.. set");
                gemm_serial(part_a, kb, &mut part, Epilogue::Add, None);
                assert_eq!(part, acc[i0 * n..(i0 + r) * n], "rows {i0}.. accumulated");
            }
        }
    }
}

/// A column split gives the bits of one call, column sums included.
#[test]
fn column_split_matches_one_call() {
    if !available() {
        return;
    }
    let (m, k, n) = (70, 64, 200);
    let av: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.377).sin()).collect();
    let bv: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.191).cos()).collect();
    let dv: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.713).cos()).collect();
    let (a, b) = (MatRef::row_major(&av, m, k), MatRef::row_major(&bv, k, n));
    let mut one = dv.clone();
    let mut one_sums = vec![f32::NAN; n];
    gemm_serial(
        a,
        KernelB::Rows(b),
        &mut one,
        Epilogue::Scale,
        Some(&mut one_sums),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for tasks in [2, 3, 7, 100] {
        let mut c = dv.clone();
        let mut sums = vec![f32::NAN; n];
        pool.install(|| {
            gemm_col_split(
                a,
                KernelB::Rows(b),
                &mut c,
                Epilogue::Scale,
                Some(&mut sums),
                tasks,
            )
        });
        assert_eq!(c, one, "tasks {tasks}");
        assert_eq!(sums, one_sums, "tasks {tasks}");
    }
}
