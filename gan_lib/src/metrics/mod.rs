//! Sample-quality metrics in the classifier's feature space: the Fréchet distance (FID's
//! formula with our MNIST classifier instead of Inception), an Inception-Score analogue,
//! k-NN precision and recall (Kynkäänniemi et al., 2019), and how often a conditional
//! generator draws the digit asked for. The Fréchet distance and [`QualityReport`], which
//! need nalgebra, come with the default feature `quality`.

#[cfg(feature = "quality")]
mod frechet;
#[cfg(feature = "quality")]
mod real;
#[cfg(feature = "quality")]
mod report;

#[cfg(feature = "quality")]
pub use frechet::frechet_distance;
#[cfg(feature = "quality")]
pub use real::{CacheUse, RealStats};
#[cfg(feature = "quality")]
pub use report::QualityReport;

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
pub(crate) fn knn_radii(points: &[Vec<f32>], k: usize) -> Vec<f32> {
    use rayon::prelude::*;
    points
        .par_iter()
        .map(|p| {
            let mut distances: Vec<f32> = points.iter().map(|q| squared_distance(p, q)).collect();
            // The k-th smallest (the 0th is the point itself), without sorting them all.
            let k = k.min(distances.len() - 1);
            *distances.select_nth_unstable_by(k, f32::total_cmp).1
        })
        .collect()
}

/// Fraction of `queries` that fall inside some reference point's k-NN ball.
fn coverage(references: &[Vec<f32>], radii: &[f32], queries: &[Vec<f32>]) -> f64 {
    use rayon::prelude::*;
    let inside = queries
        .par_iter()
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
    precision_recall_with_radii(real, &knn_radii(real, k), generated, k)
}

/// [`precision_recall`] with the real points' k-NN radii already known (cached with them).
pub(crate) fn precision_recall_with_radii(
    real: &[Vec<f32>],
    real_radii: &[f32],
    generated: &[Vec<f32>],
    k: usize,
) -> (f64, f64) {
    if real.is_empty() || generated.is_empty() {
        return (0.0, 0.0);
    }
    let precision = coverage(real, real_radii, generated);
    let recall = coverage(generated, &knn_radii(generated, k), real);
    (precision, recall)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    pub(super) fn gaussian(n: usize, d: usize, shift: f32, seed: u64) -> Vec<Vec<f32>> {
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
