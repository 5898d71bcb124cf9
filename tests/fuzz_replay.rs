//! Every committed fuzz input, replayed through its fuzz target's checks in `cargo test`: the
//! seeds in `fuzz/seeds/TARGET/` (and a `fuzz/corpus/TARGET/` where one is committed). No
//! libFuzzer needed: the checks are the very functions the fuzz targets call
//! (`fuzz/checks.rs`), so an input that once broke a reader fails CI once it is committed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[allow(dead_code)] // every check is used below; the module is shared with the fuzz targets
#[path = "../fuzz/checks.rs"]
mod checks;

/// A fuzz target's name (its folder in `fuzz/seeds/`) and its check.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 5] = [
    ("checkpoint", checks::checkpoint),
    ("config", checks::config),
    ("grid_png", checks::grid_png),
    ("idx", checks::idx),
    ("npy", checks::npy),
];

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["seeds", "corpus"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flatten()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_fuzz_input_passes_its_targets_checks() {
    let mut failed = Vec::new();
    for (target, check) in TARGETS {
        let files = inputs(target);
        assert!(
            !files.is_empty(),
            "no committed inputs for the fuzz target {target}"
        );
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "fuzz checks failed on {failed:?}");
}

#[test]
fn the_config_seeds_cover_every_preset() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/config");
    for (name, text) in gan_lib::config::PRESETS {
        let seed = seeds.join(format!("{name}.toml"));
        let committed = std::fs::read_to_string(&seed)
            .unwrap_or_else(|e| panic!("{}: {e}: run fuzz/make-seeds.sh", seed.display()));
        assert_eq!(
            committed,
            text,
            "{} is not today's preset: run fuzz/make-seeds.sh",
            seed.display()
        );
    }
}

/// The checks are not vacuous: a generator file whose weights hold a NaN is refused by the
/// loader (else the checkpoint check would find the NaN in its drawing), and a well-formed
/// generator passes.
#[test]
fn the_checkpoint_check_sees_a_nan_generator() {
    let seed =
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/checkpoint/generator.safetensors");
    let bytes = std::fs::read(seed).unwrap();
    checks::checkpoint(&bytes);
    let device = candle_core::Device::Cpu;
    let mut file =
        gan_lib::checkpoint::TensorFile::parse(&bytes, seed.to_path_buf(), &device).unwrap();
    let (name, tensor) = file
        .tensors
        .iter()
        .find(|(name, _)| name.contains("weight"))
        .map(|(n, t)| (n.clone(), t.clone()))
        .unwrap();
    let nan = (tensor.ones_like().unwrap() * f64::NAN).unwrap();
    file.tensors.insert(name.clone(), nan);
    let error = gan_lib::models::Generator::from_file(&file, &device)
        .err()
        .unwrap_or_else(|| panic!("a generator with NaN in {name} loaded"));
    assert!(error.to_string().contains("NaN"), "{error}");
}
