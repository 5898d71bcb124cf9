//! Fused CPU kernels for the operations GAN training spends its time in, as candle custom
//! ops with their own backward passes.
//!
//! candle composes these operations from many small tensor ops (BatchNorm in training mode
//! is about a dozen passes over the activations, forwards and backwards), runs transposed
//! convolutions as a direct loop, and computes a convolution's input gradient with one. Here
//! each is one pass over memory, and every convolution becomes one large matrix product
//! (im2col / col2im), so the time goes to the matmul kernel ([`gemm`]).
//!
//! Private to the crate: the layers in [`crate::nn`] call these on the CPU (f32) and candle's
//! own operations on any other device, so the `cuda` and `metal` builds behave as candle
//! does. The element-wise functions check the device themselves.

pub(crate) mod conv;
mod gemm;
pub(crate) mod linear;
pub(crate) mod norm;
pub(crate) mod pointwise;
pub(crate) mod pool;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Tensor};

/// True when `x` can take the fused CPU kernels.
pub(crate) fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32
}

/// The f32 values of a contiguous CPU storage.
fn values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32 values, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// The f32 values of an in-place op's two contiguous CPU operands: the first, written in
/// place, and the second, read.
pub(crate) fn operands_mut<'a>(
    s1: &'a mut CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
    op: &str,
) -> Result<(&'a mut [f32], &'a [f32])> {
    let (CpuStorage::F32(written), CpuStorage::F32(read)) = (s1, s2) else {
        bail!("{op}: expected f32 tensors");
    };
    let (Some((w0, w1)), Some((r0, r1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
    else {
        bail!("{op}: expected contiguous tensors");
    };
    if w1 - w0 != r1 - r0 {
        bail!("{op}: {} values to write, {} to read", w1 - w0, r1 - r0);
    }
    Ok((&mut written[w0..w1], &read[r0..r1]))
}

/// Below this many values a kernel runs on the calling thread: waking rayon's workers costs
/// more than the work.
const PARALLEL_MIN: usize = 1 << 15;

/// True when work of `len` values is worth splitting across rayon's threads. With one
/// thread it never is: called from outside the pool, each parallel loop would hand its work
/// to the pool's thread and wait (that cost a third of an MLP step).
pub(crate) fn split(len: usize) -> bool {
    len >= PARALLEL_MIN && rayon::current_num_threads() > 1
}

/// Values per task of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// `out[i] = f(a[i])`, on rayon's threads when large.
fn map1(a: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    if !split(a.len()) {
        return a.iter().map(|&v| f(v)).collect();
    }
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .for_each(|(out, a)| {
            for (o, &v) in out.iter_mut().zip(a) {
                *o = f(v);
            }
        });
    out
}

/// The transpose of a row-major `(rows, cols)` matrix.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    gather_transpose(x, rows, cols, &[])
}

/// Side of the tiles the transposes work in: 16 values are one cache line, so each tile reads
/// and writes whole lines, and its 16 source lines stay in L1 while it is read.
const TILE: usize = 16;

/// Rows of the written matrix per band (a band is one task): with 64 rather than 16, each visit
/// to one of the many rows on the other side reads or writes 4 lines, not 1, which the
/// prefetcher follows. That made both transposes 1.3-2.7 times faster on pixel-row layouts
/// (`(65536, 49)` and `(16384, 196)` matrices).
const BAND: usize = 64;

/// The transpose of a row-major `(rows, cols)` matrix with its rows in the order `order`:
/// row `j` of the result is column `order[j]` of `x` (column `j` when `order` is empty).
/// On rayon's threads when large.
fn gather_transpose(x: &[f32], rows: usize, cols: usize, order: &[usize]) -> Vec<f32> {
    let out_rows = if order.is_empty() { cols } else { order.len() };
    let mut out = vec![0f32; out_rows * rows];
    for_parts(&mut out, BAND * rows, |band, out| {
        let first = band * BAND;
        for i0 in (0..rows).step_by(TILE) {
            let i_end = (i0 + TILE).min(rows);
            for (j, out_row) in out.chunks_mut(rows).enumerate() {
                let col = order.get(first + j).copied().unwrap_or(first + j);
                for (i, o) in (i0..i_end).zip(&mut out_row[i0..i_end]) {
                    *o = x[i * cols + col];
                }
            }
        }
    });
    out
}

/// The inverse of [`gather_transpose`]: from `t`, `(order.len(), rows)` (or `(cols, rows)`
/// when `order` is empty), into `out` the `(rows, cols)` matrix whose column `order[j]` is
/// row `j` of `t`. On rayon's threads when large.
fn scatter_transpose(t: &[f32], rows: usize, cols: usize, order: &[usize], out: &mut [f32]) {
    let t_rows = if order.is_empty() { cols } else { order.len() };
    assert_eq!(out.len(), rows * cols, "scatter_transpose: output size");
    for_parts(out, BAND * cols, |band, out| {
        let first = band * BAND;
        let i_end = (first + BAND).min(rows);
        for j0 in (0..t_rows).step_by(TILE) {
            for j in j0..(j0 + TILE).min(t_rows) {
                let col = order.get(j).copied().unwrap_or(j);
                let t_row = &t[j * rows..];
                for (i, out_row) in (first..i_end).zip(out.chunks_mut(cols)) {
                    out_row[col] = t_row[i];
                }
            }
        }
    });
}

/// `(rows, cols)` → its transpose `(cols, rows)`.
struct Transpose;

impl candle_core::CustomOp1 for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> Result<(CpuStorage, candle_core::Shape)> {
        let x = values(storage, layout, self.name())?;
        let (rows, cols) = layout.shape().dims2()?;
        Ok((
            CpuStorage::F32(transpose(x, rows, cols)),
            (cols, rows).into(),
        ))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Transpose)?))
    }
}

/// `(rows, cols)` → `(cols)`: the sum of each column.
struct ColumnSums;

impl candle_core::CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "column-sums"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> Result<(CpuStorage, candle_core::Shape)> {
        let x = values(storage, layout, self.name())?;
        let (_, cols) = layout.shape().dims2()?;
        let mut sums = vec![0f32; cols];
        for row in x.chunks_exact(cols.max(1)) {
            for (s, &v) in sums.iter_mut().zip(row) {
                *s += v;
            }
        }
        Ok((CpuStorage::F32(sums), cols.into()))
    }
}

/// `out[i] = f(a[i], b[i])`, on rayon's threads when large.
fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; a.len()];
    let kernel = |(out, (a, b)): (&mut [f32], (&[f32], &[f32]))| {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    };
    if !split(a.len()) {
        kernel((&mut out, (a, b)));
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(kernel);
    }
    out
}

/// One chunk of [`map3`]'s work: its part of the output and of the three inputs.
type Chunk3<'a> = (&'a mut [f32], (&'a [f32], (&'a [f32], &'a [f32])));

/// `out[i] = f(a[i], b[i], c[i])`, on rayon's threads when large.
fn map3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32 + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; a.len()];
    let kernel = |(out, (a, (b, c))): Chunk3| {
        for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
            *o = f(x, y, z);
        }
    };
    if !split(a.len()) {
        kernel((&mut out, (a, (b, c))));
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(
                a.par_chunks(CHUNK)
                    .zip(b.par_chunks(CHUNK).zip(c.par_chunks(CHUNK))),
            )
            .for_each(kernel);
    }
    out
}

/// Calls `f(i, part)` for the consecutive `part_len`-value parts of `out` (images, planes),
/// on rayon's threads when `out` is large.
fn for_parts(out: &mut [f32], part_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    let part_len = part_len.max(1);
    if !split(out.len()) {
        out.chunks_mut(part_len)
            .enumerate()
            .for_each(|(i, p)| f(i, p));
    } else {
        out.par_chunks_mut(part_len)
            .enumerate()
            .for_each(|(i, p)| f(i, p));
    }
}

/// Runs `f(images, part)` on ranges of `n` images: one range per rayon thread when `work`
/// values are worth splitting, else one. `part` is the range's share of `out`, which holds
/// `n` images, or is empty (and each `part` too) when there is nothing to write. Returns each
/// range's result, in order.
fn by_images<R: Send>(
    n: usize,
    work: usize,
    out: &mut [f32],
    f: impl Fn(std::ops::Range<usize>, &mut [f32]) -> R + Sync + Send,
) -> Vec<R> {
    use rayon::prelude::*;
    let threads = if split(work) {
        rayon::current_num_threads()
    } else {
        1
    };
    let part_images = n.div_ceil(threads).max(1);
    let parts = n.div_ceil(part_images).max(1);
    let ranges = (0..parts).map(|i| i * part_images..((i + 1) * part_images).min(n));
    let outs: Vec<&mut [f32]> = match out.is_empty() {
        true => (0..parts).map(|_| Default::default()).collect(),
        false => out.chunks_mut(part_images * (out.len() / n)).collect(),
    };
    if parts == 1 {
        return ranges
            .zip(outs)
            .map(|(images, part)| f(images, part))
            .collect();
    }
    let ranges: Vec<_> = ranges.collect();
    ranges
        .into_par_iter()
        .zip(outs)
        .map(|(images, part)| f(images, part))
        .collect()
}

/// The layout of an `(n, c, ...)` tensor: `n` images of `c` channels of `plane` values each.
pub(crate) struct Planes {
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Values per channel of one image.
    pub plane: usize,
}

impl Planes {
    /// The layout of a tensor of this shape; an error below two dimensions.
    pub fn of(shape: &candle_core::Shape) -> Result<Planes> {
        let dims = shape.dims();
        if dims.len() < 2 {
            bail!("expected (n, c, ...) values, got shape {dims:?}");
        }
        Ok(Planes {
            n: dims[0],
            c: dims[1],
            plane: dims[2..].iter().product(),
        })
    }

    /// For every channel, the sum over images of `f(channel, offset of its plane)`: `K`
    /// sums at once, in f64 (a channel holds up to n·h·w = 25,000 values). Groups of 8
    /// images are summed in parallel and the groups' sums added in order, so the result is
    /// the same for any number of threads.
    pub fn channel_sums<const K: usize>(
        &self,
        f: impl Fn(usize, usize) -> [f32; K] + Sync,
    ) -> Vec<[f64; K]> {
        const GROUP: usize = 8;
        let group = |g: usize| {
            let mut sums = vec![[0f64; K]; self.c];
            for b in g * GROUP..((g + 1) * GROUP).min(self.n) {
                for (ch, sum) in sums.iter_mut().enumerate() {
                    let part = f(ch, (b * self.c + ch) * self.plane);
                    for (s, p) in sum.iter_mut().zip(part) {
                        *s += p as f64;
                    }
                }
            }
            sums
        };
        let groups = self.n.div_ceil(GROUP);
        let partial: Vec<Vec<[f64; K]>> = if split(self.n * self.c * self.plane) {
            use rayon::prelude::*;
            (0..groups).into_par_iter().map(group).collect()
        } else {
            (0..groups).map(group).collect()
        };
        let mut total = vec![[0f64; K]; self.c];
        for sums in partial {
            for (t, s) in total.iter_mut().zip(sums) {
                for (a, b) in t.iter_mut().zip(s) {
                    *a += b;
                }
            }
        }
        total
    }
}

/// Runs `f` on a two-thread pool, so that large inputs take the kernels' parallel paths
/// whatever the machine or `RAYON_NUM_THREADS`.
#[cfg(test)]
pub(crate) fn two_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a two-thread pool")
        .install(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_gather_and_scatter_columns() {
        // Sizes that are not multiples of the tile, and large enough to split on two threads.
        for (rows, cols) in [(3, 5), (37, 21), (300, 129)] {
            let x: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            // Even columns, then odd ones: the order of a stride-2 convolution's pixels.
            let order: Vec<usize> = (0..cols).step_by(2).chain((1..cols).step_by(2)).collect();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let t = pool.install(|| transpose(&x, rows, cols));
                let g = pool.install(|| gather_transpose(&x, rows, cols, &order));
                for i in 0..rows {
                    for j in 0..cols {
                        assert_eq!(t[j * rows + i], x[i * cols + j]);
                        assert_eq!(g[j * rows + i], x[i * cols + order[j]]);
                    }
                }
                let mut back = vec![0f32; x.len()];
                pool.install(|| scatter_transpose(&t, rows, cols, &[], &mut back));
                assert_eq!(back, x);
                let mut back = vec![0f32; x.len()];
                pool.install(|| scatter_transpose(&g, rows, cols, &order, &mut back));
                assert_eq!(back, x);
            }
        }
    }
}
