//! An in-memory table of text cells, column-major, read from CSV. Cells may hold patient data,
//! so `Debug` shows the shape only and errors name columns and rows, never cells.

use std::fmt;
use std::io::Read;

use crate::error::ModelsError;

/// A named column of text cells.
#[derive(Clone, PartialEq)]
pub struct Column {
    name: String,
    cells: Vec<String>,
}

impl Column {
    /// The column name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cells, in row order.
    pub fn cells(&self) -> &[String] {
        &self.cells
    }
}

impl fmt::Debug for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Column")
            .field("name", &self.name)
            .field("rows", &self.cells.len())
            .finish_non_exhaustive()
    }
}

/// A rectangular table: every column has the same number of rows.
#[derive(Clone, PartialEq, Default)]
pub struct Table {
    columns: Vec<Column>,
    rows: usize,
}

impl Table {
    /// Build a table from named columns of equal length.
    pub fn from_columns(columns: Vec<(String, Vec<String>)>) -> Result<Self, ModelsError> {
        let rows = columns.first().map_or(0, |(_, c)| c.len());
        let mut out: Vec<Column> = Vec::with_capacity(columns.len());
        for (name, cells) in columns {
            if out.iter().any(|c| c.name == name) {
                return Err(ModelsError::DuplicateColumn { column: name });
            }
            if cells.len() != rows {
                return Err(ModelsError::RaggedRow {
                    row: rows.min(cells.len()),
                    expected: rows,
                    found: cells.len(),
                });
            }
            out.push(Column { name, cells });
        }
        Ok(Table { columns: out, rows })
    }

    /// Read a CSV with a header row. With `keep`, only those columns are kept (each must exist);
    /// a wide table then costs only the memory of the columns a model uses.
    pub fn read_csv<R: Read>(reader: R, keep: Option<&[&str]>) -> Result<Self, ModelsError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(reader);
        let headers = rdr
            .headers()
            .map_err(|e| ModelsError::Csv {
                record: e.position().map_or(0, csv::Position::record),
            })?
            .clone();
        let width = headers.len();
        let mut picks: Vec<(usize, String)> = Vec::new();
        match keep {
            Some(names) => {
                for &name in names {
                    if picks.iter().any(|(_, n)| n == name) {
                        return Err(ModelsError::DuplicateColumn {
                            column: name.to_owned(),
                        });
                    }
                    let i = headers.iter().position(|h| h == name).ok_or_else(|| {
                        ModelsError::MissingColumn {
                            column: name.to_owned(),
                        }
                    })?;
                    picks.push((i, name.to_owned()));
                }
            }
            None => {
                for (i, h) in headers.iter().enumerate() {
                    if picks.iter().any(|(_, n)| n == h) {
                        return Err(ModelsError::DuplicateColumn {
                            column: h.to_owned(),
                        });
                    }
                    picks.push((i, h.to_owned()));
                }
            }
        }
        let mut cells: Vec<Vec<String>> = picks.iter().map(|_| Vec::new()).collect();
        let mut record = csv::StringRecord::new();
        let mut row = 0usize;
        loop {
            let more = rdr.read_record(&mut record).map_err(|e| ModelsError::Csv {
                record: e.position().map_or(0, csv::Position::record),
            })?;
            if !more {
                break;
            }
            if record.len() != width {
                return Err(ModelsError::RaggedRow {
                    row,
                    expected: width,
                    found: record.len(),
                });
            }
            for ((i, _), col) in picks.iter().zip(cells.iter_mut()) {
                col.push(record.get(*i).unwrap_or_default().to_owned());
            }
            row += 1;
        }
        let columns = picks
            .into_iter()
            .zip(cells)
            .map(|((_, name), cells)| Column { name, cells })
            .collect();
        Ok(Table { columns, rows: row })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Result<&Column, ModelsError> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ModelsError::MissingColumn {
                column: name.to_owned(),
            })
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("Table")
            .field("columns", &names)
            .field("rows", &self.rows)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_selected_columns_and_hides_cells() {
        let csv = "a,b,c\n1,x,secret\n2,y,other\n";
        let t = Table::read_csv(csv.as_bytes(), Some(&["c", "a"])).unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.column("a").unwrap().cells(), ["1", "2"]);
        assert_eq!(t.columns()[0].name(), "c");
        let dbg = format!("{t:?} {:?}", t.column("c").unwrap());
        assert!(!dbg.contains("secret"), "{dbg}");
        assert_eq!(
            Table::read_csv(csv.as_bytes(), Some(&["zz"])).unwrap_err(),
            ModelsError::MissingColumn {
                column: "zz".into()
            }
        );
    }

    #[test]
    fn ragged_rows_are_named_by_position() {
        let csv = "a,b\n1,2\n3\n";
        assert_eq!(
            Table::read_csv(csv.as_bytes(), None).unwrap_err(),
            ModelsError::RaggedRow {
                row: 1,
                expected: 2,
                found: 1
            }
        );
    }
}
