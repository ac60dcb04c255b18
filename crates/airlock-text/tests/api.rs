//! Public API behaviour: output modes, surrogate consistency, known identifiers, JSONL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test"
)]

use airlock_text::{Engine, KnownIdentifiers, Mode, PhiKind, SurrogateContext, process_jsonl};

const NOTE: &str = "Pt John Smith seen by Dr. Adams on 3/14/2021. Mr. Smith lives at 123 Main St., \
                    Springfield. SSN 123-45-6789, call (555) 123-4567, john.smith@example.com.";

#[test]
fn tag_mode_replaces_every_identifier() {
    let r = Engine::builtin().redact(NOTE, None, Mode::Tag, None);
    for leaked in [
        "John",
        "Smith",
        "Adams",
        "3/14",
        "123 Main",
        "123-45-6789",
        "555",
        "example.com",
    ] {
        assert!(!r.text.contains(leaked), "{leaked} leaked: {}", r.text);
    }
    assert!(r.text.contains("[NAME]") && r.text.contains("[DATE]") && r.text.contains("[SSN]"));
    assert!(r.text.starts_with("Pt [NAME] seen by [NAME] on [DATE]."));
}

#[test]
fn mask_mode_keeps_the_character_count() {
    let text = "é Dr. Adams ü on 3/14/2021";
    let r = Engine::builtin().redact(text, None, Mode::Mask, None);
    assert_eq!(r.text.chars().count(), text.chars().count());
    assert_eq!(r.text, "é ********* ü on *********");
}

#[test]
fn surrogates_are_consistent_per_patient_and_shift_dates() {
    let ctx = SurrogateContext {
        key: b"secret key",
        patient: "patient-1",
        date_shift_days: 10,
    };
    let e = Engine::builtin();
    let a = e.redact(
        "John Smith came on 3/14/2021. Smith was well.",
        None,
        Mode::Surrogate,
        Some(&ctx),
    );
    let b = e.redact(
        "Later, Smith (John Smith) returned.",
        None,
        Mode::Surrogate,
        Some(&ctx),
    );
    assert!(!a.text.contains("Smith") && !b.text.contains("Smith"));
    assert!(a.text.contains("3/24/2021"), "{}", a.text);
    // The fake for "Smith" is the same in both notes of the patient.
    let fake_a = &a.text[a.text.find(". ").unwrap() + 2..a.text.find(" was").unwrap()];
    assert!(b.text.contains(fake_a), "{} / {}", a.text, b.text);
    // Another patient gets other fakes (overwhelmingly likely with 5,000 surnames).
    let other = SurrogateContext {
        key: b"secret key",
        patient: "patient-2",
        date_shift_days: 10,
    };
    let c = e.redact("Smith was well.", None, Mode::Surrogate, Some(&other));
    assert!(!c.text.contains(fake_a) || fake_a.is_empty(), "{}", c.text);
    // Without a context, surrogate falls back to tags.
    assert_eq!(
        e.redact("Dr. Adams", None, Mode::Surrogate, None).text,
        "[NAME]"
    );
}

#[test]
fn known_identifiers_catch_what_rules_cannot() {
    // "Sunny" is an ordinary word; only the record says it is this patient's name.
    let text = "Sunny31 is a 1 year-old female. Sunny lives at 779 Hintz Parade, Redmond.";
    let known = KnownIdentifiers {
        names: vec!["Sunny31 Lakin515".into()],
        addresses: vec!["779 Hintz Parade".into()],
        cities: vec!["Redmond".into()],
        dates: vec!["1995-05-22".into()],
        ..KnownIdentifiers::default()
    };
    let r = Engine::builtin().redact(text, Some(&known), Mode::Tag, None);
    assert_eq!(
        r.text,
        "[NAME] is a 1 year-old female. [NAME] lives at [ADDRESS]."
    );
    assert!(r.spans.iter().all(|s| s.kind != PhiKind::Date));
}

#[test]
fn jsonl_reports_char_offsets_into_the_original() {
    let input = "{\"id\":\"a\",\"text\":\"ü Mary Johnson, 3/14\"}\n";
    let mut out = Vec::new();
    let s = process_jsonl(
        Engine::builtin(),
        input.as_bytes(),
        &mut out,
        Mode::Tag,
        None,
    )
    .unwrap();
    assert_eq!(s.processed, 1);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], "a");
    assert_eq!(v["deid_text"], "ü [NAME], [DATE]");
    assert_eq!(
        v["phi"][0],
        serde_json::json!({"start": 2, "end": 14, "type": "NAME"})
    );
    assert_eq!(
        v["phi"][1],
        serde_json::json!({"start": 16, "end": 20, "type": "DATE"})
    );
}

#[test]
fn errors_and_debug_never_show_text() {
    let known = KnownIdentifiers {
        names: vec!["Zelda Secretname".into()],
        ..KnownIdentifiers::default()
    };
    assert!(!format!("{known:?}").contains("Secretname"));
    let r = Engine::builtin().redact("Zelda Secretname", Some(&known), Mode::Tag, None);
    assert!(!format!("{r:?}").contains("Secretname"));
    let mut out = Vec::new();
    let s = process_jsonl(
        Engine::builtin(),
        "{\"text\": 5, \"x\": \"Secretname\"}\n".as_bytes(),
        &mut out,
        Mode::Tag,
        None,
    )
    .unwrap();
    assert_eq!(s.malformed, 1);
    assert!(!s.errors[0].to_string().contains("Secretname"));
}
