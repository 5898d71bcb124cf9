//! Every way a user can hold the command line wrong: each gets a non-zero exit code and a
//! message that names the flag, key or file and the problem, and none ends in a panic or
//! costs a finished result.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

fn mnist_gan(args: &[&str]) -> Output {
    command(args).output().expect("the binary runs")
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mnist-gan"));
    command
        .args(args)
        .env("CANDLE_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        // Set by many Rust users: a user error must still print its message and nothing else.
        .env("RUST_BACKTRACE", "1");
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `args` and checks that it fails with `code`, a message holding every one of
/// `expected`, and no panic.
fn refused(args: &[&str], code: i32, expected: &[&str]) {
    let output = mnist_gan(args);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {message}");
    for part in expected {
        assert!(
            message.contains(part),
            "{args:?}: {part:?} not in {message}"
        );
    }
    assert!(!message.contains("panicked"), "{args:?}: {message}");
    assert!(
        !message.contains("backtrace"),
        "{args:?}: a user error printed a backtrace: {message}"
    );
}

/// A small run on real digits: quick-mlp's networks, 128 images, one epoch.
fn small_run(out: &Path, run: &str) {
    small_run_with(out, run, &["--limit", "128"]);
}

/// One epoch of quick-mlp, quietly, with `extra` flags (the digits, the networks' sizes).
fn small_run_with(out: &Path, run: &str, extra: &[&str]) {
    let mut args = vec!["train", "--quiet", "--preset", "quick-mlp", "--epochs", "1"];
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap(), "--run", run]);
    let output = mnist_gan(&args);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn train_refuses_nonsense_presets_configs_sizes_and_rates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // clap's own errors (unknown flags, values that are not numbers) exit with 2.
    refused(&["train", "--epochs=-1"], 2, &["--epochs"]);
    refused(&["train", "--batch-size", "many"], 2, &["--batch-size"]);
    refused(&["train", "--lr-scale", "0.5"], 2, &["--resume"]);
    refused(&["train", "--bogus"], 2, &["--bogus"]);
    // The tool's own checks exit with 1, naming the setting.
    let cases: [(&[&str], &[&str]); 12] = [
        (&["--preset", "gpt"], &["no preset named", "gpt"]),
        (
            &["--config", "/no/such/config.toml"],
            &["/no/such/config.toml"],
        ),
        (&["--epochs", "0"], &["epochs"]),
        (&["--batch-size", "0"], &["batch_size"]),
        (&["--lr-g", "0"], &["lr_g"]),
        (&["--lr-g=-0.001"], &["lr_g"]),
        (&["--lr-d", "3"], &["lr_d"]),
        (&["--limit", "0"], &["limit"]),
        (&["--sample-every", "0"], &["sample_every"]),
        (&["--set", "lr_g"], &["--set lr_g", "KEY=VALUE"]),
        (&["--set", "model.g_hidden=[0]"], &["hidden"]),
        (&["--minutes=-1"], &["--minutes"]),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["train", "--dry-run", "--quiet", "--out", out];
        args.extend_from_slice(flags);
        refused(&args, 1, expected);
    }
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "epochs = \"ten\"\n").unwrap();
    refused(
        &["train", "--config", config.to_str().unwrap(), "--dry-run"],
        1,
        &["broken.toml"],
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "a refused run wrote files"
    );
}

#[test]
fn resume_refuses_what_would_change_or_lose_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    refused(
        &["train", "--resume", "nothing-here", "--out", out],
        1,
        &["nothing-here", "checkpoint.safetensors"],
    );
    small_run(dir.path(), "run");
    let checkpoint = dir.path().join("run/checkpoint.safetensors");
    let before = std::fs::read(&checkpoint).unwrap();
    // Config flags would train the saved weights with another config: refused by clap.
    for flags in [
        &["--preset", "dcgan-tf"][..],
        &["--set", "lr_g=0.1"],
        &["--config", "x.toml"],
        &["--batch-size", "8"],
    ] {
        let mut args = vec!["train", "--resume", "run", "--out", out];
        args.extend_from_slice(flags);
        refused(&args, 2, &["--resume", "cannot be used with"]);
    }
    refused(
        &["train", "--resume", "run", "--out", out, "--dry-run"],
        2,
        &["--dry-run"],
    );
    refused(
        &["train", "--resume", "run", "--out", out, "--lr-scale", "0"],
        1,
        &["--lr-scale"],
    );
    // A config.toml edited after the checkpoint disagrees with it.
    let config = dir.path().join("run/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("batch_size = 64", "batch_size = 8")).unwrap();
    refused(
        &["train", "--resume", "run", "--out", out, "--epochs", "2"],
        1,
        &["config.toml differs", "batch_size = 8"],
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);
}

#[test]
fn sample_analyze_and_eval_refuse_bad_sizes_files_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let unwritable = blocker.join("out");
    let unwritable = unwritable.to_str().unwrap();
    let out = dir.path().join("samples");
    let out = out.to_str().unwrap();

    refused(&["sample", "--n", "0", "--out", out], 1, &["--n"]);
    refused(&["sample", "--nrow", "0", "--out", out], 1, &["--nrow"]);
    refused(&["sample", "--n=-5", "--out", out], 2, &["--n"]);
    refused(
        &["sample", "--n", "100001", "--out", out],
        1,
        &["--n 100001", "at most"],
    );
    refused(
        &["sample", "--n", "90000", "--nrow", "1", "--out", out],
        1,
        &["--nrow 1", "grid"],
    );
    refused(
        &[
            "sample",
            "--checkpoint",
            "/no/such/g.safetensors",
            "--out",
            out,
        ],
        1,
        &["/no/such/g.safetensors"],
    );
    refused(
        &["sample", "--n", "4", "--out", unwritable],
        1,
        &["a-file/out"],
    );
    refused(
        &["sample", "--device", "tpu", "--out", out],
        1,
        &["unknown device", "tpu"],
    );

    // A generator whose stored config disagrees with its tensors.
    let shipped = gan_lib::shipped("generator.safetensors");
    let file = gan_lib::checkpoint::TensorFile::read(&shipped, &candle_core::Device::Cpu).unwrap();
    let mismatched = dir.path().join("mismatched.safetensors");
    gan_lib::checkpoint::write_tensors(
        &mismatched,
        file.tensors.into_iter().collect(),
        [(
            gan_lib::checkpoint::CONFIG_KEY.to_owned(),
            gan_lib::config::TrainConfig::preset("fc-gan-64")
                .unwrap()
                .to_toml(),
        )]
        .into(),
    )
    .unwrap();
    refused(
        &[
            "sample",
            "--checkpoint",
            mismatched.to_str().unwrap(),
            "--out",
            out,
        ],
        1,
        &["mismatched.safetensors", "another"],
    );

    refused(&["analyze", "--threshold", "2"], 1, &["--threshold"]);
    refused(
        &["analyze", "--n", "10", "--images", "99", "--out", out],
        1,
        &["--images", "99"],
    );
    refused(
        &["analyze", "--n", "10", "--out", unwritable],
        1,
        &["a-file/out"],
    );
    refused(
        &["analyze", "/no/such/digits.npy"],
        1,
        &["/no/such/digits.npy"],
    );
    refused(&["eval", "--n", "0"], 1, &["no digits"]);
    refused(&["eval", "--n", "100001"], 1, &["at most"]);
}

#[test]
fn train_classifier_refuses_bad_sizes_and_rates() {
    refused(&["train-classifier", "--epochs", "0"], 1, &["--epochs"]);
    refused(
        &["train-classifier", "--batch-size", "0"],
        1,
        &["--batch-size"],
    );
    refused(&["train-classifier", "--lr", "0"], 1, &["--lr"]);
    refused(&["train-classifier", "--lr=-1"], 1, &["--lr"]);
}

#[test]
fn unwritable_run_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    refused(
        &[
            "train",
            "--dry-run",
            "--quiet",
            "--out",
            blocker.to_str().unwrap(),
        ],
        1,
        &["a-file"],
    );
}

/// A full disk, as a file-size limit (`ulimit -f`): the checkpoint that does not fit is an
/// error naming it, the temporary file is removed, and the last checkpoint stays whole.
/// `mnist-gan train --quiet --resume run --epochs <epochs>` in a child whose files may not grow
/// past `limit` bytes: writes past it fail with EFBIG, as on a full disk.
fn resume_on_a_full_disk(out: &Path, epochs: &str, limit: u64) -> Output {
    let mut resume = command(&[
        "train",
        "--quiet",
        "--resume",
        "run",
        "--epochs",
        epochs,
        "--out",
        out.to_str().unwrap(),
    ]);
    // SAFETY: only async-signal-safe libc calls between fork and exec. The limit and the
    // ignored SIGXFSZ pass through exec, so a write past the limit fails instead of killing.
    unsafe {
        resume.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    resume.output().unwrap()
}

/// Every file of the run folder `run` (images included) but `config.toml` (which a resume
/// rewrites with its `--epochs`), with its size and a hash of its bytes.
fn run_files(run: &Path) -> std::collections::BTreeMap<String, (usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut files = std::collections::BTreeMap::new();
    for dir in [run.to_path_buf(), run.join("images")] {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let name = entry
                .path()
                .strip_prefix(run)
                .unwrap()
                .display()
                .to_string();
            if entry.file_type().unwrap().is_file() && name != "config.toml" {
                let bytes = std::fs::read(entry.path()).unwrap();
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                files.insert(name, (bytes.len(), hasher.finish()));
            }
        }
    }
    files
}

#[test]
fn a_full_disk_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    small_run(dir.path(), "run");
    let run = dir.path().join("run");
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    assert!(
        before.len() > 4 << 20,
        "the checkpoint must exceed the limit"
    );
    let output = resume_on_a_full_disk(dir.path(), "2", 4 << 20);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("checkpoint.safetensors") && message.contains("too large"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A full disk at each other file a run writes, in the order a run writes them: the loss CSV
/// (rewritten when a run resumes), an epoch's samples, the final generator, and the training
/// movie. A tiny network (16 hidden units) and 50 steps an epoch make the files written before
/// each one smaller than the one that is to fail: config.toml 622 B, CSV 1.5 KB, generator about
/// 59 KB, discriminator 51 KB, movie 150 KB, samples 230 KB. Each failure names the file and says it is too large; every file of the
/// run stays as it was (no temporary file left), and the run then resumes and finishes.
#[test]
fn a_full_disk_at_any_file_of_a_run_keeps_the_run() {
    // (the file that fails, --epochs of the resume, the size limit, whether the run fails)
    let cases = [
        ("losses.csv", "2", 1_000, true),
        ("images/epoch_0002.png", "2", 120_000, true),
        ("generator.safetensors", "1", 40_000, true),
        // The movie is a bonus: the finished run stands, with a warning that names the file.
        ("training.gif", "1", 100_000, false),
    ];
    for (file, epochs, limit, fails) in cases {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        // 50 steps an epoch, networks of 16 hidden units: small files, in a known order of size.
        let tiny = [
            "--limit",
            "3200",
            "--set",
            "model.g_hidden=[16]",
            "--set",
            "model.d_hidden=[16]",
        ];
        small_run_with(dir.path(), "run", &tiny);
        let before = run_files(&run);
        let output = resume_on_a_full_disk(dir.path(), epochs, limit);
        let message = text(&output);
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        assert!(
            message.contains(name) && message.contains("too large"),
            "{file}: the message must name the file and the problem: {message}"
        );
        assert!(!message.contains("panicked"), "{file}: {message}");
        if fails {
            assert_eq!(output.status.code(), Some(1), "{file}: {message}");
            assert_eq!(run_files(&run), before, "{file}: the run folder changed");
        } else {
            assert!(output.status.success(), "{file}: {message}");
            assert!(message.contains("warning"), "{file}: {message}");
            assert_eq!(
                run_files(&run).get(file),
                before.get(file),
                "{file}: the previous file must stay"
            );
            assert!(
                !run_files(&run).keys().any(|k| k.ends_with(".tmp")),
                "{file}: a temporary file was left"
            );
        }
        let again = mnist_gan(&[
            "train",
            "--quiet",
            "--resume",
            "run",
            "--epochs",
            "2",
            "--out",
            dir.path().to_str().unwrap(),
        ]);
        assert!(again.status.success(), "{file}: {}", text(&again));
        for part in [
            "generator.safetensors",
            "images/epoch_0002.png",
            "training.gif",
        ] {
            assert!(run.join(part).exists(), "{file}: no {part} after resuming");
        }
    }
}
