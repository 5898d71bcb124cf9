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
pub mod ema;
mod files;
pub mod latent;
pub mod metrics;
pub mod models;
pub mod movie;
pub mod nn;
pub mod notebook;
mod ops;
pub mod optim;
pub mod plot;
pub mod rng;
pub mod train;

use std::path::PathBuf;

pub use candle_core;
pub use candle_nn;
/// The plotting library gan_lib draws with, its `evcxr` feature on: a notebook needs no `:dep`
/// of its own for `gan_lib::plotters::prelude::*` or `gan_lib::plotters::evcxr::evcxr_figure`.
pub use plotters;

/// Sets how many CPU threads training uses: `threads`, or when `None` the
/// `RAYON_NUM_THREADS` already set, else every core. They run gan_lib's matrix products (see
/// gan_lib's fused kernels) and candle's. candle's separate pool for element-wise ops is kept to one
/// thread: it spin-waits, and on two cores its spinning worker took the core the matmul
/// threads needed (and without `RAYON_NUM_THREADS` candle re-reads `/proc/cpuinfo` on every
/// matmul). Call it before any tensor work: candle reads these settings once. Nothing in
/// gan_lib calls it: the command-line tool does, and a notebook through [`notebook::setup`].
pub fn set_threads(threads: Option<usize>) -> usize {
    let from_env = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let threads = threads
        .or(from_env)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Edition 2021: set_var is safe; callers do this first thing, before other threads.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // Fails only when the global pool already exists (then it keeps its size).
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    threads
}

/// Runs `work` on a thread of rayon's global pool (sized by [`set_threads`]), so that
/// gan_lib's parallel kernels share their loops with the thread that calls them instead of
/// handing each over from outside the pool and waiting for it (a wake-up per kernel, tens
/// of microseconds each). The command-line tool and the benchmark run everything this way.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let mut result = None;
    rayon::scope(|_| result = Some(work()));
    result.expect("rayon::scope runs its closure before returning")
}

/// `work` over `0..n` in consecutive ranges of `chunk`, results in order. On the CPU the
/// ranges run at once on rayon's threads: generating or scoring 500 digits at a time leaves
/// the element-wise steps between the matrix products on one thread, and the second core idle
/// there (generation of 10,000 digits gained 1.0-1.2x from a second thread, PyTorch's
/// 1.3-1.6x). Each range is computed exactly as it would be alone, so the results do not
/// depend on the number of threads. Elsewhere (a GPU) they run one after another.
pub(crate) fn map_chunks<T: Send>(
    n: usize,
    chunk: usize,
    device: &candle_core::Device,
    work: impl Fn(std::ops::Range<usize>) -> candle_core::Result<T> + Sync,
) -> candle_core::Result<Vec<T>> {
    use rayon::prelude::*;
    let ranges: Vec<_> = (0..n)
        .step_by(chunk.max(1))
        .map(|start| start..n.min(start + chunk))
        .collect();
    match device.is_cpu() {
        true => ranges.into_par_iter().map(&work).collect(),
        false => ranges.into_iter().map(work).collect(),
    }
}

/// Tells glibc's malloc to keep freed memory for reuse instead of handing it back to the
/// kernel. Training allocates and frees tensors of several MiB every step; by default glibc
/// maps each one fresh (above 32 MiB always, below after trimming), so the kernel zeroes
/// every page again: 40% of a DCGAN step's time went there. Peak memory is unchanged,
/// but the process keeps it until it exits. Nothing in gan_lib calls it: the command-line
/// tool does, and a notebook through [`notebook::setup`]. Does nothing off glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes malloc's parameters; it is thread-safe.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            // One arena: rayon's threads would otherwise get their own, whose heaps are
            // mapped and unmapped as they grow and shrink.
            libc::mallopt(libc::M_ARENA_MAX, 1);
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
/// was built with one and one answers, else the CPU).
pub fn device(name: &str) -> candle_core::Result<candle_core::Device> {
    use candle_core::Device;
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0),
        "metal" => Device::new_metal(0),
        // `cuda_is_available` only says the crate was built with CUDA: probe for a device.
        "auto" => Ok(candle_core::utils::cuda_is_available()
            .then(|| Device::new_cuda(0).ok())
            .flatten()
            .or_else(|| {
                candle_core::utils::metal_is_available()
                    .then(|| Device::new_metal(0).ok())
                    .flatten()
            })
            .unwrap_or(Device::Cpu)),
        other => candle_core::bail!("unknown device {other:?}: use auto, cpu, cuda or metal"),
    }
}
