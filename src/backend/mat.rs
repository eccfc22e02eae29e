//! The matrix types the GEMM backend works on: a strided read-only view
//! ([`MatRef`]) and how a product reaches its output ([`Epilogue`]).

use ndarray::{ArrayView2, ShapeBuilder};

/// How a product reaches `C` (`[m, n]` row-major).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    /// `C = A·B`.
    Set,
    /// `C = C + A·B`: each element's FMA chain starts from its old value.
    Add,
    /// `C = (A·B) ⊙ C`: the old `C` is an elementwise factor.
    Scale,
}

impl Epilogue {
    pub(super) fn from_accumulate(accumulate: bool) -> Self {
        if accumulate {
            Epilogue::Add
        } else {
            Epilogue::Set
        }
    }
}

/// A read-only strided matrix view over a slice: element `(i, j)` is
/// `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// Row-major `[rows, cols]` matrix stored contiguously.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major `[cols, rows]` matrix, i.e. a
    /// `[rows, cols]` view with `rs = 1`, `cs = rows`.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows,
        }
    }

    /// Rows `start .. start + len` of this view.
    pub(super) fn row_range(&self, start: usize, len: usize) -> MatRef<'a> {
        let off = (start * self.rs).min(self.data.len());
        MatRef {
            data: &self.data[off..],
            rows: len,
            ..*self
        }
    }

    pub(super) fn view(&self) -> ArrayView2<'a, f32> {
        let data = if self.rows == 0 || self.cols == 0 {
            &self.data[..0]
        } else {
            self.data
        };
        ArrayView2::from_shape((self.rows, self.cols).strides((self.rs, self.cs)), data)
            .expect("gemm: matrix view does not fit its slice (internal shape bug)")
    }
}

/// C = A·B accumulated in f64, the reference for the kernels' tests.
#[cfg(test)]
/// C = A·B accumulated in f64, the reference for the kernels' tests.
pub(super) fn naive(a: MatRef, b: MatRef) -> Vec<f64> {
    let mut c = vec![0.0; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            for p in 0..a.cols {
                c[i * b.cols + j] +=
                    a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
            }
        }
    }
    c
}
