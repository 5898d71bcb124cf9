//! Digits from anywhere, as 28x28 bytes: one module per kind of input, and [`DigitSource`],
//! which guesses the kind from the path.

mod grid;
mod npy;
mod png;

use std::path::PathBuf;

use candle_core::Device;

use super::{source_error, AnalysisError};
use crate::data::idx;
use crate::models::Generator;

pub use grid::{split_grid, GridDigits};
pub use npy::parse_npy;
use npy::read_npy;
use png::read_png_folder;

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
