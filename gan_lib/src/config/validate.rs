//! The one validation of a config: every value checked for sense, each failure a typed
//! [`InvalidValue`] naming its key.

use super::{ConvLayer, DcganConfig, GeneratorStart, Loss, MlpConfig, ModelConfig, TrainConfig};
use crate::data::{IMAGE_PIXELS, IMAGE_SIDE};
use crate::nn::Activation;

/// A config value that makes no sense: its key (`lr_g`, `model.d_layers[1]`) and what is
/// wrong. Its message names the key too, as a person reads it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    /// The dotted TOML key of the value.
    pub key: String,
    /// What is wrong, in a sentence that names the key.
    pub message: String,
}

impl InvalidValue {
    /// The [`super::ConfigError`] of this value in the config read from `origin` (a file, a
    /// preset, a run).
    pub fn in_config(self, origin: impl Into<String>) -> super::ConfigError {
        super::ConfigError::Invalid {
            path: origin.into(),
            key: self.key,
            message: self.message,
        }
    }
}

type Checked = Result<(), InvalidValue>;

fn invalid(key: &str, message: impl Into<String>) -> Checked {
    Err(InvalidValue {
        key: key.to_owned(),
        message: message.into(),
    })
}

impl TrainConfig {
    /// Checks every value for sense; the error names the offending key.
    pub fn validate(&self) -> Checked {
        self.check_sizes()?;
        self.check_optimisation()?;
        self.check_loss_fits_the_model()?;
        self.check_batch_views()?;
        match &self.model {
            ModelConfig::Mlp(m) => check_mlp(m, self.latent_dim + self.model.label_inputs()),
            ModelConfig::Dcgan(m) => check_dcgan(m, self.latent_dim + self.model.label_inputs()),
        }
    }

    /// Counts and sizes: at least 1, at most [`MAX_SIZE`].
    fn check_sizes(&self) -> Checked {
        let positive = [
            ("latent_dim", self.latent_dim),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("d_steps", self.d_steps),
            ("sample_every", self.sample_every),
        ];
        for (key, value) in positive {
            if value == 0 {
                return invalid(key, format!("{key} must be at least 1"));
            }
        }
        for (key, value) in [
            ("latent_dim", self.latent_dim),
            ("batch_size", self.batch_size),
        ] {
            if value > MAX_SIZE {
                return invalid(
                    key,
                    format!("{key} = {value} is too large (at most {MAX_SIZE})"),
                );
            }
        }
        if self.batch_size < 2 {
            return invalid(
                "batch_size",
                "batch_size must be at least 2 (BatchNorm needs two images)",
            );
        }
        if self.limit == Some(0) {
            return invalid("limit", "limit must be at least 1 image");
        }
        Ok(())
    }

    /// Learning rates, Adam's betas, label targets, noise, augmentation, EMA, penalty.
    fn check_optimisation(&self) -> Checked {
        for (key, lr) in [("lr_g", self.lr_g), ("lr_d", self.lr_d)] {
            if !(lr.is_finite() && lr > 0.0 && lr < 1.0) {
                return invalid(
                    key,
                    format!("{key} = {lr} is not a learning rate in (0, 1)"),
                );
            }
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return invalid(
                "betas",
                format!("betas = ({b1}, {b2}) must both lie in [0, 1)"),
            );
        }
        for (key, label) in [
            ("real_label", self.real_label),
            ("fake_label", self.fake_label),
        ] {
            if !(0.0..=1.0).contains(&label) {
                return invalid(key, format!("{key} = {label} must lie in [0, 1]"));
            }
        }
        if !(self.instance_noise.is_finite() && self.instance_noise >= 0.0) {
            let noise = self.instance_noise;
            let message = format!("instance_noise = {noise} must be a non-negative number");
            return invalid("instance_noise", message);
        }
        if !(0.0..=180.0).contains(&self.rotation_degrees) {
            let degrees = self.rotation_degrees;
            let message = format!("rotation_degrees = {degrees} must lie in [0, 180]");
            return invalid("rotation_degrees", message);
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            let message = format!(
                "ema_decay = {} must lie in [0, 1) (0 turns the average off)",
                self.ema_decay
            );
            return invalid("ema_decay", message);
        }
        if !(self.gp_weight.is_finite() && self.gp_weight >= 0.0) {
            let weight = self.gp_weight;
            let message = format!("gp_weight = {weight} must be a non-negative number");
            return invalid("gp_weight", message);
        }
        Ok(())
    }

    /// WGAN-GP's penalty is taken per image: D may not mix images (BatchNorm, packing, the
    /// minibatch standard deviation) or drop units.
    fn check_loss_fits_the_model(&self) -> Checked {
        if self.loss != Loss::WganGp {
            return Ok(());
        }
        match &self.model {
            ModelConfig::Mlp(m) if m.d_batch_norm || m.d_dropout > 0.0 => invalid("loss", "loss = \"wgan-gp\" needs a discriminator without BatchNorm or dropout (model.d_batch_norm = false, model.d_dropout = 0): the penalty is taken per image"),
            ModelConfig::Dcgan(d) if d.d_dropout > 0.0 || d.d_layers.iter().any(|l| l.batch_norm) => invalid("loss", "loss = \"wgan-gp\" needs a discriminator without BatchNorm or dropout (batch_norm = false in every model.d_layers entry, model.d_dropout = 0): the penalty is taken per image"),
            ModelConfig::Dcgan(d) if d.d_pack > 1 || d.d_minibatch_std => invalid("loss", "loss = \"wgan-gp\" needs a discriminator that judges one image at a time (model.d_pack = 1, model.d_minibatch_std = false): the penalty is taken per image"),
            _ => Ok(()),
        }
    }

    /// The minibatch standard deviation and packing: D sees more than one image at a time.
    fn check_batch_views(&self) -> Checked {
        let ModelConfig::Dcgan(m) = &self.model else {
            return Ok(());
        };
        if m.d_minibatch_std && !m.d_linear_head {
            return invalid("model.d_minibatch_std", "model.d_minibatch_std = true needs model.d_linear_head = true: the head weighs the batch's standard deviation beside D's features");
        }
        let pack = m.d_pack;
        if pack == 0 || pack > 16 {
            return invalid(
                "model.d_pack",
                format!("model.d_pack = {pack} must lie between 1 (no packing) and 16"),
            );
        }
        if pack > 1 && m.conditional {
            return invalid("model.d_pack", "model.d_pack > 1 is for unconditional GANs: a pack of images has no one label for the projection");
        }
        if !self.batch_size.is_multiple_of(pack) {
            return invalid(
                "model.d_pack",
                format!(
                    "model.d_pack = {pack} must divide batch_size = {}: D judges the batch in sets of {pack}",
                    self.batch_size
                ),
            );
        }
        Ok(())
    }
}

/// An MLP pair: dropout, activations, widths, and weights of each network.
fn check_mlp(m: &MlpConfig, g_inputs: usize) -> Checked {
    check_dropout("model.d_dropout", m.d_dropout)?;
    check_activation("model.g_activation", m.g_activation)?;
    check_activation("model.d_activation", m.d_activation)?;
    for (key, widths) in [
        ("model.g_hidden", &m.g_hidden),
        ("model.d_hidden", &m.d_hidden),
    ] {
        if widths.iter().any(|&w| w == 0 || w > MAX_SIZE) {
            return invalid(
                key,
                format!("hidden layer widths must lie between 1 and {MAX_SIZE}"),
            );
        }
    }
    let weights = |widths: Vec<usize>| {
        widths
            .windows(2)
            .map(|w| (w[0] as u64 + 1) * w[1] as u64)
            .fold(0u64, u64::saturating_add)
    };
    let g = [&[g_inputs][..], &m.g_hidden, &[IMAGE_PIXELS]].concat();
    let d = [&[IMAGE_PIXELS][..], &m.d_hidden, &[1]].concat();
    check_weights("model.g_hidden", "generator", weights(g))?;
    check_weights("model.d_hidden", "discriminator", weights(d))
}

/// A DCGAN pair: dropout, activations, layers, the path of the feature maps, and weights.
fn check_dcgan(m: &DcganConfig, g_inputs: usize) -> Checked {
    check_dropout("model.d_dropout", m.d_dropout)?;
    check_activation("model.g_activation", m.g_activation)?;
    check_activation("model.d_activation", m.d_activation)?;
    if m.g_layers.is_empty() || m.d_layers.is_empty() {
        let message = "model.g_layers and model.d_layers need at least one layer each";
        let key = if m.g_layers.is_empty() {
            "model.g_layers"
        } else {
            "model.d_layers"
        };
        return invalid(key, message);
    }
    if let GeneratorStart::Dense { channels: 0, .. } | GeneratorStart::Dense { side: 0, .. } =
        m.g_start
    {
        return invalid(
            "model.g_start",
            "model.g_start needs channels and side of at least 1",
        );
    }
    let layers = [
        ("model.g_layers", &m.g_layers),
        ("model.d_layers", &m.d_layers),
    ];
    for (key, layers) in layers {
        if let Some(l) = layers
            .iter()
            .find(|l| l.channels == 0 || l.kernel == 0 || l.stride == 0)
        {
            return invalid(
                key,
                format!("layer {l:?}: channels, kernel and stride must be at least 1"),
            );
        }
    }
    if m.conditional && !m.d_linear_head {
        return invalid("model.d_linear_head", "model.conditional = true needs model.d_linear_head = true: the discriminator projects the label on the features entering its linear head");
    }
    check_generator_geometry(m, g_inputs)?;
    check_discriminator_geometry(m)?;
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
        GeneratorStart::Latent1x1 => g_inputs as u64,
        GeneratorStart::Dense { channels, side } => {
            let dense = g_inputs as u64 * (channels * side * side) as u64;
            check_weights("model.g_start", "generator's first layer", dense)?;
            channels as u64
        }
    };
    check_weights("model.g_layers", "generator", conv(&m.g_layers, g_in))?;
    check_weights("model.d_layers", "discriminator", conv(&m.d_layers, 1))
}

/// Larger than any layer of a GAN for 28x28 digits: sizes past it are typing errors, and
/// their products could overflow.
const MAX_SIZE: usize = 1 << 16;

/// Follows G's feature maps through every layer and says, naming the layer, where a kernel
/// does not fit or where the sizes do not end at 1x28x28.
fn check_generator_geometry(m: &DcganConfig, g_inputs: usize) -> Checked {
    let (mut channels, mut side) = match m.g_start {
        GeneratorStart::Latent1x1 => (g_inputs, 1),
        GeneratorStart::Dense { channels, side } => (channels, side),
    };
    if channels > MAX_SIZE || side > IMAGE_SIDE {
        return invalid("model.g_start", format!(
            "model.g_start: {channels} maps of {side}x{side} is too large (at most {MAX_SIZE} maps, {IMAGE_SIDE}x{IMAGE_SIDE})"
        ));
    }
    for (i, l) in m.g_layers.iter().enumerate() {
        let key = format!("model.g_layers[{i}]");
        check_sizes(&key, l)?;
        if l.output_padding >= l.stride {
            return invalid(
                &key,
                format!(
                    "{key}: output_padding {} must be smaller than the stride {}",
                    l.output_padding, l.stride
                ),
            );
        }
        let full = (side - 1) * l.stride + l.kernel + l.output_padding;
        if full <= 2 * l.padding {
            return invalid(
                &key,
                format!(
                    "{key}: padding {} leaves nothing of a {side}x{side} input",
                    l.padding
                ),
            );
        }
        (channels, side) = (l.channels, full - 2 * l.padding);
        if side > 4 * IMAGE_SIDE {
            return invalid(
                &key,
                format!("{key}: gives {side}x{side} maps, far past 28x28"),
            );
        }
    }
    if (channels, side) != (1, IMAGE_SIDE) {
        return invalid("model.g_layers", format!(
            "model.g_layers end in {channels} channels of {side}x{side}; they must end in 1 channel of 28x28"
        ));
    }
    Ok(())
}

/// Follows D's feature maps from 1x28x28 and says where a kernel does not fit, or where
/// they do not end at one logit when there is no linear head.
fn check_discriminator_geometry(m: &DcganConfig) -> Checked {
    let (mut channels, mut side) = (1, IMAGE_SIDE);
    for (i, l) in m.d_layers.iter().enumerate() {
        let key = format!("model.d_layers[{i}]");
        check_sizes(&key, l)?;
        if l.kernel > side + 2 * l.padding {
            return invalid(
                &key,
                format!(
                    "{key}: a kernel of {} does not fit its {side}x{side} input with padding {}",
                    l.kernel, l.padding
                ),
            );
        }
        (channels, side) = (l.channels, l.conv_output(side));
    }
    if !m.d_linear_head && (channels, side) != (1, 1) {
        return invalid("model.d_layers", format!(
            "model.d_layers end in {channels} channels of {side}x{side}: without a linear head (model.d_linear_head = true) the last must give 1 channel of 1x1"
        ));
    }
    Ok(())
}

/// Far more weights than any network for 28x28 digits needs (the largest preset's, dcgan-tf's
/// generator, has 2.3 million); a config past it is a typing error that would take gigabytes.
const MAX_WEIGHTS: u64 = 50_000_000;

fn check_weights(key: &str, network: &str, weights: u64) -> Checked {
    if weights > MAX_WEIGHTS {
        return invalid(
            key,
            format!(
            "{key}: the {network} would have {weights} weights, more than the {MAX_WEIGHTS} allowed"
        ),
        );
    }
    Ok(())
}

fn check_sizes(key: &str, l: &ConvLayer) -> Checked {
    if l.channels > MAX_SIZE
        || l.kernel > IMAGE_SIDE
        || l.stride > IMAGE_SIDE
        || l.padding > IMAGE_SIDE
    {
        return invalid(
            key,
            format!(
            "{key}: channels at most {MAX_SIZE}, kernel, stride and padding at most {IMAGE_SIDE}"
        ),
        );
    }
    Ok(())
}

fn check_dropout(key: &str, p: f32) -> Checked {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        invalid(key, format!("{key} = {p} must lie in [0, 1)"))
    }
}

fn check_activation(key: &str, a: Activation) -> Checked {
    match a {
        Activation::LeakyRelu(slope) if !(0.0..1.0).contains(&slope) => {
            invalid(key, format!("leaky-relu slope {slope} must lie in [0, 1)"))
        }
        _ => Ok(()),
    }
}
