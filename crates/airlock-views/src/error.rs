//! The crate's error: loading a view, running it, reading its input.

use crate::fhirpath::{EvalError, PathError};

/// Why a view could not be loaded or run, or its input read.
///
/// Load errors name the element of the ViewDefinition (`select[0].column[2].path`) and, where
/// there is one, the column or path. Run and input errors name the resource by its 0-based
/// position in the input (Bundle entries counted one by one) and the column or clause. No
/// variant carries a value of the data.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A required element is absent.
    #[error("view definition: `{at}` is required")]
    Missing {
        /// Where, e.g. `select[0].column[1].path`.
        at: String,
    },
    /// An element has the wrong JSON type or an empty value.
    #[error("view definition: `{at}` must be {expected}")]
    WrongType {
        /// Where.
        at: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An element the ViewDefinition model does not have.
    #[error("view definition: `{at}` is not an element of a ViewDefinition")]
    UnknownElement {
        /// Where, ending with the unknown element's name.
        at: String,
    },
    /// A view, column or constant name that is not a database-friendly identifier.
    #[error(
        "view definition: `{at}`: `{name}` is not a valid name (a letter, then letters, digits or `_`)"
    )]
    InvalidName {
        /// Where.
        at: String,
        /// The name.
        name: String,
    },
    /// Two columns of the output have the same name.
    #[error("view definition: `{at}`: column `{name}` is already defined")]
    DuplicateColumn {
        /// Where the second one is.
        at: String,
        /// The column.
        name: String,
    },
    /// A column without `type`, when the view was loaded with
    /// [`LoadOptions::require_column_types`](crate::LoadOptions::require_column_types).
    #[error("view definition: `{at}`: column `{name}` has no `type`")]
    UntypedColumn {
        /// Where.
        at: String,
        /// The column.
        name: String,
    },
    /// The branches of a `unionAll` do not produce the same columns, in the same order, with
    /// the same declared types.
    #[error(
        "view definition: `{at}`: unionAll branch {branch} has columns [{found}], branch 0 has [{expected}]"
    )]
    UnionMismatch {
        /// The `unionAll`.
        at: String,
        /// The branch that differs from the first.
        branch: usize,
        /// The first branch's column names.
        expected: String,
        /// This branch's column names.
        found: String,
    },
    /// More than one of `forEach`, `forEachOrNull` and `repeat` on one select.
    #[error(
        "view definition: `{at}`: only one of `forEach`, `forEachOrNull` and `repeat` may be given"
    )]
    ConflictingIteration {
        /// The select.
        at: String,
    },
    /// A constant that is defined twice or shadows a variable of the runner.
    #[error("view definition: `{at}`: constant `{name}` {reason}")]
    Constant {
        /// Where.
        at: String,
        /// The constant.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path that is not valid FHIRPath or uses what this evaluator does not support.
    #[error("view definition: `{at}`: path `{path}`: {source}")]
    Path {
        /// Where.
        at: String,
        /// The path.
        path: String,
        /// Why.
        source: PathError,
    },
    /// A column's path failed on a resource.
    #[error("resource {index}: column `{column}`: {source}")]
    ColumnEval {
        /// Position of the resource in the input.
        index: usize,
        /// The column.
        column: String,
        /// Why.
        source: EvalError,
    },
    /// A `where`, `forEach`, `forEachOrNull` or `repeat` path failed on a resource.
    #[error("resource {index}: `{at}`: {source}")]
    PathEval {
        /// Position of the resource in the input.
        index: usize,
        /// The element holding the path, e.g. `where[0]` or `select[1].forEach`.
        at: String,
        /// Why.
        source: EvalError,
    },
    /// A column gave several values but is not declared `collection: true`.
    #[error(
        "resource {index}: column `{column}` has several values but is not declared `collection: true`"
    )]
    MultipleValues {
        /// Position of the resource in the input.
        index: usize,
        /// The column.
        column: String,
    },
    /// A column gave a complex value (an object) but declares no type or a primitive one.
    #[error(
        "resource {index}: column `{column}` gave a complex value; declare its FHIR `type` (e.g. `CodeableConcept`) or select a primitive"
    )]
    ComplexValue {
        /// Position of the resource in the input.
        index: usize,
        /// The column.
        column: String,
    },
    /// A `where` path gave something other than one boolean (or nothing).
    #[error("resource {index}: `{at}` does not evaluate to a boolean")]
    WhereNotBoolean {
        /// Position of the resource in the input.
        index: usize,
        /// The clause, e.g. `where[0]`.
        at: String,
    },
    /// A `repeat` nested deeper than the runner follows.
    #[error("resource {index}: `{at}`: repeat nests deeper than {limit} levels")]
    RepeatTooDeep {
        /// Position of the resource in the input.
        index: usize,
        /// The select holding the `repeat`.
        at: String,
        /// The limit.
        limit: usize,
    },
    /// The input is not JSON.
    #[error("resource {index}: not valid JSON (line {line}, column {column})")]
    InvalidJson {
        /// Position of the resource in the input.
        index: usize,
        /// 1-based line of the input text.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The input is JSON but not a FHIR resource.
    #[error("resource {index}: not a FHIR resource ({reason})")]
    NotResource {
        /// Position of the resource in the input.
        index: usize,
        /// What is missing.
        reason: &'static str,
    },
    /// The input could not be read.
    #[error("resource {index}: could not read the input ({kind})")]
    Read {
        /// Position of the resource in the input.
        index: usize,
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
    },
}
