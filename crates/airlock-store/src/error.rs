//! Errors of the store. Messages name files, datasets, zones and object hashes; never data.

use std::path::PathBuf;

use airlock_types::{Classification, IdError, Zone, ZoneError};

use crate::scan::{DataPosition, IdentifierKind};

/// Everything that can go wrong in the home.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No deployment at this path.
    #[error("no Airlock deployment at `{}` (run `airlock init --home {}` first)", path.display(), path.display())]
    MissingHome {
        /// The home asked for.
        path: PathBuf,
    },
    /// `init` on a directory that already holds a deployment.
    #[error("`{}` already holds an Airlock deployment", path.display())]
    HomeExists {
        /// The home.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("i/o error on `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is malformed.
    #[error("invalid configuration `{}`: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Key management or decryption failed.
    #[error(transparent)]
    Crypto(#[from] airlock_crypto::CryptoError),
    /// The zone rules refused the operation.
    #[error("refused by the zone rules: {0}")]
    Zone(#[from] ZoneError),
    /// An invalid identifier.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The metadata database failed.
    #[error("metadata store error: {0}")]
    Database(#[from] sqlx::Error),
    /// A PostgreSQL connection to another machine without verified TLS.
    #[error(
        "the PostgreSQL connection to `{host}` has `sslmode={mode}`; a server that is not on \
         loopback needs `sslmode=verify-full` (with `sslrootcert=` its CA's certificate), or \
         `init --danger-database-without-verified-tls` \
         (`storage.danger_database_without_verified_tls` in airlock.toml)"
    )]
    DatabaseTransport {
        /// The server's host name or address (the URL, which may hold a password, is not shown).
        host: String,
        /// The `sslmode` the connection would use.
        mode: &'static str,
    },
    /// The PostgreSQL role may not do what it was asked to (serve, or be served by).
    #[error("database role refused: {reason}")]
    DatabaseRole {
        /// Why.
        reason: &'static str,
    },
    /// The PostgreSQL schema is older than this build, and the serving role cannot migrate it.
    #[error(
        "the database schema is at migration {found} and this build needs {needed}; migrate it \
         as the owner role (`--database-owner`)"
    )]
    SchemaBehind {
        /// The newest migration the database has (0: none).
        found: i64,
        /// The newest migration this build knows.
        needed: i64,
    },
    /// The object store failed.
    #[error("object store error on `{path}`: {reason}")]
    ObjectStore {
        /// The object path.
        path: String,
        /// What failed (no data).
        reason: String,
    },
    /// An input file is not in a format Airlock ingests, or is malformed.
    #[error("`{}`: {reason}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its position.
        reason: String,
    },
    /// No such dataset or version.
    #[error("no dataset `{name}`{}", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        /// The dataset.
        name: String,
        /// The version, if one was asked for.
        version: Option<u32>,
    },
    /// A dataset exists with another zone or classification.
    #[error("dataset `{name}` lives in `{zone}` as {classification}; a new version must keep both")]
    DatasetMismatch {
        /// The dataset.
        name: String,
        /// Its zone.
        zone: airlock_types::Zone,
        /// Its classification.
        classification: airlock_types::Classification,
    },
    /// The metadata refers to an object that is missing or inconsistent.
    #[error("object {hash} is missing or inconsistent: {reason}")]
    Corrupt {
        /// The object's hash (short form).
        hash: String,
        /// What is wrong.
        reason: String,
    },
    /// The object was erased at the end of its retention period: its data key is destroyed.
    #[error("object {hash} was erased at the end of its retention period")]
    Erased {
        /// The object's hash (short form).
        hash: String,
    },
    /// A directory that would receive decrypted identified data is open to other users.
    #[error(
        "`{}` is open to other users (mode {mode:o}); decrypted identified data goes only into a \
         new directory or one with mode 0700",
        path.display()
    )]
    Permissions {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An ingest outside the clinical zone without an attestation, or an attested import
    /// where none belongs.
    #[error("ingest into `{zone}` as {classification}: {reason}")]
    Attestation {
        /// The zone asked for.
        zone: Zone,
        /// The classification asked for.
        classification: Classification,
        /// What is wrong.
        reason: &'static str,
    },
    /// An attested import holds a direct identifier (the value is never shown).
    #[error("attested import refused: `files[{file}]` {position}: {kind} found")]
    Identifier {
        /// The file's index in the request.
        file: usize,
        /// Where in the file.
        position: DataPosition,
        /// What kind of identifier.
        kind: IdentifierKind,
    },
    /// A version's lineage record or manifest disagrees with the ledger entry that recorded
    /// the version: the metadata was changed after the fact.
    #[error("provenance of `{version}` does not match the ledger{}: {reason}", index.map(|i| format!(" (entry {i})")).unwrap_or_default())]
    Provenance {
        /// `name@version`.
        version: String,
        /// The ledger entry it was checked against, if one was found.
        index: Option<u64>,
        /// What disagrees.
        reason: &'static str,
    },
    /// The ledger failed.
    #[error("audit ledger: {0}")]
    Ledger(#[from] airlock_ledger::LedgerError),
    /// A ledger entry could not be built.
    #[error("audit entry: {0}")]
    Entry(#[from] airlock_ledger::EntryError),
    /// The service's ledger writer failed or stopped.
    #[error("audit ledger writer: {detail}")]
    LedgerWriter {
        /// What it said (never an entry's content).
        detail: String,
    },
}

impl StoreError {
    /// A short class of the error for ledger entries: never a value, a path or a message
    /// that could quote data.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            StoreError::Io { .. } => "unreadable file",
            StoreError::Input { .. } => "not a valid FHIR, HL7 v2 or CSV file",
            StoreError::Identifier { .. } => "identifier found",
            StoreError::Attestation { .. } => "attestation missing or misplaced",
            StoreError::Zone(_) => "refused by the zone rules",
            StoreError::Id(_) => "invalid identifier or text",
            StoreError::DatasetMismatch { .. } => "dataset lives in another zone or classification",
            StoreError::Database(_) => "metadata store error",
            StoreError::DatabaseTransport { .. }
            | StoreError::DatabaseRole { .. }
            | StoreError::SchemaBehind { .. } => "metadata store refused",
            StoreError::ObjectStore { .. } => "object store error",
            StoreError::Crypto(_) => "encryption error",
            StoreError::Corrupt { .. } | StoreError::Provenance { .. } => "integrity error",
            StoreError::Erased { .. } => "erased",
            StoreError::Ledger(_) | StoreError::Entry(_) | StoreError::LedgerWriter { .. } => {
                "ledger error"
            }
            StoreError::Config { .. }
            | StoreError::MissingHome { .. }
            | StoreError::HomeExists { .. }
            | StoreError::NotFound { .. }
            | StoreError::Permissions { .. } => "refused",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
