//! Loading a trained generator from the file training wrote: the architecture comes from the
//! config stored in the file, so the file alone is enough to draw digits.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use super::Generator;
use crate::checkpoint::{CheckpointError, TensorFile, STATE_KEY};
use crate::config::TrainConfig;

impl Generator {
    /// Loads a generator saved by training (`generator.safetensors`, or a run's
    /// `checkpoint.safetensors`, whose moving average it takes when the run keeps one), with
    /// the config it was trained with.
    pub fn load(
        path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(Generator, TrainConfig), CheckpointError> {
        Generator::from_file(&TensorFile::read(path, device)?, device)
    }

    /// [`Generator::load`] from a file already read.
    pub fn from_file(
        file: &TensorFile,
        device: &Device,
    ) -> Result<(Generator, TrainConfig), CheckpointError> {
        let config = file.config()?;
        let vars = VarMap::new();
        let generator = Generator::new(
            &config.model,
            config.latent_dim,
            VarBuilder::from_varmap(&vars, DType::F32, device),
        )
        .map_err(|e| CheckpointError::Format {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        file.load_into(&vars, generator_prefix(file, &config))?;
        Ok((generator, config))
    }
}

/// The generator's tensors in `file`: a checkpoint holds G, D and the moving average (drawn
/// with when the run keeps one); a weights file holds one network under no prefix.
pub(crate) fn generator_prefix(file: &TensorFile, config: &TrainConfig) -> &'static str {
    match (
        file.metadata.contains_key(STATE_KEY),
        config.ema_decay > 0.0,
    ) {
        (true, true) => "g_ema.",
        (true, false) => "g.",
        (false, _) => "",
    }
}
