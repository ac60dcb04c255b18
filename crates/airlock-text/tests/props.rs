//! Property tests: arbitrary text never panics, spans are sorted, non-overlapping and on
//! character boundaries, and `char_offsets` agrees with a naive count.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test"
)]

use airlock_text::{Engine, KnownIdentifiers, Mode, SurrogateContext, char_offsets};
use proptest::prelude::*;

fn check(text: &str, known: Option<&KnownIdentifiers>) {
    let engine = Engine::builtin();
    let spans = engine.find(text, known);
    let mut prev_end = 0;
    for s in &spans {
        assert!(s.start < s.end && s.end <= text.len());
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        assert!(s.start >= prev_end, "spans overlap or are unsorted");
        prev_end = s.end;
    }
    let offs = char_offsets(text, &spans);
    for (s, (a, b, k)) in spans.iter().zip(&offs) {
        assert_eq!(*a, text[..s.start].chars().count());
        assert_eq!(*b, text[..s.end].chars().count());
        assert_eq!(*k, s.kind);
        let by_chars: String = text.chars().skip(*a).take(b - a).collect();
        assert_eq!(by_chars, &text[s.start..s.end]);
    }
    let ctx = SurrogateContext {
        key: b"k",
        patient: "p",
        date_shift_days: -17,
    };
    for mode in [Mode::Tag, Mode::Mask, Mode::Surrogate] {
        let r = engine.redact(text, known, mode, Some(&ctx));
        if mode == Mode::Mask {
            assert_eq!(r.text.chars().count(), text.chars().count());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_unicode(text in "\\PC{0,200}") {
        check(&text, None);
    }

    #[test]
    fn clinical_looking(parts in prop::collection::vec(prop_oneof![
        Just("Dr. "), Just("Smith"), Just("John"), Just(", "), Just(" "), Just("3/14"), Just("MRN: "),
        Just("S-987654"), Just("123-45-6789"), Just("é"), Just("Hospital"), Just("St. "), Just("'s"),
        Just("\n"), Just("in "), Just("Boston"), Just("CA"), Just("(555) 123-4567"), Just("ü"), Just("90"),
        Just("-year-old"), Just("the 14th"), Just("x"), Just("#"), Just("Mary"), Just("Clinic"),
    ], 0..40)) {
        let text: String = parts.concat();
        let known = KnownIdentifiers { names: vec!["John Smith".into()], dates: vec!["2019-03-14".into()], phones: vec!["5551234567".into()], ..KnownIdentifiers::default() };
        check(&text, Some(&known));
        check(&text, None);
    }
}
