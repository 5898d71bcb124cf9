//! Training a GAN: the two networks ([`Gan`]), one training step ([`step`]), the run's folder
//! ([`RunDir`]), and the epoch loop with sample grids, loss curves and atomic checkpoints
//! ([`Trainer`]), which reports what it does as [`Event`]s and prints nothing.

mod error;
mod events;
mod gan;
mod run_dir;
mod step;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use crate::checkpoint::{self, CheckpointError, TensorFile};
use crate::config::{InvalidValue, TrainConfig};
use crate::data::{BatchOptions, PixelRange, Split, CLASSES};
use crate::ema::Ema;
use crate::models::Generator;
use crate::nn::Pass;
use crate::optim::Adam;
use crate::plot::{self, LossPoint, Picture};
use crate::rng::{self, Rng};

pub use error::TrainError;
pub use events::Event;
pub use gan::Gan;
pub use run_dir::RunDir;
use run_dir::{config_changes, saved_state, SavedState};
pub use step::StepStats;

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
    /// How far into the current epoch the next step is (0 to 1): the learning-rate schedule
    /// counts fractions of epochs.
    epoch_fraction: f64,
    /// Per-step losses of the whole run.
    pub history: Vec<LossPoint>,
    /// The run's folder and files.
    pub run_dir: RunDir,
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
        config
            .validate()
            .map_err(|e| e.in_config(format!("config {:?}", config.name)))?;
        let run_dir = RunDir::new(run_dir);
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
            g_adam: Adam::new(&gan.g_vars, config.betas)?,
            d_adam: Adam::new(&gan.d_vars, config.betas)?,
            data_rng: rng::seeded(config.seed.wrapping_add(1)),
            noise_rng: rng::seeded(config.seed.wrapping_add(2)),
            fixed_noise,
            fixed_labels,
            gan,
            epoch: 0,
            step: 0,
            epoch_fraction: 0.0,
            history: Vec::new(),
            run_dir,
            ema,
            time_budget: None,
            budget_clock: BudgetClock::Wall,
        };
        trainer.run_dir.create(config)?;
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
        let run_dir = RunDir::new(run_dir);
        let opened = if start == Start::Fresh && run_dir.has_files() {
            run_dir.set_aside("a fresh run was asked for".into())?
        } else if start == Start::Fresh || !run_dir.checkpoint().exists() {
            Opened::Started
        } else {
            let file = TensorFile::read(run_dir.checkpoint(), device)?;
            let saved = file.config()?;
            let epochs_done = saved_state(&file)?.epoch;
            // The description documents a preset; it changes nothing in training.
            let mut asked = config.clone();
            asked.description.clone_from(&saved.description);
            if let Some(changes) = config_changes(&asked, &saved, "the run") {
                run_dir.set_aside(format!("it was trained with another config ({changes})"))?
            } else if epochs_done >= config.epochs {
                run_dir.set_aside(format!("it had finished its {epochs_done} epochs"))?
            } else {
                let trainer = Trainer::resume(&run_dir.root, Some(config.epochs), device)?;
                let after_epoch = trainer.epoch;
                return Ok((trainer, Opened::Resumed { after_epoch }));
            }
        };
        Ok((Trainer::new(config, run_dir.root, device)?, opened))
    }

    /// Continues the run in `run_dir` from its last checkpoint, with the config saved there
    /// (its `epochs` replaced by `epochs` when given, to train longer).
    pub fn resume(
        run_dir: impl Into<PathBuf>,
        epochs: Option<usize>,
        device: &Device,
    ) -> Result<Trainer, TrainError> {
        let run_dir = RunDir::new(run_dir);
        let file = TensorFile::read(run_dir.checkpoint(), device)?;
        run_dir.check_config_file(&file.config()?)?;
        run_dir.remove_leftovers();
        let mut config = file.config()?;
        if let Some(epochs) = epochs {
            config.epochs = epochs;
        }
        let mut trainer = Trainer::new(&config, run_dir.root.clone(), device)?;
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
        trainer.history = run_dir.read_losses(state.step)?;
        run_dir.write_losses(&trainer.history)?;
        Ok(trainer)
    }

    /// Goes back to the run's last checkpoint (its start when none was written yet), with
    /// both learning rates multiplied by `lr_scale` (1 keeps them): what to do after
    /// [`TrainError::NonFinite`], when the trainer in memory stopped in the middle of an epoch.
    pub fn rollback(&mut self, lr_scale: f64) -> Result<(), TrainError> {
        let device = self.gan.device.clone();
        let mut restored = if self.run_dir.checkpoint().exists() {
            Trainer::resume(&self.run_dir.root, Some(self.gan.config.epochs), &device)?
        } else {
            Trainer::new(&self.gan.config, &self.run_dir.root, &device)?
        };
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
        config.validate().map_err(|e| {
            let message = format!("learning rates scaled by {scale}: {}", e.message);
            InvalidValue { message, ..e }.in_config(self.run_dir.config().display().to_string())
        })?;
        self.gan.config = config;
        Ok(())
    }

    /// Trains one epoch over `data`, then writes samples (every `sample_every` epochs and
    /// after the last), the loss CSV and curves, and a checkpoint. It runs on rayon's pool (see
    /// [`crate::on_pool`]), as the command-line tool does, so a notebook trains as fast.
    pub fn train_epoch(&mut self, data: &Split) -> Result<EpochReport, TrainError> {
        self.train_epoch_with(data, &mut |_| {})
    }

    /// [`Trainer::train_epoch`], telling `on_event` of each step ([`Event::Step`]).
    pub fn train_epoch_with(
        &mut self,
        data: &Split,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<EpochReport, TrainError> {
        // Once per epoch, not per step: a notebook cell other than the one that built the
        // networks numbers tensors afresh (see crate::notebook).
        crate::notebook::fresh_tensor_ids(
            &[&self.gan.g_vars, &self.gan.d_vars],
            &self.fixed_noise,
        )?;
        crate::on_pool(|| self.epoch_on_pool(data, on_event))
    }

    fn epoch_on_pool(
        &mut self,
        data: &Split,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<EpochReport, TrainError> {
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
        let steps = batches.total();
        let started = Instant::now();
        let mut sum = StepStats::default();
        let mut done = 0;
        for batch in batches {
            let batch = batch?;
            let labels = config.model.conditional().then_some(&batch.labels);
            self.epoch_fraction = done as f64 / steps.max(1) as f64;
            let stats = self.step(&batch.images, labels)?;
            self.history.push(LossPoint {
                step: self.step,
                d_loss: stats.d_loss,
                g_loss: stats.g_loss,
            });
            sum = sum.plus(&stats);
            done += 1;
            on_event(Event::Step {
                epoch: self.epoch + 1,
                epochs: config.epochs,
                done,
                steps,
                mean: sum.divided_by(done as f32),
            });
        }
        self.data_rng = data_rng;
        self.epoch += 1;
        self.epoch_fraction = 0.0;
        let seconds = started.elapsed().as_secs_f64();
        let samples = self.write_epoch_files()?;
        Ok(EpochReport {
            epoch: self.epoch,
            mean: sum.divided_by(done.max(1) as f32),
            seconds,
            images_per_second: done.max(1) as f64 * config.batch_size as f64 / seconds.max(1e-9),
            samples,
        })
    }

    /// What an epoch leaves on disk: its samples (every `sample_every` epochs and after the
    /// last; returned), the loss CSV and curves, and the checkpoint.
    fn write_epoch_files(&self) -> Result<Option<Picture>, TrainError> {
        let config = &self.gan.config;
        let samples =
            if self.epoch.is_multiple_of(config.sample_every) || self.epoch == config.epochs {
                let picture = self.sample_grid()?;
                picture.save(self.run_dir.samples(self.epoch))?;
                Some(picture)
            } else {
                None
            };
        self.run_dir.write_losses(&self.history)?;
        plot::loss_curves(&self.history, &format!("{}: losses", config.name))?
            .save(self.run_dir.losses_png())?;
        self.save_checkpoint()?;
        Ok(samples)
    }

    /// Trains the remaining epochs, then writes the final generator and discriminator
    /// weights and the training movie. With a [`Trainer::time_budget`], it stops before an
    /// epoch that would end past the budget (judged by the last epoch's time; the first epoch
    /// always runs) and ends as after the last epoch: samples, weights, checkpoint.
    /// The reports it returns hold no pictures: each epoch's grid is in `images/` (a run of
    /// 150 epochs kept 150 MiB of them in memory).
    pub fn train(&mut self, data: &Split) -> Result<Vec<EpochReport>, TrainError> {
        self.train_with(data, &mut |_| {})
    }

    /// [`Trainer::train`], telling `on_event` what happens: each step, each epoch, a budget
    /// reached, the movie.
    pub fn train_with(
        &mut self,
        data: &Split,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Vec<EpochReport>, TrainError> {
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
                    on_event(Event::BudgetReached {
                        budget,
                        epoch: self.epoch,
                        epochs: self.gan.config.epochs,
                        trained: elapsed(self),
                        last_epoch: last,
                    });
                    if !self.run_dir.samples(self.epoch).exists() {
                        self.sample_grid()?.save(self.run_dir.samples(self.epoch))?;
                    }
                    break;
                }
            }
            let epoch_started = elapsed(self);
            let report = EpochReport {
                samples: None,
                ..self.train_epoch_with(data, on_event)?
            };
            last_epoch = Some(elapsed(self).saturating_sub(epoch_started));
            on_event(Event::Epoch {
                report: &report,
                epochs: self.gan.config.epochs,
            });
            reports.push(report);
        }
        self.save_final()?;
        // The movie is a bonus: a failure to make it leaves the finished run as it is.
        match crate::movie::Movie::from_run(&self.run_dir.root, 400)
            .and_then(|movie| movie.save(self.run_dir.movie()))
        {
            Ok(()) => on_event(Event::Movie(self.run_dir.movie())),
            Err(e) => on_event(Event::NoMovie(e.to_string())),
        }
        Ok(reports)
    }

    /// The generator that draws the run's samples: the moving average when there is one.
    pub fn sampling_generator(&self) -> &Generator {
        match &self.ema {
            Some(ema) => &ema.generator,
            None => &self.gan.generator,
        }
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
        let images = self.sampling_generator().forward(
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
        self.run_dir
            .write_checkpoint(tensors, &state, &self.gan.config)
    }

    /// Writes `generator.safetensors` (the moving average of G's weights when the run keeps
    /// one, else G's weights) and `discriminator.safetensors`.
    pub fn save_final(&self) -> Result<(), TrainError> {
        let g_vars = self.ema.as_ref().map_or(&self.gan.g_vars, |e| &e.vars);
        checkpoint::save_weights(self.run_dir.generator(), g_vars, &self.gan.config)?;
        checkpoint::save_weights(
            self.run_dir.discriminator(),
            &self.gan.d_vars,
            &self.gan.config,
        )?;
        Ok(())
    }
}
