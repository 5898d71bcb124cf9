//! Seeded weight initialisation, and which variables are parameters.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::spectral_norm;
use crate::rng::{self, Rng};

/// How weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitScheme {
    /// PyTorch's defaults: U(±1/√fan_in) for weights and biases, BatchNorm γ=1, β=0.
    Default,
    /// DCGAN's: conv weights N(0, 0.02), BatchNorm γ ~ N(1, 0.02), β=0; linear layers default.
    Normal002,
}

/// Re-draws every trainable variable of `varmap` from `rng`, visiting them in name order so
/// that the same seed always gives the same weights (candle's own init cannot be seeded).
/// BatchNorm running statistics are reset to mean 0, variance 1.
pub fn init_weights(varmap: &VarMap, scheme: InitScheme, rng: &mut Rng) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let (shape, device) = (var.shape().clone(), var.device().clone());
        let dims = shape.dims();
        let value = if name.ends_with(spectral_norm::U_NAME) {
            let u = rng::randn(rng, shape, 0.0, 1.0, &device)?;
            let norm = u.sqr()?.sum_all()?.sqrt()?;
            u.broadcast_div(&norm)?
        } else if name.ends_with("running_mean") {
            Tensor::zeros(&shape, DType::F32, &device)?
        } else if name.ends_with("running_var") {
            Tensor::ones(&shape, DType::F32, &device)?
        } else if name.ends_with("weight") && dims.len() == 1 {
            match scheme {
                InitScheme::Default => Tensor::ones(&shape, DType::F32, &device)?,
                InitScheme::Normal002 => rng::randn(rng, shape, 1.0, 0.02, &device)?,
            }
        } else if name.ends_with("weight") {
            if scheme == InitScheme::Normal002 && dims.len() == 4 {
                rng::randn(rng, shape, 0.0, 0.02, &device)?
            } else {
                let bound = 1.0 / (fan_in(name, dims) as f32).sqrt();
                rng::uniform(rng, shape, -bound, bound, &device)?
            }
        } else if name.ends_with("bias") {
            let weight = name.trim_end_matches("bias").to_owned() + "weight";
            match data.get(&weight).map(|w| w.dims().to_vec()) {
                Some(w) if w.len() >= 2 => {
                    let bound = 1.0 / (fan_in(&weight, &w) as f32).sqrt();
                    rng::uniform(rng, shape, -bound, bound, &device)?
                }
                _ => Tensor::zeros(&shape, DType::F32, &device)?,
            }
        } else {
            continue;
        };
        var.set(&value)?;
    }
    Ok(())
}

/// PyTorch's fan-in: input features times kernel area. For a transposed convolution, whose
/// weight is (in, out, k, k), PyTorch uses dimension 1, and so do we.
fn fan_in(_name: &str, dims: &[usize]) -> usize {
    dims[1..].iter().product::<usize>().max(1)
}

/// True for a variable that is state rather than a parameter: BatchNorm's running
/// statistics and spectral normalisation's power-iteration vector. They get no gradient and
/// no optimiser.
pub fn is_state(name: &str) -> bool {
    name.contains("running_") || name.ends_with(spectral_norm::U_NAME)
}

/// Trainable parameters in `varmap` (BatchNorm running statistics excluded).
pub fn count_params(varmap: &VarMap) -> usize {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .filter(|(name, _)| !is_state(name))
        .map(|(_, v)| v.elem_count())
        .sum()
}
