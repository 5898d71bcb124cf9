//! The one typed configuration of a training run, read from TOML presets in `configs/`
//! (compiled into the crate, so they work from anywhere) or from any TOML file, and saved
//! beside each run's outputs so that `sample` can rebuild the same generator.

use std::path::Path;

use serde::{Deserialize, Serialize};

mod validate;

use crate::data::CLASSES;
use crate::nn::{self, Activation, InitScheme};

pub use validate::InvalidValue;

/// Everything a training run needs to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The preset's name; also the default run folder name.
    pub name: String,
    /// What the preset reproduces, in a sentence.
    #[serde(default)]
    pub description: String,
    /// Size of the noise vector z.
    pub latent_dim: usize,
    /// The two networks.
    pub model: ModelConfig,
    /// Passes over the training set.
    pub epochs: usize,
    /// Real images per step.
    pub batch_size: usize,
    /// Generator learning rate (Adam).
    pub lr_g: f64,
    /// Discriminator learning rate (Adam).
    pub lr_d: f64,
    /// Adam's β1 and β2.
    pub betas: (f64, f64),
    /// Discriminator steps per generator step.
    #[serde(default = "one")]
    pub d_steps: usize,
    /// Target for real images in D's loss (1.0, or e.g. 0.9 for one-sided label smoothing).
    #[serde(default = "one_f32")]
    pub real_label: f32,
    /// Target for fake images in D's loss (0.0, or e.g. 0.1).
    #[serde(default)]
    pub fake_label: f32,
    /// Standard deviation of Gaussian noise added to D's inputs, real and fake (0: none).
    #[serde(default)]
    pub instance_noise: f32,
    /// Random rotation of real images, ± degrees (0: none).
    #[serde(default)]
    pub rotation_degrees: f32,
    /// Write a sample grid every this many epochs (and after the last).
    #[serde(default = "one")]
    pub sample_every: usize,
    /// Seed of every random draw of the run.
    #[serde(default)]
    pub seed: u64,
    /// Train on the first N images only (quick runs).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The adversarial loss: `bce` (non-saturating, the default), `hinge` or `wgan-gp`.
    #[serde(default)]
    pub loss: Loss,
    /// Weight λ of WGAN-GP's gradient penalty (used with `loss = "wgan-gp"` only).
    #[serde(default = "ten")]
    pub gp_weight: f32,
    /// Decay of the exponential moving average of G's weights (0: none). Samples, the saved
    /// generator and the metrics use the average when it is on.
    #[serde(default)]
    pub ema_decay: f64,
    /// Over the last this many epochs both learning rates fall linearly, step by step, towards
    /// zero (0: constant rates); over the whole run when it has fewer epochs, so that a preset's
    /// decay holds under a shorter `--epochs`. Set `epochs` to what a time budget holds for the
    /// decay to run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lr_decay_epochs: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The adversarial loss a run trains with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Binary cross-entropy on D's logits; G minimises −log D(G(z)) (non-saturating).
    #[default]
    Bce,
    /// Hinge loss: D minimises relu(1 − D(x)) + relu(1 + D(G(z))), G minimises −D(G(z)).
    Hinge,
    /// Wasserstein loss with gradient penalty (Gulrajani et al. 2017): the critic minimises
    /// D(G(z)) − D(x) + λ (‖∇D(x̂)‖ − 1)² at points x̂ between real and fake; G minimises
    /// −D(G(z)).
    WganGp,
}

/// The architecture of both networks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// Fully connected networks.
    Mlp(MlpConfig),
    /// Convolutional networks.
    Dcgan(DcganConfig),
}

/// Fully connected generator and discriminator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Widths of the generator's hidden layers.
    pub g_hidden: Vec<usize>,
    /// BatchNorm after each generator hidden layer.
    #[serde(default)]
    pub g_batch_norm: bool,
    /// The generator's activation.
    pub g_activation: Activation,
    /// Widths of the discriminator's hidden layers.
    pub d_hidden: Vec<usize>,
    /// BatchNorm after each discriminator hidden layer.
    #[serde(default)]
    pub d_batch_norm: bool,
    /// The discriminator's activation.
    pub d_activation: Activation,
    /// Dropout probability after each discriminator hidden layer.
    #[serde(default)]
    pub d_dropout: f32,
    /// Spectral normalisation of every discriminator layer (Miyato et al. 2018).
    #[serde(default)]
    pub d_spectral_norm: bool,
    /// A conditional GAN: G draws the digit it is asked for (see [`ModelConfig::conditional`]).
    #[serde(default)]
    pub conditional: bool,
}

/// How the DCGAN generator turns noise into its first feature map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorStart {
    /// Noise reshaped to `(latent, 1, 1)`.
    Latent1x1,
    /// A dense layer (+ BatchNorm + activation) to `channels` maps of `side`x`side`.
    Dense {
        /// Feature maps.
        channels: usize,
        /// Their side.
        side: usize,
    },
}

/// One (transposed) convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvLayer {
    /// Output channels.
    pub channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    #[serde(default)]
    pub padding: usize,
    /// Extra output rows/columns (transposed convolutions only).
    #[serde(default)]
    pub output_padding: usize,
    /// BatchNorm after it.
    #[serde(default)]
    pub batch_norm: bool,
}

impl ConvLayer {
    /// Side of this layer's output, as a convolution, for a `side`x`side` input.
    pub fn conv_output(&self, side: usize) -> usize {
        nn::conv_output(side, self.kernel, self.stride, self.padding)
    }

    /// Side of this layer's output, as a transposed convolution, for a `side`x`side` input.
    pub fn conv_transpose_output(&self, side: usize) -> usize {
        nn::conv_transpose_output(
            side,
            self.kernel,
            self.stride,
            self.padding,
            self.output_padding,
        )
    }
}

/// Convolutional generator and discriminator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcganConfig {
    /// How noise becomes the first feature map.
    pub g_start: GeneratorStart,
    /// The generator's transposed convolutions; the last gives 1x28x28 and Tanh.
    pub g_layers: Vec<ConvLayer>,
    /// The generator's activation.
    pub g_activation: Activation,
    /// Biases in the generator's layers (TensorFlow's tutorial has none).
    #[serde(default = "yes")]
    pub g_bias: bool,
    /// The discriminator's convolutions.
    pub d_layers: Vec<ConvLayer>,
    /// The discriminator's activation.
    pub d_activation: Activation,
    /// Dropout after each discriminator convolution.
    #[serde(default)]
    pub d_dropout: f32,
    /// A linear layer to the logit after the convolutions (else the last convolution gives it).
    #[serde(default)]
    pub d_linear_head: bool,
    /// Spectral normalisation of every discriminator layer (Miyato et al. 2018).
    #[serde(default)]
    pub d_spectral_norm: bool,
    /// The minibatch standard deviation (Karras et al. 2018): the linear head also sees the
    /// batch's standard deviation of D's features, averaged over them, so that D can tell a
    /// batch of too-similar fakes from real digits. Needs `d_linear_head`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub d_minibatch_std: bool,
    /// Packing (Lin et al. 2018, PacGAN): D judges this many images at once, stacked as the
    /// channels of its input, so that a generator favouring some digits meets sets of images
    /// it cannot fake. 1: one image at a time. Unconditional GANs only; divides `batch_size`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub d_pack: usize,
    /// Weight init.
    #[serde(default = "normal_init")]
    pub init: InitScheme,
    /// A conditional GAN: G draws the digit it is asked for (see [`ModelConfig::conditional`]).
    /// Needs the linear head (`d_linear_head = true`), whose features D projects on the label.
    #[serde(default)]
    pub conditional: bool,
}

impl ModelConfig {
    /// Whether the pair is conditional (Mirza & Osindero 2014): G takes the digit's one-hot
    /// vector beside the noise, and D scores an image for a digit with a projection
    /// (Miyato & Koyama 2018): `D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩`, where `φ(x)` are the
    /// features entering D's last layer `ψ`.
    pub fn conditional(&self) -> bool {
        match self {
            ModelConfig::Mlp(m) => m.conditional,
            ModelConfig::Dcgan(m) => m.conditional,
        }
    }

    /// What G takes beside the noise: the digit's one-hot vector (10 values) when
    /// conditional, else nothing.
    pub fn label_inputs(&self) -> usize {
        if self.conditional() {
            CLASSES
        } else {
            0
        }
    }
}

fn one() -> usize {
    1
}
fn one_f32() -> f32 {
    1.0
}
fn ten() -> f32 {
    10.0
}
fn yes() -> bool {
    true
}
fn normal_init() -> InitScheme {
    InitScheme::Normal002
}

/// A bad configuration: which file (or preset) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not valid TOML, or not a config.
    #[error("{path}: not a valid config: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// Parsed, but a value makes no sense.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or preset, or setting).
        path: String,
        /// The dotted key of the value.
        key: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// No preset of that name.
    #[error("no preset named {name:?}; presets: {}", PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    UnknownPreset {
        /// The name asked for.
        name: String,
    },
}

/// The presets in `configs/`, by name. The first is the default.
pub const PRESETS: [(&str, &str); 16] = [
    ("cgan-fast", include_str!("../../../configs/cgan-fast.toml")),
    ("fast-mlp", include_str!("../../../configs/fast-mlp.toml")),
    ("quick-mlp", include_str!("../../../configs/quick-mlp.toml")),
    ("fc-gan-64", include_str!("../../../configs/fc-gan-64.toml")),
    (
        "dcgan-course",
        include_str!("../../../configs/dcgan-course.toml"),
    ),
    (
        "mlp-smoothing",
        include_str!("../../../configs/mlp-smoothing.toml"),
    ),
    ("dcgan-tf", include_str!("../../../configs/dcgan-tf.toml")),
    (
        "fc-gan-100",
        include_str!("../../../configs/fc-gan-100.toml"),
    ),
    (
        "mlp-hinge-sn",
        include_str!("../../../configs/mlp-hinge-sn.toml"),
    ),
    (
        "mlp-wgan-gp",
        include_str!("../../../configs/mlp-wgan-gp.toml"),
    ),
    (
        "dcgan-wgan-gp",
        include_str!("../../../configs/dcgan-wgan-gp.toml"),
    ),
    ("wide-mlp", include_str!("../../../configs/wide-mlp.toml")),
    ("cgan-mlp", include_str!("../../../configs/cgan-mlp.toml")),
    (
        "cgan-dcgan",
        include_str!("../../../configs/cgan-dcgan.toml"),
    ),
    (
        "cgan-dcgan-fast",
        include_str!("../../../configs/cgan-dcgan-fast.toml"),
    ),
    (
        "dcgan-fast",
        include_str!("../../../configs/dcgan-fast.toml"),
    ),
];

/// The preset `train` uses when given none.
pub const DEFAULT_PRESET: &str = PRESETS[0].0;

impl TrainConfig {
    /// The preset called `name`.
    pub fn preset(name: &str) -> Result<TrainConfig, ConfigError> {
        let (_, text) =
            PRESETS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| ConfigError::UnknownPreset {
                    name: name.to_owned(),
                })?;
        TrainConfig::from_toml(text, &format!("preset {name}"))
    }

    /// Reads and validates a TOML config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<TrainConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        TrainConfig::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates TOML; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<TrainConfig, ConfigError> {
        let config: TrainConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|e| e.in_config(origin))?;
        Ok(config)
    }

    /// A copy with one value changed: `key` is a dotted TOML path (`epochs`,
    /// `model.d_dropout`), `value` TOML text (`0.2`, `[256, 512]`, `"relu"`; a bare word is
    /// taken as a string). The result is validated.
    pub fn with(&self, key: &str, value: &str) -> Result<TrainConfig, ConfigError> {
        let origin = format!("setting {key}={value}");
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.clone(),
            key: key.to_owned(),
            message,
        };
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        let mut root = toml::Value::try_from(self).map_err(|e| invalid(e.to_string()))?;
        let mut table = root.as_table_mut().expect("a config is a table");
        let parts: Vec<&str> = key.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            table = table
                .get_mut(*part)
                .and_then(|v| v.as_table_mut())
                .ok_or_else(|| invalid(format!("the config has no table {part:?}")))?;
        }
        table.insert(parts[parts.len() - 1].to_owned(), parsed);
        // Unknown keys are caught here: every config table denies unknown fields.
        let text = toml::to_string(&root).map_err(|e| invalid(e.to_string()))?;
        TrainConfig::from_toml(&text, &origin)
    }

    /// What the learning rates are multiplied by once `progress` epochs are done (fractions
    /// count): 1 until the last [`TrainConfig::lr_decay_epochs`] epochs (at most all of them),
    /// then falling linearly to 0 at the end of the last epoch.
    pub fn learning_rate_factor(&self, progress: f64) -> f64 {
        let decay_epochs = self.lr_decay_epochs.min(self.epochs);
        if decay_epochs == 0 {
            return 1.0;
        }
        let remaining = self.epochs as f64 - progress;
        (remaining / decay_epochs as f64).clamp(0.0, 1.0)
    }

    /// Which weights a generator saved by this run draws with, in words.
    pub fn generator_weights(&self) -> String {
        if self.ema_decay > 0.0 {
            format!(
                "the moving average of G's weights (decay {})",
                self.ema_decay
            )
        } else {
            "G's weights".to_owned()
        }
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serialises")
    }
}
