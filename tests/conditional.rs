//! Conditional GANs (labels through both networks, runs, checkpoints of each kind), latent
//! walks, label accuracy and per-image predictions, and the training movie.

mod common;
use common::{quiet_trainer, small_mnist, tiny_mlp, weights};

use candle_core::{Device, Tensor};
use gan_lib::analysis::{prediction_rows, predictions_csv, Prediction};
use gan_lib::checkpoint::{self, TensorFile};
use gan_lib::config::TrainConfig;
use gan_lib::data::one_hot;
use gan_lib::latent::{digit_walk, noise_walk, Interpolation};
use gan_lib::metrics::LabelAccuracy;
use gan_lib::models::Generator;
use gan_lib::movie::Movie;
use gan_lib::nn::Pass;
use gan_lib::plot::Picture;
use gan_lib::rng;
use gan_lib::train::Gan;
use image::AnimationDecoder;

const CPU: Device = Device::Cpu;

/// tiny_mlp made conditional.
fn tiny_conditional() -> TrainConfig {
    tiny_mlp().with("model.conditional", "true").unwrap()
}

fn digits(values: &[u32]) -> Tensor {
    Tensor::new(values, &CPU).unwrap()
}

fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn labels_reach_both_networks_of_both_architectures() {
    for preset in ["cgan-mlp", "cgan-dcgan"] {
        let config = TrainConfig::preset(preset).unwrap();
        assert!(config.model.conditional(), "{preset}");
        let gan = Gan::new(&config, &CPU, &mut rng::seeded(1)).unwrap();
        let (g, d) = (&gan.generator, &gan.discriminator);
        assert!(g.is_conditional() && d.is_conditional(), "{preset}");
        // The same noise twice, asked for a 3 and for an 8.
        let z = gan.noise(1, &mut rng::seeded(2)).unwrap();
        let z = Tensor::cat(&[&z, &z], 0).unwrap();
        let labels = digits(&[3, 8]);
        let images = g.forward(&z, Some(&labels), &mut Pass::eval()).unwrap();
        assert_eq!(images.dims(), &[2, 1, 28, 28], "{preset}");
        let (three, eight) = (images.get(0).unwrap(), images.get(1).unwrap());
        assert!(
            max_difference(&three, &eight) > 1e-4,
            "{preset}: G ignores the label"
        );
        // Digits and their one-hot vectors are the same input.
        let vectors = one_hot(&labels).unwrap();
        assert_eq!(
            vectors.to_vec2::<f32>().unwrap()[1],
            [0., 0., 0., 0., 0., 0., 0., 0., 1., 0.]
        );
        let again = g.forward(&z, Some(&vectors), &mut Pass::eval()).unwrap();
        assert_eq!(max_difference(&images, &again), 0.0, "{preset}");
        // D judges one image differently as a 3 and as an 8.
        let same = Tensor::cat(&[&three.unsqueeze(0).unwrap(); 2], 0).unwrap();
        let logits = d
            .forward(&same, Some(&labels), &mut Pass::eval())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(logits.len(), 2);
        assert!(
            (logits[0] - logits[1]).abs() > 1e-6,
            "{preset}: D ignores the label"
        );
        // Without labels, or with labels of the wrong shape: clear errors.
        let error = g
            .forward(&z, None, &mut Pass::eval())
            .unwrap_err()
            .to_string();
        assert!(error.contains("conditional"), "{preset}: {error}");
        let error = d
            .forward(&images, None, &mut Pass::eval())
            .unwrap_err()
            .to_string();
        assert!(error.contains("conditional"), "{preset}: {error}");
        let bad = Tensor::zeros((2, 3), candle_core::DType::F32, &CPU).unwrap();
        let error = g
            .forward(&z, Some(&bad), &mut Pass::eval())
            .unwrap_err()
            .to_string();
        assert!(error.contains("labels must be"), "{preset}: {error}");
    }
    // An unconditional generator takes no labels.
    let gan = Gan::new(&tiny_mlp(), &CPU, &mut rng::seeded(1)).unwrap();
    let z = gan.noise(2, &mut rng::seeded(2)).unwrap();
    let error = gan
        .generator
        .forward(&z, Some(&digits(&[1, 2])), &mut Pass::eval())
        .unwrap_err()
        .to_string();
    assert!(error.contains("unconditional"), "{error}");
}

#[test]
fn a_conditional_run_trains_writes_a_grid_per_digit_and_a_movie() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_conditional();
    let mut trainer = quiet_trainer(&config, dir.path());
    // Training needs the batch's labels.
    let data = small_mnist();
    let real = data
        .clone()
        .limit(32)
        .images_tensor(gan_lib::data::PixelRange::Symmetric, &CPU)
        .unwrap();
    let error = trainer.train_step(&real, None).unwrap_err().to_string();
    assert!(error.contains("labelled"), "{error}");
    let reports = trainer.train(&data).unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.mean.d_loss.is_finite()));
    // A 10x10 grid per epoch: a row per digit.
    let grid = image::open(dir.path().join("images/epoch_0002.png")).unwrap();
    assert_eq!(
        (grid.width(), grid.height()),
        (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))
    );
    // The movie: one frame per grid, each as large as a grid plus its caption.
    let gif = std::fs::read(dir.path().join("training.gif")).unwrap();
    let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(gif)).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].buffer().width(), grid.width());
    // The saved generator is conditional and draws the digits asked for (as shapes here).
    let (generator, saved) =
        Generator::load(dir.path().join("generator.safetensors"), &CPU).unwrap();
    assert!(saved.model.conditional() && generator.is_conditional());
    let pixels = generator.draw_labelled(&[0, 7, 7], 5, &CPU).unwrap();
    assert_eq!(pixels.len(), 3 * 784);
    let error = generator
        .draw_labelled(&[10], 5, &CPU)
        .unwrap_err()
        .to_string();
    assert!(error.contains("digit 10"), "{error}");
    // draw asks a conditional generator for each digit in turn.
    let balanced = generator.draw(3, 5, &CPU).unwrap();
    assert_eq!(
        balanced,
        generator.draw_labelled(&[0, 1, 2], 5, &CPU).unwrap()
    );
}

#[test]
fn weights_of_one_kind_refuse_to_load_as_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let plain = tiny_mlp();
    let conditional = tiny_conditional();
    let mut files = Vec::new();
    for (name, config) in [("plain", &plain), ("conditional", &conditional)] {
        let gan = Gan::new(config, &CPU, &mut rng::seeded(3)).unwrap();
        let path = dir.path().join(format!("{name}.safetensors"));
        checkpoint::save_weights(&path, &gan.g_vars, config).unwrap();
        files.push((TensorFile::read(&path, &CPU).unwrap(), gan));
    }
    let (plain_file, plain_gan) = &files[0];
    let (conditional_file, conditional_gan) = &files[1];
    let error = plain_gan
        .load_generator_weights(conditional_file)
        .unwrap_err()
        .to_string();
    assert!(error.contains("conditional.safetensors"), "{error}");
    assert!(error.contains("holds a conditional generator"), "{error}");
    let error = conditional_gan
        .load_generator_weights(plain_file)
        .unwrap_err()
        .to_string();
    assert!(error.contains("plain.safetensors"), "{error}");
    assert!(
        error.contains("holds an unconditional generator"),
        "{error}"
    );
    // Each kind loads its own, into a GAN drawn from another seed.
    for (file, gan, config) in [
        (plain_file, plain_gan, &plain),
        (conditional_file, conditional_gan, &conditional),
    ] {
        let other = Gan::new(config, &CPU, &mut rng::seeded(99)).unwrap();
        assert_ne!(weights(&other.g_vars), weights(&gan.g_vars));
        other.load_generator_weights(file).unwrap();
        assert_eq!(weights(&other.g_vars), weights(&gan.g_vars));
    }
}

/// A generator with trained-looking BatchNorm statistics is not needed: a fresh one's digits
/// are deterministic functions of noise and label, which is all a walk's ends must match.
fn fresh_generator(config: &TrainConfig) -> Generator {
    Gan::new(config, &CPU, &mut rng::seeded(4))
        .unwrap()
        .generator
}

fn close(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x.abs_diff(y) <= 1)
}

#[test]
fn latent_walks_start_and_end_at_the_endpoints_own_samples() {
    let image = |pixels: &[u8], i: usize| pixels[i * 784..(i + 1) * 784].to_vec();
    let plain = fresh_generator(&tiny_mlp());
    for mode in [Interpolation::Linear, Interpolation::Spherical] {
        let walk = noise_walk(&plain, (5, 9), 6, mode, None, &CPU).unwrap();
        assert_eq!(walk.steps, 6);
        assert!(close(
            &image(&walk.pixels, 0),
            &plain.draw(1, 5, &CPU).unwrap()
        ));
        assert!(close(
            &image(&walk.pixels, 5),
            &plain.draw(1, 9, &CPU).unwrap()
        ));
        assert!(
            !close(&image(&walk.pixels, 2), &image(&walk.pixels, 0)),
            "{mode:?}"
        );
        let strip = walk.strip();
        assert_eq!(strip.size(), (2 * (6 * 30 + 2), 2 * 32));
    }
    let conditional = fresh_generator(&tiny_conditional());
    let walk = noise_walk(
        &conditional,
        (5, 9),
        4,
        Interpolation::Spherical,
        Some(4),
        &CPU,
    )
    .unwrap();
    assert!(close(
        &image(&walk.pixels, 0),
        &conditional.draw_labelled(&[4], 5, &CPU).unwrap()
    ));
    assert!(close(
        &image(&walk.pixels, 3),
        &conditional.draw_labelled(&[4], 9, &CPU).unwrap()
    ));
    let walk = digit_walk(&conditional, 5, (2, 7), 5, &CPU).unwrap();
    assert!(close(
        &image(&walk.pixels, 0),
        &conditional.draw_labelled(&[2], 5, &CPU).unwrap()
    ));
    assert!(close(
        &image(&walk.pixels, 4),
        &conditional.draw_labelled(&[7], 5, &CPU).unwrap()
    ));
    // What cannot be walked says why.
    for (error, expected) in [
        (
            noise_walk(&conditional, (1, 2), 4, Interpolation::Linear, None, &CPU).unwrap_err(),
            "needs the digit",
        ),
        (
            digit_walk(&plain, 1, (2, 7), 4, &CPU).unwrap_err(),
            "unconditional",
        ),
        (
            digit_walk(&conditional, 1, (2, 11), 4, &CPU).unwrap_err(),
            "digit 11",
        ),
        (
            noise_walk(&plain, (1, 2), 1, Interpolation::Linear, None, &CPU).unwrap_err(),
            "2 to 100 steps",
        ),
    ] {
        assert!(error.to_string().contains(expected), "{error}");
    }
}

#[test]
fn label_accuracy_and_prediction_rows_count_what_was_asked_for() {
    let labels = LabelAccuracy::new(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 7]);
    assert_eq!(labels.samples, 5);
    assert!((labels.accuracy - 0.6).abs() < 1e-12);
    assert_eq!(&labels.per_digit[..3], &[0.5, 1.0, 0.0]);
    assert!(labels.per_digit[3].is_nan(), "never asked for");
    assert_eq!(labels.confusion[0][1], 1);
    assert_eq!(labels.confusion[2][7], 1);
    assert_eq!(labels.worst_digit(), (2, 0.0));
    let figure = gan_lib::analysis::confusion_figure(&labels).unwrap();
    assert!(figure.size().0 > 500);

    let mut probabilities = [0.0f32; 10];
    probabilities[4] = 0.75;
    probabilities[9] = 0.25;
    let prediction = Prediction {
        digit: 4,
        confidence: 0.75,
        probabilities,
    };
    let rows = prediction_rows(&[prediction; 2], Some(&[4, 9]));
    assert_eq!(rows[1].index, 1);
    assert_eq!(rows[1].requested, Some(9));
    let csv = predictions_csv(&rows);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "index,predicted,confidence,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,requested"
    );
    assert_eq!(lines.len(), 3);
    assert!(
        lines[2].starts_with("1,4,0.750000,0.000000"),
        "{}",
        lines[2]
    );
    assert!(lines[2].ends_with(",0.250000,9"), "{}", lines[2]);
    // Without requested digits there is no such column.
    let csv = predictions_csv(&prediction_rows(&[prediction], None));
    assert!(!csv.contains("requested"));
    assert_eq!(csv.lines().nth(1).unwrap().split(',').count(), 13);
}

#[test]
fn a_movie_has_one_frame_per_picture_and_decodes() {
    let frames: Vec<(String, Picture)> = (1..=3)
        .map(|i| (format!("epoch {i}"), Picture::blank(60 + 10 * i, 40)))
        .collect();
    let movie = Movie::from_frames(&frames, 100).unwrap();
    assert_eq!(movie.frames, 3);
    let decoder =
        image::codecs::gif::GifDecoder::new(std::io::Cursor::new(movie.gif.clone())).unwrap();
    let decoded = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(decoded.len(), 3);
    // Every frame on a canvas as large as the largest picture, with the caption above.
    assert_eq!(decoded[0].buffer().dimensions(), (90, 40 + 28));
    let dir = tempfile::tempdir().unwrap();
    let error = Movie::from_run(dir.path(), 100).unwrap_err().to_string();
    assert!(error.contains("images"), "{error}");
}

/// The convolutional presets for a CPU budget, conditional and not: a seeded epoch is the
/// same bit for bit twice, the run saves its generator, and the generator reloads and draws
/// whole digits (each one asked for, when conditional).
#[test]
fn the_fast_dcgans_train_save_reload_and_repeat_bit_for_bit() {
    let data = small_mnist().limit(64);
    for preset in ["dcgan-fast", "cgan-dcgan-fast"] {
        let config = TrainConfig::preset(preset)
            .unwrap()
            .with("batch_size", "16")
            .unwrap()
            .with("epochs", "1")
            .unwrap();
        let run = |dir: &std::path::Path| {
            let mut trainer = quiet_trainer(&config, dir);
            trainer.train(&data).unwrap();
            let losses: Vec<(f32, f32)> = trainer
                .history
                .iter()
                .map(|p| (p.d_loss, p.g_loss))
                .collect();
            (
                losses,
                weights(&trainer.gan.g_vars),
                weights(&trainer.gan.d_vars),
            )
        };
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = run(first.path());
        assert_eq!(a.0.len(), 4, "{preset}: 64 digits in batches of 16");
        assert!(
            a.0.iter().all(|(d, g)| d.is_finite() && g.is_finite()),
            "{preset}"
        );
        assert_eq!(a, run(second.path()), "{preset}: two seeded runs differ");

        let (generator, loaded_config) =
            Generator::load(first.path().join("generator.safetensors"), &CPU).unwrap();
        assert_eq!(loaded_config, config, "{preset}");
        assert_eq!(
            generator.is_conditional(),
            preset.starts_with("cgan"),
            "{preset}"
        );
        let digits = generator.draw(20, 0, &CPU).unwrap();
        assert_eq!(digits.len(), 20 * 784, "{preset}");
        assert!(digits.iter().any(|&p| p > 0), "{preset}: blank digits");
    }
}
