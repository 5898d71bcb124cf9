//! Config files: any text gives a valid config or an error; a config that is accepted
//! validates and survives a round trip through its TOML.
#![no_main]

use gan_lib::config::TrainConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(config) = TrainConfig::from_toml(text, "fuzzed.toml") {
        config.validate().expect("an accepted config validates");
        let again = TrainConfig::from_toml(&config.to_toml(), "round trip").expect("round trip");
        assert_eq!(again.to_toml(), config.to_toml());
    }
});
