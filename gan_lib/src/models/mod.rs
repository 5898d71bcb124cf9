//! The GAN pairs, built from [`crate::nn`]: a fully connected pair ([`mlp`]) and a
//! convolutional pair ([`dcgan`]), and [`Generator`] and [`Discriminator`], which hold either
//! as the config says.

pub mod dcgan;
pub mod mlp;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarMap;

use crate::config::ModelConfig;
use crate::data::IMAGE_SIDE;
use crate::nn::{Pass, Summary};

/// Noise vectors per forward pass in [`Generator::generate`].
const GENERATION_CHUNK: usize = 500;

/// WGAN-GP's penalty `mean((‖∇ₓD(x)‖ − 1)²)` over `images`, differentiable with respect to
/// D's weights (see [`Discriminator::input_gradient`]).
pub fn gradient_penalty(discriminator: &Discriminator, images: &Tensor) -> Result<Tensor> {
    let gradient = discriminator.input_gradient(images)?;
    let norm = (gradient.sqr()?.sum(1)? + 1e-12)?.sqrt()?;
    (norm - 1.0)?.sqr()?.mean_all()
}

/// A generator of either architecture.
#[derive(Clone, Debug)]
pub enum Generator {
    /// Fully connected.
    Mlp(mlp::Generator),
    /// Convolutional.
    Dcgan(dcgan::Generator),
}

/// A discriminator of either architecture, giving one logit per image.
#[derive(Clone, Debug)]
pub enum Discriminator {
    /// Fully connected.
    Mlp(mlp::Discriminator),
    /// Convolutional.
    Dcgan(dcgan::Discriminator),
}

impl Generator {
    /// Builds the generator `config` describes for `latent_dim`-sized noise.
    pub fn new(
        config: &ModelConfig,
        latent_dim: usize,
        vb: candle_nn::VarBuilder,
    ) -> Result<Generator> {
        Ok(match config {
            ModelConfig::Mlp(c) => Generator::Mlp(mlp::Generator::new(c, latent_dim, vb)?),
            ModelConfig::Dcgan(c) => Generator::Dcgan(dcgan::Generator::new(c, latent_dim, vb)?),
        })
    }

    /// Maps `(b, latent)` noise to `(b, 1, 28, 28)` images in [-1, 1].
    pub fn forward_pass(&self, z: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        match self {
            Generator::Mlp(g) => g.forward_pass(z, pass),
            Generator::Dcgan(g) => g.forward_pass(z, pass),
        }
    }

    /// Images for `(n, latent)` noise in evaluation mode, computed 500 at a time so that
    /// memory stays small (and the working set in cache) however many are asked for.
    pub fn generate(&self, z: &Tensor) -> Result<Tensor> {
        let n = z.dim(0)?;
        let chunks = (0..n)
            .step_by(GENERATION_CHUNK)
            .map(|start| {
                let rows = z.narrow(0, start, GENERATION_CHUNK.min(n - start))?;
                // Detached: otherwise each chunk's result keeps its whole forward graph alive.
                Ok(self.forward_pass(&rows, &mut Pass::eval())?.detach())
            })
            .collect::<Result<Vec<_>>>()?;
        if chunks.is_empty() {
            return Tensor::zeros((0, 1, IMAGE_SIDE, IMAGE_SIDE), DType::F32, z.device());
        }
        Tensor::cat(&chunks, 0)
    }

    /// `n` digits as bytes (0 black, 255 white), image after image, from standard normal
    /// noise seeded by `seed`: what `sample`, `eval` and `analyze` draw from a generator.
    pub fn draw_digits(&self, n: usize, seed: u64, device: &Device) -> Result<Vec<u8>> {
        let mut rng = crate::rng::seeded(seed);
        let z = crate::rng::randn(&mut rng, (n, self.latent_dim()), 0.0, 1.0, device)?;
        crate::data::to_bytes(&self.generate(&z)?)
    }

    /// The size of the noise vector.
    pub fn latent_dim(&self) -> usize {
        match self {
            Generator::Mlp(g) => g.latent_dim,
            Generator::Dcgan(g) => g.latent_dim,
        }
    }

    /// The layer table, traced with one noise vector.
    pub fn summary(&self, device: &Device) -> Result<Summary> {
        let mut pass = Pass::tracing();
        self.forward_pass(
            &Tensor::zeros((1, self.latent_dim()), DType::F32, device)?,
            &mut pass,
        )?;
        Ok(Summary {
            title: "Generator".into(),
            rows: pass.into_trace(),
        })
    }
}

impl Module for Generator {
    /// Evaluation-mode forward pass.
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        self.forward_pass(z, &mut Pass::eval())
    }
}

impl Discriminator {
    /// Builds the discriminator `config` describes.
    pub fn new(config: &ModelConfig, vb: candle_nn::VarBuilder) -> Result<Discriminator> {
        Ok(match config {
            ModelConfig::Mlp(c) => Discriminator::Mlp(mlp::Discriminator::new(c, vb)?),
            ModelConfig::Dcgan(c) => Discriminator::Dcgan(dcgan::Discriminator::new(c, vb)?),
        })
    }

    /// The discriminator `config` describes, on the variables `vars` read as constants: the
    /// same weights, which the optimiser's in-place updates reach, but outside autograd, so
    /// that a backward pass through it computes no gradient for them. Running BatchNorm
    /// statistics stay variables, updated by passes in training mode as in `new`'s.
    ///
    /// G's training step runs through it: its loss only updates G, and PyTorch's loop
    /// computes D's weight gradients there and throws them away.
    pub fn frozen(config: &ModelConfig, vars: &VarMap, device: &Device) -> Result<Discriminator> {
        let tensors = vars
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(name, var)| {
                let tensor = match name.contains("running_") {
                    true => var.as_tensor().clone(),
                    false => var.as_tensor().detach(),
                };
                (name.clone(), tensor)
            })
            .collect();
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, device);
        Discriminator::new(config, vb)
    }

    /// One power-iteration step of spectral normalisation, for a discriminator that has it
    /// (else nothing). The trainer calls it once per discriminator update.
    pub fn update_spectral_norm(&self) -> Result<()> {
        match self {
            Discriminator::Mlp(d) => d.update_spectral_norm(),
            Discriminator::Dcgan(d) => d.update_spectral_norm(),
        }
    }

    /// The gradient of each image's logit with respect to its pixels, `(b, 784)`, as a graph
    /// that autograd can differentiate again (for WGAN-GP's penalty). MLP discriminators
    /// without BatchNorm or dropout only.
    pub fn input_gradient(&self, images: &Tensor) -> Result<Tensor> {
        match self {
            Discriminator::Mlp(d) => d.input_gradient(images),
            Discriminator::Dcgan(_) => {
                candle_core::bail!("the input gradient is implemented for MLP discriminators only")
            }
        }
    }

    /// Maps `(b, 1, 28, 28)` images to `(b,)` logits (real > 0 > fake).
    pub fn forward_pass(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let logits = match self {
            Discriminator::Mlp(d) => d.forward_pass(x, pass)?,
            Discriminator::Dcgan(d) => d.forward_pass(x, pass)?,
        };
        // One logit per image, whatever shape the last layer gives it.
        logits.reshape(logits.dim(0)?)
    }

    /// The layer table, traced with one blank image.
    pub fn summary(&self, device: &Device) -> Result<Summary> {
        let mut pass = Pass::tracing();
        self.forward_pass(
            &Tensor::zeros((1, 1, 28, 28), DType::F32, device)?,
            &mut pass,
        )?;
        Ok(Summary {
            title: "Discriminator".into(),
            rows: pass.into_trace(),
        })
    }
}

impl Module for Discriminator {
    /// Evaluation-mode forward pass.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_pass(x, &mut Pass::eval())
    }
}
