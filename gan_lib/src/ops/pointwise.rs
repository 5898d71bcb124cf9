//! Activations in one pass each way: (leaky) ReLU and tanh; the multiply by a constant mask
//! that dropout needs; and both at once.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{fused, map1, map2, map3, values};

/// max(slope·x, x) for 0 ≤ slope < 1 (slope 0 is ReLU).
pub(crate) fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(LeakyRelu(slope as f32))
    } else if slope == 0.0 {
        x.relu()
    } else {
        x.maximum(&(x * slope)?)
    }
}

/// tanh, by a rational approximation that vectorises (|error| < 1e-6; libm's `tanhf` costs
/// more than the generator's last matmul).
pub(crate) fn tanh(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Tanh)
    } else {
        x.tanh()
    }
}

/// x · mask, elementwise, where `mask` (same shape) is a constant: the gradient flows to `x`
/// only, as `dy · mask`. Dropout multiplies by a mask of 0 and 1/(1-p) this way, one pass each way.
pub(crate) fn mul_mask(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if fused(x) && fused(mask) {
        x.contiguous()?.apply_op2(&mask.contiguous()?, MulMask)
    } else {
        x * mask.detach()
    }
}

/// `leaky_relu(x, slope) · mask` for a constant `mask` ≥ 0 (dropout's): an activation and the
/// dropout after it in one pass each way and one node of candle's graph, not two (each node's
/// gradient is zero-filled and added into by candle). Same values and gradients as the two.
pub(crate) fn leaky_relu_mask(x: &Tensor, slope: f64, mask: &Tensor) -> Result<Tensor> {
    if fused(x) && fused(mask) {
        x.contiguous()?
            .apply_op2(&mask.contiguous()?, LeakyReluMask(slope as f32))
    } else {
        mul_mask(&leaky_relu(x, slope)?, mask)
    }
}

struct MulMask;

impl CustomOp2 for MulMask {
    fn name(&self) -> &'static str {
        "mul-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = values(s1, l1, self.name())?;
        let mask = values(s2, l2, self.name())?;
        if x.len() != mask.len() {
            candle_core::bail!("mul-mask: shapes {:?} and {:?}", l1.shape(), l2.shape());
        }
        Ok((
            CpuStorage::F32(map2(x, mask, |x, m| x * m)),
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.contiguous()?.apply_op2(mask, MulMask)?), None))
    }
}

struct LeakyRelu(f32);

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "leaky-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let slope = self.0;
        let x = values(storage, layout, self.name())?;
        let y = map1(x, |v| if v > 0.0 { v } else { v * slope });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2(&grad.contiguous()?, LeakyReluGrad(self.0))?,
        ))
    }
}

/// (x, dy) → dy · (1 if x > 0 else slope).
struct LeakyReluGrad(f32);

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "leaky-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let slope = self.0;
        let x = values(s1, l1, self.name())?;
        let dy = values(s2, l2, self.name())?;
        let dx = map2(x, dy, |x, g| if x > 0.0 { g } else { g * slope });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `(x, mask)` → `leaky_relu(x) · mask`; the gradient flows to `x` only.
struct LeakyReluMask(f32);

impl CustomOp2 for LeakyReluMask {
    fn name(&self) -> &'static str {
        "leaky-relu-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let slope = self.0;
        let x = values(s1, l1, self.name())?;
        let mask = values(s2, l2, self.name())?;
        if x.len() != mask.len() {
            candle_core::bail!(
                "{}: shapes {:?} and {:?}",
                self.name(),
                l1.shape(),
                l2.shape()
            );
        }
        let y = map2(x, mask, |x, m| if x > 0.0 { x * m } else { x * slope * m });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d_x = x.apply_op3(mask, &grad.contiguous()?, LeakyReluMaskGrad(self.0))?;
        Ok((Some(d_x), None))
    }
}

/// `(x, mask, dy)` → `dy · mask · (1 if x > 0 else slope)`, in the order the two separate ops
/// multiply, so that the result is the same to the bit.
struct LeakyReluMaskGrad(f32);

impl CustomOp3 for LeakyReluMaskGrad {
    fn name(&self) -> &'static str {
        "leaky-relu-mask-grad"
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
        let slope = self.0;
        let (x, mask) = (values(s1, l1, self.name())?, values(s2, l2, self.name())?);
        let dy = values(s3, l3, self.name())?;
        if x.len() != mask.len() || x.len() != dy.len() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let dx = map3(x, mask, dy, |x, m, g| {
            let g = g * m;
            if x > 0.0 {
                g
            } else {
                g * slope
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Eigen's float tanh: a 13/6 rational function on [-7.9, 7.9], where tanh is ±1 in f32
/// beyond. (Plain multiply-adds: `mul_add` without a compile-time FMA target is a call.)
fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
    p = x2 * p - 8.604_672e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525e-3;
    x * p / q
}

struct Tanh;

impl CustomOp1 for Tanh {
    fn name(&self) -> &'static str {
        "tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout, self.name())?;
        let y = map1(x, fast_tanh);
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2(&grad.contiguous()?, TanhGrad)?))
    }
}

/// (y, dy) → dy · (1 − y²).
struct TanhGrad;

impl CustomOp2 for TanhGrad {
    fn name(&self) -> &'static str {
        "tanh-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = values(s1, l1, self.name())?;
        let dy = values(s2, l2, self.name())?;
        let dx = map2(y, dy, |y, g| g * (1.0 - y * y));
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fast_tanh_matches_libm() {
        let worst = (-200_000..=200_000)
            .map(|i| i as f32 * 1e-4)
            .chain([-1e4, 1e4, 30.0, -30.0])
            .map(|x| (fast_tanh(x) - x.tanh()).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "worst error {worst}");
        assert_eq!(fast_tanh(0.0), 0.0);
    }

    /// Values and gradients equal candle's own ops.
    #[test]
    fn activations_match_candle() -> Result<()> {
        let x = Var::new(&[-2.0f32, -0.5, 0.0, 0.3, 4.0, -1e-3], &Device::Cpu)?;
        let w = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &Device::Cpu)?;
        for slope in [0.0, 0.2] {
            let ours = leaky_relu(&x, slope)?;
            let theirs = x.maximum(&(x.as_tensor() * slope)?)?;
            assert_eq!(ours.to_vec1::<f32>()?, theirs.to_vec1::<f32>()?);
            let g_ours = ours.mul(&w)?.sum_all()?.backward()?;
            let g = g_ours.get(&x).unwrap().to_vec1::<f32>()?;
            let want: Vec<f32> = [-2.0f32, -0.5, 0.0, 0.3, 4.0, -1e-3]
                .iter()
                .zip([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
                .map(|(&x, w)| if x > 0.0 { w } else { w * slope as f32 })
                .collect();
            assert_eq!(g, want, "slope {slope}");
        }
        let ours = tanh(&x)?;
        let theirs = x.tanh()?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        let g_ours = ours.mul(&w)?.sum_all()?.backward()?;
        let g_theirs = theirs.mul(&w)?.sum_all()?.backward()?;
        let diff = (g_ours.get(&x).unwrap() - g_theirs.get(&x).unwrap())?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    /// The fused activation and dropout give the two separate ops' values and gradients, to
    /// the bit, on the single-threaded and the parallel paths.
    #[test]
    fn leaky_relu_mask_equals_activation_then_mask() -> Result<()> {
        crate::ops::two_threads(|| {
            let mut rng = crate::rng::seeded(5);
            for len in [7, 100_000] {
                let x =
                    Var::from_tensor(&crate::rng::randn(&mut rng, len, 0.0, 1.0, &Device::Cpu)?)?;
                let w = crate::rng::randn(&mut rng, len, 0.0, 1.0, &Device::Cpu)?;
                let mask = crate::rng::dropout_mask(&mut rng, len, 0.3, &Device::Cpu)?;
                for slope in [0.0, 0.2] {
                    let fused = leaky_relu_mask(&x, slope, &mask)?;
                    let apart = mul_mask(&leaky_relu(&x, slope)?, &mask)?;
                    assert_eq!(fused.to_vec1::<f32>()?, apart.to_vec1::<f32>()?);
                    let g_fused = fused.mul(&w)?.sum_all()?.backward()?;
                    let g_apart = apart.mul(&w)?.sum_all()?.backward()?;
                    assert_eq!(
                        g_fused.get(&x).unwrap().to_vec1::<f32>()?,
                        g_apart.get(&x).unwrap().to_vec1::<f32>()?,
                        "{len} values, slope {slope}"
                    );
                    assert!(g_fused.get(&mask).is_none());
                }
            }
            Ok(())
        })
    }

    #[test]
    fn mask_multiplies_and_passes_gradient_to_x_only() -> Result<()> {
        let x = Var::new(&[[-2.0f32, 0.5, 3.0], [1.0, -1.0, 4.0]], &Device::Cpu)?;
        let mask = Tensor::new(&[[0.0f32, 1.25, 1.25], [1.25, 0.0, 1.25]], &Device::Cpu)?;
        let w = Tensor::new(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu)?;
        let y = mul_mask(&x, &mask)?;
        assert_eq!(y.to_vec2::<f32>()?, [[0.0, 0.625, 3.75], [1.25, 0.0, 5.0]]);
        let grads = y.mul(&w)?.sum_all()?.backward()?;
        assert_eq!(
            grads.get(&x).unwrap().to_vec2::<f32>()?,
            [[0.0, 2.5, 3.75], [5.0, 0.0, 7.5]]
        );
        assert!(grads.get(&mask).is_none());
        Ok(())
    }
}
