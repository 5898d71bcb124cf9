//! What a GAN draws, judged by the digit classifier: predictions per image, the 5x5 batch
//! figure, per-image probability histograms, and the class distribution over many samples.
//!
//! Three parts: [`readers`] take digits from anywhere ([`DigitSource`]: our generator
//! checkpoints, IDX files, `.npy` arrays, folders of 28x28 PNGs, or a sample grid PNG written by
//! another tool, a PyTorch run's `images/epoch_020.png` say); [`stats`] judges them with the
//! classifier; [`figures`] draws what it found.

pub mod figures;
pub mod readers;
pub mod stats;

use std::path::{Path, PathBuf};

use crate::plot::PlotError;

pub use figures::{
    batch_figure, confusion_figure, distribution_figure, probability_figure, probability_svg,
};
pub use readers::{parse_npy, split_grid, DigitSource, Digits, GridDigits, MAX_DRAWN_DIGITS};
pub use stats::{
    predict, prediction_rows, predictions_csv, ClassDistribution, Prediction, PredictionRow,
};

/// Failures of the analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A digit source could not be read; the message names the file.
    #[error("{}: {message}", path.display())]
    Source {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Drawing failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

pub(crate) fn source_error(path: &Path, message: impl Into<String>) -> AnalysisError {
    let message = message.into();
    // Errors of the readers underneath already start with the path: say it once.
    let message = match message.strip_prefix(&format!("{}: ", path.display())) {
        Some(rest) => rest.to_owned(),
        None => message,
    };
    AnalysisError::Source {
        path: path.to_owned(),
        message,
    }
}
