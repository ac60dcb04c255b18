//! A view's rows as one Parquet file, typed by the columns' FHIR types: `boolean` as BOOLEAN,
//! the integer types as INT64, `decimal` as DOUBLE, and everything else (strings, codes,
//! dates, which FHIR allows to be partial, and collections or complex values as their JSON
//! text, as the CSV output has them) as UTF-8 strings. Every column is optional (a view's
//! null). Rows are buffered per row group, so memory is flat in the number of rows.

use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::Value;

use crate::{Row, View};

/// Rows per row group.
pub const ROWS_PER_GROUP: usize = 65_536;

/// Why a Parquet file could not be written. Names the column and row, never a value.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// A value does not fit its column's declared type.
    #[error("row {row}, column `{column}`: a value that is not {expected}")]
    Type {
        /// The row's position (0-based) in the output.
        row: u64,
        /// The column.
        column: String,
        /// What the column holds.
        expected: &'static str,
    },
    /// The Parquet library refused.
    #[error("parquet: {0}")]
    Write(String),
}

impl From<parquet::errors::ParquetError> for ParquetError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        ParquetError::Write(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Double,
    Text,
}

impl Kind {
    fn of(fhir_type: Option<&str>, collection: bool) -> Kind {
        if collection {
            return Kind::Text;
        }
        match fhir_type {
            Some("boolean") => Kind::Bool,
            Some("integer" | "positiveInt" | "unsignedInt" | "integer64") => Kind::Int,
            Some("decimal") => Kind::Double,
            _ => Kind::Text,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Int => "an integer",
            Kind::Double => "a number",
            Kind::Text => "text",
        }
    }
}

/// One column's buffered values and definition levels (1 present, 0 null).
enum Values {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    Double(Vec<f64>),
    Text(Vec<ByteArray>),
}

struct Buffer {
    name: String,
    kind: Kind,
    values: Values,
    levels: Vec<i16>,
}

impl Buffer {
    fn new(name: &str, kind: Kind) -> Self {
        let values = match kind {
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::Int => Values::Int(Vec::new()),
            Kind::Double => Values::Double(Vec::new()),
            Kind::Text => Values::Text(Vec::new()),
        };
        Buffer {
            name: name.to_owned(),
            kind,
            values,
            levels: Vec::new(),
        }
    }

    /// Whether `v` fitted (a null always does).
    fn push(&mut self, v: &Value) -> bool {
        if v.is_null() {
            self.levels.push(0);
            return true;
        }
        let ok = match (&mut self.values, v) {
            (Values::Bool(b), Value::Bool(x)) => {
                b.push(*x);
                true
            }
            (Values::Int(b), Value::Number(n)) => n.as_i64().map(|x| b.push(x)).is_some(),
            (Values::Double(b), Value::Number(n)) => n.as_f64().map(|x| b.push(x)).is_some(),
            (Values::Text(b), Value::String(s)) => {
                b.push(ByteArray::from(s.as_bytes().to_vec()));
                true
            }
            (Values::Text(b), other) => {
                b.push(ByteArray::from(other.to_string().into_bytes()));
                true
            }
            _ => false,
        };
        if ok {
            self.levels.push(1);
        }
        ok
    }

    fn clear(&mut self) {
        self.levels.clear();
        match &mut self.values {
            Values::Bool(b) => b.clear(),
            Values::Int(b) => b.clear(),
            Values::Double(b) => b.clear(),
            Values::Text(b) => b.clear(),
        }
    }
}

/// Writes a view's rows into a Parquet file in memory.
pub struct ParquetWriter {
    writer: SerializedFileWriter<Vec<u8>>,
    columns: Vec<Buffer>,
    rows: u64,
    buffered: usize,
}

impl std::fmt::Debug for ParquetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ParquetWriter {
    /// A writer for `view`'s columns (Snappy-compressed pages).
    pub fn new(view: &View) -> Result<Self, ParquetError> {
        let mut fields = Vec::with_capacity(view.columns().len());
        let mut columns = Vec::with_capacity(view.columns().len());
        for c in view.columns() {
            let kind = Kind::of(c.fhir_type(), c.collection());
            let (physical, logical) = match kind {
                Kind::Bool => (Physical::BOOLEAN, None),
                // Plain INT64 is a signed 64-bit integer.
                Kind::Int => (Physical::INT64, None),
                Kind::Double => (Physical::DOUBLE, None),
                Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            };
            fields.push(Arc::new(
                Type::primitive_type_builder(c.name(), physical)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(logical)
                    .build()?,
            ));
            columns.push(Buffer::new(c.name(), kind));
        }
        let schema = Arc::new(
            Type::group_type_builder(view.name().unwrap_or("view"))
                .with_fields(fields)
                .build()?,
        );
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by(format!("airlock-views {}", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(ParquetWriter {
            writer: SerializedFileWriter::new(Vec::new(), schema, props)?,
            columns,
            rows: 0,
            buffered: 0,
        })
    }

    /// Add one row (its cells in column order).
    pub fn push(&mut self, row: &Row) -> Result<(), ParquetError> {
        for (col, v) in self.columns.iter_mut().zip(row.values()) {
            if !col.push(v) {
                return Err(ParquetError::Type {
                    row: self.rows,
                    column: col.name.clone(),
                    expected: col.kind.expected(),
                });
            }
        }
        self.rows += 1;
        self.buffered += 1;
        if self.buffered >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut buffers = self.columns.iter_mut();
        while let Some(mut col) = group.next_column()? {
            let Some(buf) = buffers.next() else {
                return Err(ParquetError::Write("more columns than the view has".into()));
            };
            let levels = Some(buf.levels.as_slice());
            match (col.untyped(), &buf.values) {
                (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                (ColumnWriter::Int64ColumnWriter(w), Values::Int(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                (ColumnWriter::DoubleColumnWriter(w), Values::Double(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Values::Text(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                _ => {
                    return Err(ParquetError::Write(
                        "a column's writer and type differ".into(),
                    ));
                }
            }
            col.close()?;
            buf.clear();
        }
        group.close()?;
        self.buffered = 0;
        Ok(())
    }

    /// The file's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, ParquetError> {
        self.flush()?;
        Ok(self.writer.into_inner()?)
    }
}
