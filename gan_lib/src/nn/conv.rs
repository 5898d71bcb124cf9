//! Convolutions and transposed convolutions, and the sizes they produce.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::ops;
pub use crate::ops::conv::{conv_output, conv_transpose_output};

/// A 2-D convolution, `(n, c, h, w)` → `(n, o, oh, ow)`, weight `(o, c, k, k)` as PyTorch's
/// `nn.Conv2d` and candle's `Conv2d`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub(crate) candle: candle_nn::Conv2d,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
}

impl super::Parameters for Conv2d {
    fn parameters(&self) -> usize {
        self.weight().elem_count() + self.candle.bias().map_or(0, Tensor::elem_count)
    }
}

impl super::Parameters for ConvTranspose2d {
    fn parameters(&self) -> usize {
        self.weight().elem_count() + self.candle.bias().map_or(0, Tensor::elem_count)
    }
}

impl Conv2d {
    /// Weight `weight` and bias `bias` from `vb`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Conv2d> {
        let config = candle_nn::Conv2dConfig {
            padding,
            stride,
            ..Default::default()
        };
        Ok(Conv2d {
            candle: candle_nn::conv2d(inputs, outputs, kernel, config, vb)?,
            stride,
            padding,
        })
    }

    /// The kernel, `(o, c, k, k)`.
    pub fn weight(&self) -> &Tensor {
        self.candle.weight()
    }

    /// The same layer with another kernel of the same shape (for weights computed from
    /// others, as spectral normalisation does).
    pub fn with_weight(&self, weight: Tensor) -> Conv2d {
        Conv2d {
            candle: candle_nn::Conv2d::new(
                weight,
                self.candle.bias().cloned(),
                *self.candle.config(),
            ),
            ..self.clone()
        }
    }

    /// The same layer with a per-output-channel `scale` and `shift` applied to what it
    /// computes, in its kernel and bias: a BatchNorm in evaluation mode folded in
    /// ([`crate::nn::BatchNorm::eval_scale_shift`]), one pass over the images fewer.
    pub fn followed_by(&self, scale: &Tensor, shift: &Tensor) -> Result<Conv2d> {
        let outputs = scale.dim(0)?;
        let weight = self
            .weight()
            .broadcast_mul(&scale.reshape((outputs, 1, 1, 1))?)?;
        let bias = match self.candle.bias() {
            Some(bias) => ((bias * scale)? + shift)?,
            None => shift.clone(),
        };
        Ok(Conv2d {
            candle: candle_nn::Conv2d::new(weight, Some(bias), *self.candle.config()),
            ..self.clone()
        })
    }

    /// Carries `gradient`, a gradient at the layer's output `(n, o, oh, ow)`, back to its
    /// input `(n, c, side, side)`: the transposed convolution with the layer's kernel and no
    /// bias; rows and columns that a strided convolution skipped at the end come back as
    /// zeros. Differentiable with respect to `gradient` and the kernel (a gradient penalty
    /// differentiates it again).
    pub fn input_gradient(&self, gradient: &Tensor, side: usize) -> Result<Tensor> {
        let (kernel, out_side) = (self.weight().dim(3)?, gradient.dim(3)?);
        let restored = out_side.saturating_sub(1) * self.stride + kernel;
        let output_padding = (side + 2 * self.padding).saturating_sub(restored);
        if ops::fused(gradient) {
            let geometry = (self.stride, self.padding, output_padding);
            ops::conv::conv_transpose2d(gradient, self.weight(), None, geometry)
        } else {
            let (stride, padding) = (self.stride, self.padding);
            gradient.conv_transpose2d(self.weight(), padding, output_padding, stride, 1)
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if ops::fused(x) {
            ops::conv::conv2d(
                x,
                self.weight(),
                self.candle.bias(),
                self.stride,
                self.padding,
            )
        } else {
            self.candle.forward(x)
        }
    }
}

/// A 2-D transposed convolution, `(n, c, h, w)` → `(n, o, oh, ow)` with
/// `oh = (h − 1)·stride − 2·padding + k + output_padding`; weight `(c, o, k, k)` as
/// PyTorch's `nn.ConvTranspose2d`.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    pub(crate) candle: candle_nn::ConvTranspose2d,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) output_padding: usize,
}

impl ConvTranspose2d {
    /// Weight `weight` and, when `bias`, bias `bias` from `vb`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        (stride, padding, output_padding): (usize, usize, usize),
        bias: bool,
        vb: VarBuilder,
    ) -> Result<ConvTranspose2d> {
        let config = candle_nn::ConvTranspose2dConfig {
            padding,
            output_padding,
            stride,
            dilation: 1,
        };
        let candle = if bias {
            candle_nn::conv_transpose2d(inputs, outputs, kernel, config, vb)?
        } else {
            candle_nn::conv_transpose2d_no_bias(inputs, outputs, kernel, config, vb)?
        };
        Ok(ConvTranspose2d {
            candle,
            stride,
            padding,
            output_padding,
        })
    }

    /// The kernel, `(c, o, k, k)`.
    pub fn weight(&self) -> &Tensor {
        self.candle.weight()
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if ops::fused(x) {
            let geometry = (self.stride, self.padding, self.output_padding);
            ops::conv::conv_transpose2d(x, self.weight(), self.candle.bias(), geometry)
        } else {
            self.candle.forward(x)
        }
    }
}
