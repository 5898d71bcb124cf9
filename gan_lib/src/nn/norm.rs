//! Batch normalisation.

use candle_core::{ModuleT, Result, Tensor, Var};
use candle_nn::{BatchNormConfig, VarBuilder};

use crate::ops;

/// BatchNorm over dimension 1 of `(n, c)` or `(n, c, h, w)` inputs, as PyTorch's
/// `BatchNorm1d`/`2d` (eps 1e-5, momentum 0.1, running variance unbiased). Tensors:
/// `weight`, `bias`, `running_mean`, `running_var`, as candle's `BatchNorm`.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub(crate) candle: candle_nn::BatchNorm,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl super::Parameters for BatchNorm {
    /// Scale and shift; the running statistics are state, not parameters.
    fn parameters(&self) -> usize {
        let (weight, bias) = self
            .candle
            .weight_and_bias()
            .expect("gan_lib's BatchNorm is affine");
        weight.elem_count() + bias.elem_count()
    }
}

impl BatchNorm {
    /// A BatchNorm over `features` channels, its tensors from `vb`.
    pub fn new(features: usize, vb: VarBuilder) -> Result<BatchNorm> {
        let config = BatchNormConfig::default();
        let candle = candle_nn::batch_norm(features, config, vb)?;
        Ok(BatchNorm {
            running_mean: Var::from_tensor(candle.running_mean())?,
            running_var: Var::from_tensor(candle.running_var())?,
            candle,
            eps: config.eps,
            momentum: config.momentum,
        })
    }

    /// Normalises with the batch's statistics (and updates the running ones) when `train`,
    /// with the running statistics otherwise.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_leaky(x, train, None)
    }

    /// [`BatchNorm::forward_t`], then, when `slope` is given, a leaky ReLU of that slope (0:
    /// ReLU). On the CPU both run fused, one node of candle's graph each way, in training and
    /// in evaluation (where the gradient reaches `x` only: nothing trains in evaluation).
    pub fn forward_leaky(&self, x: &Tensor, train: bool, slope: Option<f64>) -> Result<Tensor> {
        let Some((weight, bias)) = self.candle.weight_and_bias() else {
            candle_core::bail!("batch-norm without weight and bias");
        };
        if !train && ops::fused(x) {
            let statistics = (self.running_mean.as_tensor(), self.running_var.as_tensor());
            return ops::norm::batch_norm_eval(x, statistics, (weight, bias), self.eps, slope);
        }
        if !train || !ops::fused(x) {
            let y = self.candle.forward_t(x, train)?;
            return match slope {
                Some(slope) => ops::pointwise::leaky_relu(&y, slope),
                None => Ok(y),
            };
        }
        let (y, batch) = ops::norm::batch_norm_train(x, weight, bias, self.eps, slope)?;
        let count = (x.elem_count() / batch.mean.len()) as f64;
        let update = |running: &Var, batch: &[f32], scale: f64| -> Result<()> {
            let old = running.to_vec1::<f32>()?;
            let new: Vec<f32> = old
                .iter()
                .zip(batch)
                .map(|(&r, &b)| {
                    ((1.0 - self.momentum) * r as f64 + self.momentum * scale * b as f64) as f32
                })
                .collect();
            running.set(&Tensor::from_vec(new, old.len(), running.device())?)
        };
        update(&self.running_mean, &batch.mean, 1.0)?;
        // The running variance is unbiased, as PyTorch's.
        update(
            &self.running_var,
            &batch.variance,
            count / (count - 1.0).max(1.0),
        )?;
        Ok(y)
    }

    /// This layer in evaluation mode as a per-channel `(scale, shift)`: `y = x·scale + shift`
    /// with `scale = weight / √(running_var + eps)` and `shift = bias − running_mean·scale`,
    /// to fold into the layer before it (see [`crate::nn::Conv2d::followed_by`]).
    pub fn eval_scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let Some((weight, bias)) = self.candle.weight_and_bias() else {
            candle_core::bail!("batch-norm without weight and bias");
        };
        let scale = (weight / (self.running_var.as_tensor() + self.eps)?.sqrt()?)?;
        let shift = (bias - (self.running_mean.as_tensor() * &scale)?)?;
        Ok((scale, shift))
    }
}
