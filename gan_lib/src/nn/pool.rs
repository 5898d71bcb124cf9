//! Pooling.

use candle_core::{Result, Tensor};

use crate::ops;

/// ReLU then 2x2 max pooling with stride 2, `(n, c, h, w)` → `(n, c, h/2, w/2)`, in one pass
/// on the CPU (the classifier's block after each convolution).
pub fn relu_max_pool2(x: &Tensor) -> Result<Tensor> {
    ops::pool::relu_max_pool2(x)
}
