//! The classifier's verdict on digits: a prediction per image, the rows of `predictions.csv`,
//! and the class distribution over many.

use crate::classifier::{argmax, Classifier};

/// The classifier's verdict on one image.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// The most probable digit.
    pub digit: usize,
    /// Its probability.
    pub confidence: f32,
    /// All ten probabilities (they sum to 1).
    pub probabilities: [f32; 10],
}

/// Classifies 28x28 byte images.
pub fn predict(classifier: &Classifier, pixels: &[u8]) -> candle_core::Result<Vec<Prediction>> {
    let (probabilities, _) = classifier.run_bytes(pixels)?;
    Ok(probabilities
        .into_iter()
        .map(|p| Prediction {
            digit: argmax(&p),
            confidence: p[argmax(&p)],
            probabilities: p,
        })
        .collect())
}

/// One image's verdict as a row of `predictions.csv`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PredictionRow {
    /// The image's position among the digits judged (0-based).
    pub index: usize,
    /// The classifier's verdict.
    pub prediction: Prediction,
    /// The digit a conditional generator was asked for.
    pub requested: Option<u8>,
}

/// One row per image: its index, verdict and (for a conditional generator's digits) the
/// digit asked for; what `analyze` writes as `predictions.csv`.
pub fn prediction_rows(predictions: &[Prediction], requested: Option<&[u8]>) -> Vec<PredictionRow> {
    predictions
        .iter()
        .enumerate()
        .map(|(index, &prediction)| PredictionRow {
            index,
            prediction,
            requested: requested.and_then(|r| r.get(index).copied()),
        })
        .collect()
}

/// `rows` as CSV: `index,predicted,confidence,p0,…,p9` and `,requested` when the rows have
/// requested digits; probabilities with 6 decimals.
pub fn predictions_csv(rows: &[PredictionRow]) -> String {
    let labelled = rows.iter().any(|r| r.requested.is_some());
    let mut csv = String::from("index,predicted,confidence");
    for d in 0..10 {
        csv.push_str(&format!(",p{d}"));
    }
    csv.push_str(if labelled { ",requested\n" } else { "\n" });
    for row in rows {
        let p = &row.prediction;
        csv.push_str(&format!("{},{},{:.6}", row.index, p.digit, p.confidence));
        for q in p.probabilities {
            csv.push_str(&format!(",{q:.6}"));
        }
        match (labelled, row.requested) {
            (true, Some(r)) => csv.push_str(&format!(",{r}\n")),
            (true, None) => csv.push_str(",\n"),
            (false, _) => csv.push('\n'),
        }
    }
    csv
}

/// The class distribution of many samples, and what it says about mode collapse.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassDistribution {
    /// Samples judged.
    pub samples: usize,
    /// Samples per predicted digit.
    pub counts: [usize; 10],
    /// Share per predicted digit.
    pub shares: [f64; 10],
    /// KL divergence of the shares from uniform (0: perfectly balanced; ln 10 = 2.30: one digit).
    pub kl_from_uniform: f64,
    /// Digits predicted for at least 1% of the samples.
    pub digits_covered: usize,
    /// Mean confidence of the predictions.
    pub mean_confidence: f64,
    /// The confidence threshold.
    pub threshold: f32,
    /// Share of predictions below the threshold.
    pub low_confidence_share: f64,
    /// Warnings about missing or over-represented digits.
    pub warnings: Vec<String>,
}

impl ClassDistribution {
    /// Summarises predictions; a digit under 5% or over 20% of the samples raises a warning.
    pub fn new(predictions: &[Prediction], threshold: f32) -> ClassDistribution {
        let n = predictions.len().max(1) as f64;
        let mut counts = [0usize; 10];
        for p in predictions {
            counts[p.digit] += 1;
        }
        let shares = counts.map(|c| c as f64 / n);
        let kl_from_uniform = shares
            .iter()
            .filter(|&&s| s > 0.0)
            .map(|s| s * (s * 10.0).ln())
            .sum();
        let mut warnings = Vec::new();
        for (digit, share) in shares.iter().enumerate() {
            if counts[digit] == 0 {
                warnings.push(format!("digit {digit} never appears: mode collapse"));
            } else if *share < 0.05 {
                warnings.push(format!(
                    "digit {digit} is rare ({:.1}%, expected about 10%): partial mode collapse",
                    100.0 * share
                ));
            } else if *share > 0.2 {
                warnings.push(format!(
                    "digit {digit} is over-represented ({:.1}%, expected about 10%)",
                    100.0 * share
                ));
            }
        }
        ClassDistribution {
            samples: predictions.len(),
            counts,
            shares,
            kl_from_uniform,
            digits_covered: shares.iter().filter(|&&s| s >= 0.01).count(),
            mean_confidence: predictions.iter().map(|p| p.confidence as f64).sum::<f64>() / n,
            threshold,
            low_confidence_share: predictions
                .iter()
                .filter(|p| p.confidence < threshold)
                .count() as f64
                / n,
            warnings,
        }
    }
}

impl std::fmt::Display for ClassDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} samples", self.samples)?;
        writeln!(
            f,
            "digit  {}",
            (0..10).map(|d| format!("{d:>6}")).collect::<String>()
        )?;
        writeln!(
            f,
            "share  {}",
            self.shares
                .iter()
                .map(|s| format!("{:>5.1}%", 100.0 * s))
                .collect::<String>()
        )?;
        writeln!(f, "KL from uniform      {:.4}", self.kl_from_uniform)?;
        writeln!(f, "digits covered       {}/10", self.digits_covered)?;
        writeln!(
            f,
            "mean confidence      {:.1}%",
            100.0 * self.mean_confidence
        )?;
        write!(
            f,
            "below {:.0}% confidence {:.1}%",
            100.0 * self.threshold,
            100.0 * self.low_confidence_share
        )?;
        for warning in &self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}
