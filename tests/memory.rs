//! Memory stays flat over many epochs: what a training epoch allocates (batches, activations,
//! gradients, the sample grid, the loss curves, the checkpoint) is given back, and nothing a
//! run keeps grows with its epochs but its loss history.
//!
//! It counts the bytes malloc has handed out and not taken back (glibc's `mallinfo2`), not the
//! resident memory: the allocator is tuned to keep freed memory (`tune_allocator`), so a leak
//! first fills the holes a run leaves behind (the full MNIST read, then cut to `limit`) and
//! shows in the resident memory only tens of epochs later. Its own test binary with a single
//! test, so no other test allocates beside it. The long-run figures (150 epochs of the default
//! preset, a DCGAN) are in docs/reliability.md, from `scripts/soak.py`.

#[allow(dead_code)] // the shared helpers this test does not need
mod common;
use common::{quiet_trainer, tiny_mlp};

use gan_lib::data::Mnist;

/// Bytes allocated and not yet freed, in MiB, over all of malloc's arenas.
fn allocated_mib() -> f64 {
    // SAFETY: mallinfo2 only reads malloc's statistics.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks as f64 / (1024.0 * 1024.0)
}

#[test]
fn memory_held_after_sixty_epochs_is_what_ten_epochs_hold() {
    // 4 MiB over 50 epochs is 80 KiB an epoch. Keeping each epoch's 8x8 sample grid (about
    // 0.7 MiB) is nine times that; so is keeping one batch of 32 digits (100 KiB) per step.
    const MAX_GROWTH_MIB: f64 = 4.0;
    let data = Mnist::load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
        .unwrap()
        .test
        .limit(640);
    let dir = tempfile::tempdir().unwrap();

    // Trains a run of `epochs` epochs and measures what is allocated while the trainer and the
    // reports it returned are still held, as a caller holds them.
    let held_after = |epochs: usize| {
        let config = tiny_mlp().with("epochs", &epochs.to_string()).unwrap();
        let mut trainer = quiet_trainer(&config, &dir.path().join(format!("{epochs}")));
        let reports = trainer.train(&data).unwrap();
        assert_eq!((reports.len(), trainer.epoch), (epochs, epochs));
        allocated_mib()
    };
    let after_ten = held_after(10);
    let after_sixty = held_after(60);
    assert!(
        after_sixty - after_ten < MAX_GROWTH_MIB,
        "a run of 60 epochs holds {after_sixty:.1} MiB, one of 10 epochs {after_ten:.1} MiB: \
         {:.1} MiB more (at most {MAX_GROWTH_MIB} MiB)",
        after_sixty - after_ten
    );
}
