//! Spectral normalisation (Miyato et al. 2018): a layer's weight divided by its largest
//! singular value σ, so that the layer is 1-Lipschitz. σ is estimated by power iteration, one
//! step per discriminator update, with the vector `u` kept between steps (and saved with the
//! weights, as PyTorch's `weight_u` buffer). [`SpectralNorm`] wraps the layer it normalises.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::{Conv2d, Linear};

/// The name of the power iteration's vector among a layer's tensors.
pub const U_NAME: &str = "sn_u";

/// A layer with one weight that spectral normalisation can divide by σ.
pub trait Weighted: Clone {
    /// The weight, `(rows, …)`.
    fn weight(&self) -> &Tensor;
    /// The same layer with `weight` in place of its own (bias and settings kept).
    fn with_weight(&self, weight: Tensor) -> Self;
}

impl Weighted for Linear {
    fn weight(&self) -> &Tensor {
        Linear::weight(self)
    }
    fn with_weight(&self, weight: Tensor) -> Linear {
        Linear::from_tensors(weight, self.bias().cloned())
    }
}

impl Weighted for Conv2d {
    fn weight(&self) -> &Tensor {
        Conv2d::weight(self)
    }
    fn with_weight(&self, weight: Tensor) -> Conv2d {
        Conv2d::with_weight(self, weight)
    }
}

/// `layer` spectrally normalised: it computes with its weight divided by σ, the estimate of
/// its largest singular value kept by power iteration in `u`, a unit vector of the weight's
/// row space.
#[derive(Clone, Debug)]
pub struct SpectralNorm<L> {
    layer: L,
    u: Tensor,
}

/// `x / ‖x‖` for a vector.
fn unit(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_all()?.sqrt()?;
    x.broadcast_div(&(norm + 1e-12)?)
}

impl<L: Weighted> SpectralNorm<L> {
    /// Wraps `layer`; `u` is read from (or made in) `vb` as `sn_u` (drawn by
    /// [`super::init_weights`]), beside the layer's own tensors.
    pub fn new(layer: L, vb: VarBuilder) -> Result<SpectralNorm<L>> {
        let rows = layer.weight().dim(0)?;
        let u = vb.get_with_hints(rows, U_NAME, candle_nn::Init::Const(1.0))?;
        Ok(SpectralNorm { layer, u })
    }

    /// The layer as trained, its weight not divided.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// `v = Wᵀu / ‖Wᵀu‖` for the weight seen as a matrix `(rows, everything else)`.
    fn v(&self, matrix: &Tensor) -> Result<Tensor> {
        unit(&matrix.t()?.matmul(&self.u.unsqueeze(1)?)?.squeeze(1)?)
    }

    /// One power-iteration step: `v = Wᵀu / ‖Wᵀu‖`, `u ← Wv / ‖Wv‖`, in place.
    pub fn power_iteration(&self) -> Result<()> {
        let matrix = self.layer.weight().detach().flatten_from(1)?;
        let v = self.v(&matrix)?;
        let u = unit(&matrix.matmul(&v.unsqueeze(1)?)?.squeeze(1)?)?;
        self.u.slice_set(&u, 0, 0)
    }

    /// The estimate `σ = uᵀ W v` of the largest singular value; `u` and `v` are constants,
    /// so gradients flow through `W` only (as in PyTorch's `spectral_norm`).
    pub fn sigma(&self) -> Result<Tensor> {
        let matrix = self.layer.weight().flatten_from(1)?;
        let v = self.v(&matrix.detach())?;
        let u = self.u.detach();
        u.unsqueeze(0)?
            .matmul(&matrix.matmul(&v.unsqueeze(1)?)?)?
            .reshape(())
    }

    /// The layer with weight `W / σ`: what the discriminator computes with.
    pub fn normalized(&self) -> Result<L> {
        let weight = self.layer.weight().broadcast_div(&self.sigma()?)?;
        Ok(self.layer.with_weight(weight))
    }
}

/// A discriminator's layer, spectrally normalised when its config asks for it
/// (`model.d_spectral_norm`).
#[derive(Clone, Debug)]
pub enum MaybeSpectral<L> {
    /// The layer as it is.
    Plain(L),
    /// The layer divided by its largest singular value.
    Normalized(SpectralNorm<L>),
}

impl<L: super::Parameters> super::Parameters for MaybeSpectral<L> {
    /// The layer's own; `u` is state, not a parameter (as PyTorch's `weight_u` buffer).
    fn parameters(&self) -> usize {
        match self {
            MaybeSpectral::Plain(layer) => layer.parameters(),
            MaybeSpectral::Normalized(norm) => norm.layer.parameters(),
        }
    }
}

impl<L: Weighted> MaybeSpectral<L> {
    /// `layer`, wrapped in [`SpectralNorm`] (its `u` in `vb`) when `spectral`.
    pub fn new(layer: L, spectral: bool, vb: VarBuilder) -> Result<MaybeSpectral<L>> {
        Ok(match spectral {
            true => MaybeSpectral::Normalized(SpectralNorm::new(layer, vb)?),
            false => MaybeSpectral::Plain(layer),
        })
    }

    /// The layer as trained (its weight not divided).
    pub fn layer(&self) -> &L {
        match self {
            MaybeSpectral::Plain(layer) => layer,
            MaybeSpectral::Normalized(norm) => norm.layer(),
        }
    }

    /// The layer the forward pass computes with: normalised or as it is.
    pub fn effective(&self) -> Result<L> {
        match self {
            MaybeSpectral::Plain(layer) => Ok(layer.clone()),
            MaybeSpectral::Normalized(norm) => norm.normalized(),
        }
    }

    /// One power-iteration step when normalised; nothing otherwise.
    pub fn power_iteration(&self) -> Result<()> {
        match self {
            MaybeSpectral::Plain(_) => Ok(()),
            MaybeSpectral::Normalized(norm) => norm.power_iteration(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// Power iteration converges to the largest singular value from an exact SVD.
    #[test]
    fn sigma_matches_the_largest_singular_value() -> Result<()> {
        let (rows, cols) = (7, 5);
        let mut rng = crate::rng::seeded(3);
        let weight = crate::rng::randn(&mut rng, (rows, cols), 0.0, 1.0, &Device::Cpu)?;
        let values = weight.flatten_all()?.to_vec1::<f32>()?;
        let matrix = nalgebra::DMatrix::from_row_slice(
            rows,
            cols,
            &values.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        let exact = matrix.singular_values().max();
        let vars = VarMap::new();
        let norm = SpectralNorm::new(
            Linear::from_tensors(weight.clone(), None),
            VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        )?;
        super::super::init_weights(&vars, super::super::InitScheme::Default, &mut rng)?;
        let first = norm.sigma()?.to_scalar::<f32>()? as f64;
        for _ in 0..50 {
            norm.power_iteration()?;
        }
        let sigma = norm.sigma()?.to_scalar::<f32>()? as f64;
        assert!(
            (sigma - exact).abs() < 1e-4 * exact,
            "σ {sigma} after 50 steps, exact {exact} (first estimate {first})"
        );
        assert!(
            first <= exact + 1e-4,
            "an estimate never exceeds σ: {first} > {exact}"
        );
        // The normalised weight has largest singular value 1, and u stays a unit vector.
        let normalized = norm
            .normalized()?
            .weight()
            .flatten_all()?
            .to_vec1::<f32>()?;
        let normalized = nalgebra::DMatrix::from_row_slice(
            rows,
            cols,
            &normalized.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        assert!((normalized.singular_values().max() - 1.0).abs() < 1e-4);
        let u_norm = norm.u.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        assert!((u_norm - 1.0).abs() < 1e-5);
        Ok(())
    }
}
