//! IDX image and label files, raw or gzip: any bytes give digits or an error, never a panic.
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::idx(bytes));
