//! The AVX-512F intrinsics of the kernel: the register tile and its edge
//! tiles, the row-lane path for narrow `C`, and the in-register transposes
//! that pack a transposed `B`. The bounds each function relies on are in
//! its `# Safety` section; [`super`] checks them before calling.

use std::arch::x86_64::*;

/// Fill a packed panel (`w` = 16 or 32 wide, `cols` ≤ `w` real
/// columns, the rest zero) from `B: [k, n]` with `rs == 1`, i.e. from
/// the row-major `M = Bᵀ` (row stride `cs`): each 16 × 16 block of `M`
/// (16 of its rows from `j0 + 16h`, 16 columns from `p0`) is loaded as
/// 16 vectors, transposed in registers and stored as 16 panel-row
/// pieces; the last `k mod 16` panel rows are copied element by element.
///
/// # Safety
/// AVX-512F must be available, `b.rs == 1`, and `b` must fit its slice.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose_panel(
    b: super::MatRef,
    j0: usize,
    w: usize,
    cols: usize,
    panel: &mut [f32],
) {
    let (k, cs) = (b.rows, b.cs);
    let m = b.data.as_ptr();
    let full = k - k % 16;
    for p0 in (0..full).step_by(16) {
        for h in 0..w / 16 {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                let jj = 16 * h + i;
                if jj < cols {
                    *v = _mm512_loadu_ps(m.add((j0 + jj) * cs + p0));
                }
            }
            transpose16(&mut r);
            for (q, v) in r.iter().enumerate() {
                _mm512_storeu_ps(panel.as_mut_ptr().add((p0 + q) * w + 16 * h), *v);
            }
        }
    }
    for p in full..k {
        for jj in 0..w {
            panel[p * w + jj] = if jj < cols {
                b.data[(j0 + jj) * cs + p]
            } else {
                0.0
            };
        }
    }
}

/// In-register 16 × 16 transpose: afterwards `r[q][i]` is the old
/// `r[i][q]`. Pairs of rows are interleaved (unpack), then pairs of
/// pairs (`shuffle_ps`), leaving in 128-bit lane L of `u[4g + c]` the
/// rows 4g..4g+4 at column 4L + c; two rounds of 128-bit lane
/// shuffles then gather lane L of `u[c], u[4 + c], u[8 + c], u[12 + c]`.
#[inline(always)]
unsafe fn transpose16(r: &mut [__m512; 16]) {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (lo, hi) = (t[4 * g], t[4 * g + 1]);
        let (lo2, hi2) = (t[4 * g + 2], t[4 * g + 3]);
        u[4 * g] = _mm512_shuffle_ps::<0x44>(lo, lo2);
        u[4 * g + 1] = _mm512_shuffle_ps::<0xEE>(lo, lo2);
        u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(hi, hi2);
        u[4 * g + 3] = _mm512_shuffle_ps::<0xEE>(hi, hi2);
    }
    for c in 0..4 {
        let v_even = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        let v_odd = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
        let w_even = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let w_odd = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
        r[c] = _mm512_shuffle_f32x4::<0x88>(v_even, w_even);
        r[8 + c] = _mm512_shuffle_f32x4::<0xDD>(v_even, w_even);
        r[4 + c] = _mm512_shuffle_f32x4::<0x88>(v_odd, w_odd);
        r[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v_odd, w_odd);
    }
}

/// Call [`narrow`] with `N = n` (1..=8).
///
/// # Safety
/// As for [`narrow`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn narrow_dispatch(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    acc: bool,
    scale: bool,
) {
    macro_rules! go {
        ($($n:literal)*) => {
            match n {
                $($n => narrow::<$n>(m, k, a, rs, b, ldb, c, acc, scale),)*
                _ => unreachable!("narrow path is for 1..=8 columns"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8)
}

/// `C: [m, N]` (row-major) `= A·B`, `+= A·B` (`acc`) or `= (A·B) ⊙ C`
/// (`scale`), `A: [m, k]` with unit column stride and row stride `rs`,
/// `B[p, j]` at `b + p·ldb + j`. Rows of `A` go in blocks of 16, one
/// per lane: each 16 × 16 block of `A` is transposed in registers so
/// that vector `q` holds column `p0 + q` of the 16 rows, then
/// `acc_j ← fma(A[·, p], B[p, j], acc_j)` for each j < N.
///
/// # Safety
/// AVX-512F must be available; `a + r·rs + p` readable for r < m,
/// p < k; `b + p·ldb + j` readable for p < k, j < N; `c + r·N + j`
/// readable and writable for r < m, j < N.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn narrow<const N: usize>(
    m: usize,
    k: usize,
    a: *const f32,
    rs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    acc: bool,
    scale: bool,
) {
    let full = k - k % 16;
    let mut lanes = [0f32; 16];
    for i0 in (0..m).step_by(16) {
        let rows = 16.min(m - i0);
        let block = a.add(i0 * rs);
        let mut sums = [_mm512_setzero_ps(); N];
        if acc {
            for (j, s) in sums.iter_mut().enumerate() {
                for (i, l) in lanes.iter_mut().enumerate().take(rows) {
                    *l = *c.add((i0 + i) * N + j);
                }
                *s = _mm512_loadu_ps(lanes.as_ptr());
            }
        }
        for p0 in (0..full).step_by(16) {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate().take(rows) {
                *v = _mm512_loadu_ps(block.add(i * rs + p0));
            }
            transpose16(&mut r);
            for (q, col) in r.iter().enumerate() {
                let brow = b.add((p0 + q) * ldb);
                for (j, s) in sums.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(*col, _mm512_set1_ps(*brow.add(j)), *s);
                }
            }
        }
        for p in full..k {
            for (i, l) in lanes.iter_mut().enumerate().take(rows) {
                *l = *block.add(i * rs + p);
            }
            let col = _mm512_loadu_ps(lanes.as_ptr());
            let brow = b.add(p * ldb);
            for (j, s) in sums.iter_mut().enumerate() {
                *s = _mm512_fmadd_ps(col, _mm512_set1_ps(*brow.add(j)), *s);
            }
        }
        for (j, s) in sums.iter().enumerate() {
            let mut v = *s;
            if scale {
                for (i, l) in lanes.iter_mut().enumerate().take(rows) {
                    *l = *c.add((i0 + i) * N + j);
                }
                v = _mm512_mul_ps(v, _mm512_loadu_ps(lanes.as_ptr()));
            }
            _mm512_storeu_ps(lanes.as_mut_ptr(), v);
            for (i, l) in lanes.iter().enumerate().take(rows) {
                *c.add((i0 + i) * N + j) = *l;
            }
        }
    }
}

/// Call [`tile`] with `R = rows` (1..=8) and `V = vecs` (1 or 2).
///
/// # Safety
/// As for [`tile`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn tile_dispatch(
    rows: usize,
    vecs: usize,
    k: usize,
    a: *const f32,
    rs: usize,
    cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    mask: u16,
    acc: bool,
    scale: bool,
    sum: *mut f32,
) {
    macro_rules! go {
        ($r:literal) => {
            if vecs == 2 {
                tile::<$r, 2>(k, a, rs, cs, b, ldb, c, ldc, mask, acc, scale, sum)
            } else {
                tile::<$r, 1>(k, a, rs, cs, b, ldb, c, ldc, mask, acc, scale, sum)
            }
        };
    }
    match rows {
        8 => go!(8),
        7 => go!(7),
        6 => go!(6),
        5 => go!(5),
        4 => go!(4),
        3 => go!(3),
        2 => go!(2),
        _ => go!(1),
    }
}

/// One `R × 16V` tile: `c_rj = fma(A[r,p], B[p,j], c_rj)` for p = 0..k
/// in order, from 0 (or from C when `acc`), then stored to C, times the
/// old C first when `scale`; the last of the `V` vectors is
/// loaded/stored under `mask`. Unless `sum` is null, the stored rows
/// are then added to `sum[j]` one after another (r = 0..R).
///
/// # Safety
/// AVX-512F must be available; `a + r·rs + p·cs` must be readable for
/// r < R, p < k; `b + p·ldb + j` readable and `c + r·ldc + j` (and
/// `sum + j` when not null) readable and writable for r < R, p < k and
/// j < 16(V−1) plus the lanes set in `mask` of the last vector.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize, const V: usize>(
    k: usize,
    a: *const f32,
    rs: usize,
    cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    mask: u16,
    acc: bool,
    scale: bool,
    sum: *mut f32,
) {
    let lane_mask = |v: usize| if v + 1 == V { mask } else { u16::MAX };
    let mut t = [[_mm512_setzero_ps(); V]; R];
    if acc {
        for (r, row) in t.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(lane_mask(v), c.add(r * ldc + 16 * v));
            }
        }
    }
    let mut ap = a;
    let mut bp = b;
    for _ in 0..k {
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_maskz_loadu_ps(lane_mask(v), bp.add(16 * v));
        }
        for (r, row) in t.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(r * rs));
            for (x, &bb) in row.iter_mut().zip(&bv) {
                *x = _mm512_fmadd_ps(av, bb, *x);
            }
        }
        ap = ap.wrapping_add(cs);
        bp = bp.wrapping_add(ldb);
    }
    if scale {
        for (r, row) in t.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                let dv = _mm512_maskz_loadu_ps(lane_mask(v), c.add(r * ldc + 16 * v));
                *x = _mm512_mul_ps(*x, dv);
            }
        }
    }
    for (r, row) in t.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            _mm512_mask_storeu_ps(c.add(r * ldc + 16 * v), lane_mask(v), x);
        }
    }
    if !sum.is_null() {
        for v in 0..V {
            let ptr = sum.add(16 * v);
            let mut s = _mm512_maskz_loadu_ps(lane_mask(v), ptr);
            for row in &t {
                s = _mm512_add_ps(s, row[v]);
            }
            _mm512_mask_storeu_ps(ptr, lane_mask(v), s);
        }
    }
}
