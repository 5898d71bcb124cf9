//! One training step: (1) D's update on real digits and detached fakes, (2) G's update on
//! fakes judged by D, (3) the moving average of G's weights.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{TrainError, Trainer};
use crate::config::Loss;
use crate::data::CLASSES;
use crate::models::{gradient_penalty, Discriminator};
use crate::nn::{bce_with_logits, hinge, sigmoid, Pass};
use crate::rng;

/// Mean statistics of training steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Discriminator loss (real + fake, and the gradient penalty with WGAN-GP).
    pub d_loss: f32,
    /// Generator loss.
    pub g_loss: f32,
    /// Mean D(x): with BCE, D's belief that real images are real (a probability); with the
    /// hinge and Wasserstein losses, D's mean raw score of real images.
    pub d_real: f32,
    /// Mean D(G(z)): the same for fakes.
    pub d_fake: f32,
}

impl Trainer {
    /// One training step on a batch of real images, with their `(b,)` labels for a
    /// conditional GAN (ignored by an unconditional one): `d_steps` discriminator updates on
    /// real images and detached fakes, then one generator update, then the moving average of
    /// G's weights when there is one. Each loss is checked before its update, so a NaN leaves
    /// the networks as they were.
    ///
    /// D judges real digits as their labels and fakes as the digits G was asked for: the real
    /// batch's digits in D's update (so that penalty points between real and fake share a
    /// label), uniformly drawn digits in G's.
    pub fn train_step(
        &mut self,
        real: &Tensor,
        labels: Option<&Tensor>,
    ) -> Result<StepStats, TrainError> {
        // A step run from a notebook cell other than the one that built the networks.
        crate::notebook::fresh_tensor_ids(&[&self.gan.g_vars, &self.gan.d_vars], real)?;
        self.step(real, labels)
    }

    /// [`Trainer::train_step`] without the notebook guard: the epoch loop runs it once per
    /// epoch instead.
    pub(super) fn step(
        &mut self,
        real: &Tensor,
        labels: Option<&Tensor>,
    ) -> Result<StepStats, TrainError> {
        let labels = match (self.gan.config.model.conditional(), labels) {
            (true, Some(labels)) => Some(labels),
            (false, _) => None,
            (true, None) => {
                return Err(candle_core::Error::Msg(
                    "a conditional GAN trains on labelled batches: give train_step the labels"
                        .into(),
                )
                .into())
            }
        };
        let mut stats = StepStats::default();

        // (1) Discriminator: real digits against detached fakes.
        for _ in 0..self.gan.config.d_steps {
            (stats.d_loss, stats.d_real, stats.d_fake) = self.update_discriminator(real, labels)?;
        }

        // (2) Generator: fakes judged by D.
        let conditional = labels.is_some();
        stats.g_loss = self.update_generator(real.dim(0)?, conditional)?;

        // (3) The moving average of G's weights.
        if let Some(ema) = &mut self.ema {
            ema.update(&self.gan.g_vars)?;
        }
        self.step += 1;
        Ok(stats)
    }

    /// The learning rates' multiplier for this step (see [`crate::config::TrainConfig::lr_decay_epochs`]).
    fn rate_factor(&self) -> f64 {
        let progress = self.epoch as f64 + self.epoch_fraction;
        self.gan.config.learning_rate_factor(progress)
    }

    /// One update of D; returns its loss and its mean judgements of the real and fake images.
    fn update_discriminator(
        &mut self,
        real: &Tensor,
        labels: Option<&Tensor>,
    ) -> Result<(f32, f32, f32), TrainError> {
        self.gan.discriminator.update_spectral_norm()?;
        let fake = self.generate(real.dim(0)?, labels)?.detach();
        let real_logits = self.discriminate(real, labels, None)?;
        let fake_logits = self.discriminate(&fake, labels, None)?;
        let d_loss = self.discriminator_loss(real, &fake, labels, &real_logits, &fake_logits)?;
        let d_loss_value = self.finite("D loss", d_loss.to_scalar::<f32>()?)?;
        self.d_adam.step(
            &d_loss.backward()?,
            self.gan.config.lr_d * self.rate_factor(),
        )?;
        let (d_real, d_fake) = self.judgements(&real_logits, &fake_logits)?;
        Ok((d_loss_value, d_real, d_fake))
    }

    /// One update of G on `batch` fakes (of uniformly drawn digits when `conditional`), judged
    /// by D, whose weights stay as they are: the gradients flow through a frozen copy to G,
    /// not into D. Returns G's loss.
    fn update_generator(&mut self, batch: usize, conditional: bool) -> Result<f32, TrainError> {
        let asked = match conditional {
            true => Some(self.random_labels(batch)?),
            false => None,
        };
        let fake = self.generate(batch, asked.as_ref())?;
        let frozen =
            Discriminator::frozen(&self.gan.config.model, &self.gan.d_vars, &self.gan.device)?;
        let fake_logits = self.discriminate(&fake, asked.as_ref(), Some(&frozen))?;
        let g_loss = match self.gan.config.loss {
            Loss::Bce => bce_with_logits(&fake_logits, 1.0)?,
            Loss::Hinge | Loss::WganGp => fake_logits.mean_all()?.neg()?,
        };
        let g_loss_value = self.finite("G loss", g_loss.to_scalar::<f32>()?)?;
        self.g_adam.step(
            &g_loss.backward()?,
            self.gan.config.lr_g * self.rate_factor(),
        )?;
        Ok(g_loss_value)
    }

    /// A batch of fakes from fresh noise (of the digits `labels` for a conditional GAN), in
    /// training mode.
    fn generate(&mut self, batch: usize, labels: Option<&Tensor>) -> Result<Tensor, TrainError> {
        let z = self.gan.noise(batch, &mut self.noise_rng)?;
        let mut pass = Pass::train(&mut self.noise_rng);
        Ok(self.gan.generator.forward(&z, labels, &mut pass)?)
    }

    /// `batch` digits drawn uniformly, as a `(batch,)` u32 tensor.
    fn random_labels(&mut self, batch: usize) -> Result<Tensor, TrainError> {
        use rand::Rng as _;
        let digits = (0..batch)
            .map(|_| self.noise_rng.random_range(0..CLASSES as u32))
            .collect();
        Ok(Tensor::from_vec(digits, batch, &self.gan.device)?)
    }

    /// D's loss under the config's [`Loss`].
    fn discriminator_loss(
        &mut self,
        real: &Tensor,
        fake: &Tensor,
        labels: Option<&Tensor>,
        real_logits: &Tensor,
        fake_logits: &Tensor,
    ) -> Result<Tensor, TrainError> {
        let config = &self.gan.config;
        Ok(match config.loss {
            Loss::Bce => {
                (bce_with_logits(real_logits, config.real_label)?
                    + bce_with_logits(fake_logits, config.fake_label)?)?
            }
            Loss::Hinge => (hinge(real_logits, true)? + hinge(fake_logits, false)?)?,
            Loss::WganGp => {
                let gp_weight = config.gp_weight as f64;
                let between = self.interpolate(real, fake)?;
                let penalty = gradient_penalty(&self.gan.discriminator, &between, labels)?;
                ((fake_logits.mean_all()? - real_logits.mean_all()?)? + (penalty * gp_weight)?)?
            }
        })
    }

    /// What D made of the batch: mean D(x) and D(G(z)), as probabilities under BCE, as raw
    /// scores under the hinge and Wasserstein losses.
    fn judgements(
        &self,
        real_logits: &Tensor,
        fake_logits: &Tensor,
    ) -> Result<(f32, f32), TrainError> {
        let mean = |logits: &Tensor| -> candle_core::Result<f32> {
            match self.gan.config.loss {
                Loss::Bce => sigmoid(logits)?.mean_all()?.to_scalar::<f32>(),
                Loss::Hinge | Loss::WganGp => logits.mean_all()?.to_scalar::<f32>(),
            }
        };
        Ok((mean(real_logits)?, mean(fake_logits)?))
    }

    fn interpolate(&mut self, real: &Tensor, fake: &Tensor) -> Result<Tensor, TrainError> {
        let batch = real.dim(0)?;
        let t = rng::uniform(
            &mut self.noise_rng,
            (batch, 1, 1, 1),
            0.0,
            1.0,
            real.device(),
        )?;
        Ok((real.broadcast_mul(&t)? + fake.broadcast_mul(&(1.0 - &t)?)?)?)
    }

    /// D's logits for `images` (as `labels` when conditional), with instance noise when
    /// configured; through `frozen` (D's frozen copy) when given.
    fn discriminate(
        &mut self,
        images: &Tensor,
        labels: Option<&Tensor>,
        frozen: Option<&Discriminator>,
    ) -> Result<Tensor, TrainError> {
        let sigma = self.gan.config.instance_noise;
        let images = if sigma > 0.0 {
            (images
                + rng::randn(
                    &mut self.noise_rng,
                    images.shape(),
                    0.0,
                    sigma,
                    images.device(),
                )?)?
        } else {
            images.clone()
        };
        let discriminator = frozen.unwrap_or(&self.gan.discriminator);
        let mut pass = Pass::train(&mut self.noise_rng);
        Ok(discriminator.forward(&images, labels, &mut pass)?)
    }

    fn finite(&self, what: &'static str, value: f32) -> Result<f32, TrainError> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(TrainError::NonFinite {
                what,
                value,
                epoch: self.epoch + 1,
                step: self.step + 1,
                last_good: self.epoch,
            })
        }
    }
}

impl StepStats {
    /// The sum of two steps' statistics.
    pub(super) fn plus(&self, other: &StepStats) -> StepStats {
        StepStats {
            d_loss: self.d_loss + other.d_loss,
            g_loss: self.g_loss + other.g_loss,
            d_real: self.d_real + other.d_real,
            d_fake: self.d_fake + other.d_fake,
        }
    }

    /// Each statistic divided by `n`: the mean of a sum of `n` steps.
    pub(super) fn divided_by(&self, n: f32) -> StepStats {
        StepStats {
            d_loss: self.d_loss / n,
            g_loss: self.g_loss / n,
            d_real: self.d_real / n,
            d_fake: self.d_fake / n,
        }
    }
}
