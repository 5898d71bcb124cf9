//! Grid pictures: any PNG (and any cell size and padding a user types) gives digits or an
//! error. The first two bytes choose the cell and padding options; the rest is the picture.
#![no_main]

use gan_lib::analysis;
use gan_lib::data::IMAGE_PIXELS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&[cell, padding], png)) = bytes.split_first_chunk::<2>().map(|(a, b)| (a, b)) else {
        return;
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(png), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(4096);
    limits.max_image_height = Some(4096);
    reader.limits(limits);
    let Ok(picture) = reader.decode() else {
        return;
    };
    // 0 = detect; 255 = a huge value; else the byte itself.
    let option = |b: u8| match b {
        0 => None,
        255 => Some(u32::MAX - 1),
        b => Some(b as u32),
    };
    if let Ok(grid) = analysis::split_grid(&picture.to_luma8(), option(cell), option(padding)) {
        assert_eq!(grid.pixels.len() % IMAGE_PIXELS, 0);
    }
});
