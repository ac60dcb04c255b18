//! Break-glass: a clinician's time-limited emergency access to one patient, with a coded
//! reason, flagged for the privacy officer's review.

use airlock_authz::{Action, Resource};
use airlock_ledger::{EventType, OutcomeKind, PatientPseudonym};
use airlock_store::Scope;
use airlock_types::Zone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Caller, LedgerResource, ServiceError};

/// The reasons a clinician may state for emergency access (coded, so no free text with PHI
/// reaches the ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "BreakGlassReason")]
pub enum Reason {
    /// Treatment that cannot wait.
    EmergencyTreatment,
    /// The patient cannot consent or answer.
    PatientUnresponsive,
    /// A consult that cannot wait for the usual access.
    UrgentConsult,
    /// The usual access path is down.
    SystemDowntime,
}

impl Reason {
    /// Every reason, in the order documented.
    pub const ALL: [Reason; 4] = [
        Reason::EmergencyTreatment,
        Reason::PatientUnresponsive,
        Reason::UrgentConsult,
        Reason::SystemDowntime,
    ];

    /// The coded name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::EmergencyTreatment => "emergency-treatment",
            Reason::PatientUnresponsive => "patient-unresponsive",
            Reason::UrgentConsult => "urgent-consult",
            Reason::SystemDowntime => "system-downtime",
        }
    }

    /// The reason a coded name stands for; the error names the field, never the value.
    pub fn parse(s: &str) -> Result<Reason, ServiceError> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ServiceError::invalid(
                    "reason",
                    format!(
                        "must be one of {}",
                        Reason::ALL.map(Reason::as_str).join(", ")
                    ),
                )
            })
    }
}

/// A grant to open.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// The patient's record number.
    #[schemars(with = "airlock_types::Mrn")]
    pub patient_mrn: String,
    /// A coded reason ([`Reason`]).
    #[schemars(with = "Reason")]
    pub reason: String,
    /// How long, 1 to 240 minutes (default 60).
    #[serde(default, deserialize_with = "crate::json::optional_integer")]
    #[schemars(range(min = 1, max = 240))]
    pub minutes: Option<i64>,
}

/// A grant just opened.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Opened {
    /// The grant's id.
    pub id: String,
    /// When it ends (RFC 3339).
    #[schemars(with = "crate::schema::DateTime")]
    pub expires_at: String,
    /// Always `pending`.
    #[schemars(schema_with = "crate::schema::always_pending")]
    pub review: &'static str,
}

/// A grant as the privacy officer reviews it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Grant {
    /// Its id.
    pub id: Option<String>,
    /// The clinician.
    pub principal: Option<String>,
    /// The patient's pseudonym.
    pub patient: Option<String>,
    /// The coded reason.
    pub reason: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// When it ends.
    pub expires_at: Option<String>,
    /// Who reviewed it.
    pub reviewed_by: Option<String>,
    /// When.
    pub reviewed_at: Option<String>,
}

/// Every grant.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Grants {
    /// Oldest first.
    pub grants: Vec<Grant>,
}

/// A review's verdict.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Verdict {
    /// The access was justified.
    Appropriate,
    /// It was not (an incident to follow up).
    Inappropriate,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Appropriate => "appropriate",
            Verdict::Inappropriate => "inappropriate",
        }
    }
}

/// A review.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// The verdict.
    pub outcome: Verdict,
}

impl Caller {
    /// Open a grant for this clinician and patient.
    pub async fn break_glass(&self, body: NewGrant) -> Result<Opened, ServiceError> {
        let reason = Reason::parse(&body.reason)?;
        let minutes = body.minutes.unwrap_or(60);
        if !(1..=240).contains(&minutes) {
            return Err(ServiceError::invalid(
                "minutes",
                "must be between 1 and 240",
            ));
        }
        let p = self.patient("patient_mrn", &body.patient_mrn)?;
        self.authorize_with(
            Action::BreakGlass,
            &Resource::Patient {
                zone: Zone::Clinical,
            },
            true,
            Some(p.clone()),
        )
        .await?;
        let id = hex::encode(rand::random::<[u8; 12]>());
        let now = chrono::Utc::now();
        let expires = now + chrono::Duration::minutes(minutes);
        let mut tx = self
            .home()
            .db()
            .begin(&Scope::zones([Zone::Clinical]))
            .await?;
        sqlx::query(
            "INSERT INTO break_glass (id, zone, principal, patient, reason, started_at, expires_at) \
             VALUES ($1, 'clinical', $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(self.who.principal.id.as_str())
        .bind(p.as_str())
        .bind(reason.as_str())
        .bind(now.to_rfc3339())
        .bind(expires.to_rfc3339())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audit(
            self.entry(
                EventType::BreakGlassStart,
                Zone::Clinical,
                OutcomeKind::Success,
            )
            .with_resource(LedgerResource::BreakGlass(id.clone()))
            .with_patient(p)
            .with_reason(format!(
                "{}; {minutes} minutes; flagged for privacy review",
                reason.as_str()
            )),
        )
        .await?;
        Ok(Opened {
            id,
            expires_at: expires.to_rfc3339(),
            review: "pending",
        })
    }

    /// The live grant for this caller and patient, if any.
    pub async fn active_grant(&self, p: &PatientPseudonym) -> Result<Option<String>, ServiceError> {
        let mut tx = self
            .home()
            .db()
            .begin(&Scope::zones([Zone::Clinical]))
            .await?;
        let rows = sqlx::query(
            "SELECT id, expires_at FROM break_glass WHERE principal = $1 AND patient = $2",
        )
        .bind(self.who.principal.id.as_str())
        .bind(p.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let now = chrono::Utc::now();
        for r in rows {
            let exp: String = r.try_get("expires_at")?;
            if chrono::DateTime::parse_from_rfc3339(&exp).is_ok_and(|t| t > now) {
                return Ok(Some(r.try_get("id")?));
            }
        }
        Ok(None)
    }

    /// Who holds grant `id`, if it exists.
    async fn grant_holder(&self, id: &str) -> Result<Option<String>, ServiceError> {
        let mut tx = self
            .home()
            .db()
            .begin(&Scope::zones([Zone::Clinical]))
            .await?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT principal FROM break_glass WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(holder)
    }

    /// Every grant, for review.
    pub async fn break_glass_grants(&self) -> Result<Grants, ServiceError> {
        self.authorize(Action::ReviewBreakGlass, &Resource::Audit)
            .await?;
        let mut tx = self
            .home()
            .db()
            .begin(&Scope::zones([Zone::Clinical]))
            .await?;
        let rows = sqlx::query(
            "SELECT id, principal, patient, reason, started_at, expires_at, reviewed_by, reviewed_at \
             FROM break_glass ORDER BY started_at",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let grants = rows
            .iter()
            .map(|r| {
                let g = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
                Grant {
                    id: g("id"),
                    principal: g("principal"),
                    patient: g("patient"),
                    reason: g("reason"),
                    started_at: g("started_at"),
                    expires_at: g("expires_at"),
                    reviewed_by: g("reviewed_by"),
                    reviewed_at: g("reviewed_at"),
                }
            })
            .collect();
        Ok(Grants { grants })
    }

    /// Review a grant once (decided before `review` is looked at).
    pub async fn review_break_glass(
        &self,
        id: &str,
        review: Result<Review, ServiceError>,
    ) -> Result<(), ServiceError> {
        self.authorize(Action::ReviewBreakGlass, &Resource::Audit)
            .await?;
        let review = review?;
        let holder = self.grant_holder(id).await?;
        if holder.as_deref() == Some(self.who.principal.id.as_str()) {
            let denied = airlock_authz::Decision {
                effect: airlock_authz::Effect::Deny,
                policies: vec!["forbid:review-own-break-glass".into()],
                errors: Vec::new(),
            };
            self.record(Action::ReviewBreakGlass, &Resource::Audit, &denied, None)
                .await?;
            return Err(ServiceError::Forbidden {
                reason: denied.reason(),
            });
        }
        let mut tx = self
            .home()
            .db()
            .begin(&Scope::zones([Zone::Clinical]))
            .await?;
        let n = sqlx::query(
            "UPDATE break_glass SET reviewed_by = $1, reviewed_at = $2 \
             WHERE id = $3 AND reviewed_at IS NULL",
        )
        .bind(self.who.principal.id.as_str())
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Err(ServiceError::NotFound {
                what: "unreviewed break-glass grant",
            });
        }
        self.audit(
            self.entry(
                EventType::BreakGlassStop,
                Zone::Clinical,
                OutcomeKind::Success,
            )
            .with_resource(LedgerResource::BreakGlass(id.to_string()))
            .with_reason(format!("reviewed: {}", review.outcome.as_str())),
        )
        .await
    }
}
