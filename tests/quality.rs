//! What makes the digits better: the moving average of G's weights, the hinge and
//! Wasserstein losses, spectral normalisation, and the time budget.

mod common;
use common::{quiet_trainer, small_mnist, tiny_mlp, weights};

use std::time::Duration;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_lib::checkpoint::TensorFile;
use gan_lib::config::{Loss, ModelConfig, TrainConfig, PRESETS};
use gan_lib::data::PixelRange;
use gan_lib::ema::Ema;
use gan_lib::models::{gradient_penalty, Discriminator, Generator};
use gan_lib::rng;
use gan_lib::train::{Gan, Trainer};

/// A small MLP GAN with `loss`, spectral normalisation in D and the moving average of G.
fn tiny_config(loss: &str) -> TrainConfig {
    tiny_mlp()
        .with("model.d_spectral_norm", "true")
        .unwrap()
        .with("loss", loss)
        .unwrap()
        .with("ema_decay", "0.9")
        .unwrap()
}

#[test]
fn ema_follows_its_formula_with_warm_up() {
    let config = tiny_config("hinge");
    let gan = Gan::new(&config, &Device::Cpu, &mut rng::seeded(1)).unwrap();
    let mut ema = Ema::new(&config, &gan.g_vars, &Device::Cpu).unwrap();
    assert_eq!(weights(&ema.vars), weights(&gan.g_vars), "starts as a copy");
    let name = "out.bias";
    let read = |vars: &VarMap| {
        weights(vars)
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
    };
    let before = read(&ema.vars);
    // Move the live weights, then average: d = min(0.9, 1/10) at the first update.
    let live = gan.g_vars.data().lock().unwrap()[name].clone();
    live.set(&(live.as_tensor() + 1.0).unwrap()).unwrap();
    assert!((ema.current_decay() - 0.1).abs() < 1e-12);
    ema.update(&gan.g_vars).unwrap();
    let after = read(&ema.vars);
    for (b, a) in before.iter().zip(&after) {
        assert!((a - (b + 0.9)).abs() < 1e-5, "{b} -> {a}");
    }
    // The warm-up ends at the configured decay.
    ema.updates = 10_000;
    assert_eq!(ema.current_decay(), 0.9);
}

/// Hinge loss with spectral normalisation and WGAN-GP, each with the moving average: a run
/// stopped after one epoch and resumed ends with the same G, D, average and power-iteration
/// vectors as a run that went straight through.
#[test]
fn resume_is_exact_with_ema_spectral_norm_and_each_loss() {
    let data = small_mnist();
    for loss in ["hinge", "wgan-gp"] {
        let config = tiny_config(loss).with("d_steps", "2").unwrap();
        let straight_dir = tempfile::tempdir().unwrap();
        let mut straight = quiet_trainer(&config, straight_dir.path());
        straight.train(&data).unwrap();

        let resumed_dir = tempfile::tempdir().unwrap();
        quiet_trainer(&config, resumed_dir.path())
            .train_epoch(&data)
            .unwrap();
        let mut resumed = Trainer::resume(resumed_dir.path(), None, &Device::Cpu).unwrap();
        resumed.train(&data).unwrap();

        let d = weights(&straight.gan.d_vars);
        assert!(
            d.iter().any(|(n, _)| n.ends_with("sn_u")),
            "{loss}: no sn_u"
        );
        assert_eq!(d, weights(&resumed.gan.d_vars), "{loss}");
        assert_eq!(weights(&straight.gan.g_vars), weights(&resumed.gan.g_vars));
        let (a, b) = (
            straight.ema.as_ref().unwrap(),
            resumed.ema.as_ref().unwrap(),
        );
        assert_eq!(
            weights(&a.vars),
            weights(&b.vars),
            "{loss}: averages differ"
        );
        assert_eq!(a.updates, b.updates);
        assert_ne!(
            weights(&a.vars),
            weights(&straight.gan.g_vars),
            "{loss}: no averaging"
        );

        // The saved generator is the average, and so is what a checkpoint draws with.
        for file in ["generator.safetensors", "checkpoint.safetensors"] {
            let (loaded, _) =
                Generator::load(straight_dir.path().join(file), &Device::Cpu).unwrap();
            let z = straight.gan.noise(3, &mut rng::seeded(2)).unwrap();
            let pixels = |g: &gan_lib::models::Generator| {
                g.generate(&z, None)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            assert_eq!(pixels(&loaded), pixels(&a.generator), "{loss}: {file}");
        }
    }
}

/// WGAN-GP's penalty needs the gradient of D with respect to its input, differentiated again
/// with respect to D's weights: both are checked against central differences, in f64.
#[test]
fn gradient_penalty_and_its_weight_gradient_match_finite_differences() {
    check_penalty_gradients(&mlp_critic(false), false);
}

/// The same for a conditional (projection) discriminator, judging each image as its label.
#[test]
fn conditional_gradient_penalty_matches_finite_differences() {
    check_penalty_gradients(&mlp_critic(true), true);
}

/// A convolutional critic: back through each convolution by the transposed convolution
/// (the second one's stride skips a row and a column, which come back as output padding),
/// then the linear head and the label projection; and one whose last convolution gives the
/// logit itself.
#[test]
fn convolutional_gradient_penalty_matches_finite_differences() {
    for (config, conditional) in conv_critics() {
        check_penalty_gradients(&config, conditional);
    }
}

/// The two convolutional critics the penalty tests use, each with whether it is conditional:
/// one with a linear head and the label projection, whose second convolution needs output
/// padding on the way back; one whose last convolution gives the logit itself.
fn conv_critics() -> [(TrainConfig, bool); 2] {
    let head = "[{ channels = 3, kernel = 4, stride = 2, padding = 1 }, \
                { channels = 4, kernel = 3, stride = 2 }]";
    let no_head = "[{ channels = 3, kernel = 4, stride = 2, padding = 1 }, \
                   { channels = 2, kernel = 4, stride = 2, padding = 1 }, \
                   { channels = 1, kernel = 7, stride = 1 }]";
    let conditional = conv_critic(head, true)
        .with("model.conditional", "true")
        .unwrap();
    [(conditional, true), (conv_critic(no_head, false), false)]
}

fn mlp_critic(conditional: bool) -> TrainConfig {
    TrainConfig::preset("quick-mlp")
        .unwrap()
        .with("model.d_hidden", "[6, 5]")
        .unwrap()
        .with("model.d_spectral_norm", "true")
        .unwrap()
        .with("model.conditional", &conditional.to_string())
        .unwrap()
}

fn conv_critic(d_layers: &str, linear_head: bool) -> TrainConfig {
    TrainConfig::preset("dcgan-course")
        .unwrap()
        .with("model.d_linear_head", &linear_head.to_string())
        .unwrap()
        .with("model.d_layers", d_layers)
        .unwrap()
        .with("model.d_spectral_norm", "true")
        .unwrap()
        .with("loss", "wgan-gp")
        .unwrap()
}

/// A critic of `config` in `dtype` with seeded weights (the same numbers in every dtype), and
/// three seeded images.
fn seeded_critic(config: &TrainConfig, dtype: DType) -> (VarMap, Discriminator, Tensor) {
    let device = Device::Cpu;
    let vars = VarMap::new();
    let d = Discriminator::new(
        &config.model,
        VarBuilder::from_varmap(&vars, dtype, &device),
    )
    .unwrap();
    // init_weights draws f32; power iteration makes sn_u a unit vector.
    let mut draws = rng::seeded(4);
    let mut named: Vec<(String, Var)> = vars.data().lock().unwrap().clone().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, var) in &named {
        let value = rng::randn(&mut draws, var.shape(), 0.0, 0.3, &device).unwrap();
        var.set(&value.to_dtype(dtype).unwrap()).unwrap();
    }
    d.update_spectral_norm().unwrap();
    let images = rng::randn(&mut rng::seeded(5), (3, 1, 28, 28), 0.0, 1.0, &device)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    (vars, d, images)
}

/// In f32 on the CPU a convolutional critic's input gradient goes back through gan_lib's
/// fused transposed convolution, in f64 through candle's (checked against finite differences
/// above): the penalty and its gradient for every weight agree.
#[test]
fn fused_convolutional_penalty_matches_the_reference() {
    let digits = Tensor::new(&[3u32, 7, 0], &Device::Cpu).unwrap();
    for (config, conditional) in conv_critics() {
        let labels = conditional.then_some(&digits);
        let (vars64, d64, images64) = seeded_critic(&config, DType::F64);
        let (vars32, d32, images32) = seeded_critic(&config, DType::F32);
        let penalty64 = gradient_penalty(&d64, &images64, labels).unwrap();
        let penalty32 = gradient_penalty(&d32, &images32, labels).unwrap();
        let (p64, p32) = (
            penalty64.to_scalar::<f64>().unwrap(),
            penalty32.to_scalar::<f32>().unwrap() as f64,
        );
        assert!(
            (p64 - p32).abs() < 1e-4 * p64.abs().max(1.0),
            "penalty {p64} vs {p32}"
        );
        let (grads64, grads32) = (penalty64.backward().unwrap(), penalty32.backward().unwrap());
        let data32 = vars32.data().lock().unwrap();
        for (name, var64) in vars64.data().lock().unwrap().iter() {
            let reference = grads64.get(var64.as_tensor());
            let fused = grads32.get(data32[name].as_tensor());
            let values = |g: Option<&Tensor>| -> Vec<f64> {
                g.map(|g| {
                    g.to_dtype(DType::F64)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .unwrap_or_default()
            };
            let (reference, fused) = (values(reference), values(fused));
            assert_eq!(
                reference.len(),
                fused.len(),
                "{name}: one path has no gradient"
            );
            let scale = reference.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            for (a, b) in reference.iter().zip(&fused) {
                assert!(
                    (a - b).abs() < 1e-3 * scale,
                    "{name}: {a} (f64, candle) vs {b} (f32, fused)"
                );
            }
        }
    }
}

fn check_penalty_gradients(config: &TrainConfig, conditional: bool) {
    let device = Device::Cpu;
    let (vars, d, images) = seeded_critic(config, DType::F64);
    let digits = Tensor::new(&[3u32, 7, 0], &device).unwrap();
    let labels = conditional.then_some(&digits);
    let logits_sum = |x: &Tensor| -> f64 {
        d.forward(x, labels, &mut gan_lib::nn::Pass::eval())
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };

    // (1) The input gradient against differences of the logits, at a few pixels.
    let gradient = d
        .input_gradient(&images, labels)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let flat = images.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let eps = 1e-6;
    for index in [0, 300, 784 + 411, 2 * 784 + 783] {
        let shifted = |delta: f64| {
            let mut v = flat.clone();
            v[index] += delta;
            Tensor::from_vec(v, (3, 1, 28, 28), &device).unwrap()
        };
        let numeric = (logits_sum(&shifted(eps)) - logits_sum(&shifted(-eps))) / (2.0 * eps);
        assert!(
            (numeric - gradient[index]).abs() < 1e-6 * (1.0 + numeric.abs()),
            "pixel {index}: numeric {numeric}, graph {}",
            gradient[index]
        );
    }

    // (2) The penalty's gradient with respect to each weight matrix, against differences.
    let penalty = gradient_penalty(&d, &images, labels).unwrap();
    let grads = penalty.backward().unwrap();
    let mut checked = 0;
    let (mut names, first) = match &config.model {
        ModelConfig::Mlp(_) => (
            vec![
                "hidden.0.linear.weight",
                "hidden.1.linear.weight",
                "out.weight",
                "hidden.1.linear.bias",
            ],
            "hidden.0.linear.weight",
        ),
        ModelConfig::Dcgan(d) => {
            let mut names = vec!["layers.0.conv.weight", "layers.1.conv.weight"];
            if d.d_linear_head {
                names.push("out.weight");
            } else {
                names.push("layers.2.conv.weight");
            }
            (names, "layers.0.conv.weight")
        }
    };
    if conditional {
        names.push("label_projection.weight");
    }
    for name in names.iter().copied() {
        let var: Var = vars.data().lock().unwrap()[name].clone();
        let analytic = grads.get(var.as_tensor());
        let original = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for index in [0, original.len() / 2, original.len() - 1] {
            let at = |delta: f64| -> f64 {
                let mut v = original.clone();
                v[index] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &device).unwrap())
                    .unwrap();
                let p = gradient_penalty(&d, &images, labels)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                var.set(&Tensor::from_vec(original.clone(), var.shape(), &device).unwrap())
                    .unwrap();
                p
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let analytic = analytic
                .map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap()[index])
                .unwrap_or(0.0);
            assert!(
                (numeric - analytic).abs() < 1e-5 * (1.0 + numeric.abs()),
                "{name}[{index}]: numeric {numeric}, autograd {analytic}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * names.len());
    // (A bias changes the input gradient only by moving a unit across its kink, so the
    // penalty's bias gradient is zero almost everywhere; the weights' are not.)
    let w = grads
        .get(vars.data().lock().unwrap()[first].as_tensor())
        .unwrap();
    assert!(
        w.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            > 0.0
    );
}

#[test]
fn wgan_gp_refuses_what_it_cannot_penalise() {
    let base = tiny_config("wgan-gp");
    for (key, value) in [("model.d_dropout", "0.3"), ("model.d_batch_norm", "true")] {
        let error = base.with(key, value).unwrap_err().to_string();
        assert!(error.contains("wgan-gp"), "{key}: {error}");
    }
    // dcgan-course's critic has BatchNorm.
    let dcgan = TrainConfig::preset("dcgan-course")
        .unwrap()
        .with("loss", "wgan-gp");
    assert!(dcgan.unwrap_err().to_string().contains("BatchNorm"));
    for (key, value) in [
        ("ema_decay", "1.0"),
        ("ema_decay", "-0.1"),
        ("gp_weight", "-1"),
        ("lr_decay_epochs", "-1"),
    ] {
        let error = base.with(key, value).unwrap_err().to_string();
        assert!(error.contains(key), "{key}={value}: {error}");
    }
}

/// A zero time budget still trains the first epoch, then stops and leaves a complete run that
/// resumes.
#[test]
fn time_budget_stops_after_an_epoch_and_leaves_a_loadable_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config("hinge").with("epochs", "50").unwrap();
    let mut trainer = quiet_trainer(&config, dir.path());
    trainer.time_budget = Some(Duration::ZERO);
    let reports = trainer.train(&small_mnist()).unwrap();
    assert_eq!((reports.len(), trainer.epoch), (1, 1));
    for file in [
        "generator.safetensors",
        "discriminator.safetensors",
        "images/epoch_0001.png",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let checkpoint =
        TensorFile::read(dir.path().join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(checkpoint.config().unwrap().epochs, 50);
    let resumed = Trainer::resume(dir.path(), None, &Device::Cpu).unwrap();
    assert_eq!(resumed.epoch, 1);
}

/// Every preset, the new ones included, builds, trains one step on a few digits and
/// summarises both networks.
#[test]
fn every_preset_trains_a_step_and_summarises() {
    let data = small_mnist();
    for (name, _) in PRESETS {
        let config = TrainConfig::preset(name)
            .unwrap()
            .with("batch_size", "8")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = quiet_trainer(&config, dir.path());
        let eight = data.clone().limit(8);
        let batch = eight
            .images_tensor(PixelRange::Symmetric, &Device::Cpu)
            .unwrap();
        let labels = eight.labels_tensor(&Device::Cpu).unwrap();
        let labels = config.model.conditional().then_some(&labels);
        let stats = trainer.train_step(&batch, labels).unwrap();
        assert!(
            stats.d_loss.is_finite() && stats.g_loss.is_finite(),
            "{name}"
        );
        let summary = trainer.gan.discriminator.summary(&Device::Cpu).unwrap();
        assert!(summary.total_params() > 0, "{name}");
        assert_eq!(config.loss == Loss::WganGp, name.contains("wgan"), "{name}");
    }
}

/// Spectral normalisation in a convolutional discriminator: its σ-normalised kernels train
/// with the hinge loss, and every convolution keeps its own power-iteration vector.
#[test]
fn dcgan_discriminator_trains_with_spectral_norm_and_hinge() {
    let config = TrainConfig::preset("dcgan-course")
        .unwrap()
        .with("model.d_spectral_norm", "true")
        .unwrap()
        .with("loss", "hinge")
        .unwrap()
        .with("batch_size", "8")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = quiet_trainer(&config, dir.path());
    let before = weights(&trainer.gan.d_vars);
    let u_count = before.iter().filter(|(n, _)| n.ends_with("sn_u")).count();
    assert_eq!(u_count, 3, "one u per convolution");
    let batch = small_mnist()
        .limit(8)
        .images_tensor(PixelRange::Symmetric, &Device::Cpu)
        .unwrap();
    let stats = trainer.train_step(&batch, None).unwrap();
    assert!(stats.d_loss.is_finite() && stats.g_loss.is_finite());
    let after = weights(&trainer.gan.d_vars);
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        // (A power-iteration vector of one row is ±1 and stays so.)
        if !name.contains("running_") && a.len() > 1 {
            assert_ne!(a, b, "{name} did not move");
        }
    }
}
