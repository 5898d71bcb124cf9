//! Spectral normalisation (Miyato et al. 2018): a layer's weight divided by its largest
//! singular value σ, so that the layer is 1-Lipschitz. σ is estimated by power iteration, one
//! step per discriminator update, with the vector `u` kept between steps (and saved with the
//! weights, as PyTorch's `weight_u` buffer).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// The name of the power iteration's vector among a layer's tensors.
pub const U_NAME: &str = "sn_u";

/// The power-iteration state of one layer: `u`, a unit vector of the weight's row space.
#[derive(Clone, Debug)]
pub struct SpectralNorm {
    u: Tensor,
}

/// `x / ‖x‖` for a vector.
fn unit(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_all()?.sqrt()?;
    x.broadcast_div(&(norm + 1e-12)?)
}

impl SpectralNorm {
    /// The state for a weight of `rows` output rows, `u` read from (or made in) `vb` as
    /// `sn_u` (drawn by [`super::init_weights`]).
    pub fn new(rows: usize, vb: VarBuilder) -> Result<SpectralNorm> {
        let u = vb.get_with_hints(rows, U_NAME, candle_nn::Init::Const(1.0))?;
        Ok(SpectralNorm { u })
    }

    /// `v = Wᵀu / ‖Wᵀu‖` for the weight seen as a matrix `(rows, everything else)`.
    fn v(&self, matrix: &Tensor) -> Result<Tensor> {
        unit(&matrix.t()?.matmul(&self.u.unsqueeze(1)?)?.squeeze(1)?)
    }

    /// One power-iteration step on `weight`: `v = Wᵀu / ‖Wᵀu‖`, `u ← Wv / ‖Wv‖`, in place.
    pub fn power_iteration(&self, weight: &Tensor) -> Result<()> {
        let matrix = weight.detach().flatten_from(1)?;
        let v = self.v(&matrix)?;
        let u = unit(&matrix.matmul(&v.unsqueeze(1)?)?.squeeze(1)?)?;
        self.u.slice_set(&u, 0, 0)
    }

    /// The estimate `σ = uᵀ W v` of the largest singular value; `u` and `v` are constants,
    /// so gradients flow through `W` only (as in PyTorch's `spectral_norm`).
    pub fn sigma(&self, weight: &Tensor) -> Result<Tensor> {
        let matrix = weight.flatten_from(1)?;
        let v = self.v(&matrix.detach())?;
        let u = self.u.detach();
        u.unsqueeze(0)?
            .matmul(&matrix.matmul(&v.unsqueeze(1)?)?)?
            .reshape(())
    }

    /// `W / σ`.
    pub fn normalize(&self, weight: &Tensor) -> Result<Tensor> {
        weight.broadcast_div(&self.sigma(weight)?)
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
            rows,
            VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        )?;
        super::super::init_weights(&vars, super::super::InitScheme::Default, &mut rng)?;
        let first = norm.sigma(&weight)?.to_scalar::<f32>()? as f64;
        for _ in 0..50 {
            norm.power_iteration(&weight)?;
        }
        let sigma = norm.sigma(&weight)?.to_scalar::<f32>()? as f64;
        assert!(
            (sigma - exact).abs() < 1e-4 * exact,
            "σ {sigma} after 50 steps, exact {exact} (first estimate {first})"
        );
        assert!(
            first <= exact + 1e-4,
            "an estimate never exceeds σ: {first} > {exact}"
        );
        // The normalised weight has largest singular value 1, and u stays a unit vector.
        let normalized = norm.normalize(&weight)?.flatten_all()?.to_vec1::<f32>()?;
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
