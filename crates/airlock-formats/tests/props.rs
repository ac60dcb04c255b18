#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test"
)]
//! Property tests: no parser panics on arbitrary input; HL7 values survive encode → parse.

use airlock_formats::{Format, hl7, validate};
use proptest::prelude::*;

proptest! {
    #[test]
    fn validate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for f in [Format::FhirJson, Format::FhirNdjson, Format::Hl7v2, Format::Csv] {
            let _ = validate(f, &bytes);
        }
    }

    #[test]
    fn hl7_like_input_never_panics(s in "(MSH\\|\\^~\\\\&|PID|OBX|\\||\\^|~|&|\\\\|[A-Z0-9 ]|\r|\n){0,80}") {
        let _ = validate(Format::Hl7v2, s.as_bytes());
        if let Ok((file, msgs)) = hl7::parse_all(s.as_bytes()) {
            let out = hl7::serialize_file(&msgs, file.terminator, file.trailing_terminator);
            let (_, again) = hl7::parse_all(out.as_bytes()).unwrap();
            prop_assert_eq!(again, msgs);
        }
    }

    #[test]
    fn hl7_values_survive(values in proptest::collection::vec("\\PC{0,20}", 1..6)) {
        let d = hl7::Delimiters::default();
        let mut m = hl7::Message::parse("MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rPID|1").unwrap();
        let pid = m.segments.iter_mut().find(|s| s.id == "PID").unwrap();
        for v in &values {
            pid.fields.push(hl7::Field::from_value(v, &d));
        }
        let text = m.serialize(hl7::Terminator::Cr);
        let again = hl7::Message::parse(&text).unwrap();
        let pid = again.segment("PID").unwrap();
        for (i, v) in values.iter().enumerate() {
            prop_assert_eq!(&pid.field(i + 2).unwrap().first_value(&d), v);
        }
    }
}
