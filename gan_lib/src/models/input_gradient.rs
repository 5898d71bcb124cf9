//! The gradient of a discriminator's logit with respect to its input pixels, for WGAN-GP's
//! penalty, shared by both discriminators.
//!
//! candle's autograd cannot differentiate a gradient, so the gradient is built as a graph of
//! ordinary operations (each layer's transpose, the activation's slopes) that autograd can
//! differentiate with respect to the weights. The slopes are constants: their own derivative
//! is zero almost everywhere. Discriminators without BatchNorm or dropout only.

use candle_core::{Module, Result, Tensor};

use crate::nn::{Conv2d, Linear};

/// A layer the gradient can go back through: its map, and its transpose applied to the
/// gradient at its output given its input.
pub(crate) trait Transposable: Module {
    /// The gradient with respect to the layer's `input`, from `gradient` at its output.
    fn backward_input(&self, gradient: &Tensor, input: &Tensor) -> Result<Tensor>;
}

impl Transposable for Linear {
    fn backward_input(&self, gradient: &Tensor, _input: &Tensor) -> Result<Tensor> {
        gradient.matmul(self.weight())
    }
}

impl Transposable for Conv2d {
    /// The transposed convolution with the same weight ([`Conv2d::input_gradient`]: gan_lib's
    /// fused kernel in f32 on the CPU, candle's otherwise), whose backward exists for both
    /// its arguments.
    fn backward_input(&self, gradient: &Tensor, input: &Tensor) -> Result<Tensor> {
        self.input_gradient(gradient, input.dim(3)?)
    }
}

/// The (leaky) ReLU's slope at each pre-activation: 1 where it is positive, `slope` elsewhere,
/// detached (it is constant almost everywhere).
fn activation_slopes(pre: &Tensor, slope: f64) -> Result<Tensor> {
    let positive = pre.detach().ge(0.0)?.to_dtype(pre.dtype())?;
    (positive * (1.0 - slope))? + slope
}

/// `∂ logit / ∂ input`, `(b, pixels)`, of a discriminator made of `layers` (each followed by
/// the activation of negative slope `slope`, except a last layer that gives the logit itself
/// when there is no `head`), then a linear `head`, plus the label `projection` of a
/// conditional one (`labels` given exactly when there is one).
pub(crate) fn input_gradient<L: Transposable>(
    layers: &[L],
    head: Option<&Linear>,
    projection: Option<&Linear>,
    labels: Option<&Tensor>,
    slope: f64,
    input: &Tensor,
) -> Result<Tensor> {
    if projection.is_some() != labels.is_some() {
        candle_core::bail!("labels must be given to a conditional discriminator only");
    }
    // Forward: each layer's input, and the activation's slopes at its output.
    let mut x = input.detach();
    let mut steps = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let pre = layer.forward(&x)?.detach();
        let activated = head.is_some() || i + 1 != layers.len();
        let slopes = activated
            .then(|| activation_slopes(&pre, slope))
            .transpose()?;
        let output = match &slopes {
            Some(slopes) => (&pre * slopes)?,
            None => pre,
        };
        steps.push((std::mem::replace(&mut x, output), slopes));
    }
    // Backward, by hand: from the logit down to the pixels.
    let batch = x.dim(0)?;
    let mut gradient = match head {
        Some(head) => {
            let features = head.weight().dim(1)?;
            let mut gradient = head.weight().broadcast_as((batch, features))?;
            // The projection ⟨embed(y), φ(x)⟩ adds embed(y) to the logit's gradient by φ(x).
            if let (Some(projection), Some(labels)) = (projection, labels) {
                let embedded = super::embed_labels(projection, labels, gradient.dtype())?;
                gradient = (&gradient + embedded)?;
            }
            gradient.reshape(x.shape())?
        }
        None => x.ones_like()?,
    };
    for (layer, (input, slopes)) in layers.iter().zip(&steps).rev() {
        if let Some(slopes) = slopes {
            gradient = (gradient * slopes)?;
        }
        gradient = layer.backward_input(&gradient, input)?;
    }
    gradient.flatten_from(1)
}
