//! What training reports as it goes. The library prints nothing: the command-line tool shows
//! these as progress bars and lines, a notebook as it likes.

use std::path::PathBuf;
use std::time::Duration;

use super::StepStats;

/// Something that happened during [`crate::train::Trainer::train_with`] or
/// [`crate::train::Trainer::train_epoch_with`].
#[derive(Debug)]
pub enum Event<'a> {
    /// A step finished.
    Step {
        /// The epoch it belongs to (1-based) and the run's epochs.
        epoch: usize,
        /// The run's epochs.
        epochs: usize,
        /// Steps done in this epoch, of `steps`.
        done: usize,
        /// Steps in the epoch.
        steps: usize,
        /// The mean statistics of the epoch's steps so far.
        mean: StepStats,
    },
    /// An epoch finished; its samples, losses and checkpoint are written.
    Epoch {
        /// What it reports.
        report: &'a super::EpochReport,
        /// The run's epochs.
        epochs: usize,
    },
    /// The time budget stopped training before the next epoch.
    BudgetReached {
        /// The budget.
        budget: Duration,
        /// Epochs finished, of `epochs`.
        epoch: usize,
        /// The run's epochs.
        epochs: usize,
        /// Training time so far.
        trained: Duration,
        /// How long the last epoch took (the next would take about as long).
        last_epoch: Duration,
    },
    /// The training movie was written here.
    Movie(PathBuf),
    /// No training movie could be made (the run is complete without it).
    NoMovie(String),
}
