//! `mnist-gan`: train GANs on MNIST, sample from them, and list the presets.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use gan_lib::analysis::{self, DigitSource};
use gan_lib::classifier::{Classifier, ClassifierTraining};
use gan_lib::config::{TrainConfig, DEFAULT_PRESET, PRESETS};
use gan_lib::data::hub::HubOptions;
use gan_lib::data::IMAGE_PIXELS;
use gan_lib::data::{idx, Mnist, Split};
use gan_lib::metrics::{CacheUse, QualityReport, RealStats};
use gan_lib::plot;
use gan_lib::train::{Gan, Trainer};

/// Generative adversarial networks on MNIST, with candle.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// CPU threads (default: RAYON_NUM_THREADS, else all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GAN (the default preset when given no arguments).
    Train(Box<TrainArgs>),
    /// Write digits from a trained generator as a grid PNG and an IDX file.
    Sample(SampleArgs),
    /// Train the digit classifier used by the analysis and the metrics.
    TrainClassifier(ClassifierArgs),
    /// Judge digits with the classifier: 5x5 batch figure, probability histograms, class shares.
    Analyze(AnalyzeArgs),
    /// Quality metrics of a generator: Fréchet distance, classifier score, precision/recall.
    Eval(EvalArgs),
    /// Draw a latent walk: digits between two noise vectors, or between two digits.
    Interpolate(InterpolateArgs),
    /// Make the training movie (training.gif) of a run from its per-epoch sample grids.
    Movie(MovieArgs),
    /// List the presets.
    Presets,
}

/// Where digits come from, for `analyze` and `eval`.
#[derive(Args)]
struct DigitArgs {
    /// Digits to judge: a generator .safetensors, an IDX file, a .npy array, a folder of
    /// PNGs or a grid PNG. Default: the shipped generator.
    source: Option<PathBuf>,
    /// Digits to draw from a generator.
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// Noise seed for a generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cell side in pixels of a grid PNG (detected when omitted).
    #[arg(long)]
    cell: Option<u32>,
    /// Padding in pixels of a grid PNG (detected when omitted).
    #[arg(long)]
    padding: Option<u32>,
    /// Classifier weights; default: the shipped classifier.
    #[arg(long)]
    classifier: Option<PathBuf>,
}

#[derive(Args)]
struct AnalyzeArgs {
    #[command(flatten)]
    digits: DigitArgs,
    /// Predictions below this confidence are marked.
    #[arg(long, default_value_t = 0.8)]
    threshold: f32,
    /// Images to draw probability histograms for (indices).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3")]
    images: Vec<usize>,
    /// Output folder.
    #[arg(long, default_value = "outputs/analysis")]
    out: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    digits: DigitArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the classifier over the real digits again instead of reading their statistics
    /// from the cache (~/.cache/mnist-gan/real-stats, made by the first `eval` of each
    /// classifier); the report is the same.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args)]
struct ClassifierArgs {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's peak learning rate (warm-up over 200 steps, then linear decay to zero).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed of init, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to write the weights.
    #[arg(long, default_value = "outputs/classifier.safetensors")]
    out: PathBuf,
    /// MNIST folder (IDX files).
    #[arg(long)]
    data: Option<PathBuf>,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
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
    /// Time budget: stop before an epoch that would end past this many minutes of training,
    /// saving everything as at a normal end (`--resume` continues later).
    #[arg(long, value_name = "N")]
    minutes: Option<f64>,
    /// For tests: measure --minutes by a clock on which every step takes this many seconds.
    #[arg(long, hide = true, requires = "minutes", value_name = "SECONDS")]
    seconds_per_step: Option<f64>,
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
    /// Continue the run of this name (or folder) from its last checkpoint, with the config
    /// saved there (only --epochs, --minutes and --lr-scale change it).
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "preset", "config", "batch_size", "lr_g", "lr_d", "seed", "limit", "sample_every",
        "overrides", "run",
    ])]
    resume: Option<String>,
    /// With --resume: multiply both learning rates by this factor from here on (0.5 after a
    /// run diverged, say).
    #[arg(long, requires = "resume", value_name = "FACTOR")]
    lr_scale: Option<f64>,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// MNIST folder (IDX files); when it is absent MNIST comes from the Hugging Face hub.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Take MNIST from the Hugging Face hub (ylecun/mnist) even if local files exist.
    #[arg(long)]
    hub: bool,
    /// Run the whole loop for one short epoch on synthetic digits, to check a config (in a
    /// run folder of its own: never with --resume, which would overwrite a real run).
    #[arg(long, conflicts_with = "resume")]
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
    /// Draw only this digit (a conditional generator).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), conflicts_with = "by_digit")]
    digit: Option<u8>,
    /// A 10x10 grid, one row per digit, one noise vector per column (a conditional
    /// generator); --n and --nrow are ignored.
    #[arg(long)]
    by_digit: bool,
    /// Output folder: writes samples.png and samples-images-idx3-ubyte there (and
    /// samples-labels-idx1-ubyte, the digits asked for, from a conditional generator).
    #[arg(long, default_value = "outputs/samples")]
    out: PathBuf,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct InterpolateArgs {
    /// A generator.safetensors (or a run's checkpoint.safetensors); default: the shipped one
    /// (the shipped conditional one with --from-digit/--to-digit or --digit).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Seed of the noise at the start (the digit `sample --n 1 --seed A` draws).
    #[arg(long, default_value_t = 0)]
    from_seed: u64,
    /// Seed of the noise at the end.
    #[arg(long, default_value_t = 1)]
    to_seed: u64,
    /// Digits along the walk, both ends included (2 to 100).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// spherical (slerp) or linear (lerp).
    #[arg(long, default_value = "spherical")]
    mode: gan_lib::latent::Interpolation,
    /// The digit a conditional generator draws along a noise walk.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), conflicts_with_all = ["from_digit", "to_digit"])]
    digit: Option<u8>,
    /// Walk a conditional generator from this digit to --to-digit, with the noise of
    /// --from-seed held.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), requires = "to_digit")]
    from_digit: Option<u8>,
    /// The digit the walk ends at.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), requires = "from_digit")]
    to_digit: Option<u8>,
    /// The strip picture to write.
    #[arg(long, default_value = "outputs/interpolation.png")]
    out: PathBuf,
}

#[derive(Args)]
struct MovieArgs {
    /// The run folder (holding images/epoch_*.png), or a run's name under outputs/.
    run: PathBuf,
    /// Milliseconds per frame (the last is shown three times as long).
    #[arg(long, default_value_t = 400)]
    frame_ms: u32,
}

fn main() -> Result<()> {
    // A user's mistake prints its message, not a stack backtrace: candle and anyhow capture one
    // for every error when RUST_BACKTRACE is set (as many Rust users have it), and print it with
    // the message. RUST_LIB_BACKTRACE=0 stops that for errors only; panics, which are bugs, still
    // print theirs under RUST_BACKTRACE. Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    gan_lib::tune_allocator();
    let cli = Cli::parse();
    gan_lib::set_threads(cli.threads);
    gan_lib::on_pool(|| run(cli))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::Train(Box::new(TrainArgs {
        preset: DEFAULT_PRESET.into(),
        out: "outputs".into(),
        device: "cpu".into(),
        ..Default::default()
    }))) {
        Command::Train(args) => train(*args),
        Command::Sample(args) => sample(args),
        Command::TrainClassifier(args) => train_classifier(args),
        Command::Analyze(args) => analyze(args),
        Command::Eval(args) => eval(args),
        Command::Interpolate(args) => interpolate(args),
        Command::Movie(args) => movie(args),
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
    let time_budget = match args.minutes {
        Some(minutes) if !(minutes.is_finite() && minutes > 0.0 && minutes <= 525_600.0) => {
            bail!("--minutes {minutes}: give a positive number of minutes, at most a year")
        }
        minutes => minutes.map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
    };
    if let Some(scale) = args.lr_scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("--lr-scale {scale}: give a positive factor");
    }
    let device = gan_lib::device(&args.device)?;
    let mut trainer = match &args.resume {
        Some(run) => {
            let dir = if Path::new(run).join("checkpoint.safetensors").exists() {
                PathBuf::from(run)
            } else {
                args.out.join(run)
            };
            let mut trainer = Trainer::resume(&dir, args.epochs, &device)
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
    trainer.time_budget = time_budget;
    if let Some(seconds) = args.seconds_per_step {
        let step = std::time::Duration::try_from_secs_f64(seconds)
            .with_context(|| format!("--seconds-per-step {seconds}"))?;
        trainer.budget_clock = gan_lib::train::BudgetClock::PerStep(step);
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
        println!("{}\n", trainer.gan.generator.summary(&device)?);
        println!("{}\n", trainer.gan.discriminator.summary(&device)?);
        println!(
            "Training {} ({:?} loss) on {} images for {} epochs{}, writing to {}",
            config.name,
            config.loss,
            data.len(),
            config.epochs,
            args.minutes
                .map(|m| format!(" or {m} minutes"))
                .unwrap_or_default(),
            trainer.paths.root.display()
        );
        if config.ema_decay > 0.0 {
            println!(
                "Samples and generator.safetensors use {}",
                config.generator_weights()
            );
        }
    }
    trainer.train(&data)?;
    println!("Done: {}", trainer.paths.root.display());
    Ok(())
}

fn sample(args: SampleArgs) -> Result<()> {
    if args.n == 0 || args.nrow == 0 {
        bail!("--n and --nrow must be at least 1");
    }
    if args.n > analysis::MAX_DRAWN_DIGITS {
        bail!(
            "--n {}: at most {} digits at once",
            args.n,
            analysis::MAX_DRAWN_DIGITS
        );
    }
    if plot::grid_size(args.n, args.nrow, 2, 2).is_none() {
        bail!(
            "--n {} in rows of --nrow {} makes a grid picture over {} pixels on a side: \
             lower --n or change --nrow",
            args.n,
            args.nrow,
            plot::MAX_PICTURE_SIDE
        );
    }
    let device = gan_lib::device(&args.device)?;
    let conditional_wanted = args.digit.is_some() || args.by_digit;
    let path = generator_path(&args.checkpoint, conditional_wanted);
    let (generator, config) = Gan::load_generator(&path, &device)?;
    if conditional_wanted && !generator.is_conditional() {
        bail!(
            "{}: holds an unconditional generator ({}), which cannot be asked for a digit; \
             train one with `--preset cgan-mlp`, or leave out --digit and --by-digit",
            path.display(),
            config.name
        );
    }
    // The digits asked for, the noise, and the grid's rows.
    let (labels, pixels, nrow) = if args.by_digit {
        // Ten noise vectors, each drawn as every digit: a row per digit, a style per column.
        let labels: Vec<u8> = (0..100).map(|i| (i / 10) as u8).collect();
        let mut rows = Vec::new();
        for digit in 0..10u8 {
            rows.extend(generator.draw_labelled(&[digit; 10], args.seed, &device)?);
        }
        (Some(labels), rows, 10)
    } else if let Some(digit) = args.digit {
        let labels = vec![digit; args.n];
        let pixels = generator.draw_labelled(&labels, args.seed, &device)?;
        (Some(labels), pixels, args.nrow)
    } else {
        let labels = generator.digits_asked(args.n);
        (
            labels,
            generator.draw_digits(args.n, args.seed, &device)?,
            args.nrow,
        )
    };
    let count = pixels.len() / IMAGE_PIXELS;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let png = args.out.join("samples.png");
    plot::upscale(&plot::grid(&pixels, nrow, 2), 2).save(&png)?;
    let idx_path = args.out.join("samples-images-idx3-ubyte");
    idx::write_images(&idx_path, &idx::IdxImages { count, pixels })?;
    let mut written = vec![png, idx_path];
    if let Some(labels) = &labels {
        let labels_path = args.out.join("samples-labels-idx1-ubyte");
        idx::write_labels(&labels_path, labels)?;
        written.push(labels_path);
    }
    let written: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    let written = written.join(", ");
    let what = match (args.by_digit, args.digit) {
        (true, _) => "10 of each digit".to_owned(),
        (false, Some(d)) => format!("{count} {d}s"),
        (false, None) => format!("{count} digits"),
    };
    println!(
        "{what} from {} ({}, {}): {written}",
        path.display(),
        config.name,
        config.generator_weights(),
    );
    Ok(())
}

/// The generator file to draw from: `checkpoint` when given, else the shipped conditional
/// generator when a digit is asked for, the shipped unconditional one otherwise.
fn generator_path(checkpoint: &Option<PathBuf>, conditional_wanted: bool) -> PathBuf {
    checkpoint.clone().unwrap_or_else(|| {
        gan_lib::shipped(match conditional_wanted {
            true => "conditional-generator.safetensors",
            false => "generator.safetensors",
        })
    })
}

fn interpolate(args: InterpolateArgs) -> Result<()> {
    let device = candle_core::Device::Cpu;
    let conditional_wanted = args.digit.is_some() || args.from_digit.is_some();
    let path = generator_path(&args.checkpoint, conditional_wanted);
    let (generator, config) = Gan::load_generator(&path, &device)?;
    let walk = match (args.from_digit, args.to_digit) {
        (Some(from), Some(to)) => {
            gan_lib::latent::digit_walk(&generator, args.from_seed, (from, to), args.steps, &device)
        }
        _ => gan_lib::latent::noise_walk(
            &generator,
            (args.from_seed, args.to_seed),
            args.steps,
            args.mode,
            args.digit,
            &device,
        ),
    }
    .with_context(|| format!("{} ({})", path.display(), config.name))?;
    walk.strip().save(&args.out)?;
    let what = match (args.from_digit, args.to_digit) {
        (Some(from), Some(to)) => format!(
            "from digit {from} to {to}, noise of seed {}",
            args.from_seed
        ),
        _ => format!(
            "{:?} from seed {} to seed {}",
            args.mode, args.from_seed, args.to_seed
        ),
    };
    println!("{} steps {what}: {}", walk.steps, args.out.display());
    Ok(())
}

fn movie(args: MovieArgs) -> Result<()> {
    let dir = if args.run.join("images").is_dir() {
        args.run.clone()
    } else {
        Path::new("outputs").join(&args.run)
    };
    if !(20..=10_000).contains(&args.frame_ms) {
        bail!(
            "--frame-ms {}: give 20 to 10000 milliseconds",
            args.frame_ms
        );
    }
    let movie = gan_lib::movie::Movie::from_run(&dir, args.frame_ms)?;
    let path = dir.join("training.gif");
    movie.save(&path)?;
    println!("{} frames: {}", movie.frames, path.display());
    Ok(())
}

fn train_classifier(args: ClassifierArgs) -> Result<()> {
    if args.epochs == 0 || args.batch_size == 0 || !(args.lr > 0.0 && args.lr < 1.0) {
        bail!("--epochs and --batch-size must be at least 1 and --lr in (0, 1)");
    }
    let device = gan_lib::device(&args.device)?;
    let mnist = Mnist::load_or_fetch(
        args.data.clone().unwrap_or_else(Mnist::vendored_dir),
        &HubOptions::default(),
    )?;
    let options = ClassifierTraining {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        progress: true,
    };
    let (classifier, evaluations) =
        gan_lib::classifier::train(&mnist.train, &mnist.test, &options, &device)?;
    println!("{}", evaluations.last().expect("at least one epoch"));
    classifier.save(&args.out)?;
    println!("Saved {}", args.out.display());
    Ok(())
}

/// The digits and the classifier that `analyze` and `eval` work on.
fn digits_and_classifier(
    args: &DigitArgs,
    device: &candle_core::Device,
) -> Result<(analysis::Digits, Classifier)> {
    let path = args
        .source
        .clone()
        .unwrap_or_else(|| gan_lib::shipped("generator.safetensors"));
    let source = match DigitSource::guess(&path, args.n, args.seed) {
        DigitSource::GridPng { path, .. } => DigitSource::GridPng {
            path,
            cell: args.cell,
            padding: args.padding,
        },
        other => other,
    };
    if let DigitSource::Generator { path, n, .. } = &source {
        let config = gan_lib::checkpoint::TensorFile::read(path, device)?.config()?;
        // On stderr: `eval --json` keeps stdout for the JSON.
        eprintln!(
            "{n} digits from {} ({}, {})",
            path.display(),
            config.name,
            config.generator_weights()
        );
    }
    let digits = source.read(device)?;
    if digits.blank_cells > 0 {
        eprintln!(
            "{}: skipped {} blank cells at the end of the grid",
            path.display(),
            digits.blank_cells
        );
    }
    if digits.pixels.is_empty() {
        bail!("{}: holds no digits", path.display());
    }
    let classifier = match &args.classifier {
        Some(path) => Classifier::load(path, device)?,
        None => Classifier::load_shipped(device)?,
    };
    Ok((digits, classifier))
}

fn analyze(args: AnalyzeArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!("--threshold must lie in [0, 1]");
    }
    let device = candle_core::Device::Cpu;
    let (digits, classifier) = digits_and_classifier(&args.digits, &device)?;
    let pixels = &digits.pixels;
    let predictions = analysis::predict(&classifier, pixels)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    analysis::batch_figure(pixels, &predictions, args.threshold)?
        .save(args.out.join("batch.png"))?;
    for &i in &args.images {
        let Some(prediction) = predictions.get(i) else {
            bail!(
                "--images: there is no image {i} (only {})",
                predictions.len()
            )
        };
        let digit = &pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS];
        analysis::probability_figure(digit, prediction)?
            .save(args.out.join(format!("probabilities_{i}.png")))?;
        let svg = analysis::probability_svg(prediction)?;
        std::fs::write(args.out.join(format!("probabilities_{i}.svg")), svg)
            .with_context(|| format!("writing to {}", args.out.display()))?;
    }
    let distribution = analysis::ClassDistribution::new(&predictions, args.threshold);
    analysis::distribution_figure(&distribution)?.save(args.out.join("distribution.png"))?;
    let requested = digits.requested.as_deref();
    let rows = analysis::prediction_rows(&predictions, requested);
    let csv = args.out.join("predictions.csv");
    std::fs::write(&csv, analysis::predictions_csv(&rows))
        .with_context(|| format!("writing {}", csv.display()))?;
    let labels = requested.map(|requested| {
        let predicted: Vec<usize> = predictions.iter().map(|p| p.digit).collect();
        gan_lib::metrics::LabelAccuracy::new(requested, &predicted)
    });
    if let Some(labels) = &labels {
        analysis::confusion_figure(labels)?.save(args.out.join("confusion.png"))?;
    }
    let mut summary = serde_json::to_value(&distribution)?;
    if let Some(labels) = &labels {
        summary["label_accuracy"] = serde_json::to_value(labels)?;
    }
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!("{distribution}");
    if let Some(labels) = &labels {
        println!("{labels}");
    }
    println!("Figures and predictions.csv in {}", args.out.display());
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let device = candle_core::Device::Cpu;
    let (digits, classifier) = digits_and_classifier(&args.digits, &device)?;
    let mnist = Mnist::load_or_fetch(Mnist::vendored_dir(), &HubOptions::default())?;
    let requested = digits.requested.as_deref();
    let samples = digits.pixels.len() / IMAGE_PIXELS;
    let real = match RealStats::default_cache_dir().filter(|_| !args.no_cache) {
        None => RealStats::compute(&classifier, &mnist, samples)?,
        Some(cache) => {
            let (real, used) = RealStats::cached(&classifier, &mnist, samples, &cache)?;
            match used {
                CacheUse::Read(_) => {}
                CacheUse::Written(path) => eprintln!(
                    "Real-digit statistics of this classifier kept in {} for the next eval",
                    path.display()
                ),
                CacheUse::Replaced { path, reason } => {
                    eprintln!(
                        "warning: {reason}; computed again and replaced {}",
                        path.display()
                    )
                }
                CacheUse::NotWritten { path, reason } => {
                    eprintln!(
                        "warning: could not keep real-digit statistics in {}: {reason}",
                        path.display()
                    )
                }
            }
            real
        }
    };
    let report = QualityReport::against(&classifier, &digits.pixels, requested, &real)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
