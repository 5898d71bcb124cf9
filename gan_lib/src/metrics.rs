//! Sample-quality metrics in the classifier's feature space: the Fréchet distance (FID's
//! formula with our MNIST classifier instead of Inception), an Inception-Score analogue,
//! and k-NN precision and recall (Kynkäänniemi et al., 2019).

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Mean and covariance of feature vectors (rows).
fn moments(features: &[Vec<f32>]) -> (DVector<f64>, DMatrix<f64>) {
    let (n, d) = (features.len(), features.first().map_or(0, |f| f.len()));
    let data = DMatrix::from_fn(n, d, |i, j| features[i][j] as f64);
    let mean = DVector::from_fn(d, |j, _| data.column(j).mean());
    let mut centred = data;
    for j in 0..d {
        let m = mean[j];
        centred.column_mut(j).add_scalar_mut(-m);
    }
    let covariance = centred.transpose() * &centred / (n.max(2) - 1) as f64;
    (mean, covariance)
}

/// Square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are clamped to zero). nalgebra's symmetric eigen-solver returned NaN for the
/// nearly singular covariances of a collapsed generator (most classifier features dead);
/// the SVD, slower but robust, takes over then.
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let symmetric = (m + m.transpose()) * 0.5;
    let eigen = SymmetricEigen::new(symmetric.clone());
    if eigen
        .eigenvalues
        .iter()
        .chain(eigen.eigenvectors.iter())
        .all(|v| v.is_finite())
    {
        let roots = eigen.eigenvalues.map(|v| v.max(0.0).sqrt());
        return &eigen.eigenvectors
            * DMatrix::from_diagonal(&roots)
            * eigen.eigenvectors.transpose();
    }
    // For a symmetric PSD matrix M = U S Uᵀ, so √M = U √S Uᵀ.
    let svd = symmetric.svd(true, false);
    let u = svd.u.expect("U was asked for");
    let roots = svd.singular_values.map(|v| v.max(0.0).sqrt());
    &u * DMatrix::from_diagonal(&roots) * u.transpose()
}

/// Fréchet distance between Gaussians fitted to two feature sets:
/// ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½). Zero for identical sets.
pub fn frechet_distance(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let (mean_a, cov_a) = moments(a);
    let (mean_b, cov_b) = moments(b);
    // Non-finite features (a generator that diverged) have no distance; the matrix
    // decompositions below would not converge on them.
    if !cov_a.iter().chain(cov_b.iter()).all(|v| v.is_finite()) {
        return f64::NAN;
    }
    // tr((Σa Σb)^½) = tr((√Σa Σb √Σa)^½), whose argument is symmetric.
    let root_a = sqrt_psd(&cov_a);
    let cross = sqrt_psd(&(&root_a * &cov_b * &root_a)).trace();
    let distance = (mean_a - mean_b).norm_squared() + cov_a.trace() + cov_b.trace() - 2.0 * cross;
    // Rounding can take an exact zero slightly below it; a NaN stays a NaN (never a perfect 0).
    if distance.is_nan() {
        distance
    } else {
        distance.max(0.0)
    }
}

/// Inception-Score analogue: exp(E_x KL(p(y|x) ‖ p(y))) computed on `splits` equal parts,
/// as mean and standard deviation. 1 when every image gets the same distribution; 10 at
/// most (confident predictions spread evenly over the ten digits).
pub fn inception_score(probabilities: &[[f32; 10]], splits: usize) -> (f64, f64) {
    let splits = splits.clamp(1, probabilities.len().max(1));
    let part = probabilities.len() / splits;
    let scores: Vec<f64> = (0..splits)
        .map(|s| {
            let chunk = &probabilities[s * part..(s + 1) * part];
            let mut marginal = [0f64; 10];
            for p in chunk {
                for (m, &v) in marginal.iter_mut().zip(p) {
                    *m += v as f64 / chunk.len() as f64;
                }
            }
            let kl: f64 = chunk
                .iter()
                .map(|p| {
                    p.iter()
                        .zip(&marginal)
                        .map(|(&q, &m)| {
                            if q > 0.0 {
                                q as f64 * ((q as f64).ln() - m.max(1e-12).ln())
                            } else {
                                0.0
                            }
                        })
                        .sum::<f64>()
                })
                .sum::<f64>()
                / chunk.len().max(1) as f64;
            kl.exp()
        })
        .collect();
    mean_std(&scores)
}

/// Mean and (population) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    (
        mean,
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Squared distance from each point to its k-th nearest neighbour in the same set.
fn knn_radii(points: &[Vec<f32>], k: usize) -> Vec<f32> {
    points
        .iter()
        .map(|p| {
            let mut distances: Vec<f32> = points.iter().map(|q| squared_distance(p, q)).collect();
            distances.sort_by(f32::total_cmp);
            distances[k.min(distances.len() - 1)] // index 0 is the point itself
        })
        .collect()
}

/// Fraction of `queries` that fall inside some reference point's k-NN ball.
fn coverage(references: &[Vec<f32>], radii: &[f32], queries: &[Vec<f32>]) -> f64 {
    let inside = queries
        .iter()
        .filter(|q| {
            references
                .iter()
                .zip(radii)
                .any(|(r, &radius)| squared_distance(q, r) <= radius)
        })
        .count();
    inside as f64 / queries.len().max(1) as f64
}

/// k-NN precision (share of generated samples inside the real manifold) and recall (share
/// of real samples inside the generated manifold).
pub fn precision_recall(real: &[Vec<f32>], generated: &[Vec<f32>], k: usize) -> (f64, f64) {
    if real.is_empty() || generated.is_empty() {
        return (0.0, 0.0);
    }
    let precision = coverage(real, &knn_radii(real, k), generated);
    let recall = coverage(generated, &knn_radii(generated, k), real);
    (precision, recall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    fn gaussian(n: usize, d: usize, shift: f32, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = crate::rng::seeded(seed);
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| rng.random_range(-1.0..1.0f32) + shift)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift() {
        let a = gaussian(500, 8, 0.0, 1);
        assert!(frechet_distance(&a, &a) < 1e-6);
        let near = frechet_distance(&a, &gaussian(500, 8, 0.0, 2));
        let far = frechet_distance(&a, &gaussian(500, 8, 1.0, 2));
        assert!(near < 0.2, "{near}");
        // A shift of 1 in each of 8 dimensions adds about 8.
        assert!((far - 8.0).abs() < 1.0, "{far}");
    }

    /// A collapsed generator (every sample the same, or nearly) is far from real digits, not
    /// at distance 0: a NaN from the matrix square roots must not be clamped to zero.
    #[test]
    fn frechet_distance_of_a_collapsed_set_is_large_and_finite() {
        let real = gaussian(500, 128, 0.0, 1);
        let mut rng = crate::rng::seeded(3);
        for spread in [0.0f32, 1e-6, 1e-3] {
            let collapsed: Vec<Vec<f32>> = (0..500)
                .map(|_| {
                    (0..128)
                        .map(|_| 5.0 + spread * rng.random_range(-1.0..1.0f32))
                        .collect()
                })
                .collect();
            let distance = frechet_distance(&collapsed, &real);
            assert!(
                distance.is_finite() && distance > 128.0 * 20.0,
                "spread {spread}: {distance}"
            );
        }
    }

    /// A distance that cannot be computed is reported as NaN, never as a perfect 0.
    #[test]
    fn frechet_distance_never_turns_a_nan_into_zero() {
        let real = gaussian(50, 4, 0.0, 1);
        let mut broken = gaussian(50, 4, 0.0, 2);
        broken[3][1] = f32::NAN;
        assert!(frechet_distance(&broken, &real).is_nan());
    }

    #[test]
    fn inception_score_bounds() {
        let one_class = vec![[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]; 100];
        assert!((inception_score(&one_class, 10).0 - 1.0).abs() < 1e-9);
        let spread: Vec<[f32; 10]> = (0..100)
            .map(|i| std::array::from_fn(|d| if d == i % 10 { 1.0 } else { 0.0 }))
            .collect();
        let (mean, std) = inception_score(&spread, 10);
        assert!((mean - 10.0).abs() < 1e-6 && std < 1e-9, "{mean} ± {std}");
        let unsure = vec![[0.1; 10]; 100];
        assert!((inception_score(&unsure, 10).0 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn precision_and_recall_see_missing_modes() {
        let real = gaussian(200, 4, 0.0, 1);
        let same = gaussian(200, 4, 0.0, 2);
        let (p, r) = precision_recall(&real, &same, 3);
        assert!(p > 0.8 && r > 0.8, "{p} {r}");
        let far = gaussian(200, 4, 5.0, 3);
        let (p, r) = precision_recall(&real, &far, 3);
        assert!(p < 0.05 && r < 0.05, "{p} {r}");
    }
}

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

/// How well a conditional generator draws the digit it is asked for, as the classifier sees
/// it: the share of samples classified as their requested digit, overall and per digit, and
/// the table of requested against predicted digits.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LabelAccuracy {
    /// Samples judged.
    pub samples: usize,
    /// Share classified as the requested digit.
    pub accuracy: f64,
    /// The same per requested digit (NaN for a digit never requested).
    pub per_digit: [f64; 10],
    /// `confusion[requested][predicted]`: sample counts.
    pub confusion: [[usize; 10]; 10],
}

impl LabelAccuracy {
    /// Compares `requested` digits with the classifier's `predicted` ones, sample by sample.
    pub fn new(requested: &[u8], predicted: &[usize]) -> LabelAccuracy {
        let mut confusion = [[0usize; 10]; 10];
        for (&r, &p) in requested.iter().zip(predicted) {
            confusion[(r as usize).min(9)][p.min(9)] += 1;
        }
        let samples = requested.len().min(predicted.len());
        let right: usize = (0..10).map(|d| confusion[d][d]).sum();
        let per_digit = std::array::from_fn(|d| {
            let asked: usize = confusion[d].iter().sum();
            confusion[d][d] as f64 / asked as f64
        });
        LabelAccuracy {
            samples,
            accuracy: right as f64 / samples.max(1) as f64,
            per_digit,
            confusion,
        }
    }

    /// The digit drawn worst, with its accuracy.
    pub fn worst_digit(&self) -> (usize, f64) {
        (0..10)
            .filter(|&d| !self.per_digit[d].is_nan())
            .map(|d| (d, self.per_digit[d]))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, f64::NAN))
    }
}

impl std::fmt::Display for LabelAccuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "label accuracy (classified as the digit asked for): {:.2}% of {}",
            100.0 * self.accuracy,
            self.samples
        )?;
        writeln!(
            f,
            "digit     {}",
            (0..10).map(|d| format!("{d:>7}")).collect::<String>()
        )?;
        write!(
            f,
            "accuracy  {}",
            self.per_digit
                .iter()
                .map(|a| format!("{:>6.1}%", 100.0 * a))
                .collect::<String>()
        )
    }
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
