//! The backward of the convolution: `dW` as per-image partials summed in
//! image order, `db`, and `dx` by col2im (or by the shifted GEMMs of
//! [`crate::nn::conv_shift`] for 3×3 stride-1 convolutions).

use super::*;

/// Backward: accumulates `dW += doutᵀ·cols`, `db += Σ_p dout[p]` and, when
/// given, `dx += col2im(dout·W)` (with `overwrite`, `dx = 0 + col2im(…)`:
/// the same bits as zeroing `dx` first, without reading it). 3×3 stride-1
/// convolutions run as shifted GEMMs ([`crate::nn::conv_shift`]; same `dW`
/// bits, `dx` summed in another order). `scratch` holds the rearranged
/// weight and the per-image `dW` partials.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    x: &[f32],
    s: &ConvShape,
    w: &[f32],
    dout: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
    overwrite: bool,
    scratch: &mut Vec<f32>,
) {
    let shifted = s.k == 3 && s.stride == 1 && crate::backend::kernel::available();
    conv_backward_with(x, s, w, dout, dw, db, dx, overwrite, scratch, shifted);
}

#[allow(clippy::too_many_arguments)]
fn conv_backward_with(
    x: &[f32],
    s: &ConvShape,
    w: &[f32],
    dout: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
    overwrite: bool,
    scratch: &mut Vec<f32>,
    shifted: bool,
) {
    let (kd, co) = (s.kdim(), s.cout);
    let (ppi, per_in) = (s.ho() * s.wo(), s.h * s.w * s.cin);
    let wl = co * kd;
    let pointwise = s.is_pointwise();
    grow(scratch, wl * (s.images + 1));
    let (wp, parts) = scratch.split_at_mut(wl);
    let parts = &mut parts[..wl * s.images];
    if shifted {
        crate::nn::conv_shift::flip_weight(w, s.cin, co, wp);
        let wd: &[f32] = wp;
        let (cin, per_out) = (s.cin, ppi * co);
        let per_image = |b: usize, part: &mut [f32], dxi: Option<&mut [f32]>| {
            crate::nn::conv_shift::conv3_image_backward(
                &x[b * per_in..(b + 1) * per_in],
                &dout[b * per_out..(b + 1) * per_out],
                s.h,
                s.w,
                cin,
                co,
                wd,
                part,
                dxi,
                overwrite,
            );
        };
        let acc = per_image_partials(parts, wl, dx, s.images * per_in, per_in, per_image);
        if s.images > 0 {
            // acc[(q·cin + ci)·cout + o] is dW[o, ci, q].
            for (o, dr) in dw.chunks_exact_mut(cin * 9).enumerate().take(co) {
                for ci in 0..cin {
                    for q in 0..9 {
                        dr[ci * 9 + q] += acc[(q * cin + ci) * co + o];
                    }
                }
            }
        }
        bias_grad(dout, s.rows(), co, db);
        return;
    }
    let wk: &[f32] = if pointwise {
        w
    } else {
        permute_weight(w, s, wp);
        wp
    };
    let tile = s.tile_rows();
    let per_image = |b: usize, part: &mut [f32], mut dxi: Option<&mut [f32]>| {
        if overwrite && !pointwise {
            if let Some(d) = dxi.as_deref_mut() {
                d.fill(0.0);
            }
        }
        TILE.with_borrow_mut(|(cols, dcols)| {
            let mut q0 = 0;
            while q0 < ppi {
                let n = tile.min(ppi - q0);
                let p0 = b * ppi + q0;
                let d = &dout[p0 * co..(p0 + n) * co];
                let a: &[f32] = if pointwise {
                    &x[p0 * kd..(p0 + n) * kd]
                } else {
                    grow(cols, n * kd);
                    im2col_rows(x, s, p0, n, cols);
                    &cols[..n * kd]
                };
                gemm(
                    MatRef::transposed(d, co, n),
                    MatRef::row_major(a, n, kd),
                    part,
                    q0 > 0,
                    false,
                );
                if let Some(dxi) = dxi.as_deref_mut() {
                    let dm = MatRef::row_major(d, n, co);
                    let wm = MatRef::row_major(wk, co, kd);
                    if pointwise {
                        // A chain from 0 (overwrite) has the bits of one
                        // from a zeroed dx.
                        let acc = !overwrite;
                        gemm(dm, wm, &mut dxi[q0 * kd..(q0 + n) * kd], acc, false);
                    } else {
                        grow(dcols, n * kd);
                        gemm(dm, wm, &mut dcols[..n * kd], false, false);
                        col2im_rows_add(dcols, s, q0, n, dxi);
                    }
                }
                q0 += n;
            }
        });
    };
    let acc = per_image_partials(parts, wl, dx, s.images * per_in, per_in, per_image);
    if s.images > 0 {
        if pointwise {
            for (g, &v) in dw.iter_mut().zip(&*acc) {
                *g += v;
            }
        } else {
            unpermute_add(acc, s, dw);
        }
    }
    bias_grad(dout, s.rows(), co, db);
}

/// Runs `per_image(b, part_b, dx_b)` for every image in parallel, image b
/// writing its weight-gradient partial `part_b` (chunk b of `parts`, `wl`
/// long) and its slice of `dx` (`per_in` long, the first `dx_len` values),
/// then sums the partials in image order into the first one, which it
/// returns (so the sum does not depend on the thread count).
fn per_image_partials<'a>(
    parts: &'a mut [f32],
    wl: usize,
    dx: Option<&mut [f32]>,
    dx_len: usize,
    per_in: usize,
    per_image: impl Fn(usize, &mut [f32], Option<&mut [f32]>) + Sync,
) -> &'a mut [f32] {
    match dx {
        Some(dx) => parts
            .par_chunks_mut(wl)
            .zip(dx[..dx_len].par_chunks_mut(per_in))
            .enumerate()
            .for_each(|(b, (part, dxi))| per_image(b, part, Some(dxi))),
        None => parts
            .par_chunks_mut(wl)
            .enumerate()
            .for_each(|(b, part)| per_image(b, part, None)),
    }
    let (acc, rest) = parts.split_at_mut(wl.min(parts.len()));
    for part in rest.chunks_exact(wl) {
        for (a, &v) in acc.iter_mut().zip(part) {
            *a += v;
        }
    }
    acc
}

/// `db += Σ_p dout[p]` over the `rows` output pixels, in row order.
fn bias_grad(dout: &[f32], rows: usize, co: usize, db: &mut [f32]) {
    for row in dout[..rows * co].chunks_exact(co) {
        for (g, &v) in db.iter_mut().zip(row) {
            *g += v;
        }
    }
}

/// `dW[co, ci, ky, kx] += dWp[co, (ky·k + kx)·cin + ci]`.
fn unpermute_add(dwp: &[f32], s: &ConvShape, dw: &mut [f32]) {
    let (kk, cin) = (s.k * s.k, s.cin);
    for (dr, pr) in dw
        .chunks_exact_mut(cin * kk)
        .zip(dwp.chunks_exact(cin * kk))
    {
        for ci in 0..cin {
            for q in 0..kk {
                dr[ci * kk + q] += pr[q * cin + ci];
            }
        }
    }
}

/// Scatter-add rows `q0 .. q0 + n` (pixel indices within one image) of
/// `dcols` into that image's `dxi`.
fn col2im_rows_add(dcols: &[f32], s: &ConvShape, q0: usize, n: usize, dxi: &mut [f32]) {
    let (wo, kd, cin) = (s.wo(), s.kdim(), s.cin);
    let pad = (s.k - 1) / 2;
    for (r, row) in dcols[..n * kd].chunks_exact(kd).enumerate() {
        let (oy, ox) = ((q0 + r) / wo, (q0 + r) % wo);
        for ky in 0..s.k {
            let iy = (s.stride * oy + ky) as isize - pad as isize;
            if iy < 0 || iy as usize >= s.h {
                continue;
            }
            for kx in 0..s.k {
                let ix = (s.stride * ox + kx) as isize - pad as isize;
                if ix < 0 || ix as usize >= s.w {
                    continue;
                }
                let dst = &mut dxi[(iy as usize * s.w + ix as usize) * cin..][..cin];
                for (d, &v) in dst.iter_mut().zip(&row[(ky * s.k + kx) * cin..][..cin]) {
                    *d += v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shifted-GEMM backward against the im2col one on the same
    /// inputs: `dW` and `db` bit-identical (the same chains), `dx` the same
    /// sum in another order (within a few ulps of its terms' magnitude),
    /// and `overwrite` equal to adding into zeros.
    #[test]
    fn shifted_backward_matches_the_im2col_backward() {
        if !crate::backend::kernel::available() {
            return;
        }
        for (images, h, w, cin, cout) in [(3, 8, 8, 16, 32), (2, 5, 7, 3, 17), (2, 1, 1, 4, 4)] {
            let s = ConvShape {
                images,
                h,
                w,
                cin,
                cout,
                k: 3,
                stride: 1,
            };
            let f =
                |n: usize, a: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * a).sin()).collect() };
            let x = f(images * h * w * cin, 0.37);
            let wv = f(cout * cin * 9, 0.71);
            let dout = f(images * h * w * cout, 0.53);
            let dx0 = f(images * h * w * cin, 0.29);
            let run = |shifted: bool, overwrite: bool| {
                let (mut dw, mut db) = (vec![0.5f32; wv.len()], vec![0.25f32; cout]);
                let mut dx = if overwrite {
                    vec![f32::NAN; dx0.len()]
                } else {
                    dx0.clone()
                };
                let mut scratch = Vec::new();
                conv_backward_with(
                    &x,
                    &s,
                    &wv,
                    &dout,
                    &mut dw,
                    &mut db,
                    Some(&mut dx),
                    overwrite,
                    &mut scratch,
                    shifted,
                );
                (dw, db, dx)
            };
            let (dw_a, db_a, dx_a) = run(false, false);
            let (dw_b, db_b, dx_b) = run(true, false);
            assert_eq!(dw_a, dw_b, "dW bits, {h}x{w} {cin}->{cout}");
            assert_eq!(db_a, db_b);
            let bound = 1e-6 * (9 * cout) as f32;
            for (a, b) in dx_a.iter().zip(&dx_b) {
                assert!((a - b).abs() <= bound * (1.0 + a.abs()), "dx {a} vs {b}");
            }
            for shifted in [false, true] {
                let (_, _, dx_set) = run(shifted, true);
                let zeros = {
                    let (mut dw, mut db) = (vec![0.5f32; wv.len()], vec![0.25f32; cout]);
                    let mut dx = vec![0.0f32; dx0.len()];
                    conv_backward_with(
                        &x,
                        &s,
                        &wv,
                        &dout,
                        &mut dw,
                        &mut db,
                        Some(&mut dx),
                        false,
                        &mut Vec::new(),
                        shifted,
                    );
                    dx
                };
                assert_eq!(dx_set, zeros, "overwrite = add into zeros");
            }
        }
    }
}
