//! `mnist-gan analyze` and `mnist-gan eval`: digits from any source judged by the classifier.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use gan_lib::analysis::{self, DigitSource};
use gan_lib::classifier::Classifier;
use gan_lib::data::hub::HubOptions;
use gan_lib::data::{Mnist, IMAGE_PIXELS};
use gan_lib::metrics::{CacheUse, QualityReport, RealStats};

/// Where digits come from, for `analyze` and `eval`.
#[derive(Args)]
pub(crate) struct DigitArgs {
    /// Digits to judge: a generator .safetensors, an IDX file, a .npy array, a folder of
    /// PNGs or a grid PNG. Default: the shipped generator.
    pub(crate) source: Option<PathBuf>,
    /// Digits to draw from a generator.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) n: usize,
    /// Noise seed for a generator.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Cell side in pixels of a grid PNG (detected when omitted).
    #[arg(long)]
    pub(crate) cell: Option<u32>,
    /// Padding in pixels of a grid PNG (detected when omitted).
    #[arg(long)]
    pub(crate) padding: Option<u32>,
    /// Classifier weights; default: the shipped classifier.
    #[arg(long)]
    pub(crate) classifier: Option<PathBuf>,
    /// auto, cpu, cuda or metal: where the generator and the classifier run.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

#[derive(Args)]
pub(crate) struct AnalyzeArgs {
    #[command(flatten)]
    pub(crate) digits: DigitArgs,
    /// Predictions below this confidence are marked.
    #[arg(long, default_value_t = 0.8)]
    pub(crate) threshold: f32,
    /// Images to draw probability histograms for (indices).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3")]
    pub(crate) images: Vec<usize>,
    /// Output folder.
    #[arg(long, default_value = "outputs/analysis")]
    pub(crate) out: PathBuf,
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    pub(crate) digits: DigitArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Run the classifier over the real digits again instead of reading their statistics
    /// from the cache (~/.cache/mnist-gan/real-stats, made by the first `eval` of each
    /// classifier); the report is the same.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

/// The digits and the classifier that `analyze` and `eval` work on.
fn digits_and_classifier(
    args: &DigitArgs,
    device: &Device,
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

pub(crate) fn analyze(args: AnalyzeArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!("--threshold must lie in [0, 1]");
    }
    let device = gan_lib::device(&args.digits.device)?;
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

pub(crate) fn eval(args: EvalArgs) -> Result<()> {
    let device = gan_lib::device(&args.digits.device)?;
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
