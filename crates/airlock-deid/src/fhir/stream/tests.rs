//! The tape walk against the tree walk: the same output bytes and the same report, on the
//! shared Synthea bundles (skipped when `../shared/data` is absent), on generated bundles, on
//! hand-made edge cases and on generated resources re-spelled in many ways.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::tape::tests::respell;
use crate::{
    Crosswalk, DeidError, DeidKeys, Format, Profile, RunReport, Walker, deid_bytes_with, fast_tape,
};

fn keys() -> DeidKeys {
    DeidKeys::new(vec![7; 32]).unwrap()
}

fn outcome(r: Result<(Vec<u8>, RunReport), DeidError>) -> (Option<Vec<u8>>, RunReport) {
    match r {
        Ok((out, report)) => (Some(out), report),
        Err(DeidError::LeakCheckFailed { report, .. }) => (None, *report),
        Err(e) => panic!("{e}"),
    }
}

/// Runs the tree walk, then the tape walk with the crosswalk the tree walk filled (so random
/// surrogates agree), and asserts the same output and report. Returns the output and the
/// report.
fn assert_same(
    profile: &Profile,
    format: Format,
    bytes: &[u8],
    what: &str,
) -> (Option<Vec<u8>>, RunReport) {
    let keys = keys();
    let mut cw = Crosswalk::new();
    let (tree_out, mut tree_report) = outcome(deid_bytes_with(
        profile,
        &keys,
        &mut cw,
        format,
        bytes,
        Walker::Tree,
    ));
    let mut cw2 = cw.clone();
    let (tape_out, tape_report) = outcome(deid_bytes_with(
        profile,
        &keys,
        &mut cw2,
        format,
        bytes,
        Walker::Tape,
    ));
    assert_eq!(cw2, cw, "{what}: the tape walk drew other surrogates");
    assert_eq!(
        tape_out.as_deref().map(String::from_utf8_lossy),
        tree_out.as_deref().map(String::from_utf8_lossy),
        "{what}: outputs differ (profile {})",
        profile.name()
    );
    tree_report.crosswalk_added = tape_report.crosswalk_added;
    assert_eq!(tape_report, tree_report, "{what}: reports differ");
    (tape_out, tape_report)
}

fn profiles() -> Vec<Profile> {
    let safe = Profile::builtin("safe-harbor")
        .unwrap()
        .with_reference_year(2026);
    let no_text = Profile::from_toml(
        &include_str!("../../../profiles/safe-harbor.toml")
            .replace("free_text = \"tag\"", "free_text = \"redact\""),
    )
    .unwrap();
    let limited = Profile::builtin("limited-data-set").unwrap();
    // Expert determination without rare codes (which the tape walk leaves to the tree).
    let expert = Profile::from_toml(
        &include_str!("../../../profiles/expert-determination.toml")
            .replace("[rare_codes]\nmin_patients = 5\n", ""),
    )
    .unwrap();
    let methods = Profile::from_toml(
        r#"
name = "methods"
pseudonyms = "hmac"
dates = "shift"
free_text = "mask"
zip = "redact"
leak_check = "warn"
[[fhir]]
path = "Observation.valueQuantity.value"
method = "perturb"
span = 5
[[fhir]]
path = "nodesByType('Age').value"
method = "ageCap"
[[fhir]]
path = "Observation.valueInteger"
method = "generalize"
width = 10
[[fhir]]
path = "Patient.name.family"
method = "substitute"
fake = "family"
[[fhir]]
path = "Patient.name.given"
method = "substitute"
value = "X \"quoted\""
[[fhir]]
path = "Resource.id"
method = "cryptoHash"
[[fhir]]
path = "nodesByType('Reference').reference"
method = "cryptoHash"
[[fhir]]
path = "Encounter.period.start"
method = "dateShift"
variant = "microsoft"
[[fhir]]
path = "Resource.meta"
method = "keep"
[[fhir]]
path = "Observation.note.text"
method = "text"
[[fhir]]
path = "Patient.address.postalCode"
method = "zip3"
[[fhir]]
path = "Patient.extension('birthPlace')"
method = "keep"
[[fhir]]
path = "Resource.status"
method = "redact"
"#,
    )
    .unwrap();
    vec![safe, no_text, limited, methods, expert]
}

fn data_dir() -> Option<PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    if p.is_dir() {
        Some(p.to_path_buf())
    } else {
        eprintln!("skipping: shared data not found at {}", p.display());
        None
    }
}

#[test]
fn synthea_bundles_tape_equals_tree() {
    let Some(d) = data_dir() else {
        return;
    };
    let mut paths: Vec<_> = std::fs::read_dir(d.join("fhir/synthea"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let safe = Profile::builtin("safe-harbor").unwrap();
    let limited = Profile::builtin("limited-data-set").unwrap();
    for p in &paths {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            fast_tape(&safe, &bytes).is_some(),
            "{} takes the tree walk",
            p.display()
        );
        let what = p.display().to_string();
        let (out, _) = assert_same(&safe, Format::FhirJson, &bytes, &what);
        assert!(out.is_some(), "{what}: leak check failed");
        assert_same(&limited, Format::FhirJson, &bytes, &what);
    }
}

/// The bench's generated bundles: a patient and 500 observations.
fn generated_bundle(p: usize) -> Vec<u8> {
    let mut entries = vec![json!({"fullUrl": format!("urn:uuid:p{p}"), "resource": {
        "resourceType": "Patient", "id": format!("p{p}"),
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": format!("MRN{p}")}],
        "name": [{"family": "Family", "given": ["Given"]}], "birthDate": "1970-01-01", "gender": "female",
        "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "MA", "postalCode": "01101"}]}})];
    for i in 0..50 {
        entries.push(json!({"fullUrl": format!("urn:uuid:o{p}-{i}"), "resource": {
            "resourceType": "Observation", "id": format!("o{p}-{i}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
            "subject": {"reference": format!("urn:uuid:p{p}")},
            "effectiveDateTime": "2020-01-01T10:00:00Z", "valueQuantity": {"value": 70 + i % 20, "unit": "/min"}}}));
    }
    serde_json::to_vec_pretty(
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
    )
    .unwrap()
}

#[test]
fn generated_bundles_tape_equals_tree() {
    for profile in profiles() {
        for p in 0..2 {
            let b = generated_bundle(p);
            assert!(fast_tape(&profile, &b).is_some());
            assert_same(&profile, Format::FhirJson, &b, "generated bundle");
        }
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Documents that exercise the corners of the walk.
fn edge_cases() -> Vec<Value> {
    vec![
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111", "resource": {
                "resourceType": "Patient", "id": "11111111-1111-1111-1111-111111111111",
                "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "MRN-1"},
                               {"system": "ssn", "value": "999-40-8244"}],
                "name": [{"use": "official", "family": "Quixoteson", "given": ["Dulcinea", "Q"], "prefix": ["Ms."]}],
                "telecom": [{"system": "phone", "value": "555-123-4567", "use": "home"}, {"system": "email", "value": "dq@example.org"}],
                "birthDate": "1921-03-04",
                "address": [{"line": ["12 Windmill Road"], "city": "Tobosoville", "state": "Lagos", "postalCode": "03601", "country": "US"}],
                "extension": [
                    {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": "Panza"},
                    {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {"city": "Lagos", "state": "Lagos"}},
                    {"url": "http://example.org/geolocation", "extension": [{"url": "latitude", "valueDecimal": 1.50}]}
                ],
                "contact": [{"name": {"family": "Panza", "given": ["Sancho"]}, "address": {"city": "Elsewhere"}}],
                "photo": [{"contentType": "image/png", "data": "iVBORw0KGgo="}],
                "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Dulcinea Quixoteson, born 1921-03-04</div>"}
            }},
            {"resource": null},
            {"resource": {"id": "no-type"}},
            {"resource": [1, 2]},
            {"fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222", "resource": {
                "resourceType": "Encounter", "id": "22222222-2222-2222-2222-222222222222",
                "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111", "display": "Dulcinea Quixoteson"},
                "period": {"start": "2020-05-01T10:00:00Z", "end": "2020-05-03T12:00:00Z"},
                "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "1", "display": "Flu"}], "text": "Flu"},
                               {"coding": [{"system": "http://snomed.info/sct", "code": "2", "display": "Cough"}], "text": "Dulcinea coughs"}],
                "contained": [{"resourceType": "Location", "id": "loc", "address": {"city": "Tobosoville", "line": ["1 Road"]}}, {"no": "type", "who": "Quixoteson", "data": "RHVsY2luZWE="}, 5],
                "odd": {"x.data": "RHVsY2luZWE=", "contentType": "text/plain"},
                "location": [{"location": {"reference": "#loc"}}],
                "empty": [], "emptyObject": {}, "nested": [[1, "Dulcinea"], []], "nothing": null,
                "participant": [{"individual": {"display": "Dr. X"}}],
                "hospitalization": {"origin": {"reference": "Patient?identifier=MRN-1"}, "destination": {"reference": "Location/loc/_history/2"}},
                "length": {"value": 2.0, "unit": "d"},
                "serviceProvider": {"reference": "urn:oid:1.2.3.4"}
            }},
            {"fullUrl": "urn:uuid:33333333-3333-3333-3333-333333333333", "resource": {
                "resourceType": "Observation", "id": "33333333-3333-3333-3333-333333333333",
                "status": "final", "subject": {"reference": "Patient/11111111-1111-1111-1111-111111111111"},
                "code": {"text": "Age"}, "valueAge": {"value": 95, "unit": "a"},
                "valueQuantity": {"value": 174.5, "unit": "cm"},
                "valueInteger": 47,
                "component": [{"valueAge": {"value": 3.0}}, {"valueAge": {"value": 120}}, {"valueAge": {"value": -0.0}}],
                "note": [{"text": "Dulcinea was well.\nCall 555-123-4567", "authorString": "Sancho"}],
                "effectivePeriod": {"start": "2020-05", "end": "2020"},
                "issued": "2020-05-01T10:00:00.123+02:00",
                "valueBoolean": true, "deceasedBoolean": false
            }},
            {"resource": {"resourceType": "DiagnosticReport", "id": "dr",
                "presentedForm": [{"contentType": "text/plain", "data": b64("Dulcinea Quixoteson seen on 2020-05-01.\nMRN-1")},
                                  {"contentType": "application/pdf", "data": "JVBERi0xLjQK"},
                                  {"contentType": "text/plain", "data": "###"},
                                  {"contentType": "text/plain", "data": b64("no phi here"), "title": "Note", "url": "http://x/y"}]}},
            {"resource": {"resourceType": "Bundle", "id": "inner", "entry": [{"resource": {"resourceType": "Basic", "id": "b"}}, {"resource": "x"}]}},
            {"request": {"method": "POST", "url": "Patient?identifier=MRN-1"}, "response": {"location": "Patient/11111111-1111-1111-1111-111111111111/_history/1"}}
        ]}),
        json!({"resourceType": "Patient", "id": "solo", "name": [{"text": "Solo Person"}], "deceasedDateTime": "2001-02-03"}),
        json!({"resourceType": "Bundle", "identifier": {"value": "MRN-9"}, "note": "Solo Person", "entry": [
            {"resource": {"resourceType": "Patient", "id": "solo", "identifier": [{"value": "MRN-9"}], "name": [{"family": "Person", "given": ["Solo"]}]}},
            {"resource": {"resourceType": "Observation", "id": "o", "note": [{"text": "MRN-9"}], "nested": [["Solo Person"]],
                          "content": [{"attachment": {"contentType": "text/plain", "data": b64("Solo Person was seen")}}]}}
        ]}),
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Observation", "resourceType2": 1, "code": {}, "x": [{}], "y": [null]}),
        json!({"resourceType": 5}),
        json!({"resourceType": "Bundle", "entry": []}),
        json!({"resourceType": "Bundle", "entry": {"resource": {"resourceType": "Patient"}}}),
        json!({"resourceType": "Bundle"}),
    ]
}

#[test]
fn edge_cases_tape_equals_tree() {
    let mut hits = 0;
    for (i, doc) in edge_cases().iter().enumerate() {
        let compact = serde_json::to_vec(doc).unwrap();
        let pretty = serde_json::to_vec_pretty(doc).unwrap();
        let mut spelled = String::new();
        respell(doc, i as u64 * 7919, &mut spelled);
        for profile in profiles() {
            for (how, bytes) in [
                ("compact", compact.as_slice()),
                ("pretty", pretty.as_slice()),
                ("respelled", spelled.as_bytes()),
            ] {
                let (_, report) = assert_same(
                    &profile,
                    Format::FhirJson,
                    bytes,
                    &format!("edge case {i} {how}"),
                );
                hits += report.leak_check.hits.len();
            }
        }
    }
    // Some outputs hold identifying values, so the full scan behind the quick check runs too.
    assert!(hits > 0);
    // With a BOM, and documents the tape leaves to the tree.
    let safe = Profile::builtin("safe-harbor").unwrap();
    let mut bom = airlock_formats::UTF8_BOM.to_vec();
    bom.extend(serde_json::to_vec(&edge_cases()[1]).unwrap());
    assert!(fast_tape(&safe, airlock_formats::strip_bom(&bom)).is_some());
    assert_same(&safe, Format::FhirJson, &bom, "bom");
    for text in [
        &br#"{"resourceType":"Patient","id":"1","id":"2"}"#[..],
        br#"{"resourceType":"Patient","\u0069d":"2"}"#,
        br#"{"resourceType":"Patient""#,
        br#"[{"resourceType":"Patient"}]"#,
        b"",
    ] {
        assert_same(&safe, Format::FhirJson, text, "left to the tree");
    }
}

const KEYS: &[&str] = &[
    "id",
    "name",
    "family",
    "given",
    "prefix",
    "use",
    "text",
    "div",
    "status",
    "telecom",
    "system",
    "value",
    "address",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
    "identifier",
    "type",
    "coding",
    "code",
    "display",
    "reference",
    "subject",
    "patient",
    "extension",
    "url",
    "valueString",
    "valueAddress",
    "valueQuantity",
    "valueAge",
    "age",
    "valueInteger",
    "birthDate",
    "effectiveDateTime",
    "issued",
    "period",
    "start",
    "end",
    "note",
    "contentType",
    "data",
    "attachment",
    "content",
    "title",
    "contained",
    "resource",
    "resourceType",
    "fullUrl",
    "meta",
    "unit",
    "comment",
    "photo",
    "position",
    "x",
];

fn strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "Alice", "Smith", "Dr. Bob Jones", "2020-01-02", "2020-01-02T10:00:00Z", "1931", "1931-05",
        "urn:uuid:1234", "Patient/p1", "#c1", "Patient", "Patient?identifier=x",
        "http://loinc.org", "MR", "12345", "02115-1234", "03601", "555-123-4567", "a@b.org",
        "12 Main St", "Springfield", "MA", "Washington", "final", "Observation",
        "<div xmlns=\"http://www.w3.org/1999/xhtml\">Seen by <b>Alice Smith</b> on 2020-01-02</div>",
        "not base64!", "Heart rate", "quote \" and \\ and \n newline", "é ü 😀 /", "", "95",
        "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "geolocation",
        "text/plain", "Alice called from Springfield on 2020-01-02 about MRN 12345",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push(b64("Alice Smith seen on 2020-01-02 in Springfield"));
    v
}

fn value() -> impl Strategy<Value = Value> {
    let strs = strings();
    let leaf = prop_oneof![
        4 => prop::sample::select(strs).prop_map(Value::String),
        1 => prop::sample::select(vec![json!(0), json!(5), json!(95), json!(120), json!(-3), json!(1.5), json!(174.5), json!(2.0), json!(12_345_678_901_234_567_890u64)]),
        1 => prop::sample::select(vec![json!(true), json!(false), Value::Null]),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            3 => prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn resource() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "Patient",
            "Observation",
            "Encounter",
            "DiagnosticReport",
            "Location",
        ]),
        prop::collection::vec((prop::sample::select(KEYS), value()), 0..8),
    )
        .prop_map(|(rt, kv)| {
            let mut m = serde_json::Map::new();
            m.insert("resourceType".to_owned(), json!(rt));
            for (k, v) in kv {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m)
        })
}

fn document() -> impl Strategy<Value = Value> {
    prop_oneof![
        resource(),
        prop::collection::vec(
            (
                prop::sample::select(vec!["urn:uuid:1234", "urn:uuid:p1", "x"]),
                resource()
            ),
            0..4
        )
        .prop_map(|rs| {
            let entry: Vec<Value> = rs
                .into_iter()
                .map(|(u, r)| json!({"fullUrl": u, "resource": r}))
                .collect();
            json!({"resourceType": "Bundle", "type": "collection", "entry": entry})
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_resources_tape_equals_tree(doc in document(), seed in any::<u64>(), which in 0usize..5) {
        let profiles = profiles();
        let profile = &profiles[which % profiles.len()];
        let compact = serde_json::to_vec(&doc).unwrap();
        assert_same(profile, Format::FhirJson, &compact, "generated compact");
        let mut spelled = String::new();
        respell(&doc, seed, &mut spelled);
        assert_same(profile, Format::FhirJson, spelled.as_bytes(), "generated respelled");
    }
}

/// A bundle's resources as NDJSON, one per line, in the given spelling.
fn ndjson(bundle: &Value, pretty_lines: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in bundle["entry"].as_array().into_iter().flatten() {
        if let Some(r) = e.get("resource") {
            if pretty_lines {
                // Whitespace inside a line (no newlines).
                out.extend(
                    serde_json::to_string_pretty(r)
                        .unwrap()
                        .replace('\n', " ")
                        .into_bytes(),
                );
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend(serde_json::to_vec(r).unwrap());
                out.push(b'\n');
            }
        }
    }
    out
}

#[test]
fn synthea_ndjson_tape_equals_tree() {
    let Some(d) = data_dir() else {
        return;
    };
    let safe = Profile::builtin("safe-harbor").unwrap();
    for name in ["Luisa710", "Paris331"] {
        let path = std::fs::read_dir(d.join("fhir/synthea"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(name))
            .unwrap();
        let bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for pretty in [false, true] {
            let (out, _) = assert_same(&safe, Format::FhirNdjson, &ndjson(&bundle, pretty), name);
            assert!(out.is_some(), "{name}: leak check failed");
        }
    }
}

#[test]
fn ndjson_edge_cases_tape_equals_tree() {
    let docs = edge_cases();
    let mut lines: Vec<u8> = airlock_formats::UTF8_BOM.to_vec();
    lines.extend_from_slice(b"\n\n   \n");
    for d in &docs {
        lines.extend(serde_json::to_vec(d).unwrap());
        lines.extend_from_slice(b"\n");
    }
    lines.extend_from_slice(b"{broken\n[1,2]\n{\"no\":\"type\"}\n\xff\xfe\n");
    lines.extend(serde_json::to_vec(&docs[1]).unwrap());
    let mut spelled = String::new();
    respell(&docs[0], 99, &mut spelled);
    lines.push(b'\n');
    lines.extend(spelled.replace(['\n', '\r'], " ").into_bytes());
    lines.extend_from_slice(b"\n{\"resourceType\":\"Patient\",\"id\":\"1\",\"id\":\"2\"}\n");
    // A Patient spelled with an escape, named later in free text.
    lines.extend_from_slice(
        br#"{"resourceType":"\u0050atient","id":"esc","name":[{"family":"Zebulonsky"}]}"#,
    );
    lines.extend_from_slice(b"\n");
    lines.extend_from_slice(br#"{"resourceType":"Observation","note":[{"text":"Zebulonsky"}]}"#);
    lines.extend_from_slice(b"\n");
    for profile in profiles() {
        assert_same(&profile, Format::FhirNdjson, &lines, "ndjson edge cases");
    }
}

#[test]
fn ndjson_files_tape_equals_tree() {
    // File mode: the same outputs and report through `deid_paths` as through the tree walk
    // (checked on the per-buffer path above); here the written file must match deid_bytes.
    let docs = edge_cases();
    let mut lines = Vec::new();
    for d in docs.iter().skip(1) {
        lines.extend(serde_json::to_vec(d).unwrap());
        lines.push(b'\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, &lines).unwrap();
    // A profile that reports leaks rather than failing (the outputs hold some).
    let warn = profiles().swap_remove(3);
    assert_eq!(warn.name(), "methods");
    let keys = keys();
    let mut cw = Crosswalk::new();
    let (bytes_out, _) = outcome(deid_bytes_with(
        &warn,
        &keys,
        &mut cw,
        Format::FhirNdjson,
        &lines,
        Walker::Tree,
    ));
    let out_dir = dir.path().join("out");
    crate::deid_paths(
        &warn,
        &keys,
        &mut cw,
        std::slice::from_ref(&input),
        &out_dir,
    )
    .unwrap();
    let written = std::fs::read(out_dir.join("in.ndjson")).unwrap();
    assert_eq!(Some(written), bytes_out);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Small edits to a real document (most leave it invalid, some change it in odd ways):
    /// whatever the tree walk makes of it, the tape walk makes the same.
    #[test]
    fn edited_documents_tape_equals_tree(
        which in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..16), 1..4),
        profile in 0usize..5,
    ) {
        const INSERTS: [&str; 16] = [
            " ", "\n", "\\u0041", "é", "\"", "\\", "1", ".", "e", "-", "{", "}", "[", "]", ",", ":",
        ];
        let docs = edge_cases();
        let mut text = serde_json::to_string(&docs[[0, 1, 2][which]]).unwrap();
        for (at, what) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            text.insert_str(i, INSERTS[what]);
        }
        let profiles = profiles();
        assert_same(&profiles[profile], Format::FhirJson, text.as_bytes(), "edited");
        assert_same(&profiles[profile], Format::FhirNdjson, text.as_bytes(), "edited ndjson");
    }
}
