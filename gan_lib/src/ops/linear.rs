//! A linear layer arranged for the matmul kernel. candle's `Linear` computes `x·Wᵀ` into a
//! row-major `(batch, out)` matrix; the gemm crate turns that into its transpose, with the
//! small batch on the kernel's wide side, and runs at 40-65 GFLOP/s on this project's
//! shapes. Computing `W·xᵀ` instead puts the batch where the kernel wants it (90-105
//! GFLOP/s on one core, as fast as PyTorch's MKL here); one pass then transposes the
//! result back and adds the bias, and the backward pass does the reverse. The products run
//! through [`super::gemm`], split across threads.

use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;

use super::gemm::{matmul, Mat};
use super::{fused, values};

/// `(b, in)` → `(b, out)`: `x·Wᵀ + bias`, weight `(out, in)` as PyTorch's `nn.Linear`.
#[derive(Clone, Debug)]
pub struct Linear {
    candle: candle_nn::Linear,
}

impl Linear {
    /// Weight `weight` and, when `bias`, bias `bias` from `vb`.
    pub fn new(inputs: usize, outputs: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
        Ok(Linear {
            candle: candle_nn::linear_b(inputs, outputs, bias, vb)?,
        })
    }

    /// The weight, `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        self.candle.weight()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !fused(x) || x.rank() != 2 {
            return self.candle.forward(x);
        }
        let outputs_by_batch = self.weight().apply_op2(&x.contiguous()?, Project)?;
        let bias = match self.candle.bias() {
            Some(bias) => bias.clone(),
            None => Tensor::zeros(self.weight().dim(0)?, x.dtype(), x.device())?,
        };
        outputs_by_batch.apply_op2(&bias, TransposeAddBias)
    }
}

/// `(W, x)` → `W·xᵀ`: weight `(out, in)`, inputs `(b, in)`, result `(out, b)`.
struct Project;

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
            candle_core::bail!("linear: weight takes {inputs} inputs, x has {x_inputs}");
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
        // dW = dz·x; dxᵀ = Wᵀ·dz, computed transposed for the same reason as the forward.
        let d_w = d_z.apply_op2(x, Product::new(false, false))?;
        let d_x = w
            .apply_op2(&d_z, Product::new(true, false))?
            .t()?
            .contiguous()?;
        Ok((Some(d_w), Some(d_x)))
    }
}

/// `(a, b)` → `a·b` for row-major operands, either read transposed.
struct Product {
    a_transposed: bool,
    b_transposed: bool,
}

impl Product {
    fn new(a_transposed: bool, b_transposed: bool) -> Product {
        Product {
            a_transposed,
            b_transposed,
        }
    }
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
        let (k_b, n, b) = match self.b_transposed {
            false => (b_rows, b_cols, Mat::rows(b, b_cols)),
            true => (b_cols, b_rows, Mat::transposed(b, b_cols)),
        };
        if k != k_b {
            candle_core::bail!("product: {m}x{k} times {k_b}x{n}");
        }
        let mut out = vec![0f32; m * n];
        matmul(m, n, k, a, b, &mut out);
        Ok((CpuStorage::F32(out), (m, n).into()))
    }
}

/// `(a, b)` and a bias `(a)` → `(b, a)`: `out[j][i] = in[i][j] + bias[i]`.
struct TransposeAddBias;

impl CustomOp2 for TransposeAddBias {
    fn name(&self) -> &'static str {
        "transpose-add-bias"
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
        let (a, b) = l1.shape().dims2()?;
        let mut out = vec![0f32; a * b];
        // Blocks of 16 rows keep both sides' cache lines in use.
        for i0 in (0..a).step_by(16) {
            for j in 0..b {
                for i in i0..(i0 + 16).min(a) {
                    out[j * a + i] = x[i * b + j] + bias[i];
                }
            }
        }
        Ok((CpuStorage::F32(out), (b, a).into()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d_x = grad.t()?.contiguous()?;
        let d_bias = grad.sum(0)?;
        Ok((Some(d_x), Some(d_bias)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    /// Values and every gradient equal candle's `Linear`.
    #[test]
    fn linear_matches_candle() -> Result<()> {
        for bias in [true, false] {
            let vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
            let ours = Linear::new(37, 19, bias, vb)?;
            let theirs = ours.candle.clone();
            let mut rng = crate::rng::seeded(5);
            let x = Var::from_tensor(&crate::rng::randn(
                &mut rng,
                (6, 37),
                0.0,
                1.0,
                &Device::Cpu,
            )?)?;
            let probe = crate::rng::randn(&mut rng, (6, 19), 0.0, 1.0, &Device::Cpu)?;
            let (y_ours, y_theirs) = (ours.forward(&x)?, theirs.forward(&x)?);
            let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
                (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
            };
            assert!(diff(&y_ours, &y_theirs)? < 1e-5);
            let g_ours = (y_ours * &probe)?.sum_all()?.backward()?;
            let g_theirs = (y_theirs * &probe)?.sum_all()?.backward()?;
            let mut checked = vec![x.as_tensor().clone()];
            checked.extend(vars.all_vars().iter().map(|v| v.as_tensor().clone()));
            assert_eq!(checked.len(), if bias { 3 } else { 2 });
            for t in checked {
                let d = diff(g_ours.get(&t).unwrap(), g_theirs.get(&t).unwrap())?;
                assert!(d < 1e-4, "gradient of {:?} differs by {d}", t.dims());
            }
        }
        Ok(())
    }
}
