//! The Hugging Face hub source, tested for real against a cache built here: a small parquet
//! file in the layout of `ylecun/mnist`, placed where hf-hub's cache looks for it.

use std::path::Path;
use std::sync::Arc;

use gan_lib::data::hub::{self, HubError, HubOptions, TEST_FILE, TRAIN_FILE};
use gan_lib::data::{DataError, Mnist};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// The schema pyarrow writes for a `datasets` Image feature and a ClassLabel.
const SCHEMA: &str = "message schema {
  optional group image {
    optional binary bytes;
    optional binary path (STRING);
  }
  optional int64 label;
}";

fn png(pixels: &[u8], side: u32) -> Vec<u8> {
    let image = image::GrayImage::from_raw(side, side, pixels.to_vec()).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A digit whose pixels encode its index, so the test can check order and content.
fn digit_pixels(index: usize) -> Vec<u8> {
    (0..784).map(|p| ((p + index * 7) % 256) as u8).collect()
}

/// Writes a parquet file holding `labels.len()` rows, with snappy compression as on the hub.
fn write_parquet(path: &Path, images: &[Vec<u8>], labels: &[i64]) {
    let schema = Arc::new(parquet::schema::parser::parse_message_type(SCHEMA).unwrap());
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build(),
    );
    let mut writer =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, properties)
            .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let n = labels.len();
    // image.bytes: present (definition level 2); image.path: null inside a present group (1).
    let mut column = group.next_column().unwrap().unwrap();
    let bytes: Vec<ByteArray> = images.iter().map(|i| ByteArray::from(i.clone())).collect();
    column
        .typed::<ByteArrayType>()
        .write_batch(&bytes, Some(&vec![2; n]), None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<ByteArrayType>()
        .write_batch(&[], Some(&vec![1; n]), None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<Int64Type>()
        .write_batch(labels, Some(&vec![1; n]), None)
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

/// Builds `<cache>/datasets--ylecun--mnist/{refs/main, snapshots/<commit>/mnist/*.parquet}`.
fn build_cache(cache: &Path, train_rows: usize, test_rows: usize) {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache.join("datasets--ylecun--mnist");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for (file, rows) in [(TRAIN_FILE, train_rows), (TEST_FILE, test_rows)] {
        let path = repo.join("snapshots").join(commit).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let images: Vec<Vec<u8>> = (0..rows).map(|i| png(&digit_pixels(i), 28)).collect();
        let labels: Vec<i64> = (0..rows).map(|i| (i % 10) as i64).collect();
        write_parquet(&path, &images, &labels);
    }
}

fn offline_options(cache: &Path) -> HubOptions {
    HubOptions {
        cache_dir: Some(cache.to_owned()),
        offline: true,
        revision: None,
    }
}

#[test]
fn loads_mnist_from_a_hub_cache() {
    let cache = tempfile::tempdir().unwrap();
    build_cache(cache.path(), 23, 7);
    let mnist = hub::load(&offline_options(cache.path())).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (23, 7));
    assert_eq!(
        mnist.train.labels[..12],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    );
    for i in [0, 5, 22] {
        assert_eq!(
            mnist.train.image(i),
            digit_pixels(i).as_slice(),
            "image {i} decoded wrongly"
        );
    }
}

#[test]
fn load_or_fetch_prefers_local_files_and_falls_back_to_the_hub() {
    let cache = tempfile::tempdir().unwrap();
    build_cache(cache.path(), 4, 3);
    let empty = tempfile::tempdir().unwrap();
    let mnist = Mnist::load_or_fetch(empty.path(), &offline_options(cache.path())).unwrap();
    assert_eq!(mnist.train.len(), 4);
    let vendored = Mnist::load_or_fetch(
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"),
        &offline_options(cache.path()),
    )
    .unwrap();
    assert_eq!(vendored.train.len(), 60_000);
}

#[test]
fn offline_without_cache_says_what_is_missing_and_where() {
    let cache = tempfile::tempdir().unwrap();
    let error = hub::load(&offline_options(cache.path())).unwrap_err();
    assert!(matches!(error, HubError::NotCached { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("ylecun/mnist") && message.contains(TRAIN_FILE),
        "{message}"
    );
    assert!(
        message.contains(&cache.path().display().to_string()),
        "{message}"
    );
    let empty = tempfile::tempdir().unwrap();
    let error = Mnist::load_or_fetch(empty.path(), &offline_options(cache.path())).unwrap_err();
    assert!(
        matches!(error, DataError::Hub(HubError::NotCached { .. })),
        "{error:?}"
    );
}

#[test]
fn cache_location_follows_the_hugging_face_variables() {
    // Only this test touches these variables in this test binary.
    std::env::remove_var("HF_HUB_CACHE");
    std::env::set_var("HF_HOME", "/somewhere/hf");
    assert_eq!(
        HubOptions::default().cache_dir(),
        Path::new("/somewhere/hf/hub")
    );
    std::env::set_var("HF_HUB_CACHE", "/elsewhere/cache");
    assert_eq!(
        HubOptions::default().cache_dir(),
        Path::new("/elsewhere/cache")
    );
    std::env::remove_var("HF_HUB_CACHE");
    std::env::remove_var("HF_HOME");
    std::env::set_var("HF_HUB_OFFLINE", "1");
    assert!(HubOptions::default().is_offline());
    std::env::set_var("HF_HUB_OFFLINE", "0");
    assert!(!HubOptions::default().is_offline());
    std::env::remove_var("HF_HUB_OFFLINE");
}

#[test]
fn bad_parquet_content_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let not_parquet = dir.path().join("train.parquet");
    std::fs::write(&not_parquet, b"PAR1 but not really").unwrap();
    let error = hub::read_parquet(&not_parquet).unwrap_err();
    assert!(
        matches!(error, HubError::Parquet { .. }) && error.to_string().contains("train.parquet"),
        "{error}"
    );

    let bad_label = dir.path().join("labels.parquet");
    write_parquet(&bad_label, &[png(&digit_pixels(0), 28)], &[11]);
    let error = hub::read_parquet(&bad_label).unwrap_err();
    assert!(
        matches!(error, HubError::BadRow { row: 0, .. }) && error.to_string().contains("label 11"),
        "{error}"
    );

    let wrong_size = dir.path().join("size.parquet");
    write_parquet(&wrong_size, &[png(&[0; 64], 8)], &[1]);
    let error = hub::read_parquet(&wrong_size).unwrap_err();
    assert!(error.to_string().contains("8x8"), "{error}");

    let not_png = dir.path().join("png.parquet");
    write_parquet(&not_png, &[b"GIF89a".to_vec()], &[1]);
    assert!(hub::read_parquet(&not_png)
        .unwrap_err()
        .to_string()
        .contains("PNG"));
}
