//! Free-text notes as a data set ([`Format::Notes`](crate::Format::Notes)): JSON Lines with one
//! note a line, or one plain text note a file.
//!
//! A note's fields are treated by name, conservatively: the text goes through the free-text
//! engine with the patient's known identifiers; the patient's record number becomes the same
//! pseudonym it gets in every other file of the run (`mrn` namespace, as a FHIR identifier's);
//! a note id a surrogate of its shape; dates follow the profile's date policy (shifted by the
//! patient's offset under a shift); a note's type or category is kept; any other field is
//! removed, since an export's extra field (an author, a department, an account) may identify.

use airlock_formats::notes::TEXT_FIELDS;
use serde_json::{Map, Value};

use crate::engine::Run;
use crate::leak::{Findings, LeakKind, Scanner};
use crate::report::LeakHit;

/// Fields holding the patient's record number.
const PATIENT_FIELDS: &[&str] = &[
    "mrn",
    "patient",
    "patient_id",
    "patient_mrn",
    "record_number",
    "medical_record_number",
    "subject_id",
    "person_id",
];

/// Fields naming the note itself.
const ID_FIELDS: &[&str] = &["id", "note_id", "document_id", "row_id"];

/// Fields kept as they are: what kind of note it is.
const KEEP_FIELDS: &[&str] = &[
    "type",
    "note_type",
    "category",
    "kind",
    "section",
    "specialty",
];

enum Field {
    Text,
    Patient,
    Id,
    Date,
    Keep,
    Drop,
}

fn field(name: &str) -> Field {
    let n = name.trim().to_ascii_lowercase();
    let n = n.as_str();
    if TEXT_FIELDS.contains(&n) {
        Field::Text
    } else if PATIENT_FIELDS.contains(&n) {
        Field::Patient
    } else if ID_FIELDS.contains(&n) {
        Field::Id
    } else if KEEP_FIELDS.contains(&n) {
        Field::Keep
    } else if n.contains("date") || n.contains("time") || n.ends_with("_at") {
        Field::Date
    } else {
        Field::Drop
    }
}

/// A field's name as a report may show it: plain names only.
fn shown(name: &str) -> &str {
    if !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        name
    } else {
        "?"
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Each non-blank line of a JSON Lines notes file: (0-based record, 1-based line, bytes).
fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, u64, &[u8])> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(record, (i, l))| (record as u64, i as u64 + 1, l))
}

/// The pre-scan: the record numbers and note ids are identifying values everywhere in the run.
pub(crate) fn prescan(run: &mut Run<'_>, bytes: &[u8]) {
    if !airlock_formats::notes::is_jsonl(bytes) {
        return;
    }
    for (_, _, line) in lines(bytes) {
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        for (k, v) in &o {
            if let (Field::Patient | Field::Id, Some(s)) = (field(k), scalar(v)) {
                run.leak(LeakKind::Id, &s);
            }
        }
    }
    run.refresh_scrub();
}

/// De-identifies a notes file; lines that are not notes are quarantined, never written.
pub(crate) fn deid(run: &mut Run<'_>, label: &str, bytes: &[u8]) -> Vec<u8> {
    let bytes = airlock_formats::strip_bom(bytes);
    if !airlock_formats::notes::is_jsonl(bytes) {
        run.records_in += 1;
        let text = String::from_utf8_lossy(bytes);
        let out = run.text(&text, None).unwrap_or_default();
        run.changes.add("text", "text");
        run.records_out += 1;
        return out.into_bytes();
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (record, line_no, line) in lines(bytes) {
        let parsed = serde_json::from_slice::<Value>(line)
            .ok()
            .filter(airlock_formats::notes::is_note);
        let Some(Value::Object(note)) = parsed else {
            crate::quarantine(
                run,
                label,
                record,
                line_no,
                "",
                "not a note: a JSON object with a string `text` and no `resourceType`",
            );
            continue;
        };
        run.records_in += 1;
        let mrn = note
            .iter()
            .find(|(k, _)| matches!(field(k), Field::Patient))
            .and_then(|(_, v)| scalar(v));
        let mut written = Map::new();
        for (k, v) in &note {
            let path = shown(k);
            let value = match (field(k), v) {
                (Field::Text, Value::String(s)) => run.text(s, mrn.as_deref()).map(Value::String),
                (Field::Patient, v) => scalar(v).map(|s| Value::String(run.patient_pseudonym(&s))),
                (Field::Id, v) => scalar(v).map(|s| Value::String(run.key_surrogate("note", &s))),
                (Field::Date, Value::String(s)) => {
                    let method = run.default_date_method();
                    run.date(s, method, mrn.as_deref(), false, "")
                        .map(Value::String)
                }
                (Field::Keep, v) => Some(v.clone()),
                _ => None,
            };
            let method = match (field(k), &value) {
                (_, None) => "redact",
                (Field::Text, _) => "text",
                (Field::Patient | Field::Id, _) => "pseudonym",
                (Field::Date, _) => "date",
                _ => "keep",
            };
            run.changes.add(path, method);
            if let Some(value) = value {
                written.insert(k.clone(), value);
            }
        }
        if serde_json::to_writer(&mut out, &Value::Object(written)).is_ok() {
            out.push(b'\n');
            run.records_out += 1;
        }
    }
    out
}

/// The leak check over a notes output: every string, by line and field.
pub(crate) fn scan_output(
    scanner: &Scanner,
    bytes: &[u8],
    label: &str,
    findings: &mut Findings<'_>,
) {
    let check = |record: u64, path: &str, value: &str, findings: &mut Findings<'_>| {
        findings.scanned += 1;
        if let Some(k) = scanner.find(value) {
            let hit = LeakHit {
                file: label.to_owned(),
                record,
                path: path.to_owned(),
                kind: k.name().to_owned(),
            };
            findings.hit(scanner, value, k, hit);
        }
    };
    if !airlock_formats::notes::is_jsonl(bytes) {
        check(0, "text", &String::from_utf8_lossy(bytes), findings);
        return;
    }
    for (record, _, line) in lines(bytes) {
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        for (k, v) in &o {
            if let Some(s) = scalar(v) {
                check(record, shown(k), &s, findings);
            }
        }
    }
}
