//! MNIST: loading (vendored IDX files or the Hugging Face hub), splits as tensors, and a
//! seeded mini-batch iterator with optional rotation augmentation.

#[cfg(feature = "hub")]
pub mod hub;
pub mod idx;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::Rng as _;

pub use idx::{IdxError, IdxImages, IMAGE_PIXELS, IMAGE_SIDE};

use crate::rng::Rng;

/// The ten digits, 0 to 9.
pub const CLASSES: usize = 10;

/// Labels as one-hot rows: `(b,)` u32 digits become `(b, 10)` f32 vectors with a 1 at the
/// digit. `(b, 10)` f32 label vectors (one-hot or blends of two digits, as a latent walk
/// between digits uses) are returned as they are.
pub fn one_hot(labels: &Tensor) -> candle_core::Result<Tensor> {
    match labels.dims() {
        [_, CLASSES] if labels.dtype().is_float() => Ok(labels.clone()),
        [_] => {
            let digits = Tensor::arange(0u32, CLASSES as u32, labels.device())?.unsqueeze(0)?;
            labels
                .to_dtype(DType::U32)?
                .unsqueeze(1)?
                .broadcast_eq(&digits)?
                .to_dtype(DType::F32)
        }
        dims => candle_core::bail!(
            "labels must be (batch,) digits or (batch, {CLASSES}) f32 label vectors, not {dims:?}"
        ),
    }
}

/// Where the vendored MNIST files live, relative to the repository root.
pub const VENDORED_DIR: &str = "data/mnist";

/// File names of the four original MNIST files (gzip), in the order train images, train
/// labels, test images, test labels.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Errors from loading MNIST from any source.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A bad or missing IDX file.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// A failure of the Hugging Face hub source.
    #[cfg(feature = "hub")]
    #[error(transparent)]
    Hub(#[from] hub::HubError),
    /// A failure while building tensors.
    #[error("building a tensor: {0}")]
    Candle(#[from] candle_core::Error),
}

/// How pixel bytes map to floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PixelRange {
    /// [-1, 1], the range of a Tanh generator: what GANs train on.
    Symmetric,
    /// [0, 1]: what the classifier trains on.
    Unit,
}

impl PixelRange {
    /// The float for pixel byte `p`.
    #[inline]
    pub fn scale(self, p: u8) -> f32 {
        match self {
            PixelRange::Symmetric => p as f32 / 127.5 - 1.0,
            PixelRange::Unit => p as f32 / 255.0,
        }
    }
}

/// Images in [-1, 1] (any shape) as bytes, 0 black and 255 white: the inverse of
/// [`PixelRange::Symmetric`], rounded.
pub fn to_bytes(images: &Tensor) -> candle_core::Result<Vec<u8>> {
    let values = images
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    Ok(values
        .iter()
        .map(|v| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8)
        .collect())
}

/// One split of MNIST: images and their labels, as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// `len() * 784` pixel bytes, image after image, row-major.
    pub pixels: Vec<u8>,
    /// One digit per image.
    pub labels: Vec<u8>,
}

/// MNIST's two splits.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 training images.
    pub train: Split,
    /// 10,000 test images.
    pub test: Split,
}

impl Mnist {
    /// Loads the four IDX files (raw or gzip) from `dir`, named as in [`FILES`]; the
    /// uncompressed names (without `.gz`) are accepted too.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Mnist, DataError> {
        let dir = dir.as_ref();
        let file = |name: &str| -> PathBuf {
            let gz = dir.join(name);
            let raw = dir.join(name.trim_end_matches(".gz"));
            if !gz.exists() && raw.exists() {
                raw
            } else {
                gz
            }
        };
        Ok(Mnist {
            train: Split::load(file(FILES[0]), file(FILES[1]))?,
            test: Split::load(file(FILES[2]), file(FILES[3]))?,
        })
    }

    /// Loads MNIST the way the tools do: from `dir` when its files are there, otherwise from
    /// the Hugging Face hub (through its cache, honouring `HF_HOME` and `HF_HUB_OFFLINE`).
    #[cfg(feature = "hub")]
    pub fn load_or_fetch(
        dir: impl AsRef<Path>,
        hub_options: &hub::HubOptions,
    ) -> Result<Mnist, DataError> {
        let dir = dir.as_ref();
        if FILES
            .iter()
            .any(|f| dir.join(f).exists() || dir.join(f.trim_end_matches(".gz")).exists())
        {
            Mnist::load_dir(dir)
        } else {
            Ok(hub::load(hub_options)?)
        }
    }

    /// Finds the vendored `data/mnist` folder from the current directory or one of its
    /// parents (notebooks run from `notebooks/`, tests from a crate folder).
    pub fn vendored_dir() -> PathBuf {
        crate::find_upwards(VENDORED_DIR).unwrap_or_else(|| PathBuf::from(VENDORED_DIR))
    }

    /// Loads the vendored copy (see [`Mnist::vendored_dir`]).
    pub fn load_vendored() -> Result<Mnist, DataError> {
        Mnist::load_dir(Mnist::vendored_dir())
    }
}

impl Split {
    /// Loads one split from an images file and a labels file, checking they agree.
    pub fn load(
        images_path: impl AsRef<Path>,
        labels_path: impl AsRef<Path>,
    ) -> Result<Split, IdxError> {
        let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
        let images = idx::read_images(images_path)?;
        let labels = idx::read_labels(labels_path)?;
        if images.count != labels.len() {
            return Err(IdxError::CountMismatch {
                images_path: images_path.to_owned(),
                images: images.count,
                labels_path: labels_path.to_owned(),
                labels: labels.len(),
            });
        }
        Ok(Split {
            pixels: images.pixels,
            labels,
        })
    }

    /// `n` synthetic 28x28 "digits" (a bright random rectangle each, random labels), for dry
    /// runs and tests that must not depend on MNIST.
    pub fn synthetic(n: usize, seed: u64) -> Split {
        let mut rng = crate::rng::seeded(seed);
        let mut split = Split {
            pixels: vec![0; n * IMAGE_PIXELS],
            labels: Vec::with_capacity(n),
        };
        for i in 0..n {
            let (x0, y0) = (rng.random_range(2..14), rng.random_range(2..14));
            let (x1, y1) = (rng.random_range(x0 + 4..26), rng.random_range(y0 + 4..26));
            for y in y0..y1 {
                split.pixels[i * IMAGE_PIXELS + y * IMAGE_SIDE + x0
                    ..i * IMAGE_PIXELS + y * IMAGE_SIDE + x1]
                    .fill(255);
            }
            split.labels.push(rng.random_range(0..10));
        }
        split
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` images only (all of them when `n` is larger), for quick runs.
    pub fn limit(mut self, n: usize) -> Split {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * IMAGE_PIXELS);
        self
    }

    /// The pixel bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }

    /// Number of images of each digit.
    pub fn label_counts(&self) -> [usize; 10] {
        let mut counts = [0; 10];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// All images as an `(n, 1, 28, 28)` f32 tensor in the given range.
    pub fn images_tensor(&self, range: PixelRange, device: &Device) -> candle_core::Result<Tensor> {
        let values = self.pixels.iter().map(|&p| range.scale(p)).collect();
        Tensor::from_vec(values, (self.len(), 1, IMAGE_SIDE, IMAGE_SIDE), device)
    }

    /// All labels as an `(n,)` u32 tensor.
    pub fn labels_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(
            self.labels.iter().map(|&l| l as u32).collect(),
            self.len(),
            device,
        )
    }

    /// Shuffled mini-batches for one epoch. The order (and any rotation) is drawn from `rng`,
    /// so the same seed gives the same batches. A last, incomplete batch is dropped when
    /// `options.drop_last` is set.
    pub fn batches<'a>(
        &'a self,
        options: &BatchOptions,
        rng: &'a mut Rng,
        device: &Device,
    ) -> Batches<'a> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if options.shuffle {
            order.shuffle(rng);
        }
        Batches {
            split: self,
            order,
            position: 0,
            options: options.clone(),
            rng,
            device: device.clone(),
        }
    }
}

/// How [`Split::batches`] cuts an epoch into batches.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Pixel range of the image tensors.
    pub range: PixelRange,
    /// Draw a random order for each epoch.
    pub shuffle: bool,
    /// Skip the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Rotate each image by an angle drawn uniformly from ±this many degrees (0: none).
    pub rotation_degrees: f32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            batch_size: 128,
            range: PixelRange::Symmetric,
            shuffle: true,
            drop_last: false,
            rotation_degrees: 0.0,
        }
    }
}

/// One mini-batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `(b, 1, 28, 28)` f32 images.
    pub images: Tensor,
    /// `(b,)` u32 labels.
    pub labels: Tensor,
}

/// Iterator over one epoch's mini-batches; see [`Split::batches`].
pub struct Batches<'a> {
    split: &'a Split,
    order: Vec<usize>,
    position: usize,
    options: BatchOptions,
    rng: &'a mut Rng,
    device: Device,
}

impl Batches<'_> {
    /// Number of batches this epoch yields in all.
    pub fn total(&self) -> usize {
        let n = self.order.len();
        let size = self.options.batch_size.max(1);
        if self.options.drop_last {
            n / size
        } else {
            n.div_ceil(size)
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = candle_core::Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        let size = self.options.batch_size.max(1);
        let end = (self.position + size).min(self.order.len());
        let b = end - self.position;
        if b == 0 || (self.options.drop_last && b < size) {
            return None;
        }
        let indices = &self.order[self.position..end];
        self.position = end;
        let mut values = Vec::with_capacity(b * IMAGE_PIXELS);
        let mut labels = Vec::with_capacity(b);
        for &i in indices {
            let image = self.split.image(i);
            if self.options.rotation_degrees > 0.0 {
                let max = self.options.rotation_degrees;
                let angle = self.rng.random_range(-max..=max);
                values.extend(
                    rotate(image, angle)
                        .into_iter()
                        .map(|p| self.options.range.scale(p)),
                );
            } else {
                values.extend(image.iter().map(|&p| self.options.range.scale(p)));
            }
            labels.push(self.split.labels[i] as u32);
        }
        let batch = (|| {
            Ok(Batch {
                images: Tensor::from_vec(values, (b, 1, IMAGE_SIDE, IMAGE_SIDE), &self.device)?,
                labels: Tensor::from_vec(labels, b, &self.device)?,
            })
        })();
        Some(batch)
    }
}

/// Rotates a 28x28 image by `degrees` (counter-clockwise) about its centre, with bilinear
/// sampling and black outside, like torchvision's `RandomRotation` with bilinear interpolation.
pub fn rotate(image: &[u8], degrees: f32) -> Vec<u8> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let centre = (IMAGE_SIDE as f32 - 1.0) / 2.0;
    let at = |x: isize, y: isize| -> f32 {
        if (0..IMAGE_SIDE as isize).contains(&x) && (0..IMAGE_SIDE as isize).contains(&y) {
            image[y as usize * IMAGE_SIDE + x as usize] as f32
        } else {
            0.0
        }
    };
    let mut out = vec![0u8; IMAGE_PIXELS];
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            // Inverse mapping: where in the source does this output pixel come from?
            let (dx, dy) = (x as f32 - centre, y as f32 - centre);
            let sx = cos * dx - sin * dy + centre;
            let sy = sin * dx + cos * dy + centre;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let value = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
                + at(x0 + 1, y0) * fx * (1.0 - fy)
                + at(x0, y0 + 1) * (1.0 - fx) * fy
                + at(x0 + 1, y0 + 1) * fx * fy;
            out[y * IMAGE_SIDE + x] = value.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_by_zero_is_identity_and_by_90_turns_counter_clockwise() {
        let mut image = vec![0u8; IMAGE_PIXELS];
        image[5 * IMAGE_SIDE + 20] = 255; // row 5, column 20: upper right
        assert_eq!(rotate(&image, 0.0), image);
        // A quarter turn counter-clockwise about the centre (13.5, 13.5): (x, y) = (20, 5), upper
        // right, goes to (5, 7), upper left; the whole pixel, no blur.
        let turned = rotate(&image, 90.0);
        let mut expected = vec![0u8; IMAGE_PIXELS];
        expected[7 * IMAGE_SIDE + 5] = 255;
        assert_eq!(turned, expected);
        // A quarter turn the other way sends it to (22, 20), lower right.
        let back = rotate(&image, -90.0);
        assert_eq!(
            back.iter().position(|&p| p == 255),
            Some(20 * IMAGE_SIDE + 22)
        );
    }

    #[test]
    fn pixel_ranges() {
        assert_eq!(PixelRange::Symmetric.scale(0), -1.0);
        assert_eq!(PixelRange::Symmetric.scale(255), 1.0);
        assert_eq!(PixelRange::Unit.scale(255), 1.0);
        assert_eq!(PixelRange::Unit.scale(0), 0.0);
    }
}
