//! A small LeNet-like CNN that says which digit an image shows: the judge of generated
//! digits (predictions, confidences) and the feature extractor of the quality metrics.
//!
//! conv 5x5 (32) → BatchNorm → ReLU → max-pool 2 → conv 5x5 (64) → BatchNorm → ReLU →
//! max-pool 2 → linear 3136→128 → ReLU (the 128 "features") → dropout 0.25 → linear 128→10.
//! Inputs are in [0, 1]; they are standardised with MNIST's mean and deviation inside.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{VarBuilder, VarMap};

use crate::checkpoint::{self, CheckpointError, TensorFile};
use crate::data::{BatchOptions, PixelRange, Split, IMAGE_PIXELS, IMAGE_SIDE};
use crate::nn::{
    init_weights, leaky_relu, relu_max_pool2, BatchNorm, Conv2d, InitScheme, Linear, Pass,
};
use crate::optim::Adam;
use crate::rng;

/// Mean pixel of the MNIST training set, in [0, 1].
const MNIST_MEAN: f64 = 0.1307;
/// Standard deviation of its pixels.
const MNIST_STD: f64 = 0.3081;

/// Width of the feature layer used by the metrics.
pub const FEATURES: usize = 128;

/// The digit classifier.
pub struct Classifier {
    conv1: Conv2d,
    norm1: BatchNorm,
    conv2: Conv2d,
    norm2: BatchNorm,
    fc1: Linear,
    fc2: Linear,
    /// Its variables.
    pub vars: VarMap,
    device: Device,
}

impl Classifier {
    /// A classifier with weights drawn from `seed`.
    pub fn new(seed: u64, device: &Device) -> Result<Classifier> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
        let classifier = Classifier {
            conv1: Conv2d::new(1, 32, 5, 1, 2, vb.pp("conv1"))?,
            norm1: BatchNorm::new(32, vb.pp("norm1"))?,
            conv2: Conv2d::new(32, 64, 5, 1, 2, vb.pp("conv2"))?,
            norm2: BatchNorm::new(64, vb.pp("norm2"))?,
            fc1: Linear::new(64 * 7 * 7, FEATURES, true, vb.pp("fc1"))?,
            fc2: Linear::new(FEATURES, 10, true, vb.pp("fc2"))?,
            vars,
            device: device.clone(),
        };
        init_weights(
            &classifier.vars,
            InitScheme::Default,
            &mut rng::seeded(seed),
        )?;
        Ok(classifier)
    }

    /// Loads weights saved by [`Classifier::save`] (by default `data/weights/classifier.safetensors`).
    pub fn load(
        path: impl AsRef<Path>,
        device: &Device,
    ) -> std::result::Result<Classifier, CheckpointError> {
        let file = TensorFile::read(path, device)?;
        let classifier = Classifier::new(0, device).map_err(|e| CheckpointError::Format {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        file.load_into(&classifier.vars, "")?;
        Ok(classifier)
    }

    /// The shipped classifier, found from the current directory upwards.
    pub fn load_shipped(device: &Device) -> std::result::Result<Classifier, CheckpointError> {
        let path = crate::find_upwards("data/weights/classifier.safetensors")
            .unwrap_or_else(|| "data/weights/classifier.safetensors".into());
        Classifier::load(path, device)
    }

    /// Saves the weights (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> std::result::Result<(), CheckpointError> {
        checkpoint::write_tensors(
            path,
            checkpoint::named_vars(&self.vars, ""),
            Default::default(),
        )
    }

    /// `(b, 1, 28, 28)` in [0, 1] → `(b, 128)` features.
    /// In evaluation mode each BatchNorm is folded into the convolution before it.
    pub fn features(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let x = x.affine(1.0 / MNIST_STD, -MNIST_MEAN / MNIST_STD)?;
        let convolve = |conv: &Conv2d, norm: &BatchNorm, x: &Tensor| match pass.is_train() {
            true => norm.forward_t(&conv.forward(x)?, true),
            false => {
                let (scale, shift) = norm.eval_scale_shift()?;
                conv.followed_by(&scale, &shift)?.forward(x)
            }
        };
        let x = relu_max_pool2(&convolve(&self.conv1, &self.norm1, &x)?)?;
        let x = relu_max_pool2(&convolve(&self.conv2, &self.norm2, &x)?)?;
        let x = leaky_relu(&self.fc1.forward(&x.flatten_from(1)?)?, 0.0)?;
        pass.dropout(&x, 0.25)
    }

    /// `(b, 1, 28, 28)` in [0, 1] → `(b, 10)` logits.
    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        self.fc2.forward(&self.features(x, pass)?)
    }

    /// Class probabilities (softmax), `(b, 10)`, in evaluation mode.
    pub fn probabilities(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::softmax(&self.forward(x, &mut Pass::eval())?, D::Minus1)
    }

    /// Probabilities and features of 28x28 byte images, computed in batches of 500.
    pub fn run_bytes(&self, pixels: &[u8]) -> Result<ProbabilitiesAndFeatures> {
        let images = pixels.len() / IMAGE_PIXELS;
        let chunks = crate::map_chunks(images, 500, &self.device, |range| {
            let values = pixels[range.start * IMAGE_PIXELS..range.end * IMAGE_PIXELS]
                .iter()
                .map(|&p| PixelRange::Unit.scale(p))
                .collect();
            let shape = (range.len(), 1, IMAGE_SIDE, IMAGE_SIDE);
            let x = Tensor::from_vec(values, shape, &self.device)?;
            let f = self.features(&x, &mut Pass::eval())?;
            let p = candle_nn::ops::softmax(&self.fc2.forward(&f)?, D::Minus1)?;
            Ok((p.to_vec2::<f32>()?, f.to_vec2::<f32>()?))
        })?;
        let (mut probabilities, mut features) = (Vec::new(), Vec::new());
        for (p, f) in chunks {
            probabilities.extend(
                p.into_iter()
                    .map(|row| <[f32; 10]>::try_from(row).expect("10 classes")),
            );
            features.extend(f);
        }
        Ok((probabilities, features))
    }

    /// Accuracy and confusion matrix (`[true][predicted]`) on a split.
    pub fn evaluate(&self, split: &Split) -> Result<Evaluation> {
        let (probabilities, _) = self.run_bytes(&split.pixels)?;
        let mut confusion = [[0usize; 10]; 10];
        for (p, &label) in probabilities.iter().zip(&split.labels) {
            confusion[label as usize][argmax(p)] += 1;
        }
        let correct: usize = (0..10).map(|d| confusion[d][d]).sum();
        Ok(Evaluation {
            accuracy: correct as f64 / split.len().max(1) as f64,
            confusion,
        })
    }
}

/// Per image: the ten class probabilities, and the 128 features.
pub type ProbabilitiesAndFeatures = (Vec<[f32; 10]>, Vec<Vec<f32>>);

/// Index of the largest value.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > values[best] { i } else { best })
}

/// Test-set performance.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Counts by true digit (rows) and predicted digit (columns).
    pub confusion: [[usize; 10]; 10],
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "accuracy {:.2}%\nconfusion matrix (rows: true digit, columns: predicted)",
            100.0 * self.accuracy
        )?;
        write!(f, "     ")?;
        for d in 0..10 {
            write!(f, "{d:>6}")?;
        }
        for (d, row) in self.confusion.iter().enumerate() {
            write!(f, "\n{d:>4} ")?;
            for count in row {
                write!(f, "{count:>6}")?;
            }
        }
        Ok(())
    }
}

/// How to train the classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierTraining {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's peak learning rate (see [`learning_rate_factor`]).
    pub lr: f64,
    /// Seed of init, shuffling and dropout.
    pub seed: u64,
}

/// What the classifier's training reports as it goes (the library prints nothing).
#[derive(Debug)]
pub enum ClassifierEvent<'a> {
    /// A step finished: `done` of the epoch's `steps`, with the step's loss.
    Step {
        /// The epoch (1-based).
        epoch: usize,
        /// The run's epochs.
        epochs: usize,
        /// Steps done in this epoch.
        done: usize,
        /// Steps in the epoch.
        steps: usize,
        /// The step's cross-entropy loss.
        loss: f32,
    },
    /// An epoch finished and was evaluated on the test set.
    Epoch {
        /// The epoch (1-based).
        epoch: usize,
        /// The run's epochs.
        epochs: usize,
        /// Its evaluation.
        evaluation: &'a Evaluation,
        /// Wall-clock seconds it took.
        seconds: f64,
    },
}

impl Default for ClassifierTraining {
    fn default() -> Self {
        ClassifierTraining {
            epochs: 3,
            batch_size: 64,
            lr: 1e-3,
            seed: 42,
        }
    }
}

/// The learning-rate schedule: a linear warm-up over the first 200 steps, then a linear
/// decay to zero at the last step (short runs converge best with a high peak and a low end).
pub fn learning_rate_factor(step: u64, total_steps: u64) -> f64 {
    let warm_up = (step as f64 + 1.0) / 200.0;
    let decay = 1.0 - step as f64 / total_steps.max(1) as f64;
    warm_up.min(1.0) * decay.max(0.0)
}

/// Trains a classifier on `train`, evaluating it on `test` after each epoch.
pub fn train(
    train: &Split,
    test: &Split,
    options: &ClassifierTraining,
    device: &Device,
) -> Result<(Classifier, Vec<Evaluation>)> {
    train_with(train, test, options, device, &mut |_| {})
}

/// [`train`], telling `on_event` of each step and epoch.
pub fn train_with(
    train: &Split,
    test: &Split,
    options: &ClassifierTraining,
    device: &Device,
    on_event: &mut dyn FnMut(ClassifierEvent),
) -> Result<(Classifier, Vec<Evaluation>)> {
    let classifier = Classifier::new(options.seed, device)?;
    let mut adam = Adam::new(&classifier.vars, (0.9, 0.999))?;
    let (mut data_rng, mut dropout_rng) = (
        rng::seeded(options.seed.wrapping_add(1)),
        rng::seeded(options.seed.wrapping_add(2)),
    );
    let batch_options = BatchOptions {
        batch_size: options.batch_size,
        range: PixelRange::Unit,
        ..Default::default()
    };
    let steps_per_epoch = train.len().div_ceil(options.batch_size) as u64;
    let total_steps = (steps_per_epoch * options.epochs as u64).max(1);
    let mut evaluations = Vec::new();
    for epoch in 1..=options.epochs {
        let started = Instant::now();
        for (done, batch) in train
            .batches(&batch_options, &mut data_rng, device)
            .enumerate()
        {
            let batch = batch?;
            let logits = classifier.forward(&batch.images, &mut Pass::train(&mut dropout_rng))?;
            let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels)?;
            adam.step(
                &loss.backward()?,
                options.lr * learning_rate_factor(adam.step, total_steps),
            )?;
            on_event(ClassifierEvent::Step {
                epoch,
                epochs: options.epochs,
                done: done + 1,
                steps: steps_per_epoch as usize,
                loss: loss.to_scalar::<f32>()?,
            });
        }
        let evaluation = classifier.evaluate(test)?;
        on_event(ClassifierEvent::Epoch {
            epoch,
            epochs: options.epochs,
            evaluation: &evaluation,
            seconds: started.elapsed().as_secs_f64(),
        });
        evaluations.push(evaluation);
    }
    Ok((classifier, evaluations))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluation folds each BatchNorm into its convolution: the features must be those of
    /// the convolution followed by candle's BatchNorm in evaluation mode, with trained running
    /// statistics (the shipped classifier's, scaled so that no channel's are trivial).
    #[test]
    fn folded_batch_norm_gives_the_features_of_conv_then_batch_norm() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/weights/classifier.safetensors"
        );
        let classifier = Classifier::load(path, &Device::Cpu).unwrap();
        let x = Tensor::rand(0f32, 1.0, (6, 1, IMAGE_SIDE, IMAGE_SIDE), &Device::Cpu).unwrap();
        let folded = classifier.features(&x, &mut Pass::eval()).unwrap();

        let unfolded = {
            let c = &classifier;
            let x = x.affine(1.0 / MNIST_STD, -MNIST_MEAN / MNIST_STD).unwrap();
            let x = c.norm1.forward_t(&c.conv1.forward(&x).unwrap(), false);
            let x = relu_max_pool2(&x.unwrap()).unwrap();
            let x = c.norm2.forward_t(&c.conv2.forward(&x).unwrap(), false);
            let x = relu_max_pool2(&x.unwrap()).unwrap();
            leaky_relu(&c.fc1.forward(&x.flatten_from(1).unwrap()).unwrap(), 0.0).unwrap()
        };
        let difference = (&folded - &unfolded)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let largest = unfolded.abs().unwrap().max_all().unwrap();
        let largest = largest.to_scalar::<f32>().unwrap();
        assert!(largest > 1.0, "features too small to compare: {largest}");
        assert!(
            difference < 1e-4 * largest,
            "{difference} (largest feature {largest})"
        );
    }
}
