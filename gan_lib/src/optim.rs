//! Adam, with its moments in the open so a checkpoint can save and restore them: candle's
//! `AdamW` keeps its state private (and defaults to weight decay 0.01, which Adam has not).

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor, Var};
use candle_nn::VarMap;
use rayon::prelude::*;

/// Adam (Kingma & Ba) without weight decay, as `torch.optim.Adam`. The learning rate is given
/// to each [`Adam::step`]: it lives with whoever owns it (the run's config, a schedule), never
/// in two places.
pub struct Adam {
    /// Trainable variables, sorted by name.
    vars: Vec<(String, Var)>,
    moments: Vec<Moments>,
    /// Steps taken so far.
    pub step: u64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
}

/// A variable's first and second moments: plain vectors for CPU variables, which one fused
/// pass updates in place with the weights (ten tensor ops per variable took 12% of an MLP
/// step), tensors on other devices.
enum Moments {
    Host(Vec<f32>, Vec<f32>),
    Device(Tensor, Tensor),
}

impl Moments {
    fn zeros(var: &Var) -> Result<Moments> {
        Ok(
            if var.device().is_cpu() && var.dtype() == candle_core::DType::F32 {
                let n = var.elem_count();
                Moments::Host(vec![0.0; n], vec![0.0; n])
            } else {
                Moments::Device(var.zeros_like()?, var.zeros_like()?)
            },
        )
    }
}

/// The coefficients of one step.
#[derive(Clone, Copy)]
struct Coefficients {
    beta1: f32,
    beta2: f32,
    /// lr / (1 − β1ᵗ)
    step_size: f32,
    /// 1 / (1 − β2ᵗ)
    bias2: f32,
    eps: f32,
}

/// In place on the weights, with the gradient as the second operand:
/// m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², w ← w − step·m / (√(v·bias2) + eps).
struct FusedStep<'a> {
    first: RefCell<&'a mut [f32]>,
    second: RefCell<&'a mut [f32]>,
    k: Coefficients,
}

/// Weights, gradients, first and second moments of one chunk.
type Slices<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);

impl InplaceOp2 for FusedStep<'_> {
    fn name(&self) -> &'static str {
        "adam-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (weights, grads) = crate::ops::operands_mut(s1, l1, s2, l2, self.name())?;
        let (mut first, mut second, k) =
            (self.first.borrow_mut(), self.second.borrow_mut(), self.k);
        let update = |(((w, g), m), v): Slices| {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = k.beta1 * *m + (1.0 - k.beta1) * g;
                *v = k.beta2 * *v + (1.0 - k.beta2) * g * g;
                *w -= k.step_size * *m / ((*v * k.bias2).sqrt() + k.eps);
            }
        };
        if !crate::ops::split(weights.len()) {
            update((((weights, grads), &mut first[..]), &mut second[..]));
        } else {
            const CHUNK: usize = 1 << 14;
            weights
                .par_chunks_mut(CHUNK)
                .zip(grads.par_chunks(CHUNK))
                .zip(first.par_chunks_mut(CHUNK))
                .zip(second.par_chunks_mut(CHUNK))
                .for_each(update);
        }
        Ok(())
    }
}

impl Adam {
    /// An optimiser for every trainable variable of `varmap` (BatchNorm running statistics,
    /// which get no gradient, are left out).
    pub fn new(varmap: &VarMap, (beta1, beta2): (f64, f64)) -> Result<Adam> {
        let data = varmap.data().lock().expect("varmap lock");
        let mut vars: Vec<(String, Var)> = data
            .iter()
            .filter(|(n, _)| !crate::nn::is_state(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let moments = vars
            .iter()
            .map(|(_, v)| Moments::zeros(v))
            .collect::<Result<_>>()?;
        Ok(Adam {
            vars,
            moments,
            step: 0,
            beta1,
            beta2,
            eps: 1e-8,
        })
    }

    /// One update with learning rate `lr` from the gradients in `grads`; variables without a
    /// gradient are untouched.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        let step_size = lr / bias1;
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Detached: the gradients carry their backward graph, which the moments would
            // otherwise keep alive from step to step.
            let grad = grad.detach();
            match &mut self.moments[i] {
                Moments::Host(first, second) => {
                    let op = FusedStep {
                        first: RefCell::new(first),
                        second: RefCell::new(second),
                        k: Coefficients {
                            beta1: self.beta1 as f32,
                            beta2: self.beta2 as f32,
                            step_size: step_size as f32,
                            bias2: (1.0 / bias2) as f32,
                            eps: self.eps as f32,
                        },
                    };
                    var.as_tensor().inplace_op2(&grad.contiguous()?, &op)?;
                }
                Moments::Device(first, second) => {
                    let m = ((&*first * self.beta1)? + (&grad * (1.0 - self.beta1))?)?;
                    let v = ((&*second * self.beta2)? + (grad.sqr()? * (1.0 - self.beta2))?)?;
                    let denominator = ((&v / bias2)?.sqrt()? + self.eps)?;
                    let update = ((&m / &denominator)? * step_size)?;
                    var.set(&var.as_tensor().sub(&update)?)?;
                    (*first, *second) = (m, v);
                }
            }
        }
        Ok(())
    }

    /// The moments as named tensors (`m.<var>`, `v.<var>`), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut state = HashMap::new();
        for ((name, var), moments) in self.vars.iter().zip(&self.moments) {
            let (m, v) = match moments {
                Moments::Host(m, v) => {
                    let tensor = |values: &Vec<f32>| {
                        Tensor::from_slice(values, var.shape(), var.device())
                            .expect("moments have their variable's shape")
                    };
                    (tensor(m), tensor(v))
                }
                Moments::Device(m, v) => (m.clone(), v.clone()),
            };
            state.insert(format!("m.{name}"), m);
            state.insert(format!("v.{name}"), v);
        }
        state
    }

    /// Restores moments saved by [`Adam::state`]; a missing or misshapen one is an error.
    pub fn load_state(
        &mut self,
        state: &HashMap<String, Tensor>,
        step: u64,
    ) -> std::result::Result<(), String> {
        for ((name, var), moments) in self.vars.iter().zip(&mut self.moments) {
            let get = |prefix: &str| -> std::result::Result<Tensor, String> {
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
                saved.to_device(var.device()).map_err(|e| e.to_string())
            };
            let (m, v) = (get("m")?, get("v")?);
            *moments = match moments {
                Moments::Host(..) => {
                    let host = |t: Tensor| {
                        t.flatten_all()
                            .and_then(|t| t.to_vec1::<f32>())
                            .map_err(|e| e.to_string())
                    };
                    Moments::Host(host(m)?, host(v)?)
                }
                Moments::Device(..) => Moments::Device(m, v),
            };
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
        let mut adam = Adam::new(&varmap, (0.9, 0.999)).unwrap();
        let target = Tensor::new(&[2f32, 0.0, 1.0], &Device::Cpu).unwrap();
        let loss = (&w - &target).unwrap().sqr().unwrap().sum_all().unwrap();
        adam.step(&loss.backward().unwrap(), 0.1).unwrap();
        let after = w.to_vec1::<f32>().unwrap();
        assert!(
            (after[0] - 1.1).abs() < 1e-5 && (after[1] - 0.9).abs() < 1e-5,
            "{after:?}"
        );
        // Zero gradient: no move (m = 0).
        assert!((after[2] - 1.0).abs() < 1e-6, "{after:?}");
    }

    /// The fused CPU update gives the same weights and moments as the tensor formulas
    /// (the path other devices take), over several steps.
    #[test]
    fn fused_step_matches_tensor_ops() {
        let mut varmap = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let w = vb
            .get_with_hints((2, 3), "w", candle_nn::Init::Const(0.5))
            .unwrap();
        let mut fused = Adam::new(&varmap, (0.5, 0.99)).unwrap();
        let mut reference = Adam::new(&varmap, (0.5, 0.99)).unwrap();
        reference.moments = reference
            .vars
            .iter()
            .map(|(_, v)| Moments::Device(v.zeros_like().unwrap(), v.zeros_like().unwrap()))
            .collect();
        let target = Tensor::new(&[[1f32, -2.0, 0.0], [3.0, 0.25, -1.0]], &Device::Cpu).unwrap();
        let start = w.to_vec2::<f32>().unwrap();
        let mut results = Vec::new();
        for adam in [&mut fused, &mut reference] {
            varmap
                .set_one("w", Tensor::new(start.clone(), &Device::Cpu).unwrap())
                .unwrap();
            for _ in 0..5 {
                let loss = (&w - &target).unwrap().sqr().unwrap().sum_all().unwrap();
                adam.step(&loss.backward().unwrap(), 0.01).unwrap();
            }
            let state = adam.state();
            results.push((
                w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                state["m.w"]
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
                state["v.w"]
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            ));
        }
        // f32 coefficients here, f64 scalars in the tensor ops: equal to rounding.
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * x.abs().max(1.0))
        };
        assert!(close(&results[0].0, &results[1].0), "{results:?}");
        assert!(close(&results[0].1, &results[1].1), "{results:?}");
        assert!(close(&results[0].2, &results[1].2), "{results:?}");
        assert!(!close(&results[0].0, &start.concat()), "the weights moved");
    }
}
