//! FHIR R4 JSON and NDJSON: parsing with safe errors and iteration over resources with their
//! positions (Bundle entry index, NDJSON line number).
//!
//! Values are `serde_json::Value` with `preserve_order` (the workspace enables it), so a parsed
//! and re-serialised resource keeps its member order.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde_json::Value;

use crate::{FormatError, FormatSummary, UTF8_BOM, strip_bom, utf8};

/// Parses one JSON document (a UTF-8 BOM allowed). Errors carry position and category only.
pub fn parse_json(bytes: &[u8]) -> Result<Value, FormatError> {
    parse_json_at(strip_bom(bytes), 0)
}

/// Parses a JSON document whose first line is line `line_offset + 1` of a larger file.
pub fn parse_json_at(bytes: &[u8], line_offset: u64) -> Result<Value, FormatError> {
    serde_json::from_slice(bytes).map_err(|e| json_error(&e, line_offset))
}

/// Converts a `serde_json` error to a [`FormatError`] without its message (which may quote data).
pub fn json_error(e: &serde_json::Error, line_offset: u64) -> FormatError {
    let category = match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof (truncated)",
    };
    FormatError::Json {
        line: line_offset + e.line() as u64,
        column: e.column() as u64,
        category,
    }
}

/// The `resourceType` of a JSON value, if it is an object with a string `resourceType`.
pub fn resource_type(v: &Value) -> Option<&str> {
    v.get("resourceType").and_then(Value::as_str)
}

/// Checks that `v` is a resource (an object with a string `resourceType`).
pub fn check_resource(v: &Value, record: u64, line: u64) -> Result<&str, FormatError> {
    if !v.is_object() {
        return Err(FormatError::Fhir {
            record,
            line,
            reason: "not a json object",
        });
    }
    resource_type(v).ok_or(FormatError::Fhir {
        record,
        line,
        reason: "missing `resourceType`",
    })
}

/// Whether `v` is a Bundle.
pub fn is_bundle(v: &Value) -> bool {
    resource_type(v) == Some("Bundle")
}

/// The resources of a document with their entry index: for a Bundle, each
/// `entry[i].resource` (entries without a resource are skipped); otherwise the document itself
/// at index 0.
pub fn resources(doc: &Value) -> Vec<(usize, &Value)> {
    if is_bundle(doc) {
        doc.get("entry")
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| e.get("resource").map(|r| (i, r)))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![(0, doc)]
    }
}

/// Validates a FHIR JSON document (see [`crate::validate`]).
pub fn validate_json(bytes: &[u8]) -> Result<FormatSummary, FormatError> {
    let text = utf8(strip_bom(bytes))?;
    if text.trim().is_empty() {
        return Err(FormatError::Empty);
    }
    let doc = parse_json(text.as_bytes())?;
    check_resource(&doc, 0, 1)?;
    let mut summary = FormatSummary::default();
    if is_bundle(&doc) {
        if let Some(entries) = doc.get("entry").and_then(Value::as_array) {
            for (i, e) in entries.iter().enumerate() {
                if let Some(r) = e.get("resource") {
                    let t = check_resource(r, i as u64, 1)?;
                    count(&mut summary.resource_types, t);
                    summary.records += 1;
                }
            }
        }
    } else {
        let t = check_resource(&doc, 0, 1)?;
        count(&mut summary.resource_types, t);
        summary.records = 1;
    }
    Ok(summary)
}

/// Validates NDJSON (see [`crate::validate`]).
pub fn validate_ndjson(bytes: &[u8]) -> Result<FormatSummary, FormatError> {
    let mut summary = FormatSummary::default();
    for item in NdjsonReader::new(strip_bom(bytes)) {
        let rec = item?;
        let v = rec.value?;
        let t = check_resource(&v, rec.record, rec.line)?;
        count(&mut summary.resource_types, t);
        summary.records += 1;
    }
    if summary.records == 0 {
        return Err(FormatError::Empty);
    }
    Ok(summary)
}

pub(crate) fn count(map: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else {
        map.insert(key.to_owned(), 1);
    }
}

/// One non-blank NDJSON line.
#[derive(Debug)]
pub struct NdjsonRecord {
    /// 0-based record index (blank lines are not records).
    pub record: u64,
    /// 1-based line number in the stream.
    pub line: u64,
    /// The parsed value, or why this line is not JSON (the stream continues after it).
    pub value: Result<Value, FormatError>,
}

/// Streams an NDJSON reader line by line: memory stays flat with the input size.
///
/// Each item is `Err` only for I/O or UTF-8 failures of the stream itself (which end it); a
/// malformed line yields an [`NdjsonRecord`] whose `value` is `Err`, and the stream goes on.
#[derive(Debug)]
pub struct NdjsonReader<R> {
    lines: NdjsonLines<R>,
}

impl<R: BufRead> NdjsonReader<R> {
    /// Wraps a buffered reader.
    pub fn new(reader: R) -> Self {
        NdjsonReader {
            lines: NdjsonLines::new(reader),
        }
    }
}

impl<R: BufRead> Iterator for NdjsonReader<R> {
    type Item = Result<NdjsonRecord, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next_line()? {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(NdjsonRecord {
            record: line.record,
            line: line.line,
            value: parse_line(line.bytes, line.line),
        }))
    }
}

/// One non-blank NDJSON line as read, before parsing (see [`NdjsonLines`]).
#[derive(Debug, Clone, Copy)]
pub struct RawLine<'a> {
    /// 0-based record index (blank lines are not records).
    pub record: u64,
    /// 1-based line number in the stream.
    pub line: u64,
    /// The line's bytes, with its line ending (and without the BOM on line 1).
    pub bytes: &'a [u8],
}

/// The lines [`NdjsonReader`] parses, unparsed: for callers with their own JSON reader. The
/// numbering, the BOM and blank lines are handled as in [`NdjsonReader`]; [`parse_line`]
/// gives the value it would yield.
#[derive(Debug)]
pub struct NdjsonLines<R> {
    reader: R,
    line: u64,
    record: u64,
    buf: Vec<u8>,
    done: bool,
    /// Bytes of the reader's buffer lent out as the last line, consumed at the next call.
    lent: usize,
}

impl<R: BufRead> NdjsonLines<R> {
    /// Wraps a buffered reader.
    pub fn new(reader: R) -> Self {
        NdjsonLines {
            reader,
            line: 0,
            record: 0,
            buf: Vec::new(),
            done: false,
            lent: 0,
        }
    }

    /// The next non-blank line; `Err` only for an I/O failure of the stream (which ends it).
    ///
    /// A line that lies whole in the reader's buffer (every line of a byte slice, most lines of
    /// a file) is lent from it without a copy; one that crosses the buffer's end is copied.
    pub fn next_line(&mut self) -> Option<Result<RawLine<'_>, FormatError>> {
        loop {
            if self.done {
                return None;
            }
            self.reader.consume(std::mem::take(&mut self.lent));
            let line = self.line + 1;
            // The line's length when it lies whole in the buffer, where its content starts
            // (after a BOM on line 1), and whether it is blank.
            let (whole, skip, blank) = match self.reader.fill_buf() {
                Ok([]) => {
                    self.done = true;
                    return None;
                }
                Ok(avail) => match memchr::memchr(b'\n', avail) {
                    Some(i) => {
                        let (skip, blank) = content(line, avail.get(..=i).unwrap_or_default());
                        (Some(i + 1), skip, blank)
                    }
                    None => (None, 0, false),
                },
                Err(_) => return Some(Err(self.failed())),
            };
            let (skip, blank) = match whole {
                Some(n) => {
                    self.lent = n;
                    (skip, blank)
                }
                None => {
                    self.buf.clear();
                    if self.reader.read_until(b'\n', &mut self.buf).is_err() {
                        return Some(Err(self.failed()));
                    }
                    content(line, &self.buf)
                }
            };
            self.line = line;
            if blank {
                continue;
            }
            let record = self.record;
            self.record += 1;
            let bytes = match whole {
                // The same, unconsumed buffer as above (refilling it reads nothing).
                Some(n) => match self.reader.fill_buf() {
                    Ok(avail) => avail.get(skip..n).unwrap_or_default(),
                    Err(_) => {
                        return Some(Err(FormatError::Json {
                            line,
                            column: 0,
                            category: "io",
                        }));
                    }
                },
                None => self.buf.get(skip..).unwrap_or_default(),
            };
            return Some(Ok(RawLine {
                record,
                line,
                bytes,
            }));
        }
    }

    /// Ends the stream after an I/O failure, naming the line it happened on.
    fn failed(&mut self) -> FormatError {
        self.done = true;
        FormatError::Json {
            line: self.line + 1,
            column: 0,
            category: "io",
        }
    }
}

/// Where the content of line number `line` starts (after a BOM on line 1), and whether it is
/// blank.
fn content(line: u64, bytes: &[u8]) -> (usize, bool) {
    let skip = if line == 1 && bytes.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    let blank = bytes.iter().skip(skip).all(u8::is_ascii_whitespace);
    (skip, blank)
}

/// The value of NDJSON line number `line` (1-based) whose bytes are `bytes`, as
/// [`NdjsonReader`] yields it.
pub fn parse_line(bytes: &[u8], line: u64) -> Result<Value, FormatError> {
    match std::str::from_utf8(bytes) {
        Ok(_) => serde_json::from_slice::<Value>(bytes).map_err(|e| json_error(&e, line - 1)),
        Err(_) => Err(FormatError::Utf8 { line }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_and_single_resource() {
        let b = br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}},{"fullUrl":"x"},{"resource":{"resourceType":"Observation"}}]}"#;
        let s = validate_json(b).unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(s.resource_types.get("Patient"), Some(&1));
        let d = parse_json(b).unwrap();
        let idx: Vec<usize> = resources(&d).iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![0, 2]);
        assert_eq!(
            validate_json(br#"{"resourceType":"Patient","id":"1"}"#)
                .unwrap()
                .records,
            1
        );
    }

    #[test]
    fn errors_never_quote_values() {
        let e = validate_json(br#"{"name": "Jane Doe" "#).unwrap_err();
        assert!(!e.to_string().contains("Jane"));
        let e = validate_json(br#"{"name": "Jane Doe"}"#).unwrap_err();
        assert!(e.to_string().contains("resourceType"));
        let e = validate_json(br#"["Jane"]"#).unwrap_err();
        assert!(!e.to_string().contains("Jane"));
    }

    #[test]
    fn raw_lines_are_numbered_as_the_reader_numbers_them() {
        let input = b"\xEF\xBB\xBF{\"a\":1}\r\n \n\n{\"b\":2}\n  \n{bad";
        let mut lines = NdjsonLines::new(&input[..]);
        let mut raw = Vec::new();
        while let Some(l) = lines.next_line() {
            let l = l.unwrap();
            raw.push((l.record, l.line, l.bytes.to_vec()));
        }
        assert_eq!(
            raw,
            vec![
                (0, 1, b"{\"a\":1}\r\n".to_vec()),
                (1, 4, b"{\"b\":2}\n".to_vec()),
                (2, 6, b"{bad".to_vec())
            ]
        );
        let recs: Vec<_> = NdjsonReader::new(&input[..]).map(Result::unwrap).collect();
        assert_eq!(recs.len(), 3);
        assert!(recs[0].value.is_ok() && recs[2].value.is_err());
        assert_eq!((recs[1].record, recs[1].line), (1, 4));
        // A BOM-only first line is blank.
        let mut lines = NdjsonLines::new(&b"\xEF\xBB\xBF\n{}"[..]);
        assert_eq!(lines.next_line().unwrap().unwrap().line, 2);
    }

    fn all_lines<R: BufRead>(r: R) -> Vec<(u64, u64, Vec<u8>)> {
        let mut lines = NdjsonLines::new(r);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line() {
            let l = l.unwrap();
            out.push((l.record, l.line, l.bytes.to_vec()));
        }
        out
    }

    proptest::proptest! {
        /// Lines lent from the reader's buffer and lines copied across its end (a reader with a
        /// buffer of a few bytes) are the same lines, numbered the same, as a plain split.
        #[test]
        fn lent_and_copied_lines_agree(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("[a-z{}:\"]{0,40}").unwrap(),
                    proptest::string::string_regex("[ \t\r]{0,3}").unwrap(),
                ],
                0..12,
            ),
            bom: bool,
            final_newline: bool,
            cap in 1usize..64,
        ) {
            let mut input = Vec::new();
            if bom {
                input.extend_from_slice(UTF8_BOM);
            }
            for (i, p) in parts.iter().enumerate() {
                input.extend_from_slice(p.as_bytes());
                if i + 1 < parts.len() || final_newline {
                    input.push(b'\n');
                }
            }
            // The reference: split after each newline, number from 1, drop blank lines.
            let mut expected = Vec::new();
            let mut record = 0;
            let mut start = 0;
            let mut line = 0;
            while start < input.len() {
                let end = input[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(input.len(), |i| start + i + 1);
                line += 1;
                let skip = if line == 1 && input[start..end].starts_with(UTF8_BOM) { 3 } else { 0 };
                let bytes = &input[start + skip..end];
                if !bytes.iter().all(u8::is_ascii_whitespace) {
                    expected.push((record, line, bytes.to_vec()));
                    record += 1;
                }
                start = end;
            }
            proptest::prop_assert_eq!(&all_lines(&input[..]), &expected);
            let small = std::io::BufReader::with_capacity(cap, &input[..]);
            proptest::prop_assert_eq!(&all_lines(small), &expected);
        }
    }

    #[test]
    fn ndjson_continues_after_bad_line() {
        let input =
            b"{\"resourceType\":\"Patient\"}\n\n{broken\n{\"resourceType\":\"Encounter\"}\n";
        let recs: Vec<_> = NdjsonReader::new(&input[..]).map(Result::unwrap).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].line, 3);
        assert!(recs[1].value.is_err());
        assert_eq!(recs[2].record, 2);
        assert!(recs[2].value.is_ok());
        let e = validate_ndjson(input).unwrap_err();
        assert!(matches!(e, FormatError::Json { line: 3, .. }), "{e}");
    }
}
