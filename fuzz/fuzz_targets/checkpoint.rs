//! Checkpoints and generator files: any bytes load as a generator or give an error, and a
//! generator that loads draws finite digits of the right shape.
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::checkpoint(bytes));
