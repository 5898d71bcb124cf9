//! What running in notebook cells needs, in one place.
//!
//! evcxr compiles every notebook cell into its own shared library, with its own copy of
//! gan_lib and candle linked in, statics included. One of candle's statics numbers tensors, and
//! its backward pass keys gradients by those numbers, so each cell counts from 1 again. A
//! training step run in a later cell than the one that built the model would give its new
//! tensors the numbers of the model's variables, and the backward pass would mix their
//! gradients up ("shape mismatch in add"). [`fresh_tensor_ids`] keeps them apart; outside a
//! notebook it costs one tensor per call.
//!
//! [`setup`] is the one line a notebook's first cell runs to train as fast as the command-line
//! tool.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarMap;

/// Sets up the kernel's process as the command-line tool sets up its own: the thread counts
/// ([`crate::set_threads`], every core unless `RAYON_NUM_THREADS` says otherwise) and the
/// allocator ([`crate::tune_allocator`]). Both are process-wide, so later cells keep them;
/// call it in the first cell, before any tensor work. Returns the threads in use.
pub fn setup() -> usize {
    crate::tune_allocator();
    crate::set_threads(None)
}

/// Makes this copy of candle number new tensors above every variable in `vars` and above
/// `inputs`. [`crate::train::Trainer::train_step`] calls it first, and the epoch loop once per
/// epoch; a training loop of your own in a notebook calls it before each step's forward pass.
pub fn fresh_tensor_ids(vars: &[&VarMap], inputs: &Tensor) -> Result<()> {
    let variables: Vec<_> = vars.iter().flat_map(|v| v.all_vars()).collect();
    ids_past(
        variables
            .iter()
            .map(|v| v.as_tensor())
            .chain(std::iter::once(inputs)),
    )
}

/// Draws tensor numbers until they pass the largest of `long_lived`; outside a notebook the
/// counter is past them already, and this draws one. The number is read from `TensorId`'s
/// `Debug` form: candle has no accessor.
fn ids_past<'a>(long_lived: impl Iterator<Item = &'a Tensor>) -> Result<()> {
    let last = long_lived.filter_map(tensor_number).max().unwrap_or(0);
    while tensor_number(&Tensor::zeros((), DType::F32, &Device::Cpu)?).is_some_and(|n| n <= last) {}
    Ok(())
}

/// The number in a tensor's `TensorId`, read from its `Debug` form (`TensorId(18)`).
fn tensor_number(tensor: &Tensor) -> Option<usize> {
    let id = format!("{:?}", tensor.id());
    id.strip_prefix("TensorId(")?
        .strip_suffix(')')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ids_past` depends on the form of candle's `TensorId` in `Debug`: numbers must be read,
    /// and count up.
    #[test]
    fn tensor_numbers_are_read_and_count_up() -> candle_core::Result<()> {
        let zero = || Tensor::zeros((), DType::F32, &Device::Cpu);
        let (first, second) = (zero()?, zero()?);
        let (a, b) = (tensor_number(&first), tensor_number(&second));
        assert!(
            a.is_some() && b > a,
            "{:?} then {:?}",
            first.id(),
            second.id()
        );
        ids_past([&first, &second].into_iter())?;
        assert!(tensor_number(&zero()?) > b);
        Ok(())
    }
}
