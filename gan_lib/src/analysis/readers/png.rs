//! Folders of PNG digits, each resized to 28x28 when it is not.

use std::path::{Path, PathBuf};

use crate::analysis::{source_error, AnalysisError};
use crate::data::{IMAGE_PIXELS, IMAGE_SIDE};

/// The image itself when it is 28x28, else resized to 28x28.
pub(super) fn to_mnist_size(image: image::GrayImage) -> image::GrayImage {
    let side = IMAGE_SIDE as u32;
    if image.dimensions() == (side, side) {
        image
    } else {
        image::imageops::resize(&image, side, side, image::imageops::FilterType::Triangle)
    }
}

/// Reads every PNG in a folder, in name order, as 28x28 greyscale.
pub(super) fn read_png_folder(dir: &Path) -> Result<Vec<u8>, AnalysisError> {
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
