//! Generators and discriminators: an MLP pair ([`mlp`]) and a DCGAN pair ([`dcgan`]), plus
//! the pieces they share: a forward [`Pass`] (train or eval, seeded dropout, layer tracing
//! for the summary), activations, seeded weight init and the stable BCE-with-logits loss.

pub mod dcgan;
pub mod mlp;
pub mod spectral_norm;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::data::IMAGE_SIDE;
use crate::ops::norm::BatchNorm;
use crate::rng::{self, Rng};

/// Noise vectors per forward pass in [`Generator::generate`].
const GENERATION_CHUNK: usize = 500;

/// How one forward pass runs: training or evaluation, the generator that draws dropout
/// masks, and an optional trace of each layer's output shape for [`Summary`].
pub struct Pass<'a> {
    train: bool,
    rng: Option<&'a mut Rng>,
    trace: Option<Vec<LayerRow>>,
}

impl<'a> Pass<'a> {
    /// Evaluation: BatchNorm uses running statistics, dropout is off.
    pub fn eval() -> Pass<'static> {
        Pass {
            train: false,
            rng: None,
            trace: None,
        }
    }

    /// Training: BatchNorm uses (and updates) batch statistics, dropout masks come from `rng`.
    pub fn train(rng: &'a mut Rng) -> Pass<'a> {
        Pass {
            train: true,
            rng: Some(rng),
            trace: None,
        }
    }

    /// True in training mode.
    pub fn is_train(&self) -> bool {
        self.train
    }

    fn tracing() -> Pass<'static> {
        Pass {
            train: false,
            rng: None,
            trace: Some(Vec::new()),
        }
    }

    /// Applies `layer` and records its output under `name` when tracing.
    fn layer(&mut self, name: &str, params: usize, x: Tensor) -> Result<Tensor> {
        if let Some(trace) = &mut self.trace {
            trace.push(LayerRow {
                name: name.to_owned(),
                output_shape: x.dims().to_vec(),
                params,
            });
        }
        Ok(x)
    }

    /// Inverted dropout with probability `p`, its mask drawn from this pass's generator.
    pub fn dropout(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        match (&mut self.rng, self.train && p > 0.0) {
            (Some(rng), true) => {
                let mask = rng::dropout_mask(rng, x.shape(), p, x.device())?;
                crate::ops::pointwise::mul_mask(x, &mask.to_dtype(x.dtype())?)
            }
            _ => Ok(x.clone()),
        }
    }

    /// `activation(x)`, then dropout with probability `p` in training: one op each way.
    /// The same values and random draws as `activation.forward(x)` then [`Pass::dropout`].
    pub fn activation_dropout(
        &mut self,
        x: &Tensor,
        activation: Activation,
        p: f32,
    ) -> Result<Tensor> {
        match (&mut self.rng, self.train && p > 0.0) {
            (Some(rng), true) => {
                let mask = rng::dropout_mask(rng, x.shape(), p, x.device())?;
                crate::ops::pointwise::leaky_relu_mask(x, activation.slope(), &mask)
            }
            _ => activation.forward(x),
        }
    }
}

/// One row of a model summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    /// The layer's name, as in the saved tensors.
    pub name: String,
    /// Its output shape for a batch of one.
    pub output_shape: Vec<usize>,
    /// Trainable parameters it holds.
    pub params: usize,
}

/// A torchsummary-like table of a model: layers, output shapes, parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The model's title.
    pub title: String,
    /// Its layers in order.
    pub rows: Vec<LayerRow>,
}

impl Summary {
    /// Trainable parameters in all.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = "-".repeat(64);
        writeln!(f, "{}\n{line}", self.title)?;
        writeln!(f, "{:<28}{:<24}{:>12}", "Layer", "Output shape", "Param #")?;
        writeln!(f, "{line}")?;
        for row in &self.rows {
            let shape = format!("{:?}", row.output_shape);
            writeln!(
                f,
                "{:<28}{:<24}{:>12}",
                row.name,
                shape,
                thousands(row.params)
            )?;
        }
        writeln!(f, "{line}")?;
        write!(f, "Trainable params: {}", thousands(self.total_params()))
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A non-linearity between layers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// max(slope·x, x).
    LeakyRelu(f64),
}

impl Activation {
    /// The slope for negative inputs: 0 for ReLU.
    pub fn slope(self) -> f64 {
        match self {
            Activation::Relu => 0.0,
            Activation::LeakyRelu(slope) => slope,
        }
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::pointwise::leaky_relu(x, self.slope())
    }
}

/// A linear or convolution layer, optionally followed by BatchNorm.
#[derive(Clone, Debug)]
pub(crate) struct Block<L> {
    pub layer: L,
    pub norm: Option<BatchNorm>,
    pub params: usize,
}

impl<L: Module> Block<L> {
    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let x = self.layer.forward(x)?;
        match &self.norm {
            Some(norm) => norm.forward_t(&x, pass.train),
            None => Ok(x),
        }
    }

    /// The layer, its BatchNorm if any, `activation`, and dropout with probability `dropout` in
    /// training; the activation runs fused with the dropout, or with BatchNorm when no dropout
    /// follows: one op each way instead of two.
    pub fn forward_activated(
        &self,
        x: &Tensor,
        pass: &mut Pass,
        activation: Activation,
        dropout: f32,
    ) -> Result<Tensor> {
        let x = self.layer.forward(x)?;
        match &self.norm {
            Some(norm) if !(pass.train && dropout > 0.0) => {
                norm.forward_leaky(&x, pass.train, Some(activation.slope()))
            }
            Some(norm) => {
                let x = norm.forward_t(&x, pass.train)?;
                pass.activation_dropout(&x, activation, dropout)
            }
            None => pass.activation_dropout(&x, activation, dropout),
        }
    }
}

/// BatchNorm as in PyTorch (eps 1e-5, momentum 0.1).
pub(crate) fn batch_norm(features: usize, vb: candle_nn::VarBuilder) -> Result<BatchNorm> {
    BatchNorm::new(features, vb)
}

/// How weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitScheme {
    /// PyTorch's defaults: U(±1/√fan_in) for weights and biases, BatchNorm γ=1, β=0.
    Default,
    /// DCGAN's: conv weights N(0, 0.02), BatchNorm γ ~ N(1, 0.02), β=0; linear layers default.
    Normal002,
}

/// Re-draws every trainable variable of `varmap` from `rng`, visiting them in name order so
/// that the same seed always gives the same weights (candle's own init cannot be seeded).
/// BatchNorm running statistics are reset to mean 0, variance 1.
pub fn init_weights(varmap: &VarMap, scheme: InitScheme, rng: &mut Rng) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let (shape, device) = (var.shape().clone(), var.device().clone());
        let dims = shape.dims();
        let value = if name.ends_with(spectral_norm::U_NAME) {
            let u = rng::randn(rng, shape, 0.0, 1.0, &device)?;
            let norm = u.sqr()?.sum_all()?.sqrt()?;
            u.broadcast_div(&norm)?
        } else if name.ends_with("running_mean") {
            Tensor::zeros(&shape, DType::F32, &device)?
        } else if name.ends_with("running_var") {
            Tensor::ones(&shape, DType::F32, &device)?
        } else if name.ends_with("weight") && dims.len() == 1 {
            match scheme {
                InitScheme::Default => Tensor::ones(&shape, DType::F32, &device)?,
                InitScheme::Normal002 => rng::randn(rng, shape, 1.0, 0.02, &device)?,
            }
        } else if name.ends_with("weight") {
            if scheme == InitScheme::Normal002 && dims.len() == 4 {
                rng::randn(rng, shape, 0.0, 0.02, &device)?
            } else {
                let bound = 1.0 / (fan_in(name, dims) as f32).sqrt();
                rng::uniform(rng, shape, -bound, bound, &device)?
            }
        } else if name.ends_with("bias") {
            let weight = name.trim_end_matches("bias").to_owned() + "weight";
            match data.get(&weight).map(|w| w.dims().to_vec()) {
                Some(w) if w.len() >= 2 => {
                    let bound = 1.0 / (fan_in(&weight, &w) as f32).sqrt();
                    rng::uniform(rng, shape, -bound, bound, &device)?
                }
                _ => Tensor::zeros(&shape, DType::F32, &device)?,
            }
        } else {
            continue;
        };
        var.set(&value)?;
    }
    Ok(())
}

/// PyTorch's fan-in: input features times kernel area. For a transposed convolution, whose
/// weight is (in, out, k, k), PyTorch uses dimension 1, and so do we.
fn fan_in(_name: &str, dims: &[usize]) -> usize {
    dims[1..].iter().product::<usize>().max(1)
}

/// True for a variable that is state rather than a parameter: BatchNorm's running
/// statistics and spectral normalisation's power-iteration vector. They get no gradient and
/// no optimiser.
pub fn is_state(name: &str) -> bool {
    name.contains("running_") || name.ends_with(spectral_norm::U_NAME)
}

/// Trainable parameters in `varmap` (BatchNorm running statistics excluded).
pub fn count_params(varmap: &VarMap) -> usize {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .filter(|(name, _)| !is_state(name))
        .map(|(_, v)| v.elem_count())
        .sum()
}

/// Mean binary cross-entropy between `logits` and a constant `target`, in the stable form
/// `max(x, 0) - x·t + log(1 + e^-|x|)` (candle's own version overflows for large logits).
pub fn bce_with_logits(logits: &Tensor, target: f32) -> Result<Tensor> {
    let loss = ((logits.relu()? - (logits * target as f64)?)?
        + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    loss.mean_all()
}

/// Mean hinge loss of a discriminator: `relu(1 − x)` for real logits (`real = true`),
/// `relu(1 + x)` for fakes.
pub fn hinge(logits: &Tensor, real: bool) -> Result<Tensor> {
    let margin = if real {
        (1.0 - logits)?
    } else {
        (logits + 1.0)?
    };
    margin.relu()?.mean_all()
}

/// WGAN-GP's penalty `mean((‖∇ₓD(x)‖ − 1)²)` over `images`, differentiable with respect to
/// D's weights (see [`Discriminator::input_gradient`]).
pub fn gradient_penalty(discriminator: &Discriminator, images: &Tensor) -> Result<Tensor> {
    let gradient = discriminator.input_gradient(images)?;
    let norm = (gradient.sqr()?.sum(1)? + 1e-12)?.sqrt()?;
    (norm - 1.0)?.sqr()?.mean_all()
}

/// Element-wise logistic sigmoid.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::sigmoid(x)
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
            rows: pass.trace.unwrap_or_default(),
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
            rows: pass.trace.unwrap_or_default(),
        })
    }
}

impl Module for Discriminator {
    /// Evaluation-mode forward pass.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_pass(x, &mut Pass::eval())
    }
}
