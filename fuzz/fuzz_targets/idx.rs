//! IDX image and label files, raw or gzip: any bytes give digits or an error, never a panic.
#![no_main]

use std::path::Path;

use gan_lib::data::idx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzzed-idx");
    if let Ok(images) = idx::parse_images(bytes, path) {
        assert_eq!(images.pixels.len(), images.count * idx::IMAGE_PIXELS);
    }
    if let Ok(labels) = idx::parse_labels(bytes, path) {
        assert!(labels.iter().all(|&l| l <= 9));
    }
});
