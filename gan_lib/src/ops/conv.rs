//! Convolutions as matrix products. `im2col` copies every k×k patch of the input into a
//! row of a matrix, so a convolution is that matrix times the kernel; `col2im`, its
//! adjoint, adds each row back onto the patch it came from. A transposed convolution is
//! the kernel product first and `col2im` after, and each one's input gradient is the
//! other. Each layer is one custom op with its own backward pass, so that the large patch
//! matrices stay out of candle's graph, and every product runs in [`super::gemm`].
//!
//! Convolutions with enough channels skip the patch matrix: each kernel tap is one product
//! per patch-grid row, from the pixels it reads to the positions it shifts them onto
//! ([`Shift`]), with the pixels as rows of channels. Taps that fall into the padding are
//! never computed (im2col multiplies their zeros: 31% of dcgan-tf's largest layer, 16% of
//! its stride-2 layers), and no patch matrix is written or summed back.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::gemm::{matmul, matmul_add, Mat};
use super::{by_images, for_parts, gather_transpose, scatter_transpose, transpose, values, Planes};

/// Output side of a convolution: `(side + 2·padding − kernel) / stride + 1` (1 when the
/// kernel does not fit, which config validation refuses first).
pub fn conv_output(side: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (side + 2 * padding).saturating_sub(kernel) / stride.max(1) + 1
}

/// Output side of a transposed convolution: `(side − 1)·stride − 2·padding + kernel +
/// output_padding`.
pub fn conv_transpose_output(
    side: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> usize {
    (side.saturating_sub(1) * stride + kernel + output_padding).saturating_sub(2 * padding)
}

/// The shape of a convolution: images `(n, c, h, w)`, a `k×k` kernel, stride and padding,
/// giving `oh×ow` patch positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Patches {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
    oh: usize,
    ow: usize,
}

impl Patches {
    fn new(
        (n, c, h, w): (usize, usize, usize, usize),
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Patches {
        let oh = conv_output(h, k, stride, padding);
        let ow = conv_output(w, k, stride, padding);
        Patches {
            n,
            c,
            h,
            w,
            k,
            stride,
            padding,
            oh,
            ow,
        }
    }

    /// Columns of the patch matrix: `c·k·k`.
    fn row_len(&self) -> usize {
        self.c * self.k * self.k
    }

    /// Rows of the patch matrix: one per image and output position.
    fn rows(&self) -> usize {
        self.n * self.oh * self.ow
    }

    /// For output row `out` and kernel row `kernel`, the input row, if inside the image.
    fn source(&self, out: usize, kernel: usize, side: usize) -> Option<usize> {
        (out * self.stride + kernel)
            .checked_sub(self.padding)
            .filter(|&i| i < side)
    }

    /// Values of one image.
    fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Patch-matrix values of one image.
    fn patches_len(&self) -> usize {
        self.oh * self.ow * self.row_len()
    }

    /// Calls `visit(patch_start, pixel_start, len)`, within one image and its rows of the
    /// patch matrix, for every run of `len` consecutive patch entries that come from `len`
    /// consecutive pixels of an image row (a kernel row, cut where it leaves the image).
    /// Entries in the padding are skipped. Every image has the same runs.
    fn for_each_run(&self, mut visit: impl FnMut(usize, usize, usize)) {
        let (k, s, p, row_len) = (self.k, self.stride, self.padding, self.row_len());
        for oy in 0..self.oh {
            for ox in 0..self.ow {
                let row = (oy * self.ow + ox) * row_len;
                // Kernel columns kx with 0 <= ox·s + kx − p < w.
                let kx_start = p.saturating_sub(ox * s);
                let kx_end = k.min((self.w + p).saturating_sub(ox * s));
                if kx_start >= kx_end {
                    continue;
                }
                let len = kx_end - kx_start;
                let ix_start = ox * s + kx_start - p;
                for c in 0..self.c {
                    for ky in 0..k {
                        let Some(iy) = self.source(oy, ky, self.h) else {
                            continue;
                        };
                        visit(
                            row + (c * k + ky) * k + kx_start,
                            (c * self.h + iy) * self.w + ix_start,
                            len,
                        );
                    }
                }
            }
        }
    }
}

/// Below this many channels on either side a convolution keeps its patch matrix: a
/// shifted product sums over the channels only, too short a sum for gemm's kernel.
const SHIFT_MIN_CHANNELS: usize = 16;

/// One product of a convolution without a patch matrix: kernel tap `tap` takes `len`
/// pixels of an image row, from source row `source`, to `len` consecutive positions of a
/// patch-grid row, from position `target` (both counted within one image). Pixels are
/// stored as rows of `n` images' channels ([`pixel_rows`]), each image row's pixels split
/// by column modulo the stride (even columns first for stride 2), so that the pixels of
/// consecutive positions are consecutive rows on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shift {
    tap: usize,
    source: usize,
    target: usize,
    len: usize,
}

impl Patches {
    /// True when this convolution, with `o` channels on the patch-grid side, runs as
    /// [`Shift`]ed products rather than through a patch matrix.
    fn shifted(&self, o: usize) -> bool {
        self.c.min(o) >= SHIFT_MIN_CHANNELS
    }

    /// Pixels of an image row whose column is `phase` modulo the stride.
    fn phase_len(&self, phase: usize) -> usize {
        self.w.saturating_sub(phase).div_ceil(self.stride)
    }

    /// The pixel (`y·w + x`) each source row of [`Shift`]ed products holds; empty for
    /// stride 1, where they are in order.
    fn source_order(&self) -> Vec<usize> {
        if self.stride == 1 {
            return Vec::new();
        }
        let mut order = Vec::with_capacity(self.h * self.w);
        for y in 0..self.h {
            for phase in 0..self.stride {
                order.extend((phase..self.w).step_by(self.stride).map(|x| y * self.w + x));
            }
        }
        order
    }

    /// The shifted products: per tap, one per patch-grid row whose source row lies inside
    /// the image, cut to the positions whose pixels do.
    fn shifts(&self) -> Vec<Shift> {
        let (k, s) = (self.k, self.stride as isize);
        let mut shifts = Vec::new();
        for ky in 0..k {
            for kx in 0..k {
                // Position tx reads column tx·s + kx − p = (tx + base)·s + phase.
                let offset = kx as isize - self.padding as isize;
                let (phase, base) = (offset.rem_euclid(s) as usize, offset.div_euclid(s));
                let phase_start: usize = (0..phase).map(|q| self.phase_len(q)).sum();
                let tx_start = (-base).max(0);
                let tx_end = (self.ow as isize).min(self.phase_len(phase) as isize - base);
                if tx_start >= tx_end {
                    continue;
                }
                for ty in 0..self.oh {
                    if let Some(sy) = self.source(ty, ky, self.h) {
                        shifts.push(Shift {
                            tap: ky * k + kx,
                            source: sy * self.w + phase_start + (tx_start + base) as usize,
                            target: ty * self.ow + tx_start as usize,
                            len: (tx_end - tx_start) as usize,
                        });
                    }
                }
            }
        }
        shifts
    }
}

/// Images `(n, c, h, w)` → pixel rows `(h·w, n, c)`: row `i` holds pixel `order[i]` of
/// every image and channel (pixel `i` when `order` is empty). [`images_into`] is the way back.
fn pixel_rows(x: &[f32], nc: usize, order: &[usize]) -> Vec<f32> {
    gather_transpose(x, nc, x.len() / nc.max(1), order)
}

/// Pixel rows `(h·w, n, c)` → images `(n, c, h, w)` into `out`, the inverse of
/// [`pixel_rows`].
fn images_into(rows: &[f32], nc: usize, order: &[usize], out: &mut [f32]) {
    scatter_transpose(rows, nc, rows.len() / nc.max(1), order, out);
}

/// A shifted convolution's forward pass on images: with `to_grid`, the convolution
/// (`(n, c, h, w)` → `(n, o, oh, ow)`), else its adjoint, the transposed convolution (the
/// other way). Kernel `(o, c·k·k)`. Each of rayon's threads takes its share of the images.
fn shifted_forward(
    p: &Patches,
    input: &[f32],
    kernel: &[f32],
    o: usize,
    to_grid: bool,
) -> Vec<f32> {
    let (shifts, order) = (p.shifts(), p.source_order());
    let taps = kernel_taps(kernel, p.k * p.k);
    let (source_len, grid_len) = (p.image_len(), o * p.oh * p.ow);
    let (input_len, output_len) = match to_grid {
        true => (source_len, grid_len),
        false => (grid_len, source_len),
    };
    let mut output = vec![0f32; p.n * output_len];
    by_images(p.n, input.len(), &mut output, |images, output| {
        let part = Patches {
            n: images.len(),
            ..*p
        };
        let input = &input[images.start * input_len..images.end * input_len];
        if to_grid {
            let source_rows = pixel_rows(input, part.n * p.c, &order);
            let grid_rows = shifted_conv(&part, &shifts, &source_rows, &taps, o);
            images_into(&grid_rows, part.n * o, &[], output);
        } else {
            let grid_rows = pixel_rows(input, part.n * o, &[]);
            let source_rows = shifted_conv_adjoint(&part, &shifts, &grid_rows, &taps, o);
            images_into(&source_rows, part.n * p.c, &order, output);
        }
    });
    output
}

/// A shifted convolution's backward pass: from source-side images `(n, c, h, w)` and
/// patch-grid images `(n, o, oh, ow)`, one of them a gradient, the gradients `wanted`: the
/// input's (with `to_source` the source side's, of a convolution, else the patch grid's, of a
/// transposed convolution) and the kernel's. Returns `(input gradient, kernel gradient)`.
fn shifted_backward(
    p: &Patches,
    (source, grid): (&[f32], &[f32]),
    kernel: &[f32],
    o: usize,
    (wanted, to_source): (Wanted, bool),
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (kk, shifts, order) = (p.k * p.k, p.shifts(), p.source_order());
    let taps = kernel_taps(kernel, kk);
    let (source_len, grid_len) = (p.image_len(), o * p.oh * p.ow);
    let d_len = if to_source { source_len } else { grid_len };
    let mut d_input = vec![0f32; if wanted.input { p.n * d_len } else { 0 }];
    let d_taps = by_images(p.n, source.len(), &mut d_input, |images, d_input| {
        let part = Patches {
            n: images.len(),
            ..*p
        };
        let (n, first, end) = (part.n, images.start, images.end);
        // The input gradient reads one side, the kernel's both.
        let source_rows = (wanted.kernel || !to_source).then(|| {
            pixel_rows(
                &source[first * source_len..end * source_len],
                n * p.c,
                &order,
            )
        });
        let grid_rows = (wanted.kernel || to_source)
            .then(|| pixel_rows(&grid[first * grid_len..end * grid_len], n * o, &[]));
        if wanted.input && to_source {
            let grid_rows = grid_rows.as_deref().unwrap_or_default();
            let d_rows = shifted_conv_adjoint(&part, &shifts, grid_rows, &taps, o);
            images_into(&d_rows, n * p.c, &order, d_input);
        } else if wanted.input {
            let source_rows = source_rows.as_deref().unwrap_or_default();
            let d_rows = shifted_conv(&part, &shifts, source_rows, &taps, o);
            images_into(&d_rows, n * o, &[], d_input);
        }
        match (source_rows, grid_rows) {
            (Some(source_rows), Some(grid_rows)) if wanted.kernel => Some(shifted_taps_grad(
                &part,
                &shifts,
                &source_rows,
                &grid_rows,
                o,
            )),
            _ => None,
        }
    });
    let d_taps = d_taps.into_iter().flatten().reduce(|mut sum, part| {
        sum.iter_mut().zip(part).for_each(|(s, v)| *s += v);
        sum
    });
    let d_kernel = d_taps.map(|d_taps| taps_kernel(&d_taps, kk));
    (wanted.input.then_some(d_input), d_kernel)
}

/// A convolution on pixel rows: images `(h·w, n, c)` and taps `(k·k, o, c)` →
/// patch grid `(oh·ow, n, o)`, each shift's target rows += its source rows · tapᵀ.
fn shifted_conv(p: &Patches, shifts: &[Shift], x_rows: &[f32], taps: &[f32], o: usize) -> Vec<f32> {
    let (n, c) = (p.n, p.c);
    let mut z_rows = vec![0f32; p.oh * p.ow * n * o];
    for s in shifts {
        let rows = s.len * n;
        matmul_add(
            rows,
            o,
            c,
            Mat::rows(&x_rows[s.source * n * c..], c),
            Mat::transposed(&taps[s.tap * o * c..(s.tap + 1) * o * c], c),
            &mut z_rows[s.target * n * o..(s.target * n + rows) * o],
        );
    }
    z_rows
}

/// The adjoint of [`shifted_conv`]: patch grid `(oh·ow, n, o)` → images `(h·w, n, c)`,
/// each shift's source rows += its target rows · tap.
fn shifted_conv_adjoint(
    p: &Patches,
    shifts: &[Shift],
    z_rows: &[f32],
    taps: &[f32],
    o: usize,
) -> Vec<f32> {
    let (n, c) = (p.n, p.c);
    let mut x_rows = vec![0f32; p.h * p.w * n * c];
    for s in shifts {
        let rows = s.len * n;
        matmul_add(
            rows,
            c,
            o,
            Mat::rows(&z_rows[s.target * n * o..], o),
            Mat::rows(&taps[s.tap * o * c..(s.tap + 1) * o * c], c),
            &mut x_rows[s.source * n * c..(s.source * n + rows) * c],
        );
    }
    x_rows
}

/// The taps' gradient `(k·k, o, c)` of [`shifted_conv`] from images `(h·w, n, c)` and the
/// patch grid's gradient `(oh·ow, n, o)`: per shift, its tap += target rowsᵀ · source rows.
fn shifted_taps_grad(
    p: &Patches,
    shifts: &[Shift],
    x_rows: &[f32],
    d_z_rows: &[f32],
    o: usize,
) -> Vec<f32> {
    let (n, c) = (p.n, p.c);
    let mut d_taps = vec![0f32; p.k * p.k * o * c];
    for s in shifts {
        matmul_add(
            o,
            c,
            s.len * n,
            Mat::transposed(&d_z_rows[s.target * n * o..], o),
            Mat::rows(&x_rows[s.source * n * c..], c),
            &mut d_taps[s.tap * o * c..(s.tap + 1) * o * c],
        );
    }
    d_taps
}

/// Kernel `(o, c, k, k)` → taps `(k·k, o, c)`, one `(o, c)` matrix per kernel position.
fn kernel_taps(kernel: &[f32], kk: usize) -> Vec<f32> {
    transpose(kernel, kernel.len() / kk, kk)
}

/// Taps `(k·k, o, c)` → kernel `(o, c, k, k)`.
fn taps_kernel(taps: &[f32], kk: usize) -> Vec<f32> {
    transpose(taps, kk, taps.len() / kk)
}

/// `dst.copy_from_slice(src)`, with the short runs of small kernels copied inline: a
/// `memcpy` call per 5-value run took 8% of the classifier's training step.
fn copy_run(dst: &mut [f32], src: &[f32]) {
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        dst[..N].copy_from_slice(&src[..N]);
    }
    match src.len() {
        1 => fixed::<1>(dst, src),
        2 => fixed::<2>(dst, src),
        3 => fixed::<3>(dst, src),
        4 => fixed::<4>(dst, src),
        5 => fixed::<5>(dst, src),
        6 => fixed::<6>(dst, src),
        7 => fixed::<7>(dst, src),
        8 => fixed::<8>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Images `(n, c, h, w)` → patch matrix `(n·oh·ow, c·k·k)`.
fn im2col(p: &Patches, x: &[f32]) -> Vec<f32> {
    let mut cols = vec![0f32; p.rows() * p.row_len()];
    for_parts(&mut cols, p.patches_len(), |b, patches| {
        let image = &x[b * p.image_len()..(b + 1) * p.image_len()];
        p.for_each_run(|col, pixel, len| {
            copy_run(&mut patches[col..col + len], &image[pixel..pixel + len]);
        });
    });
    cols
}

/// Patch matrix `(n·oh·ow, c·k·k)` → images `(n, c, h, w)`, overlapping patches summed.
fn col2im(p: &Patches, cols: &[f32]) -> Vec<f32> {
    let mut x = vec![0f32; p.n * p.image_len()];
    for_parts(&mut x, p.image_len(), |b, image| {
        let patches = &cols[b * p.patches_len()..(b + 1) * p.patches_len()];
        p.for_each_run(|col, pixel, len| {
            for (v, patch) in image[pixel..pixel + len]
                .iter_mut()
                .zip(&patches[col..col + len])
            {
                *v += patch;
            }
        });
    });
    x
}

/// Images `(n, c, h·w)` ↔ one row per position `(n·h·w, c)`: `to_rows` picks the direction.
fn swap_channels(x: &[f32], c: usize, plane: usize, to_rows: bool) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for_parts(&mut out, c * plane, |b, image| {
        let source = &x[b * c * plane..(b + 1) * c * plane];
        for ch in 0..c {
            for i in 0..plane {
                if to_rows {
                    image[i * c + ch] = source[ch * plane + i];
                } else {
                    image[ch * plane + i] = source[i * c + ch];
                }
            }
        }
    });
    out
}

/// `(n, c, h, w)` images plus a `(c)` bias per channel. candle's `broadcast_add` sums the
/// bias gradient over dimensions 0, 2 and 3 in a slow strided loop (13% of a DCGAN step);
/// here it is one contiguous pass.
struct AddChannelBias;

impl CustomOp2 for AddChannelBias {
    fn name(&self) -> &'static str {
        "add-channel-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let bias = values(s2, l2, self.name())?;
        let image = x.len() / l1.dims()[0].max(1);
        let plane = image / bias.len().max(1);
        let mut y = vec![0f32; x.len()];
        for_parts(&mut y, image, |b, out| {
            for (ch, out) in out.chunks_mut(plane.max(1)).enumerate() {
                let source = &x[b * image + ch * plane..];
                for (o, &v) in out.iter_mut().zip(source) {
                    *o = v + bias[ch];
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d_bias = match bias.track_op() {
            true => Some(grad.apply_op1(ChannelSum)?),
            false => None,
        };
        Ok((Some(grad), d_bias))
    }
}

/// `(n, c, h, w)` → `(c)`: the sum of each channel.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "channel-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let planes = Planes::of(layout.shape())?;
        let sums: Vec<f32> = planes
            .channel_sums(|_, at| [x[at..at + planes.plane].iter().sum::<f32>()])
            .iter()
            .map(|[sum]| *sum as f32)
            .collect();
        Ok((CpuStorage::F32(sums), planes.c.into()))
    }
}

/// `(x, kernel (o, c·k·k))` → `(o, n·oh·ow)`: a whole convolution as one node of candle's
/// graph. Its patch matrix (80 MB for dcgan-tf's second layer) stays inside: as a node of
/// its own, its gradient would be zero-filled and added by candle's gradient store.
struct ConvOp(Patches);

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let (x, kernel) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let (o, r, ckk) = (l2.dims()[0], p.rows(), p.row_len());
        if p.shifted(o) {
            let z = shifted_forward(p, x, kernel, o, true);
            return Ok((CpuStorage::F32(z), (p.n, o, p.oh, p.ow).into()));
        }
        let cols = im2col(p, x);
        let mut z = vec![0f32; o * r];
        // W·colsᵀ: images × positions, the long side, on the kernel's rows.
        matmul(
            o,
            r,
            ckk,
            Mat::rows(kernel, ckk),
            Mat::transposed(&cols, ckk),
            &mut z,
        );
        Ok((CpuStorage::F32(z), (o, r).into()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _z: &Tensor,
        d_z: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        gradients(x, kernel, d_z, |wanted| ConvGrad(self.0, wanted))
    }
}

/// `(x, kernel, dz)` → `[dx, dkernel]` of [`ConvOp`], packed (a custom op has one output),
/// each only when [`Wanted`].
struct ConvGrad(Patches, Wanted);

impl CustomOp3 for ConvGrad {
    fn name(&self) -> &'static str {
        "conv2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let (x, kernel) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let d_z = values(s3, l3, self.name())?;
        let (o, r, ckk) = (l2.dims()[0], p.rows(), p.row_len());
        let wanted = self.1;
        if p.shifted(o) {
            let (d_x, d_kernel) = shifted_backward(p, (x, d_z), kernel, o, (wanted, true));
            return Ok(pack(d_x, d_kernel));
        }
        let d_kernel = wanted.kernel.then(|| {
            let mut d_kernel = vec![0f32; o * ckk];
            matmul(
                o,
                ckk,
                r,
                Mat::rows(d_z, r),
                Mat::rows(&im2col(p, x), ckk),
                &mut d_kernel,
            );
            d_kernel
        });
        if !wanted.input {
            return Ok(pack(None, d_kernel));
        }
        let mut d_cols = vec![0f32; r * ckk];
        matmul(
            r,
            ckk,
            o,
            Mat::transposed(d_z, r),
            Mat::rows(kernel, ckk),
            &mut d_cols,
        );
        Ok(pack(Some(col2im(p, &d_cols)), d_kernel))
    }
}

/// `(x (n, c, h, w), kernel (c, o·k·k))` → `(n, o, oh, ow)`: a whole transposed convolution
/// as one node of candle's graph (see [`ConvOp`]). `self.0` describes the convolution it is
/// the adjoint of: output-sized images, an input-sized patch grid.
struct ConvTransposeOp(Patches);

impl CustomOp2 for ConvTransposeOp {
    fn name(&self) -> &'static str {
        "conv-transpose2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let (x, kernel) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let (c, okk, r) = (l2.dims()[0], p.row_len(), p.rows());
        if p.shifted(c) {
            let y = shifted_forward(p, x, kernel, c, false);
            return Ok((CpuStorage::F32(y), (p.n, p.c, p.h, p.w).into()));
        }
        let rows = swap_channels(x, c, p.oh * p.ow, true);
        let mut cols = vec![0f32; r * okk];
        matmul(
            r,
            okk,
            c,
            Mat::rows(&rows, c),
            Mat::rows(kernel, okk),
            &mut cols,
        );
        Ok((
            CpuStorage::F32(col2im(p, &cols)),
            (p.n, p.c, p.h, p.w).into(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _y: &Tensor,
        d_y: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        gradients(x, kernel, d_y, |wanted| ConvTransposeGrad(self.0, wanted))
    }
}

/// `(x, kernel, dy)` → `[dx, dkernel]` of [`ConvTransposeOp`], packed, each only when
/// [`Wanted`].
struct ConvTransposeGrad(Patches, Wanted);

impl CustomOp3 for ConvTransposeGrad {
    fn name(&self) -> &'static str {
        "conv-transpose2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let (x, kernel) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let d_y = values(s3, l3, self.name())?;
        let (c, okk, r) = (l2.dims()[0], p.row_len(), p.rows());
        let wanted = self.1;
        if p.shifted(c) {
            let (d_x, d_kernel) = shifted_backward(p, (d_y, x), kernel, c, (wanted, false));
            return Ok(pack(d_x, d_kernel));
        }
        let plane = p.oh * p.ow;
        let d_cols = im2col(p, d_y);
        let d_kernel = wanted.kernel.then(|| {
            let mut d_kernel = vec![0f32; c * okk];
            matmul(
                c,
                okk,
                r,
                Mat::transposed(&swap_channels(x, c, plane, true), c),
                Mat::rows(&d_cols, okk),
                &mut d_kernel,
            );
            d_kernel
        });
        if !wanted.input {
            return Ok(pack(None, d_kernel));
        }
        let mut d_rows = vec![0f32; r * c];
        matmul(
            r,
            c,
            okk,
            Mat::rows(&d_cols, okk),
            Mat::transposed(kernel, okk),
            &mut d_rows,
        );
        Ok(pack(
            Some(swap_channels(&d_rows, c, plane, false)),
            d_kernel,
        ))
    }
}

/// Which gradients a convolution's backward pass computes. candle tracks neither a batch of
/// images or noise (no input gradient; in a discriminator's first layer that product is as
/// large as the layer's forward pass) nor the kernel of a frozen layer (see
/// [`crate::models::Discriminator::frozen`]).
#[derive(Clone, Copy, Debug)]
struct Wanted {
    input: bool,
    kernel: bool,
}

/// `[dx, dkernel]`, either left out when `None`, as one output, the way a gradient op
/// returns both.
fn pack(d_x: Option<Vec<f32>>, d_kernel: Option<Vec<f32>>) -> (CpuStorage, Shape) {
    let mut packed = d_x.unwrap_or_default();
    packed.extend(d_kernel.unwrap_or_default());
    let len = packed.len();
    (CpuStorage::F32(packed), len.into())
}

/// Runs the gradient op `grad_op(wanted)` on `(x, kernel, grad)` for the gradients candle
/// tracks, and splits its packed `[dx, dkernel]` into gradients shaped as `x` and `kernel`.
fn gradients<Op: CustomOp3 + Send + Sync + 'static>(
    x: &Tensor,
    kernel: &Tensor,
    grad: &Tensor,
    grad_op: impl FnOnce(Wanted) -> Op,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let wanted = Wanted {
        input: x.track_op(),
        kernel: kernel.track_op(),
    };
    if !wanted.input && !wanted.kernel {
        return Ok((None, None));
    }
    let packed = x.apply_op3(kernel, &grad.contiguous()?, grad_op(wanted))?;
    let n_x = if wanted.input { x.elem_count() } else { 0 };
    let n_kernel = if wanted.kernel {
        kernel.elem_count()
    } else {
        0
    };
    if packed.elem_count() != n_x + n_kernel {
        candle_core::bail!(
            "convolution gradient: {} values packed, expected {n_x} (input) + {n_kernel} (kernel)",
            packed.elem_count(),
        );
    }
    let d_x = match wanted.input {
        true => Some(packed.narrow(0, 0, n_x)?.reshape(x.shape())?),
        false => None,
    };
    let d_kernel = match wanted.kernel {
        true => Some(packed.narrow(0, n_x, n_kernel)?.reshape(kernel.shape())?),
        false => None,
    };
    Ok((d_x, d_kernel))
}

/// A 2-D convolution of images `(n, c, h, w)` with a kernel `(o, c, k, k)` and an optional
/// bias `(o)`, as one custom op each way.
pub(crate) fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (o, c, k, _) = weight.dims4()?;
    let p = Patches::new(x.dims4()?, k, stride, padding);
    let kernel = weight.reshape((o, c * k * k))?;
    let conv = x.contiguous()?.apply_op2(&kernel, ConvOp(p))?;
    if p.shifted(o) {
        // Already images (n, o, oh, ow).
        return match bias {
            Some(bias) => conv.apply_op2(bias, AddChannelBias),
            None => Ok(conv),
        };
    }
    // Otherwise one row per channel, (o, n·oh·ow).
    let by_channel = conv;
    let bias = match bias {
        Some(bias) => bias.clone(),
        None => Tensor::zeros(o, by_channel.dtype(), by_channel.device())?,
    };
    by_channel.apply_op2(&bias, ImagesFirst(p.n, p.oh, p.ow))
}

/// `(c, n·h·w)` — one row per channel — plus a `(c)` bias → images `(n, c, h, w)`: the
/// layout change and the bias in one pass; the backward pass reverses the layout and sums
/// the bias gradient per channel.
struct ImagesFirst(usize, usize, usize);

impl CustomOp2 for ImagesFirst {
    fn name(&self) -> &'static str {
        "images-first"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let rows = values(s1, l1, self.name())?;
        let bias = values(s2, l2, self.name())?;
        let (n, h, w) = (self.0, self.1, self.2);
        let (c, plane) = (bias.len(), h * w);
        let mut y = vec![0f32; rows.len()];
        for_parts(&mut y, c * plane, |b, image| {
            for (ch, out) in image.chunks_mut(plane).enumerate() {
                let source = &rows[(ch * n + b) * plane..(ch * n + b + 1) * plane];
                for (o, &v) in out.iter_mut().zip(source) {
                    *o = v + bias[ch];
                }
            }
        });
        Ok((CpuStorage::F32(y), (n, c, h, w).into()))
    }

    fn bwd(
        &self,
        _rows: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d_bias = match bias.track_op() {
            true => Some(grad.apply_op1(ChannelSum)?),
            false => None,
        };
        Ok((Some(grad.apply_op1(ChannelsFirst)?), d_bias))
    }
}

/// Images `(n, c, h, w)` → `(c, n·h·w)`, one row per channel.
struct ChannelsFirst;

impl CustomOp1 for ChannelsFirst {
    fn name(&self) -> &'static str {
        "channels-first"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let plane = h * w;
        let mut rows = vec![0f32; x.len()];
        for_parts(&mut rows, n * plane, |ch, row| {
            for (b, out) in row.chunks_mut(plane).enumerate() {
                out.copy_from_slice(&x[(b * c + ch) * plane..(b * c + ch + 1) * plane]);
            }
        });
        Ok((CpuStorage::F32(rows), (c, n * plane).into()))
    }
}

/// A 2-D transposed convolution of images `(n, c, h, w)` with a kernel `(c, o, k, k)` and an
/// optional bias `(o)`: the kernel product, then `col2im`, as one custom op each way.
pub(crate) fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding, output_padding): (usize, usize, usize),
) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (_, o, k, _) = weight.dims4()?;
    let side = |s: usize| conv_transpose_output(s, k, stride, padding, output_padding);
    // The convolution whose input gradient this is: output-sized images, input-sized
    // patch grid.
    let p = Patches::new((n, o, side(h), side(w)), k, stride, padding);
    if (p.oh, p.ow) != (h, w) {
        candle_core::bail!("conv-transpose2d: cannot map {h}x{w} to {}x{}", p.h, p.w);
    }
    let kernel = weight.reshape((c, o * k * k))?;
    let y = x.contiguous()?.apply_op2(&kernel, ConvTransposeOp(p))?;
    match bias {
        Some(bias) => y.apply_op2(bias, AddChannelBias),
        None => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Conv2d, ConvTranspose2d};
    use candle_core::{DType, Device, Module, Var};
    use candle_nn::{VarBuilder, VarMap};

    fn random(shape: &[usize], seed: u64) -> Result<Tensor> {
        crate::rng::randn(&mut crate::rng::seeded(seed), shape, 0.0, 1.0, &Device::Cpu)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .unwrap()
    }

    /// Output, input gradient and weight gradient of `ours` against candle's `theirs`.
    fn compare(x: &Var, ours: &dyn Module, theirs: &dyn Module, vars: &VarMap) -> Result<()> {
        let (y_ours, y_theirs) = (ours.forward(x)?, theirs.forward(x)?);
        assert_eq!(y_ours.dims(), y_theirs.dims());
        assert!(max_diff(&y_ours, &y_theirs) < 1e-4);
        let probe = random(y_ours.dims(), 9)?;
        let g_ours = (y_ours * &probe)?.sum_all()?.backward()?;
        let g_theirs = (y_theirs * &probe)?.sum_all()?.backward()?;
        let mut checked = vec![x.as_tensor().clone()];
        checked.extend(vars.all_vars().iter().map(|v| v.as_tensor().clone()));
        for t in checked {
            let (a, b) = (g_ours.get(&t).unwrap(), g_theirs.get(&t).unwrap());
            assert!(max_diff(a, b) < 1e-3, "gradient of {:?}", t.dims());
        }
        Ok(())
    }

    /// With an input that needs no gradient (images, noise), the kernel's gradient is still
    /// candle's, and the input gets none.
    #[test]
    fn input_without_gradient_gets_none() -> Result<()> {
        let (vars, probe_seed) = (VarMap::new(), 9);
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        // (ours, candle's, input channels)
        type Pair = (Box<dyn Module>, Box<dyn Module>, usize);
        let layers: Vec<Pair> = vec![
            {
                let ours = Conv2d::new(1, 4, 5, 2, 2, vb.pp("a"))?;
                let config = candle_nn::Conv2dConfig {
                    padding: 2,
                    stride: 2,
                    ..Default::default()
                };
                let theirs = candle_nn::Conv2d::new(
                    ours.weight().clone(),
                    ours.candle.bias().cloned(),
                    config,
                );
                (Box::new(ours), Box::new(theirs), 1)
            },
            {
                let ours = ConvTranspose2d::new(16, 16, 3, (2, 0, 0), true, vb.pp("b"))?;
                let config = candle_nn::ConvTranspose2dConfig {
                    padding: 0,
                    output_padding: 0,
                    stride: 2,
                    dilation: 1,
                };
                let theirs = candle_nn::ConvTranspose2d::new(
                    ours.weight().clone(),
                    ours.candle.bias().cloned(),
                    config,
                );
                (Box::new(ours), Box::new(theirs), 16)
            },
        ];
        for (ours, theirs, c) in layers {
            let x = random(&[2, c, 7, 7], 3)?;
            let (y_ours, y_theirs) = (ours.forward(&x)?, theirs.forward(&x)?);
            let probe = random(y_ours.dims(), probe_seed)?;
            let g_ours = (y_ours * &probe)?.sum_all()?.backward()?;
            let g_theirs = (y_theirs * &probe)?.sum_all()?.backward()?;
            assert!(g_ours.get(&x).is_none());
            // vars holds both layers' parameters; candle's graph reaches this layer's only.
            let mut compared = 0;
            for var in vars.all_vars() {
                let Some(theirs) = g_theirs.get(var.as_tensor()) else {
                    continue;
                };
                compared += 1;
                let ours = g_ours.get(var.as_tensor()).expect("kernel gradient");
                assert!(
                    max_diff(ours, theirs) < 1e-3,
                    "gradient of {:?}",
                    var.dims()
                );
            }
            assert_eq!(
                compared, 2,
                "the layer's kernel and bias were both compared"
            );
        }
        Ok(())
    }

    /// A frozen layer (kernel and bias outside autograd) gives its input the same gradient
    /// and computes none for its kernel, on both paths of both layers.
    #[test]
    fn frozen_kernel_gets_no_gradient() -> Result<()> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let frozen = |t: &Tensor| t.detach();
        // (layer, the same layer frozen, input channels): im2col and shifted paths.
        type Pair = (Box<dyn Module>, Box<dyn Module>, Tensor, usize);
        let mut layers: Vec<Pair> = Vec::new();
        for (i, (c, o)) in [(1, 4), (16, 16)].into_iter().enumerate() {
            let conv = Conv2d::new(c, o, 5, 2, 2, vb.pp(format!("conv{i}")))?;
            let copy = Conv2d {
                candle: candle_nn::Conv2d::new(
                    frozen(conv.weight()),
                    conv.candle.bias().map(frozen),
                    *conv.candle.config(),
                ),
                ..conv.clone()
            };
            let kernel = copy.weight().clone();
            layers.push((Box::new(conv), Box::new(copy), kernel, c));
        }
        for (i, (c, o)) in [(16, 1), (16, 16)].into_iter().enumerate() {
            let conv = ConvTranspose2d::new(c, o, 5, (2, 2, 1), true, vb.pp(format!("t{i}")))?;
            let copy = ConvTranspose2d {
                candle: candle_nn::ConvTranspose2d::new(
                    frozen(conv.weight()),
                    conv.candle.bias().map(frozen),
                    *conv.candle.config(),
                ),
                ..conv.clone()
            };
            let kernel = copy.weight().clone();
            layers.push((Box::new(conv), Box::new(copy), kernel, c));
        }
        for (layer, frozen_layer, frozen_kernel, c) in layers {
            let x = Var::from_tensor(&random(&[3, c, 7, 7], 5)?)?;
            let y = layer.forward(&x)?;
            let probe = random(y.dims(), 6)?;
            let g = (y * &probe)?.sum_all()?.backward()?;
            let g_frozen = (frozen_layer.forward(&x)? * &probe)?
                .sum_all()?
                .backward()?;
            let (d_x, d_x_frozen) = (g.get(&x).unwrap(), g_frozen.get(&x).unwrap());
            assert!(max_diff(d_x, d_x_frozen) < 1e-6, "{c} input channels");
            assert!(g_frozen.get(&frozen_kernel).is_none());
        }
        // The op itself returns no kernel gradient (candle would store one for the
        // untracked kernel, where the test above cannot see it).
        for (c, o) in [(1, 4), (16, 16)] {
            let x = Var::from_tensor(&random(&[3, c, 7, 7], 5)?)?;
            let kernel = random(&[o, c * 25], 7)?;
            let p = Patches::new(x.dims4()?, 5, 2, 2);
            let z = x.apply_op2(&kernel, ConvOp(p))?;
            let (d_x, d_kernel) = gradients(&x, &kernel, &z, |wanted| ConvGrad(p, wanted))?;
            assert!(d_x.is_some() && d_kernel.is_none(), "{c} input channels");
        }
        Ok(())
    }

    #[test]
    fn conv2d_matches_candle() -> Result<()> {
        crate::ops::two_threads(conv2d_matches_candle_inner)
    }

    fn conv2d_matches_candle_inner() -> Result<()> {
        // The last cases are large enough for the kernels' multi-threaded paths; stride 1
        // with 16 or more channels runs as shifted products.
        for (c, o, k, stride, padding, side, batch) in [
            (1, 4, 5, 1, 2, 9, 3),
            (3, 5, 4, 2, 0, 10, 3),
            (2, 3, 5, 2, 2, 14, 3),
            (4, 1, 4, 2, 1, 7, 3),
            (8, 6, 3, 1, 1, 16, 24),
            (16, 20, 5, 1, 2, 7, 3),
            (17, 16, 3, 1, 0, 6, 2),
            (32, 24, 5, 1, 1, 9, 24),
            (16, 18, 5, 2, 2, 14, 3),
            (18, 16, 4, 2, 0, 13, 2),
            (16, 16, 3, 3, 1, 11, 2),
            (24, 32, 5, 2, 2, 14, 24),
        ] {
            let vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
            let ours = Conv2d::new(c, o, k, stride, padding, vb)?;
            let config = candle_nn::Conv2dConfig {
                padding,
                stride,
                ..Default::default()
            };
            let theirs =
                candle_nn::Conv2d::new(ours.weight().clone(), ours.candle.bias().cloned(), config);
            let x = Var::from_tensor(&random(&[batch, c, side, side], 1)?)?;
            compare(&x, &ours, &theirs, &vars)?;
        }
        Ok(())
    }

    #[test]
    fn conv_transpose2d_matches_candle() -> Result<()> {
        crate::ops::two_threads(conv_transpose2d_matches_candle_inner)
    }

    fn conv_transpose2d_matches_candle_inner() -> Result<()> {
        for (c, o, k, (stride, padding, output_padding), bias, side, batch) in [
            (4, 3, 3, (2, 0, 0), true, 1, 2),
            (3, 2, 4, (1, 0, 0), true, 3, 2),
            (5, 2, 5, (2, 2, 1), false, 7, 2),
            (2, 1, 4, (2, 1, 0), true, 7, 2),
            (6, 8, 4, (2, 1, 0), true, 14, 24),
            (20, 16, 5, (1, 2, 0), false, 7, 3),
            (16, 17, 4, (1, 0, 0), true, 3, 2),
            (24, 32, 5, (1, 1, 0), true, 9, 24),
            (20, 16, 5, (2, 2, 1), false, 7, 3),
            (16, 17, 3, (2, 0, 0), true, 6, 2),
            (16, 16, 3, (2, 0, 0), true, 1, 2),
            (32, 24, 5, (2, 2, 1), true, 7, 24),
        ] {
            let vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
            let geometry = (stride, padding, output_padding);
            let ours = ConvTranspose2d::new(c, o, k, geometry, bias, vb)?;
            let config = candle_nn::ConvTranspose2dConfig {
                padding,
                output_padding,
                stride,
                dilation: 1,
            };
            let theirs = candle_nn::ConvTranspose2d::new(
                ours.weight().clone(),
                ours.candle.bias().cloned(),
                config,
            );
            let x = Var::from_tensor(&random(&[batch, c, side, side], 2)?)?;
            compare(&x, &ours, &theirs, &vars)?;
        }
        Ok(())
    }
}
