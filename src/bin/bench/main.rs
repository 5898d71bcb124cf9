//! Benchmarks, side by side with PyTorch: for every preset, training speed (D and G steps on
//! real MNIST batches), achieved GFLOP/s, generation of 10,000 digits and peak memory; then
//! the classifier's training and inference speed. The same steps run in PyTorch
//! (`bench/torch_reference.py`, built from the same preset files) right after ours, so the
//! our/PyTorch ratios come from one run and machine noise mostly cancels.
//!
//! ```sh
//! cargo run --release --bin bench                      # all presets, 1 and 2 threads
//! cargo run --release --bin bench -- --threads 1 --presets quick-mlp,dcgan-course --steps 50
//! ```
//!
//! `bench --help` lists the options. Each thread count is given to both sides
//! (`gan_lib::set_threads` and `torch.set_num_threads`), and each measurement runs in its own
//! process, so peak memory (VmHWM / ru_maxrss) is its own.
//!
//! To profile one preset's training alone: `bench --one dcgan-course --steps 50 --train-only`
//! under `perf record`.

mod peak;

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Parser;
use gan_lib::classifier::Classifier;
use gan_lib::config::{GeneratorStart, ModelConfig, TrainConfig, PRESETS};
use gan_lib::data::{BatchOptions, Mnist, PixelRange, IMAGE_PIXELS, IMAGE_SIDE};
use gan_lib::nn::Pass;
use gan_lib::train::Trainer;
use gan_lib::{optim, rng};
use serde_json::{json, Value};

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

/// Multiply-adds of one image through G and through D, counted from the config
/// (matmuls and convolutions only).
fn macs_per_image(config: &TrainConfig) -> (f64, f64) {
    let chain = |sizes: &[usize]| sizes.windows(2).map(|w| (w[0] * w[1]) as f64).sum::<f64>();
    match &config.model {
        ModelConfig::Mlp(m) => {
            let g = [&[config.latent_dim][..], &m.g_hidden, &[IMAGE_PIXELS]].concat();
            let d = [&[IMAGE_PIXELS][..], &m.d_hidden, &[1]].concat();
            (chain(&g), chain(&d))
        }
        ModelConfig::Dcgan(m) => {
            let (mut channels, mut side, mut g) = match m.g_start {
                GeneratorStart::Latent1x1 => (config.latent_dim, 1, 0.0),
                GeneratorStart::Dense { channels, side } => (
                    channels,
                    side,
                    chain(&[config.latent_dim, channels * side * side]),
                ),
            };
            for l in &m.g_layers {
                g += (channels * l.channels * l.kernel * l.kernel * side * side) as f64;
                side = l.conv_transpose_output(side);
                channels = l.channels;
            }
            let (mut channels, mut side, mut d) = (1, IMAGE_SIDE, 0.0);
            for l in &m.d_layers {
                side = l.conv_output(side);
                d += (channels * l.channels * l.kernel * l.kernel * side * side) as f64;
                channels = l.channels;
            }
            if m.d_linear_head {
                d += (channels * side * side) as f64;
            }
            (g, d)
        }
    }
}

/// FLOPs of one training step: each D step runs G forward, D forward and backward on the
/// real and the fake batch; the G step runs G and D forward and backward. A backward pass
/// counts twice its forward pass, a multiply-add two FLOPs.
fn flops_per_step(config: &TrainConfig) -> f64 {
    let (g, d) = macs_per_image(config);
    let d_step = g + 2.0 * 3.0 * d;
    let g_step = 3.0 * g + 3.0 * d;
    2.0 * config.batch_size as f64 * (config.d_steps as f64 * d_step + g_step)
}

/// Multiply-adds of one image through the classifier.
const CLASSIFIER_MACS: f64 = (25 * 32 * 784 + 32 * 64 * 25 * 196 + 3136 * 128 + 128 * 10) as f64;

/// Child process: trains `steps` steps of a preset (after 3 warm-up steps), then generates
/// 10,000 digits; prints one JSON line.
fn measure_preset(name: &str, steps: usize, train_only: bool, device: &Device) -> Result<()> {
    let config = TrainConfig::preset(name)?;
    let mnist = Mnist::load_vendored()?;
    let dir = tempfile::tempdir()?;
    let mut trainer = Trainer::new(&config, dir.path(), device)?;
    let options = BatchOptions {
        batch_size: config.batch_size,
        rotation_degrees: config.rotation_degrees,
        drop_last: true,
        ..Default::default()
    };
    let batches: Vec<_> = mnist
        .train
        .clone()
        .limit((steps + 3) * config.batch_size)
        .batches(&options, &mut rng::seeded(0), device)
        .collect::<candle_core::Result<_>>()?;
    for batch in &batches[..3] {
        trainer.train_step(&batch.images, Some(&batch.labels))?;
    }
    let started = Instant::now();
    for batch in &batches[3..] {
        trainer.train_step(&batch.images, Some(&batch.labels))?;
    }
    device.synchronize()?;
    let ms_per_step = 1000.0 * started.elapsed().as_secs_f64() / steps as f64;
    if train_only {
        println!(
            "{}",
            json!({"ms_per_step": ms_per_step, "peak_mib": peak_mib()})
        );
        return Ok(());
    }

    let z = trainer.gan.noise(10_000, &mut rng::seeded(1))?;
    let generator = &trainer.gan.generator;
    generator.generate(&z.narrow(0, 0, 100)?, None)?;
    let times = (0..3)
        .map(|_| {
            let started = Instant::now();
            generator
                .generate(&z, None)?
                .sum_all()?
                .to_scalar::<f32>()?;
            Ok(started.elapsed().as_secs_f64())
        })
        .collect::<Result<Vec<_>>>()?;
    let result = json!({"ms_per_step": ms_per_step, "generate_10k_s": median(times), "peak_mib": peak_mib()});
    println!("{result}");
    Ok(())
}

/// Child process: classifier training and inference throughput; prints one JSON line.
fn measure_classifier(steps: usize, device: &Device) -> Result<()> {
    let mnist = Mnist::load_vendored()?;
    let classifier = Classifier::new(0, device)?;
    let mut adam = optim::Adam::new(&classifier.vars, (0.9, 0.999))?;
    let mut dropout_rng = rng::seeded(0);
    let batch = mnist.train.clone().limit(64);
    let x = batch.images_tensor(PixelRange::Unit, device)?;
    let y = batch.labels_tensor(device)?;
    let mut step = || -> Result<()> {
        let logits = classifier.forward(&x, &mut Pass::train(&mut dropout_rng))?;
        adam.step(
            &gan_lib::candle_nn::loss::cross_entropy(&logits, &y)?.backward()?,
            1e-3,
        )?;
        Ok(())
    };
    step()?;
    let started = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    device.synchronize()?;
    let train_rate = 64.0 * steps as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    classifier.run_bytes(&mnist.test.pixels)?;
    let inference_rate = 10_000.0 / started.elapsed().as_secs_f64();
    let result = json!({"train_images_per_s": train_rate, "inference_images_per_s": inference_rate, "peak_mib": peak_mib()});
    println!("{result}");
    Ok(())
}

/// Runs `program args` with `threads` threads and parses the JSON line it prints last.
fn run_json(program: &str, args: &[&str], threads: usize) -> Result<Value> {
    let threads = threads.to_string();
    let output = Command::new(program)
        .args(args)
        .env("CANDLE_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", &threads)
        .env("OMP_NUM_THREADS", &threads)
        .output()
        .with_context(|| format!("starting {program}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("reading {program}'s output {line:?}"))
}

/// The two sides of one measurement, each the median of the repeats.
struct Pair {
    ours: Value,
    torch: Option<Value>,
}

impl Pair {
    fn ours(&self, key: &str) -> f64 {
        self.ours[key].as_f64().unwrap_or(f64::NAN)
    }
    fn torch(&self, key: &str) -> Option<f64> {
        self.torch.as_ref().and_then(|t| t[key].as_f64())
    }
}

/// How each measurement runs: our child process, PyTorch's script (when it is there), the
/// timed steps and the repeats.
struct Runner {
    script: Option<String>,
    steps: String,
    device: String,
    repeat: usize,
}

impl Runner {
    /// Runs `bench <ours> --steps N --device D` and `python3 script <theirs> --steps N
    /// --device D --threads T`
    /// alternately `repeat` times; keeps the run with the median value of `key` on each side.
    fn measure(&self, ours: &[&str], theirs: &[&str], threads: usize, key: &str) -> Result<Pair> {
        let me = std::env::current_exe()?;
        let me = me.to_str().context("bench path")?;
        let threads_arg = threads.to_string();
        let common = [
            "--steps",
            self.steps.as_str(),
            "--device",
            self.device.as_str(),
        ];
        let ours_args = [ours, &common[..]].concat();
        let torch_args = self.script.as_deref().map(|script| {
            [
                &[script][..],
                theirs,
                &common[..],
                &["--threads", &threads_arg][..],
            ]
            .concat()
        });
        let (mut ours_runs, mut torch_runs) = (Vec::new(), Vec::new());
        for _ in 0..self.repeat {
            ours_runs.push(run_json(me, &ours_args, threads)?);
            if let Some(args) = &torch_args {
                torch_runs.push(run_json("python3", args, threads)?);
            }
        }
        let pick = |mut runs: Vec<Value>| {
            runs.sort_by(|a, b| {
                a[key]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b[key].as_f64().unwrap_or(0.0))
            });
            runs.swap_remove(runs.len() / 2)
        };
        Ok(Pair {
            ours: pick(ours_runs),
            torch: (!torch_runs.is_empty()).then(|| pick(torch_runs)),
        })
    }
}

/// `a / b` as "1.23x", or "–" without PyTorch.
fn ratio(a: Option<f64>, b: f64) -> String {
    a.map_or("–".into(), |a| format!("{:.2}x", a / b))
}

fn or_dash(value: Option<f64>, digits: usize) -> String {
    value.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// Whether `python3 -c "import torch"` works; the reason when not.
fn torch_available() -> std::result::Result<String, String> {
    let output = Command::new("python3")
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .map_err(|e| format!("python3 not found ({e})"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr
            .lines()
            .last()
            .unwrap_or("import torch failed")
            .to_owned())
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The device in words: the CPU's name, or an NVIDIA GPU's as `nvidia-smi` gives it.
fn describe(device: &Device) -> String {
    if device.is_cpu() {
        return format!("CPU ({})", cpu_name());
    }
    if !device.is_cuda() {
        return format!("{device:?}");
    }
    let gpu = Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    format!(
        "CUDA ({})",
        gpu.unwrap_or_else(|| "nvidia-smi not found".into())
    )
}

/// Measures and prints the CPU's FP32 peak for each thread count (nothing on a GPU): the
/// ceiling each row's GFLOP/s is a share of.
fn print_peaks(
    thread_counts: &[usize],
    device: &Device,
) -> std::collections::HashMap<usize, Option<f64>> {
    let mut peaks = std::collections::HashMap::new();
    if !device.is_cpu() {
        return peaks;
    }
    let extension = peak::vector_extension();
    for &threads in thread_counts {
        let peak = peak::fp32_peak_gflops(extension, threads, 0.5);
        peaks.insert(threads, peak);
        let avx2 = match extension {
            "AVX-512" => peak::fp32_peak_gflops("AVX2+FMA", threads, 0.5)
                .map_or(String::new(), |g| format!("; with AVX2 only {g:.0}")),
            _ => String::new(),
        };
        let build = match peak::AVX2_ONLY_BUILD {
            true => " (built without gemm's AVX-512 kernels, as on an AVX2-only CPU)",
            false => "",
        };
        match peak {
            Some(gflops) => println!(
                "FP32 peak, {threads} thread{}: {gflops:.0} GFLOP/s (fused multiply-adds on registers, {extension}{avx2}); the matmul kernels use {extension}{build}",
                if threads == 1 { "" } else { "s" }
            ),
            None => println!("FP32 peak: not measured ({extension})"),
        }
    }
    peaks
}

/// Training, generation and classifier speed for every preset, side by side with PyTorch.
#[derive(Parser)]
#[command(about = "Training, generation and classifier speed of every preset, beside PyTorch")]
struct Args {
    /// Timed steps per measurement (after 3 warm-up steps).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Presets to measure, comma-separated (default: those the PyTorch reference mirrors).
    #[arg(long, value_delimiter = ',')]
    presets: Vec<String>,
    /// Thread counts to measure, comma-separated; each is given to both sides.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    threads: Vec<usize>,
    /// cpu or cuda, for both sides.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Alternating runs per measurement; the median is kept.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Skip the PyTorch side.
    #[arg(long)]
    no_torch: bool,
    /// Skip the classifier.
    #[arg(long)]
    no_classifier: bool,
    /// Measure one preset in this process and print JSON (what each measurement runs).
    #[arg(long, value_name = "PRESET")]
    one: Option<String>,
    /// With --one: training steps only (for profiling).
    #[arg(long, requires = "one")]
    train_only: bool,
    /// Measure the classifier in this process and print JSON.
    #[arg(long, conflicts_with = "one")]
    classifier_one: bool,
    /// Measure only the CPU's FP32 peak (a fused multiply-add loop) for each thread count.
    #[arg(long, conflicts_with_all = ["one", "classifier_one"])]
    peak_only: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gan_lib::tune_allocator();
    gan_lib::set_threads(None);
    if args.steps == 0 || args.repeat == 0 || args.threads.contains(&0) {
        bail!("--steps, --repeat and --threads must be at least 1");
    }
    let steps = args.steps;
    let device_name = args.device.clone();
    let device =
        gan_lib::device(&device_name).with_context(|| format!("--device {device_name}"))?;
    if let Some(name) = &args.one {
        return gan_lib::on_pool(|| measure_preset(name, steps, args.train_only, &device));
    }
    if args.classifier_one {
        return gan_lib::on_pool(|| measure_classifier(steps, &device));
    }
    let repeat = args.repeat;
    let thread_counts = args.threads.clone();
    if args.peak_only {
        print_peaks(&thread_counts, &device);
        return Ok(());
    }
    let presets = presets_to_measure(&args.presets)?;
    let torch = if args.no_torch {
        None
    } else {
        match torch_available() {
            Ok(version) => Some(version),
            Err(why) => {
                println!("PyTorch reference not run: {why}. Install it with `pip install torch`, or pass --no-torch.\n");
                None
            }
        }
    };
    let script = gan_lib::find_upwards("bench/torch_reference.py")
        .context("bench/torch_reference.py not found (run from the repository)")?;
    let script = script.to_str().context("script path")?.to_owned();

    println!(
        "{} ({} logical CPUs), {steps} timed steps after 3 warm-up steps, median of {repeat}",
        cpu_name(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("PyTorch: {}", torch.as_deref().unwrap_or("not run"));
    let peaks = print_peaks(&thread_counts, &device);
    println!("device: {}", describe(&device));
    let started = Instant::now();
    for _ in 0..3 {
        Mnist::load_vendored()?;
    }
    println!(
        "loading all 70,000 MNIST images from data/mnist/*.gz: {:.3} s\n",
        started.elapsed().as_secs_f64() / 3.0
    );
    let runner = Runner {
        script: torch.as_ref().map(|_| script),
        steps: steps.to_string(),
        device: device_name,
        repeat,
    };
    for &threads in &thread_counts {
        let peak = peaks.get(&threads).copied().flatten();
        print_table(&runner, &presets, threads, peak, !args.no_classifier)?;
    }
    Ok(())
}

/// The presets asked for, or by default those the PyTorch reference can reproduce.
fn presets_to_measure(asked: &[String]) -> Result<Vec<String>> {
    let presets: Vec<String> = if asked.is_empty() {
        // The PyTorch reference mirrors the unconditional BCE loop: by default, the presets
        // it can reproduce (no labels, hinge or Wasserstein loss, spectral norm or moving
        // average).
        PRESETS
            .iter()
            .filter(|(n, _)| {
                TrainConfig::preset(n).is_ok_and(|c| {
                    !c.model.conditional()
                        && c.loss == gan_lib::config::Loss::Bce
                        && c.ema_decay == 0.0
                        && !matches!(&c.model, ModelConfig::Mlp(m) if m.d_spectral_norm)
                        && !matches!(&c.model, ModelConfig::Dcgan(m) if m.d_spectral_norm)
                })
            })
            .map(|(n, _)| n.to_string())
            .collect()
    } else {
        asked.to_vec()
    };
    for name in &presets {
        if TrainConfig::preset(name)?.model.conditional() {
            bail!("--presets: {name} is conditional; the benchmark measures unconditional presets");
        }
    }
    Ok(presets)
}

/// The table of one thread count: each preset's step, generation and memory beside PyTorch,
/// then the classifier's line.
fn print_table(
    runner: &Runner,
    presets: &[String],
    threads: usize,
    peak: Option<f64>,
    classifier: bool,
) -> Result<()> {
    println!(
        "### {threads} thread{}\n",
        if threads == 1 { "" } else { "s" }
    );
    let share = |gflops: f64| peak.map_or("–".into(), |p| format!("{:.0}%", 100.0 * gflops / p));
    println!("| preset | batch | GFLOP/step | ms/step | PyTorch ms/step | speed vs PyTorch | s/epoch | GFLOP/s | of peak | 10,000 digits (s) | PyTorch (s) | peak MiB | PyTorch MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for name in presets {
        let config = TrainConfig::preset(name)?;
        let pair = runner.measure(
            &["--one", name],
            &["--preset", name],
            threads,
            "ms_per_step",
        )?;
        let ms = pair.ours("ms_per_step");
        let flops = flops_per_step(&config);
        println!(
            "| {name} | {} | {:.2} | {ms:.1} | {} | {} | {:.1} | {:.0} | {} | {:.3} | {} | {:.0} | {} |",
            config.batch_size,
            flops / 1e9,
            or_dash(pair.torch("ms_per_step"), 1),
            ratio(pair.torch("ms_per_step"), ms),
            ms / 1000.0 * (60_000 / config.batch_size) as f64,
            flops / ms / 1e6,
            share(flops / ms / 1e6),
            pair.ours("generate_10k_s"),
            or_dash(pair.torch("generate_10k_s"), 3),
            pair.ours("peak_mib"),
            or_dash(pair.torch("peak_mib"), 0),
        );
    }
    if classifier {
        let pair = runner.measure(
            &["--classifier-one"],
            &["--classifier"],
            threads,
            "train_images_per_s",
        )?;
        let train = pair.ours("train_images_per_s");
        println!(
            "\nclassifier: training {train:.0} images/s ({:.0} s/epoch, {:.0} GFLOP/s, {} of peak), PyTorch {} images/s, speed vs PyTorch {}; inference {:.0} images/s, PyTorch {}; peak {:.0} MiB\n",
            60_000.0 / train,
            train * 6.0 * CLASSIFIER_MACS / 1e9,
            share(train * 6.0 * CLASSIFIER_MACS / 1e9),
            or_dash(pair.torch("train_images_per_s"), 0),
            pair.torch("train_images_per_s").map_or("–".into(), |t| format!("{:.2}x", train / t)),
            pair.ours("inference_images_per_s"),
            or_dash(pair.torch("inference_images_per_s"), 0),
            pair.ours("peak_mib"),
        );
    }
    Ok(())
}
