//! Fused CPU kernels for the operations GAN training spends its time in, as candle custom
//! ops with their own backward passes.
//!
//! candle composes these operations from many small tensor ops (BatchNorm in training mode
//! is about a dozen passes over the activations, forwards and backwards), runs transposed
//! convolutions as a direct loop, and computes a convolution's input gradient with one. Here
//! each is one pass over memory, and every convolution becomes one large matrix product
//! (im2col / col2im), so the time goes to candle's matmul.
//!
//! Each public function checks the device: on the CPU (f32) it runs the fused kernel, on any
//! other device it falls back to candle's own operations, so the `cuda` and `metal` builds
//! behave as before.

pub mod conv;
mod gemm;
pub mod linear;
pub mod norm;
pub mod pointwise;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Tensor};

/// True when `x` can take the fused CPU kernels.
fn fused(x: &Tensor) -> bool {
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
