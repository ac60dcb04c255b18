#![no_main]
//! Arbitrary text as a profile file: loading never panics (errors are values).

use airlock_deid::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Profile::from_toml(text);
        let _ = airlock_deid::profile::parse_fhir_path(text);
    }
});
