//! The train/eval pass: BatchNorm's mode, seeded dropout, and a trace of the layers for the
//! model summary.

use candle_core::{Module, Result, Tensor};

use super::{Activation, LayerRow};
use crate::ops;
use crate::rng::{self, Rng};

/// How one forward pass runs: training or evaluation, the generator that draws dropout
/// masks, and an optional trace of each layer's output shape for [`super::Summary`].
pub struct Pass<'a> {
    train: bool,
    rng: Option<&'a mut Rng>,
    trace: Option<Vec<LayerRow>>,
}

impl<'a> Pass<'a> {
    /// Evaluation: BatchNorm uses running statistics, dropout is off.
    pub fn eval() -> Pass<'static> {
        Pass {
            train: false,
            rng: None,
            trace: None,
        }
    }

    /// Training: BatchNorm uses (and updates) batch statistics, dropout masks come from `rng`.
    pub fn train(rng: &'a mut Rng) -> Pass<'a> {
        Pass {
            train: true,
            rng: Some(rng),
            trace: None,
        }
    }

    /// True in training mode.
    pub fn is_train(&self) -> bool {
        self.train
    }

    pub(crate) fn tracing() -> Pass<'static> {
        Pass {
            train: false,
            rng: None,
            trace: Some(Vec::new()),
        }
    }

    /// The layers traced by a [`Pass::tracing`] pass.
    pub(crate) fn into_trace(self) -> Vec<LayerRow> {
        self.trace.unwrap_or_default()
    }

    /// Applies `layer` and records its output under `name` when tracing.
    pub(crate) fn layer(&mut self, name: &str, params: usize, x: Tensor) -> Result<Tensor> {
        if let Some(trace) = &mut self.trace {
            trace.push(LayerRow {
                name: name.to_owned(),
                output_shape: x.dims().to_vec(),
                params,
            });
        }
        Ok(x)
    }

    /// Inverted dropout with probability `p`, its mask drawn from this pass's generator.
    pub fn dropout(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        match (&mut self.rng, self.train && p > 0.0) {
            (Some(rng), true) => {
                let mask = rng::dropout_mask(rng, x.shape(), p, x.device())?;
                ops::pointwise::mul_mask(x, &mask.to_dtype(x.dtype())?)
            }
            _ => Ok(x.clone()),
        }
    }

    /// `activation(x)`, then dropout with probability `p` in training: one op each way.
    /// The same values and random draws as `activation.forward(x)` then [`Pass::dropout`].
    pub fn activation_dropout(
        &mut self,
        x: &Tensor,
        activation: Activation,
        p: f32,
    ) -> Result<Tensor> {
        match (&mut self.rng, self.train && p > 0.0) {
            (Some(rng), true) => {
                let mask = rng::dropout_mask(rng, x.shape(), p, x.device())?;
                ops::pointwise::leaky_relu_mask(x, activation.slope(), &mask)
            }
            _ => activation.forward(x),
        }
    }
}
