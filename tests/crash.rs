//! Crash safety as a user meets it: the real binary, killed with SIGKILL mid-epoch and while
//! it writes a checkpoint, resumes to the weights an uninterrupted run ends with, and no file
//! of the run is ever half-written.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use gan_lib::checkpoint::TensorFile;
use gan_lib::config::TrainConfig;

const EPOCHS: &str = "12";

/// `train` of a small but real run: quick-mlp's networks (a 13 MB checkpoint, so a write takes
/// long enough to be caught), one step per epoch, one thread (bit-reproducible).
fn train(out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mnist-gan"));
    command
        .args(["train", "--quiet", "--out", out.to_str().unwrap()])
        .args(extra)
        .env("CANDLE_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn fresh(out: &Path) -> Command {
    train(
        out,
        &[
            "--run",
            "run",
            "--preset",
            "quick-mlp",
            "--epochs",
            EPOCHS,
            "--limit",
            "64",
            "--seed",
            "7",
        ],
    )
}

fn resume(out: &Path) -> Command {
    train(out, &["--resume", "run"])
}

fn finish(child: Child) {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `ready` holds, then kills the child with SIGKILL; panics, with what the child
/// said, when it ended first.
fn kill_when(mut child: Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if ready() {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return;
        }
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the run ended ({}) before it could be killed {what}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    panic!("the run neither reached the point ({what}) nor ended in 10 minutes");
}

fn temporary_checkpoints(run: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(run)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name.starts_with("checkpoint.safetensors.") && name.ends_with(".tmp")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every file a user would open is whole: checkpoint and weights load, the config parses,
/// the loss log's lines are complete, every picture decodes.
fn assert_all_files_whole(run: &Path) {
    for name in [
        "checkpoint.safetensors",
        "generator.safetensors",
        "discriminator.safetensors",
    ] {
        let path = run.join(name);
        if path.exists() {
            let file = TensorFile::read(&path, &Device::Cpu).unwrap();
            file.config().unwrap();
        }
    }
    TrainConfig::from_file(run.join("config.toml")).unwrap();
    if let Ok(losses) = std::fs::read_to_string(run.join("losses.csv")) {
        assert!(losses.ends_with('\n'), "losses.csv ends mid-line");
        for line in losses.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 3, "losses.csv line {line:?}");
            for field in fields {
                field.parse::<f64>().unwrap();
            }
        }
    }
    for picture in std::fs::read_dir(run.join("images")).into_iter().flatten() {
        let path = picture.unwrap().path();
        if path.extension().is_some_and(|e| e == "png") {
            image::open(&path).unwrap();
        }
    }
    if run.join("losses.png").exists() {
        image::open(run.join("losses.png")).unwrap();
    }
}

#[test]
fn sigkill_mid_epoch_and_mid_checkpoint_then_resume_gives_the_same_weights() {
    let reference = tempfile::tempdir().unwrap();
    finish(fresh(reference.path()).spawn().unwrap());

    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let checkpoint = run.join("checkpoint.safetensors");

    // 1. Killed in the middle of epoch 2 (after the first checkpoint, before the second).
    let first = std::cell::OnceCell::new();
    kill_when(fresh(out.path()).spawn().unwrap(), "mid-epoch", || {
        let Ok(meta) = std::fs::metadata(&checkpoint) else {
            return false;
        };
        let modified = meta.modified().unwrap();
        let since = *first.get_or_init(|| (modified, Instant::now()));
        // A few milliseconds into epoch 2, and still the first checkpoint.
        modified == since.0 && since.1.elapsed() > Duration::from_millis(5)
    });
    assert_all_files_whole(&run);

    // 2. Killed while a checkpoint is being written: its temporary file exists, the previous
    // checkpoint is intact. The resumed run writes ten more to catch.
    kill_when(
        resume(out.path()).spawn().unwrap(),
        "mid-checkpoint",
        || !temporary_checkpoints(&run).is_empty(),
    );
    assert!(!temporary_checkpoints(&run).is_empty());
    assert_all_files_whole(&run);

    // 3. Resumed to the end: the same weights as the run never interrupted, and no leftovers.
    finish(resume(out.path()).spawn().unwrap());
    assert!(temporary_checkpoints(&run).is_empty(), "leftover kept");
    assert_all_files_whole(&run);
    for name in ["generator.safetensors", "discriminator.safetensors"] {
        let ours = TensorFile::read(run.join(name), &Device::Cpu).unwrap();
        let theirs =
            TensorFile::read(reference.path().join("run").join(name), &Device::Cpu).unwrap();
        assert_eq!(ours.tensors.len(), theirs.tensors.len());
        for (tensor, value) in &ours.tensors {
            let a = value.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = theirs.tensors[tensor]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(
                a == b,
                "{name}: {tensor} differs from the uninterrupted run's"
            );
        }
    }
}
