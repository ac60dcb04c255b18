//! Free-text clinical notes as a data set: JSON Lines, one note a line (`{"text": ...}` with
//! the patient's record number and whatever else the export carries), or a plain text file
//! holding one note.

use serde_json::Value;

use crate::{FormatError, FormatSummary, strip_bom};

/// Fields that hold a note's text, in the order they are looked for.
pub const TEXT_FIELDS: &[&str] = &["text", "note", "note_text", "body", "content"];

/// Whether a JSON object reads as a note rather than a FHIR resource: no `resourceType`, and
/// a string in one of [`TEXT_FIELDS`].
pub fn is_note(v: &Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    !o.contains_key("resourceType")
        && TEXT_FIELDS
            .iter()
            .any(|f| o.get(*f).is_some_and(Value::is_string))
}

/// Whether `bytes` are JSON Lines notes (else a plain text note).
pub fn is_jsonl(bytes: &[u8]) -> bool {
    strip_bom(bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Checks notes: every non-blank JSON line an object with a text field (named by line on
/// failure, never quoted); a plain text file is one note and must be UTF-8 and not blank.
pub fn validate(bytes: &[u8]) -> Result<FormatSummary, FormatError> {
    let bytes = strip_bom(bytes);
    let mut summary = FormatSummary::default();
    if !is_jsonl(bytes) {
        let text = std::str::from_utf8(bytes).map_err(|e| FormatError::Utf8 {
            line: crate::line_of(bytes, e.valid_up_to()),
        })?;
        if text.trim().is_empty() {
            return Err(FormatError::Empty);
        }
        summary.records = 1;
        return Ok(summary);
    }
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| FormatError::Json {
            line: line_no,
            column: e.column() as u64,
            category: match e.classify() {
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Eof => "eof",
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Io => "io",
            },
        })?;
        if !is_note(&v) {
            return Err(FormatError::Note {
                line: line_no,
                reason: "not a note: an object with a string `text` (or `note`, `body`, \
                         `content`) and no `resourceType`",
            });
        }
        summary.records += 1;
    }
    if summary.records == 0 {
        return Err(FormatError::Empty);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_recognised_and_checked() {
        let ok = b"{\"id\": 1, \"mrn\": \"M1\", \"text\": \"Seen today.\"}\n\n{\"note\": \"x\"}\n";
        assert_eq!(validate(ok).unwrap().records, 2);
        assert_eq!(validate(b"Plain note.\n").unwrap().records, 1);
        let fhir = b"{\"resourceType\": \"Patient\", \"text\": \"x\"}\n";
        assert!(matches!(
            validate(fhir),
            Err(FormatError::Note { line: 1, .. })
        ));
        assert!(matches!(
            validate(b"{\"text\": 1}\n{\"text\": \"a\"}"),
            Err(FormatError::Note { line: 1, .. })
        ));
        assert!(matches!(
            validate(b"{\"text\": \"a\"}\n{\"text\": "),
            Err(FormatError::Json { line: 2, .. })
        ));
        assert!(matches!(validate(b"  \n"), Err(FormatError::Empty)));
    }
}
