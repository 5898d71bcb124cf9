//! `mnist-gan train`: a GAN from a preset or config file, or a run resumed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use gan_lib::config::{TrainConfig, DEFAULT_PRESET};
use gan_lib::data::hub::HubOptions;
use gan_lib::data::{Mnist, Split};
use gan_lib::train::{BudgetClock, Trainer};

use crate::progress::Progress;

#[derive(Args, Default)]
pub(crate) struct TrainArgs {
    /// Preset to start from (see `mnist-gan presets`).
    #[arg(long, default_value = DEFAULT_PRESET)]
    pub(crate) preset: String,
    /// A TOML config file instead of a preset.
    #[arg(long, conflicts_with = "preset")]
    pub(crate) config: Option<PathBuf>,
    /// Epochs to train.
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Time budget: stop before an epoch that would end past this many minutes of training,
    /// saving everything as at a normal end (`--resume` continues later).
    #[arg(long, value_name = "N")]
    pub(crate) minutes: Option<f64>,
    /// For tests: measure --minutes by a clock on which every step takes this many seconds.
    #[arg(long, hide = true, requires = "minutes", value_name = "SECONDS")]
    pub(crate) seconds_per_step: Option<f64>,
    /// Real images per step.
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Generator learning rate.
    #[arg(long)]
    pub(crate) lr_g: Option<f64>,
    /// Discriminator learning rate.
    #[arg(long)]
    pub(crate) lr_d: Option<f64>,
    /// Random seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Train on the first N images only.
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Write a sample grid every N epochs.
    #[arg(long)]
    pub(crate) sample_every: Option<usize>,
    /// Any other config value, as a TOML key path: `--set model.d_dropout=0.2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) overrides: Vec<String>,
    /// Folder holding the runs.
    #[arg(long, default_value = "outputs")]
    pub(crate) out: PathBuf,
    /// Name of the run folder (default: the preset's name).
    #[arg(long)]
    pub(crate) run: Option<String>,
    /// Continue the run of this name (or folder) from its last checkpoint, with the config
    /// saved there (only --epochs, --minutes and --lr-scale change it).
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "preset", "config", "batch_size", "lr_g", "lr_d", "seed", "limit", "sample_every",
        "overrides", "run",
    ])]
    pub(crate) resume: Option<String>,
    /// With --resume: multiply both learning rates by this factor from here on (0.5 after a
    /// run diverged, say).
    #[arg(long, requires = "resume", value_name = "FACTOR")]
    pub(crate) lr_scale: Option<f64>,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// MNIST folder (IDX files); when it is absent MNIST comes from the Hugging Face hub.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Take MNIST from the Hugging Face hub (ylecun/mnist) even if local files exist.
    #[arg(long)]
    pub(crate) hub: bool,
    /// Run the whole loop for one short epoch on synthetic digits, to check a config (in a
    /// run folder of its own: never with --resume, which would overwrite a real run).
    #[arg(long, conflicts_with = "resume")]
    pub(crate) dry_run: bool,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub(crate) quiet: bool,
}

impl TrainArgs {
    /// `mnist-gan` alone: the default preset, as `mnist-gan train` trains it.
    pub(crate) fn default_preset() -> TrainArgs {
        TrainArgs {
            preset: DEFAULT_PRESET.into(),
            out: "outputs".into(),
            device: "cpu".into(),
            ..Default::default()
        }
    }
}

/// The config from the preset or file, with the command line's flags assigned to their fields
/// and its `--set KEY=VALUE` applied. The trainer validates the result.
fn resolve_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::preset(&args.preset)?,
    };
    if let Some(epochs) = args.epochs {
        config.epochs = epochs;
    }
    if let Some(batch_size) = args.batch_size {
        config.batch_size = batch_size;
    }
    if let Some(lr_g) = args.lr_g {
        config.lr_g = lr_g;
    }
    if let Some(lr_d) = args.lr_d {
        config.lr_d = lr_d;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if args.limit.is_some() {
        config.limit = args.limit;
    }
    if let Some(sample_every) = args.sample_every {
        config.sample_every = sample_every;
    }
    for assignment in &args.overrides {
        let (key, value) = assignment
            .split_once('=')
            .with_context(|| format!("--set {assignment}: expected KEY=VALUE"))?;
        config = config.with(key.trim(), value.trim())?;
    }
    Ok(config)
}

fn load_data(args: &TrainArgs) -> Result<Split> {
    let hub = HubOptions::default();
    let mnist = if args.hub {
        gan_lib::data::hub::load(&hub)?
    } else {
        let dir = args.data.clone().unwrap_or_else(Mnist::vendored_dir);
        Mnist::load_or_fetch(&dir, &hub)?
    };
    Ok(mnist.train)
}

pub(crate) fn train(args: TrainArgs) -> Result<()> {
    let time_budget = match args.minutes {
        Some(minutes) if !(minutes.is_finite() && minutes > 0.0 && minutes <= 525_600.0) => {
            bail!("--minutes {minutes}: give a positive number of minutes, at most a year")
        }
        minutes => minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
    };
    if let Some(scale) = args.lr_scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("--lr-scale {scale}: give a positive factor");
    }
    let device = gan_lib::device(&args.device)?;
    let mut trainer = match &args.resume {
        Some(run) => resume(&args, run, &device)?,
        None => {
            let mut config = resolve_config(&args)?;
            if args.dry_run {
                // One epoch; an asked-for 0 stays, for the trainer to refuse.
                config.epochs = config.epochs.min(1);
                config.name = format!("{}-dry-run", config.name);
            }
            let run = args.run.clone().unwrap_or_else(|| config.name.clone());
            Trainer::new(&config, args.out.join(run), &device)?
        }
    };
    trainer.time_budget = time_budget;
    if let Some(seconds) = args.seconds_per_step {
        let step = Duration::try_from_secs_f64(seconds)
            .with_context(|| format!("--seconds-per-step {seconds}"))?;
        trainer.budget_clock = BudgetClock::PerStep(step);
    }
    let config = trainer.gan.config.clone();
    let data = if args.dry_run {
        Split::synthetic(4 * config.batch_size, config.seed)
    } else {
        load_data(&args)?
    };
    let data = match config.limit {
        Some(n) => data.limit(n),
        None => data,
    };
    if !args.quiet {
        introduce(&trainer, &data, args.minutes, &device)?;
    }
    let mut progress = Progress::new(!args.quiet);
    trainer.train_with(&data, &mut |event| progress.show(&event))?;
    println!("Done: {}", trainer.run_dir.root.display());
    Ok(())
}

/// `--resume RUN`: the run's trainer, its learning rates scaled by `--lr-scale`.
fn resume(args: &TrainArgs, run: &str, device: &Device) -> Result<Trainer> {
    let dir = if Path::new(run).join("checkpoint.safetensors").exists() {
        PathBuf::from(run)
    } else {
        args.out.join(run)
    };
    let mut trainer = Trainer::resume(&dir, args.epochs, device)
        .with_context(|| format!("resuming {}", dir.display()))?;
    if let Some(scale) = args.lr_scale {
        trainer.scale_learning_rates(scale)?;
        let config = &trainer.gan.config;
        println!(
            "Learning rates now {:e} (G) and {:e} (D)",
            config.lr_g, config.lr_d
        );
    }
    println!(
        "Resuming {} after epoch {} (step {})",
        dir.display(),
        trainer.epoch,
        trainer.step
    );
    Ok(trainer)
}

/// What is about to be trained: both networks' layer tables and a line on the run.
fn introduce(trainer: &Trainer, data: &Split, minutes: Option<f64>, device: &Device) -> Result<()> {
    let config = &trainer.gan.config;
    println!("{}\n", trainer.gan.generator.summary(device)?);
    println!("{}\n", trainer.gan.discriminator.summary(device)?);
    println!(
        "Training {} ({:?} loss) on {} images for {} epochs{}, writing to {}",
        config.name,
        config.loss,
        data.len(),
        config.epochs,
        minutes
            .map(|m| format!(" or {m} minutes"))
            .unwrap_or_default(),
        trainer.run_dir.root.display()
    );
    if config.ema_decay > 0.0 {
        println!(
            "Samples and generator.safetensors use {}",
            config.generator_weights()
        );
    }
    Ok(())
}
