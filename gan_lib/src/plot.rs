//! Pictures: grids of digits (like torchvision's `make_grid`) and charts drawn with plotters.
//!
//! Charts use the DejaVu Sans font compiled into the crate, so they render on machines
//! without system fonts. A [`Picture`] saves as PNG and shows itself inline in evcxr
//! notebooks (it implements evcxr's display protocol).

use std::path::Path;
use std::sync::Once;

use candle_core::Tensor;
use plotters::prelude::*;

use crate::data::{IMAGE_PIXELS, IMAGE_SIDE};

/// DejaVu Sans (see `data/fonts/LICENSE-DejaVu.txt`).
pub static FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

/// Registers [`FONT`] as plotters' "sans-serif" (once per process).
pub fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if plotters::style::register_font("sans-serif", style, FONT).is_err() {
                panic!("the bundled DejaVu Sans font is invalid");
            }
        }
    });
}

/// Errors from drawing or saving a picture.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Writing the file failed.
    #[error("{}: cannot write the image: {message}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Reading a picture failed.
    #[error("{}: {message}", path.display())]
    Read {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Drawing failed.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// Reading tensor values failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// An RGB picture in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// The pixels.
    pub image: image::RgbImage,
}

impl Picture {
    /// A blank (white) picture.
    pub fn blank(width: u32, height: u32) -> Picture {
        Picture {
            image: image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255])),
        }
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.image.dimensions()
    }

    /// Encodes as PNG.
    pub fn png_bytes(&self) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.image
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("PNG encoding into memory cannot fail");
        out.into_inner()
    }

    /// Writes a PNG file (creating its folder), atomically: a crash leaves the old file or
    /// the new one, never half of it.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        let path = path.as_ref();
        let write_error = |message: String| PlotError::Write {
            path: path.to_owned(),
            message,
        };
        crate::files::write_atomic(path, &self.png_bytes()).map_err(|e| write_error(e.to_string()))
    }

    /// Shows the picture inline in an evcxr (Rust Jupyter kernel) notebook.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT",
            base64(&self.png_bytes())
        );
    }

    /// Draws with plotters on this picture.
    pub fn draw<F>(&mut self, draw: F) -> Result<(), PlotError>
    where
        F: FnOnce(
            DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
        ) -> Result<(), Box<dyn std::error::Error + '_>>,
    {
        register_font();
        let (w, h) = self.size();
        let backend = BitMapBackend::with_buffer(self.image.as_mut(), (w, h));
        let root = backend.into_drawing_area();
        draw(root.clone()).map_err(|e| PlotError::Draw(e.to_string()))?;
        root.present().map_err(|e| PlotError::Draw(e.to_string()))
    }
}

/// Standard base64 (for evcxr's inline images).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Turns `(n, 1, 28, 28)` images in [-1, 1] into bytes (0 black, 255 white).
pub fn to_bytes(images: &Tensor) -> Result<Vec<u8>, PlotError> {
    Ok(crate::data::to_bytes(images)?)
}

/// The widest and tallest picture [`grid_size`] allows, in pixels (a grid of 16,384 pixels
/// on a side holds about 300,000 digits at scale 1).
pub const MAX_PICTURE_SIDE: u64 = 16_384;

/// Width and height in pixels of the [`grid`] of `count` digits in rows of `nrow`, enlarged
/// `scale` times; `None` when a side would exceed [`MAX_PICTURE_SIDE`].
pub fn grid_size(count: usize, nrow: usize, padding: u32, scale: u32) -> Option<(u32, u32)> {
    let columns = nrow.clamp(1, count.max(1)) as u64;
    let rows = count.div_ceil(columns as usize).max(1) as u64;
    let cell = IMAGE_SIDE as u64 + padding as u64;
    let side = |cells: u64| {
        cells
            .saturating_mul(cell)
            .saturating_add(padding as u64)
            .saturating_mul(scale.max(1) as u64)
    };
    let (w, h) = (side(columns), side(rows));
    (w <= MAX_PICTURE_SIDE && h <= MAX_PICTURE_SIDE).then_some((w as u32, h as u32))
}

/// Lays out 28x28 digits (bytes, image after image) in rows of `nrow`, with `padding`
/// black pixels around each, like torchvision's `make_grid` (a single row is only as wide as
/// its digits). Check [`grid_size`] first for sizes that come from users: this one panics
/// beyond `u32` pixels.
pub fn grid(pixels: &[u8], nrow: usize, padding: u32) -> Picture {
    let count = pixels.len() / IMAGE_PIXELS;
    let columns = nrow.clamp(1, count.max(1));
    let rows = count.div_ceil(columns).max(1) as u32;
    let cell = IMAGE_SIDE as u32 + padding;
    let mut picture = Picture {
        image: image::RgbImage::new(columns as u32 * cell + padding, rows * cell + padding),
    };
    for (i, digit) in pixels.chunks_exact(IMAGE_PIXELS).enumerate() {
        let (x0, y0) = (
            (i % columns) as u32 * cell + padding,
            (i / columns) as u32 * cell + padding,
        );
        for (p, &v) in digit.iter().enumerate() {
            picture.image.put_pixel(
                x0 + (p % IMAGE_SIDE) as u32,
                y0 + (p / IMAGE_SIDE) as u32,
                image::Rgb([v, v, v]),
            );
        }
    }
    picture
}

/// [`grid`] of a `(n, 1, 28, 28)` tensor in [-1, 1], scaled up `scale` times.
pub fn tensor_grid(images: &Tensor, nrow: usize, scale: u32) -> Result<Picture, PlotError> {
    let picture = grid(&to_bytes(images)?, nrow, 2);
    Ok(upscale(&picture, scale))
}

/// Nearest-neighbour enlargement.
pub fn upscale(picture: &Picture, scale: u32) -> Picture {
    if scale <= 1 {
        return picture.clone();
    }
    let (w, h) = picture.size();
    Picture {
        image: image::imageops::resize(
            &picture.image,
            w * scale,
            h * scale,
            image::imageops::FilterType::Nearest,
        ),
    }
}

/// Pictures side by side, top-aligned on white with a 16-pixel gap: for example a sample grid
/// beside the loss curves, shown as one output (an evcxr cell shows one picture per cell).
pub fn beside(pictures: &[&Picture]) -> Picture {
    const GAP: u32 = 16;
    let width =
        pictures.iter().map(|p| p.size().0).sum::<u32>() + GAP * (pictures.len().max(1) as u32 - 1);
    let height = pictures.iter().map(|p| p.size().1).max().unwrap_or(0);
    let mut row = Picture::blank(width.max(1), height.max(1));
    let mut x = 0;
    for picture in pictures {
        image::imageops::replace(&mut row.image, &picture.image, x as i64, 0);
        x += picture.size().0 + GAP;
    }
    row
}

/// One point of a loss curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPoint {
    /// Global step.
    pub step: u64,
    /// Discriminator loss.
    pub d_loss: f32,
    /// Generator loss.
    pub g_loss: f32,
}

/// Generator and discriminator losses against steps, smoothed over a window of ~1% of the
/// run so the trend shows through the noise, with the raw values faint behind.
pub fn loss_curves(points: &[LossPoint], title: &str) -> Result<Picture, PlotError> {
    let mut picture = Picture::blank(900, 500);
    let last_step = points.last().map_or(1, |p| p.step.max(1));
    // Hinge and Wasserstein losses go below zero, so the range holds the lowest value too.
    let finite = || {
        points
            .iter()
            .flat_map(|p| [p.d_loss, p.g_loss])
            .filter(|v| v.is_finite())
    };
    let max_loss = finite().fold(1.0f32, f32::max) * 1.05;
    let min_loss = finite().fold(0.0f32, f32::min) * 1.05;
    let window = (points.len() / 100).max(1);
    let smooth = |values: Vec<(u64, f32)>| -> Vec<(u64, f32)> {
        values
            .windows(window)
            .map(|w| {
                (
                    w[w.len() - 1].0,
                    w.iter().map(|p| p.1).sum::<f32>() / w.len() as f32,
                )
            })
            .collect()
    };
    picture.draw(|root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0u64..last_step, min_loss..max_loss)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let series = [
            (
                "D loss",
                RGBColor(31, 119, 180),
                points
                    .iter()
                    .map(|p| (p.step, p.d_loss))
                    .collect::<Vec<_>>(),
            ),
            (
                "G loss",
                RGBColor(255, 127, 14),
                points.iter().map(|p| (p.step, p.g_loss)).collect(),
            ),
        ];
        for (name, color, raw) in series {
            chart.draw_series(LineSeries::new(raw.clone(), color.mix(0.2)))?;
            chart
                .draw_series(LineSeries::new(smooth(raw), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })?;
    Ok(picture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beside_places_pictures_left_to_right_top_aligned() {
        let mut small = Picture::blank(3, 2);
        small.image.put_pixel(0, 0, image::Rgb([1, 2, 3]));
        let mut tall = Picture::blank(4, 5);
        tall.image.put_pixel(3, 4, image::Rgb([7, 8, 9]));
        let row = beside(&[&small, &tall]);
        assert_eq!(row.size(), (3 + 16 + 4, 5));
        assert_eq!(row.image.get_pixel(0, 0).0, [1, 2, 3]);
        assert_eq!(row.image.get_pixel(3 + 16 + 3, 4).0, [7, 8, 9]);
        assert_eq!(
            row.image.get_pixel(1, 4).0,
            [255, 255, 255],
            "white below the short one"
        );
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn grid_has_torchvision_layout() {
        let pixels = vec![255u8; 10 * IMAGE_PIXELS];
        let picture = grid(&pixels, 4, 2);
        assert_eq!(picture.size(), (4 * 30 + 2, 3 * 30 + 2));
        assert_eq!(picture.image.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(picture.image.get_pixel(2, 2).0, [255, 255, 255]);
        assert_eq!(grid_size(10, 4, 2, 1), Some(picture.size()));
        // Fewer digits than a row: one row only as wide as the digits, as make_grid does.
        assert_eq!(grid(&pixels[..3 * IMAGE_PIXELS], 8, 2).size(), (92, 32));
        assert_eq!(grid_size(3, usize::MAX, 2, 2), Some((184, 64)));
    }

    #[test]
    fn grid_size_refuses_pictures_too_large_to_write() {
        assert_eq!(grid_size(100_000, 8, 2, 2), None);
        assert_eq!(grid_size(usize::MAX, 1, 2, 1), None);
        assert_eq!(grid_size(usize::MAX, usize::MAX, u32::MAX, u32::MAX), None);
        assert!(grid_size(10_000, 100, 2, 2).is_some());
    }

    #[test]
    fn loss_chart_draws_text_and_lines() {
        let points: Vec<LossPoint> = (0..500)
            .map(|i| LossPoint {
                step: i,
                d_loss: 1.0 + (i as f32 * 0.1).sin() * 0.2,
                g_loss: 0.8,
            })
            .collect();
        let picture = loss_curves(&points, "Losses").unwrap();
        assert_eq!(picture.size(), (900, 500));
        let coloured = picture
            .image
            .pixels()
            .filter(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2])
            .count();
        assert!(coloured > 1000, "only {coloured} coloured pixels");
    }

    #[test]
    fn loss_chart_shows_negative_losses() {
        // A Wasserstein critic's losses: all below zero.
        let points: Vec<LossPoint> = (0..500)
            .map(|i| LossPoint {
                step: i,
                d_loss: -1.0,
                g_loss: -3.0,
            })
            .collect();
        let picture = loss_curves(&points, "Losses").unwrap();
        let count = |rgb: [u8; 3]| picture.image.pixels().filter(|p| p.0 == rgb).count();
        // The legend alone has about 40 pixels of each colour; a curve across the chart has hundreds.
        for (name, rgb) in [("D", [31, 119, 180]), ("G", [255, 127, 14])] {
            let pixels = count(rgb);
            assert!(pixels > 400, "the {name} curve has only {pixels} pixels");
        }
    }
}
