//! Expert determinations (45 CFR 164.514(b)(1)): a person with the `deid-expert` role reviews
//! what a release under an expert-determination profile would hold (the leak check's paths,
//! the residual re-identification risk) and signs that the risk is very small under stated
//! conditions: who may receive it, where, until when.
//!
//! A determination is bound to one source version (by content hash), one profile (by hash),
//! the engine version and the findings the expert saw. The gate computes the findings again
//! when it runs and releases under an expert-determination profile only when a determination
//! signed by this deployment covers exactly those findings and has not expired: a change of
//! data, profile or engine needs a new review. Determinations are signed with the
//! deployment's artifact key, kept in the airlock zone, copied into the released version and
//! recorded in the ledger.

use airlock_authz::Action;
use airlock_deid::RunReport;
use airlock_ledger::{EventType, OutcomeKind};
use airlock_store::{DatasetVersion, Home, StoreError, parse_version_spec};
use airlock_types::{Classification, Zone};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{Caller, LedgerResource, ServiceError};

/// What the signature covers is prefixed with this, so it can pass for no other artifact.
const SIGNATURE_CONTEXT: &[u8] = b"airlock expert determination v1\n";

/// The longest a determination may hold: experts commonly limit theirs to a few years, since
/// the data available to re-identify people changes.
pub const MAX_YEARS: i64 = 3;

/// A determination to sign.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDetermination {
    /// The identified source version the release is made from, `name[@version]`.
    #[schemars(with = "crate::schema::DatasetSpec")]
    pub dataset: String,
    /// The profile the release runs under (one whose releases need a determination).
    #[schemars(schema_with = "crate::schema::remote_profile")]
    pub profile: String,
    /// The statistical or scientific method applied and why it supports the determination.
    #[schemars(with = "crate::schema::ReasonLine")]
    pub method: String,
    /// The conditions the determination holds under.
    pub conditions: Conditions,
}

/// Conditions of a determination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Who may receive the release (teams, organisations), one line each.
    #[schemars(length(min = 1, max = 20), with = "Vec<crate::schema::ReasonLine>")]
    pub recipients: Vec<String>,
    /// Where it may be used, and under which controls.
    #[schemars(with = "crate::schema::ReasonLine")]
    pub environment: String,
    /// The last day the determination holds (`YYYY-MM-DD`, after today, at most three years
    /// ahead).
    #[schemars(with = "crate::schema::Day")]
    pub expires: String,
}

/// Residual risk of one table or resource set, as the expert saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RiskFigures {
    /// The table (`part-00001`, `fhir:Patient`...).
    pub table: String,
    /// Records counted.
    pub records: u64,
    /// The quasi-identifiers.
    pub quasi_identifiers: Vec<String>,
    /// The smallest equivalence class.
    pub k: u64,
    /// Prosecutor risk, maximum.
    pub prosecutor_max: f64,
    /// Journalist risk, maximum.
    pub journalist_max: f64,
    /// Journalist risk, average.
    pub journalist_avg: f64,
    /// Share of records unique on the quasi-identifiers.
    pub sample_unique_share: f64,
}

/// What a release would hold, in figures and paths (never values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Findings {
    /// Records read and written.
    pub records_in: u64,
    /// Records written.
    pub records_out: u64,
    /// Records quarantined (never written).
    pub quarantined: u64,
    /// Leak-check hits.
    pub leak_hits: u64,
    /// Where they are: `file path (kind)`, each once.
    pub leak_paths: Vec<String>,
    /// Residual re-identification risk.
    pub risk: Vec<RiskFigures>,
}

impl Findings {
    /// The findings of a run's report.
    pub fn of(report: &RunReport) -> Findings {
        let mut leak_paths: Vec<String> = report
            .leak_check
            .hits
            .iter()
            .map(|h| format!("{} {} ({})", h.file, h.path, h.kind))
            .collect();
        leak_paths.sort_unstable();
        leak_paths.dedup();
        Findings {
            records_in: report.records_in,
            records_out: report.records_out,
            quarantined: report.quarantined.len() as u64,
            leak_hits: report.leak_check.hits.len() as u64,
            leak_paths,
            risk: report
                .risk
                .iter()
                .map(|(table, r)| RiskFigures {
                    table: table.clone(),
                    records: r.records,
                    quasi_identifiers: r.quasi_identifiers.clone(),
                    k: r.k,
                    prosecutor_max: r.prosecutor_max,
                    journalist_max: r.journalist_max,
                    journalist_avg: r.journalist_avg,
                    sample_unique_share: r.sample_unique_share,
                })
                .collect(),
        }
    }

    /// One line for messages and the ledger (figures only).
    pub fn summary(&self) -> String {
        let risk = self
            .risk
            .iter()
            .map(|r| {
                format!(
                    "{}: k {} journalist max {:.4}",
                    r.table, r.k, r.journalist_max
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        format!(
            "{} leak-check hit(s){}; risk {}",
            self.leak_hits,
            if self.leak_paths.is_empty() {
                String::new()
            } else {
                format!(" in {}", self.leak_paths.join(", "))
            },
            if risk.is_empty() {
                "not measured".to_owned()
            } else {
                risk
            }
        )
    }
}

/// What is signed: everything but the id and the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Signed {
    /// The expert (a person holding `deid-expert`).
    pub expert: String,
    /// When it was signed (RFC 3339).
    pub signed_at: String,
    /// The source version, `name@version`.
    pub source: String,
    /// The source version's content hash.
    pub source_hash: String,
    /// The profile.
    pub profile: String,
    /// The profile's hash.
    pub profile_hash: String,
    /// The engine version that produced the findings.
    pub engine_version: String,
    /// The method, as the expert wrote it.
    pub method: String,
    /// What the release would hold.
    pub findings: Findings,
    /// The conditions.
    pub conditions: Conditions,
}

/// A signed expert determination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Determination {
    /// Its id: the first 16 hex digits of the SHA-256 of what is signed.
    pub id: String,
    /// What the expert determined.
    #[serde(flatten)]
    pub signed: Signed,
    /// The deployment's Ed25519 signature over the signed part (hex).
    pub signature: String,
}

impl Signed {
    fn message(&self) -> Vec<u8> {
        let mut m = SIGNATURE_CONTEXT.to_vec();
        // Field order is the struct's, and floats print the same shortest form they parse
        // from: the bytes are the same when a stored determination is read back.
        m.extend(serde_json::to_vec(self).unwrap_or_default());
        m
    }
}

/// Why a determination does not cover a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCovered {
    /// None was signed for this source version and profile.
    None,
    /// The newest one expired.
    Expired {
        /// Its id.
        id: String,
        /// Its last day.
        expires: String,
    },
    /// Signed for other findings (the engine or its key changed since).
    OtherFindings {
        /// Its id.
        id: String,
    },
    /// Its signature does not verify with this deployment's key.
    BadSignature {
        /// Its id.
        id: String,
    },
}

impl std::fmt::Display for NotCovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotCovered::None => {
                f.write_str("no expert determination covers this source version and profile")
            }
            NotCovered::Expired { id, expires } => {
                write!(f, "expert determination {id} expired after {expires}")
            }
            NotCovered::OtherFindings { id } => write!(
                f,
                "expert determination {id} was signed for other findings (the engine, its key or \
                 the data changed since): the expert must review this run's findings"
            ),
            NotCovered::BadSignature { id } => write!(
                f,
                "expert determination {id} does not verify with this deployment's key"
            ),
        }
    }
}

fn blob_name(source_hash: &str) -> String {
    format!("expert-determinations/{source_hash}")
}

/// The determinations signed for a source version, oldest first.
pub async fn stored(
    home: &Home,
    source: &DatasetVersion,
) -> Result<Vec<Determination>, StoreError> {
    let name = blob_name(&source.manifest_hash.to_hex());
    let Some(bytes) = home.blob(&name, Zone::Airlock).await? else {
        return Ok(Vec::new());
    };
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Config {
        path: std::path::PathBuf::from(name),
        reason: format!("unreadable expert determinations: {e}"),
    })
}

/// The newest determination that covers a release of `source` under `profile_hash` with these
/// findings on `today`, or why none does (the newest candidate's reason).
pub fn covering<'a>(
    candidates: &'a [Determination],
    source_hash: &str,
    profile_hash: &str,
    findings: &Findings,
    today: chrono::NaiveDate,
    verify: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<&'a Determination, NotCovered> {
    let mut why = NotCovered::None;
    for d in candidates.iter().rev() {
        let s = &d.signed;
        if s.source_hash != source_hash || s.profile_hash != profile_hash {
            continue;
        }
        let Ok(sig) = hex::decode(&d.signature) else {
            why = NotCovered::BadSignature { id: d.id.clone() };
            continue;
        };
        if !verify(&s.message(), &sig) || id_of(s) != d.id {
            why = NotCovered::BadSignature { id: d.id.clone() };
            continue;
        }
        match chrono::NaiveDate::parse_from_str(&s.conditions.expires, "%Y-%m-%d") {
            Ok(last) if last >= today => {}
            _ => {
                if why == NotCovered::None {
                    why = NotCovered::Expired {
                        id: d.id.clone(),
                        expires: s.conditions.expires.clone(),
                    };
                }
                continue;
            }
        }
        if &s.findings != findings {
            if matches!(why, NotCovered::None | NotCovered::Expired { .. }) {
                why = NotCovered::OtherFindings { id: d.id.clone() };
            }
            continue;
        }
        return Ok(d);
    }
    Err(why)
}

fn id_of(s: &Signed) -> String {
    let digest = sha2::Sha256::digest(s.message());
    hex::encode(digest).chars().take(16).collect()
}

fn line(field: &'static str, v: &str) -> Result<String, ServiceError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 500 || v.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            field,
            "must be 1 to 500 characters on one line",
        ));
    }
    Ok(v.to_owned())
}

fn check_conditions(c: &Conditions, today: chrono::NaiveDate) -> Result<Conditions, ServiceError> {
    if c.recipients.is_empty() || c.recipients.len() > 20 {
        return Err(ServiceError::invalid(
            "conditions.recipients",
            "must name 1 to 20 recipients",
        ));
    }
    let recipients = c
        .recipients
        .iter()
        .map(|r| line("conditions.recipients", r))
        .collect::<Result<Vec<_>, _>>()?;
    let expires = chrono::NaiveDate::parse_from_str(c.expires.trim(), "%Y-%m-%d")
        .map_err(|_| ServiceError::invalid("conditions.expires", "must be a date, YYYY-MM-DD"))?;
    let latest = today
        .checked_add_months(chrono::Months::new(12 * MAX_YEARS as u32))
        .unwrap_or(today);
    if expires <= today || expires > latest {
        return Err(ServiceError::invalid(
            "conditions.expires",
            format!("must be after today and at most {MAX_YEARS} years ahead"),
        ));
    }
    Ok(Conditions {
        recipients,
        environment: line("conditions.environment", &c.environment)?,
        expires: expires.format("%Y-%m-%d").to_string(),
    })
}

impl Caller {
    /// Sign an expert determination: the expert's judgement on what a release of `dataset`
    /// under `profile` would hold, computed here by running the gate's engine without
    /// releasing anything.
    pub async fn sign_expert_determination(
        &self,
        body: NewDetermination,
    ) -> Result<Determination, ServiceError> {
        let (name, ver) = parse_version_spec(&body.dataset)
            .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
        let source = self
            .find_version(name.as_str(), ver.map(|v| v.get()))
            .await?;
        self.authorize(
            Action::SignExpertDetermination,
            &crate::datasets::resource(&source),
        )
        .await?;
        if !crate::deid_runs::REMOTE_PROFILES.contains(&body.profile.as_str()) {
            return Err(ServiceError::invalid(
                "profile",
                format!(
                    "must be one of {}",
                    crate::deid_runs::REMOTE_PROFILES.join(", ")
                ),
            ));
        }
        let profile = airlock_deid::Profile::load(&body.profile).map_err(ServiceError::internal)?;
        if !profile.requires_expert_determination() {
            return Err(ServiceError::invalid(
                "profile",
                "releases under this profile need no determination (it is not an \
                 expert-determination profile)",
            ));
        }
        let today = chrono::Utc::now().date_naive();
        let method = line("method", &body.method)?;
        let conditions = check_conditions(&body.conditions, today)?;
        let home = self.home_across_zones();
        let assessed = crate::gate::assess(&home, &profile, &source)
            .await
            .map_err(|e| match e {
                crate::gate::GateError::Refused { reason } => ServiceError::Refused { reason },
                e => ServiceError::internal(e),
            })?;
        let signed = Signed {
            expert: self.who.principal.id.as_str().to_owned(),
            signed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            source: source.reference().to_string(),
            source_hash: source.manifest_hash.to_hex(),
            profile: profile.name().to_owned(),
            profile_hash: profile.hash().to_owned(),
            engine_version: assessed.report.engine_version.clone(),
            method,
            findings: Findings::of(&assessed.report),
            conditions,
        };
        let signature = home
            .sign_artifact(&signed.message())
            .map_err(ServiceError::internal)?;
        let d = Determination {
            id: id_of(&signed),
            signed,
            signature: hex::encode(signature),
        };
        let mut all = stored(&home, &source).await?;
        all.push(d.clone());
        let bytes = serde_json::to_vec_pretty(&all).map_err(ServiceError::internal)?;
        home.put_blob(
            &blob_name(&source.manifest_hash.to_hex()),
            Zone::Airlock,
            Classification::Deidentified,
            &bytes,
        )
        .await?;
        self.audit(
            self.entry(
                EventType::ExpertDetermination,
                Zone::Airlock,
                OutcomeKind::Success,
            )
            .with_resource(LedgerResource::DatasetVersion(
                source.reference().to_string(),
            ))
            .with_reason(format!(
                "determination {} under profile {} for {} recipient(s) until {}: {}",
                d.id,
                d.signed.profile,
                d.signed.conditions.recipients.len(),
                d.signed.conditions.expires,
                d.signed.findings.summary()
            )),
        )
        .await?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn findings(hits: u64) -> Findings {
        Findings {
            records_in: 10,
            records_out: 10,
            quarantined: 0,
            leak_hits: hits,
            leak_paths: vec![],
            risk: vec![RiskFigures {
                table: "fhir:Patient".into(),
                records: 10,
                quasi_identifiers: vec!["sex".into()],
                k: 5,
                prosecutor_max: 0.2,
                journalist_max: 0.1,
                journalist_avg: 0.05,
                sample_unique_share: 0.0,
            }],
        }
    }

    /// A stand-in for the deployment's key in these tests: the "signature" is the message's
    /// SHA-256, so what matters here (what is signed, and what is compared) is exercised.
    fn sign(s: Signed) -> Determination {
        Determination {
            id: id_of(&s),
            signature: hex::encode(sha2::Sha256::digest(s.message())),
            signed: s,
        }
    }

    fn verify(m: &[u8], sig: &[u8]) -> bool {
        sha2::Sha256::digest(m).as_slice() == sig
    }

    fn signed(expires: &str, hits: u64) -> Signed {
        Signed {
            expert: "eve".into(),
            signed_at: "2026-12-07T00:00:00Z".into(),
            source: "raw@1".into(),
            source_hash: "aa".into(),
            profile: "expert-determination".into(),
            profile_hash: "pp".into(),
            engine_version: "1".into(),
            method: "k-anonymity".into(),
            findings: findings(hits),
            conditions: Conditions {
                recipients: vec!["study".into()],
                environment: "development".into(),
                expires: expires.into(),
            },
        }
    }

    #[test]
    fn a_determination_covers_only_what_was_signed_until_it_expires() {
        let today = day("2026-12-07");
        let good = sign(signed("2027-01-31", 2));
        let all = vec![good.clone()];
        let ok = covering(&all, "aa", "pp", &findings(2), today, verify).unwrap();
        assert_eq!(ok.id, good.id);
        // Another source, another profile: nothing covers.
        assert_eq!(
            covering(&all, "bb", "pp", &findings(2), today, verify).unwrap_err(),
            NotCovered::None
        );
        assert_eq!(
            covering(&all, "aa", "qq", &findings(2), today, verify).unwrap_err(),
            NotCovered::None
        );
        // Other findings (one more hit than the expert saw).
        assert!(matches!(
            covering(&all, "aa", "pp", &findings(3), today, verify).unwrap_err(),
            NotCovered::OtherFindings { .. }
        ));
        // The day after its last day.
        assert!(matches!(
            covering(&all, "aa", "pp", &findings(2), day("2027-02-01"), verify).unwrap_err(),
            NotCovered::Expired { .. }
        ));
        // Edited after signing: a wider audience, the same signature.
        let mut edited = good.clone();
        edited.signed.conditions.recipients.push("a vendor".into());
        assert!(matches!(
            covering(&[edited], "aa", "pp", &findings(2), today, verify).unwrap_err(),
            NotCovered::BadSignature { .. }
        ));
        // The newest covering one wins; a stored determination reads back byte for byte.
        let newer = sign(signed("2027-06-30", 2));
        let both = vec![good, newer.clone()];
        let json = serde_json::to_vec(&both).unwrap();
        let back: Vec<Determination> = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            covering(&back, "aa", "pp", &findings(2), today, verify)
                .unwrap()
                .id,
            newer.id
        );
    }

    #[test]
    fn conditions_are_checked() {
        let today = day("2026-12-07");
        let ok = Conditions {
            recipients: vec![" readmission study team ".into()],
            environment: "development zone, no export".into(),
            expires: "2027-06-30".into(),
        };
        let c = check_conditions(&ok, today).unwrap();
        assert_eq!(c.recipients, ["readmission study team"]);
        for expires in ["2026-12-07", "2030-01-01", "30/06/2027", ""] {
            let bad = Conditions {
                expires: expires.into(),
                ..ok.clone()
            };
            assert!(check_conditions(&bad, today).is_err(), "{expires}");
        }
        let none = Conditions {
            recipients: vec![],
            ..ok.clone()
        };
        assert!(check_conditions(&none, today).is_err());
        let control = Conditions {
            environment: "dev\nzone".into(),
            ..ok
        };
        assert!(check_conditions(&control, today).is_err());
    }
}
