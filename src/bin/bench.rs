//! Benchmarks: MNIST loading, training and generation speed of every preset, the
//! classifier's training and inference speed, and peak memory.
//!
//! `cargo run --release --bin bench` (options: `--steps N`, `--presets a,b`). Each preset
//! runs in its own child process so that its peak memory (VmHWM) is its own. Set
//! `CANDLE_NUM_THREADS` to choose the thread count; it is printed with the results.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use gan_lib::classifier::Classifier;
use gan_lib::config::{TrainConfig, PRESETS};
use gan_lib::data::{Mnist, PixelRange};
use gan_lib::models::Pass;
use gan_lib::train::Trainer;
use gan_lib::{optim, rng};

/// Peak resident memory of this process, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Trains `steps` steps of a preset (after 3 warm-up steps) and generates 10,000 digits.
fn bench_preset(name: &str, steps: usize) -> Result<()> {
    let config = TrainConfig::preset(name)?;
    let mnist = Mnist::load_vendored()?;
    let dir = tempfile::tempdir()?;
    let mut trainer = Trainer::new(&config, dir.path(), &Device::Cpu)?;
    let images = mnist.train.clone().limit((steps + 3) * config.batch_size);
    let batches: Vec<_> = {
        let options = gan_lib::data::BatchOptions {
            batch_size: config.batch_size,
            rotation_degrees: config.rotation_degrees,
            drop_last: true,
            ..Default::default()
        };
        let mut data_rng = rng::seeded(0);
        images
            .batches(&options, &mut data_rng, &Device::Cpu)
            .collect::<candle_core::Result<_>>()?
    };
    for batch in &batches[..3] {
        trainer.train_step(&batch.images)?;
    }
    let started = Instant::now();
    for batch in &batches[3..] {
        trainer.train_step(&batch.images)?;
    }
    let seconds_per_step = started.elapsed().as_secs_f64() / steps as f64;
    let epoch_seconds = seconds_per_step * (60_000 / config.batch_size) as f64;
    let mut noise_rng = rng::seeded(1);
    let z = trainer.gan.noise(10_000, &mut noise_rng)?;
    let generator = &trainer.gan.generator;
    generator.forward_pass(&z.narrow(0, 0, 100)?, &mut Pass::eval())?;
    let generation: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let out = generator
                .forward_pass(&z, &mut Pass::eval())
                .and_then(|t| t.sum_all()?.to_scalar::<f32>());
            out.map(|_| started.elapsed().as_secs_f64())
        })
        .collect::<candle_core::Result<_>>()?;
    println!(
        "| {name} | {} | {:.1} | {:.0} | {:.1} | {:.3} | {:.0} |",
        config.batch_size,
        1000.0 * seconds_per_step,
        config.batch_size as f64 / seconds_per_step,
        epoch_seconds,
        median(generation),
        peak_mib()
    );
    Ok(())
}

/// Classifier training and inference throughput.
fn bench_classifier(steps: usize) -> Result<()> {
    let mnist = Mnist::load_vendored()?;
    let classifier = Classifier::new(0, &Device::Cpu)?;
    let mut adam = optim::Adam::new(&classifier.vars, 1e-3, (0.9, 0.999))?;
    let mut dropout_rng = rng::seeded(0);
    let x = mnist
        .train
        .clone()
        .limit(64)
        .images_tensor(PixelRange::Unit, &Device::Cpu)?;
    let y = mnist.train.clone().limit(64).labels_tensor(&Device::Cpu)?;
    let mut step = || -> Result<()> {
        let logits = classifier.forward_pass(&x, &mut Pass::train(&mut dropout_rng))?;
        adam.step(&gan_lib::candle_nn::loss::cross_entropy(&logits, &y)?.backward()?)?;
        Ok(())
    };
    step()?;
    let started = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let train_rate = 64.0 * steps as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    classifier.run_bytes(&mnist.test.pixels)?;
    let inference_rate = 10_000.0 / started.elapsed().as_secs_f64();
    println!("classifier: training {train_rate:.0} images/s ({:.1} s per epoch), inference {inference_rate:.0} images/s, peak {:.0} MiB", 60_000.0 / train_rate, peak_mib());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let steps: usize = value("--steps")
        .map(|s| s.parse())
        .transpose()
        .context("--steps")?
        .unwrap_or(30);
    if let Some(name) = value("--one") {
        return bench_preset(&name, steps);
    }
    if args.iter().any(|a| a == "--classifier") {
        return bench_classifier(steps);
    }
    let threads = std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "CANDLE_NUM_THREADS={threads}, {steps} timed steps per preset after 3 warm-up steps\n"
    );
    let loads: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            Mnist::load_vendored().map(|_| started.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    println!(
        "loading all 70,000 MNIST images from data/mnist/*.gz: {:.3} s (median of 5)\n",
        median(loads)
    );
    println!(
        "| preset | batch | ms/step | images/s | s/epoch (60,000) | 10,000 digits (s) | peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let chosen = value("--presets")
        .map(|p| p.split(',').map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_else(|| PRESETS.iter().map(|(n, _)| n.to_string()).collect());
    let me = std::env::current_exe()?;
    for name in chosen {
        let status = Command::new(&me)
            .args(["--one", &name, "--steps", &steps.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "benchmark of {name} failed");
    }
    let status = Command::new(&me)
        .args(["--classifier", "--steps", &steps.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "classifier benchmark failed");
    Ok(())
}
