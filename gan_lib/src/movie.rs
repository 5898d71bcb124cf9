//! A training movie: a run's per-epoch sample grids (`images/epoch_*.png`) as one animated
//! GIF, each frame captioned with its epoch, as the TensorFlow DCGAN tutorial ends.

use std::path::{Path, PathBuf};

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbaImage};
use plotters::prelude::*;

use crate::plot::{Picture, PlotError};

/// Height of the caption band above each frame, in pixels.
const CAPTION: u32 = 28;

/// An animated GIF in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movie {
    /// The GIF file's bytes.
    pub gif: Vec<u8>,
    /// Frames in it.
    pub frames: usize,
}

/// The sample grids of the run in `run_dir`, in epoch order, with their epochs.
pub fn epoch_grids(run_dir: &Path) -> Result<Vec<(usize, PathBuf)>, PlotError> {
    let folder = run_dir.join("images");
    let entries = std::fs::read_dir(&folder).map_err(|e| PlotError::Read {
        path: folder.clone(),
        message: e.to_string(),
    })?;
    let mut grids: Vec<(usize, PathBuf)> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let epoch = name
                .strip_prefix("epoch_")?
                .strip_suffix(".png")?
                .parse()
                .ok()?;
            Some((epoch, path))
        })
        .collect();
    grids.sort();
    Ok(grids)
}

impl Movie {
    /// The movie of the run in `run_dir`: one frame per `images/epoch_*.png`, each shown
    /// `millis` milliseconds (see [`Movie::from_frames`]).
    pub fn from_run(run_dir: impl AsRef<Path>, millis: u32) -> Result<Movie, PlotError> {
        let grids = epoch_grids(run_dir.as_ref())?;
        if grids.is_empty() {
            return Err(PlotError::Read {
                path: run_dir.as_ref().join("images"),
                message: "no epoch_*.png sample grids to make a movie of".into(),
            });
        }
        let frames = grids
            .iter()
            .map(|(epoch, path)| {
                let picture = image::open(path).map_err(|e| PlotError::Read {
                    path: path.clone(),
                    message: format!("not a readable image: {e}"),
                })?;
                Ok((
                    format!("epoch {epoch}"),
                    Picture {
                        image: picture.to_rgb8(),
                    },
                ))
            })
            .collect::<Result<Vec<_>, PlotError>>()?;
        Movie::from_frames(&frames, millis)
    }

    /// A movie of `frames`, each shown `millis` milliseconds under its caption (the last
    /// three times as long), looping forever. Frames may differ in size: each is placed at
    /// the top left of a canvas as large as the largest.
    pub fn from_frames(frames: &[(String, Picture)], millis: u32) -> Result<Movie, PlotError> {
        let width = frames.iter().map(|(_, p)| p.size().0).max().unwrap_or(1);
        let height = frames.iter().map(|(_, p)| p.size().1).max().unwrap_or(1) + CAPTION;
        let mut gif = Vec::new();
        {
            let mut encoder = GifEncoder::new_with_speed(&mut gif, 10);
            encoder
                .set_repeat(Repeat::Infinite)
                .map_err(|e| PlotError::Draw(e.to_string()))?;
            for (i, (caption, picture)) in frames.iter().enumerate() {
                let mut canvas = Picture::blank(width, height);
                image::imageops::replace(&mut canvas.image, &picture.image, 0, CAPTION as i64);
                canvas.draw(|root| {
                    root.draw(&Text::new(
                        caption.as_str(),
                        (6, 4),
                        ("sans-serif", 18).into_font().color(&BLACK),
                    ))?;
                    Ok(())
                })?;
                let shown = if i + 1 == frames.len() {
                    3 * millis
                } else {
                    millis
                };
                let rgba: RgbaImage = image::DynamicImage::ImageRgb8(canvas.image).to_rgba8();
                let frame = Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(shown, 1));
                encoder
                    .encode_frame(frame)
                    .map_err(|e| PlotError::Draw(e.to_string()))?;
            }
        }
        Ok(Movie {
            gif,
            frames: frames.len(),
        })
    }

    /// Writes the GIF atomically (creating its folder).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        let path = path.as_ref();
        crate::files::write_atomic(path, &self.gif).map_err(|e| PlotError::Write {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Shows the movie inline in an evcxr (Rust Jupyter kernel) notebook.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/gif\n{}\nEVCXR_END_CONTENT",
            crate::plot::base64(&self.gif)
        );
    }
}
