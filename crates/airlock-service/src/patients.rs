//! A clinician's lookup of one patient's record in an identified clinical dataset: decided
//! with the purpose of use (and a live break-glass grant under `emergency`), recorded with the
//! patient's pseudonym, answered as a FHIR `searchset` Bundle.

use schemars::JsonSchema;
use std::collections::BTreeSet;

use airlock_authz::{Action, Resource};
use airlock_ledger::{EventType, OutcomeKind};
use airlock_store::{ManifestFile, parse_version_spec};
use airlock_types::{Classification, Mrn, Phi, Purpose, Zone};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::caller::parse_mrn;
use crate::{Caller, LedgerResource, ServiceError};

/// A lookup.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The dataset, `name[@version]`.
    #[schemars(with = "crate::schema::DatasetSpec")]
    pub dataset: String,
    /// The patient's record number.
    #[schemars(with = "airlock_types::Mrn")]
    pub mrn: String,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("dataset", &self.dataset)
            .finish_non_exhaustive()
    }
}

/// One entry of a searchset.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BundleEntry {
    /// The FHIR resource.
    pub resource: Value,
}

/// The patient's resources, as a FHIR `searchset` Bundle.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Searchset {
    /// Always `Bundle`.
    #[serde(rename = "resourceType")]
    #[schemars(schema_with = "crate::schema::bundle")]
    pub resource_type: &'static str,
    /// Always `searchset`.
    #[serde(rename = "type")]
    #[schemars(schema_with = "crate::schema::searchset")]
    pub kind: &'static str,
    /// How many resources.
    pub total: usize,
    /// The resources.
    pub entry: Vec<BundleEntry>,
}

/// The FHIR resources of one patient in a dataset version: the Patient whose identifier has
/// this value, and every resource that references it.
/// One of the two places a record number is unwrapped (see the crate's documentation): it is
/// compared with each `Patient.identifier` value, and goes no further.
fn patient_resources(files: &[(ManifestFile, Vec<u8>)], mrn: &Phi<Mrn>) -> Vec<Value> {
    let mrn = mrn.expose().as_str();
    let mut resources: Vec<(Option<String>, Value)> = Vec::new();
    for (f, bytes) in files {
        if f.format == "fhir-ndjson" {
            for line in bytes.split(|b| *b == b'\n') {
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    resources.push((None, v));
                }
            }
        } else if f.format.starts_with("fhir")
            && let Ok(v) = serde_json::from_slice::<Value>(bytes)
        {
            {
                if v.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                    for e in v
                        .get("entry")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(r) = e.get("resource") {
                            let full = e.get("fullUrl").and_then(Value::as_str).map(str::to_string);
                            resources.push((full, r.clone()));
                        }
                    }
                } else {
                    resources.push((None, v));
                }
            }
        }
    }
    let mut refs = BTreeSet::new();
    for (full, r) in &resources {
        let is_patient = r.get("resourceType").and_then(Value::as_str) == Some("Patient");
        // Medical record numbers only (type MR, HL7 table 0203): a lookup by SSN, licence or
        // passport number is a search across patients, not the opening of one record.
        let has_mrn = r
            .get("identifier")
            .and_then(Value::as_array)
            .is_some_and(|ids| {
                ids.iter().any(|i| {
                    is_record_number(i) && i.get("value").and_then(Value::as_str) == Some(mrn)
                })
            });
        if is_patient && has_mrn {
            if let Some(id) = r.get("id").and_then(Value::as_str) {
                refs.insert(format!("Patient/{id}"));
            }
            if let Some(f) = full {
                refs.insert(f.clone());
            }
        }
    }
    if refs.is_empty() {
        return Vec::new();
    }
    resources
        .into_iter()
        .filter(|(full, r)| {
            full.as_ref().is_some_and(|f| refs.contains(f)) || references_any(r, &refs)
        })
        .map(|(_, r)| r)
        .collect()
}

/// Whether an identifier is a medical record number: its type has the code `MR`.
fn is_record_number(identifier: &Value) -> bool {
    identifier
        .pointer("/type/coding")
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings
                .iter()
                .any(|c| c.get("code").and_then(Value::as_str) == Some("MR"))
        })
}

fn references_any(v: &Value, refs: &BTreeSet<String>) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            (k == "reference" && x.as_str().is_some_and(|s| refs.contains(s)))
                || references_any(x, refs)
        }),
        Value::Array(a) => a.iter().any(|x| references_any(x, refs)),
        _ => false,
    }
}

impl Caller {
    /// One patient's resources in an identified clinical dataset version.
    pub async fn lookup(&self, body: Lookup) -> Result<Searchset, ServiceError> {
        let (name, ver) = parse_version_spec(&body.dataset)
            .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
        let mrn = parse_mrn("mrn", &body.mrn)?;
        let p = self.service().pseudonym(&mrn);
        let v = self
            .find_version(name.as_str(), ver.map(|v| v.get()))
            .await?;
        let grant = if self.purpose == Some(Purpose::Emergency) {
            self.active_grant(&p).await?
        } else {
            None
        };
        if let Err(retry_after) = self
            .service()
            .inner
            .lookups
            .take(self.who.principal.id.clone(), std::time::Instant::now())
        {
            let denied = airlock_authz::Decision {
                effect: airlock_authz::Effect::Deny,
                policies: vec!["throttle:patient-lookups".into()],
                errors: Vec::new(),
            };
            self.record(
                Action::ReadPatientRecord,
                &Resource::Patient { zone: v.zone },
                &denied,
                Some(p),
            )
            .await?;
            return Err(ServiceError::Throttled { retry_after });
        }
        self.authorize_with(
            Action::ReadPatientRecord,
            &Resource::Patient { zone: v.zone },
            grant.is_some(),
            Some(p.clone()),
        )
        .await?;
        if v.classification != Classification::Phi || v.zone != Zone::Clinical {
            return Err(ServiceError::Refused {
                reason: "patient records are looked up in identified clinical datasets".into(),
            });
        }
        let files = self.read_files(&v).await?;
        let found = tokio::task::spawn_blocking(move || patient_resources(&files, &mrn))
            .await
            .map_err(ServiceError::internal)?;
        let mut entry = self
            .entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
            .with_resource(LedgerResource::DatasetVersion(v.reference().to_string()))
            .with_patient(p)
            .with_reason(format!("{} resources", found.len()));
        if let Some(g) = &grant {
            entry = entry
                .with_resource(LedgerResource::BreakGlass(g.clone()))
                .with_reason(format!(
                    "{} resources; under break-glass grant {g}",
                    found.len()
                ));
        }
        self.audit(entry).await?;
        if found.is_empty() {
            return Err(ServiceError::NotFound { what: "patient" });
        }
        Ok(Searchset {
            resource_type: "Bundle",
            kind: "searchset",
            total: found.len(),
            entry: found
                .into_iter()
                .map(|resource| BundleEntry { resource })
                .collect(),
        })
    }
}
