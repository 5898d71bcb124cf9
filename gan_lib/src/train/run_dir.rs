//! The folder a run lives in: where each file goes, the checkpoint's training state, the
//! losses CSV, setting an earlier run aside, and the checks made before resuming.
//!
//! ```text
//! outputs/<run>/config.toml               the resolved config
//!               images/epoch_0001.png     fixed-noise samples
//!               losses.csv, losses.png    per-step losses and their curves
//!               checkpoint.safetensors    G, D, both Adams, epoch, step, RNG state
//!               generator.safetensors     final weights (config in the metadata)
//!               discriminator.safetensors
//!               training.gif              the grids of every epoch, animated
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{Opened, TrainError};
use crate::checkpoint::{self, CheckpointError, TensorFile, STATE_KEY};
use crate::config::TrainConfig;
use crate::plot::LossPoint;
use crate::rng::Rng;

/// A run's folder and the files in it.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The run folder.
    pub root: PathBuf,
}

/// State saved in a checkpoint besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SavedState {
    pub epoch: usize,
    pub step: u64,
    pub g_adam_step: u64,
    pub d_adam_step: u64,
    pub data_rng: Rng,
    pub noise_rng: Rng,
    #[serde(default)]
    pub ema_updates: u64,
}

impl RunDir {
    /// The run in folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }
    /// The resolved config.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// Sample grid of an epoch (1-based).
    pub fn samples(&self, epoch: usize) -> PathBuf {
        self.root
            .join("images")
            .join(format!("epoch_{epoch:04}.png"))
    }
    /// Per-step losses.
    pub fn losses_csv(&self) -> PathBuf {
        self.root.join("losses.csv")
    }
    /// Loss curves.
    pub fn losses_png(&self) -> PathBuf {
        self.root.join("losses.png")
    }
    /// The resumable checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    /// Final generator weights.
    pub fn generator(&self) -> PathBuf {
        self.root.join("generator.safetensors")
    }
    /// Final discriminator weights.
    pub fn discriminator(&self) -> PathBuf {
        self.root.join("discriminator.safetensors")
    }
    /// The sample grids of every epoch as an animated GIF.
    pub fn movie(&self) -> PathBuf {
        self.root.join("training.gif")
    }

    /// Creates the folder and writes `config` into it.
    pub(super) fn create(&self, config: &TrainConfig) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.root).map_err(|source| TrainError::Io {
            path: self.root.clone(),
            source,
        })?;
        self.write_config(config)
    }

    /// Writes the run's `config.toml` atomically.
    pub(super) fn write_config(&self, config: &TrainConfig) -> Result<(), TrainError> {
        write_file(&self.config(), config.to_toml().as_bytes())
    }

    /// Whether the folder exists and holds anything.
    pub(super) fn has_files(&self) -> bool {
        std::fs::read_dir(&self.root).is_ok_and(|mut entries| entries.next().is_some())
    }

    /// Moves the run to `<run_dir>.previous` (replacing the one there), for `reason`.
    pub(super) fn set_aside(&self, reason: String) -> Result<Opened, TrainError> {
        let mut name = self.root.file_name().unwrap_or_default().to_os_string();
        name.push(".previous");
        let kept = self.root.with_file_name(name);
        let io = |source| TrainError::Io {
            path: kept.clone(),
            source,
        };
        if kept.exists() {
            std::fs::remove_dir_all(&kept).map_err(io)?;
        }
        std::fs::rename(&self.root, &kept).map_err(io)?;
        Ok(Opened::Restarted { kept, reason })
    }

    /// Removes the temporary files of writes cut short by a crash; what they were replacing
    /// is whole.
    pub(super) fn remove_leftovers(&self) {
        crate::files::remove_leftovers(&self.root);
        crate::files::remove_leftovers(&self.root.join("images"));
    }

    /// Writes the checkpoint (`tensors`, the training `state` and the `config`), then the
    /// config file, so that the two differ only for the instant between.
    pub(super) fn write_checkpoint(
        &self,
        tensors: Vec<(String, Tensor)>,
        state: &SavedState,
        config: &TrainConfig,
    ) -> Result<(), TrainError> {
        let metadata = HashMap::from([
            (checkpoint::CONFIG_KEY.to_owned(), config.to_toml()),
            (
                STATE_KEY.to_owned(),
                serde_json::to_string(state).expect("state serialises"),
            ),
        ]);
        checkpoint::write_tensors(self.checkpoint(), tensors, metadata)?;
        self.write_config(config)
    }

    /// Refuses to resume when `config.toml` was edited to differ from the config the
    /// checkpoint was trained with (`epochs` aside): resuming would overwrite the edit silently.
    pub(super) fn check_config_file(&self, saved: &TrainConfig) -> Result<(), TrainError> {
        let path = self.config();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(TrainError::Io { path, source }),
        };
        let resume_error = |message: String| TrainError::Resume {
            path: self.root.clone(),
            message,
        };
        let edited = TrainConfig::from_toml(&text, &path.display().to_string())
            .map_err(|e| resume_error(e.to_string()))?;
        match config_changes(&edited, saved, "the checkpoint") {
            None => Ok(()),
            Some(changes) => Err(resume_error(format!(
                "config.toml differs from the config saved in checkpoint.safetensors ({changes}). A \
                 run resumes with the config its weights were trained with: undo the edit (or \
                 delete config.toml), or train a new run with the new settings"
            ))),
        }
    }

    /// Writes the per-step losses as CSV (`step,d_loss,g_loss`), atomically.
    pub(super) fn write_losses(&self, history: &[LossPoint]) -> Result<(), TrainError> {
        let mut text = String::from("step,d_loss,g_loss\n");
        for p in history {
            text.push_str(&format!("{},{},{}\n", p.step, p.d_loss, p.g_loss));
        }
        write_file(&self.losses_csv(), text.as_bytes())
    }

    /// Reads the losses written by an earlier run, up to `last_step`.
    pub(super) fn read_losses(&self, last_step: u64) -> Result<Vec<LossPoint>, TrainError> {
        let path = self.losses_csv();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(TrainError::Io { path, source }),
        };
        let parse = |line: &str| -> Option<LossPoint> {
            let mut fields = line.split(',');
            Some(LossPoint {
                step: fields.next()?.parse().ok()?,
                d_loss: fields.next()?.parse().ok()?,
                g_loss: fields.next()?.parse().ok()?,
            })
        };
        Ok(text
            .lines()
            .skip(1)
            .filter_map(parse)
            .filter(|p| p.step <= last_step)
            .collect())
    }
}

/// The training state a checkpoint holds beside the weights (epoch, step, RNGs, Adam steps).
pub(super) fn saved_state(file: &TensorFile) -> Result<SavedState, CheckpointError> {
    let text = file
        .metadata
        .get(STATE_KEY)
        .ok_or_else(|| CheckpointError::Format {
            path: file.path.clone(),
            message: "no training state: not a checkpoint".into(),
        })?;
    serde_json::from_str(text).map_err(|e| CheckpointError::Format {
        path: file.path.clone(),
        message: format!("training state: {e}"),
    })
}

/// How `config` differs from `other` apart from `epochs` (up to three settings, as
/// "`a` where {other_name} has `b`"), or `None` when they agree.
pub(super) fn config_changes(
    config: &TrainConfig,
    other: &TrainConfig,
    other_name: &str,
) -> Option<String> {
    let mut config = config.clone();
    config.epochs = other.epochs;
    let (config, other) = (config.to_toml(), other.to_toml());
    if config == other {
        return None;
    }
    let changes: Vec<String> = config
        .lines()
        .zip(other.lines())
        .filter(|(a, b)| a != b)
        .take(3)
        .map(|(a, b)| format!("`{}` where {other_name} has `{}`", a.trim(), b.trim()))
        .collect();
    Some(if changes.is_empty() {
        "in its layout".to_owned()
    } else {
        changes.join("; ")
    })
}

/// Writes a file of the run atomically (see [`checkpoint::write_atomic`]).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    Ok(checkpoint::write_atomic(path, bytes)?)
}
