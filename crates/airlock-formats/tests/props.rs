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

    /// The lazy reader cuts and parses a file exactly as `split` does (envelope segments, blank
    /// lines, mixed separators, a BOM, text before the first `MSH`).
    #[test]
    fn hl7_lazy_messages_match_split(
        bom in any::<bool>(),
        s in "(MSH\\|\\^~\\\\&|PID|OBX|BHS|FTS|\\||\\^|~|&|\\\\|[A-Z0-9 ]|\r|\n|\r\n){0,80}",
    ) {
        let text = if bom { format!("\u{feff}{s}") } else { s };
        let bytes = text.as_bytes();
        let file = hl7::split(bytes).unwrap();
        let lazy = hl7::messages(bytes).unwrap();
        prop_assert_eq!(lazy.bom(), file.bom);
        prop_assert_eq!(lazy.terminator(), file.terminator);
        prop_assert_eq!(lazy.trailing_terminator(), file.trailing_terminator);
        let spans: Vec<_> = lazy.collect();
        prop_assert_eq!(spans.len(), file.messages.len());
        for (span, raw) in spans.iter().zip(&file.messages) {
            prop_assert_eq!(span.index, raw.index);
            prop_assert_eq!(span.line, raw.first_line());
            let first = raw.lines[0].1;
            prop_assert!(text[span.offset as usize..].starts_with(first));
            prop_assert!(span.text.starts_with(first));
            prop_assert_eq!(span.parse(), raw.parse());
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
