//! MNIST from the Hugging Face hub: the dataset `ylecun/mnist`, two parquet files whose rows
//! hold a PNG-encoded digit (`image.bytes`) and its `label`.
//!
//! Files are looked up in the standard Hugging Face cache first (`HF_HUB_CACHE`, else
//! `HF_HOME/hub`, else `~/.cache/huggingface/hub`), so a dataset fetched once by Python's
//! `datasets`/`huggingface_hub` or by this crate is reused. With `HF_HUB_OFFLINE=1` (or
//! [`HubOptions::offline`]) nothing is downloaded and a missing file is a clear error.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};

use super::{Mnist, Split, IMAGE_PIXELS, IMAGE_SIDE};

/// The hub dataset that holds MNIST.
pub const REPO_ID: &str = "ylecun/mnist";
/// The training split inside the dataset repository.
pub const TRAIN_FILE: &str = "mnist/train-00000-of-00001.parquet";
/// The test split inside the dataset repository.
pub const TEST_FILE: &str = "mnist/test-00000-of-00001.parquet";

/// Failures of the hub source.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Offline, and the file is not in the cache.
    #[error("{file} of dataset {repo} is not in the Hugging Face cache {} and offline mode is on (HF_HUB_OFFLINE); download it once while online, or put the MNIST IDX files in data/mnist", cache.display())]
    NotCached {
        /// The dataset.
        repo: String,
        /// The file inside it.
        file: String,
        /// The cache folder searched.
        cache: PathBuf,
    },
    /// The download failed.
    #[error("downloading {file} of dataset {repo} from the Hugging Face hub failed: {message}")]
    Download {
        /// The dataset.
        repo: String,
        /// The file inside it.
        file: String,
        /// The hub client's error.
        message: String,
    },
    /// The parquet file could not be read.
    #[error("{}: not a readable MNIST parquet file: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A row holds no usable digit.
    #[error("{}: row {row}: {message}", path.display())]
    BadRow {
        /// The file.
        path: PathBuf,
        /// The row's index.
        row: usize,
        /// What is wrong.
        message: String,
    },
}

/// Where and how to reach the hub.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    /// The cache folder (the `hub` folder, holding `datasets--ylecun--mnist`); `None` follows
    /// `HF_HUB_CACHE` / `HF_HOME` / the default.
    pub cache_dir: Option<PathBuf>,
    /// Never download; only the cache is used. Also turned on by `HF_HUB_OFFLINE=1`.
    pub offline: bool,
    /// The dataset revision (branch, tag or commit); `None` means `main`.
    pub revision: Option<String>,
}

impl HubOptions {
    /// The cache folder these options resolve to.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(home) = std::env::var_os("HF_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(home).join("hub");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".cache").join("huggingface").join("hub")
    }

    /// True when downloads are forbidden, by these options or by `HF_HUB_OFFLINE`.
    pub fn is_offline(&self) -> bool {
        self.offline
            || std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
    }

    fn repo(&self) -> Repo {
        let revision = self.revision.clone().unwrap_or_else(|| "main".to_owned());
        Repo::with_revision(REPO_ID.to_owned(), RepoType::Dataset, revision)
    }

    /// The local path of `file`, from the cache or, when online, downloaded into it.
    pub fn get(&self, file: &str) -> Result<PathBuf, HubError> {
        let cache = Cache::new(self.cache_dir());
        if let Some(path) = cache.repo(self.repo()).get(file) {
            return Ok(path);
        }
        if self.is_offline() {
            return Err(HubError::NotCached {
                repo: REPO_ID.to_owned(),
                file: file.to_owned(),
                cache: self.cache_dir(),
            });
        }
        let download_error = |e: hf_hub::api::sync::ApiError| HubError::Download {
            repo: REPO_ID.to_owned(),
            file: file.to_owned(),
            message: e.to_string(),
        };
        let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
            .with_progress(true)
            .build()
            .map_err(download_error)?;
        api.repo(self.repo()).get(file).map_err(download_error)
    }
}

/// Loads both splits of MNIST from the hub (or its cache).
pub fn load(options: &HubOptions) -> Result<Mnist, HubError> {
    Ok(Mnist {
        train: read_parquet(&options.get(TRAIN_FILE)?)?,
        test: read_parquet(&options.get(TEST_FILE)?)?,
    })
}

/// Reads one split from a parquet file with columns `image` (a struct holding PNG `bytes`)
/// and `label` (an integer 0..=9), as published in `ylecun/mnist`.
pub fn read_parquet(path: &Path) -> Result<Split, HubError> {
    let parquet_error = |e: &dyn std::fmt::Display| HubError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| parquet_error(&e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(&e))?;
    let rows = reader.metadata().file_metadata().num_rows().max(0) as usize;
    let mut split = Split {
        pixels: Vec::with_capacity(rows.min(100_000) * IMAGE_PIXELS),
        labels: Vec::with_capacity(rows.min(100_000)),
    };
    for (index, row) in reader
        .get_row_iter(None)
        .map_err(|e| parquet_error(&e))?
        .enumerate()
    {
        let bad_row = |message: String| HubError::BadRow {
            path: path.to_owned(),
            row: index,
            message,
        };
        let row = row.map_err(|e| bad_row(e.to_string()))?;
        let (png, label) = digit_of_row(&row).map_err(bad_row)?;
        let image = image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .map_err(|e| bad_row(format!("image is not a readable PNG: {e}")))?
            .to_luma8();
        if image.dimensions() != (IMAGE_SIDE as u32, IMAGE_SIDE as u32) {
            let (w, h) = image.dimensions();
            return Err(bad_row(format!("image is {w}x{h}, expected 28x28")));
        }
        split.pixels.extend_from_slice(image.as_raw());
        split.labels.push(label);
    }
    Ok(split)
}

/// The PNG bytes and the label of one row.
fn digit_of_row(row: &Row) -> Result<(&[u8], u8), String> {
    let field = |name: &str| {
        row.get_column_iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, f)| f)
    };
    let png = match field("image") {
        Some(Field::Group(image)) => {
            match image.get_column_iter().find(|(n, _)| n.as_str() == "bytes") {
                Some((_, Field::Bytes(bytes))) => bytes.data(),
                _ => return Err("column image has no bytes".to_owned()),
            }
        }
        Some(Field::Bytes(bytes)) => bytes.data(),
        _ => return Err("no image column".to_owned()),
    };
    let label = match field("label") {
        Some(Field::Long(v)) => *v,
        Some(Field::Int(v)) => *v as i64,
        Some(Field::Short(v)) => *v as i64,
        Some(Field::Byte(v)) => *v as i64,
        Some(Field::ULong(v)) => (*v).min(i64::MAX as u64) as i64,
        Some(Field::UInt(v)) => *v as i64,
        Some(Field::UShort(v)) => *v as i64,
        Some(Field::UByte(v)) => *v as i64,
        _ => return Err("no integer label column".to_owned()),
    };
    match u8::try_from(label) {
        Ok(digit) if digit <= 9 => Ok((png, digit)),
        _ => Err(format!("label {label} is not a digit 0..=9")),
    }
}
