//! Fully connected GANs, as in the classic PyTorch MNIST tutorials.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::MlpConfig;
use crate::data::{CLASSES, IMAGE_PIXELS, IMAGE_SIDE};
use crate::nn::{tanh, BatchNorm, Block, Linear, MaybeSpectral, Parameters, Pass};

fn linear_block(
    inputs: usize,
    outputs: usize,
    norm: bool,
    vb: VarBuilder,
) -> Result<Block<Linear>> {
    let layer = Linear::new(inputs, outputs, true, vb.pp("linear"))?;
    let norm = if norm {
        Some(BatchNorm::new(outputs, vb.pp("norm"))?)
    } else {
        None
    };
    Ok(Block::new(layer, norm))
}

/// Noise (and, when conditional, the digit's one-hot vector beside it) → hidden layers
/// (Linear [+ BatchNorm] + activation) → Linear → Tanh → 28x28. Tensors are named
/// `hidden.{i}.linear.*`, `hidden.{i}.norm.*` and `out.*`.
#[derive(Clone, Debug)]
pub struct Generator {
    hidden: Vec<Block<Linear>>,
    out: Linear,
    config: MlpConfig,
    pub(crate) latent_dim: usize,
}

impl Generator {
    /// Whether it takes a label vector beside the noise.
    pub fn conditional(&self) -> bool {
        self.config.conditional
    }

    /// Builds the generator of `config` for noise of `latent_dim` values (and 10 label
    /// values beside them when `config.conditional`).
    pub fn new(config: &MlpConfig, latent_dim: usize, vb: VarBuilder) -> Result<Generator> {
        let mut hidden = Vec::new();
        let mut inputs = latent_dim + if config.conditional { CLASSES } else { 0 };
        for (i, &width) in config.g_hidden.iter().enumerate() {
            hidden.push(linear_block(
                inputs,
                width,
                config.g_batch_norm,
                vb.pp(format!("hidden.{i}")),
            )?);
            inputs = width;
        }
        let out = Linear::new(inputs, IMAGE_PIXELS, true, vb.pp("out"))?;
        Ok(Generator {
            hidden,
            out,
            config: config.clone(),
            latent_dim,
        })
    }

    /// `(b, latent)` (`(b, latent + 10)`, noise then label vector, when conditional) →
    /// `(b, 1, 28, 28)` in [-1, 1].
    pub fn forward(&self, z: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let mut x = z.clone();
        for (i, block) in self.hidden.iter().enumerate() {
            x = block.forward_activated(&x, pass, self.config.g_activation, 0.0)?;
            x = pass.layer(&format!("hidden.{i}"), block.params, x)?;
        }
        let x = tanh(&self.out.forward(&x)?)?;
        let x = pass.layer("out (tanh)", self.out.parameters(), x)?;
        x.reshape(((), 1, IMAGE_SIDE, IMAGE_SIDE))
    }
}

/// 28x28 → hidden layers (Linear [+ BatchNorm] + activation + dropout) → one logit; when
/// conditional, plus the projection of the last features on the label's embedding.
/// Tensors are named `hidden.{i}.linear.*`, `hidden.{i}.norm.*`, `out.*` and
/// `label_projection.*`; with spectral normalisation each linear layer also holds its
/// power-iteration vector `sn_u`.
#[derive(Clone, Debug)]
pub struct Discriminator {
    hidden: Vec<Block<MaybeSpectral<Linear>>>,
    out: MaybeSpectral<Linear>,
    /// The label embedding `(features, 10)` of a conditional discriminator.
    projection: Option<MaybeSpectral<Linear>>,
    config: MlpConfig,
}

impl Discriminator {
    /// Whether it projects its features on a label's embedding.
    pub fn conditional(&self) -> bool {
        self.projection.is_some()
    }

    /// Builds the discriminator of `config`.
    pub fn new(config: &MlpConfig, vb: VarBuilder) -> Result<Discriminator> {
        let spectral = config.d_spectral_norm;
        let mut hidden = Vec::new();
        let mut inputs = IMAGE_PIXELS;
        for (i, &width) in config.d_hidden.iter().enumerate() {
            let vb = vb.pp(format!("hidden.{i}"));
            let block = linear_block(inputs, width, config.d_batch_norm, vb.clone())?;
            let layer = MaybeSpectral::new(block.layer, spectral, vb.pp("linear"))?;
            hidden.push(Block::new(layer, block.norm));
            inputs = width;
        }
        let out = Linear::new(inputs, 1, true, vb.pp("out"))?;
        let out = MaybeSpectral::new(out, spectral, vb.pp("out"))?;
        let projection = if config.conditional {
            let vb = vb.pp("label_projection");
            let projection = Linear::new(CLASSES, inputs, false, vb.clone())?;
            Some(MaybeSpectral::new(projection, spectral, vb)?)
        } else {
            None
        };
        Ok(Discriminator {
            hidden,
            out,
            projection,
            config: config.clone(),
        })
    }

    /// The hidden layers' blocks, the output layer and the label projection, as the forward
    /// pass computes with them (their weights divided by σ under spectral normalisation).
    fn layers(&self) -> Result<(Vec<Block<Linear>>, Linear, Option<Linear>)> {
        let hidden = self
            .hidden
            .iter()
            .map(|block| {
                Ok(Block {
                    layer: block.layer.effective()?,
                    norm: block.norm.clone(),
                    params: block.params,
                })
            })
            .collect::<Result<_>>()?;
        let projection = self
            .projection
            .as_ref()
            .map(|p| p.effective())
            .transpose()?;
        Ok((hidden, self.out.effective()?, projection))
    }

    /// One power-iteration step of every layer's spectral normalisation (none without it).
    pub fn update_spectral_norm(&self) -> Result<()> {
        for block in &self.hidden {
            block.layer.power_iteration()?;
        }
        self.out.power_iteration()?;
        if let Some(projection) = &self.projection {
            projection.power_iteration()?;
        }
        Ok(())
    }

    /// `(b, 1, 28, 28)` images (with `(b,)` digits or `(b, 10)` label vectors when
    /// conditional) → `(b, 1)` logits.
    pub fn forward(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
        pass: &mut Pass,
    ) -> Result<Tensor> {
        let (hidden, out, projection) = self.layers()?;
        let mut x = images.flatten_from(1)?;
        for (i, block) in hidden.iter().enumerate() {
            let (activation, p) = (self.config.d_activation, self.config.d_dropout);
            x = block.forward_activated(&x, pass, activation, p)?;
            x = pass.layer(&format!("hidden.{i}"), block.params, x)?;
        }
        let logits = out.forward(&x)?;
        let logits = pass.layer("out (logit)", out.parameters(), logits)?;
        super::add_label_projection(logits, &x, projection.as_ref(), labels, pass)
    }

    /// The gradient of each image's logit with respect to its pixels, `(b, 784)`, as a graph
    /// autograd can differentiate with respect to the weights (see
    /// `models/input_gradient.rs`). Needs no BatchNorm and no dropout.
    pub fn input_gradient(&self, images: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        if self.config.d_batch_norm || self.config.d_dropout > 0.0 {
            candle_core::bail!(
                "the input gradient needs a discriminator without BatchNorm or dropout"
            );
        }
        let (hidden, out, projection) = self.layers()?;
        let layers: Vec<Linear> = hidden.into_iter().map(|block| block.layer).collect();
        super::input_gradient::input_gradient(
            &layers,
            Some(&out),
            projection.as_ref(),
            labels,
            self.config.d_activation.slope(),
            &images.flatten_from(1)?,
        )
    }
}
