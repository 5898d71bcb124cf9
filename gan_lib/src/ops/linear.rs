//! A linear layer arranged for the matmul kernel. candle's `Linear` computes `x·Wᵀ` into a
//! row-major `(batch, out)` matrix; the gemm crate turns that into its transpose, with the
//! small batch on the kernel's wide side, and runs at 40-65 GFLOP/s on this project's
//! shapes. Computing `W·xᵀ` instead puts the batch where the kernel wants it (90-105
//! GFLOP/s on one core, as fast as PyTorch's MKL here); one pass then transposes the
//! result back and adds the bias, and the backward pass does the reverse. The products run
//! through [`super::gemm`], split across threads.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::gemm::Project;
use super::{transpose, values, ColumnSums, Transpose};

/// `x·Wᵀ + bias` for `(b, in)` inputs and a weight `(out, in)`: the product `W·xᵀ`, then one
/// pass that transposes it back and adds the bias.
pub(crate) fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let outputs_by_batch = weight.apply_op2(&x.contiguous()?, Project)?;
    match bias {
        Some(bias) => outputs_by_batch.apply_op2(bias, TransposeAddBias),
        None => outputs_by_batch.apply_op1(Transpose),
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
        let mut out = transpose(x, a, b);
        for row in out.chunks_exact_mut(a.max(1)) {
            for (o, &bias) in row.iter_mut().zip(bias) {
                *o += bias;
            }
        }
        Ok((CpuStorage::F32(out), (b, a).into()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d_x = grad.apply_op1(Transpose)?;
        let d_bias = match bias.track_op() {
            true => Some(grad.apply_op1(ColumnSums)?),
            false => None,
        };
        Ok((Some(d_x), d_bias))
    }
}
