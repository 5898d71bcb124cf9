//! What a discriminator sees of a batch beside each image: packing (PacGAN) and the minibatch
//! standard deviation (ProGAN), in `dcgan-fast`'s networks.

#[allow(dead_code)] // the shared helpers this test does not need
mod common;
use common::{quiet_trainer, small_mnist, weights};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_lib::config::TrainConfig;
use gan_lib::models::Discriminator;
use gan_lib::nn::Pass;
use gan_lib::rng;

/// dcgan-fast with a batch of 32 and `key = value`.
fn dcgan_fast(key: &str, value: &str) -> TrainConfig {
    TrainConfig::preset("dcgan-fast")
        .unwrap()
        .with("batch_size", "32")
        .unwrap()
        .with(key, value)
        .unwrap()
}

fn discriminator(config: &TrainConfig) -> (Discriminator, VarMap) {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    (Discriminator::new(&config.model, vb).unwrap(), vars)
}

fn logits(d: &Discriminator, images: &Tensor) -> Vec<f32> {
    let mut rng = rng::seeded(0);
    let mut pass = Pass::train(&mut rng);
    d.forward(images, None, &mut pass)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn digits(n: usize) -> Tensor {
    small_mnist()
        .limit(n)
        .images_tensor(gan_lib::data::PixelRange::Symmetric, &Device::Cpu)
        .unwrap()
}

#[test]
fn a_packing_discriminator_gives_one_logit_per_set_and_judges_the_set() {
    let (d, vars) = discriminator(&dcgan_fast("model.d_pack", "2"));
    let first = vars.data().lock().unwrap()["layers.0.conv.weight"]
        .dims()
        .to_vec();
    assert_eq!(
        first,
        [16, 2, 4, 4],
        "the first convolution takes the pair as two channels"
    );
    let images = digits(8);
    let judged = logits(&d, &images);
    assert_eq!(judged.len(), 4);
    // Changing the second image of the first pair changes that pair's logit only.
    let changed = images
        .slice_assign(
            &[1..2, 0..1, 0..28, 0..28],
            &images.get(5).unwrap().unsqueeze(0).unwrap(),
        )
        .unwrap();
    let rejudged = logits(&d, &changed);
    assert_ne!(rejudged[0], judged[0]);
    assert_eq!(rejudged[1..], judged[1..]);
    assert!(
        d.forward(&digits(7), None, &mut Pass::eval()).is_err(),
        "7 images cannot be packed in pairs"
    );
}

#[test]
fn the_minibatch_standard_deviation_lets_each_logit_depend_on_the_batch() {
    let (d, _) = discriminator(&dcgan_fast("model.d_minibatch_std", "true"));
    let images = digits(8);
    let judged = logits(&d, &images);
    assert_eq!(judged.len(), 8);
    // The same first image in a batch of identical images: no spread, another logit.
    let copies = images
        .get(0)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .repeat((8, 1, 1, 1))
        .unwrap();
    assert_ne!(logits(&d, &copies)[0], judged[0]);
    // Without the feature, the first image's logit does not depend on the others.
    let (plain, _) = discriminator(&dcgan_fast("seed", "42"));
    assert_eq!(logits(&plain, &copies)[0], logits(&plain, &images)[0]);
}

#[test]
fn both_train_reproducibly_and_save_their_settings() {
    let config = dcgan_fast("model.d_pack", "2")
        .with("model.d_minibatch_std", "true")
        .unwrap();
    let toml = config.to_toml();
    assert!(
        toml.contains("d_pack = 2") && toml.contains("d_minibatch_std = true"),
        "{toml}"
    );
    let plain = TrainConfig::preset("dcgan-fast").unwrap().to_toml();
    assert!(
        !plain.contains("d_pack") && !plain.contains("d_minibatch_std"),
        "defaults are not written: {plain}"
    );
    let real = digits(32);
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = quiet_trainer(&config, dir.path());
        let stats: Vec<_> = (0..3)
            .map(|_| trainer.train_step(&real, None).unwrap())
            .collect();
        trainer.save_checkpoint().unwrap();
        let reopened = gan_lib::train::Trainer::resume(dir.path(), None, &Device::Cpu).unwrap();
        assert_eq!(weights(&reopened.gan.d_vars), weights(&trainer.gan.d_vars));
        (
            stats,
            weights(&trainer.gan.g_vars),
            weights(&trainer.gan.d_vars),
        )
    };
    let a = run();
    assert!(a
        .0
        .iter()
        .all(|s| s.d_loss.is_finite() && s.g_loss.is_finite()));
    assert_eq!(a, run());
}

#[test]
fn nonsense_packing_and_standard_deviation_settings_are_refused() {
    let fast = TrainConfig::preset("dcgan-fast").unwrap();
    let conditional = TrainConfig::preset("cgan-dcgan-fast").unwrap();
    let course = TrainConfig::preset("dcgan-course").unwrap();
    let wgan = TrainConfig::preset("dcgan-wgan-gp").unwrap();
    for (config, key, value, expected) in [
        (&fast, "model.d_pack", "0", "between 1"),
        (&fast, "model.d_pack", "17", "between 1"),
        (&fast, "model.d_pack", "3", "divide batch_size"),
        (&conditional, "model.d_pack", "2", "unconditional"),
        (&course, "model.d_minibatch_std", "true", "d_linear_head"),
        (&wgan, "model.d_pack", "2", "wgan-gp"),
    ] {
        let message = config.with(key, value).unwrap_err().to_string();
        assert!(
            message.contains(expected) && message.contains(key),
            "{key} = {value}: {message}"
        );
    }
}
