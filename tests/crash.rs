//! Crash safety as a user meets it: the real binary, killed with SIGKILL inside an epoch and
//! while it writes a checkpoint, resumes where its last checkpoint left it (not from the start:
//! the epochs before are not trained again), ends with the weights and the loss log of an
//! uninterrupted run, and no file of the run is ever half-written.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use candle_core::Device;
use gan_lib::checkpoint::TensorFile;
use gan_lib::config::TrainConfig;

const EPOCHS: usize = 12;
/// Images per epoch: ten steps of quick-mlp's batch of 64.
const LIMIT: usize = 640;
const STEPS_PER_EPOCH: usize = 10;

/// `train` of a small but real run: quick-mlp's networks (a 13 MB checkpoint, so a write takes
/// long enough to be caught), ten steps per epoch, one thread (bit-reproducible).
fn train(out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mnist-gan"));
    command
        .args(["train", "--quiet", "--out", out.to_str().unwrap()])
        .args(extra)
        .env("CANDLE_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
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
            &EPOCHS.to_string(),
            "--limit",
            &LIMIT.to_string(),
            "--seed",
            "7",
        ],
    )
}

fn resume(out: &Path) -> Command {
    train(out, &["--resume", "run"])
}

/// Waits for a run to end well; returns what it printed.
fn finish(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The epoch a resumed run says it continues after ("Resuming RUN after epoch E (step S)"),
/// checked against its step.
fn resumed_after(printed: &str) -> usize {
    let line = printed
        .lines()
        .find(|l| l.starts_with("Resuming "))
        .unwrap_or_else(|| panic!("the resumed run did not say where it resumed: {printed:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let epoch: usize = words[words.len() - 3].parse().unwrap();
    let step: usize = words[words.len() - 1]
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert_eq!(step, epoch * STEPS_PER_EPOCH, "{line}");
    epoch
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sample(run: &Path, epoch: usize) -> PathBuf {
    run.join("images").join(format!("epoch_{epoch:04}.png"))
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
fn sigkill_inside_an_epoch_and_mid_checkpoint_then_resume_continues_to_the_same_run() {
    let reference = tempfile::tempdir().unwrap();
    finish(fresh(reference.path()).spawn().unwrap());
    // An epoch's length, from the times its samples were written.
    let (first_sample, last_sample) = (
        modified(&sample(&reference.path().join("run"), 1)),
        modified(&sample(&reference.path().join("run"), EPOCHS)),
    );
    let epoch_time = last_sample.duration_since(first_sample).unwrap() / (EPOCHS as u32 - 1);

    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let checkpoint = run.join("checkpoint.safetensors");

    // 1. Killed inside epoch 2: a quarter of an epoch (several of its ten steps) after the first checkpoint, and before the second.
    let first = std::cell::OnceCell::new();
    kill_when(fresh(out.path()).spawn().unwrap(), "inside epoch 2", || {
        let Ok(meta) = std::fs::metadata(&checkpoint) else {
            return false;
        };
        let modified = meta.modified().unwrap();
        let since = *first.get_or_init(|| (modified, Instant::now()));
        modified == since.0 && since.1.elapsed() > epoch_time / 4
    });
    assert_all_files_whole(&run);
    assert_eq!(
        loss_rows(&run).len(),
        STEPS_PER_EPOCH,
        "the log holds epoch 1's steps"
    );
    let epoch_1_sample = modified(&sample(&run, 1));

    // 2. Resumed, and killed while it writes a checkpoint: its temporary file exists, the
    // previous checkpoint is intact. It must continue after epoch 1, not start over.
    let mut second = resume(out.path()).spawn().unwrap();
    let mut said = String::new();
    // Kept open until the kill: the run must not meet a closed stdout.
    let mut stdout = std::io::BufReader::new(second.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut said).unwrap();
    assert_eq!(resumed_after(&said), 1, "{said}");
    kill_when(second, "mid-checkpoint", || {
        !temporary_checkpoints(&run).is_empty()
    });
    drop(stdout);
    assert!(!temporary_checkpoints(&run).is_empty());
    assert_all_files_whole(&run);
    let kept = TensorFile::read(&checkpoint, &Device::Cpu).unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&kept.metadata[gan_lib::checkpoint::STATE_KEY]).unwrap();
    let kept_epoch = state["epoch"].as_u64().unwrap() as usize;
    assert!(
        kept_epoch >= 1,
        "the checkpoint went back to epoch {kept_epoch}"
    );

    // 3. Resumed to the end, after the epoch of the last whole checkpoint: the epochs before
    // are not trained again (their samples untouched), and the run ends as the uninterrupted
    // one: the same weights, the same loss log row for row, no leftovers.
    let printed = finish(resume(out.path()).spawn().unwrap());
    assert_eq!(resumed_after(&printed), kept_epoch, "{printed}");
    assert_eq!(
        modified(&sample(&run, 1)),
        epoch_1_sample,
        "epoch 1 was trained again"
    );
    assert!(temporary_checkpoints(&run).is_empty(), "leftover kept");
    assert_all_files_whole(&run);
    let (ours, theirs) = (loss_rows(&run), loss_rows(&reference.path().join("run")));
    assert_eq!(ours.len(), EPOCHS * STEPS_PER_EPOCH);
    assert_eq!(
        ours, theirs,
        "losses.csv differs from the uninterrupted run's"
    );
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

/// The rows of a run's losses.csv, as written (the header left out).
fn loss_rows(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("losses.csv")).unwrap_or_default();
    text.lines().skip(1).map(str::to_owned).collect()
}
