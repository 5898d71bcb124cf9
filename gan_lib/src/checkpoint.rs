//! Saving and loading weights and training checkpoints as safetensors files.
//!
//! Every file is written atomically (a temporary file, synced, then renamed over the old
//! one), so a crash or a failed run never leaves a half-written checkpoint where a good one
//! was. Weights files carry the run's config in their metadata, so a generator file alone
//! is enough to rebuild the network. Loading checks every tensor's name and shape and says
//! which one is wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::config::TrainConfig;

/// Metadata key holding the run's config as TOML.
pub const CONFIG_KEY: &str = "mnist_gan.config";
/// Metadata key holding the training state (epoch, steps, RNG) as JSON.
pub const STATE_KEY: &str = "mnist_gan.state";

/// What is wrong with a weights or checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not a safetensors file, or unreadable metadata.
    #[error("{}: not a valid weights file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor the model needs is absent.
    #[error("{}: tensor {tensor} is missing; is this a checkpoint of another model?", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor has the wrong shape.
    #[error("{}: tensor {tensor} has shape {found:?}, the model expects {expected:?}; the checkpoint was made for another architecture", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// The file holds a tensor the model does not have.
    #[error("{}: tensor {tensor} does not belong to this model; the checkpoint was made for another architecture", path.display())]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
}

/// A safetensors file read into memory: its tensors and its metadata.
pub struct TensorFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// Its string metadata.
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads `path` onto `device`.
    pub fn read(path: impl AsRef<Path>, device: &Device) -> Result<TensorFile, CheckpointError> {
        let path = path.as_ref().to_owned();
        let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Io {
            path: path.clone(),
            source,
        })?;
        TensorFile::parse(&bytes, path, device)
    }

    /// Parses the bytes of a safetensors file; `path` names it in errors.
    pub fn parse(
        bytes: &[u8],
        path: PathBuf,
        device: &Device,
    ) -> Result<TensorFile, CheckpointError> {
        let format = |message: String| CheckpointError::Format {
            path: path.clone(),
            message,
        };
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let tensors = candle_core::safetensors::load_buffer(bytes, device)
            .map_err(|e| format(e.to_string()))?;
        Ok(TensorFile {
            path,
            tensors,
            metadata,
        })
    }

    /// The config stored with the weights.
    pub fn config(&self) -> Result<TrainConfig, CheckpointError> {
        let text = self
            .metadata
            .get(CONFIG_KEY)
            .ok_or_else(|| CheckpointError::Format {
                path: self.path.clone(),
                message: format!("no {CONFIG_KEY} metadata: not written by mnist-gan"),
            })?;
        TrainConfig::from_toml(text, &self.path.display().to_string()).map_err(|e| {
            CheckpointError::Format {
                path: self.path.clone(),
                message: e.to_string(),
            }
        })
    }

    /// Copies the tensors named `prefix<var>` into every variable of `varmap`, checking that
    /// each is present with the right shape and that no tensor under `prefix` is left over.
    pub fn load_into(&self, varmap: &VarMap, prefix: &str) -> Result<(), CheckpointError> {
        let data = varmap.data().lock().expect("varmap lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in &names {
            let tensor = format!("{prefix}{name}");
            let var = &data[*name];
            let saved = self
                .tensors
                .get(&tensor)
                .ok_or_else(|| CheckpointError::Missing {
                    path: self.path.clone(),
                    tensor: tensor.clone(),
                })?;
            if saved.dims() != var.dims() {
                return Err(CheckpointError::Shape {
                    path: self.path.clone(),
                    tensor,
                    expected: var.dims().to_vec(),
                    found: saved.dims().to_vec(),
                });
            }
            // NaN or infinite weights draw nothing (every pixel NaN, then black): a diverged
            // run's or a damaged file's, refused here with its name rather than loaded.
            let finite = saved
                .to_dtype(DType::F32)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .map(|values| values.iter().all(|v| v.is_finite()));
            if !finite.unwrap_or(false) {
                return Err(CheckpointError::Format {
                    path: self.path.clone(),
                    message: format!("tensor {tensor} holds NaN or infinite values"),
                });
            }
            let saved = saved
                .to_dtype(var.dtype())
                .and_then(|t| t.to_device(var.device()));
            saved
                .and_then(|t| var.set(&t))
                .map_err(|e| CheckpointError::Format {
                    path: self.path.clone(),
                    message: format!("tensor {tensor}: {e}"),
                })?;
        }
        let mut extra: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| k.starts_with(prefix) && !data.contains_key(&k[prefix.len()..]))
            .collect();
        extra.sort();
        match extra.first() {
            Some(tensor) => Err(CheckpointError::Unexpected {
                path: self.path.clone(),
                tensor: (*tensor).clone(),
            }),
            None => Ok(()),
        }
    }

    /// The tensors whose names start with `prefix`, with the prefix removed.
    pub fn with_prefix(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .map(|rest| (rest.to_owned(), v.clone()))
            })
            .collect()
    }
}

/// The variables of `varmap`, named `prefix<var>`.
pub fn named_vars(varmap: &VarMap, prefix: &str) -> Vec<(String, Tensor)> {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .map(|(name, var)| (format!("{prefix}{name}"), var.as_tensor().clone()))
        .collect()
}

/// Writes tensors and metadata as a safetensors file, atomically.
pub fn write_tensors(
    path: impl AsRef<Path>,
    mut tensors: Vec<(String, Tensor)>,
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| {
            t.to_device(&Device::Cpu)
                .and_then(|t| t.contiguous())
                .map(|t| (n, t))
        })
        .collect::<candle_core::Result<_>>()
        .map_err(|e| CheckpointError::Format {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let bytes =
        safetensors::serialize(tensors, Some(metadata)).map_err(|e| CheckpointError::Format {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}

/// Saves one network's weights with the run's config in the metadata.
pub fn save_weights(
    path: impl AsRef<Path>,
    varmap: &VarMap,
    config: &TrainConfig,
) -> Result<(), CheckpointError> {
    write_tensors(
        path,
        named_vars(varmap, ""),
        HashMap::from([(CONFIG_KEY.to_owned(), config.to_toml())]),
    )
}

/// Writes `bytes` to `path` so that it holds either its old or its new content, also after a
/// crash: written to a temporary file beside it, synced, renamed over it, and the folder synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    crate::files::write_atomic(path, bytes).map_err(|source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    })
}
