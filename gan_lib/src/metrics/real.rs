//! [`RealStats`]: what a [`super::QualityReport`] needs of real MNIST digits, computed once per
//! classifier and kept in a cache file, so that scoring a generator runs the classifier over the
//! generated digits only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use nalgebra::{DMatrix, DVector};
use sha2::{Digest, Sha256};

use super::frechet::{frechet_distance_of, moments, Moments};
use super::{inception_score, knn_radii, precision_recall_with_radii};
use crate::checkpoint::{self, CheckpointError, TensorFile};
use crate::classifier::Classifier;
use crate::data::{Mnist, IMAGE_PIXELS};

/// Test-set digits (the first ones) that precision and recall compare with as many generated
/// digits, and their neighbours k.
const NEIGHBOUR_SAMPLES: usize = 2000;
const NEIGHBOURS: usize = 3;
/// Bumped whenever what is cached, or how it is computed, changes: old files are then ignored.
const FORMAT: &str = "mnist-gan real-stats 1";
/// Sample count, Fréchet distance, classifier score (2), precision and recall, ten shares.
const SCALARS: usize = 16;

/// The real-MNIST side of a quality report for `samples` generated digits: the test set's
/// features as the metrics use them, and the real-data reference (the training set's first
/// `samples` digits scored against the test set, as the generated digits will be).
#[derive(Clone, Debug, PartialEq)]
pub struct RealStats {
    /// The number of generated digits this reference is for.
    pub samples: usize,
    /// Fréchet distance of `samples` training digits to the test set.
    pub frechet_distance: f64,
    /// Classifier score of the test set (mean, std over 10 splits).
    pub inception_score: (f64, f64),
    /// k-NN precision and recall of training digits against the test set.
    pub precision_recall: (f64, f64),
    /// The share of test digits the classifier calls 0, 1, ..., 9.
    pub digit_shares: [f64; 10],
    pub(super) test_moments: Moments,
    /// The first [`NEIGHBOUR_SAMPLES`] test features, and each one's squared distance to its
    /// k-th nearest neighbour among them.
    pub(super) test_neighbours: Vec<Vec<f32>>,
    pub(super) test_radii: Vec<f32>,
}

/// What [`RealStats::cached`] did with its cache file.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheUse {
    /// Read the statistics from this file.
    Read(PathBuf),
    /// Computed them and wrote this file (first use of this classifier and data).
    Written(PathBuf),
    /// The file was unreadable (`reason`); computed them again and replaced it.
    Replaced { path: PathBuf, reason: String },
    /// Computed them, but could not write the file (`reason`); nothing is cached.
    NotWritten { path: PathBuf, reason: String },
}

/// The share of `probabilities` whose most likely class is each digit.
pub(super) fn digit_shares(probabilities: &[[f32; 10]]) -> [f64; 10] {
    let mut shares = [0.0; 10];
    for p in probabilities {
        let digit = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
        shares[digit] += 1.0 / probabilities.len() as f64;
    }
    shares
}

/// The training digits scored as the real reference for `samples` generated ones.
fn reference_digits(mnist: &Mnist, samples: usize) -> usize {
    samples.max(2).min(mnist.train.len())
}

/// At most the first [`NEIGHBOUR_SAMPLES`] of `features`.
pub(super) fn neighbour_sample(features: &[Vec<f32>]) -> &[Vec<f32>] {
    &features[..features.len().min(NEIGHBOUR_SAMPLES)]
}

impl RealStats {
    /// Runs `classifier` over MNIST's test set and its first `samples` training digits (at
    /// least 2, at most all) and computes everything a report for `samples` generated digits
    /// needs.
    pub fn compute(
        classifier: &Classifier,
        mnist: &Mnist,
        samples: usize,
    ) -> candle_core::Result<RealStats> {
        let train_digits = reference_digits(mnist, samples);
        let (test_p, test_f) = classifier.run_bytes(&mnist.test.pixels)?;
        let (_, train_f) =
            classifier.run_bytes(&mnist.train.pixels[..train_digits * IMAGE_PIXELS])?;
        let test_moments = moments(&test_f);
        let test_neighbours = neighbour_sample(&test_f).to_vec();
        let test_radii = knn_radii(&test_neighbours, NEIGHBOURS);
        Ok(RealStats {
            samples,
            frechet_distance: frechet_distance_of(&moments(&train_f), &test_moments),
            inception_score: inception_score(&test_p, 10),
            precision_recall: precision_recall_with_radii(
                &test_neighbours,
                &test_radii,
                neighbour_sample(&train_f),
                NEIGHBOURS,
            ),
            digit_shares: digit_shares(&test_p),
            test_radii,
            test_moments,
            test_neighbours,
        })
    }

    /// [`RealStats::compute`], kept in `cache_dir`: read from the file of this classifier
    /// (its weights' SHA-256), this data and this sample count when there is one, computed and
    /// written there otherwise. A file that cannot be read is computed again and replaced; a
    /// folder that cannot be written leaves the statistics uncached. [`CacheUse`] says which.
    pub fn cached(
        classifier: &Classifier,
        mnist: &Mnist,
        samples: usize,
        cache_dir: &Path,
    ) -> candle_core::Result<(RealStats, CacheUse)> {
        let key = cache_key(classifier, mnist, samples);
        let path = cache_dir.join(format!("real-stats-{}.safetensors", &key[..16]));
        let unreadable = match std::fs::metadata(&path) {
            Err(_) => None,
            Ok(_) => match RealStats::read(&path, &key) {
                Ok(stats) => return Ok((stats, CacheUse::Read(path))),
                Err(e) => Some(e.to_string()),
            },
        };
        let stats = RealStats::compute(classifier, mnist, samples)?;
        let written = std::fs::create_dir_all(cache_dir)
            .map_err(|e| format!("{}: {e}", cache_dir.display()))
            .and_then(|()| stats.write(&path, &key).map_err(|e| e.to_string()));
        let used = match (written, unreadable) {
            (Err(reason), _) => CacheUse::NotWritten { path, reason },
            (Ok(()), Some(reason)) => CacheUse::Replaced { path, reason },
            (Ok(()), None) => CacheUse::Written(path),
        };
        Ok((stats, used))
    }

    /// Where the command-line tool keeps these files: `$XDG_CACHE_HOME/mnist-gan/real-stats`,
    /// else `~/.cache/mnist-gan/real-stats` (beside the notebook kernels' build cache).
    pub fn default_cache_dir() -> Option<PathBuf> {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(cache.join("mnist-gan").join("real-stats"))
    }

    /// The numbers of the real reference, in the order [`RealStats::read`] takes them back
    /// (as f64 values: a decimal text would not always give back the same bits).
    fn scalars(&self) -> [f64; SCALARS] {
        let mut scalars = [0.0; SCALARS];
        scalars[..6].copy_from_slice(&[
            self.samples as f64,
            self.frechet_distance,
            self.inception_score.0,
            self.inception_score.1,
            self.precision_recall.0,
            self.precision_recall.1,
        ]);
        scalars[6..].copy_from_slice(&self.digit_shares);
        scalars
    }

    fn write(&self, path: &Path, key: &str) -> Result<(), CheckpointError> {
        let error = |e: candle_core::Error| CheckpointError::Format {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let d = self.test_moments.mean.len();
        let k = self.test_neighbours.len();
        let tensors = vec![
            (
                "test_mean".to_owned(),
                Tensor::from_slice(self.test_moments.mean.as_slice(), d, &Device::Cpu),
            ),
            (
                "test_covariance".to_owned(),
                Tensor::from_slice(
                    self.test_moments.covariance.as_slice(),
                    (d, d),
                    &Device::Cpu,
                ),
            ),
            (
                "test_neighbours".to_owned(),
                Tensor::from_vec(self.test_neighbours.concat(), (k, d), &Device::Cpu),
            ),
            (
                "test_radii".to_owned(),
                Tensor::from_slice(&self.test_radii, k, &Device::Cpu),
            ),
            (
                "scalars".to_owned(),
                Tensor::from_slice(&self.scalars(), SCALARS, &Device::Cpu),
            ),
        ];
        let tensors = tensors
            .into_iter()
            .map(|(name, tensor)| tensor.map(|t| (name, t)))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(error)?;
        let metadata = HashMap::from([("key".to_owned(), key.to_owned())]);
        checkpoint::write_tensors(path, tensors, metadata)
    }

    fn read(path: &Path, key: &str) -> Result<RealStats, CheckpointError> {
        let file = TensorFile::read(path, &Device::Cpu)?;
        let format = |message: String| CheckpointError::Format {
            path: path.to_owned(),
            message,
        };
        if file.metadata.get("key").map(String::as_str) != Some(key) {
            return Err(format("made for another classifier, data or format".into()));
        }
        let tensor = |name: &str| {
            file.tensors
                .get(name)
                .ok_or_else(|| format(format!("no tensor {name}")))
        };
        let candle = |e: candle_core::Error| format(e.to_string());
        let mean: Vec<f64> = tensor("test_mean")?.to_vec1().map_err(candle)?;
        let covariance: Vec<f64> = tensor("test_covariance")?
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(candle)?;
        let test_neighbours: Vec<Vec<f32>> =
            tensor("test_neighbours")?.to_vec2().map_err(candle)?;
        let test_radii: Vec<f32> = tensor("test_radii")?.to_vec1().map_err(candle)?;
        let d = mean.len();
        if covariance.len() != d * d
            || test_radii.len() != test_neighbours.len()
            || test_neighbours.iter().any(|f| f.len() != d)
        {
            return Err(format("tensors of inconsistent sizes".into()));
        }
        let scalars: Vec<f64> = tensor("scalars")?.to_vec1().map_err(candle)?;
        let Ok(scalars) = <[f64; SCALARS]>::try_from(scalars) else {
            return Err(format(format!("scalars: not {SCALARS} values")));
        };
        Ok(RealStats {
            samples: scalars[0] as usize,
            frechet_distance: scalars[1],
            inception_score: (scalars[2], scalars[3]),
            precision_recall: (scalars[4], scalars[5]),
            digit_shares: std::array::from_fn(|d| scalars[6 + d]),
            test_moments: Moments {
                mean: DVector::from_vec(mean),
                covariance: DMatrix::from_vec(d, d, covariance),
            },
            test_neighbours,
            test_radii,
        })
    }

    /// k-NN precision and recall of `generated` features against the test set's.
    pub(super) fn precision_recall_of(&self, generated: &[Vec<f32>]) -> (f64, f64) {
        let generated = neighbour_sample(generated);
        precision_recall_with_radii(
            &self.test_neighbours,
            &self.test_radii,
            generated,
            NEIGHBOURS,
        )
    }
}

/// SHA-256 (hex) of everything the statistics depend on: the format, the sample count, the
/// classifier's weights (by name) and the real digits it is run on.
fn cache_key(classifier: &Classifier, mnist: &Mnist, samples: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(FORMAT.as_bytes());
    hash.update((samples as u64).to_le_bytes());
    let mut weights = checkpoint::named_vars(&classifier.vars, "");
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, tensor) in weights {
        hash.update(name.as_bytes());
        hash.update(format!("{:?}", tensor.dims()).as_bytes());
        let values: Vec<f32> = tensor
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .unwrap_or_default();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        hash.update(&bytes);
    }
    hash.update(&mnist.test.pixels);
    let train_digits = reference_digits(mnist, samples);
    hash.update(&mnist.train.pixels[..train_digits * IMAGE_PIXELS]);
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
