//! `mnist-gan train-classifier`: the CNN that judges digits.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use gan_lib::classifier::ClassifierTraining;
use gan_lib::data::hub::HubOptions;
use gan_lib::data::Mnist;

use crate::progress::Progress;

#[derive(Args)]
pub(crate) struct ClassifierArgs {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 3)]
    pub(crate) epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Adam's peak learning rate (warm-up over 200 steps, then linear decay to zero).
    #[arg(long, default_value_t = 2e-3)]
    pub(crate) lr: f64,
    /// Seed of init, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Where to write the weights.
    #[arg(long, default_value = "outputs/classifier.safetensors")]
    pub(crate) out: PathBuf,
    /// MNIST folder (IDX files).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

pub(crate) fn train_classifier(args: ClassifierArgs) -> Result<()> {
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
    };
    let mut progress = Progress::new(true);
    let (classifier, evaluations) = gan_lib::classifier::train_with(
        &mnist.train,
        &mnist.test,
        &options,
        &device,
        &mut |event| progress.show_classifier(&event),
    )?;
    println!("{}", evaluations.last().expect("at least one epoch"));
    classifier.save(&args.out)?;
    println!("Saved {}", args.out.display());
    Ok(())
}
