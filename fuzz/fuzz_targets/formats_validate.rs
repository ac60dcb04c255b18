#![no_main]
//! Every format validator and the HL7 round trip on arbitrary bytes: no panic, and a parsed
//! HL7 file re-parses to the same model after serialisation.

use airlock_formats::{Format, hl7, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for f in [Format::FhirJson, Format::FhirNdjson, Format::Hl7v2, Format::Csv] {
        let _ = validate(f, data);
    }
    let _ = airlock_formats::sniff_content(data);
    if let Ok((file, msgs)) = hl7::parse_all(data) {
        let out = hl7::serialize_file(&msgs, file.terminator, file.trailing_terminator);
        let again = hl7::parse_all(out.as_bytes()).map(|(_, m)| m);
        assert_eq!(again.ok(), Some(msgs));
    }
});
