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
        "fc-gan-64",
        "dcgan-course",
        "mlp-smoothing",
        "dcgan-tf",
        "fc-gan-100",
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

#[test]
fn a_time_budget_stops_the_run_and_sample_names_the_averaged_weights() {
    let out = tempfile::tempdir().unwrap();
    let output = mnist_gan(&[
        "train",
        "--preset",
        "fast-mlp",
        "--epochs",
        "50",
        "--minutes",
        "0.0001",
        "--limit",
        "128",
        "--set",
        "batch_size=32",
        "--set",
        "model.g_hidden=[32]",
        "--set",
        "model.d_hidden=[32]",
        "--out",
        out.path().to_str().unwrap(),
        "--run",
        "budget",
    ]);
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
}
