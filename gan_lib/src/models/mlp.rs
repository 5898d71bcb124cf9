//! Fully connected GANs, as in the classic PyTorch MNIST tutorials.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::MlpConfig;
use crate::data::{CLASSES, IMAGE_PIXELS, IMAGE_SIDE};
use crate::nn::{tanh, BatchNorm, Block, Linear, Pass, SpectralNorm};

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
    let params = (inputs + 1) * outputs + if norm.is_some() { 2 * outputs } else { 0 };
    Ok(Block {
        layer,
        norm,
        params,
    })
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
        let x = pass.layer(
            "out (tanh)",
            self.out.weight().elem_count() + IMAGE_PIXELS,
            x,
        )?;
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
    hidden: Vec<Block<Linear>>,
    out: Linear,
    /// The label embedding `(features, 10)` of a conditional discriminator.
    projection: Option<Linear>,
    /// One per hidden layer, then the output layer's (then the projection's), when spectral
    /// normalisation is on.
    spectral: Option<Vec<SpectralNorm>>,
    config: MlpConfig,
}

impl Discriminator {
    /// Whether it projects its features on a label's embedding.
    pub fn conditional(&self) -> bool {
        self.projection.is_some()
    }

    /// Builds the discriminator of `config`.
    pub fn new(config: &MlpConfig, vb: VarBuilder) -> Result<Discriminator> {
        let mut hidden = Vec::new();
        let mut spectral = Vec::new();
        let mut inputs = IMAGE_PIXELS;
        for (i, &width) in config.d_hidden.iter().enumerate() {
            let vb = vb.pp(format!("hidden.{i}"));
            hidden.push(linear_block(
                inputs,
                width,
                config.d_batch_norm,
                vb.clone(),
            )?);
            if config.d_spectral_norm {
                spectral.push(SpectralNorm::new(width, vb.pp("linear"))?);
            }
            inputs = width;
        }
        let out = Linear::new(inputs, 1, true, vb.pp("out"))?;
        if config.d_spectral_norm {
            spectral.push(SpectralNorm::new(1, vb.pp("out"))?);
        }
        let projection = if config.conditional {
            let vb = vb.pp("label_projection");
            if config.d_spectral_norm {
                spectral.push(SpectralNorm::new(inputs, vb.clone())?);
            }
            Some(Linear::new(CLASSES, inputs, false, vb)?)
        } else {
            None
        };
        Ok(Discriminator {
            hidden,
            out,
            projection,
            spectral: config.d_spectral_norm.then_some(spectral),
            config: config.clone(),
        })
    }

    /// The hidden layers' blocks, the output layer and the label projection, their weights
    /// divided by σ when spectral normalisation is on.
    fn layers(&self) -> Result<(Vec<Block<Linear>>, Linear, Option<Linear>)> {
        let Some(spectral) = &self.spectral else {
            return Ok((
                self.hidden.clone(),
                self.out.clone(),
                self.projection.clone(),
            ));
        };
        let normalized = |layer: &Linear, norm: &SpectralNorm| -> Result<Linear> {
            Ok(Linear::from_tensors(
                norm.normalize(layer.weight())?,
                layer.bias().cloned(),
            ))
        };
        let hidden = self
            .hidden
            .iter()
            .zip(spectral)
            .map(|(block, norm)| {
                Ok(Block {
                    layer: normalized(&block.layer, norm)?,
                    ..block.clone()
                })
            })
            .collect::<Result<_>>()?;
        let out = normalized(&self.out, &spectral[self.hidden.len()])?;
        let projection = match &self.projection {
            Some(p) => Some(normalized(p, &spectral[self.hidden.len() + 1])?),
            None => None,
        };
        Ok((hidden, out, projection))
    }

    /// One power-iteration step of every layer's spectral normalisation (none without it).
    pub fn update_spectral_norm(&self) -> Result<()> {
        if let Some(spectral) = &self.spectral {
            let weights = self.hidden.iter().map(|b| b.layer.weight());
            let weights = weights
                .chain([self.out.weight()])
                .chain(self.projection.as_ref().map(|p| p.weight()));
            for (weight, norm) in weights.zip(spectral) {
                norm.power_iteration(weight)?;
            }
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
        let logits = pass.layer("out (logit)", self.out.weight().elem_count() + 1, logits)?;
        super::add_label_projection(logits, &x, projection.as_ref(), labels, pass)
    }

    /// The gradient of each image's logit with respect to its pixels, `(b, 784)`, built as a
    /// graph of ordinary candle ops (matrix products with the weights and the activation's
    /// slopes), so that a loss on it can be differentiated with respect to the weights:
    /// candle's autograd cannot differentiate a gradient itself. The slopes are constants
    /// (their own derivative is zero almost everywhere). Needs no BatchNorm and no dropout.
    pub fn input_gradient(&self, images: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        if self.config.d_batch_norm || self.config.d_dropout > 0.0 {
            candle_core::bail!(
                "the input gradient needs a discriminator without BatchNorm or dropout"
            );
        }
        let (hidden, out, projection) = self.layers()?;
        let slope = self.config.d_activation.slope();
        // Forward: the activation's slope at each pre-activation, 1 or `slope`.
        let mut x = images.flatten_from(1)?.detach();
        let mut slopes = Vec::new();
        for block in &hidden {
            let pre = block.layer.forward(&x)?.detach();
            let slopes_here = super::activation_slopes(&pre, slope)?;
            x = (&pre * &slopes_here)?;
            slopes.push(slopes_here);
        }
        // Backward, by hand: from the logit's weights down to the pixels.
        let batch = x.dim(0)?;
        let mut gradient = out.weight().broadcast_as((batch, out.weight().dim(1)?))?;
        // The projection ⟨embed(y), φ(x)⟩ adds embed(y) to the logit's gradient by φ(x).
        match (projection, labels) {
            (Some(projection), Some(labels)) => {
                gradient =
                    (&gradient + super::embed_labels(&projection, labels, gradient.dtype())?)?;
            }
            (None, None) => {}
            _ => candle_core::bail!("labels must be given to a conditional discriminator only"),
        }
        for (block, slopes_here) in hidden.iter().zip(&slopes).rev() {
            gradient = (gradient * slopes_here)?.matmul(block.layer.weight())?;
        }
        Ok(gradient)
    }
}
