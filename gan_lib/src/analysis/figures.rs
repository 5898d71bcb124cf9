//! The analysis figures: the 5x5 batch, per-image probability histograms, the class
//! distribution, and requested against predicted digits.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::stats::{ClassDistribution, Prediction};
use crate::data::{IMAGE_PIXELS, IMAGE_SIDE};
use crate::metrics::LabelAccuracy;
use crate::plot::{self, Picture, PlotError};

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREY: RGBColor = RGBColor(170, 170, 170);

/// Copies a 28x28 digit into a picture at (x, y), `scale` times enlarged.
fn blit(picture: &mut Picture, digit: &[u8], x: u32, y: u32, scale: u32) {
    for (i, &v) in digit.iter().enumerate() {
        let (dx, dy) = (
            (i % IMAGE_SIDE) as u32 * scale,
            (i / IMAGE_SIDE) as u32 * scale,
        );
        for sy in 0..scale {
            for sx in 0..scale {
                picture
                    .image
                    .put_pixel(x + dx + sx, y + dy + sy, image::Rgb([v, v, v]));
            }
        }
    }
}

/// Digits (up to 25, five per row), each titled with its predicted digit and confidence;
/// those below `threshold` are titled and framed in red.
pub fn batch_figure(
    pixels: &[u8],
    predictions: &[Prediction],
    threshold: f32,
) -> Result<Picture, PlotError> {
    let (scale, title_height, margin) = (4u32, 26u32, 10u32);
    let cell = IMAGE_SIDE as u32 * scale;
    let count = predictions.len().min(25).min(pixels.len() / IMAGE_PIXELS);
    let rows = count.div_ceil(5).max(1) as u32;
    let mut picture = Picture::blank(
        5 * (cell + margin) + margin,
        rows * (cell + title_height + margin) + margin + 30,
    );
    let origin = |i: usize| {
        (
            margin + (i % 5) as u32 * (cell + margin),
            30 + margin + (i / 5) as u32 * (cell + title_height + margin) + title_height,
        )
    };
    for i in 0..count {
        let (x, y) = origin(i);
        blit(
            &mut picture,
            &pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS],
            x,
            y,
            scale,
        );
    }
    picture.draw(|root| {
        let low = predictions[..count]
            .iter()
            .filter(|p| p.confidence < threshold)
            .count();
        root.draw(&Text::new(
            format!(
                "Predicted digit and confidence ({low} below {:.0}%, in red)",
                100.0 * threshold
            ),
            (margin as i32, 8),
            ("sans-serif", 18).into_font(),
        ))?;
        for (i, p) in predictions[..count].iter().enumerate() {
            let (x, y) = origin(i);
            let colour = if p.confidence < threshold { RED } else { BLACK };
            root.draw(&Text::new(
                format!("{} ({:.0}%)", p.digit, 100.0 * p.confidence),
                (x as i32 + 4, y as i32 - title_height as i32 + 3),
                ("sans-serif", 18).into_font().color(&colour),
            ))?;
            if p.confidence < threshold {
                root.draw(&Rectangle::new(
                    [
                        (x as i32 - 2, y as i32 - 2),
                        ((x + cell) as i32 + 1, (y + cell) as i32 + 1),
                    ],
                    RED.stroke_width(3),
                ))?;
            }
        }
        Ok(())
    })?;
    Ok(picture)
}

/// The bar of `digit` on a chart with one segment per digit, from 0 up to `value`.
fn digit_bar<Y: Default>(
    digit: usize,
    value: Y,
    colour: RGBColor,
    margin: u32,
) -> Rectangle<(SegmentValue<u32>, Y)> {
    let digit = digit as u32;
    let mut bar = Rectangle::new(
        [
            (SegmentValue::Exact(digit), Y::default()),
            (SegmentValue::Exact(digit + 1), value),
        ],
        colour.filled(),
    );
    bar.set_margin(0, 0, margin, margin);
    bar
}

/// Draws a bar chart of ten probabilities, the predicted digit in orange.
fn draw_probability_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    prediction: &Prediction,
    caption: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d((0u32..9u32).into_segmented(), 0f32..1f32)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("digit")
        .y_desc("probability")
        .x_labels(10)
        .draw()?;
    chart.draw_series(
        prediction
            .probabilities
            .iter()
            .enumerate()
            .map(|(d, &p)| digit_bar(d, p, if d == prediction.digit { ORANGE } else { BLUE }, 4)),
    )?;
    Ok(())
}

/// One digit beside the bar chart of its ten class probabilities.
pub fn probability_figure(digit: &[u8], prediction: &Prediction) -> Result<Picture, PlotError> {
    let scale = 8;
    let side = IMAGE_SIDE as u32 * scale;
    let mut picture = Picture::blank(side + 40 + 520, side + 40);
    blit(&mut picture, digit, 20, 20, scale);
    picture.draw(|root| {
        let (_, right) = root.split_horizontally(side + 40);
        let caption = format!(
            "predicted {} with {:.1}% confidence",
            prediction.digit,
            100.0 * prediction.confidence
        );
        draw_probability_bars(&right, prediction, &caption).map_err(|e| e.to_string().into())
    })?;
    Ok(picture)
}

/// The probability chart alone, as SVG text.
pub fn probability_svg(prediction: &Prediction) -> Result<String, PlotError> {
    plot::register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| PlotError::Draw(e.to_string()))?;
        draw_probability_bars(
            &root,
            prediction,
            &format!("predicted {}", prediction.digit),
        )
        .map_err(|e| PlotError::Draw(e.to_string()))?;
        root.present().map_err(|e| PlotError::Draw(e.to_string()))?;
    }
    Ok(svg)
}

/// Share of samples per predicted digit, with the 10% a balanced generator would give.
pub fn distribution_figure(distribution: &ClassDistribution) -> Result<Picture, PlotError> {
    let mut picture = Picture::blank(800, 450);
    let top = distribution
        .shares
        .iter()
        .fold(0.15f64, |m, &s| m.max(s * 1.1));
    picture.draw(|root| {
        let caption = format!(
            "Predicted digits of {} samples (KL from uniform {:.3})",
            distribution.samples, distribution.kl_from_uniform
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d((0u32..9u32).into_segmented(), 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("predicted digit")
            .y_desc("share")
            .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
            .draw()?;
        chart.draw_series(distribution.shares.iter().enumerate().map(|(d, &s)| {
            digit_bar(d, s, if (0.05..=0.2).contains(&s) { BLUE } else { RED }, 6)
        }))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(SegmentValue::Exact(0), 0.1), (SegmentValue::Last, 0.1)],
            GREY.stroke_width(2),
        )))?;
        Ok(())
    })?;
    Ok(picture)
}

/// The requested digit (rows) against the digit the classifier sees (columns), each cell
/// the share of its row, darker for more, with the per-digit accuracy at the right.
pub fn confusion_figure(labels: &LabelAccuracy) -> Result<Picture, PlotError> {
    let (cell, left, top) = (48i32, 70i32, 70i32);
    let mut picture = Picture::blank(
        (left + 10 * cell + 110) as u32,
        (top + 10 * cell + 20) as u32,
    );
    picture.draw(|root| {
        let font = ("sans-serif", 16).into_font();
        let caption = format!(
            "Requested vs predicted digit: {:.1}% right of {}",
            100.0 * labels.accuracy,
            labels.samples
        );
        root.draw(&Text::new(caption, (10, 8), ("sans-serif", 20).into_font()))?;
        root.draw(&Text::new("predicted →", (left, top - 44), font.clone()))?;
        root.draw(&Text::new("requested ↓", (4, top - 22), font.clone()))?;
        root.draw(&Text::new(
            "accuracy",
            (left + 10 * cell + 14, top - 22),
            font.clone(),
        ))?;
        for d in 0..10 {
            let at = d * cell;
            root.draw(&Text::new(
                d.to_string(),
                (left + at + cell / 2 - 4, top - 22),
                font.clone(),
            ))?;
            root.draw(&Text::new(
                d.to_string(),
                (left - 22, top + at + cell / 2 - 8),
                font.clone(),
            ))?;
        }
        for (r, row) in labels.confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (c, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = (255.0 * (1.0 - share.sqrt())) as u8;
                let color = if r == c {
                    RGBColor(shade, shade, 255)
                } else {
                    RGBColor(255, shade, shade)
                };
                let (x, y) = (left + c as i32 * cell, top + r as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    color.filled(),
                ))?;
                if count > 0 {
                    let text = format!("{:.0}", 100.0 * share);
                    let ink = if share > 0.5 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        text,
                        (x + 8, y + cell / 2 - 8),
                        font.clone().color(&ink),
                    ))?;
                }
            }
            let accuracy = format!("{:.1}%", 100.0 * labels.per_digit[r]);
            root.draw(&Text::new(
                accuracy,
                (left + 10 * cell + 14, top + r as i32 * cell + cell / 2 - 8),
                font.clone(),
            ))?;
        }
        Ok(())
    })?;
    Ok(picture)
}
