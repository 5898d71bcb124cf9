//! Helpers shared by the integration tests that train.

use std::path::Path;

use candle_core::Device;
use gan_lib::checkpoint;
use gan_lib::config::TrainConfig;
use gan_lib::data::{Mnist, Split};
use gan_lib::train::Trainer;

/// The first 256 test digits of the vendored MNIST.
pub fn small_mnist() -> Split {
    Mnist::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
        .unwrap()
        .test
        .limit(256)
}

/// Every variable of `varmap` with its values, sorted by name.
pub fn weights(varmap: &candle_nn::VarMap) -> Vec<(String, Vec<f32>)> {
    let mut all: Vec<(String, Vec<f32>)> = checkpoint::named_vars(varmap, "")
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// A trainer on the CPU.
pub fn quiet_trainer(config: &TrainConfig, dir: &Path) -> Trainer {
    Trainer::new(config, dir, &Device::Cpu).unwrap()
}

/// quick-mlp made small (batch 32, hidden layers of 32 and 64, 2 epochs): fast in a debug
/// build, still the real code path.
pub fn tiny_mlp() -> TrainConfig {
    TrainConfig::preset("quick-mlp")
        .unwrap()
        .with("batch_size", "32")
        .unwrap()
        .with("model.g_hidden", "[32, 64]")
        .unwrap()
        .with("model.d_hidden", "[64, 32]")
        .unwrap()
        .with("epochs", "2")
        .unwrap()
}
