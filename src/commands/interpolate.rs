//! `mnist-gan interpolate`: a latent walk drawn as a strip of digits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use gan_lib::models::Generator;

use super::generator_path;

#[derive(Args)]
pub(crate) struct InterpolateArgs {
    /// A generator.safetensors (or a run's checkpoint.safetensors); default: the shipped one
    /// (the shipped conditional one with --from-digit/--to-digit or --digit).
    #[arg(long)]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Seed of the noise at the start (the digit `sample --n 1 --seed A` draws).
    #[arg(long, default_value_t = 0)]
    pub(crate) from_seed: u64,
    /// Seed of the noise at the end.
    #[arg(long, default_value_t = 1)]
    pub(crate) to_seed: u64,
    /// Digits along the walk, both ends included (2 to 100).
    #[arg(long, default_value_t = 10)]
    pub(crate) steps: usize,
    /// spherical (slerp) or linear (lerp).
    #[arg(long, default_value = "spherical")]
    pub(crate) mode: gan_lib::latent::Interpolation,
    /// The digit a conditional generator draws along a noise walk.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), conflicts_with_all = ["from_digit", "to_digit"])]
    pub(crate) digit: Option<u8>,
    /// Walk a conditional generator from this digit to --to-digit, with the noise of
    /// --from-seed held.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), requires = "to_digit")]
    pub(crate) from_digit: Option<u8>,
    /// The digit the walk ends at.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), requires = "from_digit")]
    pub(crate) to_digit: Option<u8>,
    /// The strip picture to write.
    #[arg(long, default_value = "outputs/interpolation.png")]
    pub(crate) out: PathBuf,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

pub(crate) fn interpolate(args: InterpolateArgs) -> Result<()> {
    let device = gan_lib::device(&args.device)?;
    let conditional_wanted = args.digit.is_some() || args.from_digit.is_some();
    let path = generator_path(&args.checkpoint, conditional_wanted);
    let (generator, config) = Generator::load(&path, &device)?;
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
