//! The two networks of a GAN with their variables, built and initialised from a config.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::checkpoint::{CheckpointError, TensorFile};
use crate::config::{ModelConfig, TrainConfig};
use crate::models::{generator_prefix, Discriminator, Generator};
use crate::nn::{init_weights, InitScheme};
use crate::rng::{self, Rng};

/// A generator and a discriminator, each with its own variables.
pub struct Gan {
    /// The run's config.
    pub config: TrainConfig,
    /// The generator.
    pub generator: Generator,
    /// The discriminator.
    pub discriminator: Discriminator,
    /// The generator's variables (G's loss also reaches D's, so they are kept apart).
    pub g_vars: VarMap,
    /// The discriminator's variables.
    pub d_vars: VarMap,
    /// Where the tensors live.
    pub device: Device,
}

impl Gan {
    /// Builds both networks and draws their weights from `rng`.
    pub fn new(config: &TrainConfig, device: &Device, rng: &mut Rng) -> candle_core::Result<Gan> {
        let (g_vars, d_vars) = (VarMap::new(), VarMap::new());
        let generator = Generator::new(
            &config.model,
            config.latent_dim,
            VarBuilder::from_varmap(&g_vars, DType::F32, device),
        )?;
        let discriminator = Discriminator::new(
            &config.model,
            VarBuilder::from_varmap(&d_vars, DType::F32, device),
        )?;
        let scheme = match &config.model {
            ModelConfig::Dcgan(c) => c.init,
            ModelConfig::Mlp(_) => InitScheme::Default,
        };
        init_weights(&g_vars, scheme, rng)?;
        init_weights(&d_vars, scheme, rng)?;
        Ok(Gan {
            config: config.clone(),
            generator,
            discriminator,
            g_vars,
            d_vars,
            device: device.clone(),
        })
    }

    /// Loads the generator's weights from `file` (a `generator.safetensors`, or a checkpoint,
    /// whose moving average it takes when the run keeps one) into this GAN's generator, after
    /// checking that the file holds the same kind of generator: a conditional generator's
    /// weights never load into an unconditional one, nor the reverse.
    pub fn load_generator_weights(&self, file: &TensorFile) -> Result<(), CheckpointError> {
        let saved = file.config()?;
        let message = match (saved.model.conditional(), self.config.model.conditional()) {
            (true, false) => Some("holds a conditional generator (model.conditional = true), but this model is unconditional"),
            (false, true) => Some("holds an unconditional generator, but this model is conditional (model.conditional = true)"),
            _ => None,
        };
        if let Some(message) = message {
            return Err(CheckpointError::Format {
                path: file.path.clone(),
                message: message.into(),
            });
        }
        file.load_into(&self.g_vars, generator_prefix(file, &saved))
    }

    /// `n` noise vectors from `rng`.
    pub fn noise(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        rng::randn(rng, (n, self.config.latent_dim), 0.0, 1.0, &self.device)
    }
}
