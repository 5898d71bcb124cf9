//! GANs on MNIST with candle: data loading, models, training, a digit classifier, analysis
//! of generated digits and plots.
//!
//! The crate is used by the `mnist-gan` command-line tool and by the notebooks in
//! `notebooks/` (through evcxr's `:dep`).

pub mod data;
pub mod rng;

use std::path::PathBuf;

/// Looks for `relative` in the current directory and its parents; the first that exists wins.
/// This is how the tools and notebooks find `data/` wherever they are started inside the repo.
pub fn find_upwards(relative: &str) -> Option<PathBuf> {
    let start = std::env::current_dir().ok()?;
    start
        .ancestors()
        .map(|dir| dir.join(relative))
        .find(|candidate| candidate.exists())
}
