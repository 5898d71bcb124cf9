//! `mnist-gan`: train GANs on MNIST, sample from them, and list the presets.

mod commands;
mod progress;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gan_lib::config::{TrainConfig, PRESETS};

use commands::classifier::ClassifierArgs;
use commands::interpolate::InterpolateArgs;
use commands::judge::{AnalyzeArgs, EvalArgs};
use commands::movie::MovieArgs;
use commands::sample::SampleArgs;
use commands::train::TrainArgs;

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
    let default = || Command::Train(Box::new(TrainArgs::default_preset()));
    match cli.command.unwrap_or_else(default) {
        Command::Train(args) => commands::train::train(*args),
        Command::Sample(args) => commands::sample::sample(args),
        Command::TrainClassifier(args) => commands::classifier::train_classifier(args),
        Command::Analyze(args) => commands::judge::analyze(args),
        Command::Eval(args) => commands::judge::eval(args),
        Command::Interpolate(args) => commands::interpolate::interpolate(args),
        Command::Movie(args) => commands::movie::movie(args),
        Command::Presets => {
            for (name, _) in PRESETS {
                let config = TrainConfig::preset(name)?;
                println!("{name:<14} {}", config.description);
            }
            Ok(())
        }
    }
}
