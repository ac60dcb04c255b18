//! The ledger as auditors read it: search, verification, checkpoints, inclusion proofs,
//! exports (JSON lines or FHIR AuditEvents) and a patient's accounting of disclosures.

use airlock_authz::{Action, Resource};
use airlock_ledger::{Entry, EventType, Filter};
use airlock_types::ActorId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Caller, ServiceError};

/// What to search for.
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Entries by this principal.
    #[serde(default)]
    #[schemars(with = "Option<airlock_types::ActorId>")]
    pub actor: Option<String>,
    /// Entries about this patient (matched through the keyed pseudonym).
    #[serde(default)]
    #[schemars(with = "Option<airlock_types::Mrn>")]
    pub patient_mrn: Option<String>,
    /// Entries of these event types.
    #[serde(default)]
    #[schemars(with = "Vec<airlock_ledger::EventType>")]
    pub events: Vec<String>,
    /// At or after (RFC 3339).
    #[serde(default)]
    #[schemars(with = "Option<crate::schema::DateTime>")]
    pub since: Option<String>,
    /// At or before (RFC 3339).
    #[serde(default)]
    #[schemars(with = "Option<crate::schema::DateTime>")]
    pub until: Option<String>,
    /// At most this many, newest first (default 1,000; 1 to 10,000).
    #[serde(default, deserialize_with = "crate::json::optional_integer")]
    #[schemars(range(min = 1, max = 10_000))]
    pub limit: Option<usize>,
}

/// One entry and its index.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Indexed {
    /// Its position in the ledger.
    pub index: u64,
    /// The entry.
    pub entry: Entry,
}

/// A search's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchResult {
    /// Entries that matched.
    pub total: usize,
    /// Entries returned (newest first).
    pub returned: usize,
    /// The entries.
    pub entries: Vec<Indexed>,
}

/// A verification's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Verification {
    /// Whether every check passed.
    pub verified: bool,
    /// The verified checkpoint's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Its root, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Entries checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Tiles checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles: Option<u64>,
    /// What failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON entry a line.
    #[default]
    Jsonl,
    /// A FHIR `Bundle` of `AuditEvent`s.
    Fhir,
}

impl ExportFormat {
    /// `jsonl` (the default when absent) or `fhir`.
    pub fn parse(s: Option<&str>) -> Result<Self, ServiceError> {
        match s {
            None | Some("jsonl") => Ok(ExportFormat::Jsonl),
            Some("fhir") => Ok(ExportFormat::Fhir),
            Some(_) => Err(ServiceError::invalid("format", "must be jsonl or fhir")),
        }
    }

    /// The media type of an export in this format.
    pub const fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/jsonl",
            ExportFormat::Fhir => "application/fhir+json",
        }
    }
}

/// One disclosure of a patient's data.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Disclosure {
    /// The ledger index.
    pub index: u64,
    /// When (RFC 3339).
    #[schemars(with = "crate::schema::DateTime")]
    pub date: String,
    /// To whom.
    pub recipient: String,
    /// What.
    pub description: String,
    /// Why (the HL7 code and name), or a statement that none was recorded.
    pub purpose: String,
}

/// A patient's accounting of disclosures.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Disclosures {
    /// The patient's pseudonym.
    pub patient: String,
    /// The disclosures, oldest first.
    pub disclosures: Vec<Disclosure>,
}

fn parse_time(field: &'static str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, ServiceError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| ServiceError::invalid(field, "must be an RFC 3339 time"))
}

impl Caller {
    /// Search the ledger (decided before `query` is looked at).
    pub async fn audit_search(
        &self,
        query: Result<SearchQuery, ServiceError>,
    ) -> Result<SearchResult, ServiceError> {
        self.authorize(Action::ReadAudit, &Resource::Audit).await?;
        let q = query?;
        let filter = Filter {
            actor: q
                .actor
                .map(ActorId::new)
                .transpose()
                .map_err(|_| ServiceError::invalid("actor", "is not a valid actor id"))?,
            patient: q
                .patient_mrn
                .as_deref()
                .map(|m| self.patient("patient_mrn", m))
                .transpose()?,
            events: q
                .events
                .iter()
                .map(|e| {
                    e.parse::<EventType>()
                        .map_err(|_| ServiceError::invalid("events", "names an unknown event type"))
                })
                .collect::<Result<_, _>>()?,
            since: q
                .since
                .as_deref()
                .map(|s| parse_time("since", s))
                .transpose()?,
            until: q
                .until
                .as_deref()
                .map(|s| parse_time("until", s))
                .transpose()?,
        };
        let limit = match q.limit {
            None => 1000,
            Some(n) if (1..=10_000).contains(&n) => n,
            Some(_) => {
                return Err(ServiceError::invalid(
                    "limit",
                    "must be between 1 and 10000",
                ));
            }
        };
        let hits = self.service().audit_search(filter).await?;
        let total = hits.len();
        let entries: Vec<Indexed> = hits
            .into_iter()
            .rev()
            .take(limit)
            .map(|(index, entry)| Indexed { index, entry })
            .collect();
        Ok(SearchResult {
            total,
            returned: entries.len(),
            entries,
        })
    }

    /// Sign a checkpoint, then verify the whole ledger against the deployment's key.
    pub async fn audit_verify(&self) -> Result<Verification, ServiceError> {
        self.authorize(Action::VerifyAudit, &Resource::Audit)
            .await?;
        // Sign a checkpoint first so the verification covers every entry written so far.
        self.home().ledger().checkpoint()?;
        let dir = self.home().ledger_dir();
        let key = self.home().verifier_key();
        let r = tokio::task::spawn_blocking(move || airlock_ledger::verify_dir(&dir, &key, None))
            .await
            .map_err(ServiceError::internal)?;
        Ok(match r {
            Ok(rep) => Verification {
                verified: true,
                size: Some(rep.checkpoint.size),
                root: Some(hex::encode(rep.checkpoint.root)),
                entries: Some(rep.entries),
                tiles: Some(rep.tiles),
                error: None,
            },
            Err(e) => Verification {
                verified: false,
                size: None,
                root: None,
                entries: None,
                tiles: None,
                error: Some(e.to_string()),
            },
        })
    }

    /// A freshly signed checkpoint (C2SP signed note).
    pub async fn audit_checkpoint(&self) -> Result<String, ServiceError> {
        self.authorize(Action::VerifyAudit, &Resource::Audit)
            .await?;
        Ok(self.home().ledger().checkpoint()?.text)
    }

    /// An inclusion proof of entry `index` (tlog-proof file).
    pub async fn audit_proof(&self, index: u64) -> Result<String, ServiceError> {
        self.authorize(Action::VerifyAudit, &Resource::Audit)
            .await?;
        let ledger = self.home().ledger();
        if index >= ledger.size()? {
            return Err(ServiceError::NotFound {
                what: "ledger entry",
            });
        }
        Ok(ledger.proof_file(index)?)
    }

    /// The whole ledger in `format` (decided before `format` is looked at).
    pub async fn audit_export(
        &self,
        format: Result<ExportFormat, ServiceError>,
    ) -> Result<(ExportFormat, Vec<u8>), ServiceError> {
        self.authorize(Action::ReadAudit, &Resource::Audit).await?;
        let format = format?;
        let all = self.service().audit_search(Filter::default()).await?;
        tokio::task::spawn_blocking(move || -> Result<(ExportFormat, Vec<u8>), ServiceError> {
            let mut out = Vec::new();
            match format {
                ExportFormat::Fhir => {
                    let events: Vec<serde_json::Value> = all
                        .iter()
                        .map(|(i, e)| {
                            serde_json::json!({"resource": airlock_ledger::to_fhir_audit_event(*i, e)})
                        })
                        .collect();
                    out = serde_json::to_vec(&serde_json::json!({
                        "resourceType": "Bundle", "type": "collection", "entry": events,
                    }))
                    .map_err(ServiceError::internal)?;
                }
                ExportFormat::Jsonl => {
                    airlock_ledger::write_jsonl(all.iter().map(|(_, e)| e), &mut out)?;
                }
            }
            Ok((format, out))
        })
        .await
        .map_err(ServiceError::internal)?
    }

    /// A patient's accounting of disclosures (45 CFR 164.528); decided before `mrn` is looked
    /// at.
    pub async fn audit_disclosures(
        &self,
        mrn: Result<String, ServiceError>,
    ) -> Result<Disclosures, ServiceError> {
        self.authorize(Action::ReadAudit, &Resource::Audit).await?;
        let p = self.patient("patient_mrn", &mrn?)?;
        let all = self.service().audit_search(Filter::default()).await?;
        let recs =
            airlock_ledger::disclosures(all.iter().map(|(i, e)| (*i, e)), &p, chrono::Utc::now());
        Ok(Disclosures {
            patient: p.as_str().to_string(),
            disclosures: recs
                .into_iter()
                .map(|r| Disclosure {
                    index: r.index,
                    date: r.date.to_rfc3339(),
                    recipient: r.recipient,
                    description: r.description,
                    purpose: r.purpose,
                })
                .collect(),
        })
    }
}
