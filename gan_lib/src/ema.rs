//! An exponential moving average of the generator's weights (Karras et al. 2018, Yazıcı et
//! al. 2019): after each generator update, `average ← d·average + (1 − d)·weights`. The
//! average draws smoother, steadier digits than the weights themselves, whose last steps
//! chase the discriminator.
//!
//! BatchNorm's running statistics are averaged with the weights, as PyTorch's
//! `AveragedModel(use_buffers=True)` and timm's `ModelEmaV2` do, so that the averaged
//! generator normalises with statistics of the same age as its weights. The decay warms up as
//! in TensorFlow's `ExponentialMovingAverage` with `num_updates`: `d = min(decay, (1 + t) /
//! (10 + t))` at update `t`, so that the first updates are not dominated by the random init.

use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Result};
use candle_nn::{VarBuilder, VarMap};

use crate::config::TrainConfig;
use crate::models::Generator;

/// The moving average of a generator: its own variables and a generator built on them.
pub struct Ema {
    /// The target decay.
    pub decay: f64,
    /// Updates so far (for the warm-up).
    pub updates: u64,
    /// The averaged variables, named as the generator's.
    pub vars: VarMap,
    /// A generator that draws with the averaged variables.
    pub generator: Generator,
}

impl Ema {
    /// An average that starts as a copy of `live` (the generator's variables).
    pub fn new(config: &TrainConfig, live: &VarMap, device: &Device) -> Result<Ema> {
        let vars = VarMap::new();
        let generator = Generator::new(
            &config.model,
            config.latent_dim,
            VarBuilder::from_varmap(&vars, DType::F32, device),
        )?;
        let ema = Ema {
            decay: config.ema_decay,
            updates: 0,
            vars,
            generator,
        };
        ema.copy_from(live)?;
        Ok(ema)
    }

    /// Sets every averaged variable to `live`'s.
    pub fn copy_from(&self, live: &VarMap) -> Result<()> {
        let live = live.data().lock().expect("varmap lock");
        for (name, var) in self.vars.data().lock().expect("varmap lock").iter() {
            var.set(live[name].as_tensor())?;
        }
        Ok(())
    }

    /// The decay of the next update, after its warm-up.
    pub fn current_decay(&self) -> f64 {
        let t = self.updates as f64;
        self.decay.min((1.0 + t) / (10.0 + t))
    }

    /// Moves the average towards `live`'s variables: in place on the CPU (one pass over
    /// memory; four tensor ops per variable cost a tenth of a small MLP's step), with tensor
    /// ops elsewhere.
    pub fn update(&mut self, live: &VarMap) -> Result<()> {
        let d = self.current_decay();
        let live = live.data().lock().expect("varmap lock");
        for (name, var) in self.vars.data().lock().expect("varmap lock").iter() {
            let weights = live[name].as_tensor();
            if var.device().is_cpu() && var.dtype() == DType::F32 {
                var.as_tensor()
                    .inplace_op2(&weights.contiguous()?, &TowardsInPlace { decay: d as f32 })?;
            } else {
                var.set(&((var.as_tensor() * d)? + (weights * (1.0 - d))?)?)?;
            }
        }
        self.updates += 1;
        Ok(())
    }
}

/// `average ← decay·average + (1 − decay)·weights`, in place on the average.
struct TowardsInPlace {
    decay: f32,
}

impl InplaceOp2 for TowardsInPlace {
    fn name(&self) -> &'static str {
        "ema-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (average, weights) = crate::ops::operands_mut(s1, l1, s2, l2, self.name())?;
        let d = self.decay;
        for (a, &w) in average.iter_mut().zip(weights) {
            *a = d * *a + (1.0 - d) * w;
        }
        Ok(())
    }
}
