//! Activations: the non-linearity between layers, and the output squashers.

use candle_core::{Module, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::ops;

/// A non-linearity between layers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// max(slope·x, x).
    LeakyRelu(f64),
}

impl Activation {
    /// The slope for negative inputs: 0 for ReLU.
    pub fn slope(self) -> f64 {
        match self {
            Activation::Relu => 0.0,
            Activation::LeakyRelu(slope) => slope,
        }
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        leaky_relu(x, self.slope())
    }
}

/// `max(slope·x, x)` (ReLU for slope 0).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    ops::pointwise::leaky_relu(x, slope)
}

/// Element-wise tanh, the generators' output.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    ops::pointwise::tanh(x)
}

/// Element-wise logistic sigmoid.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::sigmoid(x)
}
