//! Convolutional GANs (DCGAN) for 28x28 digits, described layer by layer in the config so
//! that both classic designs fit: noise reshaped to 1x1 and upsampled by transposed
//! convolutions (the PyTorch course design), or a dense projection to 7x7x256 first (the
//! TensorFlow tutorial design).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::{DcganConfig, GeneratorStart};
use crate::data::{CLASSES, IMAGE_SIDE};
use crate::nn::{
    append_minibatch_std, pack_images, tanh, BatchNorm, Block, Conv2d, ConvTranspose2d, Linear,
    MaybeSpectral, Parameters, Pass,
};

/// Noise → (dense projection | 1x1 reshape) → transposed convolutions (+ BatchNorm +
/// activation) → Tanh. Tensors: `start.linear.*`, `start.norm.*`, `layers.{i}.conv.*`,
/// `layers.{i}.norm.*`.
#[derive(Clone, Debug)]
pub struct Generator {
    start: Option<Block<Linear>>,
    layers: Vec<Block<ConvTranspose2d>>,
    config: DcganConfig,
    pub(crate) latent_dim: usize,
}

impl Generator {
    /// Whether it takes a label vector beside the noise.
    pub fn conditional(&self) -> bool {
        self.config.conditional
    }

    /// Builds the generator of `config` for noise of `latent_dim` values (and 10 label
    /// values beside them when `config.conditional`).
    pub fn new(config: &DcganConfig, latent_dim: usize, vb: VarBuilder) -> Result<Generator> {
        let inputs = latent_dim + if config.conditional { CLASSES } else { 0 };
        let (mut channels, mut side, start) = match config.g_start {
            GeneratorStart::Latent1x1 => (inputs, 1, None),
            GeneratorStart::Dense { channels, side } => {
                let features = channels * side * side;
                let vb = vb.pp("start");
                let linear = Linear::new(inputs, features, config.g_bias, vb.pp("linear"))?;
                let norm = BatchNorm::new(features, vb.pp("norm"))?;
                (channels, side, Some(Block::new(linear, Some(norm))))
            }
        };
        let mut layers = Vec::new();
        for (i, l) in config.g_layers.iter().enumerate() {
            let vb = vb.pp(format!("layers.{i}"));
            let conv = ConvTranspose2d::new(
                channels,
                l.channels,
                l.kernel,
                (l.stride, l.padding, l.output_padding),
                config.g_bias,
                vb.pp("conv"),
            )?;
            let norm = if l.batch_norm {
                Some(BatchNorm::new(l.channels, vb.pp("norm"))?)
            } else {
                None
            };
            layers.push(Block::new(conv, norm));
            channels = l.channels;
            side = l.conv_transpose_output(side);
        }
        if channels != 1 || side != IMAGE_SIDE {
            candle_core::bail!("the generator's layers end in {channels} channels of {side}x{side}; they must end in 1 channel of 28x28");
        }
        Ok(Generator {
            start,
            layers,
            config: config.clone(),
            latent_dim,
        })
    }

    /// `(b, latent)` (`(b, latent + 10)`, noise then label vector, when conditional) →
    /// `(b, 1, 28, 28)` in [-1, 1].
    pub fn forward(&self, z: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let b = z.dim(0)?;
        let mut x = match (&self.start, self.config.g_start) {
            (Some(block), GeneratorStart::Dense { channels, side }) => {
                let x = block.forward_activated(z, pass, self.config.g_activation, 0.0)?;
                let x = pass.layer("start", block.params, x)?;
                x.reshape((b, channels, side, side))?
            }
            _ => z.reshape((b, z.dim(1)?, 1, 1))?,
        };
        let last = self.layers.len() - 1;
        for (i, block) in self.layers.iter().enumerate() {
            x = if i == last {
                tanh(&block.forward(&x, pass)?)?
            } else {
                block.forward_activated(&x, pass, self.config.g_activation, 0.0)?
            };
            x = pass.layer(&format!("layers.{i}"), block.params, x)?;
        }
        Ok(x)
    }
}

/// 28x28 (`d_pack` of them stacked as channels) → convolutions (+ BatchNorm + activation +
/// dropout) → a linear logit (of the features and, with `d_minibatch_std`, the batch's
/// standard deviation of them), or a last convolution down to one 1x1 logit; when
/// conditional, plus the projection of the linear head's features on the label's embedding.
/// Tensors: `layers.{i}.conv.*`, `layers.{i}.norm.*`, `out.*`, `label_projection.*`.
#[derive(Clone, Debug)]
pub struct Discriminator {
    layers: Vec<Block<MaybeSpectral<Conv2d>>>,
    out: Option<MaybeSpectral<Linear>>,
    /// The label embedding `(features, 10)` of a conditional discriminator.
    projection: Option<MaybeSpectral<Linear>>,
    config: DcganConfig,
}

impl Discriminator {
    /// Whether it projects its features on a label's embedding.
    pub fn conditional(&self) -> bool {
        self.projection.is_some()
    }

    /// Builds the discriminator of `config`.
    pub fn new(config: &DcganConfig, vb: VarBuilder) -> Result<Discriminator> {
        let (mut channels, mut side) = (config.d_pack, IMAGE_SIDE);
        let spectral = config.d_spectral_norm;
        let mut layers = Vec::new();
        for (i, l) in config.d_layers.iter().enumerate() {
            let vb = vb.pp(format!("layers.{i}"));
            let conv = Conv2d::new(
                channels,
                l.channels,
                l.kernel,
                l.stride,
                l.padding,
                vb.pp("conv"),
            )?;
            let norm = if l.batch_norm {
                Some(BatchNorm::new(l.channels, vb.pp("norm"))?)
            } else {
                None
            };
            let conv = MaybeSpectral::new(conv, spectral, vb.pp("conv"))?;
            layers.push(Block::new(conv, norm));
            channels = l.channels;
            side = l.conv_output(side);
        }
        let features = channels * side * side + usize::from(config.d_minibatch_std);
        let out = if config.d_linear_head {
            let out = Linear::new(features, 1, true, vb.pp("out"))?;
            Some(MaybeSpectral::new(out, spectral, vb.pp("out"))?)
        } else if channels != 1 || side != 1 {
            candle_core::bail!("without a linear head the discriminator's last layer must give 1 channel of 1x1, not {channels} of {side}x{side}");
        } else {
            None
        };
        let projection = if config.conditional {
            let vb = vb.pp("label_projection");
            let projection = Linear::new(CLASSES, features, false, vb.clone())?;
            Some(MaybeSpectral::new(projection, spectral, vb)?)
        } else {
            None
        };
        Ok(Discriminator {
            layers,
            out,
            projection,
            config: config.clone(),
        })
    }

    /// The convolutions' blocks, the linear head and the label projection, as the forward
    /// pass computes with them (their weights divided by σ under spectral normalisation).
    #[allow(clippy::type_complexity)]
    fn layers(&self) -> Result<(Vec<Block<Conv2d>>, Option<Linear>, Option<Linear>)> {
        let layers = self
            .layers
            .iter()
            .map(|block| {
                Ok(Block {
                    layer: block.layer.effective()?,
                    norm: block.norm.clone(),
                    params: block.params,
                })
            })
            .collect::<Result<_>>()?;
        let out = self.out.as_ref().map(|o| o.effective()).transpose()?;
        let projection = self
            .projection
            .as_ref()
            .map(|p| p.effective())
            .transpose()?;
        Ok((layers, out, projection))
    }

    /// One power-iteration step of every layer's spectral normalisation (none without it).
    pub fn update_spectral_norm(&self) -> Result<()> {
        for block in &self.layers {
            block.layer.power_iteration()?;
        }
        for layer in self.out.iter().chain(&self.projection) {
            layer.power_iteration()?;
        }
        Ok(())
    }

    /// The gradient of each image's logit with respect to its pixels, `(b, 784)`, as a graph
    /// autograd can differentiate with respect to the weights (see
    /// `models/input_gradient.rs`). Needs no BatchNorm and no dropout.
    pub fn input_gradient(&self, images: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let c = &self.config;
        let batch_norm = self.layers.iter().any(|b| b.norm.is_some());
        if c.d_dropout > 0.0 || batch_norm || c.d_pack > 1 || c.d_minibatch_std {
            candle_core::bail!("the input gradient needs a discriminator that judges one image at a time, without BatchNorm, dropout, packing or the minibatch standard deviation");
        }
        let (layers, out, projection) = self.layers()?;
        let layers: Vec<Conv2d> = layers.into_iter().map(|block| block.layer).collect();
        super::input_gradient::input_gradient(
            &layers,
            out.as_ref(),
            projection.as_ref(),
            labels,
            self.config.d_activation.slope(),
            images,
        )
    }

    /// `(b, 1, 28, 28)` images (with `(b,)` digits or `(b, 10)` label vectors when
    /// conditional) → `(b, 1)` or `(b, 1, 1, 1)` logits; `(b / d_pack, 1)` when D packs
    /// images.
    pub fn forward(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
        pass: &mut Pass,
    ) -> Result<Tensor> {
        if self.projection.is_some() != labels.is_some() {
            // Checked before the pass: a DCGAN without a linear head returns early.
            candle_core::bail!("labels must be given to a conditional discriminator only");
        }
        let (layers, out, projection) = self.layers()?;
        let mut x = pack_images(images, self.config.d_pack)?;
        let last = layers.len() - 1;
        for (i, block) in layers.iter().enumerate() {
            x = if self.out.is_some() || i != last {
                let (activation, p) = (self.config.d_activation, self.config.d_dropout);
                block.forward_activated(&x, pass, activation, p)?
            } else {
                block.forward(&x, pass)?
            };
            x = pass.layer(&format!("layers.{i}"), block.params, x)?;
        }
        let Some(out) = &out else { return Ok(x) };
        let mut features = x.flatten_from(1)?;
        if self.config.d_minibatch_std {
            features = append_minibatch_std(&features)?;
        }
        let logits = out.forward(&features)?;
        let logits = pass.layer("out (logit)", out.parameters(), logits)?;
        super::add_label_projection(logits, &features, projection.as_ref(), labels, pass)
    }
}
