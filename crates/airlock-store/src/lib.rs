//! The deployment home: configuration, key hierarchy on disk, an encrypted content-addressed
//! object store, the metadata store, datasets with immutable versions and lineage, and the
//! audit ledger every operation writes to.
//!
//! Layout of a home directory:
//!
//! ```text
//! airlock.toml     configuration (no secrets)
//! keyring.json     master key sealed by the passphrase (Argon2id); named keys sealed by it
//! metadata.db      SQLite metadata (dataset versions, objects and their wrapped data keys),
//!                  unless `airlock.toml` names a PostgreSQL database instead
//! objects/         encrypted objects: <zone>/<classification>/<hh>/<sha256 of plaintext>
//! ledger/          the audit ledger (WAL, C2SP tiles, signed checkpoint)
//! ```
//!
//! Invariants and where they are kept:
//! * every write, read and copy asks [`airlock_types::zone`] (see [`Home::write_version`],
//!   [`Home::read_version`]); nothing else decides what may cross a zone;
//! * nothing identified is in `metadata.db`: file names and per-file details live in each
//!   version's manifest, which is itself an encrypted object;
//! * every operation that reads, writes or moves data appends to the ledger before it returns,
//!   a failed ingest included;
//! * data from outside Airlock enters a zone other than clinical only as an attested import,
//!   scanned for direct identifiers first ([`Home::import_attested`]);
//! * the ledger entry that records a version carries the hashes of its lineage record and
//!   manifest, and [`Home::lineage`] checks them; a parent outside the reader's zones is shown
//!   only as a placeholder;
//! * the home and every directory in it are 0700 and every file 0600, whatever the umask, and
//!   decrypted identified data is exported only 0600 into a 0700 directory (see [`Home::init`],
//!   [`Home::export`]);
//! * a dataset version is recorded only once each of its objects reads back and verifies, and
//!   concurrent writers of the same content agree on one data key before any bytes are written
//!   (the object store's module docs).

mod attest;
mod config;
mod datasets;
mod error;
mod files;
mod home;
mod meta;
mod objects;
mod scan;
pub mod testing;

pub use attest::{Attestation, AttestationBasis, AttestationReference};
pub use config::{Config, MonitoringConfig, RolloutConfig, WitnessConfig};
pub use datasets::{
    Access, DatasetSummary, DatasetVersion, IngestRequest, Lineage, Manifest, ManifestFile,
    NewFile, NewVersion, Transform, VersionRef, parse_version_spec,
};
pub use error::StoreError;
pub use home::{
    ARTIFACT_SIGNATURE_CONTEXT, DATABASE_OWNER_URL_ENV, DATABASE_URL_ENV, DatabaseSetup, Home,
    InitOptions, LedgerSink, Passphrase, RotationSummary, WITNESS_KEY_LABEL,
};
pub use meta::{Backend, DatabaseTls, Db, DbTarget, SERVING_GRANTS, Scope, Tx, is_postgres_url};
pub use objects::ObjectRef;
pub use scan::{DataPosition, IdentifierKind, column_kind as identifier_column};

/// The version of Airlock written into lineage records: the package version, with the git
/// commit the binary was built from as semver build metadata when the build knew it
/// (`0.1.0+3f2a9c1e0b7d`; `build.rs` asks git, or takes `AIRLOCK_GIT_COMMIT`). Uncommitted
/// changes in the working tree are not recorded.
pub const AIRLOCK_VERSION: &str = env!("AIRLOCK_BUILD_VERSION");
