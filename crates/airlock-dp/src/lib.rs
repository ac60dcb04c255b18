//! Differential privacy for aggregate questions over private tables.
//!
//! The question this crate answers: given a table that no one may see and a SQL question about
//! it, what noisy answer may leave, and what did it cost? It is pure (no I/O): the service
//! decrypts the tables, keeps the budgets and records the release.
//!
//! - [`sql`] parses a SQL subset and checks it against the tables' columns and the dataset's
//!   [`DpMetadata`] *before* any row is read: anything outside the subset, a column without
//!   bounds, a group column without a declared domain is refused with the reason.
//! - [`exec`] runs the checked [`sql::Query`]: filters, the join on the privacy unit,
//!   contribution bounding (at most `max_rows_per_unit` rows per unit, the rest dropped by a
//!   seeded shuffle, as OpenDP and Tumult do), clamping to the declared bounds, and exact
//!   aggregates per group of the public domain (every group is released, empty or not, so
//!   the presence of a group reveals nothing).
//! - [`mechanism`] adds noise through OpenDP's constructors only and reports the charge that
//!   OpenDP's privacy map gives. Sums are taken in fixed point (integers), so the sensitivity
//!   holds exactly, without the floating-point attacks on naive sums.
//!
//! Accounting is in zCDP (ρ); see [`mechanism`].

pub mod accountant;
pub mod exec;
pub mod mechanism;
pub mod metadata;
pub mod sql;

pub use exec::{Answer, ColumnReport, Table, answer};
pub use mechanism::{Mechanism, Privacy, pure_to_rho, rho_for_epsilon, rho_to_epsilon};
pub use metadata::{DpMetadata, PrivacyUnit};
pub use sql::{Query, parse};

/// Why a query was refused or failed. Messages name columns, tables and SQL forms (the
/// analyst's own text), never a value from the data.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    /// The SQL does not parse.
    #[error("the query does not parse: {0}")]
    Syntax(String),
    /// The SQL parses but is outside the subset that can be answered privately.
    #[error("refused: {0}")]
    Refused(String),
    /// A table or column the query names does not exist.
    #[error("unknown {0}")]
    Unknown(String),
    /// The dataset's DP metadata lacks something the query needs.
    #[error("{0}")]
    Metadata(String),
    /// ε or δ is not acceptable.
    #[error("{0}")]
    Privacy(String),
    /// A failure inside the mechanisms (a bug, not the caller's fault).
    #[error("internal: {0}")]
    Internal(String),
}
