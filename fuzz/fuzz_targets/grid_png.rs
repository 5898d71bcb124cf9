//! Grid pictures: any PNG (and any cell size and padding a user types) gives digits or an
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::grid_png(bytes));
