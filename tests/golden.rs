//! Numbers recorded before a refactoring, to prove it changed nothing: every preset, made
//! small (batch 16, two steps, one epoch, one thread), trained from its seed.
//!
//! On a CPU with AVX-512 (where they were recorded) the per-step losses must match bit for bit,
//! and so must digests of G's and D's weights after the epoch and of the sample grid's PNG.
//! Elsewhere the matrix products add in another order (AVX2's narrower registers), so the
//! losses and two sums over each network's weights must agree to 1e-4 relative: rounding moves
//! them by about 1e-6 in two steps, a changed step (a label, a loss, an RNG draw) by far more.
//!
//! A change that alters training on purpose records them again: run
//! `GOLDEN_PRINT=1 cargo test --test golden -- --nocapture` and paste the table it prints.

#[allow(dead_code)]
mod common;
use common::{quiet_trainer, small_mnist, weights};

use gan_lib::config::{TrainConfig, PRESETS};
use sha2::{Digest, Sha256};

/// What one small run gives: the losses of each step as f32 bits, then digests.
struct Golden {
    preset: &'static str,
    losses: &'static [(u32, u32)],
    g_weights: &'static str,
    d_weights: &'static str,
    samples_png: &'static str,
    /// [`sums`] of G's and D's weights.
    g_sums: [f64; 2],
    d_sums: [f64; 2],
}

/// What a run gives, as [`Golden`] holds it.
struct Outcome {
    losses: Vec<(u32, u32)>,
    g_weights: String,
    d_weights: String,
    samples_png: String,
    g_sums: [f64; 2],
    d_sums: [f64; 2],
}

/// Recorded from commit 7555a47 (before the restructuring of issue 25).
const GOLDEN: &[Golden] = &[
    Golden {
        preset: "cgan-fast",
        losses: &[(1067668335, 1061107915), (1065389145, 1058682373)],
        g_weights: "b44c1faf1acdd94e",
        d_weights: "3be9b344024d9e47",
        samples_png: "3eb1be991444f8b1",
        g_sums: [15497.580999774036, 1611.1444877041952],
        d_sums: [10501.681720004375, -41.04866814344123],
    },
    Golden {
        preset: "fast-mlp",
        losses: &[(1068199804, 1061639545), (1065363808, 1058854116)],
        g_weights: "de5f0eee4affbaf2",
        d_weights: "ad09c2dc39faf9b2",
        samples_png: "3d7060fffa8b52e1",
        g_sums: [15426.042011199677, 1288.0783340381045],
        d_sums: [10105.939736432067, -55.76150955634648],
    },
    Golden {
        preset: "quick-mlp",
        losses: &[(1068199804, 1060584414), (1066901001, 1060361834)],
        g_weights: "81c18f2a46f91f7c",
        d_weights: "51e25ae364e20e54",
        samples_png: "e96d92140cc39e14",
        g_sums: [15415.89457963709, 1956.7620960181569],
        d_sums: [10088.18575188353, -3.0858073677986244],
    },
    Golden {
        preset: "fc-gan-64",
        losses: &[(1069081510, 1060586544), (1067374297, 1060271437)],
        g_weights: "13566725c05cf693",
        d_weights: "cb61493c650f0046",
        samples_png: "e12b4574d24514e2",
        g_sums: [7344.601232586734, -14.08986545789717],
        d_sums: [1802.0217886709743, 7.976631700135538],
    },
    Golden {
        preset: "dcgan-course",
        losses: &[(1068225030, 1062297945), (1070585492, 1057795502)],
        g_weights: "9f04a9f27e05023d",
        d_weights: "14a91b57258d74b9",
        samples_png: "fb3a9aae30f7b6d9",
        g_sums: [12703.235199512774, 1145.315213413392],
        d_sums: [221.88825919563533, 109.2288783055275],
    },
    Golden {
        preset: "mlp-smoothing",
        losses: &[(1068574044, 1060434410), (1068023203, 1060428318)],
        g_weights: "4af6f172b1075b76",
        d_weights: "a8a2b722e1c85b1c",
        samples_png: "f245e391990941f5",
        g_sums: [32917.7005289271, 4582.031572506881],
        d_sums: [11119.810308198827, -18.357627558252716],
    },
    Golden {
        preset: "dcgan-tf",
        losses: &[(1068875032, 1060505641), (1068217292, 1060358293)],
        g_weights: "0ac60a6c7d26a4cd",
        d_weights: "201dfb30b1158c65",
        samples_png: "db43c7103fe16881",
        g_sums: [95492.25062731832, 33826.552119750304],
        d_sums: [2774.8667723812005, -3.9012191857352274],
    },
    Golden {
        preset: "fc-gan-100",
        losses: &[(1068311264, 1060492909), (1067344630, 1060392090)],
        g_weights: "72f8309b95ce5070",
        d_weights: "b66de1f694d0e232",
        samples_png: "b41e50a8f802c44e",
        g_sums: [29585.228403967754, -42.31884595611258],
        d_sums: [25482.735412421785, 35.07684939784855],
    },
    Golden {
        preset: "mlp-hinge-sn",
        losses: &[(1073986688, 1035307429), (1068917040, 3188759948)],
        g_weights: "a4efae23140fceec",
        d_weights: "c21b3f159e075533",
        samples_png: "a72d1c56f76c36cc",
        g_sums: [32917.286522493276, 4531.209178409681],
        d_sums: [10124.898407986682, -16.408458413759114],
    },
    Golden {
        preset: "mlp-wgan-gp",
        losses: &[(1088058522, 1040595884), (1083264247, 1034771124)],
        g_weights: "7b5c8bedadff3724",
        d_weights: "e16945123e519e76",
        samples_png: "ef1209a5012511e2",
        g_sums: [32457.564857478574, 3680.6110682753583],
        d_sums: [10110.28325906376, -72.38617126557614],
    },
    Golden {
        preset: "dcgan-wgan-gp",
        losses: &[(1092467553, 1016488915), (1092446035, 1014892120)],
        g_weights: "92e3d26303961c82",
        d_weights: "bd6293fed1f453a7",
        samples_png: "d6dfdce55d300bba",
        g_sums: [12554.322010415, 906.3403170975797],
        d_sums: [146.63004443595491, -2.7504840153676833],
    },
    Golden {
        preset: "wide-mlp",
        losses: &[(1068370830, 1061838540), (1067550660, 1057555295)],
        g_weights: "8742f2abfdda4b34",
        d_weights: "4d6edbcbca33ec35",
        samples_png: "88c8702ffaa34e88",
        g_sums: [32960.81229140481, 3301.3130806971094],
        d_sums: [10104.708135243289, -48.17801824402806],
    },
    Golden {
        preset: "cgan-mlp",
        losses: &[(1068083360, 1061849588), (1067589066, 1057046666)],
        g_weights: "4843f4ff401b0146",
        d_weights: "28de642b79798503",
        samples_png: "66e3488546569ab6",
        g_sums: [33015.776190711425, 3942.55565020558],
        d_sums: [10515.41108397406, -24.226352614013553],
    },
    Golden {
        preset: "cgan-dcgan",
        losses: &[(1075929050, 1073580969), (1084526514, 1051903517)],
        g_weights: "379de82e0b662f0a",
        d_weights: "414721495a2efd6d",
        samples_png: "65ee82a28382d609",
        g_sums: [13073.825857511401, 1148.6530126197767],
        d_sums: [1488.68571779372, 116.33062823337646],
    },
    Golden {
        preset: "cgan-dcgan-fast",
        losses: &[(1070870250, 1063001511), (1069385274, 1059354255)],
        g_weights: "e78125d84c4a2784",
        d_weights: "cade718ed7ce206b",
        samples_png: "39c3aa2aa0ac4236",
        g_sums: [20138.37184484753, 8421.610162547975],
        d_sums: [2793.803076935197, -55.139793875231014],
    },
    Golden {
        preset: "dcgan-fast",
        losses: &[(1068466364, 1060574900), (1068645638, 1060158879)],
        g_weights: "48601fff5a740fdb",
        d_weights: "e5a0b0b397c1e569",
        samples_png: "b893a37f1cb3b585",
        g_sums: [19281.320774983415, 8474.839572553707],
        d_sums: [1031.9634895723775, 5.537403411103048],
    },
];

fn digest(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(bytes.into_iter().collect::<Vec<u8>>());
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn weights_digest(vars: &candle_nn::VarMap) -> String {
    digest(weights(vars).into_iter().flat_map(|(name, values)| {
        name.into_bytes()
            .into_iter()
            .chain(values.into_iter().flat_map(f32::to_le_bytes))
    }))
}

/// Two sums over every weight, in name order: of |w|, and of w times a fixed pseudo-random
/// factor in [1, 2) by position (so that weights moved from one place to another show).
fn sums(vars: &candle_nn::VarMap) -> [f64; 2] {
    let values: Vec<f32> = weights(vars).into_iter().flat_map(|(_, v)| v).collect();
    let factor = |i: usize| 1.0 + ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
    [
        values.iter().map(|&w| (w as f64).abs()).sum(),
        values
            .iter()
            .enumerate()
            .map(|(i, &w)| w as f64 * factor(i))
            .sum(),
    ]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1e-3)
}

fn small_run(preset: &str) -> Outcome {
    let config = TrainConfig::preset(preset)
        .unwrap()
        .with("batch_size", "16")
        .unwrap()
        .with("epochs", "1")
        .unwrap();
    let data = small_mnist().limit(32);
    let dir = tempfile::tempdir().unwrap();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut trainer = quiet_trainer(&config, dir.path());
    one_thread.install(|| trainer.train_epoch(&data).unwrap());
    let losses = trainer
        .history
        .iter()
        .map(|p| (p.d_loss.to_bits(), p.g_loss.to_bits()))
        .collect();
    let png = std::fs::read(dir.path().join("images/epoch_0001.png")).unwrap();
    Outcome {
        losses,
        g_weights: weights_digest(&trainer.gan.g_vars),
        d_weights: weights_digest(&trainer.gan.d_vars),
        samples_png: digest(png),
        g_sums: sums(&trainer.gan.g_vars),
        d_sums: sums(&trainer.gan.d_vars),
    }
}

#[test]
fn every_preset_trains_as_recorded_before_the_restructuring() {
    // candle's matrix products read the thread count from here; gan_lib's use the pool above.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    if std::env::var_os("GOLDEN_PRINT").is_some() {
        for (preset, _) in PRESETS {
            let o = small_run(preset);
            println!(
                "    Golden {{\n        preset: {preset:?},\n        losses: &{:?},\n        g_weights: {:?},\n        d_weights: {:?},\n        samples_png: {:?},\n        g_sums: {:?},\n        d_sums: {:?},\n    }},",
                o.losses, o.g_weights, o.d_weights, o.samples_png, o.g_sums, o.d_sums
            );
        }
        return;
    }
    assert_eq!(
        GOLDEN.len(),
        PRESETS.len(),
        "a preset without golden numbers"
    );
    let exact = avx512();
    println!(
        "comparing {} (this CPU {} AVX-512)",
        if exact { "bit for bit" } else { "to 1e-4" },
        if exact { "has" } else { "lacks" }
    );
    for golden in GOLDEN {
        let o = small_run(golden.preset);
        let name = golden.preset;
        if exact {
            assert_eq!(o.losses, golden.losses, "{name}: losses");
            assert_eq!(o.g_weights, golden.g_weights, "{name}: G's weights");
            assert_eq!(o.d_weights, golden.d_weights, "{name}: D's weights");
            assert_eq!(o.samples_png, golden.samples_png, "{name}: sample grid");
        }
        let as_f64 = |losses: &[(u32, u32)]| -> Vec<f64> {
            losses
                .iter()
                .flat_map(|&(d, g)| [f32::from_bits(d) as f64, f32::from_bits(g) as f64])
                .collect()
        };
        let (ran, recorded) = (as_f64(&o.losses), as_f64(golden.losses));
        assert!(
            ran.len() == recorded.len() && ran.iter().zip(&recorded).all(|(&a, &b)| close(a, b)),
            "{name}: losses {ran:?}, recorded {recorded:?}"
        );
        for (net, got, want) in [
            ("G", o.g_sums, golden.g_sums),
            ("D", o.d_sums, golden.d_sums),
        ] {
            assert!(
                got.iter().zip(&want).all(|(&a, &b)| close(a, b)),
                "{name}: sums of {net}'s weights {got:?}, recorded {want:?}"
            );
        }
    }
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}
