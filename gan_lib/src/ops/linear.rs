//! A linear layer arranged for the matmul kernel. candle's `Linear` computes `x·Wᵀ` into a
//! row-major `(batch, out)` matrix; the gemm crate turns that into its transpose, with the
//! small batch on the kernel's wide side, and runs at 40-65 GFLOP/s on this project's
//! shapes. Computing `W·xᵀ` instead puts the batch where the kernel wants it (90-105
//! GFLOP/s on one core, as fast as PyTorch's MKL here); one pass then transposes the
//! result back and adds the bias, and the backward pass does the reverse. The products run
//! through [`super::gemm`], split across threads.
//!
//! Large batches (generating or scoring 500 digits at a time) are the other way round: there
//! `x·Wᵀ` straight into `(batch, out)` is the faster arrangement (one core, fc-gan-100's
//! layers at batch 500: 75-110 GFLOP/s against 48-69 with the transpose), and the result
//! starts as the bias, so nothing is left to do after the product.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::gemm::{matmul_add, Mat, Product, Project};
use super::{transpose, values, ColumnSums, Transpose};

/// From this many rows of `x` up, [`linear`] computes `x·Wᵀ` directly.
const DIRECT_ROWS: usize = 256;

/// `x·Wᵀ + bias` for `(b, in)` inputs and a weight `(out, in)`: the product `W·xᵀ`, then one
/// pass that transposes it back and adds the bias; for `b` of [`DIRECT_ROWS`] or more,
/// `x·Wᵀ` added to the bias directly.
pub(crate) fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let x = x.contiguous()?;
    if x.dim(0)? >= DIRECT_ROWS {
        let bias = match bias {
            Some(bias) => bias.clone(),
            None => Tensor::zeros(weight.dim(0)?, weight.dtype(), weight.device())?,
        };
        return x.apply_op3(weight, &bias, ProjectRows);
    }
    let outputs_by_batch = weight.apply_op2(&x, Project)?;
    match bias {
        Some(bias) => outputs_by_batch.apply_op2(bias, TransposeAddBias),
        None => outputs_by_batch.apply_op1(Transpose),
    }
}

/// `(x, W, bias)` → `x·Wᵀ + bias`: inputs `(b, in)`, weight `(out, in)`, bias `(out)`, result
/// `(b, out)`, each row starting as the bias and the product added to it.
struct ProjectRows;

impl CustomOp3 for ProjectRows {
    fn name(&self) -> &'static str {
        "project-rows"
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
        let w = values(s2, l2, self.name())?;
        let bias = values(s3, l3, self.name())?;
        let ((batch, inputs), (outputs, w_inputs)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if inputs != w_inputs || bias.len() != outputs {
            candle_core::bail!(
                "project-rows: x has {inputs} inputs, the weight is {outputs}x{w_inputs}, the bias {}",
                bias.len()
            );
        }
        let mut out = bias.repeat(batch);
        let (x, w) = (Mat::rows(x, inputs), Mat::transposed(w, inputs));
        matmul_add(batch, outputs, inputs, x, w, &mut out);
        Ok((CpuStorage::F32(out), (batch, outputs).into()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // dx = dy·W, dW = dyᵀ·x, dbias = the column sums of dy; each only where tracked.
        let product =
            |a: &Tensor, b: &Tensor, a_transposed| a.apply_op2(b, Product { a_transposed });
        let d_x = x.track_op().then(|| product(&grad, w, false)).transpose()?;
        let d_w = w.track_op().then(|| product(&grad, x, true)).transpose()?;
        let d_bias = bias
            .track_op()
            .then(|| grad.apply_op1(ColumnSums))
            .transpose()?;
        Ok((d_x, d_w, d_bias))
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
