//! Adam, with its moments in the open so a checkpoint can save and restore them: candle's
//! `AdamW` keeps its state private (and defaults to weight decay 0.01, which Adam has not).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;

/// Adam (Kingma & Ba) without weight decay, as `torch.optim.Adam`.
pub struct Adam {
    /// Trainable variables, sorted by name.
    vars: Vec<(String, Var)>,
    first_moments: Vec<Tensor>,
    second_moments: Vec<Tensor>,
    /// Steps taken so far.
    pub step: u64,
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
}

impl Adam {
    /// An optimiser for every trainable variable of `varmap` (BatchNorm running statistics,
    /// which get no gradient, are left out).
    pub fn new(varmap: &VarMap, lr: f64, (beta1, beta2): (f64, f64)) -> Result<Adam> {
        let data = varmap.data().lock().expect("varmap lock");
        let mut vars: Vec<(String, Var)> = data
            .iter()
            .filter(|(n, _)| !n.contains("running_"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        let first_moments = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?;
        let second_moments = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?;
        Ok(Adam {
            vars,
            first_moments,
            second_moments,
            step: 0,
            lr,
            beta1,
            beta2,
            eps: 1e-8,
        })
    }

    /// One update from the gradients in `grads`; variables without a gradient are untouched.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        let step_size = self.lr / bias1;
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Detached: the gradients carry their backward graph, which the moments would
            // otherwise keep alive from step to step.
            let grad = grad.detach();
            let m = ((&self.first_moments[i] * self.beta1)? + (&grad * (1.0 - self.beta1))?)?;
            let v =
                ((&self.second_moments[i] * self.beta2)? + (grad.sqr()? * (1.0 - self.beta2))?)?;
            let denominator = ((&v / bias2)?.sqrt()? + self.eps)?;
            let update = ((&m / &denominator)? * step_size)?;
            var.set(&var.as_tensor().sub(&update)?)?;
            self.first_moments[i] = m;
            self.second_moments[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors (`m.<var>`, `v.<var>`), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut state = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            state.insert(format!("m.{name}"), self.first_moments[i].clone());
            state.insert(format!("v.{name}"), self.second_moments[i].clone());
        }
        state
    }

    /// Restores moments saved by [`Adam::state`]; a missing or misshapen one is an error.
    pub fn load_state(
        &mut self,
        state: &HashMap<String, Tensor>,
        step: u64,
    ) -> std::result::Result<(), String> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [
                ("m", &mut self.first_moments[i]),
                ("v", &mut self.second_moments[i]),
            ] {
                let key = format!("{prefix}.{name}");
                let saved = state
                    .get(&key)
                    .ok_or_else(|| format!("optimiser state {key} is missing"))?;
                if saved.dims() != var.dims() {
                    return Err(format!(
                        "optimiser state {key} has shape {:?}, expected {:?}",
                        saved.dims(),
                        var.dims()
                    ));
                }
                *slot = saved.to_device(var.device()).map_err(|e| e.to_string())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Adam's first step moves every weight by lr against its gradient's sign.
    #[test]
    fn first_step_moves_by_lr_against_the_gradient() {
        let varmap = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let w = vb
            .get_with_hints(3, "w", candle_nn::Init::Const(1.0))
            .unwrap();
        let mut adam = Adam::new(&varmap, 0.1, (0.9, 0.999)).unwrap();
        let target = Tensor::new(&[2f32, 0.0, 1.0], &Device::Cpu).unwrap();
        let loss = (&w - &target).unwrap().sqr().unwrap().sum_all().unwrap();
        adam.step(&loss.backward().unwrap()).unwrap();
        let after = w.to_vec1::<f32>().unwrap();
        assert!(
            (after[0] - 1.1).abs() < 1e-5 && (after[1] - 0.9).abs() < 1e-5,
            "{after:?}"
        );
        // Zero gradient: no move (m = 0).
        assert!((after[2] - 1.0).abs() < 1e-6, "{after:?}");
    }
}
