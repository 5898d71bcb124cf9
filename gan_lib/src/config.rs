//! The one typed configuration of a training run, read from TOML presets in `configs/`
//! (compiled into the crate, so they work from anywhere) or from any TOML file, and saved
//! beside each run's outputs so that `sample` can rebuild the same generator.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{CLASSES, IMAGE_PIXELS, IMAGE_SIDE};

use crate::nn::{self, Activation, InitScheme};

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
        /// The file.
        path: String,
        /// What is wrong.
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
    ("cgan-fast", include_str!("../../configs/cgan-fast.toml")),
    ("fast-mlp", include_str!("../../configs/fast-mlp.toml")),
    ("quick-mlp", include_str!("../../configs/quick-mlp.toml")),
    ("fc-gan-64", include_str!("../../configs/fc-gan-64.toml")),
    (
        "dcgan-course",
        include_str!("../../configs/dcgan-course.toml"),
    ),
    (
        "mlp-smoothing",
        include_str!("../../configs/mlp-smoothing.toml"),
    ),
    ("dcgan-tf", include_str!("../../configs/dcgan-tf.toml")),
    ("fc-gan-100", include_str!("../../configs/fc-gan-100.toml")),
    (
        "mlp-hinge-sn",
        include_str!("../../configs/mlp-hinge-sn.toml"),
    ),
    (
        "mlp-wgan-gp",
        include_str!("../../configs/mlp-wgan-gp.toml"),
    ),
    (
        "dcgan-wgan-gp",
        include_str!("../../configs/dcgan-wgan-gp.toml"),
    ),
    ("wide-mlp", include_str!("../../configs/wide-mlp.toml")),
    ("cgan-mlp", include_str!("../../configs/cgan-mlp.toml")),
    ("cgan-dcgan", include_str!("../../configs/cgan-dcgan.toml")),
    (
        "cgan-dcgan-fast",
        include_str!("../../configs/cgan-dcgan-fast.toml"),
    ),
    ("dcgan-fast", include_str!("../../configs/dcgan-fast.toml")),
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
        config.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// A copy with one value changed: `key` is a dotted TOML path (`epochs`,
    /// `model.d_dropout`), `value` TOML text (`0.2`, `[256, 512]`, `"relu"`; a bare word is
    /// taken as a string). The result is validated.
    pub fn with(&self, key: &str, value: &str) -> Result<TrainConfig, ConfigError> {
        let origin = format!("setting {key}={value}");
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.clone(),
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

    /// Checks every value for sense; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("latent_dim", self.latent_dim),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("d_steps", self.d_steps),
            ("sample_every", self.sample_every),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        for (key, value) in [
            ("latent_dim", self.latent_dim),
            ("batch_size", self.batch_size),
        ] {
            if value > MAX_SIZE {
                return Err(format!("{key} = {value} is too large (at most {MAX_SIZE})"));
            }
        }
        if self.batch_size < 2 {
            return Err("batch_size must be at least 2 (BatchNorm needs two images)".into());
        }
        for (key, lr) in [("lr_g", self.lr_g), ("lr_d", self.lr_d)] {
            if !(lr.is_finite() && lr > 0.0 && lr < 1.0) {
                return Err(format!("{key} = {lr} is not a learning rate in (0, 1)"));
            }
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return Err(format!("betas = ({b1}, {b2}) must both lie in [0, 1)"));
        }
        for (key, label) in [
            ("real_label", self.real_label),
            ("fake_label", self.fake_label),
        ] {
            if !(0.0..=1.0).contains(&label) {
                return Err(format!("{key} = {label} must lie in [0, 1]"));
            }
        }
        if !(self.instance_noise.is_finite() && self.instance_noise >= 0.0) {
            return Err(format!(
                "instance_noise = {} must be a non-negative number",
                self.instance_noise
            ));
        }
        if !(0.0..=180.0).contains(&self.rotation_degrees) {
            return Err(format!(
                "rotation_degrees = {} must lie in [0, 180]",
                self.rotation_degrees
            ));
        }
        if self.limit == Some(0) {
            return Err("limit must be at least 1 image".into());
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(format!(
                "ema_decay = {} must lie in [0, 1) (0 turns the average off)",
                self.ema_decay
            ));
        }
        if !(self.gp_weight.is_finite() && self.gp_weight >= 0.0) {
            return Err(format!(
                "gp_weight = {} must be a non-negative number",
                self.gp_weight
            ));
        }
        if self.loss == Loss::WganGp {
            match &self.model {
                ModelConfig::Mlp(m) if m.d_batch_norm || m.d_dropout > 0.0 => {
                    return Err("loss = \"wgan-gp\" needs a discriminator without BatchNorm or dropout (model.d_batch_norm = false, model.d_dropout = 0): the penalty is taken per image".into());
                }
                ModelConfig::Dcgan(d)
                    if d.d_dropout > 0.0 || d.d_layers.iter().any(|l| l.batch_norm) =>
                {
                    return Err("loss = \"wgan-gp\" needs a discriminator without BatchNorm or dropout (batch_norm = false in every model.d_layers entry, model.d_dropout = 0): the penalty is taken per image".into());
                }
                _ => {}
            }
        }
        match &self.model {
            ModelConfig::Mlp(m) => {
                check_dropout("model.d_dropout", m.d_dropout)?;
                check_activation(m.g_activation)?;
                check_activation(m.d_activation)?;
                let widths = m.g_hidden.iter().chain(&m.d_hidden);
                if widths.clone().any(|&w| w == 0 || w > MAX_SIZE) {
                    return Err(format!(
                        "hidden layer widths must lie between 1 and {MAX_SIZE}"
                    ));
                }
                let weights = |widths: Vec<usize>| {
                    widths
                        .windows(2)
                        .map(|w| (w[0] as u64 + 1) * w[1] as u64)
                        .fold(0u64, u64::saturating_add)
                };
                let g_in = self.latent_dim + self.model.label_inputs();
                let g = [&[g_in][..], &m.g_hidden, &[IMAGE_PIXELS]].concat();
                let d = [&[IMAGE_PIXELS][..], &m.d_hidden, &[1]].concat();
                check_weights("model.g_hidden", "generator", weights(g))?;
                check_weights("model.d_hidden", "discriminator", weights(d))?;
            }
            ModelConfig::Dcgan(m) => {
                check_dropout("model.d_dropout", m.d_dropout)?;
                check_activation(m.g_activation)?;
                check_activation(m.d_activation)?;
                if m.g_layers.is_empty() || m.d_layers.is_empty() {
                    return Err(
                        "model.g_layers and model.d_layers need at least one layer each".into(),
                    );
                }
                if let GeneratorStart::Dense { channels: 0, .. }
                | GeneratorStart::Dense { side: 0, .. } = m.g_start
                {
                    return Err("model.g_start needs channels and side of at least 1".into());
                }
                for l in m.g_layers.iter().chain(&m.d_layers) {
                    if l.channels == 0 || l.kernel == 0 || l.stride == 0 {
                        return Err(format!(
                            "layer {l:?}: channels, kernel and stride must be at least 1"
                        ));
                    }
                }
                if m.conditional && !m.d_linear_head {
                    return Err("model.conditional = true needs model.d_linear_head = true: the discriminator projects the label on the features entering its linear head".into());
                }
                check_geometry(m, self.latent_dim + self.model.label_inputs())?;
                let conv = |layers: &[ConvLayer], mut channels: u64| {
                    let mut total = 0u64;
                    for l in layers {
                        let kernel = (l.kernel * l.kernel) as u64;
                        total = total.saturating_add(channels * l.channels as u64 * kernel);
                        channels = l.channels as u64;
                    }
                    total
                };
                let g_in = match m.g_start {
                    GeneratorStart::Latent1x1 => {
                        (self.latent_dim + self.model.label_inputs()) as u64
                    }
                    GeneratorStart::Dense { channels, side } => {
                        let inputs = (self.latent_dim + self.model.label_inputs()) as u64;
                        let dense = inputs * (channels * side * side) as u64;
                        check_weights("model.g_start", "generator's first layer", dense)?;
                        channels as u64
                    }
                };
                check_weights("model.g_layers", "generator", conv(&m.g_layers, g_in))?;
                check_weights("model.d_layers", "discriminator", conv(&m.d_layers, 1))?;
            }
        }
        Ok(())
    }
}

/// Larger than any layer of a GAN for 28x28 digits: sizes past it are typing errors, and
/// their products could overflow.
const MAX_SIZE: usize = 1 << 16;

/// Follows the feature maps through every layer of a DCGAN pair and says, naming the layer,
/// where a kernel does not fit its input or where the sizes do not end as they must (G at
/// 1x28x28, D at one logit).
fn check_geometry(m: &DcganConfig, latent_dim: usize) -> Result<(), String> {
    let (mut channels, mut side) = match m.g_start {
        GeneratorStart::Latent1x1 => (latent_dim, 1),
        GeneratorStart::Dense { channels, side } => (channels, side),
    };
    if channels > MAX_SIZE || side > IMAGE_SIDE {
        return Err(format!(
            "model.g_start: {channels} maps of {side}x{side} is too large (at most {MAX_SIZE} maps, {IMAGE_SIDE}x{IMAGE_SIDE})"
        ));
    }
    for (i, l) in m.g_layers.iter().enumerate() {
        let key = format!("model.g_layers[{i}]");
        check_sizes(&key, l)?;
        if l.output_padding >= l.stride {
            return Err(format!(
                "{key}: output_padding {} must be smaller than the stride {}",
                l.output_padding, l.stride
            ));
        }
        let full = (side - 1) * l.stride + l.kernel + l.output_padding;
        if full <= 2 * l.padding {
            return Err(format!(
                "{key}: padding {} leaves nothing of a {side}x{side} input",
                l.padding
            ));
        }
        (channels, side) = (l.channels, full - 2 * l.padding);
        if side > 4 * IMAGE_SIDE {
            return Err(format!("{key}: gives {side}x{side} maps, far past 28x28"));
        }
    }
    if (channels, side) != (1, IMAGE_SIDE) {
        return Err(format!(
            "model.g_layers end in {channels} channels of {side}x{side}; they must end in 1 channel of 28x28"
        ));
    }
    let (mut channels, mut side) = (1, IMAGE_SIDE);
    for (i, l) in m.d_layers.iter().enumerate() {
        let key = format!("model.d_layers[{i}]");
        check_sizes(&key, l)?;
        if l.kernel > side + 2 * l.padding {
            return Err(format!(
                "{key}: a kernel of {} does not fit its {side}x{side} input with padding {}",
                l.kernel, l.padding
            ));
        }
        (channels, side) = (l.channels, l.conv_output(side));
    }
    if !m.d_linear_head && (channels, side) != (1, 1) {
        return Err(format!(
            "model.d_layers end in {channels} channels of {side}x{side}: without a linear head (model.d_linear_head = true) the last must give 1 channel of 1x1"
        ));
    }
    Ok(())
}

/// Far more weights than any network for 28x28 digits needs (the largest preset's, dcgan-tf's
/// generator, has 2.3 million); a config past it is a typing error that would take gigabytes.
const MAX_WEIGHTS: u64 = 50_000_000;

fn check_weights(key: &str, network: &str, weights: u64) -> Result<(), String> {
    if weights > MAX_WEIGHTS {
        return Err(format!(
            "{key}: the {network} would have {weights} weights, more than the {MAX_WEIGHTS} allowed"
        ));
    }
    Ok(())
}

fn check_sizes(key: &str, l: &ConvLayer) -> Result<(), String> {
    if l.channels > MAX_SIZE
        || l.kernel > IMAGE_SIDE
        || l.stride > IMAGE_SIDE
        || l.padding > IMAGE_SIDE
    {
        return Err(format!(
            "{key}: channels at most {MAX_SIZE}, kernel, stride and padding at most {IMAGE_SIDE}"
        ));
    }
    Ok(())
}

fn check_dropout(key: &str, p: f32) -> Result<(), String> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{key} = {p} must lie in [0, 1)"))
    }
}

fn check_activation(a: Activation) -> Result<(), String> {
    match a {
        Activation::LeakyRelu(slope) if !(0.0..1.0).contains(&slope) => {
            Err(format!("leaky-relu slope {slope} must lie in [0, 1)"))
        }
        _ => Ok(()),
    }
}
