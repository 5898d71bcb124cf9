//! GANs on MNIST with candle: data loading, models, training, a digit classifier, analysis
//! of generated digits and plots.
//!
//! The crate is used by the `mnist-gan` command-line tool and by the notebooks in
//! `notebooks/` (through evcxr's `:dep`).

pub mod analysis;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod data;
pub mod metrics;
pub mod models;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod rng;
pub mod train;

use std::path::PathBuf;

pub use candle_core;
pub use candle_nn;

/// Tells glibc's malloc to keep freed memory for reuse instead of handing it back to the
/// kernel. Training allocates and frees tensors of several MiB every step; by default glibc
/// maps each one fresh (above 32 MiB always, below after trimming), so the kernel zeroes
/// every page again: 40% of a DCGAN step's time went there. Peak memory is unchanged,
/// but the process keeps it until it exits. Called by the trainer, the classifier's training
/// and the command-line tool; does nothing off glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes malloc's parameters; it is thread-safe.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        });
    }
}

/// A file shipped in `data/weights/` (the default preset's generator and discriminator, the
/// classifier), found from the current directory upwards.
pub fn shipped(file: &str) -> PathBuf {
    let relative = format!("data/weights/{file}");
    find_upwards(&relative).unwrap_or_else(|| PathBuf::from(relative))
}

/// Looks for `relative` in the current directory and its parents; the first that exists wins.
/// This is how the tools and notebooks find `data/` wherever they are started inside the repo.
pub fn find_upwards(relative: &str) -> Option<PathBuf> {
    let start = std::env::current_dir().ok()?;
    start
        .ancestors()
        .map(|dir| dir.join(relative))
        .find(|candidate| candidate.exists())
}

/// The compute device for a name: `cpu`, `cuda`, `metal`, or `auto` (a GPU when the crate
/// was built with one and it is present, else the CPU).
pub fn device(name: &str) -> candle_core::Result<candle_core::Device> {
    use candle_core::Device;
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0),
        "metal" => Device::new_metal(0),
        "auto" => {
            if candle_core::utils::cuda_is_available() {
                Device::new_cuda(0)
            } else if candle_core::utils::metal_is_available() {
                Device::new_metal(0)
            } else {
                Ok(Device::Cpu)
            }
        }
        other => candle_core::bail!("unknown device {other:?}: use auto, cpu, cuda or metal"),
    }
}
