//! What a GAN draws, judged by the digit classifier: predictions per image, the 5x5 batch
//! figure, per-image probability histograms, and the class distribution over many samples.
//!
//! Digits can come from anywhere ([`DigitSource`]): our generator checkpoints, IDX files,
//! `.npy` arrays, folders of 28x28 PNGs, or a sample grid PNG written by another tool (a
//! PyTorch run's `images/epoch_020.png`, say).

use std::path::{Path, PathBuf};

use candle_core::Device;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::classifier::{argmax, Classifier};
use crate::data::{idx, IMAGE_PIXELS, IMAGE_SIDE};
use crate::metrics::LabelAccuracy;
use crate::models::Generator;
use crate::plot::{self, Picture, PlotError};

/// Failures of the analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A digit source could not be read; the message names the file.
    #[error("{}: {message}", path.display())]
    Source {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Drawing failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

fn source_error(path: &Path, message: impl Into<String>) -> AnalysisError {
    let message = message.into();
    // Errors of the readers underneath already start with the path: say it once.
    let message = match message.strip_prefix(&format!("{}: ", path.display())) {
        Some(rest) => rest.to_owned(),
        None => message,
    };
    AnalysisError::Source {
        path: path.to_owned(),
        message,
    }
}

/// Where digits to analyse come from.
#[derive(Clone, Debug, PartialEq)]
pub enum DigitSource {
    /// `n` digits from a generator checkpoint, noise drawn from `seed`.
    Generator {
        /// A generator.safetensors or checkpoint.safetensors.
        path: PathBuf,
        /// How many.
        n: usize,
        /// Noise seed.
        seed: u64,
    },
    /// An IDX image file (raw or gzip).
    Idx(PathBuf),
    /// A NumPy `.npy` array of shape (n, 28, 28), (n, 784) or (n, 1, 28, 28): u8 (0-255) or
    /// floats in [0, 1] or [-1, 1].
    Npy(PathBuf),
    /// A folder of PNG files, each one digit (resized to 28x28 if needed), in name order.
    PngFolder(PathBuf),
    /// A grid of digits in one PNG; cell side and padding in pixels, or `None` to detect.
    GridPng {
        /// The image.
        path: PathBuf,
        /// Side of one cell (28 times the grid's scale).
        cell: Option<u32>,
        /// Pixels between cells and around the grid.
        padding: Option<u32>,
    },
}

impl DigitSource {
    /// Picks the source for a path by its kind: a folder, `.npy`, `.png` (a grid), a
    /// `.safetensors` generator (`n` digits), else IDX.
    pub fn guess(path: impl Into<PathBuf>, n: usize, seed: u64) -> DigitSource {
        let path = path.into();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match extension.as_str() {
            _ if path.is_dir() => DigitSource::PngFolder(path),
            "npy" => DigitSource::Npy(path),
            "png" => DigitSource::GridPng {
                path,
                cell: None,
                padding: None,
            },
            "safetensors" => DigitSource::Generator { path, n, seed },
            _ => DigitSource::Idx(path),
        }
    }

    /// Reads the digits as bytes, image after image (0 black, 255 white).
    pub fn load(&self, device: &Device) -> Result<Vec<u8>, AnalysisError> {
        Ok(self.read(device)?.pixels)
    }

    /// Reads the digits, saying what was skipped on the way.
    pub fn read(&self, device: &Device) -> Result<Digits, AnalysisError> {
        let digits = |pixels| Digits {
            pixels,
            blank_cells: 0,
            requested: None,
        };
        match self {
            DigitSource::Generator { path, n, seed } => {
                if *n > MAX_DRAWN_DIGITS {
                    return Err(source_error(
                        path,
                        format!("cannot draw {n} digits: at most {MAX_DRAWN_DIGITS} at once"),
                    ));
                }
                let (generator, _) =
                    Generator::load(path, device).map_err(|e| source_error(path, e.to_string()))?;
                Ok(Digits {
                    requested: generator.digits_asked(*n),
                    ..digits(generator.draw(*n, *seed, device)?)
                })
            }
            DigitSource::Idx(path) => Ok(digits(
                idx::read_images(path)
                    .map_err(|e| source_error(path, e.to_string()))?
                    .pixels,
            )),
            DigitSource::Npy(path) => read_npy(path).map(digits),
            DigitSource::PngFolder(path) => read_png_folder(path).map(digits),
            DigitSource::GridPng {
                path,
                cell,
                padding,
            } => {
                let image = image::open(path)
                    .map_err(|e| source_error(path, format!("not a readable image: {e}")))?
                    .to_luma8();
                let grid = split_grid(&image, *cell, *padding)
                    .map_err(|message| source_error(path, message))?;
                Ok(Digits {
                    pixels: grid.pixels,
                    blank_cells: grid.blank_cells,
                    requested: None,
                })
            }
        }
    }
}

/// Digits read by [`DigitSource::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digits {
    /// 28x28 bytes per digit, image after image (0 black, 255 white).
    pub pixels: Vec<u8>,
    /// Blank cells at the end of a grid picture that were skipped (see [`GridDigits`]).
    pub blank_cells: usize,
    /// The digit each was asked to be, when a conditional generator drew them.
    pub requested: Option<Vec<u8>>,
}

/// The most digits a generator source draws at once (about 300 MB of pixels in flight).
pub const MAX_DRAWN_DIGITS: usize = 100_000;

/// The largest `.npy` file read (100,000 digits as float64 take 627 MB).
const MAX_NPY_BYTES: u64 = 1 << 30;

/// Reads a `.npy` array of digits.
fn read_npy(path: &Path) -> Result<Vec<u8>, AnalysisError> {
    let bytes = crate::files::read_at_most(path, MAX_NPY_BYTES)
        .map_err(|e| source_error(path, format!("cannot read: {e}")))?
        .ok_or_else(|| {
            let limit = MAX_NPY_BYTES >> 20;
            source_error(
                path,
                format!("larger than {limit} MiB, too large to analyse"),
            )
        })?;
    parse_npy(&bytes)
        .map_err(|message| source_error(path, format!("not a digits .npy array: {message}")))
}

/// Parses the bytes of a `.npy` array of digits; the error says what is wrong.
pub fn parse_npy(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |message: &str| message.to_owned();
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NumPy magic"));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unknown format version")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or_else(|| bad("truncated header"))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start_matches([':', ' ']);
        Some(if rest.starts_with('(') {
            rest[..rest.find(')')? + 1].to_owned()
        } else {
            rest[..rest.find(',')?].trim_matches(['\'', ' ']).to_owned()
        })
    };
    let descr = field("descr").ok_or_else(|| bad("no descr"))?;
    if field("fortran_order").as_deref() == Some("True") {
        return Err(bad("Fortran order is not supported"));
    }
    let shape: Vec<usize> = field("shape")
        .ok_or_else(|| bad("no shape"))?
        .trim_matches(['(', ')'])
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("unreadable shape"))?;
    let count = shape.first().copied().unwrap_or(0);
    let image_size = shape
        .iter()
        .skip(1)
        .try_fold(1usize, |size, &d| size.checked_mul(d));
    if image_size != Some(IMAGE_PIXELS) || shape.len() < 2 {
        return Err(bad(&format!("shape {shape:?} does not hold 28x28 images")));
    }
    let Some(needed) = count.checked_mul(IMAGE_PIXELS) else {
        return Err(bad(&format!("shape {shape:?} is impossibly large")));
    };
    let data = &bytes[start + header_len..];
    let values: Vec<f32> = match descr.as_str() {
        "|u1" | "<u1" | "u1" => data.iter().map(|&b| b as f32).collect(),
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(bad(&format!(
                "element type {other} (expected uint8, float32 or float64)"
            )))
        }
    };
    if values.len() != needed {
        return Err(bad(&format!(
            "shape {shape:?} needs {needed} values, the file holds {}",
            values.len()
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("contains NaN or infinite values"));
    }
    let (min, max) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let to_byte: Box<dyn Fn(f32) -> u8> = if descr.contains('u') || max > 1.0 {
        Box::new(|v| v.round().clamp(0.0, 255.0) as u8)
    } else if min < 0.0 {
        Box::new(|v| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8)
    } else {
        Box::new(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
    };
    Ok(values.into_iter().map(to_byte).collect())
}

/// The image itself when it is 28x28, else resized to 28x28.
fn to_mnist_size(image: image::GrayImage) -> image::GrayImage {
    let side = IMAGE_SIDE as u32;
    if image.dimensions() == (side, side) {
        image
    } else {
        image::imageops::resize(&image, side, side, image::imageops::FilterType::Triangle)
    }
}

/// Reads every PNG in a folder, in name order, as 28x28 greyscale.
fn read_png_folder(dir: &Path) -> Result<Vec<u8>, AnalysisError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| source_error(dir, format!("cannot list the folder: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(source_error(dir, "the folder holds no .png files"));
    }
    let mut pixels = Vec::with_capacity(files.len() * IMAGE_PIXELS);
    for file in files {
        let image = image::open(&file)
            .map_err(|e| source_error(&file, format!("not a readable image: {e}")))?
            .to_luma8();
        pixels.extend_from_slice(to_mnist_size(image).as_raw());
    }
    Ok(pixels)
}

/// Digits cut out of a grid picture by [`split_grid`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GridDigits {
    /// The digits, 28x28 bytes each, in reading order.
    pub pixels: Vec<u8>,
    /// Blank cells at the end of the last row, not read as digits: torchvision's `make_grid`
    /// leaves them (filled with the padding colour) when the count is not a multiple of the
    /// row length.
    pub blank_cells: usize,
}

/// Cuts a grid image into 28x28 digits. With `cell`/`padding` unknown, tries cells of 28,
/// 56, 84 and 112 pixels and paddings of 0 to 8 and keeps the layout that tiles the image
/// exactly with uniform padding lines (torchvision's `make_grid` defaults, 28 and 2, first).
/// Uniform cells of the padding colour that end the last row are blank, not digits.
pub fn split_grid(
    image: &image::GrayImage,
    cell: Option<u32>,
    padding: Option<u32>,
) -> Result<GridDigits, String> {
    let (w, h) = image.dimensions();
    let (w64, h64) = (w as u64, h as u64);
    let fits = |c: u32, p: u32| {
        let (c, p) = (c as u64, p as u64);
        c > 0 && w64 > p && h64 > p && (w64 - p) % (c + p) == 0 && (h64 - p) % (c + p) == 0
    };
    let pad_value = image.get_pixel(0, 0).0[0];
    let uniform_padding = |c: u32, p: u32| -> bool {
        if p == 0 {
            return true;
        }
        let step = c as u64 + p as u64;
        let p = p as u64;
        (0..w).all(|x| {
            (0..h).all(|y| {
                (x as u64 % step >= p && y as u64 % step >= p)
                    || image.get_pixel(x, y).0[0] == pad_value
            })
        })
    };
    let cells: Vec<u32> = cell.map_or(vec![28, 56, 84, 112], |c| vec![c]);
    let paddings: Vec<u32> = padding.map_or(vec![2, 0, 1, 3, 4, 5, 6, 7, 8], |p| vec![p]);
    let layout = paddings
        .iter()
        .flat_map(|&p| cells.iter().map(move |&c| (c, p)))
        .filter(|&(c, p)| fits(c, p))
        .find(|&(c, p)| p > 0 && uniform_padding(c, p))
        .or_else(|| {
            paddings
                .iter()
                .flat_map(|&p| cells.iter().map(move |&c| (c, p)))
                .find(|&(c, p)| fits(c, p))
        });
    let (c, p) = layout.ok_or_else(|| {
        format!("a {w}x{h} image is not a grid of 28x28 digits (give the cell size and padding)")
    })?;
    // `fits` holds, so every cell lies inside the image and these fit in u32.
    let step = c + p;
    let (columns, rows) = ((w - p) / step, (h - p) / step);
    let crop = |row: u32, column: u32| {
        image::imageops::crop_imm(image, p + column * step, p + row * step, c, c).to_image()
    };
    let is_blank = |cell: &image::GrayImage| {
        let first = cell.as_raw()[0];
        (p == 0 || first == pad_value) && cell.as_raw().iter().all(|&v| v == first)
    };
    let blank_cells = (1..columns)
        .take_while(|&k| is_blank(&crop(rows - 1, columns - k)))
        .count();
    let digits = (columns * rows) as usize - blank_cells;
    let mut pixels = Vec::with_capacity(digits * IMAGE_PIXELS);
    for i in 0..digits as u32 {
        pixels.extend_from_slice(to_mnist_size(crop(i / columns, i % columns)).as_raw());
    }
    Ok(GridDigits {
        pixels,
        blank_cells,
    })
}

/// The classifier's verdict on one image.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// The most probable digit.
    pub digit: usize,
    /// Its probability.
    pub confidence: f32,
    /// All ten probabilities (they sum to 1).
    pub probabilities: [f32; 10],
}

/// Classifies 28x28 byte images.
pub fn predict(classifier: &Classifier, pixels: &[u8]) -> candle_core::Result<Vec<Prediction>> {
    let (probabilities, _) = classifier.run_bytes(pixels)?;
    Ok(probabilities
        .into_iter()
        .map(|p| Prediction {
            digit: argmax(&p),
            confidence: p[argmax(&p)],
            probabilities: p,
        })
        .collect())
}

/// One image's verdict as a row of `predictions.csv`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PredictionRow {
    /// The image's position among the digits judged (0-based).
    pub index: usize,
    /// The classifier's verdict.
    pub prediction: Prediction,
    /// The digit a conditional generator was asked for.
    pub requested: Option<u8>,
}

/// One row per image: its index, verdict and (for a conditional generator's digits) the
/// digit asked for; what `analyze` writes as `predictions.csv`.
pub fn prediction_rows(predictions: &[Prediction], requested: Option<&[u8]>) -> Vec<PredictionRow> {
    predictions
        .iter()
        .enumerate()
        .map(|(index, &prediction)| PredictionRow {
            index,
            prediction,
            requested: requested.and_then(|r| r.get(index).copied()),
        })
        .collect()
}

/// `rows` as CSV: `index,predicted,confidence,p0,…,p9` and `,requested` when the rows have
/// requested digits; probabilities with 6 decimals.
pub fn predictions_csv(rows: &[PredictionRow]) -> String {
    let labelled = rows.iter().any(|r| r.requested.is_some());
    let mut csv = String::from("index,predicted,confidence");
    for d in 0..10 {
        csv.push_str(&format!(",p{d}"));
    }
    csv.push_str(if labelled { ",requested\n" } else { "\n" });
    for row in rows {
        let p = &row.prediction;
        csv.push_str(&format!("{},{},{:.6}", row.index, p.digit, p.confidence));
        for q in p.probabilities {
            csv.push_str(&format!(",{q:.6}"));
        }
        match (labelled, row.requested) {
            (true, Some(r)) => csv.push_str(&format!(",{r}\n")),
            (true, None) => csv.push_str(",\n"),
            (false, _) => csv.push('\n'),
        }
    }
    csv
}

/// The class distribution of many samples, and what it says about mode collapse.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassDistribution {
    /// Samples judged.
    pub samples: usize,
    /// Samples per predicted digit.
    pub counts: [usize; 10],
    /// Share per predicted digit.
    pub shares: [f64; 10],
    /// KL divergence of the shares from uniform (0: perfectly balanced; ln 10 = 2.30: one digit).
    pub kl_from_uniform: f64,
    /// Digits predicted for at least 1% of the samples.
    pub digits_covered: usize,
    /// Mean confidence of the predictions.
    pub mean_confidence: f64,
    /// The confidence threshold.
    pub threshold: f32,
    /// Share of predictions below the threshold.
    pub low_confidence_share: f64,
    /// Warnings about missing or over-represented digits.
    pub warnings: Vec<String>,
}

impl ClassDistribution {
    /// Summarises predictions; a digit under 5% or over 20% of the samples raises a warning.
    pub fn new(predictions: &[Prediction], threshold: f32) -> ClassDistribution {
        let n = predictions.len().max(1) as f64;
        let mut counts = [0usize; 10];
        for p in predictions {
            counts[p.digit] += 1;
        }
        let shares = counts.map(|c| c as f64 / n);
        let kl_from_uniform = shares
            .iter()
            .filter(|&&s| s > 0.0)
            .map(|s| s * (s * 10.0).ln())
            .sum();
        let mut warnings = Vec::new();
        for (digit, share) in shares.iter().enumerate() {
            if counts[digit] == 0 {
                warnings.push(format!("digit {digit} never appears: mode collapse"));
            } else if *share < 0.05 {
                warnings.push(format!(
                    "digit {digit} is rare ({:.1}%, expected about 10%): partial mode collapse",
                    100.0 * share
                ));
            } else if *share > 0.2 {
                warnings.push(format!(
                    "digit {digit} is over-represented ({:.1}%, expected about 10%)",
                    100.0 * share
                ));
            }
        }
        ClassDistribution {
            samples: predictions.len(),
            counts,
            shares,
            kl_from_uniform,
            digits_covered: shares.iter().filter(|&&s| s >= 0.01).count(),
            mean_confidence: predictions.iter().map(|p| p.confidence as f64).sum::<f64>() / n,
            threshold,
            low_confidence_share: predictions
                .iter()
                .filter(|p| p.confidence < threshold)
                .count() as f64
                / n,
            warnings,
        }
    }
}

impl std::fmt::Display for ClassDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} samples", self.samples)?;
        writeln!(
            f,
            "digit  {}",
            (0..10).map(|d| format!("{d:>6}")).collect::<String>()
        )?;
        writeln!(
            f,
            "share  {}",
            self.shares
                .iter()
                .map(|s| format!("{:>5.1}%", 100.0 * s))
                .collect::<String>()
        )?;
        writeln!(f, "KL from uniform      {:.4}", self.kl_from_uniform)?;
        writeln!(f, "digits covered       {}/10", self.digits_covered)?;
        writeln!(
            f,
            "mean confidence      {:.1}%",
            100.0 * self.mean_confidence
        )?;
        write!(
            f,
            "below {:.0}% confidence {:.1}%",
            100.0 * self.threshold,
            100.0 * self.low_confidence_share
        )?;
        for warning in &self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREY: RGBColor = RGBColor(170, 170, 170);

/// Copies a 28x28 digit into a picture at (x, y), `scale` times enlarged.
fn blit(picture: &mut Picture, digit: &[u8], x: u32, y: u32, scale: u32) {
    for (i, &v) in digit.iter().enumerate() {
        let (dx, dy) = (
            (i % IMAGE_SIDE) as u32 * scale,
            (i / IMAGE_SIDE) as u32 * scale,
        );
        for sy in 0..scale {
            for sx in 0..scale {
                picture
                    .image
                    .put_pixel(x + dx + sx, y + dy + sy, image::Rgb([v, v, v]));
            }
        }
    }
}

/// Digits (up to 25, five per row), each titled with its predicted digit and confidence;
/// those below `threshold` are titled and framed in red.
pub fn batch_figure(
    pixels: &[u8],
    predictions: &[Prediction],
    threshold: f32,
) -> Result<Picture, PlotError> {
    let (scale, title_height, margin) = (4u32, 26u32, 10u32);
    let cell = IMAGE_SIDE as u32 * scale;
    let count = predictions.len().min(25).min(pixels.len() / IMAGE_PIXELS);
    let rows = count.div_ceil(5).max(1) as u32;
    let mut picture = Picture::blank(
        5 * (cell + margin) + margin,
        rows * (cell + title_height + margin) + margin + 30,
    );
    let origin = |i: usize| {
        (
            margin + (i % 5) as u32 * (cell + margin),
            30 + margin + (i / 5) as u32 * (cell + title_height + margin) + title_height,
        )
    };
    for i in 0..count {
        let (x, y) = origin(i);
        blit(
            &mut picture,
            &pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS],
            x,
            y,
            scale,
        );
    }
    picture.draw(|root| {
        let low = predictions[..count]
            .iter()
            .filter(|p| p.confidence < threshold)
            .count();
        root.draw(&Text::new(
            format!(
                "Predicted digit and confidence ({low} below {:.0}%, in red)",
                100.0 * threshold
            ),
            (margin as i32, 8),
            ("sans-serif", 18).into_font(),
        ))?;
        for (i, p) in predictions[..count].iter().enumerate() {
            let (x, y) = origin(i);
            let colour = if p.confidence < threshold { RED } else { BLACK };
            root.draw(&Text::new(
                format!("{} ({:.0}%)", p.digit, 100.0 * p.confidence),
                (x as i32 + 4, y as i32 - title_height as i32 + 3),
                ("sans-serif", 18).into_font().color(&colour),
            ))?;
            if p.confidence < threshold {
                root.draw(&Rectangle::new(
                    [
                        (x as i32 - 2, y as i32 - 2),
                        ((x + cell) as i32 + 1, (y + cell) as i32 + 1),
                    ],
                    RED.stroke_width(3),
                ))?;
            }
        }
        Ok(())
    })?;
    Ok(picture)
}

/// The bar of `digit` on a chart with one segment per digit, from 0 up to `value`.
fn digit_bar<Y: Default>(
    digit: usize,
    value: Y,
    colour: RGBColor,
    margin: u32,
) -> Rectangle<(SegmentValue<u32>, Y)> {
    let digit = digit as u32;
    let mut bar = Rectangle::new(
        [
            (SegmentValue::Exact(digit), Y::default()),
            (SegmentValue::Exact(digit + 1), value),
        ],
        colour.filled(),
    );
    bar.set_margin(0, 0, margin, margin);
    bar
}

/// Draws a bar chart of ten probabilities, the predicted digit in orange.
fn draw_probability_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    prediction: &Prediction,
    caption: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d((0u32..9u32).into_segmented(), 0f32..1f32)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("digit")
        .y_desc("probability")
        .x_labels(10)
        .draw()?;
    chart.draw_series(
        prediction
            .probabilities
            .iter()
            .enumerate()
            .map(|(d, &p)| digit_bar(d, p, if d == prediction.digit { ORANGE } else { BLUE }, 4)),
    )?;
    Ok(())
}

/// One digit beside the bar chart of its ten class probabilities.
pub fn probability_figure(digit: &[u8], prediction: &Prediction) -> Result<Picture, PlotError> {
    let scale = 8;
    let side = IMAGE_SIDE as u32 * scale;
    let mut picture = Picture::blank(side + 40 + 520, side + 40);
    blit(&mut picture, digit, 20, 20, scale);
    picture.draw(|root| {
        let (_, right) = root.split_horizontally(side + 40);
        let caption = format!(
            "predicted {} with {:.1}% confidence",
            prediction.digit,
            100.0 * prediction.confidence
        );
        draw_probability_bars(&right, prediction, &caption).map_err(|e| e.to_string().into())
    })?;
    Ok(picture)
}

/// The probability chart alone, as SVG text.
pub fn probability_svg(prediction: &Prediction) -> Result<String, PlotError> {
    plot::register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| PlotError::Draw(e.to_string()))?;
        draw_probability_bars(
            &root,
            prediction,
            &format!("predicted {}", prediction.digit),
        )
        .map_err(|e| PlotError::Draw(e.to_string()))?;
        root.present().map_err(|e| PlotError::Draw(e.to_string()))?;
    }
    Ok(svg)
}

/// Share of samples per predicted digit, with the 10% a balanced generator would give.
pub fn distribution_figure(distribution: &ClassDistribution) -> Result<Picture, PlotError> {
    let mut picture = Picture::blank(800, 450);
    let top = distribution
        .shares
        .iter()
        .fold(0.15f64, |m, &s| m.max(s * 1.1));
    picture.draw(|root| {
        let caption = format!(
            "Predicted digits of {} samples (KL from uniform {:.3})",
            distribution.samples, distribution.kl_from_uniform
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d((0u32..9u32).into_segmented(), 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("predicted digit")
            .y_desc("share")
            .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
            .draw()?;
        chart.draw_series(distribution.shares.iter().enumerate().map(|(d, &s)| {
            digit_bar(d, s, if (0.05..=0.2).contains(&s) { BLUE } else { RED }, 6)
        }))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(SegmentValue::Exact(0), 0.1), (SegmentValue::Last, 0.1)],
            GREY.stroke_width(2),
        )))?;
        Ok(())
    })?;
    Ok(picture)
}

/// The requested digit (rows) against the digit the classifier sees (columns), each cell
/// the share of its row, darker for more, with the per-digit accuracy at the right.
pub fn confusion_figure(labels: &LabelAccuracy) -> Result<Picture, PlotError> {
    let (cell, left, top) = (48i32, 70i32, 70i32);
    let mut picture = Picture::blank(
        (left + 10 * cell + 110) as u32,
        (top + 10 * cell + 20) as u32,
    );
    picture.draw(|root| {
        let font = ("sans-serif", 16).into_font();
        let caption = format!(
            "Requested vs predicted digit: {:.1}% right of {}",
            100.0 * labels.accuracy,
            labels.samples
        );
        root.draw(&Text::new(caption, (10, 8), ("sans-serif", 20).into_font()))?;
        root.draw(&Text::new("predicted →", (left, top - 44), font.clone()))?;
        root.draw(&Text::new("requested ↓", (4, top - 22), font.clone()))?;
        root.draw(&Text::new(
            "accuracy",
            (left + 10 * cell + 14, top - 22),
            font.clone(),
        ))?;
        for d in 0..10 {
            let at = d * cell;
            root.draw(&Text::new(
                d.to_string(),
                (left + at + cell / 2 - 4, top - 22),
                font.clone(),
            ))?;
            root.draw(&Text::new(
                d.to_string(),
                (left - 22, top + at + cell / 2 - 8),
                font.clone(),
            ))?;
        }
        for (r, row) in labels.confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (c, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = (255.0 * (1.0 - share.sqrt())) as u8;
                let color = if r == c {
                    RGBColor(shade, shade, 255)
                } else {
                    RGBColor(255, shade, shade)
                };
                let (x, y) = (left + c as i32 * cell, top + r as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    color.filled(),
                ))?;
                if count > 0 {
                    let text = format!("{:.0}", 100.0 * share);
                    let ink = if share > 0.5 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        text,
                        (x + 8, y + cell / 2 - 8),
                        font.clone().color(&ink),
                    ))?;
                }
            }
            let accuracy = format!("{:.1}%", 100.0 * labels.per_digit[r]);
            root.draw(&Text::new(
                accuracy,
                (left + 10 * cell + 14, top + r as i32 * cell + cell / 2 - 8),
                font.clone(),
            ))?;
        }
        Ok(())
    })?;
    Ok(picture)
}
