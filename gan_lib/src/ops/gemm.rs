//! Matrix products through the `gemm` crate (the kernel candle's matmul uses), with the rows
//! of the result split across rayon's threads. For the small-batch products of GAN layers,
//! gemm's own threading gains little on two cores (a 64×512×784 product: 42 GFLOP/s on one
//! thread, 48 on two); one single-threaded gemm per half of the rows gains 1.6-1.8x.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{values, Transpose};

/// A read-only matrix: element `(r, c)` is `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl Mat<'_> {
    /// A row-major `(rows, cols)` matrix.
    pub fn rows<'a>(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major `(cols, rows)` matrix, without copying.
    pub fn transposed<'a>(data: &'a [f32], rows: usize) -> Mat<'a> {
        Mat {
            data,
            rs: 1,
            cs: rows,
        }
    }

    /// True when every element of an `(m, k)` view lies inside `data`.
    fn fits(&self, m: usize, k: usize) -> bool {
        m == 0 || k == 0 || (m - 1) * self.rs + (k - 1) * self.cs < self.data.len()
    }
}

/// Below this many multiply-adds one thread does the whole product.
const SPLIT_THRESHOLD: usize = 1 << 20;

/// `out (m×n, row-major) = a (m×k) · b (k×n)`.
pub(super) fn matmul(m: usize, n: usize, k: usize, a: Mat, b: Mat, out: &mut [f32]) {
    split_matmul(m, n, k, a, b, out, false, SPLIT_THRESHOLD);
}

/// `out (m×n, row-major) += a (m×k) · b (k×n)`.
pub(super) fn matmul_add(m: usize, n: usize, k: usize, a: Mat, b: Mat, out: &mut [f32]) {
    split_matmul(m, n, k, a, b, out, true, SPLIT_THRESHOLD);
}

/// [`matmul`] or, when `add`, [`matmul_add`], split across threads from `min_work`
/// multiply-adds up.
#[allow(clippy::too_many_arguments)]
fn split_matmul(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    out: &mut [f32],
    add: bool,
    min_work: usize,
) {
    assert!(
        a.fits(m, k) && b.fits(k, n) && out.len() == m * n,
        "matmul operands do not match {m}x{k} · {k}x{n}"
    );
    let threads = rayon::current_num_threads();
    if threads < 2 || m * n * k < min_work || m < 2 {
        gemm_rows(0, (n, k), a, b, out, add);
        return;
    }
    let rows_per_chunk = m.div_ceil(threads);
    out.par_chunks_mut(rows_per_chunk * n)
        .enumerate()
        .for_each(|(i, chunk)| gemm_rows(i * rows_per_chunk, (n, k), a, b, chunk, add));
}

/// Rows `first..` of `a · b` (`out.len() / n` of them), single-threaded, into `out`, or
/// added to it when `add`.
fn gemm_rows(first: usize, (n, k): (usize, usize), a: Mat, b: Mat, out: &mut [f32], add: bool) {
    let rows = out.len() / n.max(1);
    if rows == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !add {
            out.fill(0.0);
        }
        return;
    }
    // SAFETY: `matmul` checked that every element of the (m, k) and (k, n) views lies in
    // the slices; rows `first..first + rows` are a subset, and `out` holds rows × n values.
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            add,
            a.data.as_ptr().add(first * a.rs),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if add { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `(W, x)` → `W·xᵀ`: weight `(out, in)`, inputs `(b, in)`, result `(out, b)`.
pub(super) struct Project;

impl CustomOp2 for Project {
    fn name(&self) -> &'static str {
        "project"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (w, x) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let ((outputs, inputs), (batch, x_inputs)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if inputs != x_inputs {
            candle_core::bail!("project: weight takes {inputs} inputs, x has {x_inputs}");
        }
        let mut z = vec![0f32; outputs * batch];
        matmul(
            outputs,
            batch,
            inputs,
            Mat::rows(w, inputs),
            Mat::transposed(x, inputs),
            &mut z,
        );
        Ok((CpuStorage::F32(z), (outputs, batch).into()))
    }

    fn bwd(
        &self,
        w: &Tensor,
        x: &Tensor,
        _z: &Tensor,
        d_z: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d_z = d_z.contiguous()?;
        // dW = dz·x; dx = (Wᵀ·dz)ᵀ: computed transposed, the batch on the kernel's rows. Each
        // only where candle tracks it: no dx for a batch of images or noise, no dW for a
        // frozen layer's weight.
        let d_w = match w.track_op() {
            true => Some(d_z.apply_op2(
                x,
                Product {
                    a_transposed: false,
                },
            )?),
            false => None,
        };
        let d_x = match x.track_op() {
            true => Some(
                w.apply_op2(&d_z, Product { a_transposed: true })?
                    .apply_op1(Transpose)?,
            ),
            false => None,
        };
        Ok((d_w, d_x))
    }
}

/// `(a, b)` → `a·b` for row-major operands, `a` read transposed when `a_transposed`.
pub(super) struct Product {
    pub a_transposed: bool,
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "product"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let (a_rows, a_cols) = l1.shape().dims2()?;
        let (b_rows, b_cols) = l2.shape().dims2()?;
        let (m, k, a) = match self.a_transposed {
            false => (a_rows, a_cols, Mat::rows(a, a_cols)),
            true => (a_cols, a_rows, Mat::transposed(a, a_cols)),
        };
        let (k_b, n, b) = (b_rows, b_cols, Mat::rows(b, b_cols));
        if k != k_b {
            candle_core::bail!("product: {m}x{k} times {k_b}x{n}");
        }
        let mut out = vec![0f32; m * n];
        matmul(m, n, k, a, b, &mut out);
        Ok((CpuStorage::F32(out), (m, n).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_product_in_every_layout() {
        let (m, n, k) = (37, 23, 19);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
        let want: Vec<f32> = (0..m * n)
            .map(|i| (0..k).map(|p| a[i / n * k + p] * b[p * n + i % n]).sum())
            .collect();
        // a^T and b^T stored row-major, to read through `transposed`.
        let a_t: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let b_t: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        for (lhs, rhs) in [
            (Mat::rows(&a, k), Mat::rows(&b, n)),
            (Mat::transposed(&a_t, m), Mat::transposed(&b_t, k)),
        ] {
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut out = vec![0f32; m * n];
                pool.install(|| split_matmul(m, n, k, lhs, rhs, &mut out, false, 0));
                assert_eq!(out, want, "{threads} threads");
                pool.install(|| split_matmul(m, n, k, lhs, rhs, &mut out, true, 0));
                let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
                assert_eq!(out, twice, "{threads} threads, added");
            }
        }
    }
}
