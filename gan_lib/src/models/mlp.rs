//! Fully connected GANs, as in the classic PyTorch MNIST tutorials.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{batch_norm, Block, Pass};
use crate::config::MlpConfig;
use crate::data::{IMAGE_PIXELS, IMAGE_SIDE};
use crate::ops::linear::Linear;

fn linear_block(
    inputs: usize,
    outputs: usize,
    norm: bool,
    vb: VarBuilder,
) -> Result<Block<Linear>> {
    let layer = Linear::new(inputs, outputs, true, vb.pp("linear"))?;
    let norm = if norm {
        Some(batch_norm(outputs, vb.pp("norm"))?)
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

/// Noise → hidden layers (Linear [+ BatchNorm] + activation) → Linear → Tanh → 28x28.
/// Tensors are named `hidden.{i}.linear.*`, `hidden.{i}.norm.*` and `out.*`.
#[derive(Clone, Debug)]
pub struct Generator {
    hidden: Vec<Block<Linear>>,
    out: Linear,
    config: MlpConfig,
    pub(crate) latent_dim: usize,
}

impl Generator {
    /// Builds the generator of `config` for noise of `latent_dim` values.
    pub fn new(config: &MlpConfig, latent_dim: usize, vb: VarBuilder) -> Result<Generator> {
        let mut hidden = Vec::new();
        let mut inputs = latent_dim;
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

    /// `(b, latent)` → `(b, 1, 28, 28)` in [-1, 1].
    pub fn forward_pass(&self, z: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let mut x = z.clone();
        for (i, block) in self.hidden.iter().enumerate() {
            x = block.forward_activated(&x, pass, self.config.g_activation, 0.0)?;
            x = pass.layer(&format!("hidden.{i}"), block.params, x)?;
        }
        let x = crate::ops::pointwise::tanh(&self.out.forward(&x)?)?;
        let x = pass.layer(
            "out (tanh)",
            self.out.weight().elem_count() + IMAGE_PIXELS,
            x,
        )?;
        x.reshape(((), 1, IMAGE_SIDE, IMAGE_SIDE))
    }
}

/// 28x28 → hidden layers (Linear [+ BatchNorm] + activation + dropout) → one logit.
/// Tensors are named `hidden.{i}.linear.*`, `hidden.{i}.norm.*` and `out.*`.
#[derive(Clone, Debug)]
pub struct Discriminator {
    hidden: Vec<Block<Linear>>,
    out: Linear,
    config: MlpConfig,
}

impl Discriminator {
    /// Builds the discriminator of `config`.
    pub fn new(config: &MlpConfig, vb: VarBuilder) -> Result<Discriminator> {
        let mut hidden = Vec::new();
        let mut inputs = IMAGE_PIXELS;
        for (i, &width) in config.d_hidden.iter().enumerate() {
            hidden.push(linear_block(
                inputs,
                width,
                config.d_batch_norm,
                vb.pp(format!("hidden.{i}")),
            )?);
            inputs = width;
        }
        let out = Linear::new(inputs, 1, true, vb.pp("out"))?;
        Ok(Discriminator {
            hidden,
            out,
            config: config.clone(),
        })
    }

    /// `(b, 1, 28, 28)` → `(b, 1)` logits.
    pub fn forward_pass(&self, images: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let mut x = images.flatten_from(1)?;
        for (i, block) in self.hidden.iter().enumerate() {
            let (activation, p) = (self.config.d_activation, self.config.d_dropout);
            x = block.forward_activated(&x, pass, activation, p)?;
            x = pass.layer(&format!("hidden.{i}"), block.params, x)?;
        }
        let x = self.out.forward(&x)?;
        pass.layer("out (logit)", self.out.weight().elem_count() + 1, x)
    }
}
