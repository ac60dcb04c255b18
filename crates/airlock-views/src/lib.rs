//! SQL-on-FHIR v2 views: FHIR resources to rows.
//!
//! A `ViewDefinition` (HL7 SQL-on-FHIR v2) names a resource type, FHIRPath columns and how to
//! unnest (`forEach`, `forEachOrNull`, `repeat`), join (nested `select`) and concatenate
//! (`unionAll`); this crate loads one, checks it, and runs it over FHIR JSON.
//!
//! # Design
//! * [`View::from_json`] parses and validates a ViewDefinition once: unknown elements, invalid
//!   or duplicate column names, disagreeing `unionAll` branches, malformed paths, unsupported
//!   functions and undefined constants are errors naming the element (`select[0].column[2]`),
//!   the column and the path. Constants are substituted into the compiled paths.
//! * [`run_each`] runs a view resource by resource and hands each row to a sink before reading
//!   the next resource; with [`read_resources`] over NDJSON, memory is flat in the number of
//!   resources. [`run`] collects the rows. Rows are cell vectors in [`View::columns`] order, so
//!   a CSV writer needs no per-row keys.
//! * [`fhirpath`] is the evaluator: the subset views need (the Shareable View Definition
//!   profile and more), over borrowed JSON, without a FHIR model.
//! * Pure: no I/O but what the caller hands in (a string or a reader), no async runtime.
//! * Errors never carry data values: run errors name the resource by position and the column
//!   or clause; [`Row`]'s `Debug` shows its width only.
//!
//! # Conformance
//! `tests/conformance.rs` runs the specification's test files from
//! `../shared/data/sql-on-fhir/tests` as they are and writes the suite's report format to
//! `$AIRLOCK_SOF_REPORT` when set.
//!
//! ```
//! use airlock_views::{View, read_resources, run_each, ViewError};
//! use serde_json::json;
//!
//! let view = View::from_json(&json!({
//!     "resource": "Patient",
//!     "select": [{"column": [
//!         {"name": "id", "path": "getResourceKey()", "type": "id"},
//!         {"name": "family", "path": "name.where(use = 'official').family.first()", "type": "string"}
//!     ]}]
//! }))?;
//! let ndjson = r#"{"resourceType":"Patient","id":"p1","name":[{"use":"official","family":"Doe"}]}"#;
//! let mut csv = String::new();
//! run_each(&view, read_resources(ndjson), |row| {
//!     let cells: Vec<String> = row.values().iter().map(|v| v.to_string()).collect();
//!     csv.push_str(&cells.join(","));
//!     Ok::<(), ViewError>(())
//! })?;
//! assert_eq!(csv, r#""p1","Doe""#);
//! # Ok::<(), ViewError>(())
//! ```

pub mod builtin;
mod error;
pub mod fhirpath;
mod input;
#[cfg(feature = "parquet")]
pub mod parquet;
mod run;
mod view;

pub use error::ViewError;
pub use input::{read_resources, read_resources_from};
pub use run::{Row, RunSummary, run, run_each};
pub use view::{Column, LoadOptions, View};
