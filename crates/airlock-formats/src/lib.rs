//! Parsers, validators and serialisers for the clinical formats Airlock ingests: FHIR R4 JSON
//! (a Bundle or a single resource), FHIR NDJSON (bulk export), HL7 v2 and CSV.
//!
//! # Design
//! This crate is pure: it reads bytes and readers, it writes strings and writers, and it never
//! touches the file system (the only use of a [`Path`] is [`sniff`], which looks at its
//! extension). It knows the *syntax* of each format; what a field means for privacy lives in
//! `airlock-deid`.
//!
//! Errors ([`FormatError`]) name a line, a record index, a segment or a field position and never
//! quote the input: the input is identified patient data. In particular, `serde_json` and `csv`
//! error messages (which can quote values) are reduced to their category and position.
//!
//! * [`hl7`]: a lossless HL7 v2 model (message → segments → fields → repetitions → components →
//!   subcomponents) that keeps the escaped text, so parse → serialise gives back the same bytes
//!   (modulo the normalisation documented in [`hl7`]); values are decoded and encoded on demand.
//! * [`fhir`]: JSON parsing with safe errors, iteration over the resources of a Bundle and the
//!   lines of an NDJSON stream with their positions.
//! * [`tabular`]: CSV readers and writers (the `csv` crate) with ragged-row detection.

pub mod fhir;
pub mod hl7;
pub mod notes;
pub mod tabular;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The UTF-8 byte-order mark, accepted (and dropped) at the start of any input.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A clinical data format this crate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One FHIR R4 JSON document: a Bundle or a single resource.
    FhirJson,
    /// FHIR bulk-data NDJSON: one resource per line.
    FhirNdjson,
    /// HL7 v2 pipe-delimited messages (one or more per file).
    Hl7v2,
    /// Comma-separated values with a header row.
    Csv,
    /// Free-text notes: JSON Lines (`{"text", ...}` a line) or one plain text note.
    Notes,
}

impl Format {
    /// The conventional file extension for this format (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Format::FhirJson => "json",
            Format::FhirNdjson => "ndjson",
            Format::Hl7v2 => "hl7",
            Format::Csv => "csv",
            Format::Notes => "jsonl",
        }
    }

    /// A short stable name (`fhir-json`, `fhir-ndjson`, `hl7v2`, `csv`, `notes`).
    pub fn name(self) -> &'static str {
        match self {
            Format::FhirJson => "fhir-json",
            Format::FhirNdjson => "fhir-ndjson",
            Format::Hl7v2 => "hl7v2",
            Format::Csv => "csv",
            Format::Notes => "notes",
        }
    }
}

/// What [`validate`] found in a well-formed input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatSummary {
    /// Records: resources (the entries of a Bundle, or 1 for a single resource), NDJSON lines,
    /// HL7 messages, or CSV data rows (the header excluded).
    pub records: u64,
    /// FHIR resource types (Bundle entries or NDJSON lines) with their counts.
    pub resource_types: BTreeMap<String, u64>,
    /// HL7 message types (`MSH-9.1^MSH-9.2`, e.g. `ADT^A01`) with their counts.
    pub message_types: BTreeMap<String, u64>,
    /// CSV column names, in order (empty for other formats).
    pub columns: Vec<String>,
}

/// Why an input is not well formed. Never quotes the input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The input is not valid UTF-8.
    #[error("invalid utf-8 at line {line}")]
    Utf8 {
        /// 1-based line.
        line: u64,
    },
    /// The input is empty (or only whitespace).
    #[error("empty input")]
    Empty,
    /// JSON syntax or structure error.
    #[error("invalid json at line {line}, column {column}: {category}")]
    Json {
        /// 1-based line of the document (for NDJSON: the line in the file).
        line: u64,
        /// 1-based column.
        column: u64,
        /// `syntax`, `eof` (truncated), `data` or `io`.
        category: &'static str,
    },
    /// A FHIR resource that is not a JSON object or lacks a string `resourceType`.
    #[error("record {record} at line {line}: {reason}")]
    Fhir {
        /// 0-based record index (Bundle entry index or NDJSON record index).
        record: u64,
        /// 1-based line (for NDJSON; 1 for a JSON document).
        line: u64,
        /// What is wrong, e.g. "missing `resourceType`".
        reason: &'static str,
    },
    /// An HL7 v2 syntax error.
    #[error("hl7 message {message}, line {line}, segment `{segment}`: {reason}")]
    Hl7 {
        /// 0-based message index within the file.
        message: u64,
        /// 1-based line of the segment within the file.
        line: u64,
        /// The segment id (or `?` when unreadable). Segment ids are not PHI.
        segment: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An HL7 v2 message longer than the limit (see [`hl7::MAX_MESSAGE_BYTES`]): refused
    /// before it is parsed, since the parsed model is many times its size.
    #[error(
        "hl7 message {message} at byte offset {offset} (line {line}): {size} bytes, over the {limit}-byte limit"
    )]
    Hl7MessageTooLarge {
        /// 0-based message index within the file.
        message: u64,
        /// Byte offset of the message's first segment in the input.
        offset: u64,
        /// 1-based line of the message's first segment.
        line: u64,
        /// The message's length in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A CSV row with a different number of fields than the header.
    #[error("csv line {line}: {found} fields, header has {expected}")]
    RaggedRow {
        /// 1-based line (the header is line 1).
        line: u64,
        /// Columns in the header.
        expected: u64,
        /// Fields in this row.
        found: u64,
    },
    /// A line of a notes file that is not a note.
    #[error("notes line {line}: {reason}")]
    Note {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another CSV error (quoting, encoding, I/O) at a position.
    #[error("csv line {line}: {reason}")]
    Csv {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Guesses the format of a file from its extension, then from the first bytes of its content.
///
/// Extensions: `.json` → [`Format::FhirJson`], `.ndjson`/`.jsonl` → [`Format::FhirNdjson`]
/// (or [`Format::Notes`] when the first line is a note, not a resource), `.hl7`/`.hl7v2` →
/// [`Format::Hl7v2`], `.csv` → [`Format::Csv`], `.txt` → [`Format::Notes`] unless the content
/// says HL7 or CSV. Otherwise, content: `MSH|`, `FHS|` or `BHS|` → HL7; a first line that is a whole JSON object followed
/// by another line → NDJSON; `{` → FHIR JSON; a first line with a comma and no braces → CSV.
pub fn sniff(path: &Path, head: &[u8]) -> Option<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => return Some(Format::FhirJson),
        Some("ndjson" | "jsonl") => {
            let head = strip_bom(head);
            let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let note = serde_json::from_slice::<serde_json::Value>(first)
                .is_ok_and(|v| notes::is_note(&v));
            return Some(if note {
                Format::Notes
            } else {
                Format::FhirNdjson
            });
        }
        Some("hl7" | "hl7v2") => return Some(Format::Hl7v2),
        Some("csv") => return Some(Format::Csv),
        Some("txt") => {
            return match sniff_content(head) {
                Some(f @ (Format::Hl7v2 | Format::Csv)) => Some(f),
                _ => Some(Format::Notes),
            };
        }
        _ => {}
    }
    sniff_content(head)
}

/// Guesses the format from the first bytes alone (see [`sniff`]).
pub fn sniff_content(head: &[u8]) -> Option<Format> {
    let head = strip_bom(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = head.get(start..)?;
    if head.starts_with(b"MSH") || head.starts_with(b"FHS") || head.starts_with(b"BHS") {
        return Some(Format::Hl7v2);
    }
    if head.first() == Some(&b'{') {
        if let Some(nl) = head.iter().position(|&b| b == b'\n') {
            let first = head.get(..nl).unwrap_or_default();
            let rest = head.get(nl + 1..).unwrap_or_default();
            let rest_starts_object = rest
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|&b| b == b'{');
            if rest_starts_object && serde_json::from_slice::<serde_json::Value>(first).is_ok() {
                return Some(Format::FhirNdjson);
            }
        }
        return Some(Format::FhirJson);
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    if first_line.contains(&b',') && !first_line.contains(&b'{') {
        return Some(Format::Csv);
    }
    None
}

/// Checks that `bytes` is well-formed `format` and counts its records.
///
/// FHIR JSON: a Bundle or a single resource (an object with a string `resourceType`; every
/// Bundle entry with a `resource` must have one too). NDJSON: one resource per non-blank line.
/// HL7: messages starting with `MSH`, segments separated by `\r`, `\n` or `\r\n`, a UTF-8 BOM
/// allowed. CSV: a header and rows with the same number of fields.
pub fn validate(format: Format, bytes: &[u8]) -> Result<FormatSummary, FormatError> {
    match format {
        Format::FhirJson => fhir::validate_json(bytes),
        Format::FhirNdjson => fhir::validate_ndjson(bytes),
        Format::Hl7v2 => hl7::validate(bytes),
        Format::Csv => tabular::validate(bytes),
        Format::Notes => notes::validate(bytes),
    }
}

/// `bytes` without a leading UTF-8 byte-order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// The 1-based line of byte offset `pos` in `bytes` (counting `\n`, and lone `\r`).
pub(crate) fn line_of(bytes: &[u8], pos: usize) -> u64 {
    let upto = bytes.get(..pos).unwrap_or(bytes);
    let mut line = 1u64;
    let mut prev_cr = false;
    for &b in upto {
        match b {
            b'\n' if prev_cr => {}
            b'\n' | b'\r' => line += 1,
            _ => {}
        }
        prev_cr = b == b'\r';
    }
    line
}

/// Decodes UTF-8 or reports the line of the first invalid byte.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, FormatError> {
    std::str::from_utf8(bytes).map_err(|e| FormatError::Utf8 {
        line: line_of(bytes, e.valid_up_to()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_by_extension_then_content() {
        assert_eq!(sniff(Path::new("a.JSON"), b""), Some(Format::FhirJson));
        assert_eq!(sniff(Path::new("a.ndjson"), b""), Some(Format::FhirNdjson));
        assert_eq!(sniff(Path::new("a.hl7"), b""), Some(Format::Hl7v2));
        assert_eq!(sniff(Path::new("a.csv"), b""), Some(Format::Csv));
        assert_eq!(
            sniff(Path::new("a.txt"), b"\xEF\xBB\xBFMSH|^~\\&|"),
            Some(Format::Hl7v2)
        );
        assert_eq!(
            sniff(
                Path::new("x"),
                b"{\"resourceType\":\"Patient\"}\n{\"resourceType\":\"Pa"
            ),
            Some(Format::FhirNdjson)
        );
        assert_eq!(
            sniff(Path::new("x"), b"{\n  \"resourceType\": \"Bundle\""),
            Some(Format::FhirJson)
        );
        assert_eq!(sniff(Path::new("x"), b"a,b,c\n1,2,3"), Some(Format::Csv));
        assert_eq!(sniff(Path::new("x"), b"hello"), None);
        assert_eq!(sniff(Path::new("x"), b""), None);
    }

    #[test]
    fn line_counting() {
        assert_eq!(line_of(b"a\nb\r\nc\rd", 0), 1);
        assert_eq!(line_of(b"a\nb\r\nc\rd", 2), 2);
        assert_eq!(line_of(b"a\nb\r\nc\rd", 5), 3);
        assert_eq!(line_of(b"a\nb\r\nc\rd", 7), 4);
    }
}
