//! NumPy `.npy` arrays of digits: any bytes give whole 28x28 digits or an error.
#![no_main]

use gan_lib::analysis;
use gan_lib::data::IMAGE_PIXELS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(pixels) = analysis::parse_npy(bytes) {
        assert_eq!(pixels.len() % IMAGE_PIXELS, 0);
    }
});
