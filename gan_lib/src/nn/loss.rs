//! The discriminators' losses on their logits.

use candle_core::{Result, Tensor};

/// Mean binary cross-entropy between `logits` and a constant `target`, in the stable form
/// `max(x, 0) - x·t + log(1 + e^-|x|)` (candle's own version overflows for large logits).
pub fn bce_with_logits(logits: &Tensor, target: f32) -> Result<Tensor> {
    let loss = ((logits.relu()? - (logits * target as f64)?)?
        + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    loss.mean_all()
}

/// Mean hinge loss of a discriminator: `relu(1 − x)` for real logits (`real = true`),
/// `relu(1 + x)` for fakes.
pub fn hinge(logits: &Tensor, real: bool) -> Result<Tensor> {
    let margin = if real {
        (1.0 - logits)?
    } else {
        (logits + 1.0)?
    };
    margin.relu()?.mean_all()
}
