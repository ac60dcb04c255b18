//! A clinician's lookup of one patient's record in an identified clinical dataset: decided
//! with the purpose of use (and a live break-glass grant under `emergency`), recorded with the
//! patient's pseudonym, answered as a FHIR `searchset` Bundle.
//!
//! Minimum necessary (issue 28, finding 8): a person opens a record only with a treatment
//! relationship found in the record itself (an Encounter's participant, a CareTeam's member, the
//! Patient's general practitioner or an EpisodeOfCare's care manager naming the Practitioner
//! whose identifier the clinician is linked to), or under a break-glass grant. A service reads
//! for a system, not for one clinician's patients: it needs two factors instead (policy
//! `service-phi-two-factors`).

use schemars::JsonSchema;
use std::collections::BTreeSet;

use airlock_authz::{Action, PrincipalKind, Resource};
use airlock_ledger::{EventType, OutcomeKind};
use airlock_store::{ManifestFile, parse_version_spec};
use airlock_types::{Classification, Mrn, Phi, Purpose, Zone};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::caller::parse_mrn;
use crate::identity::PractitionerLink;
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

/// What a lookup found.
struct Found {
    /// The Patient and every resource that references it.
    resources: Vec<Value>,
    /// Whether the record names the practitioner asked about as treating the patient.
    treated_by: bool,
}

/// The FHIR resources of one patient in a dataset version: the Patient whose identifier has
/// this value, and every resource that references it; and whether they name `practitioner` as
/// treating the patient.
/// One of the two places a record number is unwrapped (see the crate's documentation): it is
/// compared with each `Patient.identifier` value, and goes no further.
fn patient_resources(
    files: &[(ManifestFile, Vec<u8>)],
    mrn: &Phi<Mrn>,
    practitioner: Option<&PractitionerLink>,
) -> Found {
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
    // How the dataset refers to the linked practitioner: `Practitioner/{id}` and the entry's
    // `fullUrl` of every Practitioner carrying the identifier.
    let mut practitioner_refs = BTreeSet::new();
    if let Some(link) = practitioner {
        for (full, r) in &resources {
            if r.get("resourceType").and_then(Value::as_str) == Some("Practitioner")
                && r.get("identifier")
                    .and_then(Value::as_array)
                    .is_some_and(|ids| ids.iter().any(|i| same_identifier(i, link)))
            {
                if let Some(id) = r.get("id").and_then(Value::as_str) {
                    practitioner_refs.insert(format!("Practitioner/{id}"));
                }
                if let Some(f) = full {
                    practitioner_refs.insert(f.clone());
                }
            }
        }
    }
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
        return Found {
            resources: Vec::new(),
            treated_by: false,
        };
    }
    let resources: Vec<Value> = resources
        .into_iter()
        .filter(|(full, r)| {
            full.as_ref().is_some_and(|f| refs.contains(f)) || references_any(r, &refs)
        })
        .map(|(_, r)| r)
        .collect();
    let treated_by = practitioner.is_some_and(|link| {
        resources
            .iter()
            .any(|r| names_as_treating(r, link, &practitioner_refs))
    });
    Found {
        resources,
        treated_by,
    }
}

/// Whether a FHIR identifier has the link's system and value.
fn same_identifier(identifier: &Value, link: &PractitionerLink) -> bool {
    identifier.get("system").and_then(Value::as_str) == Some(link.system.as_str())
        && identifier.get("value").and_then(Value::as_str) == Some(link.value.as_str())
}

/// Whether one of the patient's resources names the practitioner as treating them, in the
/// elements that say so: an Encounter's participant, a CareTeam's member, the Patient's
/// general practitioner, an EpisodeOfCare's care manager. A Reference names them by a literal
/// reference to their Practitioner, by a conditional one
/// (`Practitioner?identifier=SYSTEM|VALUE`, as Synthea writes), or by a logical identifier.
fn names_as_treating(r: &Value, link: &PractitionerLink, refs: &BTreeSet<String>) -> bool {
    let names = |reference: &Value| {
        let literal = reference.get("reference").and_then(Value::as_str);
        literal.is_some_and(|s| {
            refs.contains(s)
                || s.strip_prefix("Practitioner?identifier=")
                    .is_some_and(|token| token == link.to_string())
        }) || reference
            .get("identifier")
            .is_some_and(|i| same_identifier(i, link))
    };
    let each = |array: Option<&Value>, field: &str| {
        array
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.get(field))
            .any(names)
    };
    match r.get("resourceType").and_then(Value::as_str) {
        Some("Encounter") => each(r.get("participant"), "individual"),
        Some("CareTeam") => each(r.get("participant"), "member"),
        Some("Patient") => r
            .get("generalPractitioner")
            .and_then(Value::as_array)
            .is_some_and(|gps| gps.iter().any(names)),
        Some("EpisodeOfCare") => r.get("careManager").is_some_and(names),
        _ => false,
    }
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
        // Records are opened in the clinical zone only (a dataset elsewhere is refused below),
        // so the decision is taken before the dataset is looked for: a caller the policy
        // refuses learns the rule, not whether the dataset exists.
        let resource = Resource::Patient {
            zone: Zone::Clinical,
        };
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
            self.record(Action::ReadPatientRecord, &resource, &denied, Some(p))
                .await?;
            return Err(ServiceError::Throttled { retry_after });
        }
        // Recorded before any data is read (the crate's invariant); a missing treatment
        // relationship, found in the record itself, is a second entry: a refusal.
        self.authorize_with(
            Action::ReadPatientRecord,
            &resource,
            grant.is_some(),
            Some(p.clone()),
        )
        .await?;
        let v = self
            .find_version(name.as_str(), ver.map(|v| v.get()))
            .await?;
        if v.classification != Classification::Phi || v.zone != Zone::Clinical {
            return Err(ServiceError::Refused {
                reason: "patient records are looked up in identified clinical datasets".into(),
            });
        }
        // A person needs a treatment relationship unless a break-glass grant covers them.
        let needs_relationship = self.who.principal.kind == PrincipalKind::User && grant.is_none();
        let link = if needs_relationship {
            self.service()
                .identities()
                .practitioner(&self.who.principal.id)
                .await?
        } else {
            None
        };
        let files = self.read_files(&v).await?;
        let Found {
            resources: found,
            treated_by,
        } = tokio::task::spawn_blocking(move || patient_resources(&files, &mrn, link.as_ref()))
            .await
            .map_err(ServiceError::internal)?;
        if needs_relationship && !treated_by && !found.is_empty() {
            let denied = airlock_authz::Decision {
                effect: airlock_authz::Effect::Deny,
                policies: vec!["treatment-relationship".into()],
                errors: Vec::new(),
            };
            self.record(Action::ReadPatientRecord, &resource, &denied, Some(p))
                .await?;
            return Err(ServiceError::Forbidden {
                reason: "forbid:treatment-relationship: the record names no encounter, care \
                         team or general practitioner entry for the practitioner you are linked \
                         to (an emergency needs a break-glass grant)"
                    .into(),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link() -> PractitionerLink {
        PractitionerLink::parse("1234567893").unwrap()
    }

    #[test]
    fn each_treating_element_names_the_practitioner() {
        let refs: BTreeSet<String> = ["Practitioner/p1".to_string()].into();
        let cases = [
            json!({"resourceType": "Encounter", "participant": [{"individual": {"reference": "Practitioner/p1"}}]}),
            // Synthea's transaction bundles: a conditional reference by NPI.
            json!({"resourceType": "Encounter", "participant": [{"individual": {
                "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893"}}]}),
            // A logical reference.
            json!({"resourceType": "CareTeam", "participant": [{"member": {"identifier": {
                "system": NPI_SYSTEM_FOR_TESTS, "value": "1234567893"}}}]}),
            json!({"resourceType": "Patient", "generalPractitioner": [{"reference": "Practitioner/p1"}]}),
            json!({"resourceType": "EpisodeOfCare", "careManager": {"reference": "Practitioner/p1"}}),
        ];
        for r in &cases {
            assert!(names_as_treating(r, &link(), &refs), "{r}");
        }
        let not = [
            json!({"resourceType": "Encounter", "participant": [{"individual": {"reference": "Practitioner/p2"}}]}),
            json!({"resourceType": "Encounter", "participant": [{"individual": {
                "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999"}}]}),
            // Named, but not as treating: a Condition's asserter is not a relationship.
            json!({"resourceType": "Condition", "asserter": {"reference": "Practitioner/p1"}}),
            json!({"resourceType": "Encounter", "participant": [{"individual": {"identifier": {
                "system": "urn:other", "value": "1234567893"}}}]}),
        ];
        for r in &not {
            assert!(!names_as_treating(r, &link(), &refs), "{r}");
        }
    }

    const NPI_SYSTEM_FOR_TESTS: &str = crate::identity::NPI_SYSTEM;
}
