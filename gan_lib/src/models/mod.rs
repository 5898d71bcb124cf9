//! The GAN pairs, built from [`crate::nn`]: a fully connected pair ([`mlp`]) and a
//! convolutional pair ([`dcgan`]), and [`Generator`] and [`Discriminator`], which hold either
//! as the config says.
//!
//! Either pair can be conditional ([`crate::config::ModelConfig::conditional`]): then G
//! draws the digit it is given and D judges an image as that digit. Labels are `(b,)` digits
//! (u32) or `(b, 10)` f32 label vectors ([`crate::data::one_hot`]), given to `forward` as
//! `Some(labels)`; an unconditional network takes `None`.

pub mod dcgan;
mod input_gradient;
mod load;
pub mod mlp;

pub(crate) use load::generator_prefix;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarMap;

use crate::config::ModelConfig;
use crate::data::{one_hot, CLASSES, IMAGE_SIDE};
use crate::nn::{Linear, Pass, Summary};

/// Noise vectors per forward pass in [`Generator::generate`], by architecture. A fully
/// connected G is matrix products with large weights, which gemm packs again for every
/// product: chunks of 2,500 draw 10,000 digits 10-20% faster than chunks of 500 (AMD EPYC
/// Zen 4, one and two threads) for 15-60 MiB more of peak memory. A convolutional G's activations are
/// many times larger per digit and chunks of 500 are as fast as larger ones, so memory
/// decides.
const MLP_GENERATION_CHUNK: usize = 2500;
const DCGAN_GENERATION_CHUNK: usize = 500;

/// WGAN-GP's penalty `mean((‖∇ₓD(x)‖ − 1)²)` over `images` (judged as `labels` by a
/// conditional D), differentiable with respect to D's weights (see
/// [`Discriminator::input_gradient`]).
pub fn gradient_penalty(
    discriminator: &Discriminator,
    images: &Tensor,
    labels: Option<&Tensor>,
) -> Result<Tensor> {
    let gradient = discriminator.input_gradient(images, labels)?;
    let norm = (gradient.sqr()?.sum(1)? + 1e-12)?.sqrt()?;
    (norm - 1.0)?.sqr()?.mean_all()
}

/// A projection discriminator's logits (Miyato & Koyama 2018): the head's `logits` plus
/// `⟨embed(y), φ(x)⟩`, the `features` φ(x) entering the head projected on the labels'
/// embedding (`projection`, a linear map from label vectors). Without a projection the logits
/// are returned as they are; labels must be given exactly when there is one.
pub(crate) fn add_label_projection(
    logits: Tensor,
    features: &Tensor,
    projection: Option<&Linear>,
    labels: Option<&Tensor>,
    pass: &mut Pass,
) -> Result<Tensor> {
    match (projection, labels) {
        (Some(projection), Some(labels)) => {
            let embedded = embed_labels(projection, labels, features.dtype())?;
            let projected = (features * embedded)?.sum_keepdim(1)?;
            let params = crate::nn::Parameters::parameters(projection);
            pass.layer("label projection", params, (logits + projected)?)
        }
        (None, None) => Ok(logits),
        _ => candle_core::bail!("labels must be given to a conditional discriminator only"),
    }
}

/// `embed(y)`: the labels' rows of a projection discriminator's embedding, in `dtype`.
pub(crate) fn embed_labels(projection: &Linear, labels: &Tensor, dtype: DType) -> Result<Tensor> {
    projection.forward(&one_hot(labels)?.to_dtype(dtype)?)
}

/// `n` digits to ask a conditional generator for, each digit in turn: 0, 1, …, 9, 0, 1, ….
pub fn balanced_labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % CLASSES) as u8).collect()
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

    /// Maps `(b, latent)` noise and, for a conditional generator, the digits to draw (`(b,)`
    /// digits or `(b, 10)` label vectors; `None` for an unconditional one) to
    /// `(b, 1, 28, 28)` images in [-1, 1], in training or evaluation mode as `pass` says.
    pub fn forward(&self, z: &Tensor, labels: Option<&Tensor>, pass: &mut Pass) -> Result<Tensor> {
        let input = match (self.is_conditional(), labels) {
            (true, Some(labels)) => Tensor::cat(&[z, &one_hot(labels)?.to_dtype(z.dtype())?], 1)?,
            (false, None) => z.clone(),
            (true, None) => candle_core::bail!(
                "this generator is conditional: give it the digits to draw (Some(labels))"
            ),
            (false, Some(_)) => candle_core::bail!(
                "this generator is unconditional (model.conditional = false): it takes no labels"
            ),
        };
        match self {
            Generator::Mlp(g) => g.forward(&input, pass),
            Generator::Dcgan(g) => g.forward(&input, pass),
        }
    }

    /// Whether the generator draws the digit it is given.
    pub fn is_conditional(&self) -> bool {
        match self {
            Generator::Mlp(g) => g.conditional(),
            Generator::Dcgan(g) => g.conditional(),
        }
    }

    /// Images for `(n, latent)` noise (and `n` labels for a conditional generator) in
    /// evaluation mode, computed a chunk at a time (2,500 for a fully connected G, 500 for a
    /// convolutional one) so that memory stays small however many are asked for.
    pub fn generate(&self, z: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let n = z.dim(0)?;
        let chunks = crate::map_chunks(n, self.generation_chunk(), z.device(), |range| {
            let rows = z.narrow(0, range.start, range.len())?;
            let labels = labels
                .map(|l| l.narrow(0, range.start, range.len()))
                .transpose()?;
            let images = self.forward(&rows, labels.as_ref(), &mut Pass::eval());
            // Detached: otherwise each chunk's result keeps its whole forward graph alive.
            Ok(images?.detach())
        })?;
        if chunks.is_empty() {
            return Tensor::zeros((0, 1, IMAGE_SIDE, IMAGE_SIDE), DType::F32, z.device());
        }
        Tensor::cat(&chunks, 0)
    }

    /// Digits per forward pass in [`Generator::generate`].
    fn generation_chunk(&self) -> usize {
        match self {
            Generator::Mlp(_) => MLP_GENERATION_CHUNK,
            Generator::Dcgan(_) => DCGAN_GENERATION_CHUNK,
        }
    }

    /// `n` digits as bytes (0 black, 255 white), image after image, from standard normal
    /// noise seeded by `seed`: what `sample`, `eval` and `analyze` draw from a generator. A
    /// conditional generator is asked for [`balanced_labels`]: 0, 1, …, 9, 0, 1, ….
    pub fn draw(&self, n: usize, seed: u64, device: &Device) -> Result<Vec<u8>> {
        if let Some(labels) = self.digits_asked(n) {
            return self.draw_labelled(&labels, seed, device);
        }
        let mut rng = crate::rng::seeded(seed);
        let z = crate::rng::randn(&mut rng, (n, self.latent_dim()), 0.0, 1.0, device)?;
        crate::data::to_bytes(&self.generate(&z, None)?)
    }

    /// The digits [`Generator::draw`] asks this generator for when drawing `n`:
    /// [`balanced_labels`] for a conditional generator, none for an unconditional one.
    pub fn digits_asked(&self, n: usize) -> Option<Vec<u8>> {
        self.is_conditional().then(|| balanced_labels(n))
    }

    /// One digit per label (0-9) as bytes, image after image, from a conditional generator,
    /// with standard normal noise seeded by `seed`.
    pub fn draw_labelled(&self, labels: &[u8], seed: u64, device: &Device) -> Result<Vec<u8>> {
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= CLASSES) {
            candle_core::bail!("cannot draw digit {bad}: digits are 0 to 9");
        }
        let n = labels.len();
        let mut rng = crate::rng::seeded(seed);
        let z = crate::rng::randn(&mut rng, (n, self.latent_dim()), 0.0, 1.0, device)?;
        let labels = Tensor::from_vec(labels.iter().map(|&l| l as u32).collect(), n, device)?;
        crate::data::to_bytes(&self.generate(&z, Some(&labels))?)
    }

    /// The size of the noise vector.
    pub fn latent_dim(&self) -> usize {
        match self {
            Generator::Mlp(g) => g.latent_dim,
            Generator::Dcgan(g) => g.latent_dim,
        }
    }

    /// The layer table, traced with one noise vector (and the digit 0 when conditional).
    pub fn summary(&self, device: &Device) -> Result<Summary> {
        let mut pass = Pass::tracing();
        let label = Tensor::zeros(1, DType::U32, device)?;
        self.forward(
            &Tensor::zeros((1, self.latent_dim()), DType::F32, device)?,
            self.is_conditional().then_some(&label),
            &mut pass,
        )?;
        Ok(Summary {
            title: "Generator".into(),
            rows: pass.into_trace(),
        })
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

    /// The gradient of each image's logit (as `labels` for a conditional D) with respect to
    /// its pixels, `(b, 784)`, as a graph that autograd can differentiate again (for WGAN-GP's
    /// penalty). Discriminators without BatchNorm or dropout only.
    pub fn input_gradient(&self, images: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Discriminator::Mlp(d) => d.input_gradient(images, labels),
            Discriminator::Dcgan(d) => d.input_gradient(images, labels),
        }
    }

    /// Maps `(b, 1, 28, 28)` images, judged as the digits `labels` by a conditional
    /// discriminator (`None` for an unconditional one), to `(b,)` logits (real > 0 > fake);
    /// to `(b / d_pack,)`, one per set of images, when a DCGAN discriminator packs them.
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>, pass: &mut Pass) -> Result<Tensor> {
        let logits = match self {
            Discriminator::Mlp(d) => d.forward(x, labels, pass)?,
            Discriminator::Dcgan(d) => d.forward(x, labels, pass)?,
        };
        // One logit per image, whatever shape the last layer gives it.
        logits.reshape(logits.dim(0)?)
    }

    /// Whether the discriminator judges an image as a given digit.
    pub fn is_conditional(&self) -> bool {
        match self {
            Discriminator::Mlp(d) => d.conditional(),
            Discriminator::Dcgan(d) => d.conditional(),
        }
    }

    /// The layer table, traced with one blank image (as the digit 0 when conditional).
    pub fn summary(&self, device: &Device) -> Result<Summary> {
        let mut pass = Pass::tracing();
        let label = Tensor::zeros(1, DType::U32, device)?;
        self.forward(
            &Tensor::zeros((1, 1, 28, 28), DType::F32, device)?,
            self.is_conditional().then_some(&label),
            &mut pass,
        )?;
        Ok(Summary {
            title: "Discriminator".into(),
            rows: pass.into_trace(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::train::Gan;

    /// Generation runs its chunks of 500 at once on rayon's threads: the digits are those of
    /// one chunk after another, on one thread or two, to the bit (BatchNorm in MLP and
    /// convolutional generators, a last chunk shorter than the others).
    #[test]
    fn generation_in_parallel_chunks_equals_one_chunk_after_another() -> Result<()> {
        for preset in ["mlp-smoothing", "dcgan-fast"] {
            let config = TrainConfig::preset(preset).unwrap();
            let gan = Gan::new(&config, &Device::Cpu, &mut crate::rng::seeded(1))?;
            let g = &gan.generator;
            // Two whole chunks and a part of one.
            let chunk = g.generation_chunk();
            let z = crate::rng::randn(
                &mut crate::rng::seeded(2),
                (2 * chunk + 100, g.latent_dim()),
                0.0,
                1.0,
                &Device::Cpu,
            )?;
            let flat = |t: Tensor| t.flatten_all()?.to_vec1::<f32>();
            let one_by_one: Vec<f32> = [(0, chunk), (chunk, chunk), (2 * chunk, 100)]
                .into_iter()
                .map(|(start, len)| {
                    flat(g.forward(&z.narrow(0, start, len)?, None, &mut Pass::eval())?)
                })
                .collect::<Result<Vec<_>>>()?
                .concat();
            let one_thread = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap()
                .install(|| flat(g.generate(&z, None)?))?;
            let two_threads = crate::ops::two_threads(|| flat(g.generate(&z, None)?))?;
            assert!(one_by_one == one_thread, "{preset}: one thread");
            assert!(one_by_one == two_threads, "{preset}: two threads");
        }
        Ok(())
    }
}
