//! The vendored MNIST files and the dataset API built on them.

use candle_core::Device;
use gan_lib::data::{BatchOptions, Mnist, PixelRange, FILES};
use gan_lib::rng;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// SHA-256 of the four files, copied from `shared/mnist/SHA256SUMS`.
const SHA256: [(&str, &str); 4] = [
    (
        "t10k-images-idx3-ubyte.gz",
        "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
    ),
    (
        "train-images-idx3-ubyte.gz",
        "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    ),
];

fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| {
        Mnist::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
            .expect("vendored MNIST loads")
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 of each file once decompressed, as published with MNIST (`shared/mnist/README.md`).
const RAW_MD5: [(&str, &str, usize); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "6bbc9ace898e44ae57da46a324031adb",
        47_040_016,
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "a25bea736e30d166cdddb491f175f624",
        60_008,
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "2646ac647ad5339dbf082846283269ea",
        7_840_016,
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "27ae3e4e09519cfbb04c329615203637",
        10_008,
    ),
];

#[test]
fn decompressed_files_match_the_published_md5s() {
    use std::io::Read;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    for (name, expected, size) in RAW_MD5 {
        let file = std::fs::File::open(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut raw)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(raw.len(), size, "{name}: decompressed size");
        assert_eq!(
            hex(&md5::Md5::digest(&raw)),
            expected,
            "{name}: MD5 of the raw IDX bytes"
        );
    }
}

#[test]
fn vendored_gz_files_match_the_sha256sums_beside_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    for (name, expected) in SHA256 {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            expected,
            "{name} differs from the published file"
        );
    }
    assert!(FILES.iter().all(|f| SHA256.iter().any(|(n, _)| n == f)));
}

#[test]
fn split_sizes_and_published_label_counts() {
    let mnist = mnist();
    assert_eq!(mnist.train.len(), 60_000);
    assert_eq!(mnist.test.len(), 10_000);
    assert_eq!(mnist.train.pixels.len(), 60_000 * 784);
    assert_eq!(
        mnist.train.label_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        mnist.test.label_counts(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn tensors_have_the_right_shape_and_range() {
    let test = mnist().test.clone().limit(500);
    let symmetric = test
        .images_tensor(PixelRange::Symmetric, &Device::Cpu)
        .unwrap();
    assert_eq!(symmetric.dims(), &[500, 1, 28, 28]);
    let (min, max) = (
        symmetric.min_all().unwrap().to_scalar::<f32>().unwrap(),
        symmetric.max_all().unwrap().to_scalar::<f32>().unwrap(),
    );
    assert_eq!((min, max), (-1.0, 1.0));
    let unit = test.images_tensor(PixelRange::Unit, &Device::Cpu).unwrap();
    let (min, max) = (
        unit.min_all().unwrap().to_scalar::<f32>().unwrap(),
        unit.max_all().unwrap().to_scalar::<f32>().unwrap(),
    );
    assert_eq!((min, max), (0.0, 1.0));
    let labels = test.labels_tensor(&Device::Cpu).unwrap();
    assert_eq!(labels.dims(), &[500]);
    assert_eq!(labels.to_vec1::<u32>().unwrap()[..5], [7, 2, 1, 0, 4]);
}

fn first_labels(seed: u64, options: &BatchOptions) -> Vec<Vec<u32>> {
    let split = mnist().train.clone().limit(1000);
    let mut rng = rng::seeded(seed);
    split
        .batches(options, &mut rng, &Device::Cpu)
        .take(3)
        .map(|b| b.unwrap().labels.to_vec1::<u32>().unwrap())
        .collect()
}

#[test]
fn batches_have_the_right_shapes_and_count() {
    let split = mnist().train.clone().limit(1000);
    let mut rng = rng::seeded(0);
    let options = BatchOptions {
        batch_size: 128,
        ..Default::default()
    };
    let batches = split.batches(&options, &mut rng, &Device::Cpu);
    assert_eq!(batches.total(), 8);
    let sizes: Vec<usize> = batches.map(|b| b.unwrap().images.dims()[0]).collect();
    assert_eq!(sizes, [128, 128, 128, 128, 128, 128, 128, 104]);
    let mut rng = rng::seeded(0);
    let dropped = BatchOptions {
        drop_last: true,
        ..options
    };
    let mut batches = split.batches(&dropped, &mut rng, &Device::Cpu);
    assert_eq!(batches.total(), 7);
    let first = batches.next().unwrap().unwrap();
    assert_eq!(first.images.dims(), &[128, 1, 28, 28]);
    assert_eq!(first.labels.dims(), &[128]);
    assert_eq!(batches.count(), 6);
}

#[test]
fn seeded_shuffling_is_reproducible_and_differs_across_seeds() {
    let options = BatchOptions {
        batch_size: 64,
        ..Default::default()
    };
    assert_eq!(first_labels(42, &options), first_labels(42, &options));
    assert_ne!(first_labels(42, &options), first_labels(43, &options));
    let ordered = first_labels(
        42,
        &BatchOptions {
            shuffle: false,
            ..options
        },
    );
    assert_eq!(
        ordered[0],
        mnist().train.labels[..64]
            .iter()
            .map(|&l| l as u32)
            .collect::<Vec<_>>()
    );
}

#[test]
fn rotation_changes_images_reproducibly_and_keeps_the_range() {
    let split = mnist().test.clone().limit(64);
    let images = |seed, degrees| {
        let options = BatchOptions {
            batch_size: 64,
            shuffle: false,
            rotation_degrees: degrees,
            ..Default::default()
        };
        let mut rng = rng::seeded(seed);
        let batch = split
            .batches(&options, &mut rng, &Device::Cpu)
            .next()
            .unwrap()
            .unwrap();
        batch
            .images
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let plain = images(1, 0.0);
    let rotated = images(1, 15.0);
    assert_ne!(plain, rotated);
    assert_eq!(rotated, images(1, 15.0));
    assert_ne!(rotated, images(2, 15.0));
    assert!(rotated.iter().all(|v| (-1.0..=1.0).contains(v)));
}
