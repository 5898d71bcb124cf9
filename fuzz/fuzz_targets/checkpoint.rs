//! Checkpoints and generator files: any bytes load as a generator or give an error.
#![no_main]

use candle_core::Device;
use gan_lib::checkpoint::TensorFile;
use gan_lib::train::Gan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(file) = TensorFile::parse(bytes, "fuzzed.safetensors".into(), &Device::Cpu) else {
        return;
    };
    let _ = Gan::generator_from(&file, &Device::Cpu);
});
