//! The Fréchet distance between Gaussians fitted to two feature sets (FID's formula).

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// The mean and covariance of a feature set: the Gaussian the Fréchet distance fits to it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Moments {
    pub mean: DVector<f64>,
    pub covariance: DMatrix<f64>,
}

/// Mean and covariance of feature vectors (rows).
pub(super) fn moments(features: &[Vec<f32>]) -> Moments {
    let (n, d) = (features.len(), features.first().map_or(0, |f| f.len()));
    let data = DMatrix::from_fn(n, d, |i, j| features[i][j] as f64);
    let mean = DVector::from_fn(d, |j, _| data.column(j).mean());
    let mut centred = data;
    for j in 0..d {
        let m = mean[j];
        centred.column_mut(j).add_scalar_mut(-m);
    }
    let covariance = centred.transpose() * &centred / (n.max(2) - 1) as f64;
    Moments { mean, covariance }
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
    frechet_distance_of(&moments(a), &moments(b))
}

/// [`frechet_distance`] of two feature sets' [`Moments`].
pub(super) fn frechet_distance_of(a: &Moments, b: &Moments) -> f64 {
    let (mean_a, cov_a) = (&a.mean, &a.covariance);
    let (mean_b, cov_b) = (&b.mean, &b.covariance);
    // Non-finite features (a generator that diverged) have no distance; the matrix
    // decompositions below would not converge on them.
    if !cov_a.iter().chain(cov_b.iter()).all(|v| v.is_finite()) {
        return f64::NAN;
    }
    // tr((Σa Σb)^½) = tr((√Σa Σb √Σa)^½), whose argument is symmetric.
    let root_a = sqrt_psd(cov_a);
    let cross = sqrt_psd(&(&root_a * cov_b * &root_a)).trace();
    let distance = (mean_a - mean_b).norm_squared() + cov_a.trace() + cov_b.trace() - 2.0 * cross;
    // Rounding can take an exact zero slightly below it; a NaN stays a NaN (never a perfect 0).
    if distance.is_nan() {
        distance
    } else {
        distance.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::gaussian;
    use rand::Rng as _;

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
}
