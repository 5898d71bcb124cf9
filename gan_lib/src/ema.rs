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

use candle_core::{DType, Device, Result, Tensor};
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

    /// Moves the average towards `live`'s variables.
    pub fn update(&mut self, live: &VarMap) -> Result<()> {
        let d = self.current_decay();
        let live = live.data().lock().expect("varmap lock");
        for (name, var) in self.vars.data().lock().expect("varmap lock").iter() {
            let averaged = ((var.as_tensor() * d)? + (live[name].as_tensor() * (1.0 - d))?)?;
            var.set(&averaged)?;
        }
        self.updates += 1;
        Ok(())
    }

    /// The averaged variables as named tensors.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        crate::checkpoint::named_vars(&self.vars, "")
    }
}
