//! CSV through the `csv` crate: readers that let the caller see (and quarantine) ragged rows
//! instead of failing the whole file, writers with standard quoting, and validation.

use std::io::{Read, Write};

pub use csv;

use crate::{FormatError, FormatSummary, strip_bom};

/// A CSV reader over `r` with a header row, standard quoting, and `flexible(true)` so that a
/// ragged row is returned to the caller (compare its length with the header) rather than
/// aborting the stream. Strip a BOM before calling, or use [`reader_from_bytes`].
pub fn reader<R: Read>(r: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(r)
}

/// [`reader`] over a byte slice, with a leading UTF-8 BOM skipped.
pub fn reader_from_bytes(bytes: &[u8]) -> csv::Reader<&[u8]> {
    reader(strip_bom(bytes))
}

/// A CSV writer with standard (necessary-only) quoting and `\n` line endings.
pub fn writer<W: Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .flexible(false)
        .from_writer(w)
}

/// Maps a `csv` error to a [`FormatError`] without quoting data.
pub fn csv_error(e: &csv::Error) -> FormatError {
    let line = e.position().map_or(0, csv::Position::line);
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => FormatError::RaggedRow {
            line,
            expected: *expected_len,
            found: *len,
        },
        csv::ErrorKind::Utf8 { .. } => FormatError::Csv {
            line,
            reason: "invalid utf-8",
        },
        csv::ErrorKind::Io(_) => FormatError::Csv {
            line,
            reason: "i/o error",
        },
        _ => FormatError::Csv {
            line,
            reason: "malformed row",
        },
    }
}

/// The ragged-row error for `record` if its length differs from the header's.
pub fn check_row(record: &csv::StringRecord, expected: usize) -> Result<(), FormatError> {
    if record.len() == expected {
        Ok(())
    } else {
        Err(FormatError::RaggedRow {
            line: record.position().map_or(0, csv::Position::line),
            expected: expected as u64,
            found: record.len() as u64,
        })
    }
}

/// Validates CSV (see [`crate::validate`]).
pub fn validate(bytes: &[u8]) -> Result<FormatSummary, FormatError> {
    let bytes = strip_bom(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::Empty);
    }
    let mut rdr = reader(bytes);
    let headers = rdr.headers().map_err(|e| csv_error(&e))?.clone();
    let mut summary = FormatSummary {
        columns: headers.iter().map(str::to_owned).collect(),
        ..FormatSummary::default()
    };
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                check_row(&record, headers.len())?;
                summary.records += 1;
            }
            Err(e) => return Err(csv_error(&e)),
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ragged_row_names_line() {
        let e = validate(b"a,b,c\n1,2,3\n4,5\n").unwrap_err();
        assert_eq!(
            e,
            FormatError::RaggedRow {
                line: 3,
                expected: 3,
                found: 2
            }
        );
        let s = validate(b"\xEF\xBB\xBFa,b\n1,\"x,y\"\n").unwrap();
        assert_eq!(s.records, 1);
        assert_eq!(s.columns, vec!["a", "b"]);
    }

    #[test]
    fn writer_round_trip() {
        let mut w = writer(Vec::new());
        w.write_record(["a", "b,c", "d\"e"]).unwrap();
        let out = w.into_inner().unwrap();
        assert_eq!(out, b"a,\"b,c\",\"d\"\"e\"\n");
    }
}
