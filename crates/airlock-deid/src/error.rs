//! Errors of the de-identification engine. Messages name files, records, paths, rules and
//! positions, never a value from the input and never key material.

use std::path::PathBuf;

/// An error that stops a run (malformed *records* do not: they are quarantined and reported).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    /// A profile file is not valid TOML or does not match the profile schema.
    #[error("profile `{profile}`: {reason}")]
    ProfileSyntax {
        /// Profile name or path.
        profile: String,
        /// The parser's message (about the rule file, which holds no PHI).
        reason: String,
    },
    /// A profile rule names something the engine does not know.
    #[error("profile `{profile}`, rule {rule} (`{path}`): {reason}")]
    ProfileRule {
        /// Profile name.
        profile: String,
        /// 1-based rule index within its section.
        rule: usize,
        /// The rule's path, field or column.
        path: String,
        /// What is unknown or invalid.
        reason: String,
    },
    /// No built-in profile has this name.
    #[error(
        "unknown built-in profile `{0}` (expected safe-harbor, expert-determination or limited-data-set)"
    )]
    UnknownProfile(String),
    /// The pseudonymisation key is unusable.
    #[error("key: {0}")]
    Key(&'static str),
    /// The crosswalk bytes could not be read.
    #[error("crosswalk: {0}")]
    Crosswalk(&'static str),
    /// Reading an input or writing an output failed.
    #[error("i/o error on `{path}`: {kind}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The error kind.
        kind: std::io::ErrorKind,
    },
    /// The input's format could not be determined.
    #[error("cannot determine the format of `{0}`")]
    UnknownFormat(PathBuf),
    /// The leak check found identifying input values in the output under a profile that
    /// forbids it; the report (with paths, never values) is attached.
    #[error("leak check failed: {hits} identifying value(s) found in the output (see the report)")]
    LeakCheckFailed {
        /// Number of hits.
        hits: usize,
        /// The full run report.
        report: Box<crate::RunReport>,
    },
    /// A table of people lacks quasi-identifiers the profile's `[k_anonymity]` names (or its
    /// sensitive attribute): k-anonymity cannot be applied to it, nor its risk measured.
    #[error(
        "`{table}`: k-anonymity column(s) `{}` not found (looked up by name, case-insensitively, and by alias)",
        .missing.join("`, `")
    )]
    QuasiIdentifiersMissing {
        /// The table (its label: a path or `files[i]`).
        table: String,
        /// The profile's names that no column matched.
        missing: Vec<String>,
    },
    /// The profile's `[k_anonymity]` found no table of people among the data set's CSV tables
    /// (and no FHIR or HL7 file describes the patients): it would be applied nowhere.
    #[error(
        "k-anonymity is configured but no CSV table of the data set has the quasi-identifiers `{}` (no table of people)",
        .quasi_identifiers.join("`, `")
    )]
    NoPersonTable {
        /// The profile's quasi-identifier names.
        quasi_identifiers: Vec<String>,
    },
    /// A whole input could not be processed (not a single record).
    #[error("`{path}`: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format error (positions only).
        #[source]
        source: airlock_formats::FormatError,
    },
}

impl DeidError {
    pub(crate) fn io(path: &std::path::Path, e: &std::io::Error) -> DeidError {
        DeidError::Io {
            path: path.to_path_buf(),
            kind: e.kind(),
        }
    }
}
