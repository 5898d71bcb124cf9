//! What can go wrong in a training run, each failure with what is still on disk.

use std::path::PathBuf;

use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;
use crate::plot;

/// Failures of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The config is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A picture could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// A file of the run could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A loss became NaN or infinite.
    #[error("training diverged: {what} is {value} at epoch {epoch}, step {step}; the update it would have made was not applied; {}. {}", on_disk(*last_good), ROLLBACK_HINT)]
    NonFinite {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: f32,
        /// The epoch (1-based).
        epoch: usize,
        /// The global step.
        step: u64,
        /// Last epoch saved.
        last_good: usize,
    },
    /// `--resume` found a run whose config differs.
    #[error("{}: cannot resume: {message}", path.display())]
    Resume {
        /// The run folder.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

const ROLLBACK_HINT: &str = "To go back to it with smaller learning rates: \
    `mnist-gan train --resume RUN --lr-scale 0.5`, or `trainer.rollback(0.5)` in code";

/// What a run has on disk after a failure in the epoch after `last_good`.
fn on_disk(last_good: usize) -> String {
    match last_good {
        0 => "no checkpoint has been written yet (the first epoch did not finish): the run \
              starts again from its beginning"
            .into(),
        n => format!("checkpoint.safetensors holds the end of epoch {n}, intact"),
    }
}
