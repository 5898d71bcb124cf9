//! The `mnist-gan` command line, run as a user runs it.

use std::process::{Command, Output};

fn mnist_gan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnist-gan"))
        .args(args)
        .env("CANDLE_NUM_THREADS", "1")
        .output()
        .expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn presets_are_listed() {
    let output = mnist_gan(&["presets"]);
    assert!(output.status.success());
    for name in [
        "fast-mlp",
        "quick-mlp",
        "wide-mlp",
        "mlp-hinge-sn",
        "mlp-wgan-gp",
        "dcgan-wgan-gp",
        "fc-gan-64",
        "dcgan-course",
        "mlp-smoothing",
        "dcgan-tf",
        "fc-gan-100",
        "cgan-fast",
        "cgan-mlp",
        "cgan-dcgan",
        "cgan-dcgan-fast",
        "dcgan-fast",
    ] {
        assert!(text(&output).contains(name), "{name} missing");
    }
}

#[test]
fn dry_run_trains_every_preset_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    for preset in ["quick-mlp", "dcgan-course", "dcgan-tf"] {
        let output = mnist_gan(&[
            "train",
            "--preset",
            preset,
            "--dry-run",
            "--quiet",
            "--set",
            "batch_size=16",
            "--out",
            out.path().to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{preset}: {}", text(&output));
        let run = out.path().join(format!("{preset}-dry-run"));
        assert!(
            run.join("generator.safetensors").is_file()
                && run.join("images/epoch_0001.png").is_file(),
            "{preset}"
        );
    }
}

#[test]
fn nonsense_settings_are_refused_clearly() {
    let output = mnist_gan(&["train", "--dry-run", "--set", "model.bogus=1"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("bogus"), "{}", text(&output));
    let output = mnist_gan(&["train", "--dry-run", "--epochs", "0"]);
    assert!(
        !output.status.success() && text(&output).contains("epochs"),
        "{}",
        text(&output)
    );
    let output = mnist_gan(&["train", "--preset", "gpt"]);
    assert!(
        !output.status.success() && text(&output).contains("no preset named"),
        "{}",
        text(&output)
    );
}

#[test]
fn sample_refuses_a_bad_checkpoint_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-generator.safetensors");
    std::fs::write(&bad, b"hello").unwrap();
    let output = mnist_gan(&[
        "sample",
        "--checkpoint",
        bad.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("not-a-generator.safetensors"),
        "{}",
        text(&output)
    );
    assert!(!text(&output).contains("panicked"), "{}", text(&output));
}

#[test]
fn sample_from_the_shipped_generator_writes_a_grid_and_an_idx_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = mnist_gan(&[
        "sample",
        "--n",
        "30",
        "--nrow",
        "6",
        "--seed",
        "3",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let images =
        gan_lib::data::idx::read_images(dir.path().join("samples-images-idx3-ubyte")).unwrap();
    assert_eq!(images.count, 30);
    let grid = image::open(dir.path().join("samples.png")).unwrap();
    assert_eq!(
        (grid.width(), grid.height()),
        (2 * (6 * 30 + 2), 2 * (5 * 30 + 2))
    );
    // Digits, not noise: mostly dark background with some bright strokes.
    let bright =
        images.pixels.iter().filter(|&&p| p > 128).count() as f64 / images.pixels.len() as f64;
    assert!((0.03..0.4).contains(&bright), "bright fraction {bright}");
}

#[test]
fn time_budget_and_dry_run_flags_are_checked() {
    for minutes in ["0", "-3", "nan", "inf"] {
        let flag = format!("--minutes={minutes}");
        let output = mnist_gan(&["train", &flag, "--dry-run"]);
        assert!(!output.status.success(), "--minutes {minutes} was accepted");
        assert!(text(&output).contains("--minutes"), "{}", text(&output));
    }
    // A dry run on synthetic digits must never write into a real run.
    let output = mnist_gan(&["train", "--resume", "quick-mlp", "--dry-run"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("--resume"), "{}", text(&output));
}

/// `train` of 50 epochs of a tiny fast-mlp (4 steps each) into `out`/budget, with a budget.
fn train_within_budget(out: &std::path::Path, budget: &[&str]) -> Output {
    let out = out.to_str().unwrap();
    let mut args = vec![
        "train", "--preset", "fast-mlp", "--epochs", "50", "--limit", "128",
    ];
    args.extend(budget);
    args.extend(["--set", "batch_size=32", "--set", "model.g_hidden=[32]"]);
    args.extend([
        "--set",
        "model.d_hidden=[32]",
        "--out",
        out,
        "--run",
        "budget",
    ]);
    mnist_gan(&args)
}

/// `--minutes` through the command line, on a clock where each step takes 1 s
/// (`--seconds-per-step`, a hidden flag for tests): 4 steps an epoch, so 3 epochs fit in 12 s
/// (0.2 min) and a fourth would end past it.
#[test]
fn a_time_budget_trains_the_epochs_that_fit() {
    let out = tempfile::tempdir().unwrap();
    let output = train_within_budget(out.path(), &["--minutes", "0.2", "--seconds-per-step", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("stopping after epoch 3 of 50"),
        "{}",
        text(&output)
    );
    let run = out.path().join("budget");
    assert!(run.join("images/epoch_0003.png").is_file());
    assert!(!run.join("images/epoch_0004.png").exists());
    assert!(run.join("generator.safetensors").is_file());
}

#[test]
fn a_time_budget_stops_the_run_and_sample_names_the_averaged_weights() {
    let out = tempfile::tempdir().unwrap();
    let output = train_within_budget(out.path(), &["--minutes", "0.0001"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("Time budget"), "{}", text(&output));
    let run = out.path().join("budget");
    assert!(run.join("images/epoch_0001.png").is_file());
    assert!(!run.join("images/epoch_0002.png").exists());
    let samples = out.path().join("samples");
    let output = mnist_gan(&[
        "sample",
        "--checkpoint",
        run.join("generator.safetensors").to_str().unwrap(),
        "--n",
        "4",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("moving average of G's weights"),
        "{}",
        text(&output)
    );
}

#[test]
fn bench_parses_its_flags_before_measuring() {
    let bench = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(args)
            .output()
            .expect("the benchmark runs")
    };
    let help = bench(&["--help"]);
    assert!(help.status.success());
    assert!(text(&help).contains("--steps"), "{}", text(&help));
    let wrong = bench(&["--stepz", "3"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    let zero = bench(&["--steps", "0", "--no-torch"]);
    assert!(
        !zero.status.success() && text(&zero).contains("--steps"),
        "{}",
        text(&zero)
    );
    let conditional = bench(&["--presets", "cgan-fast", "--no-torch"]);
    assert!(
        !conditional.status.success() && text(&conditional).contains("cgan-fast is conditional"),
        "{}",
        text(&conditional)
    );
    // The machine's ceiling, which each row's GFLOP/s is a share of: a positive figure, and
    // the vector extension the kernels use.
    let peak = bench(&["--peak-only", "--threads", "1"]);
    assert!(peak.status.success(), "{}", text(&peak));
    let gflops: f64 = text(&peak)
        .split("FP32 peak, 1 thread: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no peak figure in: {}", text(&peak)));
    assert!(gflops > 1.0, "{}", text(&peak));
    assert!(
        text(&peak).contains("the matmul kernels use AVX"),
        "{}",
        text(&peak)
    );
}

#[test]
fn digit_flags_are_checked_and_need_a_conditional_generator() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let output = mnist_gan(&["sample", "--digit", "10", "--out", out]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--digit"), "{}", text(&output));
    assert!(text(&output).contains("0..=9"), "{}", text(&output));
    // The shipped unconditional generator cannot be asked for a digit.
    let plain = gan_lib::shipped("generator.safetensors");
    let plain = plain.to_str().unwrap();
    let output = mnist_gan(&[
        "sample",
        "--digit",
        "3",
        "--checkpoint",
        plain,
        "--out",
        out,
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("unconditional"), "{}", text(&output));
    assert!(
        text(&output).contains("generator.safetensors"),
        "{}",
        text(&output)
    );
    let output = mnist_gan(&[
        "interpolate",
        "--from-digit",
        "3",
        "--to-digit",
        "5",
        "--checkpoint",
        plain,
        "--out",
        out,
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("unconditional"), "{}", text(&output));
    assert!(!text(&output).contains("panicked"), "{}", text(&output));
}

#[test]
fn the_shipped_conditional_generator_draws_each_digit_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let output = mnist_gan(&["sample", "--by-digit", "--seed", "2", "--out", out]);
    assert!(output.status.success(), "{}", text(&output));
    let grid = image::open(dir.path().join("samples.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (2 * 302, 2 * 302));
    let labels =
        gan_lib::data::idx::read_labels(dir.path().join("samples-labels-idx1-ubyte")).unwrap();
    assert_eq!(labels, (0..100).map(|i| i / 10).collect::<Vec<u8>>());
    // 40 sevens, and the classifier agrees they are sevens.
    let output = mnist_gan(&["sample", "--digit", "7", "--n", "40", "--out", out]);
    assert!(output.status.success(), "{}", text(&output));
    let images =
        gan_lib::data::idx::read_images(dir.path().join("samples-images-idx3-ubyte")).unwrap();
    let classifier =
        gan_lib::classifier::Classifier::load_shipped(&candle_core::Device::Cpu).unwrap();
    let predictions = gan_lib::analysis::predict(&classifier, &images.pixels).unwrap();
    let sevens = predictions.iter().filter(|p| p.digit == 7).count();
    assert!(sevens >= 36, "only {sevens} of 40 are sevens");
    // analyze: the label accuracy, the requested-vs-predicted figure and predictions.csv.
    let analysis = dir.path().join("analysis");
    let conditional = gan_lib::shipped("conditional-generator.safetensors");
    let output = mnist_gan(&[
        "analyze",
        conditional.to_str().unwrap(),
        "--n",
        "200",
        "--out",
        analysis.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("label accuracy"),
        "{}",
        text(&output)
    );
    assert!(analysis.join("confusion.png").is_file());
    let csv = std::fs::read_to_string(analysis.join("predictions.csv")).unwrap();
    assert_eq!(csv.lines().count(), 201);
    assert!(csv.lines().next().unwrap().ends_with(",requested"));
    assert!(
        csv.lines().nth(12).unwrap().ends_with(",1"),
        "image 11 was asked to be a 1"
    );
    // A walk between two digits, and one through the noise.
    let strip = dir.path().join("walk.png");
    let output = mnist_gan(&[
        "interpolate",
        "--from-digit",
        "1",
        "--to-digit",
        "7",
        "--steps",
        "8",
        "--out",
        strip.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(image::open(&strip).unwrap().width(), 2 * (8 * 30 + 2));
    let output = mnist_gan(&[
        "interpolate",
        "--steps",
        "5",
        "--mode",
        "linear",
        "--out",
        strip.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(image::open(&strip).unwrap().width(), 2 * (5 * 30 + 2));
}

#[test]
fn movie_makes_a_gif_of_a_runs_grids() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let output = mnist_gan(&[
        "train",
        "--preset",
        "cgan-mlp",
        "--dry-run",
        "--quiet",
        "--out",
        out,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let run = dir.path().join("cgan-mlp-dry-run");
    let made = std::fs::read(run.join("training.gif")).unwrap();
    std::fs::remove_file(run.join("training.gif")).unwrap();
    let output = mnist_gan(&["movie", run.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(std::fs::read(run.join("training.gif")).unwrap(), made);
    let output = mnist_gan(&["movie", dir.path().join("nowhere").to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(text(&output).contains("nowhere"), "{}", text(&output));
}

/// The shipped convolutional conditional generator works wherever a generator is taken: `sample
/// --checkpoint … --by-digit` draws the asked digits (the classifier reads at least 95 of 100
/// as asked) and `analyze` reports its label accuracy.
#[test]
fn the_shipped_convolutional_generator_samples_and_analyzes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let conv = gan_lib::shipped("conv-conditional-generator.safetensors");
    let conv = conv.to_str().unwrap();
    let output = mnist_gan(&["sample", "--checkpoint", conv, "--by-digit", "--out", out]);
    assert!(output.status.success(), "{}", text(&output));
    let images =
        gan_lib::data::idx::read_images(dir.path().join("samples-images-idx3-ubyte")).unwrap();
    let labels =
        gan_lib::data::idx::read_labels(dir.path().join("samples-labels-idx1-ubyte")).unwrap();
    let classifier =
        gan_lib::classifier::Classifier::load_shipped(&candle_core::Device::Cpu).unwrap();
    let predictions = gan_lib::analysis::predict(&classifier, &images.pixels).unwrap();
    let right = predictions
        .iter()
        .zip(&labels)
        .filter(|(p, &label)| p.digit == label as usize)
        .count();
    assert!(
        right >= 95,
        "only {right} of 100 read as the digit asked for"
    );
    let analysis = dir.path().join("analysis");
    let output = mnist_gan(&[
        "analyze",
        conv,
        "--n",
        "100",
        "--out",
        analysis.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("label accuracy"),
        "{}",
        text(&output)
    );
}
