//! `mnist-gan`: train GANs on MNIST, sample from them, and list the presets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use gan_lib::config::{TrainConfig, DEFAULT_PRESET, PRESETS};
use gan_lib::data::hub::HubOptions;
use gan_lib::data::{idx, Mnist, Split};
use gan_lib::models::Pass;
use gan_lib::train::{Gan, Trainer};
use gan_lib::{plot, rng};

/// Generative adversarial networks on MNIST, with candle.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GAN (the default preset when given no arguments).
    Train(TrainArgs),
    /// Write digits from a trained generator as a grid PNG and an IDX file.
    Sample(SampleArgs),
    /// List the presets.
    Presets,
}

#[derive(Args, Default)]
struct TrainArgs {
    /// Preset to start from (see `mnist-gan presets`).
    #[arg(long, default_value = DEFAULT_PRESET)]
    preset: String,
    /// A TOML config file instead of a preset.
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Epochs to train.
    #[arg(long)]
    epochs: Option<usize>,
    /// Real images per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Generator learning rate.
    #[arg(long)]
    lr_g: Option<f64>,
    /// Discriminator learning rate.
    #[arg(long)]
    lr_d: Option<f64>,
    /// Random seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Train on the first N images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Write a sample grid every N epochs.
    #[arg(long)]
    sample_every: Option<usize>,
    /// Any other config value, as a TOML key path: `--set model.d_dropout=0.2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Folder holding the runs.
    #[arg(long, default_value = "outputs")]
    out: PathBuf,
    /// Name of the run folder (default: the preset's name).
    #[arg(long)]
    run: Option<String>,
    /// Continue the run of this name (or folder) from its last checkpoint.
    #[arg(long, value_name = "RUN")]
    resume: Option<String>,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads for candle (sets CANDLE_NUM_THREADS).
    #[arg(long)]
    threads: Option<usize>,
    /// MNIST folder (IDX files); when it is absent MNIST comes from the Hugging Face hub.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Take MNIST from the Hugging Face hub (ylecun/mnist) even if local files exist.
    #[arg(long)]
    hub: bool,
    /// Run the whole loop for one short epoch on synthetic digits, to check a config.
    #[arg(long)]
    dry_run: bool,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct SampleArgs {
    /// A generator.safetensors (or a run's checkpoint.safetensors); default: the shipped one.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Number of digits.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Digits per grid row.
    #[arg(long, default_value_t = 8)]
    nrow: usize,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder: writes samples.png and samples-images-idx3-ubyte there.
    #[arg(long, default_value = "outputs/samples")]
    out: PathBuf,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Train(TrainArgs {
        preset: DEFAULT_PRESET.into(),
        out: "outputs".into(),
        device: "cpu".into(),
        ..Default::default()
    })) {
        Command::Train(args) => train(args),
        Command::Sample(args) => sample(args),
        Command::Presets => {
            for (name, _) in PRESETS {
                let config = TrainConfig::preset(name)?;
                println!("{name:<14} {}", config.description);
            }
            Ok(())
        }
    }
}

/// The config from the preset or file, with the command line's overrides applied.
fn resolve_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::preset(&args.preset)?,
    };
    let flags = [
        ("epochs", args.epochs.map(|v| v.to_string())),
        ("batch_size", args.batch_size.map(|v| v.to_string())),
        ("lr_g", args.lr_g.map(|v| format!("{v:?}"))),
        ("lr_d", args.lr_d.map(|v| format!("{v:?}"))),
        ("seed", args.seed.map(|v| v.to_string())),
        ("limit", args.limit.map(|v| v.to_string())),
        ("sample_every", args.sample_every.map(|v| v.to_string())),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            config = config.with(key, &value)?;
        }
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

fn train(args: TrainArgs) -> Result<()> {
    if let Some(threads) = args.threads {
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let device = gan_lib::device(&args.device)?;
    let mut trainer = match &args.resume {
        Some(run) => {
            let dir = if Path::new(run).join("checkpoint.safetensors").exists() {
                PathBuf::from(run)
            } else {
                args.out.join(run)
            };
            let trainer = Trainer::resume(&dir, args.epochs, &device)
                .with_context(|| format!("resuming {}", dir.display()))?;
            println!(
                "Resuming {} after epoch {} (step {})",
                dir.display(),
                trainer.epoch,
                trainer.step
            );
            trainer
        }
        None => {
            let mut config = resolve_config(&args)?;
            if args.dry_run {
                config.epochs = 1;
                config.name = format!("{}-dry-run", config.name);
            }
            let run = args.run.clone().unwrap_or_else(|| config.name.clone());
            Trainer::new(&config, args.out.join(run), &device)?
        }
    };
    trainer.progress = !args.quiet;
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
        println!("{}\n", trainer.gan.generator.summary(&device)?);
        println!("{}\n", trainer.gan.discriminator.summary(&device)?);
        println!(
            "Training {} on {} images for {} epochs, writing to {}",
            config.name,
            data.len(),
            config.epochs,
            trainer.paths.root.display()
        );
    }
    trainer.train(&data)?;
    println!("Done: {}", trainer.paths.root.display());
    Ok(())
}

/// The shipped generator (trained with the default preset).
fn shipped_generator() -> PathBuf {
    gan_lib::find_upwards("data/weights/generator.safetensors")
        .unwrap_or_else(|| PathBuf::from("data/weights/generator.safetensors"))
}

fn sample(args: SampleArgs) -> Result<()> {
    if args.n == 0 || args.nrow == 0 {
        bail!("--n and --nrow must be at least 1");
    }
    let device = gan_lib::device(&args.device)?;
    let path = args.checkpoint.clone().unwrap_or_else(shipped_generator);
    let (generator, config) = Gan::load_generator(&path, &device)?;
    let z = rng::randn(
        &mut rng::seeded(args.seed),
        (args.n, config.latent_dim),
        0.0,
        1.0,
        &device,
    )?;
    let images = generator.forward_pass(&z, &mut Pass::eval())?;
    let pixels = plot::to_bytes(&images)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let png = args.out.join("samples.png");
    plot::upscale(&plot::grid(&pixels, args.nrow, 2), 2).save(&png)?;
    let idx_path = args.out.join("samples-images-idx3-ubyte");
    idx::write_images(
        &idx_path,
        &idx::IdxImages {
            count: args.n,
            pixels,
        },
    )?;
    println!(
        "{} digits from {} ({}): {} and {}",
        args.n,
        path.display(),
        config.name,
        png.display(),
        idx_path.display()
    );
    Ok(())
}
