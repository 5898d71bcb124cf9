//! A layer with its optional BatchNorm, activation and dropout: the unit both GANs and the
//! classifier are stacks of.

use candle_core::{Module, Result, Tensor};

use super::{Activation, BatchNorm, Pass};

/// A layer's trainable parameters, counted from its tensors (for the layer tables).
pub trait Parameters {
    /// How many numbers training adjusts in it.
    fn parameters(&self) -> usize;
}

/// A linear or convolution layer, optionally followed by BatchNorm.
#[derive(Clone, Debug)]
pub struct Block<L> {
    /// The linear or convolution layer.
    pub layer: L,
    /// BatchNorm after it, if any.
    pub norm: Option<BatchNorm>,
    /// Trainable parameters of both, for the summary.
    pub params: usize,
}

impl<L: Parameters> Block<L> {
    /// `layer` and its BatchNorm, their parameters counted.
    pub fn new(layer: L, norm: Option<BatchNorm>) -> Block<L> {
        let params = layer.parameters() + norm.as_ref().map_or(0, Parameters::parameters);
        Block {
            layer,
            norm,
            params,
        }
    }
}

impl<L: Module> Block<L> {
    /// The layer, then its BatchNorm if any.
    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let x = self.layer.forward(x)?;
        match &self.norm {
            Some(norm) => norm.forward_t(&x, pass.is_train()),
            None => Ok(x),
        }
    }

    /// The layer, its BatchNorm if any, `activation`, and dropout with probability `dropout` in
    /// training; the activation runs fused with the dropout, or with BatchNorm when no dropout
    /// follows: one op each way instead of two.
    pub fn forward_activated(
        &self,
        x: &Tensor,
        pass: &mut Pass,
        activation: Activation,
        dropout: f32,
    ) -> Result<Tensor> {
        let x = self.layer.forward(x)?;
        match &self.norm {
            Some(norm) if !(pass.is_train() && dropout > 0.0) => {
                norm.forward_leaky(&x, pass.is_train(), Some(activation.slope()))
            }
            Some(norm) => {
                let x = norm.forward_t(&x, pass.is_train())?;
                pass.activation_dropout(&x, activation, dropout)
            }
            None => pass.activation_dropout(&x, activation, dropout),
        }
    }
}
