#![no_main]
//! Arbitrary bytes through the de-identification engine in every format under the built-in
//! profiles: no panic, and any successful HL7 output re-parses.

use airlock_deid::{Crosswalk, DeidKeys, Format, Profile, deid_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = DeidKeys::new(vec![42u8; 32]) else { return };
    for name in ["safe-harbor", "expert-determination"] {
        let Ok(profile) = Profile::builtin(name) else { return };
        for f in [Format::FhirJson, Format::FhirNdjson, Format::Hl7v2, Format::Csv] {
            if let Ok((out, _)) = deid_bytes(&profile, &keys, &mut Crosswalk::new(), f, data) {
                if f == Format::Hl7v2 && !out.is_empty() {
                    assert!(airlock_formats::hl7::parse_all(&out).is_ok());
                }
            }
        }
    }
});
