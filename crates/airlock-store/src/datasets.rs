//! Datasets, their immutable versions, manifests and lineage records.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use airlock_types::{
    ActorId, Classification, ContentHash, DatasetName, DatasetVersionId, Gate, Zone,
};
use serde::{Deserialize, Serialize};

use crate::attest::Attestation;
use crate::objects::ObjectRef;

/// `name@version`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct VersionRef {
    /// The dataset (or, in lineage shown outside its zones, a placeholder that names no dataset).
    #[schemars(with = "airlock_types::schema::ShownDatasetName")]
    pub dataset: DatasetName,
    /// The version.
    pub version: DatasetVersionId,
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.dataset, self.version)
    }
}

/// A dataset as listed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DatasetSummary {
    /// Its name.
    pub name: DatasetName,
    /// Its zone.
    pub zone: Zone,
    /// Its classification.
    pub classification: Classification,
    /// When it was created.
    pub created_at: String,
    /// The latest version.
    pub latest: Option<DatasetVersionId>,
}

/// What made a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// The operation (`ingest`, `deidentify`, ...).
    pub name: String,
    /// SHA-256 of its configuration (a de-identification profile, say), if it has one.
    pub config_hash: Option<ContentHash>,
    /// Parameters that are not secret and not PHI (profile name, key id, engine version).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// Where a version came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// The source system (an EHR, a lab system), for ingested data.
    pub source_system: Option<String>,
    /// When the data was extracted or produced (RFC 3339).
    pub extracted_at: String,
    /// Who or what triggered it.
    pub triggered_by: ActorId,
    /// The versions it was made from.
    pub parents: Vec<VersionRef>,
    /// The gate it came through.
    pub gate: Gate,
    /// The transform and its configuration hash.
    pub transform: Transform,
    /// The Airlock version that made it, with the commit it was built from as semver build
    /// metadata where the build knew it (`0.1.0+3f2a9c1e0b7d`; see [`crate::AIRLOCK_VERSION`]).
    pub airlock_version: String,
}

impl Lineage {
    /// The SHA-256 of the record as stored (its JSON), which the ledger entry that recorded
    /// the version carries (`lineage:<hex>`), so an edit to the stored record shows.
    pub fn record_hash(&self) -> ContentHash {
        airlock_crypto::sha256(self.to_json().as_bytes())
    }

    /// The record as stored.
    pub(crate) fn to_json(&self) -> String {
        // Strings, a list, a map of strings and enums: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Who attested an import outside the clinical zone, and on what basis (`None` for data
    /// that came in any other way).
    pub fn attestation(&self) -> Option<Attestation> {
        if self.gate != Gate::Ingest {
            return None;
        }
        Attestation::from_params(&self.transform.params)
    }
}

/// One file in a version. Lives only in the encrypted manifest (file names can be identifying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// The file's name, as ingested.
    pub name: String,
    /// Its format.
    pub format: String,
    /// The stored object.
    pub object: ObjectRef,
    /// Records in it (resources, messages, rows).
    pub records: u64,
}

/// The list of files of a version; stored encrypted, named by its hash in the version row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version of the manifest.
    pub v: u32,
    /// The files.
    pub files: Vec<ManifestFile>,
}

/// A dataset version: metadata (no PHI) plus lineage.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DatasetVersion {
    /// The dataset.
    pub dataset: DatasetName,
    /// Its version number.
    pub version: DatasetVersionId,
    /// Its zone.
    pub zone: Zone,
    /// Its classification.
    pub classification: Classification,
    /// `fhir-json`, `hl7v2`, `csv`, ... or `mixed`.
    pub format: String,
    /// Hash of the manifest object (names the whole version's content).
    pub manifest_hash: ContentHash,
    /// Number of files.
    pub objects: u64,
    /// Total plaintext bytes.
    pub bytes: u64,
    /// Total records.
    pub records: u64,
    /// Where it came from.
    pub lineage: Lineage,
    /// When it was created.
    pub created_at: String,
    /// The index of the ledger entry that recorded it (`None` for versions written before
    /// entries carried the lineage record's hash).
    pub ledger_index: Option<u64>,
}

impl DatasetVersion {
    /// `name@version`.
    pub fn reference(&self) -> VersionRef {
        VersionRef {
            dataset: self.dataset.clone(),
            version: self.version,
        }
    }
}

/// A file to write into a new version.
#[derive(Debug)]
pub struct NewFile {
    /// Its name (kept in the encrypted manifest only).
    pub name: String,
    /// Its format name.
    pub format: String,
    /// Records in it.
    pub records: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A new version to write through a gate.
#[derive(Debug)]
pub struct NewVersion {
    /// The dataset (created if new).
    pub dataset: DatasetName,
    /// The zone it will live in.
    pub zone: Zone,
    /// Its classification.
    pub classification: Classification,
    /// Where the data comes from: the source version's (zone, classification), or `None` for
    /// data entering Airlock from a source system.
    pub source: Option<(Zone, Classification)>,
    /// The files.
    pub files: Vec<NewFile>,
    /// Lineage (its gate is checked against the zone rules).
    pub lineage: Lineage,
}

/// How a reader reaches a version: working in a zone, or as a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Someone working in this zone.
    Zone(Zone),
    /// A gate reading its input.
    Gate(Gate),
}

/// `airlock ingest`'s request.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// The zone to ingest into: clinical for [`crate::Home::ingest`]; any other zone is an
    /// attested import ([`crate::Home::import_attested`]).
    pub zone: Zone,
    /// The classification of the data (normally phi).
    pub classification: Classification,
    /// The source system's name (1 to 128 characters, no control characters: it is written
    /// into the ledger).
    pub source_system: String,
    /// The dataset.
    pub dataset: DatasetName,
    /// The files (directories are recursed by the caller).
    pub files: Vec<PathBuf>,
}

/// Parse `name` or `name@version`.
pub fn parse_version_spec(
    s: &str,
) -> Result<(DatasetName, Option<DatasetVersionId>), airlock_types::IdError> {
    match s.split_once('@') {
        None => Ok((DatasetName::from_str(s)?, None)),
        Some((n, v)) => Ok((DatasetName::from_str(n)?, Some(v.parse()?))),
    }
}
