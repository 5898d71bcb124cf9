//! Models, presets, the trainer, checkpoints and resume.

mod common;
use common::{quiet_trainer, small_mnist, tiny_mlp, weights};

use candle_core::{Device, Tensor};
use gan_lib::checkpoint::{self, CheckpointError, TensorFile};
use gan_lib::config::{ConfigError, TrainConfig, PRESETS};

use gan_lib::models::{Discriminator, Generator};
use gan_lib::nn::{bce_with_logits, count_params, Pass};
use gan_lib::rng;
use gan_lib::train::{BudgetClock, Gan, Opened, Start, TrainError, Trainer};

/// Trainable parameters (G, D) of each preset, as the source designs count them.
/// dcgan-course: the course's Generator(z_dim=64, hidden_dim=64) and Discriminator(hidden_dim=16).
/// dcgan-tf: Keras reports 2,330,944 for G including BatchNorm's 25,472 moving statistics.
/// dcgan-wgan-gp is dcgan-course without the critic's BatchNorm (96 parameters).
/// cgan-mlp and cgan-dcgan add the label's 10 inputs to G's first layer and D's projection
/// (10 x the features entering D's head) to their unconditional designs.
/// dcgan-fast: G dense 64→7x7x64 (+ BatchNorm over its 3,136 values), ConvTranspose 64→32 and
/// 32→1 (4x4, + BatchNorm 32); D Conv 1→16, 16→32 and 32→64 (4x4) and a linear head 576→1;
/// cgan-dcgan-fast (D without the third convolution, head 1,568→1) adds the label's 10 inputs
/// to G's dense layer and D's 10 x 1,568 projection.
const PARAMS: [(&str, usize, usize); 16] = [
    ("cgan-fast", 551_952 + 2_560, 533_505 + 2_560),
    ("fast-mlp", 551_952, 533_505),
    ("quick-mlp", 551_952, 533_505),
    ("fc-gan-64", 218_128, 100_609),
    ("dcgan-course", 747_841, 9_105),
    ("mlp-smoothing", 1_497_104, 566_273),
    ("dcgan-tf", 2_305_472, 212_865),
    ("fc-gan-100", 1_486_352, 1_460_225),
    ("mlp-hinge-sn", 1_497_104, 533_505),
    ("mlp-wgan-gp", 1_497_104, 533_505),
    ("dcgan-wgan-gp", 747_841, 9_105 - 96),
    ("wide-mlp", 1_497_104, 533_505),
    ("cgan-mlp", 1_497_104 + 2_560, 533_505 + 2_560),
    ("cgan-dcgan", 747_841 + 23_040, 8_592 + 801 + 8_000),
    (
        "cgan-dcgan-fast",
        (74 + 1) * 3_136 + 2 * 3_136 + 64 * 32 * 16 + 32 + 2 * 32 + 32 * 16 + 1,
        16 * 16 + 16 + 16 * 32 * 16 + 32 + 1_568 + 1 + 10 * 1_568,
    ),
    (
        "dcgan-fast",
        (64 + 1) * 3_136 + 2 * 3_136 + 64 * 32 * 16 + 32 + 2 * 32 + 32 * 16 + 1,
        16 * 16 + 16 + 16 * 32 * 16 + 32 + 32 * 64 * 16 + 64 + 576 + 1,
    ),
];

/// The default preset made small, with dropout in D.
fn tiny_config() -> TrainConfig {
    tiny_mlp().with("model.d_dropout", "0.2").unwrap()
}

#[test]
fn every_preset_builds_with_the_source_parameter_counts() {
    assert_eq!(PARAMS.len(), PRESETS.len());
    for (name, g_params, d_params) in PARAMS {
        let config = TrainConfig::preset(name).unwrap();
        let gan = Gan::new(&config, &Device::Cpu, &mut rng::seeded(0)).unwrap();
        assert_eq!(
            (count_params(&gan.g_vars), count_params(&gan.d_vars)),
            (g_params, d_params),
            "{name}"
        );
        let (g_summary, d_summary) = (
            gan.generator.summary(&Device::Cpu).unwrap(),
            gan.discriminator.summary(&Device::Cpu).unwrap(),
        );
        assert_eq!(
            (g_summary.total_params(), d_summary.total_params()),
            (g_params, d_params),
            "{name}: summary disagrees"
        );
        let z = gan.noise(3, &mut rng::seeded(1)).unwrap();
        let digits = Tensor::new(&[1u32, 4, 9], &Device::Cpu).unwrap();
        let labels = config.model.conditional().then_some(&digits);
        let images = gan
            .generator
            .forward(&z, labels, &mut Pass::eval())
            .unwrap();
        assert_eq!(images.dims(), &[3, 1, 28, 28], "{name}");
        assert_eq!(
            gan.discriminator
                .forward(&images, labels, &mut Pass::eval())
                .unwrap()
                .dims(),
            &[3],
            "{name}"
        );
        // The config survives a TOML round trip.
        assert_eq!(
            TrainConfig::from_toml(&config.to_toml(), name).unwrap(),
            config
        );
    }
}

/// G's step runs D frozen: G's gradients are D's, and D's weights get none, but the frozen D
/// reads the live weights and updates the shared BatchNorm statistics.
#[test]
fn frozen_discriminator_gives_g_the_same_gradients_and_d_none() {
    // An MLP, a DCGAN with BatchNorm in D, and one with a dense head (every D layer kind).
    for preset in ["quick-mlp", "dcgan-course", "dcgan-tf"] {
        let config = TrainConfig::preset(preset).unwrap();
        let gan = Gan::new(&config, &Device::Cpu, &mut rng::seeded(1)).unwrap();
        let frozen = Discriminator::frozen(&config.model, &gan.d_vars, &Device::Cpu).unwrap();
        let z = gan.noise(6, &mut rng::seeded(2)).unwrap();
        let fake = gan
            .generator
            .forward(&z, None, &mut Pass::train(&mut rng::seeded(3)))
            .unwrap();
        let logits = |d: &Discriminator| {
            // The same dropout masks for both.
            d.forward(&fake, None, &mut Pass::train(&mut rng::seeded(4)))
                .unwrap()
        };
        let running = |name: &str| {
            let vars = gan.d_vars.data().lock().unwrap();
            vars.get(name)
                .map(|v| v.as_tensor().to_vec1::<f32>().unwrap())
        };
        let stat = "layers.0.norm.running_mean";
        let before = running(stat);
        let (live, cold) = (logits(&gan.discriminator), logits(&frozen));
        assert_eq!(
            live.to_vec1::<f32>().unwrap(),
            cold.to_vec1::<f32>().unwrap(),
            "{preset}"
        );
        if preset == "dcgan-course" {
            // Two passes in training mode, both on the shared statistics.
            let after = running(stat).unwrap();
            let once = {
                let g = Gan::new(&config, &Device::Cpu, &mut rng::seeded(1)).unwrap();
                g.discriminator
                    .forward(&fake.detach(), None, &mut Pass::train(&mut rng::seeded(4)))
                    .unwrap();
                let vars = g.d_vars.data().lock().unwrap();
                vars[stat].as_tensor().to_vec1::<f32>().unwrap()
            };
            assert_ne!(before.unwrap(), once, "{preset}: the statistics moved");
            assert_ne!(after, once, "{preset}: the frozen pass updated them too");
        }
        let g_live = bce_with_logits(&live, 1.0).unwrap().backward().unwrap();
        let g_cold = bce_with_logits(&cold, 1.0).unwrap().backward().unwrap();
        let trainable = |vars: &candle_nn::VarMap| -> Vec<candle_core::Var> {
            let vars = vars.data().lock().unwrap();
            let names = vars.keys().filter(|n| !n.contains("running_"));
            names.map(|n| vars[n].clone()).collect()
        };
        for var in trainable(&gan.g_vars) {
            let (a, b) = (g_live.get(&var), g_cold.get(&var));
            let (a, b) = (
                a.expect("G gradient"),
                b.expect("G gradient through frozen D"),
            );
            let diff = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
            let diff = diff.max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(diff <= 1e-6, "{preset}: G gradient differs by {diff}");
        }
        for var in gan.d_vars.all_vars() {
            assert!(g_cold.get(&var).is_none(), "{preset}: D got a gradient");
        }
        assert!(trainable(&gan.d_vars)
            .iter()
            .all(|v| g_live.get(v).is_some()));
        // The frozen D reads the weights as they are now, after an in-place update.
        for var in gan.d_vars.all_vars() {
            var.set(&(var.as_tensor() * 0.5).unwrap()).unwrap();
        }
        assert_eq!(
            logits(&gan.discriminator).to_vec1::<f32>().unwrap(),
            logits(&frozen).to_vec1::<f32>().unwrap(),
            "{preset} after an update"
        );
    }
}

#[test]
fn dcgan_init_follows_normal_002() {
    let gan = Gan::new(
        &TrainConfig::preset("dcgan-course").unwrap(),
        &Device::Cpu,
        &mut rng::seeded(3),
    )
    .unwrap();
    let data = gan.g_vars.data().lock().unwrap();
    let w = data["layers.1.conv.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
    assert!(
        mean.abs() < 0.001 && (std - 0.02).abs() < 0.001,
        "mean {mean} std {std}"
    );
    let gamma = data["layers.1.norm.weight"].to_vec1::<f32>().unwrap();
    assert!(gamma.iter().all(|g| (g - 1.0).abs() < 0.1) && gamma.iter().any(|g| *g != 1.0));
}

#[test]
fn training_steps_on_a_fixed_batch_lower_the_discriminator_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = quiet_trainer(&tiny_config(), dir.path());
    let real = small_mnist()
        .limit(32)
        .images_tensor(gan_lib::data::PixelRange::Symmetric, &Device::Cpu)
        .unwrap();
    let first = trainer.train_step(&real, None).unwrap();
    let mut last = first;
    for _ in 0..30 {
        last = trainer.train_step(&real, None).unwrap();
    }
    assert!(
        last.d_loss < first.d_loss * 0.8,
        "D loss {} -> {}",
        first.d_loss,
        last.d_loss
    );
    assert!(
        last.d_real > first.d_real,
        "D(x) {} -> {}",
        first.d_real,
        last.d_real
    );
}

#[test]
fn same_seed_gives_bit_identical_runs_and_another_seed_does_not() {
    let data = small_mnist();
    let run = |config: &TrainConfig| {
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = quiet_trainer(config, dir.path());
        trainer.train_epoch(&data).unwrap();
        (
            trainer
                .history
                .iter()
                .map(|p| (p.d_loss, p.g_loss))
                .collect::<Vec<_>>(),
            weights(&trainer.gan.g_vars),
            weights(&trainer.gan.d_vars),
        )
    };
    let config = tiny_config();
    let a = run(&config);
    assert_eq!(a.0.len(), 8);
    assert_eq!(a, run(&config));
    let b = run(&config.with("seed", "7").unwrap());
    assert_ne!(a.0, b.0);
    assert_ne!(a.1, b.1);
}

/// `lr_decay_epochs`: the rates hold until the last epochs, then fall step by step towards 0.
/// A run of 2 epochs of 8 steps decaying over the last epoch follows the constant-rate run for
/// 9 steps (the decay's first step still has the full rate) and leaves it in the 10th.
#[test]
fn learning_rates_decay_over_the_last_epochs_step_by_step() {
    let config = tiny_config();
    let decaying = config.with("lr_decay_epochs", "1").unwrap();
    let factors: Vec<f64> = [0.0, 1.0, 1.5, 1.875, 2.0]
        .iter()
        .map(|&progress| decaying.learning_rate_factor(progress))
        .collect();
    assert_eq!(factors, [1.0, 1.0, 0.5, 0.125, 0.0]);
    assert_eq!(config.learning_rate_factor(1.9), 1.0);
    // Longer than the run (a preset's decay under a shorter --epochs): over the whole run.
    let whole = config.with("lr_decay_epochs", "5").unwrap();
    let factors: Vec<f64> = [0.0, 1.0, 2.0]
        .iter()
        .map(|&progress| whole.learning_rate_factor(progress))
        .collect();
    assert_eq!(factors, [1.0, 0.5, 0.0]);
    // Off by default, and then absent from the saved config.
    assert_eq!(config.lr_decay_epochs, 0);
    assert!(!config.to_toml().contains("lr_decay_epochs"));
    assert!(decaying.to_toml().contains("lr_decay_epochs = 1"));

    let data = small_mnist();
    let losses = |config: &TrainConfig| {
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = quiet_trainer(config, dir.path());
        trainer.train(&data).unwrap();
        let losses: Vec<_> = trainer
            .history
            .iter()
            .map(|p| (p.d_loss, p.g_loss))
            .collect();
        (losses, weights(&trainer.gan.g_vars))
    };
    let (constant, constant_g) = losses(&config);
    let (decayed, decayed_g) = losses(&decaying);
    assert_eq!(constant.len(), 16);
    // Step 9 (the 10th) judges real digits with the D of full-rate updates, then updates D at
    // 7/8 of the rate, and G's loss already sees that D.
    assert_eq!(constant[..9], decayed[..9]);
    assert_eq!(constant[9].0, decayed[9].0);
    assert_ne!(constant[9].1, decayed[9].1);
    assert_ne!(constant_g, decayed_g);
}

#[test]
fn resume_gives_the_same_weights_as_an_uninterrupted_run() {
    let data = small_mnist();
    let config = tiny_config()
        .with("instance_noise", "0.05")
        .unwrap()
        .with("rotation_degrees", "10")
        .unwrap()
        .with("lr_decay_epochs", "2")
        .unwrap();
    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = quiet_trainer(&config, straight_dir.path());
    straight.train(&data).unwrap();

    let resumed_dir = tempfile::tempdir().unwrap();
    let mut first_half = quiet_trainer(&config, resumed_dir.path());
    first_half.train_epoch(&data).unwrap();
    drop(first_half);
    let mut resumed = Trainer::resume(resumed_dir.path(), None, &Device::Cpu).unwrap();
    assert_eq!((resumed.epoch, resumed.step), (1, 8));
    resumed.train(&data).unwrap();

    assert_eq!(weights(&resumed.gan.g_vars), weights(&straight.gan.g_vars));
    assert_eq!(weights(&resumed.gan.d_vars), weights(&straight.gan.d_vars));
    assert_eq!(resumed.history, straight.history);
    let csv = std::fs::read_to_string(resumed_dir.path().join("losses.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 16);
}

/// What a notebook's training cell does whenever it is run: the same call starts the run, picks
/// it up after the last finished epoch (the kernel lost its variables), trains longer when
/// `epochs` is raised, and starts afresh after a finished run or a changed config, keeping the
/// earlier run in `<folder>.previous`.
#[test]
fn open_continues_an_unfinished_run_and_restarts_a_finished_or_changed_one() {
    let (data, config) = (small_mnist(), tiny_config().with("epochs", "2").unwrap());
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("run");
    let kept = parent.path().join("run.previous");
    let open =
        |config: &TrainConfig, start| Trainer::open(config, &dir, start, &Device::Cpu).unwrap();

    let (mut first, opened) = open(&config, Start::Continue);
    assert_eq!((opened, first.epoch), (Opened::Started, 0));
    first.train_epoch(&data).unwrap();
    let after_one = weights(&first.gan.g_vars);
    drop(first);

    // Interrupted after epoch 1 of 2: continued, with its weights.
    let (mut again, opened) = open(&config, Start::Continue);
    assert_eq!(opened, Opened::Resumed { after_epoch: 1 });
    assert_eq!((again.epoch, again.step), (1, 8));
    assert_eq!(weights(&again.gan.g_vars), after_one);
    again.train_epoch(&data).unwrap();
    let finished = weights(&again.gan.g_vars);
    drop(again);

    // Finished: run again, the cell trains a new run from epoch 0; the finished one is kept.
    let (rehearsal, opened) = open(&config, Start::Continue);
    match &opened {
        Opened::Restarted { kept: at, reason } => {
            assert_eq!(at, &kept);
            assert!(reason.contains("finished its 2 epochs"), "{reason}");
        }
        other => panic!("a finished run was not restarted: {other:?}"),
    }
    assert_eq!((rehearsal.epoch, rehearsal.step), (0, 0));
    assert_ne!(weights(&rehearsal.gan.g_vars), finished);
    let (kept_run, _) = Trainer::open(
        &config.clone().with("epochs", "3").unwrap(),
        &kept,
        Start::Continue,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        weights(&kept_run.gan.g_vars),
        finished,
        "the finished run was not kept whole"
    );
    drop((rehearsal, kept_run));

    // Raising `epochs` of an unfinished run trains it longer; the description changes nothing.
    let mut longer = config.clone().with("epochs", "9").unwrap();
    longer.description = "the same recipe, described anew".into();
    open(&config, Start::Continue).0.train_epoch(&data).unwrap();
    let (longer, opened) = open(&longer, Start::Continue);
    assert_eq!(opened, Opened::Resumed { after_epoch: 1 });
    assert_eq!(longer.gan.config.epochs, 9);
    drop(longer);

    // An edited config: no error, a new run of the new config; the old one kept.
    let other = config.clone().with("batch_size", "16").unwrap();
    let (changed, opened) = open(&other, Start::Continue);
    let Opened::Restarted { reason, .. } = &opened else {
        panic!("another config did not restart: {opened:?}")
    };
    assert!(reason.contains("batch_size = 16"), "{reason}");
    assert!(opened.to_string().contains("run.previous"), "{opened}");
    assert_eq!((changed.epoch, changed.gan.config.batch_size), (0, 16));
    let written = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(written.contains("batch_size = 16"), "{written}");
    let kept_config = std::fs::read_to_string(kept.join("config.toml")).unwrap();
    assert!(kept_config.contains("batch_size = 32"), "{kept_config}");
    drop(changed);

    // Fresh: even an unfinished run of the same config is set aside.
    open(&other, Start::Continue).0.train_epoch(&data).unwrap();
    let (fresh, opened) = open(&other, Start::Fresh);
    assert!(matches!(opened, Opened::Restarted { .. }), "{opened:?}");
    assert_eq!(fresh.epoch, 0);
}

/// An edited config.toml would be overwritten by a resume: refused, naming the change.
#[test]
fn resume_refuses_a_config_file_edited_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    quiet_trainer(&tiny_config(), dir.path())
        .train_epoch(&small_mnist())
        .unwrap();
    let path = dir.path().join("config.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let edited = original.replace("batch_size = 32", "batch_size = 16");
    assert_ne!(edited, original);
    std::fs::write(&path, &edited).unwrap();
    let error = Trainer::resume(dir.path(), None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("batch_size = 16"), "{error}");
    assert!(error.contains("config.toml differs"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    // More epochs are no edit; the original resumes.
    let longer = original.replace("epochs = 2", "epochs = 5");
    assert_ne!(longer, original);
    std::fs::write(&path, longer).unwrap();
    assert!(Trainer::resume(dir.path(), None, &Device::Cpu).is_ok());
}

#[test]
fn a_run_writes_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = quiet_trainer(
        &tiny_config().with("sample_every", "2").unwrap(),
        dir.path(),
    );
    trainer.train(&small_mnist()).unwrap();
    for file in [
        "config.toml",
        "losses.csv",
        "losses.png",
        "checkpoint.safetensors",
        "generator.safetensors",
        "discriminator.safetensors",
        "images/epoch_0002.png",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    assert!(
        !dir.path().join("images/epoch_0001.png").exists(),
        "sample_every = 2 was ignored"
    );
    let grid = image::open(dir.path().join("images/epoch_0002.png")).unwrap();
    assert_eq!(
        (grid.width(), grid.height()),
        (2 * (8 * 30 + 2), 2 * (8 * 30 + 2))
    );
    assert_eq!(
        TrainConfig::from_file(dir.path().join("config.toml")).unwrap(),
        trainer.gan.config
    );
}

#[test]
fn saved_generator_reloads_and_generates_the_same_digits() {
    let dir = tempfile::tempdir().unwrap();
    for preset in ["dcgan-course", "quick-mlp"] {
        let config = TrainConfig::preset(preset).unwrap();
        let gan = Gan::new(&config, &Device::Cpu, &mut rng::seeded(5)).unwrap();
        let path = dir.path().join(format!("{preset}.safetensors"));
        checkpoint::save_weights(&path, &gan.g_vars, &config).unwrap();
        let (loaded, loaded_config) = Generator::load(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded_config, config);
        let z = gan.noise(4, &mut rng::seeded(9)).unwrap();
        let pixels = |g: &Generator| {
            g.forward(&z, None, &mut Pass::eval())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(pixels(&gan.generator), pixels(&loaded), "{preset}");
    }
}

#[test]
fn bad_checkpoints_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.safetensors");
    let error = Generator::load(&missing, &Device::Cpu).err().unwrap();
    assert!(
        matches!(error, CheckpointError::Io { .. })
            && error.to_string().contains("nothing.safetensors"),
        "{error}"
    );

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let error = Generator::load(&garbage, &Device::Cpu).err().unwrap();
    assert!(
        matches!(error, CheckpointError::Format { .. })
            && error.to_string().contains("garbage.safetensors"),
        "{error}"
    );

    // Weights of one architecture under the config of another: the shape error names the tensor.
    let small = Gan::new(&tiny_config(), &Device::Cpu, &mut rng::seeded(0)).unwrap();
    let wrong = dir.path().join("wrong.safetensors");
    checkpoint::save_weights(
        &wrong,
        &small.g_vars,
        &TrainConfig::preset("quick-mlp").unwrap(),
    )
    .unwrap();
    let error = Generator::load(&wrong, &Device::Cpu).err().unwrap();
    match &error {
        CheckpointError::Shape {
            tensor,
            expected,
            found,
            ..
        } => {
            assert_eq!(tensor, "hidden.0.linear.bias");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[256][..], &[32][..])
            );
        }
        other => panic!("expected a shape error, got {other}"),
    }

    // A tensor missing, and a tensor too many.
    let config = tiny_config();
    let mut tensors = checkpoint::named_vars(&small.g_vars, "");
    let removed = tensors.iter().position(|(n, _)| n == "out.bias").unwrap();
    let out_bias = tensors.remove(removed);
    let metadata =
        std::collections::HashMap::from([(checkpoint::CONFIG_KEY.to_owned(), config.to_toml())]);
    let path = dir.path().join("missing.safetensors");
    checkpoint::write_tensors(&path, tensors.clone(), metadata.clone()).unwrap();
    assert!(
        matches!(Generator::load(&path, &Device::Cpu).err().unwrap(), CheckpointError::Missing { tensor, .. } if tensor == "out.bias")
    );
    tensors.push(out_bias);
    tensors.push((
        "extra.weight".into(),
        Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    checkpoint::write_tensors(&path, tensors.clone(), metadata).unwrap();
    assert!(
        matches!(Generator::load(&path, &Device::Cpu).err().unwrap(), CheckpointError::Unexpected { tensor, .. } if tensor == "extra.weight")
    );

    // Weights without a config: not ours.
    checkpoint::write_tensors(&path, tensors, Default::default()).unwrap();
    let error = Generator::load(&path, &Device::Cpu).err().unwrap();
    assert!(
        matches!(error, CheckpointError::Format { .. }) && error.to_string().contains("metadata"),
        "{error}"
    );
    assert!(TensorFile::read(&path, &Device::Cpu).is_ok());
}

#[test]
fn divergence_stops_with_epoch_and_step_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist();
    let mut trainer = quiet_trainer(&tiny_config(), dir.path());
    trainer.train_epoch(&data).unwrap();
    let saved = std::fs::read(dir.path().join("checkpoint.safetensors")).unwrap();
    {
        let vars = trainer.gan.d_vars.data().lock().unwrap();
        let w = &vars["out.weight"];
        w.set(&w.ones_like().unwrap().affine(0.0, f64::NAN).unwrap())
            .unwrap();
    }
    let error = trainer.train_epoch(&data).unwrap_err();
    assert!(
        matches!(
            error,
            TrainError::NonFinite {
                epoch: 2,
                step: 9,
                last_good: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("epoch 2"), "{error}");
    assert!(error.to_string().contains("--lr-scale"), "{error}");
    assert_eq!(
        std::fs::read(dir.path().join("checkpoint.safetensors")).unwrap(),
        saved
    );

    // Rolling back restores epoch 1's weights and state, with halved learning rates that the
    // run's next checkpoint and config.toml keep; training then goes on.
    let lr = trainer.gan.config.lr_g;
    trainer.rollback(0.5).unwrap();
    assert_eq!((trainer.epoch, trainer.step), (1, 8));
    let restored = trainer.gan.d_vars.data().lock().unwrap()["out.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(restored.iter().all(|v| v.is_finite()));
    assert_eq!(trainer.gan.config.lr_g, lr * 0.5);
    trainer.train_epoch(&data).unwrap();
    let on_disk = TrainConfig::from_file(dir.path().join("config.toml")).unwrap();
    assert_eq!(on_disk.lr_g, lr * 0.5);
    let resumed = Trainer::resume(dir.path(), None, &Device::Cpu).unwrap();
    assert_eq!(
        (resumed.epoch, resumed.gan.config.lr_d),
        (2, trainer.gan.config.lr_d)
    );
    assert!(trainer.rollback(0.0).is_err());
}

#[test]
fn a_nan_in_the_first_epoch_rolls_back_to_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = quiet_trainer(&tiny_config(), dir.path());
    {
        let vars = trainer.gan.d_vars.data().lock().unwrap();
        let w = &vars["out.weight"];
        w.set(&w.ones_like().unwrap().affine(0.0, f64::NAN).unwrap())
            .unwrap();
    }
    let error = trainer.train_epoch(&small_mnist()).unwrap_err();
    assert!(error.to_string().contains("no checkpoint"), "{error}");
    trainer.rollback(1.0).unwrap();
    assert_eq!((trainer.epoch, trainer.step), (0, 0));
    trainer.train_epoch(&small_mnist()).unwrap();
}

#[test]
fn bad_configs_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // (the line to change, its replacement, what the message must name)
    let cases = [
        ("seed = 42", "seed = 42\nunknown = 1", "unknown"),
        ("epochs = 10", "epochs = 0", "epochs"),
        ("lr_g = 0.0002", "lr_g = -0.001", "lr_g"),
        ("    0.999,", "    1.5,", "betas"),
        ("real_label = 1.0", "real_label = 2.0", "real_label"),
        ("d_dropout = 0.0", "d_dropout = 1.0", "d_dropout"),
        ("batch_size = 64", "batch_size = \"many\"", "batch_size"),
        ("kind = \"mlp\"", "kind = \"transformer\"", "transformer"),
        ("name = ", "this is not toml\nname = ", "config"),
    ];
    let base = TrainConfig::preset("quick-mlp").unwrap().to_toml();
    for (i, (line, replacement, expected)) in cases.iter().enumerate() {
        assert!(base.contains(line), "{line:?} not in the preset's TOML");
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, base.replacen(line, replacement, 1)).unwrap();
        let error = TrainConfig::from_file(&path).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("bad-{i}.toml")) && message.contains(expected),
            "{replacement}: {message}"
        );
    }
    assert!(matches!(
        TrainConfig::preset("nope"),
        Err(ConfigError::UnknownPreset { .. })
    ));
    assert!(TrainConfig::preset("quick-mlp")
        .unwrap()
        .with("model.nonsense", "1")
        .unwrap_err()
        .to_string()
        .contains("nonsense"));
    // DCGAN geometry is checked layer by layer when the config is read, naming the layer.
    let dcgan = TrainConfig::preset("dcgan-course").unwrap();
    for (key, value, expected) in [
        (
            "model.d_layers",
            "[{ channels = 8, kernel = 40, stride = 2 }]",
            "model.d_layers[0]",
        ),
        (
            "model.g_layers",
            "[{ channels = 1, kernel = 3, stride = 1 }]",
            "1 channel of 28x28",
        ),
        (
            "model.g_layers",
            "[{ channels = 1, kernel = 1, stride = 1, padding = 3 }]",
            "model.g_layers[0]",
        ),
        (
            "model.d_layers",
            "[{ channels = 4, kernel = 4, stride = 2 }]",
            "linear head",
        ),
        (
            "model.g_layers",
            "[{ channels = 1, kernel = 28, stride = 2, output_padding = 5 }]",
            "output_padding",
        ),
        ("latent_dim", "100000000", "latent_dim"),
    ] {
        let message = dcgan.with(key, value).unwrap_err().to_string();
        assert!(message.contains(expected), "{key} = {value}: {message}");
    }
    assert!(TrainConfig::from_file(dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string()
        .contains("absent.toml"));
}

/// With two threads gan_lib's kernels split their loops (convolutions, BatchNorm, Adam,
/// matmuls); seeded runs must stay bit-identical all the same.
#[test]
fn two_threads_give_bit_identical_runs() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let data = small_mnist().limit(128);
    let config = TrainConfig::preset("dcgan-course")
        .unwrap()
        .with("batch_size", "64")
        .unwrap();
    let run = || {
        pool.install(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut trainer = quiet_trainer(&config, dir.path());
            trainer.train_epoch(&data).unwrap();
            assert_eq!(trainer.history.len(), 2);
            (weights(&trainer.gan.g_vars), weights(&trainer.gan.d_vars))
        })
    };
    assert_eq!(run(), run());
}

/// Networks of gigabytes are typing errors: refused when the config is read, naming the key.
#[test]
fn configs_with_absurd_weight_counts_are_refused() {
    let mlp = TrainConfig::preset("quick-mlp").unwrap();
    let error = mlp.with("model.g_hidden", "[65536, 65536]").unwrap_err();
    assert!(error.to_string().contains("model.g_hidden"), "{error}");
    assert!(error.to_string().contains("weights"), "{error}");
    let dcgan = TrainConfig::preset("dcgan-tf").unwrap();
    let error = dcgan
        .with(
            "model.g_start",
            "{ dense = { channels = 65536, side = 7 } }",
        )
        .unwrap_err();
    assert!(error.to_string().contains("model.g_start"), "{error}");
    for name in PRESETS.map(|(name, _)| name) {
        TrainConfig::preset(name).unwrap().validate().unwrap();
    }
}

/// A config built field by field in code gets the file's checks when a trainer is made.
#[test]
fn a_config_built_in_code_is_validated_by_the_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TrainConfig::preset("quick-mlp").unwrap();
    config.batch_size = 0;
    let error = Trainer::new(&config, dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("batch_size"), "{error}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A budget that allows some epochs and not all: on a clock where each step takes 1 s, the
/// small set's epochs (8 steps) take 8 s; the run stops before the epoch that would end past
/// the budget, and not earlier.
#[test]
fn a_time_budget_trains_the_epochs_that_fit_and_stops_before_the_next() {
    let data = small_mnist();
    let epochs_within = |budget_seconds: u64| {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_config().with("epochs", "10").unwrap();
        let mut trainer = quiet_trainer(&config, dir.path());
        trainer.time_budget = Some(std::time::Duration::from_secs(budget_seconds));
        trainer.budget_clock = BudgetClock::PerStep(std::time::Duration::from_secs(1));
        let reports = trainer.train(&data).unwrap();
        assert_eq!(reports.len(), trainer.epoch);
        assert!(dir.path().join("generator.safetensors").is_file());
        trainer.epoch
    };
    // A third epoch would end at 24 s.
    assert_eq!(epochs_within(20), 2);
    assert_eq!(epochs_within(24), 3);
    // The first epoch always runs.
    assert_eq!(epochs_within(1), 1);
    // Enough for all.
    assert_eq!(epochs_within(1000), 10);
}
