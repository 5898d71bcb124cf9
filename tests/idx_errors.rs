//! Every malformed IDX input gets its own typed error naming the file; no input panics.

use std::io::Write;
use std::path::{Path, PathBuf};

use gan_lib::data::idx::{self, IdxError};
use gan_lib::data::{Mnist, Split};
use proptest::prelude::*;

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    std::iter::once(magic)
        .chain(dims.iter().copied())
        .flat_map(u32::to_be_bytes)
        .collect()
}

fn images_file(count: u32, rows: u32, cols: u32, data_len: usize) -> Vec<u8> {
    let mut bytes = header(0x0803, &[count, rows, cols]);
    bytes.extend((0..data_len).map(|i| (i % 251) as u8));
    bytes
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut bytes = header(0x0801, &[labels.len() as u32]);
    bytes.extend_from_slice(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Reads `bytes` as images from a file with a telling name and returns the error.
fn images_error(bytes: &[u8]) -> IdxError {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "suspect-images.idx", bytes);
    let error = idx::read_images(&path).expect_err("malformed input must be rejected");
    assert_names_file(&error, &path);
    error
}

fn labels_error(bytes: &[u8]) -> IdxError {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "suspect-labels.idx", bytes);
    let error = idx::read_labels(&path).expect_err("malformed input must be rejected");
    assert_names_file(&error, &path);
    error
}

fn assert_names_file(error: &IdxError, path: &Path) {
    assert_eq!(error.path(), path);
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "message does not name the file: {error}"
    );
}

#[test]
fn well_formed_files_read_back_raw_and_gzip() {
    let raw = images_file(3, 28, 28, 3 * 784);
    let dir = tempfile::tempdir().unwrap();
    let a = idx::read_images(write(dir.path(), "a", &raw)).unwrap();
    let b = idx::read_images(write(dir.path(), "b.gz", &gzip(&raw))).unwrap();
    // Detection is by content, not by name: gzip data in a file without .gz, and back.
    let c = idx::read_images(write(dir.path(), "c", &gzip(&raw))).unwrap();
    let d = idx::read_images(write(dir.path(), "d.gz", &raw)).unwrap();
    assert_eq!(a.count, 3);
    assert!([&b, &c, &d].iter().all(|x| **x == a));
    let labels = idx::read_labels(write(dir.path(), "l", &labels_file(&[0, 9, 5]))).unwrap();
    assert_eq!(labels, [0, 9, 5]);
}

#[test]
fn write_then_read_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let images = idx::IdxImages {
        count: 2,
        pixels: (0..2 * 784).map(|i| (i % 256) as u8).collect(),
    };
    idx::write_images(dir.path().join("i"), &images).unwrap();
    idx::write_labels(dir.path().join("l"), &[3, 4]).unwrap();
    let split = Split::load(dir.path().join("i"), dir.path().join("l")).unwrap();
    assert_eq!(split.pixels, images.pixels);
    assert_eq!(split.labels, [3, 4]);
}

#[test]
fn missing_file() {
    let path = PathBuf::from("/nonexistent/train-images-idx3-ubyte.gz");
    let error = idx::read_images(&path).unwrap_err();
    assert!(matches!(error, IdxError::Io { .. }), "{error:?}");
    assert_names_file(&error, &path);
}

#[test]
fn empty_file() {
    assert!(matches!(images_error(&[]), IdxError::Empty { .. }));
    assert!(matches!(labels_error(&gzip(&[])), IdxError::Empty { .. }));
}

#[test]
fn truncated_header() {
    assert!(matches!(
        images_error(&[0, 0]),
        IdxError::TruncatedHeader { .. }
    ));
    assert!(matches!(
        images_error(&header(0x0803, &[1, 28])),
        IdxError::TruncatedHeader {
            needed: 16,
            found: 12,
            ..
        }
    ));
}

#[test]
fn wrong_magic_type_or_rank() {
    assert!(matches!(
        images_error(
            &images_file(1, 28, 28, 784)[..]
                .iter()
                .map(|&b| b ^ 0x40)
                .collect::<Vec<_>>()
        ),
        IdxError::BadMagic { .. }
    ));
    // A labels file given where images are expected has the wrong rank in its magic.
    assert!(matches!(
        images_error(&labels_file(&[1, 2, 3])),
        IdxError::BadMagic {
            expected: 0x0803,
            found: 0x0801,
            ..
        }
    ));
    assert!(matches!(
        labels_error(&images_file(1, 28, 28, 784)),
        IdxError::BadMagic {
            expected: 0x0801,
            ..
        }
    ));
    // Float data (type 0x0D) is not MNIST's unsigned bytes.
    assert!(matches!(
        images_error(&header(0x0D03, &[1, 28, 28])),
        IdxError::BadMagic { .. }
    ));
    // Plain text that is neither gzip nor IDX.
    assert!(matches!(
        images_error(b"<html>not found</html>"),
        IdxError::BadMagic { .. }
    ));
}

#[test]
fn wrong_dimensions() {
    assert!(matches!(
        images_error(&images_file(1, 32, 32, 1024)),
        IdxError::BadDims {
            rows: 32,
            cols: 32,
            ..
        }
    ));
    assert!(matches!(
        images_error(&images_file(1, 28, 0, 0)),
        IdxError::BadDims { .. }
    ));
}

#[test]
fn truncated_or_padded_data() {
    assert!(matches!(
        images_error(&images_file(2, 28, 28, 784 + 100)),
        IdxError::LengthMismatch {
            count: 2,
            expected: 1568,
            found: 884,
            ..
        }
    ));
    assert!(matches!(
        images_error(&images_file(1, 28, 28, 784 + 1)),
        IdxError::LengthMismatch { .. }
    ));
    assert!(matches!(
        labels_error(&labels_file(&[1, 2, 3])[..10]),
        IdxError::LengthMismatch { .. }
    ));
}

#[test]
fn absurd_count_is_rejected_before_allocating() {
    // 4 billion images would be 3 TB: the header is checked against the bytes present.
    assert!(matches!(
        images_error(&images_file(u32::MAX, 28, 28, 784)),
        IdxError::LengthMismatch {
            count: u32::MAX,
            ..
        }
    ));
    let mut labels = header(0x0801, &[u32::MAX]);
    labels.push(1);
    assert!(matches!(
        labels_error(&labels),
        IdxError::LengthMismatch { .. }
    ));
}

#[test]
fn not_gzip_after_the_gzip_magic() {
    let mut bytes = vec![0x1f, 0x8b];
    bytes.extend_from_slice(b"this is not a deflate stream at all");
    assert!(matches!(images_error(&bytes), IdxError::Gzip { .. }));
}

#[test]
fn truncated_gzip() {
    let compressed = gzip(&images_file(5, 28, 28, 5 * 784));
    assert!(matches!(
        images_error(&compressed[..compressed.len() / 2]),
        IdxError::Gzip { .. }
    ));
    // Cut inside the 8-byte trailer (CRC and size): the data is there but unverified.
    assert!(matches!(
        images_error(&compressed[..compressed.len() - 3]),
        IdxError::Gzip { .. }
    ));
}

#[test]
fn corrupt_gzip_checksum() {
    let mut compressed = gzip(&labels_file(&[1, 2, 3, 4]));
    let crc_at = compressed.len() - 8;
    compressed[crc_at] ^= 0xff;
    assert!(matches!(labels_error(&compressed), IdxError::Gzip { .. }));
}

#[test]
fn gzip_bomb_is_capped() {
    let mut bomb = header(0x0803, &[1_000_000, 28, 28]);
    bomb.resize((idx::MAX_DECOMPRESSED_BYTES + 1024) as usize, 0);
    assert!(matches!(
        images_error(&gzip(&bomb)),
        IdxError::TooLarge { .. }
    ));
}

/// A gzip file that is not IDX inside is refused on its first four decompressed bytes.
#[test]
fn gzip_of_something_else_is_refused_by_its_magic_number() {
    let zeros = vec![0u8; 4 << 20];
    assert!(matches!(
        images_error(&gzip(&zeros)),
        IdxError::BadMagic { found: 0, .. }
    ));
    assert!(matches!(
        labels_error(&gzip(b"PK\x03\x04 a zip file")),
        IdxError::BadMagic { .. }
    ));
}

/// A raw file larger than any MNIST file is refused from its size, without reading it.
#[test]
fn oversized_raw_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-idx3-ubyte");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(idx::MAX_DECOMPRESSED_BYTES + 1).unwrap(); // sparse: no disk used
    let error = idx::read_images(&path).unwrap_err();
    assert!(matches!(error, IdxError::TooLarge { .. }), "{error}");
    assert_names_file(&error, &path);
}

#[test]
fn labels_out_of_range() {
    assert!(matches!(
        labels_error(&labels_file(&[3, 7, 10, 1])),
        IdxError::LabelOutOfRange {
            index: 2,
            label: 10,
            ..
        }
    ));
    assert!(matches!(
        labels_error(&labels_file(&[255])),
        IdxError::LabelOutOfRange { .. }
    ));
}

#[test]
fn images_and_labels_disagree_in_count() {
    let dir = tempfile::tempdir().unwrap();
    let images = write(dir.path(), "imgs", &images_file(3, 28, 28, 3 * 784));
    let labels = write(dir.path(), "lbls", &labels_file(&[1, 2]));
    let error = Split::load(&images, &labels).unwrap_err();
    assert!(
        matches!(
            error,
            IdxError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("imgs") && message.contains("lbls"),
        "{message}"
    );
}

#[test]
fn a_missing_file_in_a_data_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let error = Mnist::load_dir(dir.path()).unwrap_err();
    assert!(
        error.to_string().contains("train-images-idx3-ubyte.gz"),
        "{error}"
    );
}

fn check_never_panics(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "fuzz", bytes);
    for result in [
        idx::read_images(&path).map(|_| ()),
        idx::read_labels(&path).map(|_| ()),
    ] {
        if let Err(error) = result {
            assert!(error.to_string().contains("fuzz"), "{error}");
        }
    }
}

/// Valid files (small images and labels, raw or gzip), to be mutated.
fn valid_file() -> impl Strategy<Value = Vec<u8>> {
    (0u32..4, any::<bool>(), any::<bool>()).prop_map(|(count, labels, compress)| {
        let raw = if labels {
            labels_file(&vec![7; count as usize])
        } else {
            images_file(count, 28, 28, count as usize * 784)
        };
        if compress {
            gzip(&raw)
        } else {
            raw
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_never_panics(&bytes);
    }

    #[test]
    fn mutated_files_never_panic(
        file in valid_file(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = file;
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check_never_panics(&bytes);
    }
}
