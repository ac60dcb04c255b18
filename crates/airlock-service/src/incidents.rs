//! Incident detection over the ledger (issue 24): the detection rules of `airlock-incidents`
//! run over every entry, with each actor's roles for peer baselines and the ledger's own
//! verification; findings cite entry indices and carry counts, never a patient.

use std::collections::BTreeMap;

use airlock_authz::{Action, Resource};
use airlock_incidents::detect::{self, Finding, Rules};
use airlock_ledger::{EventType, Filter, OutcomeKind};
use airlock_types::Zone;
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Caller, ServiceError};

/// What a scan found.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Scan {
    /// Entries scanned.
    pub entries: u64,
    /// Whether the ledger verified against the deployment's key.
    pub verified: bool,
    /// The rules' SHA-256 (hex).
    pub rules_hash: String,
    /// The findings, rule by rule.
    #[schemars(with = "Vec<FindingSchema>")]
    pub findings: Vec<Finding>,
}

/// A finding (the schema of `airlock_incidents::detect::Finding`).
#[derive(JsonSchema)]
#[expect(dead_code, reason = "a schema only")]
struct FindingSchema {
    /// The rule (`patient_volume`, `off_hours`, `break_glass`, `failed_logins`, `refusals`,
    /// `releases`, `leak_check`, `ledger`).
    rule: String,
    /// `low`, `medium`, `high` or `critical`.
    severity: String,
    /// Who (the ledger's actor; empty for the ledger itself).
    actor: String,
    /// The first cited entry's time.
    from: String,
    /// The last cited entry's time.
    to: String,
    /// What was seen, in words and counts.
    summary: String,
    /// Entries behind it.
    count: u64,
    /// Their ledger indices (at most 1,000).
    entries: Vec<u64>,
}

impl Caller {
    /// Run the detection rules (Airlock's defaults, or `rules` as TOML) over the whole ledger
    /// (`read-audit`: auditors, privacy officers, security administrators). The scan is itself
    /// a `query` entry naming its counts.
    pub async fn incident_scan(&self, rules: Option<&str>) -> Result<Scan, ServiceError> {
        self.authorize(Action::ReadAudit, &Resource::Audit).await?;
        let text = rules.unwrap_or(detect::DEFAULT_RULES);
        let parsed =
            Rules::from_toml(text).map_err(|e| ServiceError::invalid("rules", e.to_string()))?;
        let rules_hash = airlock_crypto::sha256(text.as_bytes()).to_hex();
        let service = self.service();
        // A checkpoint first, so verification covers every entry written so far.
        service.home().ledger().checkpoint()?;
        let dir = service.home().ledger_dir();
        let key = service.home().verifier_key();
        let verified = tokio::task::spawn_blocking(move || {
            airlock_ledger::verify_dir(&dir, &key, None)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(ServiceError::internal)?;
        let roles: BTreeMap<String, Vec<String>> = service
            .identities()
            .list()
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                )
            })
            .collect();
        let entries = service.audit_search(Filter::default()).await?;
        let ctx = detect::Context {
            now: Some(chrono::Utc::now()),
            roles,
            verified: Some(verified.clone()),
        };
        let n = entries.len() as u64;
        let findings = tokio::task::spawn_blocking(move || detect::scan(&entries, &parsed, &ctx))
            .await
            .map_err(ServiceError::internal)?;
        let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &findings {
            *by_rule.entry(f.rule.as_str()).or_default() += 1;
        }
        self.audit(
            self.entry(EventType::Query, Zone::Clinical, OutcomeKind::Success)
                .with_resource("audit")
                .with_reason(format!(
                    "incident scan over {n} entries (rules sha256 {}): {} finding(s){}",
                    rules_hash.get(..12).unwrap_or(&rules_hash),
                    findings.len(),
                    if by_rule.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({})",
                            by_rule
                                .iter()
                                .map(|(r, k)| format!("{r} {k}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                )),
        )
        .await?;
        Ok(Scan {
            entries: n,
            verified: verified.is_ok(),
            rules_hash,
            findings,
        })
    }
}
