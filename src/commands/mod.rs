//! One module per subcommand: its flags and what it does.

pub(crate) mod classifier;
pub(crate) mod interpolate;
pub(crate) mod judge;
pub(crate) mod movie;
pub(crate) mod sample;
pub(crate) mod train;

use std::path::PathBuf;

/// The generator file to draw from: `checkpoint` when given, else the shipped conditional
/// generator when a digit is asked for, the shipped unconditional one otherwise.
pub(crate) fn generator_path(checkpoint: &Option<PathBuf>, conditional_wanted: bool) -> PathBuf {
    checkpoint.clone().unwrap_or_else(|| {
        gan_lib::shipped(match conditional_wanted {
            true => "conditional-generator.safetensors",
            false => "generator.safetensors",
        })
    })
}
