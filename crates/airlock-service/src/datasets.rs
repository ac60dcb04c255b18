//! Datasets as a caller sees them: listed and shown within the zones the policy allows,
//! lineage, files listed by index (file names can identify), and downloads with a disclosure
//! record when the data is identified.

use airlock_authz::{Action, Resource};
use airlock_ledger::{DisclosureInfo, EventType, OutcomeKind};
use airlock_store::{Access, DatasetSummary, DatasetVersion, ManifestFile};
use airlock_types::{DatasetName, DatasetVersionId, Zone};
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Caller, LedgerResource, ServiceError};

/// The policy's view of a dataset version.
pub fn resource(v: &DatasetVersion) -> Resource {
    Resource::Dataset {
        name: v.dataset.to_string(),
        zone: v.zone,
        classification: v.classification,
    }
}

/// A version with the numbers of every version of its dataset.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionDetail {
    /// The version asked for.
    #[serde(flatten)]
    pub version: DatasetVersion,
    /// Every version number of the dataset.
    pub versions: Vec<DatasetVersionId>,
}

/// A version's lineage, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LineageChain {
    /// The version and its ancestors.
    pub lineage: Vec<DatasetVersion>,
}

/// One file of a version, described without its name.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileEntry {
    /// Its position in the version.
    pub index: usize,
    /// `fhir-json`, `hl7v2`, `csv`, `report`...
    pub format: String,
    /// Records in it.
    pub records: u64,
    /// Plaintext bytes.
    pub bytes: usize,
}

/// A version's files.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileList {
    /// The dataset.
    pub dataset: DatasetName,
    /// The version.
    pub version: DatasetVersionId,
    /// Its files, by index.
    pub files: Vec<FileEntry>,
}

/// A downloaded file.
pub struct Download {
    /// Its format (decides the media type).
    pub format: String,
    /// The plaintext.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("format", &self.format)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Download {
    /// The media type a client should read it as.
    pub fn media_type(&self) -> &'static str {
        if self.format.starts_with("fhir") || self.format == "report" {
            "application/json"
        } else {
            "application/octet-stream"
        }
    }
}

/// The datasets listed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DatasetList {
    /// Those the policy lets the caller list.
    pub datasets: Vec<DatasetSummary>,
}

impl Caller {
    /// Look a dataset up within the caller's scope; invisible and absent are the same
    /// not-found, and the ledger records the refusal either way.
    pub async fn find_version(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<DatasetVersion, ServiceError> {
        let name = DatasetName::new(name.to_string())
            .map_err(|_| ServiceError::NotFound { what: "dataset" })?;
        let version = version
            .map(DatasetVersionId::new)
            .transpose()
            .map_err(|_| ServiceError::invalid("version", "must be 1 or more"))?;
        match self.home().version(&name, version).await {
            Ok(v) => Ok(v),
            Err(airlock_store::StoreError::NotFound { .. }) => {
                self.audit(
                    self.entry(
                        EventType::PolicyDecision,
                        Zone::Clinical,
                        OutcomeKind::Denied,
                    )
                    .with_resource(LedgerResource::Dataset(name))
                    .with_reason("deny:not-found-or-outside-scope"),
                )
                .await?;
                Err(ServiceError::NotFound { what: "dataset" })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every dataset the policy lets the caller list.
    pub async fn datasets(&self) -> Result<DatasetList, ServiceError> {
        // Listing needs the policy's leave in at least one zone; otherwise record and refuse
        // through the policy, naming its reason.
        let listable = Zone::ALL.into_iter().find(|z| {
            self.decide(Action::ListDatasets, &Resource::Zone(*z), false)
                .allowed()
        });
        self.authorize(
            Action::ListDatasets,
            &Resource::Zone(listable.unwrap_or(Zone::Clinical)),
        )
        .await?;
        let all = self.home().datasets().await?;
        let total = all.len();
        let datasets: Vec<DatasetSummary> = all
            .into_iter()
            .filter(|d| {
                let r = Resource::Dataset {
                    name: d.name.to_string(),
                    zone: d.zone,
                    classification: d.classification,
                };
                self.decide(Action::ListDatasets, &r, false).allowed()
            })
            .collect();
        self.audit(
            self.entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
                .with_resource(LedgerResource::AllDatasets)
                .with_reason(format!(
                    "listed {} of {total} in scope, filtered by policy",
                    datasets.len(),
                )),
        )
        .await?;
        Ok(DatasetList { datasets })
    }

    /// One version and the numbers of its siblings.
    pub async fn dataset(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<VersionDetail, ServiceError> {
        let v = self.find_version(name, version).await?;
        self.authorize(Action::ReadDataset, &resource(&v)).await?;
        let versions = self
            .home()
            .versions(&v.dataset)
            .await?
            .into_iter()
            .map(|r| r.version)
            .collect();
        Ok(VersionDetail {
            version: v,
            versions,
        })
    }

    /// A version's lineage.
    pub async fn lineage(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<LineageChain, ServiceError> {
        let v = self.find_version(name, version).await?;
        self.authorize(Action::ReadDataset, &resource(&v)).await?;
        let lineage = self.home().lineage(&v.dataset, Some(v.version)).await?;
        Ok(LineageChain { lineage })
    }

    /// Decrypt a version's files where the zone rules let this caller.
    pub(crate) async fn read_files(
        &self,
        v: &DatasetVersion,
    ) -> Result<Vec<(ManifestFile, Vec<u8>)>, ServiceError> {
        Ok(self
            .home()
            .read_version(v, Access::Zone(v.zone), self.purpose)
            .await?)
    }

    /// A version's files by index, format and size only: file names can carry patient names
    /// (Synthea names its bundles after the patient).
    pub async fn files(&self, name: &str, version: Option<u32>) -> Result<FileList, ServiceError> {
        let v = self.find_version(name, version).await?;
        self.authorize(Action::DownloadDataset, &resource(&v))
            .await?;
        let files = self.read_files(&v).await?;
        Ok(FileList {
            dataset: v.dataset.clone(),
            version: v.version,
            files: files
                .iter()
                .enumerate()
                .map(|(index, (f, b))| FileEntry {
                    index,
                    format: f.format.clone(),
                    records: f.records,
                    bytes: b.len(),
                })
                .collect(),
        })
    }

    /// One file's plaintext; an export entry, with a disclosure when the data is identified.
    pub async fn download(
        &self,
        name: &str,
        index: usize,
        version: Option<u32>,
    ) -> Result<Download, ServiceError> {
        let v = self.find_version(name, version).await?;
        self.authorize(Action::DownloadDataset, &resource(&v))
            .await?;
        let files = self.read_files(&v).await?;
        let Some((f, bytes)) = files.into_iter().nth(index) else {
            return Err(ServiceError::NotFound { what: "file" });
        };
        let mut entry = self
            .entry(EventType::Export, v.zone, OutcomeKind::Success)
            .with_resource(LedgerResource::DatasetVersion(v.reference().to_string()))
            .with_reason(format!("file {index} downloaded over the API"));
        if v.classification.is_identified() {
            entry = entry.with_disclosure(DisclosureInfo {
                recipient: self.who.principal.id.to_string(),
                description: format!("{} file of {}", f.format, v.reference()),
            });
        }
        self.audit(entry).await?;
        Ok(Download {
            format: f.format,
            bytes,
        })
    }
}
