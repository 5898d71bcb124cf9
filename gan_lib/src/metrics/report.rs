//! [`QualityReport`]: every metric of generated digits beside the same metric for real ones.

use super::{frechet_distance, inception_score, precision_recall, LabelAccuracy};

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

/// The share of `probabilities` whose most likely class is each digit.
fn digit_shares(probabilities: &[[f32; 10]]) -> [f64; 10] {
    let mut shares = [0.0; 10];
    for p in probabilities {
        let digit = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
        shares[digit] += 1.0 / probabilities.len() as f64;
    }
    shares
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
        classifier: &crate::classifier::Classifier,
        generated: &[u8],
        mnist: &crate::data::Mnist,
    ) -> candle_core::Result<QualityReport> {
        QualityReport::compute_labelled(classifier, generated, None, mnist)
    }

    /// [`QualityReport::compute`], with the [`LabelAccuracy`] of a conditional generator's
    /// digits when the digits each was asked for are given.
    pub fn compute_labelled(
        classifier: &crate::classifier::Classifier,
        generated: &[u8],
        requested: Option<&[u8]>,
        mnist: &crate::data::Mnist,
    ) -> candle_core::Result<QualityReport> {
        let n = generated.len() / crate::data::IMAGE_PIXELS;
        let train = mnist.train.clone().limit(n.max(2));
        let (gen_p, gen_f) = classifier.run_bytes(generated)?;
        let (test_p, test_f) = classifier.run_bytes(&mnist.test.pixels)?;
        let (_, train_f) = classifier.run_bytes(&train.pixels)?;
        let k = 2000;
        let few = |f: &[Vec<f32>]| f[..f.len().min(k)].to_vec();
        Ok(QualityReport {
            samples: n,
            digit_shares: digit_shares(&gen_p),
            digit_shares_real: digit_shares(&test_p),
            frechet_distance: frechet_distance(&gen_f, &test_f),
            frechet_distance_real: frechet_distance(&train_f, &test_f),
            inception_score: inception_score(&gen_p, 10),
            inception_score_real: inception_score(&test_p, 10),
            precision_recall: precision_recall(&few(&test_f), &few(&gen_f), 3),
            precision_recall_real: precision_recall(&few(&test_f), &few(&train_f), 3),
            label_accuracy: requested.map(|requested| {
                let predicted: Vec<usize> =
                    gen_p.iter().map(|p| crate::classifier::argmax(p)).collect();
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
