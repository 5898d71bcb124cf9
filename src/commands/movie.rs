//! `mnist-gan movie`: the training movie of a run from its per-epoch grids.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub(crate) struct MovieArgs {
    /// The run folder (holding images/epoch_*.png), or a run's name under outputs/.
    pub(crate) run: PathBuf,
    /// Milliseconds per frame (the last is shown three times as long).
    #[arg(long, default_value_t = 400)]
    pub(crate) frame_ms: u32,
}
pub(crate) fn movie(args: MovieArgs) -> Result<()> {
    let dir = if args.run.join("images").is_dir() {
        args.run.clone()
    } else {
        Path::new("outputs").join(&args.run)
    };
    if !(20..=10_000).contains(&args.frame_ms) {
        bail!(
            "--frame-ms {}: give 20 to 10000 milliseconds",
            args.frame_ms
        );
    }
    let movie = gan_lib::movie::Movie::from_run(&dir, args.frame_ms)?;
    let path = dir.join("training.gif");
    movie.save(&path)?;
    println!("{} frames: {}", movie.frames, path.display());
    Ok(())
}
