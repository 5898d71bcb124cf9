//! ReLU and 2×2 max-pooling in one pass each way, as in the classifier's blocks. candle's
//! `max_pool2d` gradient is built from five whole-tensor ops (upsampling the output and the
//! gradient, comparing, averaging) and is a quarter of the true one: it multiplies by
//! (maxima in the window) / 4 where it means to divide by the number of maxima. Here the
//! backward pass is one op, with PyTorch's gradient; other devices use candle's ops with the
//! gradient scaled back.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};

use super::{for_parts, fused, values};

/// `x.relu()?.max_pool2d(2)`: `(n, c, h, w)` → `(n, c, h/2, w/2)`, each value the largest of
/// its 2×2 window or 0 (odd sides drop their last row or column). The gradient goes to the
/// window's first largest value, when positive, as PyTorch's `MaxPool2d` does.
pub(crate) fn relu_max_pool2(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(ReluMaxPool)
    } else {
        relu_max_pool2_by_candle(x)
    }
}

/// [`relu_max_pool2`] from candle's ops, for other devices: the same values, and candle's
/// gradient scaled by 4, which is the true one wherever a window has one largest value (and
/// sides are even; candle's upsampling misplaces odd sides' gradients).
fn relu_max_pool2_by_candle(x: &Tensor) -> Result<Tensor> {
    let pooled = x.relu()?.max_pool2d(2)?;
    let constant = pooled.detach();
    // `constant + 4·(pooled − constant)`: the values of `pooled`, 4 times its gradient.
    &constant + ((&pooled - &constant)? * 4.0)?
}

/// The four positions of output `(oy, ox)`'s window in a `w`-wide plane, in order.
fn window(oy: usize, ox: usize, w: usize) -> [usize; 4] {
    let top = 2 * oy * w + 2 * ox;
    [top, top + 1, top + w, top + w + 1]
}

struct ReluMaxPool;

impl CustomOp1 for ReluMaxPool {
    fn name(&self) -> &'static str {
        "relu-max-pool2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        let mut y = vec![0f32; n * c * oh * ow];
        if ow == 0 {
            return Ok((CpuStorage::F32(y), (n, c, oh, ow).into()));
        }
        // Row by row, two input rows per output row, with no division per value: `eval`
        // spent 9.5% of its time here when each value found its window by `i / ow, i % ow`.
        for_parts(&mut y, oh * ow, |plane, out| {
            let x = &x[plane * h * w..(plane + 1) * h * w];
            for (oy, out) in out.chunks_exact_mut(ow).enumerate() {
                let top = x[2 * oy * w..][..2 * ow].chunks_exact(2);
                let bottom = x[(2 * oy + 1) * w..][..2 * ow].chunks_exact(2);
                for ((o, t), b) in out.iter_mut().zip(top).zip(bottom) {
                    *o = t[0].max(t[1]).max(b[0]).max(b[1]).max(0.0);
                }
            }
        });
        Ok((CpuStorage::F32(y), (n, c, oh, ow).into()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, d_y: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op3(y, &d_y.contiguous()?, ReluMaxPoolGrad)?))
    }
}

/// `(x, y, dy)` → `dx` of [`ReluMaxPool`].
struct ReluMaxPoolGrad;

impl CustomOp3 for ReluMaxPoolGrad {
    fn name(&self) -> &'static str {
        "relu-max-pool2-grad"
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
        let x = values(s1, l1, self.name())?;
        let (y, d_y) = (values(s2, l2, self.name())?, values(s3, l3, self.name())?);
        let (_, _, h, w) = l1.shape().dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        let mut d_x = vec![0f32; x.len()];
        if ow == 0 {
            return Ok((CpuStorage::F32(d_x), l1.shape().clone()));
        }
        for_parts(&mut d_x, h * w, |plane, d_x| {
            let x = &x[plane * h * w..(plane + 1) * h * w];
            let outputs = plane * oh * ow..(plane + 1) * oh * ow;
            let rows = y[outputs.clone()]
                .chunks_exact(ow)
                .zip(d_y[outputs].chunks_exact(ow));
            for (oy, (y, d_y)) in rows.enumerate() {
                for (ox, (&y, &g)) in y.iter().zip(d_y).enumerate() {
                    if y > 0.0 {
                        let window = window(oy, ox, w);
                        if let Some(&j) = window.iter().find(|&&j| x[j] == y) {
                            d_x[j] = g;
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(d_x), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The gradient of `sum(relu_max_pool2(x) · probe)` by brute force: each window's probe
    /// value at its first largest element, when that is positive.
    fn expected_gradient(x: &[f32], probe: &[f32], (h, w): (usize, usize)) -> Vec<f32> {
        let (oh, ow) = (h / 2, w / 2);
        let mut d_x = vec![0f32; x.len()];
        for plane in 0..x.len() / (h * w) {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let cells = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .map(|(dy, dx)| plane * h * w + (2 * oy + dy) * w + 2 * ox + dx);
                let best =
                    cells.iter().copied().fold(
                        cells[0],
                        |best, j| {
                            if x[j] > x[best] {
                                j
                            } else {
                                best
                            }
                        },
                    );
                if x[best] > 0.0 {
                    d_x[best] = probe[(plane * oh + oy) * ow + ox];
                }
            }
        }
        d_x
    }

    #[test]
    fn matches_relu_then_max_pool_with_the_true_gradient() -> Result<()> {
        crate::ops::two_threads(|| {
            // Odd sides drop the last row and column, as PyTorch and candle do; the last
            // case is large enough for the parallel path.
            for (n, c, h, w) in [(2, 3, 4, 6), (1, 2, 7, 5), (16, 32, 28, 28)] {
                let mut rng = crate::rng::seeded(n as u64);
                let shape = (n, c, h, w);
                let x =
                    Var::from_tensor(&crate::rng::randn(&mut rng, shape, 0.0, 1.0, &Device::Cpu)?)?;
                let ours = relu_max_pool2(&x)?;
                let theirs = x.relu()?.max_pool2d(2)?;
                assert_eq!(ours.dims(), theirs.dims());
                let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert_eq!(diff, 0.0);

                let probe = crate::rng::randn(&mut rng, ours.dims(), 0.0, 1.0, &Device::Cpu)?;
                let grads = (ours * &probe)?.sum_all()?.backward()?;
                let got = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
                let want = expected_gradient(
                    &x.flatten_all()?.to_vec1::<f32>()?,
                    &probe.flatten_all()?.to_vec1::<f32>()?,
                    (h, w),
                );
                assert_eq!(got, want, "gradient for {shape:?}");

                // Why this is not candle's `max_pool2d`: its gradient is a quarter of the true
                // one for a window's single maximum (it scales by ties / 4, not 1 / ties). The
                // fallback for other devices corrects that.
                if h % 2 == 0 && w % 2 == 0 {
                    let candle = (&theirs * &probe)?.sum_all()?.backward()?;
                    let candle = candle.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
                    for (c, g) in candle.iter().zip(&got) {
                        assert!((c * 4.0 - g).abs() < 1e-6, "candle {c}, true {g}");
                    }
                    let fallback = relu_max_pool2_by_candle(&x)?;
                    let diff = (&fallback - &theirs)?
                        .abs()?
                        .max_all()?
                        .to_scalar::<f32>()?;
                    assert_eq!(diff, 0.0);
                    let grads = (fallback * &probe)?.sum_all()?.backward()?;
                    let fallback = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
                    for (f, g) in fallback.iter().zip(&got) {
                        assert!((f - g).abs() < 1e-6, "fallback {f}, true {g}");
                    }
                }
            }
            Ok(())
        })
    }
}
