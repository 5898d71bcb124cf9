//! Reading and writing MNIST's IDX files, raw or gzip-compressed.
//!
//! The format: a big-endian u32 magic (`0x0000_08NN`: two zero bytes, data type 0x08 for
//! unsigned bytes, then the rank NN), one big-endian u32 per dimension, then the raw bytes.
//! Every check runs before anything is allocated from a header's numbers, and every failure
//! is an [`IdxError`] whose message names the file and what is wrong with it.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Side of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels in one MNIST image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Largest file, and largest decompressed size of a gzip file, accepted (MNIST's largest
/// file is 47 MB).
pub const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UNSIGNED_BYTE: u8 = 0x08;

/// What went wrong with an IDX file. Each message starts with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{}: the file is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{}: corrupt or truncated gzip data: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// Decompression produced more data than any MNIST file holds.
    #[error("{}: decompresses to more than {} MiB, far more than any MNIST file", path.display(), MAX_DECOMPRESSED_BYTES >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The header is cut short.
    #[error("{}: truncated header: {needed} bytes needed, {found} present", path.display())]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Header bytes the format needs.
        needed: usize,
        /// Bytes in the file.
        found: usize,
    },
    /// The magic number is not the one expected.
    #[error("{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({what}); not an IDX file of that kind", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What kind of file was expected.
        what: &'static str,
    },
    /// Images are not 28x28.
    #[error("{}: images are {rows}x{cols}, expected {side}x{side}", path.display(), side = IMAGE_SIDE)]
    BadDims {
        /// The file.
        path: PathBuf,
        /// Rows per image.
        rows: u32,
        /// Columns per image.
        cols: u32,
    },
    /// The header's item count does not match the bytes present.
    #[error("{}: header declares {count} items ({expected} data bytes) but the file holds {found} data bytes", path.display())]
    LengthMismatch {
        /// The file.
        path: PathBuf,
        /// Items declared by the header.
        count: u32,
        /// Data bytes the header implies.
        expected: u64,
        /// Data bytes present.
        found: u64,
    },
    /// A label is not a digit.
    #[error("{}: label {label} at index {index} is not a digit 0..=9", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Position of the bad label.
        index: usize,
        /// Its value.
        label: u8,
    },
    /// Images and labels files disagree on the number of items.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Images it holds.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Labels it holds.
        labels: usize,
    },
}

impl IdxError {
    /// The file the error is about (the images file for a count mismatch).
    pub fn path(&self) -> &Path {
        match self {
            IdxError::Io { path, .. }
            | IdxError::Empty { path }
            | IdxError::Gzip { path, .. }
            | IdxError::TooLarge { path }
            | IdxError::TruncatedHeader { path, .. }
            | IdxError::BadMagic { path, .. }
            | IdxError::BadDims { path, .. }
            | IdxError::LengthMismatch { path, .. }
            | IdxError::LabelOutOfRange { path, .. } => path,
            IdxError::CountMismatch { images_path, .. } => images_path,
        }
    }
}

/// A stack of 28x28 greyscale images, row-major, one byte per pixel (0 black, 255 white).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// `count * 784` pixel values.
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (raw or gzip, told apart by content).
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages, IdxError> {
    let path = path.as_ref();
    parse_images(&read_capped(path)?, path)
}

/// Reads an IDX label file (raw or gzip, told apart by content); every label is a digit.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, IdxError> {
    let path = path.as_ref();
    parse_labels(&read_capped(path)?, path)
}

/// Parses the bytes of an IDX image file, raw or gzip; `path` is only used in error messages.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, IdxError> {
    let bytes = decompress(bytes, path, 3, IMAGES)?;
    let dims = parse_header(&bytes, path, 3, IMAGES)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows as usize != IMAGE_SIDE || cols as usize != IMAGE_SIDE {
        return Err(IdxError::BadDims {
            path: path.to_owned(),
            rows,
            cols,
        });
    }
    let data = check_length(&bytes, path, 3, count, IMAGE_PIXELS as u64)?;
    Ok(IdxImages {
        count: count as usize,
        pixels: data.to_vec(),
    })
}

/// Parses the bytes of an IDX label file, raw or gzip; `path` is only used in error messages.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>, IdxError> {
    let bytes = decompress(bytes, path, 1, LABELS)?;
    let dims = parse_header(&bytes, path, 1, LABELS)?;
    let data = check_length(&bytes, path, 1, dims[0], 1)?;
    if let Some(index) = data.iter().position(|&label| label > 9) {
        return Err(IdxError::LabelOutOfRange {
            path: path.to_owned(),
            index,
            label: data[index],
        });
    }
    Ok(data.to_vec())
}

const IMAGES: &str = "images, rank 3";
const LABELS: &str = "labels, rank 1";

/// Reads a file of at most [`MAX_DECOMPRESSED_BYTES`] (MNIST's files are far smaller).
fn read_capped(path: &Path) -> Result<Vec<u8>, IdxError> {
    crate::files::read_at_most(path, MAX_DECOMPRESSED_BYTES)
        .map_err(|source| IdxError::Io {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| IdxError::TooLarge {
            path: path.to_owned(),
        })
}

/// The IDX bytes inside `bytes`: the bytes themselves, or their gzip decompression when they
/// start with gzip's magic bytes. The magic number is checked on the first decompressed bytes,
/// before the rest is decompressed, and at most [`MAX_DECOMPRESSED_BYTES`] are decompressed: a
/// wrong or hostile file costs a few bytes of work, not gigabytes of memory.
fn decompress<'a>(
    bytes: &'a [u8],
    path: &Path,
    rank: u8,
    what: &'static str,
) -> Result<Cow<'a, [u8]>, IdxError> {
    if bytes.is_empty() {
        return Err(IdxError::Empty {
            path: path.to_owned(),
        });
    }
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    let gzip_err = |source| IdxError::Gzip {
        path: path.to_owned(),
        source,
    };
    let mut decoder = flate2::read::GzDecoder::new(bytes).take(MAX_DECOMPRESSED_BYTES + 1);
    let mut out = Vec::new();
    (&mut decoder)
        .take(4)
        .read_to_end(&mut out)
        .map_err(gzip_err)?;
    if out.is_empty() {
        return Err(IdxError::Empty {
            path: path.to_owned(),
        });
    }
    // A wrong magic number is reported before anything more is decompressed.
    if let Err(e @ IdxError::BadMagic { .. }) = parse_header(&out, path, rank, what) {
        return Err(e);
    }
    decoder.read_to_end(&mut out).map_err(gzip_err)?;
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(IdxError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(Cow::Owned(out))
}

/// Checks the magic number and returns the `rank` dimensions that follow it.
fn parse_header(
    bytes: &[u8],
    path: &Path,
    rank: u8,
    what: &'static str,
) -> Result<Vec<u32>, IdxError> {
    let header_len = 4 + 4 * rank as usize;
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    if bytes.len() < 4 {
        return Err(IdxError::TruncatedHeader {
            path: path.to_owned(),
            needed: header_len,
            found: bytes.len(),
        });
    }
    let expected = u32::from_be_bytes([0, 0, UNSIGNED_BYTE, rank]);
    if word(0) != expected {
        return Err(IdxError::BadMagic {
            path: path.to_owned(),
            found: word(0),
            expected,
            what,
        });
    }
    if bytes.len() < header_len {
        return Err(IdxError::TruncatedHeader {
            path: path.to_owned(),
            needed: header_len,
            found: bytes.len(),
        });
    }
    Ok((1..=rank as usize).map(word).collect())
}

/// Returns the data after the header once its length is exactly `count * item_len` bytes.
fn check_length<'a>(
    bytes: &'a [u8],
    path: &Path,
    rank: usize,
    count: u32,
    item_len: u64,
) -> Result<&'a [u8], IdxError> {
    let data = &bytes[4 + 4 * rank..];
    let expected = count as u64 * item_len;
    if data.len() as u64 != expected {
        return Err(IdxError::LengthMismatch {
            path: path.to_owned(),
            count,
            expected,
            found: data.len() as u64,
        });
    }
    Ok(data)
}

/// Writes images as a raw (uncompressed) IDX file, the format MNIST tools read.
pub fn write_images(path: impl AsRef<Path>, images: &IdxImages) -> Result<(), IdxError> {
    let path = path.as_ref();
    assert_eq!(
        images.pixels.len(),
        images.count * IMAGE_PIXELS,
        "pixel buffer does not hold `count` images"
    );
    let mut bytes = Vec::with_capacity(16 + images.pixels.len());
    for word in [
        0x0000_0803,
        images.count as u32,
        IMAGE_SIDE as u32,
        IMAGE_SIDE as u32,
    ] {
        bytes.extend_from_slice(&u32::to_be_bytes(word));
    }
    bytes.extend_from_slice(&images.pixels);
    let io_err = |source| IdxError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(io_err)?;
    file.write_all(&bytes).map_err(io_err)
}

/// Writes labels as a raw IDX file.
pub fn write_labels(path: impl AsRef<Path>, labels: &[u8]) -> Result<(), IdxError> {
    let path = path.as_ref();
    let mut bytes = Vec::with_capacity(8 + labels.len());
    bytes.extend_from_slice(&0x0000_0801u32.to_be_bytes());
    bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    std::fs::write(path, bytes).map_err(|source| IdxError::Io {
        path: path.to_owned(),
        source,
    })
}
