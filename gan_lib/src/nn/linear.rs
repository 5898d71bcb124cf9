//! The fully connected layer.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::ops;

/// `(b, in)` → `(b, out)`: `x·Wᵀ + bias`, weight `(out, in)` as PyTorch's `nn.Linear`.
#[derive(Clone, Debug)]
pub struct Linear {
    candle: candle_nn::Linear,
}

impl super::Parameters for Linear {
    fn parameters(&self) -> usize {
        self.weight().elem_count() + self.bias().map_or(0, Tensor::elem_count)
    }
}

impl Linear {
    /// Weight `weight` and, when `bias`, bias `bias` from `vb`.
    pub fn new(inputs: usize, outputs: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
        Ok(Linear {
            candle: candle_nn::linear_b(inputs, outputs, bias, vb)?,
        })
    }

    /// A layer on given tensors: weight `(out, in)` and an optional bias `(out)` (for
    /// weights computed from others, as spectral normalisation does).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear {
            candle: candle_nn::Linear::new(weight, bias),
        }
    }

    /// The weight, `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        self.candle.weight()
    }

    /// The bias, `(out)`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.candle.bias()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if ops::fused(x) && x.rank() == 2 {
            ops::linear::linear(x, self.weight(), self.bias())
        } else {
            self.candle.forward(x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    /// Values and every gradient equal candle's `Linear`.
    #[test]
    fn linear_matches_candle() -> Result<()> {
        crate::ops::two_threads(linear_matches_candle_inner)
    }

    fn linear_matches_candle_inner() -> Result<()> {
        // From the third on large enough for the multi-threaded paths; the last two have
        // batches that take the direct product `x·Wᵀ`.
        for (bias, batch, inputs, outputs) in [
            (true, 6, 37, 19),
            (false, 6, 37, 19),
            (true, 130, 300, 260),
            (false, 130, 300, 260),
            (true, 300, 70, 90),
            (false, 300, 70, 90),
        ] {
            let vars = VarMap::new();
            let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
            let ours = Linear::new(inputs, outputs, bias, vb)?;
            let theirs = ours.candle.clone();
            let mut rng = crate::rng::seeded(5);
            let x = Var::from_tensor(&crate::rng::randn(
                &mut rng,
                (batch, inputs),
                0.0,
                1.0,
                &Device::Cpu,
            )?)?;
            let probe = crate::rng::randn(&mut rng, (batch, outputs), 0.0, 1.0, &Device::Cpu)?;
            let (y_ours, y_theirs) = (ours.forward(&x)?, theirs.forward(&x)?);
            let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
                (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
            };
            assert!(diff(&y_ours, &y_theirs)? < 1e-5);
            let g_ours = (y_ours * &probe)?.sum_all()?.backward()?;
            let g_theirs = (y_theirs * &probe)?.sum_all()?.backward()?;
            let mut checked = vec![x.as_tensor().clone()];
            checked.extend(vars.all_vars().iter().map(|v| v.as_tensor().clone()));
            assert_eq!(checked.len(), if bias { 3 } else { 2 });
            for t in checked {
                let d = diff(g_ours.get(&t).unwrap(), g_theirs.get(&t).unwrap())?;
                assert!(d < 1e-4, "gradient of {:?} differs by {d}", t.dims());
            }
            // An input that needs no gradient gets none; the weight's is unchanged.
            let input = x.as_tensor().detach();
            let g_detached = (ours.forward(&input)? * &probe)?.sum_all()?.backward()?;
            assert!(g_detached.get(&input).is_none());
            let weight = ours.weight();
            let d = diff(g_detached.get(weight).unwrap(), g_ours.get(weight).unwrap())?;
            assert!(
                d < 1e-6,
                "weight gradient without an input gradient differs by {d}"
            );
            // A frozen layer (weights outside autograd) gives its input the same gradient,
            // and computes none for its weights.
            let frozen = Linear {
                candle: candle_nn::Linear::new(
                    weight.detach(),
                    ours.candle.bias().map(|b| b.detach()),
                ),
            };
            let g_frozen = (frozen.forward(&x)? * &probe)?.sum_all()?.backward()?;
            let d = diff(g_frozen.get(&x).unwrap(), g_ours.get(&x).unwrap())?;
            assert!(
                d < 1e-6,
                "input gradient through a frozen layer differs by {d}"
            );
            assert!(g_frozen.get(frozen.weight()).is_none());
            if let Some(bias) = frozen.candle.bias() {
                assert!(g_frozen.get(bias).is_none());
            }
        }
        Ok(())
    }
}
