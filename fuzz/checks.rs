//! What each fuzz target asserts about one input, shared by the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, under libFuzzer) and by `tests/fuzz_replay.rs`, which replays every
//! committed seed in `fuzz/seeds/` through the same checks in `cargo test`, without libFuzzer:
//! an input that once broke a reader fails CI once its seed is committed.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use gan_lib::analysis;
use gan_lib::checkpoint::TensorFile;
use gan_lib::config::TrainConfig;
use gan_lib::data::{idx, IMAGE_PIXELS};
use gan_lib::models::Generator;

/// Checkpoints and generator files: any bytes load as a generator or give an error; a
/// generator that loads draws digits of the right shape, and finite ones.
pub fn checkpoint(bytes: &[u8]) {
    let device = Device::Cpu;
    let Ok(file) = TensorFile::parse(bytes, "fuzzed.safetensors".into(), &device) else {
        return;
    };
    let Ok((generator, config)) = Generator::from_file(&file, &device) else {
        return;
    };
    let z = Tensor::zeros((2, config.latent_dim), DType::F32, &device).unwrap();
    let labels = Tensor::new(&[3u32, 7], &device).unwrap();
    let labels = generator.is_conditional().then_some(&labels);
    let images = generator
        .generate(&z, labels)
        .expect("an accepted generator draws");
    assert_eq!(images.dim(0).unwrap(), 2, "{:?}", images.dims());
    assert_eq!(images.elem_count(), 2 * IMAGE_PIXELS, "{:?}", images.dims());
    let values = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(
        values.iter().all(|v| v.is_finite()),
        "an accepted generator drew NaN"
    );
}

/// Config files: any text gives a valid config or an error; a config that is accepted
/// validates and survives a round trip through its TOML.
pub fn config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(config) = TrainConfig::from_toml(text, "fuzzed.toml") {
        config.validate().expect("an accepted config validates");
        let again = TrainConfig::from_toml(&config.to_toml(), "round trip").expect("round trip");
        assert_eq!(again.to_toml(), config.to_toml());
    }
}

/// Grid pictures: any PNG (and any cell size and padding a user types) gives digits or an
/// error. The first two bytes choose the cell and padding options; the rest is the picture.
pub fn grid_png(bytes: &[u8]) {
    let Some((&[cell, padding], png)) = bytes.split_first_chunk::<2>() else {
        return;
    };
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(png), image::ImageFormat::Png);
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
}

/// IDX image and label files, raw or gzip: any bytes give digits or an error, never a panic.
pub fn idx(bytes: &[u8]) {
    let path = Path::new("fuzzed-idx");
    if let Ok(images) = idx::parse_images(bytes, path) {
        assert_eq!(images.pixels.len(), images.count * idx::IMAGE_PIXELS);
    }
    if let Ok(labels) = idx::parse_labels(bytes, path) {
        assert!(labels.iter().all(|&l| l <= 9));
    }
}

/// NumPy `.npy` arrays of digits: any bytes give whole 28x28 digits or an error.
pub fn npy(bytes: &[u8]) {
    if let Ok(pixels) = analysis::parse_npy(bytes) {
        assert_eq!(pixels.len() % IMAGE_PIXELS, 0);
    }
}
