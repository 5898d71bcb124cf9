//! NumPy `.npy` arrays of digits: any bytes give whole 28x28 digits or an error.
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::npy(bytes));
