//! The classifier, the analysis of generated digits and the quality metrics.

use std::sync::OnceLock;

use candle_core::Device;
use gan_lib::analysis::{self, ClassDistribution, DigitSource, Prediction};
use gan_lib::classifier::Classifier;
use gan_lib::data::{idx, Mnist, IMAGE_PIXELS};
use gan_lib::metrics::{
    frechet_distance, inception_score, precision_recall, CacheUse, QualityReport, RealStats,
};
use gan_lib::plot;

fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| {
        Mnist::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")).unwrap()
    })
}

fn classifier() -> Classifier {
    Classifier::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/weights/classifier.safetensors"
        ),
        &Device::Cpu,
    )
    .expect("the shipped classifier loads")
}

fn shipped_generator() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/weights/generator.safetensors"
    )
}

#[test]
fn shipped_classifier_reaches_99_2_percent_on_the_test_set() {
    let evaluation = classifier().evaluate(&mnist().test).unwrap();
    assert!(evaluation.accuracy >= 0.992, "{evaluation}");
    assert_eq!(evaluation.confusion.iter().flatten().sum::<usize>(), 10_000);
}

#[test]
fn probabilities_sum_to_one_and_predictions_agree_with_them() {
    let predictions =
        analysis::predict(&classifier(), &mnist().test.clone().limit(50).pixels).unwrap();
    for p in &predictions {
        let sum: f32 = p.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        assert_eq!(p.confidence, p.probabilities[p.digit]);
        assert!(p.probabilities.iter().all(|&q| q <= p.confidence));
    }
    let labels = &mnist().test.labels[..50];
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, &l)| p.digit == l as usize)
        .count();
    assert!(correct >= 48, "{correct}/50");
}

#[test]
fn figures_are_written_non_empty_at_their_size() {
    let pixels = mnist().test.clone().limit(25).pixels;
    let predictions = analysis::predict(&classifier(), &pixels).unwrap();
    let batch = analysis::batch_figure(&pixels, &predictions, 0.8).unwrap();
    assert_eq!(
        batch.size(),
        (5 * (112 + 10) + 10, 5 * (112 + 26 + 10) + 10 + 30)
    );
    let histogram = analysis::probability_figure(&pixels[..IMAGE_PIXELS], &predictions[0]).unwrap();
    assert_eq!(histogram.size(), (224 + 40 + 520, 224 + 40));
    // The predicted bar is orange, somewhere right of the digit.
    assert!(histogram.image.pixels().any(|p| p.0 == [255, 127, 14]));
    let distribution =
        analysis::distribution_figure(&ClassDistribution::new(&predictions, 0.8)).unwrap();
    assert_eq!(distribution.size(), (800, 450));
    let dir = tempfile::tempdir().unwrap();
    for (name, picture) in [
        ("batch.png", &batch),
        ("histogram.png", &histogram),
        ("distribution.png", &distribution),
    ] {
        picture.save(dir.path().join(name)).unwrap();
        let read = image::open(dir.path().join(name)).unwrap();
        assert_eq!((read.width(), read.height()), picture.size(), "{name}");
        let distinct: std::collections::HashSet<_> = read.to_rgb8().pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 20, "{name} looks empty");
    }
    let svg = analysis::probability_svg(&predictions[0]).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<rect") && svg.contains("predicted"));
}

#[test]
fn low_confidence_is_marked_in_red() {
    let pixels = mnist().test.clone().limit(2).pixels;
    let unsure = Prediction {
        digit: 3,
        confidence: 0.3,
        probabilities: [0.3, 0.2, 0.1, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0],
    };
    let sure = Prediction {
        digit: 3,
        confidence: 0.99,
        probabilities: [0.0, 0.0, 0.0, 0.99, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0],
    };
    let red = |p: &plot::Picture| {
        p.image
            .pixels()
            .filter(|px| px.0[0] > 200 && px.0[1] < 60 && px.0[2] < 60)
            .count()
    };
    assert!(red(&analysis::batch_figure(&pixels, &[unsure, unsure], 0.8).unwrap()) > 500);
    assert!(red(&analysis::batch_figure(&pixels, &[sure, sure], 0.8).unwrap()) < 50);
}

#[test]
fn class_distribution_of_one_digit_and_of_real_mnist() {
    let one = vec![
        Prediction {
            digit: 4,
            confidence: 0.9,
            probabilities: [0.0, 0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0, 0.0, 0.0]
        };
        100
    ];
    let collapsed = ClassDistribution::new(&one, 0.8);
    assert_eq!(collapsed.digits_covered, 1);
    assert!((collapsed.kl_from_uniform - 10f64.ln()).abs() < 1e-9);
    assert_eq!(collapsed.warnings.len(), 10);
    assert!(collapsed
        .warnings
        .iter()
        .any(|w| w.contains("digit 0 never appears")));
    let probabilities: Vec<[f32; 10]> = one.iter().map(|p| p.probabilities).collect();
    assert!((inception_score(&probabilities, 10).0 - 1.0).abs() < 1e-6);

    let predictions =
        analysis::predict(&classifier(), &mnist().test.pixels[..2000 * IMAGE_PIXELS]).unwrap();
    let real = ClassDistribution::new(&predictions, 0.8);
    assert_eq!(real.digits_covered, 10);
    assert!(
        real.kl_from_uniform < 0.01 && real.warnings.is_empty(),
        "{real}"
    );
    assert!(
        real.mean_confidence > 0.97 && real.low_confidence_share < 0.03,
        "{real}"
    );
}

#[test]
fn metrics_rank_real_shifted_and_generated_digits_sensibly() {
    let classifier = classifier();
    let test = &mnist().test;
    let (_, test_features) = classifier
        .run_bytes(&test.pixels[..2000 * IMAGE_PIXELS])
        .unwrap();
    assert!(frechet_distance(&test_features, &test_features) < 1e-6);
    // Shifting every digit 3 pixels right makes a worse set.
    let shifted: Vec<u8> = test.pixels[..2000 * IMAGE_PIXELS]
        .chunks(IMAGE_PIXELS)
        .flat_map(|d| (0..IMAGE_PIXELS).map(move |i| if i % 28 >= 3 { d[i - 3] } else { 0 }))
        .collect();
    let (_, shifted_features) = classifier.run_bytes(&shifted).unwrap();
    let (_, other_real) = classifier
        .run_bytes(&mnist().train.pixels[..2000 * IMAGE_PIXELS])
        .unwrap();
    let real_distance = frechet_distance(&other_real, &test_features);
    let shifted_distance = frechet_distance(&shifted_features, &test_features);
    assert!(
        shifted_distance > 3.0 * real_distance,
        "shifted {shifted_distance} vs real {real_distance}"
    );

    let generated = DigitSource::Generator {
        path: shipped_generator().into(),
        n: 1000,
        seed: 0,
    }
    .load(&Device::Cpu)
    .unwrap();
    let small = Mnist {
        train: mnist().train.clone().limit(1000),
        test: mnist().test.clone().limit(2000),
    };
    let report = QualityReport::compute(&classifier, &generated, &small).unwrap();
    // At 1,000 samples the distance is dominated by its small-sample bias (real digits score
    // about 74 here, against 5.6 at 10,000), so the generator is ranked against the shifted
    // digits rather than against real ones.
    assert!(
        report.frechet_distance > 0.0 && report.frechet_distance < shifted_distance,
        "{report}\nshifted digits: {shifted_distance}"
    );
    assert!(report.inception_score_real.0 > 9.0, "{report}");
    assert!(
        report.inception_score.0 > 5.0,
        "the shipped generator should draw varied digits: {report}"
    );
}

/// The report from cached real-digit statistics is the report computed from scratch, which is
/// the formula written out here with the public metrics; a changed classifier gets statistics
/// of its own, and a damaged cache file is replaced.
#[test]
fn cached_real_statistics_give_the_report_computed_from_scratch() {
    let shipped = classifier();
    let small = Mnist {
        train: mnist().train.clone().limit(400),
        test: mnist().test.clone().limit(500),
    };
    let generated = DigitSource::Generator {
        path: shipped_generator().into(),
        n: 200,
        seed: 3,
    }
    .load(&Device::Cpu)
    .unwrap();

    // The report as the metrics define it: 200 generated digits and as many training digits,
    // each against the test set; precision and recall on the first 2,000 of each.
    let (gen_p, gen_f) = shipped.run_bytes(&generated).unwrap();
    let (test_p, test_f) = shipped.run_bytes(&small.test.pixels).unwrap();
    let (_, train_f) = shipped
        .run_bytes(&small.train.pixels[..200 * IMAGE_PIXELS])
        .unwrap();
    let few = |f: &[Vec<f32>]| f[..f.len().min(2000)].to_vec();
    let computed = QualityReport::compute(&shipped, &generated, &small).unwrap();
    assert_eq!(computed.samples, 200);
    assert_eq!(computed.frechet_distance, frechet_distance(&gen_f, &test_f));
    assert_eq!(
        computed.frechet_distance_real,
        frechet_distance(&train_f, &test_f)
    );
    assert_eq!(computed.inception_score, inception_score(&gen_p, 10));
    assert_eq!(computed.inception_score_real, inception_score(&test_p, 10));
    assert_eq!(
        computed.precision_recall,
        precision_recall(&few(&test_f), &few(&gen_f), 3)
    );
    assert_eq!(
        computed.precision_recall_real,
        precision_recall(&few(&test_f), &few(&train_f), 3)
    );
    let mut shares = [0.0; 10];
    for p in &test_p {
        shares[gan_lib::classifier::argmax(p)] += 1.0 / test_p.len() as f64;
    }
    assert_eq!(computed.digit_shares_real, shares);

    // Cached: written once, then read, and the same report both times.
    let cache = tempfile::tempdir().unwrap();
    let report_from_cache = |classifier: &Classifier| {
        let (real, used) = RealStats::cached(classifier, &small, 200, cache.path()).unwrap();
        let report = QualityReport::against(classifier, &generated, None, &real).unwrap();
        (report, used)
    };
    let (first, used) = report_from_cache(&shipped);
    let CacheUse::Written(file) = used else {
        panic!("the first use computes and writes: {used:?}")
    };
    assert_eq!(first, computed);
    let (second, used) = report_from_cache(&shipped);
    assert_eq!(used, CacheUse::Read(file.clone()));
    assert_eq!(second, computed);

    // Another number of digits is another reference (as many training digits).
    let (real_300, used) = RealStats::cached(&shipped, &small, 300, cache.path()).unwrap();
    assert!(
        matches!(used, CacheUse::Written(ref other) if *other != file),
        "{used:?}"
    );
    assert_ne!(real_300.frechet_distance, computed.frechet_distance_real);

    // The statistics belong to the classifier's weights, wherever its file lies: a copy of
    // the shipped file reads them; the same file swapped for a changed classifier (one
    // weight) gets its own.
    let classifier_file = cache.path().join("my-classifier.safetensors");
    shipped.save(&classifier_file).unwrap();
    let copy = Classifier::load(&classifier_file, &Device::Cpu).unwrap();
    assert_eq!(report_from_cache(&copy).1, CacheUse::Read(file.clone()));
    {
        let vars = copy.vars.data().lock().unwrap();
        let fc1 = vars.get("fc1.bias").expect("fc1.bias");
        fc1.set(&fc1.as_tensor().affine(1.0, 0.5).unwrap()).unwrap();
    }
    copy.save(&classifier_file).unwrap();
    let changed = Classifier::load(&classifier_file, &Device::Cpu).unwrap();
    let (changed_report, used) = report_from_cache(&changed);
    assert!(
        matches!(used, CacheUse::Written(ref other) if *other != file),
        "{used:?}"
    );
    assert_ne!(
        changed_report.frechet_distance_real,
        computed.frechet_distance_real
    );

    // A damaged file is computed again and replaced, with the reason.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let (repaired, used) = report_from_cache(&shipped);
    assert!(
        matches!(used, CacheUse::Replaced { ref path, ref reason } if *path == file && reason.contains(&*file.to_string_lossy())),
        "{used:?}"
    );
    assert_eq!(repaired, computed);
    assert_eq!(report_from_cache(&shipped).1, CacheUse::Read(file));
}

#[test]
fn digits_come_from_every_kind_of_source() {
    let dir = tempfile::tempdir().unwrap();
    let digits = mnist().test.clone().limit(12).pixels;

    let idx_path = dir.path().join("digits-idx3-ubyte");
    idx::write_images(
        &idx_path,
        &idx::IdxImages {
            count: 12,
            pixels: digits.clone(),
        },
    )
    .unwrap();
    assert_eq!(
        DigitSource::guess(&idx_path, 0, 0)
            .load(&Device::Cpu)
            .unwrap(),
        digits
    );

    // .npy: uint8 (n, 28, 28), and float32 (n, 784) in [-1, 1].
    let npy = |descr: &str, shape: &str, data: &[u8]| {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    };
    let u8_path = dir.path().join("u8.npy");
    std::fs::write(&u8_path, npy("|u1", "(12, 28, 28)", &digits)).unwrap();
    assert_eq!(
        DigitSource::guess(&u8_path, 0, 0)
            .load(&Device::Cpu)
            .unwrap(),
        digits
    );
    let floats: Vec<u8> = digits
        .iter()
        .flat_map(|&p| (p as f32 / 127.5 - 1.0).to_le_bytes())
        .collect();
    let f32_path = dir.path().join("f32.npy");
    std::fs::write(&f32_path, npy("<f4", "(12, 784)", &floats)).unwrap();
    assert_eq!(
        DigitSource::guess(&f32_path, 0, 0)
            .load(&Device::Cpu)
            .unwrap(),
        digits
    );
    let bad_path = dir.path().join("bad.npy");
    std::fs::write(&bad_path, npy("|u1", "(12, 30, 30)", &digits)).unwrap();
    let error = DigitSource::guess(&bad_path, 0, 0)
        .load(&Device::Cpu)
        .unwrap_err();
    assert!(
        error.to_string().contains("bad.npy") && error.to_string().contains("28x28"),
        "{error}"
    );

    // A folder of PNGs, in name order.
    let folder = dir.path().join("pngs");
    std::fs::create_dir(&folder).unwrap();
    for (i, digit) in digits.chunks(IMAGE_PIXELS).enumerate() {
        image::GrayImage::from_raw(28, 28, digit.to_vec())
            .unwrap()
            .save(folder.join(format!("{i:03}.png")))
            .unwrap();
    }
    assert_eq!(
        DigitSource::guess(&folder, 0, 0)
            .load(&Device::Cpu)
            .unwrap(),
        digits
    );

    // Grid PNGs like torchvision's save_image(..., nrow=4): padding 2, and a 2x one with padding 4.
    let grid = plot::grid(&digits, 4, 2);
    let grid_path = dir.path().join("epoch_020.png");
    grid.save(&grid_path).unwrap();
    assert_eq!(
        DigitSource::guess(&grid_path, 0, 0)
            .load(&Device::Cpu)
            .unwrap(),
        digits
    );
    let big = plot::upscale(&grid, 2);
    let big_path = dir.path().join("big.png");
    big.save(&big_path).unwrap();
    let loaded = DigitSource::GridPng {
        path: big_path.clone(),
        cell: None,
        padding: None,
    }
    .load(&Device::Cpu)
    .unwrap();
    assert_eq!(loaded.len(), digits.len());
    let error = DigitSource::GridPng {
        path: big_path,
        cell: Some(30),
        padding: Some(1),
    }
    .load(&Device::Cpu)
    .unwrap_err();
    assert!(error.to_string().contains("big.png"), "{error}");

    // A reader's own error names the file once, not twice.
    for (name, bytes) in [
        ("garbage-idx3-ubyte", &b"not an idx file at all"[..]),
        ("garbage.safetensors", &b"nonsense"[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let message = DigitSource::guess(&path, 4, 0)
            .load(&Device::Cpu)
            .unwrap_err()
            .to_string();
        assert_eq!(message.matches(name).count(), 1, "{message}");
    }
}

/// torchvision's `save_image(batch, nrow=10)` of 64 digits leaves 6 blank cells in its last
/// row (black padding), and 50 digits with `nrow=7, pad_value=1` leave 6 white ones: they are
/// skipped and counted, not classified as digits.
#[test]
fn blank_cells_ending_a_grid_are_not_digits() {
    let dir = tempfile::tempdir().unwrap();
    let sixty_four = mnist().test.clone().limit(64).pixels;
    let black = dir.path().join("black.png");
    plot::grid(&sixty_four, 10, 2).save(&black).unwrap();
    let read = DigitSource::guess(&black, 0, 0).read(&Device::Cpu).unwrap();
    assert_eq!(read.blank_cells, 6);
    assert_eq!(read.pixels, sixty_four);

    let fifty = mnist().test.clone().limit(50).pixels;
    let (columns, rows) = (7u32, 8u32);
    let mut white =
        image::GrayImage::from_pixel(columns * 30 + 2, rows * 30 + 2, image::Luma([255]));
    for (i, digit) in fifty.chunks(IMAGE_PIXELS).enumerate() {
        let digit = image::GrayImage::from_raw(28, 28, digit.to_vec()).unwrap();
        let (x, y) = (i as u32 % columns * 30 + 2, i as u32 / columns * 30 + 2);
        image::imageops::replace(&mut white, &digit, x as i64, y as i64);
    }
    let white_path = dir.path().join("white.png");
    white.save(&white_path).unwrap();
    let read = DigitSource::guess(&white_path, 0, 0)
        .read(&Device::Cpu)
        .unwrap();
    assert_eq!(
        (read.blank_cells, read.pixels.len() / IMAGE_PIXELS),
        (6, 50)
    );
    assert_eq!(read.pixels, fifty);

    // A full grid skips nothing; a grid asked for with huge cells is an error, not a panic.
    let full = dir.path().join("full.png");
    plot::grid(&sixty_four[..60 * IMAGE_PIXELS], 10, 2)
        .save(&full)
        .unwrap();
    assert_eq!(
        DigitSource::guess(&full, 0, 0)
            .read(&Device::Cpu)
            .unwrap()
            .blank_cells,
        0
    );
    for (cell, padding) in [(u32::MAX, 2), (28, u32::MAX), (u32::MAX, u32::MAX)] {
        let error = DigitSource::GridPng {
            path: full.clone(),
            cell: Some(cell),
            padding: Some(padding),
        }
        .read(&Device::Cpu)
        .unwrap_err();
        assert!(error.to_string().contains("not a grid"), "{error}");
    }
}

#[test]
fn npy_shapes_that_overflow_are_errors() {
    for shape in [
        "(4611686018427387904, 784)",
        "(2, 4294967296, 4294967296, 784)",
        "(18446744073709551615, 28, 28)",
    ] {
        let header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 784]);
        let error = analysis::parse_npy(&bytes).unwrap_err();
        assert!(error.contains("shape"), "{shape}: {error}");
    }
}

#[test]
fn a_generator_source_refuses_absurd_counts() {
    let error = DigitSource::Generator {
        path: shipped_generator().into(),
        n: usize::MAX,
        seed: 0,
    }
    .read(&Device::Cpu)
    .unwrap_err()
    .to_string();
    assert!(error.contains("at most 100000"), "{error}");
}

/// Every seed works, the largest too (seeds derived from it wrap instead of overflowing).
#[test]
fn the_classifier_trains_with_the_largest_seed() {
    let options = gan_lib::classifier::ClassifierTraining {
        epochs: 1,
        batch_size: 32,
        seed: u64::MAX,
        ..Default::default()
    };
    let data = mnist().test.clone().limit(64);
    let (_, evaluations) =
        gan_lib::classifier::train(&data, &data, &options, &Device::Cpu).unwrap();
    assert_eq!(evaluations.len(), 1);
}
