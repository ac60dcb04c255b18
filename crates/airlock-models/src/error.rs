//! The crate's error type. Variants name columns, fields, rows and rules; never a cell value.

/// Everything that can go wrong while reading a table, training, validating or decoding a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelsError {
    /// The CSV input could not be parsed (position only; the parser's message may quote data).
    #[error("csv input is malformed at record {record}")]
    Csv {
        /// Zero-based record number, header included.
        record: u64,
    },
    /// A CSV record has the wrong number of fields.
    #[error("record {row} has {found} fields, expected {expected}")]
    RaggedRow {
        /// Zero-based data row.
        row: usize,
        /// Header width.
        expected: usize,
        /// Fields found.
        found: usize,
    },
    /// A named column is not in the table.
    #[error("column `{column}` is not in the table")]
    MissingColumn {
        /// Column name.
        column: String,
    },
    /// A column name appears twice (in the table header or in a feature list).
    #[error("column `{column}` appears more than once")]
    DuplicateColumn {
        /// Column name.
        column: String,
    },
    /// The target column was also listed as a feature.
    #[error("column `{column}` is the target and cannot be a feature")]
    TargetAsFeature {
        /// Column name.
        column: String,
    },
    /// A cell of a numeric column is not a finite number.
    #[error("column `{column}` row {row}: not a finite number")]
    NotNumeric {
        /// Column name.
        column: String,
        /// Zero-based data row.
        row: usize,
    },
    /// A monitoring rule set is malformed (the reason names the rule and field).
    #[error("monitoring rules: {reason}")]
    Rules {
        /// What is wrong.
        reason: String,
    },
    /// A column is numeric on one side of a comparison and categorical on the other.
    #[error("column `{column}` is {reference} in the reference and {current} in the current data")]
    KindChanged {
        /// Column name.
        column: String,
        /// Its kind in the reference.
        reference: &'static str,
        /// Its kind in the current data.
        current: &'static str,
    },
    /// A column has no value to compare on one side.
    #[error("column `{column}` has no values in the {side} data")]
    NoValues {
        /// Column name.
        column: String,
        /// `reference` or `current`.
        side: &'static str,
    },
    /// A drift method was asked for a column it cannot test.
    #[error("column `{column}`: the {method} test does not apply to it")]
    MethodNotFor {
        /// Column name.
        column: String,
        /// The method.
        method: &'static str,
    },
    /// The table has too few rows to split and train.
    #[error("the table has {rows} rows; training needs at least {needed}")]
    TooFewRows {
        /// Rows present.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
    /// One part of the data holds only one class of the target.
    #[error("the {part} holds only one class of the target")]
    SingleClass {
        /// Which part: `training split`, `held-out split`, `metric input`.
        part: &'static str,
    },
    /// A signature breaks a structural rule (names unique, ranges ordered and finite,
    /// categories sorted and unique).
    #[error("feature `{field}`: {rule}")]
    InvalidSignature {
        /// Feature name.
        field: String,
        /// The rule broken.
        rule: &'static str,
    },
    /// A prediction input lacks a feature of the signature.
    #[error("field `{field}`: required by the model signature but missing")]
    MissingField {
        /// Feature name.
        field: String,
    },
    /// A prediction input has a field the signature does not know.
    #[error("field `{field}`: not a feature of this model")]
    UnknownField {
        /// Field name.
        field: String,
    },
    /// A prediction input has the wrong type for its feature.
    #[error("field `{field}`: expected {expected}")]
    WrongType {
        /// Feature name.
        field: String,
        /// What the signature wants (`a finite number`, `a category`).
        expected: &'static str,
    },
    /// A numeric input is outside the signature's allowed range.
    #[error("field `{field}`: outside the allowed range [{min}, {max}]")]
    OutOfRange {
        /// Feature name.
        field: String,
        /// Lower bound of the signature.
        min: f64,
        /// Upper bound of the signature.
        max: f64,
    },
    /// A categorical input is not one of the signature's categories.
    #[error("field `{field}`: not one of the allowed categories")]
    UnknownCategory {
        /// Feature name.
        field: String,
    },
    /// An encoded input vector has the wrong length for the model.
    #[error("input has {found} values, the model expects {expected}")]
    Dimension {
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// Metric inputs are inconsistent (lengths differ, empty, or a score outside [0, 1]).
    #[error("metric input is invalid: {rule}")]
    MetricInput {
        /// The rule broken.
        rule: &'static str,
    },
    /// A hyper-parameter breaks its rule.
    #[error("hyper-parameter `{param}`: {rule}")]
    InvalidParam {
        /// Parameter name.
        param: &'static str,
        /// The rule broken.
        rule: &'static str,
    },
    /// The optimiser could not proceed (e.g. a Hessian that is not positive definite).
    #[error("optimiser failed: {what}")]
    Numerical {
        /// What failed.
        what: &'static str,
    },
    /// Two inputs that must have one entry per row differ in length.
    #[error("`{field}` has {found} rows, expected {expected}")]
    LengthMismatch {
        /// The input that differs (`scores`, or a sensitive attribute's name).
        field: String,
        /// Rows expected (the number of labels).
        expected: usize,
        /// Rows found.
        found: usize,
    },
    /// A score is NaN, infinite or outside `[0, 1]`.
    #[error("`{field}` row {row}: not a probability in [0, 1]")]
    InvalidScore {
        /// Which scores (`scores`).
        field: &'static str,
        /// Zero-based row.
        row: usize,
    },
    /// A sensitive attribute takes one value only, so there are no groups to compare.
    #[error("sensitive attribute `{attribute}` has a single value; groups need at least two")]
    SingleGroup {
        /// The attribute (column) name.
        attribute: String,
    },
    /// A validation policy does not parse (the message names the key or line, and policies hold
    /// no patient data).
    #[error("validation policy does not parse: {message}")]
    PolicySyntax {
        /// The parser's message.
        message: String,
    },
    /// A validation policy rule has a value outside its domain.
    #[error("validation policy rule `{rule}`: {reason}")]
    InvalidPolicy {
        /// The rule's path in the policy (`fairness.max_difference.tpr`).
        rule: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Model bytes do not decode.
    #[error("model bytes are malformed at offset {offset}: {what}")]
    Malformed {
        /// Byte offset where decoding stopped.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// A column cannot be synthesised as declared.
    #[error("synthesis column `{column}`: {rule}")]
    InvalidSynthColumn {
        /// The column.
        column: String,
        /// What is wrong.
        rule: &'static str,
    },
    /// A differential-privacy mechanism refused or failed (its message names parameters only).
    #[error("privacy mechanism: {what}")]
    Privacy {
        /// What went wrong.
        what: String,
    },
}
