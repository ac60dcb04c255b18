//! Arbitrary UTF-8 through the free-text engine: never panics, spans sorted, non-overlapping,
//! on character boundaries, and `char_offsets` agrees with a naive count.
#![no_main]

use airlock_text::{Engine, KnownIdentifiers, Mode, SurrogateContext, char_offsets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let engine = Engine::builtin();
    let known = KnownIdentifiers {
        names: vec!["John Smith".into()],
        dates: vec!["2019-03-14".into()],
        phones: vec!["5551234567".into()],
        ..KnownIdentifiers::default()
    };
    for k in [None, Some(&known)] {
        let spans = engine.find(text, k);
        let mut prev = 0;
        for s in &spans {
            assert!(s.start < s.end && s.end <= text.len());
            assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
            assert!(s.start >= prev);
            prev = s.end;
        }
        for (s, (a, b, _)) in spans.iter().zip(char_offsets(text, &spans)) {
            assert_eq!(a, text[..s.start].chars().count());
            assert_eq!(b, text[..s.end].chars().count());
        }
        let ctx = SurrogateContext { key: b"fuzz", patient: "p", date_shift_days: 3 };
        for mode in [Mode::Tag, Mode::Mask, Mode::Surrogate] {
            let _ = engine.redact(text, k, mode, Some(&ctx));
        }
    }
});
