//! Training a GAN: the two networks with their optimisers ([`Gan`]), one training step, and
//! the epoch loop with progress bars, sample grids, loss curves and atomic checkpoints
//! ([`Trainer`]). A run lives in one folder:
//!
//! ```text
//! outputs/<run>/config.toml               the resolved config
//!               images/epoch_0001.png     fixed-noise samples
//!               losses.csv, losses.png    per-step losses and their curves
//!               checkpoint.safetensors    G, D, both Adams, epoch, step, RNG state
//!               generator.safetensors     final weights (config in the metadata)
//!               discriminator.safetensors
//!               training.gif              the grids of every epoch, animated
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointError, TensorFile, STATE_KEY};
use crate::config::{ConfigError, Loss, ModelConfig, TrainConfig};
use crate::data::{BatchOptions, PixelRange, Split, CLASSES};
use crate::ema::Ema;
use crate::models::{gradient_penalty, Discriminator, Generator};
use crate::nn::{bce_with_logits, hinge, init_weights, sigmoid, InitScheme, Pass};
use crate::optim::Adam;
use crate::plot::{self, LossPoint, Picture};
use crate::rng::{self, Rng};

/// Failures of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The config is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A picture could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// A file of the run could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A loss became NaN or infinite.
    #[error("training diverged: {what} is {value} at epoch {epoch}, step {step}; the update it would have made was not applied; {}. {}", on_disk(*last_good), ROLLBACK_HINT)]
    NonFinite {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: f32,
        /// The epoch (1-based).
        epoch: usize,
        /// The global step.
        step: u64,
        /// Last epoch saved.
        last_good: usize,
    },
    /// `--resume` found a run whose config differs.
    #[error("{}: cannot resume: {message}", path.display())]
    Resume {
        /// The run folder.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

const ROLLBACK_HINT: &str = "To go back to it with smaller learning rates: \
    `mnist-gan train --resume RUN --lr-scale 0.5`, or `trainer.rollback(0.5)` in code";

/// What a run has on disk after a failure in the epoch after `last_good`.
fn on_disk(last_good: usize) -> String {
    match last_good {
        0 => "no checkpoint has been written yet (the first epoch did not finish): the run \
              starts again from its beginning"
            .into(),
        n => format!("checkpoint.safetensors holds the end of epoch {n}, intact"),
    }
}

/// A generator and a discriminator, each with its own variables.
pub struct Gan {
    /// The run's config.
    pub config: TrainConfig,
    /// The generator.
    pub generator: Generator,
    /// The discriminator.
    pub discriminator: Discriminator,
    /// The generator's variables (G's loss also reaches D's, so they are kept apart).
    pub g_vars: VarMap,
    /// The discriminator's variables.
    pub d_vars: VarMap,
    /// Where the tensors live.
    pub device: Device,
}

impl Gan {
    /// Builds both networks and draws their weights from `rng`.
    pub fn new(config: &TrainConfig, device: &Device, rng: &mut Rng) -> candle_core::Result<Gan> {
        let (g_vars, d_vars) = (VarMap::new(), VarMap::new());
        let generator = Generator::new(
            &config.model,
            config.latent_dim,
            VarBuilder::from_varmap(&g_vars, DType::F32, device),
        )?;
        let discriminator = Discriminator::new(
            &config.model,
            VarBuilder::from_varmap(&d_vars, DType::F32, device),
        )?;
        let scheme = match &config.model {
            ModelConfig::Dcgan(c) => c.init,
            ModelConfig::Mlp(_) => InitScheme::Default,
        };
        init_weights(&g_vars, scheme, rng)?;
        init_weights(&d_vars, scheme, rng)?;
        Ok(Gan {
            config: config.clone(),
            generator,
            discriminator,
            g_vars,
            d_vars,
            device: device.clone(),
        })
    }

    /// Loads a generator saved by training (`generator.safetensors`, or a checkpoint); the
    /// architecture comes from the config stored in the file.
    pub fn load_generator(
        path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(Generator, TrainConfig), CheckpointError> {
        Gan::generator_from(&TensorFile::read(path, device)?, device)
    }

    /// [`Gan::load_generator`] from a file already read.
    pub fn generator_from(
        file: &TensorFile,
        device: &Device,
    ) -> Result<(Generator, TrainConfig), CheckpointError> {
        let config = file.config()?;
        let vars = VarMap::new();
        let generator = Generator::new(
            &config.model,
            config.latent_dim,
            VarBuilder::from_varmap(&vars, DType::F32, device),
        )
        .map_err(|e| CheckpointError::Format {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        // A checkpoint holds both; it draws with the average when the run keeps one.
        file.load_into(&vars, generator_prefix(file, &config))?;
        Ok((generator, config))
    }

    /// Loads the generator's weights from `file` (a `generator.safetensors`, or a checkpoint,
    /// whose moving average it takes when the run keeps one) into this GAN's generator, after
    /// checking that the file holds the same kind of generator: a conditional generator's
    /// weights never load into an unconditional one, nor the reverse.
    pub fn load_generator_weights(&self, file: &TensorFile) -> Result<(), CheckpointError> {
        let saved = file.config()?;
        let message = match (saved.model.conditional(), self.config.model.conditional()) {
            (true, false) => Some("holds a conditional generator (model.conditional = true), but this model is unconditional"),
            (false, true) => Some("holds an unconditional generator, but this model is conditional (model.conditional = true)"),
            _ => None,
        };
        if let Some(message) = message {
            return Err(CheckpointError::Format {
                path: file.path.clone(),
                message: message.into(),
            });
        }
        file.load_into(&self.g_vars, generator_prefix(file, &saved))
    }

    /// `n` noise vectors from `rng`.
    pub fn noise(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        rng::randn(rng, (n, self.config.latent_dim), 0.0, 1.0, &self.device)
    }
}

/// The generator's tensors in `file`: a checkpoint holds G, D and the moving average (drawn
/// with when the run keeps one); a weights file holds one network under no prefix.
fn generator_prefix(file: &TensorFile, config: &TrainConfig) -> &'static str {
    match (
        file.metadata.contains_key(STATE_KEY),
        config.ema_decay > 0.0,
    ) {
        (true, true) => "g_ema.",
        (true, false) => "g.",
        (false, _) => "",
    }
}

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

/// Where a run writes its files.
#[derive(Clone, Debug)]
pub struct RunPaths {
    /// The run folder.
    pub root: PathBuf,
}

impl RunPaths {
    /// The resolved config.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// Sample grid of an epoch (1-based).
    pub fn samples(&self, epoch: usize) -> PathBuf {
        self.root
            .join("images")
            .join(format!("epoch_{epoch:04}.png"))
    }
    /// Per-step losses.
    pub fn losses_csv(&self) -> PathBuf {
        self.root.join("losses.csv")
    }
    /// Loss curves.
    pub fn losses_png(&self) -> PathBuf {
        self.root.join("losses.png")
    }
    /// The resumable checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    /// Final generator weights.
    pub fn generator(&self) -> PathBuf {
        self.root.join("generator.safetensors")
    }
    /// Final discriminator weights.
    pub fn discriminator(&self) -> PathBuf {
        self.root.join("discriminator.safetensors")
    }
    /// The sample grids of every epoch as an animated GIF.
    pub fn movie(&self) -> PathBuf {
        self.root.join("training.gif")
    }
}

/// State saved in a checkpoint besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SavedState {
    epoch: usize,
    step: u64,
    g_adam_step: u64,
    d_adam_step: u64,
    data_rng: Rng,
    noise_rng: Rng,
    #[serde(default)]
    ema_updates: u64,
}

/// What a finished epoch reports.
#[derive(Clone, Debug)]
pub struct EpochReport {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Mean statistics over its steps.
    pub mean: StepStats,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Images per second (real images seen by D).
    pub images_per_second: f64,
    /// The fixed-noise samples after it, when written.
    pub samples: Option<Picture>,
}

/// How [`Trainer::open`] treats a run already in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Continue an unfinished run of the same config; otherwise start afresh.
    Continue,
    /// Start afresh whatever the folder holds.
    Fresh,
}

/// What [`Trainer::open`] did with the run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A new run in a folder that held none.
    Started,
    /// The run there, continued after its last finished epoch.
    Resumed {
        /// Epochs it had finished.
        after_epoch: usize,
    },
    /// A new run; the folder's earlier run was moved to `kept`.
    Restarted {
        /// Where the earlier run now lies.
        kept: PathBuf,
        /// Why it was set aside.
        reason: String,
    },
}

impl std::fmt::Display for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Started => write!(f, "a new run"),
            Opened::Resumed { after_epoch } => {
                write!(f, "resuming the run after its epoch {after_epoch}")
            }
            Opened::Restarted { kept, reason } => write!(
                f,
                "a new run: the one there before is kept in {} ({reason})",
                kept.display()
            ),
        }
    }
}

/// The training loop and everything around it.
pub struct Trainer {
    /// The networks.
    pub gan: Gan,
    g_adam: Adam,
    d_adam: Adam,
    data_rng: Rng,
    noise_rng: Rng,
    fixed_noise: Tensor,
    /// The digits of the grid's rows, for a conditional run.
    fixed_labels: Option<Tensor>,
    /// Epochs finished.
    pub epoch: usize,
    /// Steps (generator updates) finished.
    pub step: u64,
    /// Per-step losses of the whole run.
    pub history: Vec<LossPoint>,
    /// The run's files.
    pub paths: RunPaths,
    /// Show progress bars.
    pub progress: bool,
    /// The moving average of G's weights, when the config asks for one.
    pub ema: Option<Ema>,
    /// Stop [`Trainer::train`] before an epoch that would end past this much training time.
    pub time_budget: Option<Duration>,
    /// The clock [`Trainer::time_budget`] is measured by.
    pub budget_clock: BudgetClock,
}

/// The clock a [`Trainer::time_budget`] is measured by.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum BudgetClock {
    /// The machine's clock: real training time.
    #[default]
    Wall,
    /// Every training step counts as this long, however long it took: epochs of a known
    /// length, to test a budget or to plan one for another machine.
    PerStep(Duration),
}

impl Trainer {
    /// Starts a fresh run in `run_dir` (created; its config written there). The config is
    /// validated first, so one built field by field in code gets the same checks as a file.
    pub fn new(
        config: &TrainConfig,
        run_dir: impl Into<PathBuf>,
        device: &Device,
    ) -> Result<Trainer, TrainError> {
        config.validate().map_err(|message| {
            TrainError::Config(ConfigError::Invalid {
                path: format!("config {:?}", config.name),
                message,
            })
        })?;
        crate::default_threads();
        crate::tune_allocator();
        let paths = RunPaths {
            root: run_dir.into(),
        };
        let mut init_rng = rng::seeded(config.seed);
        let gan = Gan::new(config, device, &mut init_rng)?;
        // The grid's noise; a conditional run draws ten noise vectors once per digit, a row
        // per digit, so that each column shows one style through the digits.
        let mut grid_rng = rng::seeded(config.seed ^ 0xF1C5ED);
        let (fixed_noise, fixed_labels) = if config.model.conditional() {
            let styles = gan.noise(CLASSES, &mut grid_rng)?;
            let digits = (0..CLASSES * CLASSES).map(|i| (i / CLASSES) as u32);
            (
                Tensor::cat(&vec![styles; CLASSES], 0)?,
                Some(Tensor::from_vec(
                    digits.collect(),
                    CLASSES * CLASSES,
                    device,
                )?),
            )
        } else {
            (gan.noise(64, &mut grid_rng)?, None)
        };
        let ema = match config.ema_decay > 0.0 {
            true => Some(Ema::new(config, &gan.g_vars, device)?),
            false => None,
        };
        let trainer = Trainer {
            g_adam: Adam::new(&gan.g_vars, config.lr_g, config.betas)?,
            d_adam: Adam::new(&gan.d_vars, config.lr_d, config.betas)?,
            data_rng: rng::seeded(config.seed.wrapping_add(1)),
            noise_rng: rng::seeded(config.seed.wrapping_add(2)),
            fixed_noise,
            fixed_labels,
            gan,
            epoch: 0,
            step: 0,
            history: Vec::new(),
            paths,
            progress: true,
            ema,
            time_budget: None,
            budget_clock: BudgetClock::Wall,
        };
        std::fs::create_dir_all(&trainer.paths.root).map_err(|source| TrainError::Io {
            path: trainer.paths.root.clone(),
            source,
        })?;
        write_file(&trainer.paths.config(), config.to_toml().as_bytes())?;
        Ok(trainer)
    }

    /// Opens a run of `config` in `run_dir` the way a notebook's training cell wants, whenever
    /// it is run: with [`Start::Continue`] it picks up an unfinished run of the same config
    /// after its last finished epoch (a cell interrupted, the kernel restarted, or `epochs`
    /// raised to train longer), and starts afresh when the folder holds a finished run or one
    /// of another config. [`Start::Fresh`] always starts afresh. A run set aside is moved to
    /// `<run_dir>.previous` (replacing the one there), never deleted. What it did is returned
    /// beside the trainer, to show the student.
    pub fn open(
        config: &TrainConfig,
        run_dir: impl Into<PathBuf>,
        start: Start,
        device: &Device,
    ) -> Result<(Trainer, Opened), TrainError> {
        let paths = RunPaths {
            root: run_dir.into(),
        };
        let set_aside = |reason: String| -> Result<Opened, TrainError> {
            let kept = previous_run_dir(&paths.root);
            let io = |source| TrainError::Io {
                path: kept.clone(),
                source,
            };
            if kept.exists() {
                std::fs::remove_dir_all(&kept).map_err(io)?;
            }
            std::fs::rename(&paths.root, &kept).map_err(io)?;
            Ok(Opened::Restarted { kept, reason })
        };
        let opened = if start == Start::Fresh && has_files(&paths.root) {
            set_aside("a fresh run was asked for".into())?
        } else if start == Start::Fresh || !paths.checkpoint().exists() {
            Opened::Started
        } else {
            let file = TensorFile::read(paths.checkpoint(), device)?;
            let saved = file.config()?;
            let epochs_done = saved_state(&file)?.epoch;
            // The description documents a preset; it changes nothing in training.
            let mut asked = config.clone();
            asked.description.clone_from(&saved.description);
            if let Some(changes) = config_changes(&asked, &saved, "the run") {
                set_aside(format!("it was trained with another config ({changes})"))?
            } else if epochs_done >= config.epochs {
                set_aside(format!("it had finished its {epochs_done} epochs"))?
            } else {
                let trainer = Trainer::resume(paths.root, Some(config.epochs), device)?;
                let after_epoch = trainer.epoch;
                return Ok((trainer, Opened::Resumed { after_epoch }));
            }
        };
        Ok((Trainer::new(config, paths.root, device)?, opened))
    }

    /// Continues the run in `run_dir` from its last checkpoint, with the config saved there
    /// (its `epochs` replaced by `epochs` when given, to train longer).
    pub fn resume(
        run_dir: impl Into<PathBuf>,
        epochs: Option<usize>,
        device: &Device,
    ) -> Result<Trainer, TrainError> {
        crate::tune_allocator();
        let paths = RunPaths {
            root: run_dir.into(),
        };
        let file = TensorFile::read(paths.checkpoint(), device)?;
        check_config_file(&paths, &file.config()?)?;
        // Temporary files of writes cut short by a crash; what they were replacing is whole.
        crate::files::remove_leftovers(&paths.root);
        crate::files::remove_leftovers(&paths.root.join("images"));
        let mut config = file.config()?;
        if let Some(epochs) = epochs {
            config.epochs = epochs;
        }
        let mut trainer = Trainer::new(&config, paths.root.clone(), device)?;
        let state = saved_state(&file)?;
        file.load_into(&trainer.gan.g_vars, "g.")?;
        file.load_into(&trainer.gan.d_vars, "d.")?;
        if let Some(ema) = &mut trainer.ema {
            file.load_into(&ema.vars, "g_ema.")?;
            ema.updates = state.ema_updates;
        }
        let adam_error = |message| CheckpointError::Format {
            path: file.path.clone(),
            message,
        };
        trainer
            .g_adam
            .load_state(&file.with_prefix("g_adam."), state.g_adam_step)
            .map_err(adam_error)?;
        trainer
            .d_adam
            .load_state(&file.with_prefix("d_adam."), state.d_adam_step)
            .map_err(adam_error)?;
        (
            trainer.epoch,
            trainer.step,
            trainer.data_rng,
            trainer.noise_rng,
        ) = (state.epoch, state.step, state.data_rng, state.noise_rng);
        trainer.history = read_losses(&paths.losses_csv(), state.step)?;
        write_losses(&paths.losses_csv(), &trainer.history)?;
        Ok(trainer)
    }

    /// Goes back to the run's last checkpoint (its start when none was written yet), with
    /// both learning rates multiplied by `lr_scale` (1 keeps them): what to do after
    /// [`TrainError::NonFinite`], when the trainer in memory stopped in the middle of an epoch.
    pub fn rollback(&mut self, lr_scale: f64) -> Result<(), TrainError> {
        let device = self.gan.device.clone();
        let mut restored = if self.paths.checkpoint().exists() {
            Trainer::resume(&self.paths.root, Some(self.gan.config.epochs), &device)?
        } else {
            Trainer::new(&self.gan.config, &self.paths.root, &device)?
        };
        restored.progress = self.progress;
        restored.time_budget = self.time_budget;
        restored.budget_clock = self.budget_clock;
        restored.scale_learning_rates(lr_scale)?;
        *self = restored;
        Ok(())
    }

    /// Multiplies both learning rates by `scale` from the next step on; the run's next
    /// checkpoint and its config.toml record the new rates.
    pub fn scale_learning_rates(&mut self, scale: f64) -> Result<(), TrainError> {
        if scale == 1.0 {
            return Ok(());
        }
        let mut config = self.gan.config.clone();
        config.lr_g *= scale;
        config.lr_d *= scale;
        config.validate().map_err(|message| {
            TrainError::Config(ConfigError::Invalid {
                path: self.paths.config().display().to_string(),
                message: format!("learning rates scaled by {scale}: {message}"),
            })
        })?;
        self.g_adam.lr = config.lr_g;
        self.d_adam.lr = config.lr_d;
        self.gan.config = config;
        Ok(())
    }

    /// One step of an unconditional GAN on a batch of real images (see
    /// [`Trainer::train_step_with_labels`]).
    pub fn train_step(&mut self, real: &Tensor) -> Result<StepStats, TrainError> {
        self.train_step_with_labels(real, None)
    }

    /// One step: `d_steps` discriminator updates on real images and detached fakes, then one
    /// generator update, then the moving average of G's weights when there is one. Each loss
    /// is checked before its update, so a NaN leaves the networks as they were.
    ///
    /// A conditional GAN needs the real images' `(b,)` labels: D judges real digits as their
    /// labels and fakes as the digits G was asked for (the real batch's digits in D's
    /// update, so that penalty points between real and fake share a label; uniformly drawn
    /// digits in G's).
    pub fn train_step_with_labels(
        &mut self,
        real: &Tensor,
        labels: Option<&Tensor>,
    ) -> Result<StepStats, TrainError> {
        crate::notebook::fresh_tensor_ids(&[&self.gan.g_vars, &self.gan.d_vars], real)?;
        let labels = match (self.gan.config.model.conditional(), labels) {
            (true, Some(labels)) => Some(labels),
            (false, _) => None,
            (true, None) => {
                return Err(candle_core::Error::Msg(
                    "a conditional GAN trains on labelled batches: call train_step_with_labels"
                        .into(),
                )
                .into())
            }
        };
        let batch = real.dim(0)?;
        let mut stats = StepStats::default();

        // (1) Discriminator: real digits against detached fakes.
        for _ in 0..self.gan.config.d_steps {
            self.gan.discriminator.update_spectral_norm()?;
            let fake = self.generate(batch, labels)?.detach();
            let real_logits = self.discriminate(real, labels, None)?;
            let fake_logits = self.discriminate(&fake, labels, None)?;
            let d_loss =
                self.discriminator_loss(real, &fake, labels, &real_logits, &fake_logits)?;
            stats.d_loss = self.finite("D loss", d_loss.to_scalar::<f32>()?)?;
            self.d_adam.step(&d_loss.backward()?)?;
            (stats.d_real, stats.d_fake) = self.judgements(&real_logits, &fake_logits)?;
        }

        // (2) Generator: fakes judged by D, whose weights stay as they are (the gradients
        // flow through a frozen copy to G, not into D).
        let asked = match labels {
            Some(_) => Some(self.random_labels(batch)?),
            None => None,
        };
        let fake = self.generate(batch, asked.as_ref())?;
        let frozen =
            Discriminator::frozen(&self.gan.config.model, &self.gan.d_vars, &self.gan.device)?;
        let fake_logits = self.discriminate(&fake, asked.as_ref(), Some(&frozen))?;
        let g_loss = match self.gan.config.loss {
            Loss::Bce => bce_with_logits(&fake_logits, 1.0)?,
            Loss::Hinge | Loss::WganGp => fake_logits.mean_all()?.neg()?,
        };
        stats.g_loss = self.finite("G loss", g_loss.to_scalar::<f32>()?)?;
        self.g_adam.step(&g_loss.backward()?)?;

        // (3) The moving average of G's weights.
        if let Some(ema) = &mut self.ema {
            ema.update(&self.gan.g_vars)?;
        }
        self.step += 1;
        Ok(stats)
    }

    /// A batch of fakes from fresh noise (of the digits `labels` for a conditional GAN), in
    /// training mode.
    fn generate(&mut self, batch: usize, labels: Option<&Tensor>) -> Result<Tensor, TrainError> {
        let z = self.gan.noise(batch, &mut self.noise_rng)?;
        let mut pass = Pass::train(&mut self.noise_rng);
        Ok(self
            .gan
            .generator
            .forward_with_labels(&z, labels, &mut pass)?)
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

    /// The generator that draws the run's samples: the moving average when there is one.
    pub fn sampling_generator(&self) -> &Generator {
        match &self.ema {
            Some(ema) => &ema.generator,
            None => &self.gan.generator,
        }
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
        Ok(discriminator.forward_with_labels(&images, labels, &mut pass)?)
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

    /// Trains one epoch over `data`, then writes samples (every `sample_every` epochs and
    /// after the last), the loss CSV and curves, and a checkpoint. It runs on rayon's pool (see
    /// [`crate::on_pool`]), as the command-line tool does, so a notebook trains as fast.
    pub fn train_epoch(&mut self, data: &Split) -> Result<EpochReport, TrainError> {
        crate::on_pool(|| self.train_epoch_on_pool(data))
    }

    fn train_epoch_on_pool(&mut self, data: &Split) -> Result<EpochReport, TrainError> {
        let config = self.gan.config.clone();
        let options = BatchOptions {
            batch_size: config.batch_size,
            range: PixelRange::Symmetric,
            shuffle: true,
            drop_last: true,
            rotation_degrees: config.rotation_degrees,
        };
        let device = self.gan.device.clone();
        let mut data_rng = self.data_rng.clone();
        let batches = data.batches(&options, &mut data_rng, &device);
        let bar = epoch_bar(
            self.progress,
            batches.total() as u64,
            self.epoch + 1,
            config.epochs,
        );
        let (started, first_step) = (Instant::now(), self.history.len());
        let mut sum = StepStats::default();
        let conditional = config.model.conditional();
        for batch in batches {
            let batch = batch?;
            let labels = conditional.then_some(&batch.labels);
            let stats = self.train_step_with_labels(&batch.images, labels)?;
            self.history.push(LossPoint {
                step: self.step,
                d_loss: stats.d_loss,
                g_loss: stats.g_loss,
            });
            for (total, value) in [
                (&mut sum.d_loss, stats.d_loss),
                (&mut sum.g_loss, stats.g_loss),
                (&mut sum.d_real, stats.d_real),
                (&mut sum.d_fake, stats.d_fake),
            ] {
                *total += value;
            }
            let n = (self.history.len() - first_step) as f32;
            bar.set_message(format!(
                "D {:.3}  G {:.3}  D(x) {:.2}  D(G(z)) {:.2}",
                sum.d_loss / n,
                sum.g_loss / n,
                sum.d_real / n,
                sum.d_fake / n
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        self.data_rng = data_rng;
        self.epoch += 1;
        let steps = (self.history.len() - first_step).max(1) as f32;
        let mean = StepStats {
            d_loss: sum.d_loss / steps,
            g_loss: sum.g_loss / steps,
            d_real: sum.d_real / steps,
            d_fake: sum.d_fake / steps,
        };
        let seconds = started.elapsed().as_secs_f64();
        let samples =
            if self.epoch.is_multiple_of(config.sample_every) || self.epoch == config.epochs {
                let picture = self.sample_grid()?;
                picture.save(self.paths.samples(self.epoch))?;
                Some(picture)
            } else {
                None
            };
        write_losses(&self.paths.losses_csv(), &self.history)?;
        plot::loss_curves(&self.history, &format!("{}: losses", config.name))?
            .save(self.paths.losses_png())?;
        self.save_checkpoint()?;
        Ok(EpochReport {
            epoch: self.epoch,
            mean,
            seconds,
            images_per_second: steps as f64 * config.batch_size as f64 / seconds.max(1e-9),
            samples,
        })
    }

    /// Trains the remaining epochs, printing a summary line per epoch, then writes the final
    /// generator and discriminator weights. With a [`Trainer::time_budget`], it stops before
    /// an epoch that would end past the budget (judged by the last epoch's time; the first
    /// epoch always runs) and ends as after the last epoch: samples, weights, checkpoint.
    /// The reports it returns hold no pictures: each epoch's grid is in `images/` (a run of
    /// 150 epochs kept 150 MiB of them in memory).
    pub fn train(&mut self, data: &Split) -> Result<Vec<EpochReport>, TrainError> {
        let mut reports = Vec::new();
        let (started, first_step) = (Instant::now(), self.step);
        let elapsed = |trainer: &Trainer| match trainer.budget_clock {
            BudgetClock::Wall => started.elapsed(),
            BudgetClock::PerStep(step) => {
                step.mul_f64(trainer.step.saturating_sub(first_step) as f64)
            }
        };
        let mut last_epoch: Option<Duration> = None;
        while self.epoch < self.gan.config.epochs {
            if let (Some(budget), Some(last)) = (self.time_budget, last_epoch) {
                if elapsed(self) + last > budget {
                    if self.progress {
                        println!(
                            "Time budget of {:.1} min: stopping after epoch {} of {} ({:.1} min trained; one more epoch takes about {:.0} s)",
                            budget.as_secs_f64() / 60.0,
                            self.epoch,
                            self.gan.config.epochs,
                            elapsed(self).as_secs_f64() / 60.0,
                            last.as_secs_f64()
                        );
                    }
                    if !self.paths.samples(self.epoch).exists() {
                        self.sample_grid()?.save(self.paths.samples(self.epoch))?;
                    }
                    break;
                }
            }
            let epoch_started = elapsed(self);
            let report = EpochReport {
                samples: None,
                ..self.train_epoch(data)?
            };
            last_epoch = Some(elapsed(self).saturating_sub(epoch_started));
            if self.progress {
                let m = report.mean;
                println!(
                    "epoch {:>3}/{}  D loss {:.4}  G loss {:.4}  D(x) {:.3}  D(G(z)) {:.3}  {:.1}s  {:.0} img/s",
                    report.epoch, self.gan.config.epochs, m.d_loss, m.g_loss, m.d_real, m.d_fake, report.seconds, report.images_per_second
                );
            }
            reports.push(report);
        }
        self.save_final()?;
        // The movie is a bonus: a failure to make it leaves the finished run as it is.
        match crate::movie::Movie::from_run(&self.paths.root, 400)
            .and_then(|movie| movie.save(self.paths.movie()))
        {
            Ok(()) if self.progress => {
                println!("Training movie: {}", self.paths.movie().display())
            }
            Ok(()) => {}
            Err(e) => eprintln!("warning: no training movie: {e}"),
        }
        Ok(reports)
    }

    /// What a notebook shows after an epoch: the fixed-noise samples beside the loss curves of
    /// the whole run so far.
    pub fn view(&self) -> Result<Picture, TrainError> {
        let curves =
            plot::loss_curves(&self.history, &format!("{}: losses", self.gan.config.name))?;
        Ok(plot::beside(&[&self.sample_grid()?, &curves]))
    }

    /// The fixed-noise samples (8x8; 10x10 for a conditional GAN, a row per digit, a column
    /// per noise vector), generated in evaluation mode, scaled up 2x.
    pub fn sample_grid(&self) -> Result<Picture, TrainError> {
        let images = self.sampling_generator().forward_with_labels(
            &self.fixed_noise,
            self.fixed_labels.as_ref(),
            &mut Pass::eval(),
        )?;
        let nrow = if self.fixed_labels.is_some() {
            CLASSES
        } else {
            8
        };
        Ok(plot::tensor_grid(&images, nrow, 2)?)
    }

    /// Writes the checkpoint: G, D, both optimisers' moments, epoch, step and RNG states.
    pub fn save_checkpoint(&self) -> Result<(), TrainError> {
        let mut tensors = checkpoint::named_vars(&self.gan.g_vars, "g.");
        tensors.extend(checkpoint::named_vars(&self.gan.d_vars, "d."));
        if let Some(ema) = &self.ema {
            tensors.extend(checkpoint::named_vars(&ema.vars, "g_ema."));
        }
        tensors.extend(
            self.g_adam
                .state()
                .into_iter()
                .map(|(k, v)| (format!("g_adam.{k}"), v)),
        );
        tensors.extend(
            self.d_adam
                .state()
                .into_iter()
                .map(|(k, v)| (format!("d_adam.{k}"), v)),
        );
        let state = SavedState {
            epoch: self.epoch,
            step: self.step,
            g_adam_step: self.g_adam.step,
            d_adam_step: self.d_adam.step,
            data_rng: self.data_rng.clone(),
            noise_rng: self.noise_rng.clone(),
            ema_updates: self.ema.as_ref().map_or(0, |e| e.updates),
        };
        let metadata = HashMap::from([
            (checkpoint::CONFIG_KEY.to_owned(), self.gan.config.to_toml()),
            (
                STATE_KEY.to_owned(),
                serde_json::to_string(&state).expect("state serialises"),
            ),
        ]);
        checkpoint::write_tensors(self.paths.checkpoint(), tensors, metadata)?;
        // After the checkpoint, so that the two differ only for the instant between.
        write_file(&self.paths.config(), self.gan.config.to_toml().as_bytes())
    }

    /// Writes `generator.safetensors` (the moving average of G's weights when the run keeps
    /// one, else G's weights) and `discriminator.safetensors`.
    pub fn save_final(&self) -> Result<(), TrainError> {
        let g_vars = self.ema.as_ref().map_or(&self.gan.g_vars, |e| &e.vars);
        checkpoint::save_weights(self.paths.generator(), g_vars, &self.gan.config)?;
        checkpoint::save_weights(
            self.paths.discriminator(),
            &self.gan.d_vars,
            &self.gan.config,
        )?;
        Ok(())
    }
}

/// The progress bar of one epoch (tqdm-like: steps, elapsed, remaining, rate, and a message
/// of running numbers), hidden unless `show`. Training and the classifier's training share it.
pub(crate) fn epoch_bar(show: bool, steps: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    let style = ProgressStyle::with_template(
        "epoch {prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
    )
    .expect("valid template");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// Refuses to resume when the run's `config.toml` was edited to differ from the config its
/// checkpoint was trained with (`epochs` aside): resuming would overwrite the edit silently.
fn check_config_file(paths: &RunPaths, saved: &TrainConfig) -> Result<(), TrainError> {
    let path = paths.config();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(TrainError::Io { path, source }),
    };
    let resume_error = |message: String| TrainError::Resume {
        path: paths.root.clone(),
        message,
    };
    let edited = TrainConfig::from_toml(&text, &path.display().to_string())
        .map_err(|e| resume_error(e.to_string()))?;
    match config_changes(&edited, saved, "the checkpoint") {
        None => Ok(()),
        Some(changes) => Err(resume_error(format!(
            "config.toml differs from the config saved in checkpoint.safetensors ({changes}). A \
             run resumes with the config its weights were trained with: undo the edit (or \
             delete config.toml), or train a new run with the new settings"
        ))),
    }
}

/// How `config` differs from `other` apart from `epochs` (up to three settings, as
/// "`a` where {other_name} has `b`"), or `None` when they agree.
/// Where [`Trainer::open`] keeps a run it sets aside: `<run_dir>.previous`.
fn previous_run_dir(run_dir: &Path) -> PathBuf {
    let mut name = run_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".previous");
    run_dir.with_file_name(name)
}

/// Whether `dir` exists and holds anything.
fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// The training state a checkpoint holds beside the weights (epoch, step, RNGs, Adam steps).
fn saved_state(file: &TensorFile) -> Result<SavedState, CheckpointError> {
    let text = file
        .metadata
        .get(STATE_KEY)
        .ok_or_else(|| CheckpointError::Format {
            path: file.path.clone(),
            message: "no training state: not a checkpoint".into(),
        })?;
    serde_json::from_str(text).map_err(|e| CheckpointError::Format {
        path: file.path.clone(),
        message: format!("training state: {e}"),
    })
}

fn config_changes(config: &TrainConfig, other: &TrainConfig, other_name: &str) -> Option<String> {
    let mut config = config.clone();
    config.epochs = other.epochs;
    let (config, other) = (config.to_toml(), other.to_toml());
    if config == other {
        return None;
    }
    let changes: Vec<String> = config
        .lines()
        .zip(other.lines())
        .filter(|(a, b)| a != b)
        .take(3)
        .map(|(a, b)| format!("`{}` where {other_name} has `{}`", a.trim(), b.trim()))
        .collect();
    Some(if changes.is_empty() {
        "in its layout".to_owned()
    } else {
        changes.join("; ")
    })
}

/// Writes a file of the run atomically (see [`checkpoint::write_atomic`]).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    Ok(checkpoint::write_atomic(path, bytes)?)
}

/// Writes the per-step losses as CSV (`step,d_loss,g_loss`), atomically.
fn write_losses(path: &Path, history: &[LossPoint]) -> Result<(), TrainError> {
    let mut text = String::from("step,d_loss,g_loss\n");
    for p in history {
        text.push_str(&format!("{},{},{}\n", p.step, p.d_loss, p.g_loss));
    }
    write_file(path, text.as_bytes())
}

/// Reads the losses written by an earlier run, up to `last_step`.
fn read_losses(path: &Path, last_step: u64) -> Result<Vec<LossPoint>, TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TrainError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let parse = |line: &str| -> Option<LossPoint> {
        let mut fields = line.split(',');
        Some(LossPoint {
            step: fields.next()?.parse().ok()?,
            d_loss: fields.next()?.parse().ok()?,
            g_loss: fields.next()?.parse().ok()?,
        })
    };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(parse)
        .filter(|p| p.step <= last_step)
        .collect())
}
