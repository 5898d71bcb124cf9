//! [`QualityReport`]: every metric of generated digits beside the same metric for real ones.

use super::frechet::{frechet_distance_of, moments};
use super::real::digit_shares;
use super::{inception_score, LabelAccuracy, RealStats};
use crate::classifier::{argmax, Classifier};
use crate::data::{Mnist, IMAGE_PIXELS};

/// A metric for generated digits beside the same metric for real MNIST digits.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QualityReport {
    /// Generated samples judged.
    pub samples: usize,
    /// Fréchet distance of generated to test-set features.
    pub frechet_distance: f64,
    /// Reference: Fréchet distance of training-set to test-set features (same count).
    pub frechet_distance_real: f64,
    /// Inception-Score analogue of the generated digits (mean, std over 10 splits).
    pub inception_score: (f64, f64),
    /// Reference: the same score for the test set.
    pub inception_score_real: (f64, f64),
    /// k-NN precision and recall (k = 3, 2,000 samples each) against the test set.
    pub precision_recall: (f64, f64),
    /// Reference: training set against test set.
    pub precision_recall_real: (f64, f64),
    /// The share of generated digits the classifier calls 0, 1, ..., 9 (1/10 each ideally).
    pub digit_shares: [f64; 10],
    /// Reference: the same shares for the test set.
    pub digit_shares_real: [f64; 10],
    /// For a conditional generator: how often the classifier sees the digit asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_accuracy: Option<LabelAccuracy>,
}

/// The smallest and the largest of ten shares.
fn extremes(shares: &[f64; 10]) -> (f64, f64) {
    let smallest = shares.iter().copied().fold(f64::INFINITY, f64::min);
    (smallest, shares.iter().copied().fold(0.0, f64::max))
}

impl QualityReport {
    /// Judges `generated` digits (bytes) against MNIST's test set, with the training set
    /// (as many images) as the real-data reference.
    pub fn compute(
        classifier: &Classifier,
        generated: &[u8],
        mnist: &Mnist,
    ) -> candle_core::Result<QualityReport> {
        QualityReport::compute_labelled(classifier, generated, None, mnist)
    }

    /// [`QualityReport::compute`], with the [`LabelAccuracy`] of a conditional generator's
    /// digits when the digits each was asked for are given.
    pub fn compute_labelled(
        classifier: &Classifier,
        generated: &[u8],
        requested: Option<&[u8]>,
        mnist: &Mnist,
    ) -> candle_core::Result<QualityReport> {
        let real = RealStats::compute(classifier, mnist, generated.len() / IMAGE_PIXELS)?;
        QualityReport::against(classifier, generated, requested, &real)
    }

    /// Judges `generated` digits against real ones whose statistics are already computed
    /// (see [`RealStats::cached`]): only the generated digits go through the classifier.
    /// The same report as [`QualityReport::compute_labelled`] when `real` was computed for
    /// as many digits; `real.samples` says for how many it was.
    pub fn against(
        classifier: &Classifier,
        generated: &[u8],
        requested: Option<&[u8]>,
        real: &RealStats,
    ) -> candle_core::Result<QualityReport> {
        let (gen_p, gen_f) = classifier.run_bytes(generated)?;
        Ok(QualityReport {
            samples: gen_p.len(),
            digit_shares: digit_shares(&gen_p),
            digit_shares_real: real.digit_shares,
            frechet_distance: frechet_distance_of(&moments(&gen_f), &real.test_moments),
            frechet_distance_real: real.frechet_distance,
            inception_score: inception_score(&gen_p, 10),
            inception_score_real: real.inception_score,
            precision_recall: real.precision_recall_of(&gen_f),
            precision_recall_real: real.precision_recall,
            label_accuracy: requested.map(|requested| {
                let predicted: Vec<usize> = gen_p.iter().map(|p| argmax(p)).collect();
                LabelAccuracy::new(requested, &predicted)
            }),
        })
    }
}

impl std::fmt::Display for QualityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<34}{:>16}{:>16}", "metric", "generated", "real MNIST")?;
        writeln!(
            f,
            "{:<34}{:>16.3}{:>16.3}",
            "Fréchet distance to test set (↓)", self.frechet_distance, self.frechet_distance_real
        )?;
        let score = |(m, s): (f64, f64)| format!("{m:.3} ± {s:.3}");
        writeln!(
            f,
            "{:<34}{:>16}{:>16}",
            "classifier score (IS, ↑, max 10)",
            score(self.inception_score),
            score(self.inception_score_real)
        )?;
        writeln!(
            f,
            "{:<34}{:>16.3}{:>16.3}",
            "precision (k=3, ↑)", self.precision_recall.0, self.precision_recall_real.0
        )?;
        writeln!(
            f,
            "{:<34}{:>16.3}{:>16.3}",
            "recall (k=3, ↑)", self.precision_recall.1, self.precision_recall_real.1
        )?;
        let shares = |shares: &[f64; 10]| {
            let (smallest, largest) = extremes(shares);
            format!("{:.1}% / {:.1}%", 100.0 * smallest, 100.0 * largest)
        };
        write!(
            f,
            "{:<34}{:>16}{:>16}",
            "smallest / largest digit share",
            shares(&self.digit_shares),
            shares(&self.digit_shares_real)
        )?;
        if let Some(labels) = &self.label_accuracy {
            write!(f, "\n{labels}")?;
        }
        Ok(())
    }
}
