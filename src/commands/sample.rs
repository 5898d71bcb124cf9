//! `mnist-gan sample`: digits from a trained generator, as a grid PNG and IDX files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use gan_lib::analysis;
use gan_lib::data::{idx, IMAGE_PIXELS};
use gan_lib::models::Generator;
use gan_lib::plot;

use super::generator_path;

#[derive(Args)]
pub(crate) struct SampleArgs {
    /// A generator.safetensors (or a run's checkpoint.safetensors); default: the shipped one.
    #[arg(long)]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Number of digits.
    #[arg(long, default_value_t = 64)]
    pub(crate) n: usize,
    /// Digits per grid row.
    #[arg(long, default_value_t = 8)]
    pub(crate) nrow: usize,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Draw only this digit (a conditional generator).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), conflicts_with = "by_digit")]
    pub(crate) digit: Option<u8>,
    /// A 10x10 grid, one row per digit, one noise vector per column (a conditional
    /// generator); --n and --nrow are ignored.
    #[arg(long)]
    pub(crate) by_digit: bool,
    /// Output folder: writes samples.png and samples-images-idx3-ubyte there (and
    /// samples-labels-idx1-ubyte, the digits asked for, from a conditional generator).
    #[arg(long, default_value = "outputs/samples")]
    pub(crate) out: PathBuf,
    /// auto, cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

pub(crate) fn sample(args: SampleArgs) -> Result<()> {
    check_counts(&args)?;
    let device = gan_lib::device(&args.device)?;
    let conditional_wanted = args.digit.is_some() || args.by_digit;
    let path = generator_path(&args.checkpoint, conditional_wanted);
    let (generator, config) = Generator::load(&path, &device)?;
    if conditional_wanted && !generator.is_conditional() {
        bail!(
            "{}: holds an unconditional generator ({}), which cannot be asked for a digit; \
             train one with `--preset cgan-mlp`, or leave out --digit and --by-digit",
            path.display(),
            config.name
        );
    }
    let (labels, pixels, nrow) = draw(&args, &generator, &device)?;
    let count = pixels.len() / IMAGE_PIXELS;
    let written = write(&args.out, pixels, nrow, labels.as_deref())?;
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

/// Refuses counts that give no picture, or one too large to write.
fn check_counts(args: &SampleArgs) -> Result<()> {
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
    Ok(())
}

/// The digits asked for (when the generator is conditional), their pixels, and the grid's
/// digits per row.
fn draw(
    args: &SampleArgs,
    generator: &Generator,
    device: &Device,
) -> Result<(Option<Vec<u8>>, Vec<u8>, usize)> {
    Ok(if args.by_digit {
        // Ten noise vectors, each drawn as every digit: a row per digit, a style per column.
        let labels: Vec<u8> = (0..100).map(|i| (i / 10) as u8).collect();
        let mut rows = Vec::new();
        for digit in 0..10u8 {
            rows.extend(generator.draw_labelled(&[digit; 10], args.seed, device)?);
        }
        (Some(labels), rows, 10)
    } else if let Some(digit) = args.digit {
        let labels = vec![digit; args.n];
        let pixels = generator.draw_labelled(&labels, args.seed, device)?;
        (Some(labels), pixels, args.nrow)
    } else {
        let labels = generator.digits_asked(args.n);
        let pixels = generator.draw(args.n, args.seed, device)?;
        (labels, pixels, args.nrow)
    })
}

/// Writes `samples.png`, the IDX images and, when digits were asked for, the IDX labels into
/// `out`; returns the files written, as a list for a person.
fn write(out: &Path, pixels: Vec<u8>, nrow: usize, labels: Option<&[u8]>) -> Result<String> {
    let count = pixels.len() / IMAGE_PIXELS;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let png = out.join("samples.png");
    plot::upscale(&plot::grid(&pixels, nrow, 2), 2).save(&png)?;
    let idx_path = out.join("samples-images-idx3-ubyte");
    idx::write_images(&idx_path, &idx::IdxImages { count, pixels })?;
    let mut written = vec![png, idx_path];
    if let Some(labels) = labels {
        let labels_path = out.join("samples-labels-idx1-ubyte");
        idx::write_labels(&labels_path, labels)?;
        written.push(labels_path);
    }
    let written: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    Ok(written.join(", "))
}
