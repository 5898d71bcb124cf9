//! Sample grid pictures (torchvision's `make_grid`, ours), cut back into digits.

use super::png::to_mnist_size;
use crate::data::IMAGE_PIXELS;

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
