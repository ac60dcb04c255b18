//! Predetermined change control plans (PCCP, after the FDA's guidance): which changes to a
//! model are allowed later, how each is verified, and how it must roll out, agreed once.
//!
//! A plan is a TOML document attached to a model name, versioned, signed with the deployment
//! key and approved once by the full quorum (the same roles as a model version, neither of
//! them its proposer). An update under an approved plan ([`update_under_plan`]) takes the
//! version it replaces, retrains it with the same features, family, target and
//! hyper-parameters on a newer version of the same dataset, validates the candidate and the
//! replaced version on the same held-out data, and checks every clause of the plan. A
//! conforming candidate is approved by the plan (a ledger entry with the plan's hash, instead
//! of human approvals) and still walks silent → canary → production under the plan's rollout
//! (a minimum of silent predictions, a maximum canary share: checked where it deploys; a
//! rollback trigger on realised AUROC: checked as outcomes arrive); a
//! non-conforming one names the clauses it broke and stays where validation left it, for the
//! full approval path. A change the plan does not allow is refused before anything is trained.

use airlock_ledger::{EventType, OutcomeKind};
use airlock_models::{FeatureKind, FeatureSpec};
use airlock_store::Scope;
use airlock_types::{ContentHash, Zone};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sqlx::Row as _;

use crate::validation::{SignedReport, ValidateRequest, validate_dataset};
use crate::{
    Approval, ModelName, ModelVersion, Registry, RegistryError, State, TrainRequest, Transition,
    train_on_dataset,
};

/// What a plan's signature covers, before the document's SHA-256.
const SIGNATURE_CONTEXT: &str = "airlock change control plan v1";

/// The role recorded for an approval given by a plan rather than a person.
pub const PLAN_APPROVAL_ROLE: &str = "change-control-plan";

/// A plan as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanDoc {
    /// The plan's name (`a-z`, `0-9`, `-`, at most 64).
    pub plan: String,
    /// The model it governs.
    pub model: String,
    /// The modifications allowed.
    #[serde(rename = "modification")]
    pub modifications: Vec<Modification>,
    /// How each modification is verified.
    pub verification: Verification,
    /// How a conforming version must roll out.
    pub rollout: Rollout,
}

/// A modification a plan allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Modification {
    /// Retrain with the same features, family, target and hyper-parameters on a newer version
    /// of the dataset the replaced version was trained on.
    Retrain,
}

/// The verification clauses (each absent one is not checked; the validation policy always is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// Sensitive attributes the reports group by.
    #[serde(default)]
    pub sensitive: Vec<String>,
    /// The most AUROC may fall below the replaced version's, on the same held-out data.
    pub max_auroc_drop: f64,
    /// A ceiling on expected calibration error.
    #[serde(default)]
    pub max_ece: Option<f64>,
    /// The most any attribute's equalized-odds difference may rise above the replaced
    /// version's.
    #[serde(default)]
    pub max_equalized_odds_increase: Option<f64>,
    /// A ceiling on the membership-inference attack's TPR at 0.1% FPR.
    #[serde(default)]
    pub max_membership_tpr: Option<f64>,
}

/// The rollout a conforming version follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Silent predictions it makes before it may become a canary.
    pub min_silent_predictions: u64,
    /// The largest canary share, in percent of patients.
    pub max_canary_percent: f64,
    /// The rollback trigger: a canary this plan approved goes back to silent by itself when
    /// its realised AUROC on posted outcomes falls below this.
    #[serde(default)]
    pub rollback_auroc_below: Option<f64>,
    /// Outcomes the trigger waits for before it judges.
    #[serde(default = "default_min_outcomes")]
    pub rollback_min_outcomes: u64,
}

fn default_min_outcomes() -> u64 {
    50
}

impl Rollout {
    /// Why a canary with `labelled` outcomes and realised `auroc` must roll back, if it must.
    pub fn rollback_due(&self, labelled: u64, auroc: Option<f64>) -> Option<String> {
        let floor = self.rollback_auroc_below?;
        let a = auroc?;
        (labelled >= self.rollback_min_outcomes && a < floor).then(|| {
            format!(
                "realised AUROC {a:.3} on {labelled} outcomes is below the rollback trigger {floor}"
            )
        })
    }
}

fn plan_err(plan: &str, rule: impl Into<String>) -> RegistryError {
    RegistryError::Plan {
        plan: plan.to_owned(),
        rule: rule.into(),
    }
}

impl PlanDoc {
    /// Parses and checks a plan; unknown keys and out-of-range figures are refused by name.
    pub fn parse(text: &str) -> Result<PlanDoc, RegistryError> {
        let doc: PlanDoc = toml::from_str(text).map_err(|e| {
            plan_err(
                "(unparsed)",
                format!("the plan does not parse: {}", e.message()),
            )
        })?;
        doc.check()?;
        Ok(doc)
    }

    fn check(&self) -> Result<(), RegistryError> {
        let bad = |rule: &str| Err(plan_err(&self.plan, rule));
        let named = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !named(&self.plan) {
            return bad("plan: a name of a-z, 0-9 and -, at most 64 characters");
        }
        ModelName::new(&self.model).map_err(|_| plan_err(&self.plan, "model: not a model name"))?;
        if self.modifications.is_empty() {
            return bad("modification: list at least one");
        }
        let v = &self.verification;
        let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        if !unit(v.max_auroc_drop) {
            return bad("verification.max_auroc_drop: between 0 and 1");
        }
        for (name, x) in [
            ("verification.max_ece", v.max_ece),
            (
                "verification.max_equalized_odds_increase",
                v.max_equalized_odds_increase,
            ),
            ("verification.max_membership_tpr", v.max_membership_tpr),
        ] {
            if x.is_some_and(|x| !unit(x)) {
                return Err(plan_err(&self.plan, format!("{name}: between 0 and 1")));
            }
        }
        let r = &self.rollout;
        if !(r.max_canary_percent.is_finite()
            && r.max_canary_percent > 0.0
            && r.max_canary_percent <= 50.0)
        {
            return bad("rollout.max_canary_percent: above 0 and at most 50");
        }
        if r.rollback_auroc_below.is_some_and(|x| !unit(x)) {
            return bad("rollout.rollback_auroc_below: between 0 and 1");
        }
        if r.rollback_min_outcomes < 10 {
            return bad("rollout.rollback_min_outcomes: at least 10");
        }
        Ok(())
    }

    /// Whether a modification is allowed.
    pub fn allows(&self, m: &Modification) -> bool {
        self.modifications.contains(m)
    }
}

/// A stored plan.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlanRecord {
    /// Its name.
    pub name: String,
    /// Its version (1, 2, ...).
    pub version: i64,
    /// The model it governs.
    pub model: String,
    /// `proposed` or `approved`.
    pub state: String,
    /// SHA-256 of the document's text.
    pub hash: String,
    /// The deployment's Ed25519 signature (hex).
    pub ed25519: String,
    /// Who proposed it.
    pub proposed_by: String,
    /// When.
    pub proposed_at: String,
    /// The ledger entry of the proposal.
    pub ledger_index: i64,
    /// The document.
    pub document: PlanDoc,
    /// The document's text, as signed.
    pub text: String,
    /// Its approvals.
    pub approvals: Vec<Approval>,
    /// Roles still to approve.
    pub missing_roles: Vec<String>,
}

/// One clause checked for an update.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Clause {
    /// The clause, by its path in the plan.
    pub clause: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind it.
    pub detail: String,
}

/// An update under a plan.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    /// The plan, `name` or `name@version` (the latest approved when no version).
    pub plan: String,
    /// The model.
    pub model: ModelName,
    /// The version it replaces (a prefix).
    pub from: String,
    /// The newer version of the training dataset, `name@version`.
    pub dataset: String,
    /// Held-out data both versions are validated on.
    pub validate_on: String,
    /// Features, when the caller asks for different ones (refused: the plan allows none).
    pub features: Option<Vec<String>>,
    /// A family, when the caller asks for a different one (refused).
    pub family: Option<String>,
    /// A target, when the caller asks for a different one (refused).
    pub target: Option<String>,
}

/// What an update did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UpdateOutcome {
    /// The plan, `name@version`.
    pub plan: String,
    /// The plan's hash.
    pub plan_hash: String,
    /// The version replaced.
    pub replaces: String,
    /// The candidate version.
    pub version: ModelVersion,
    /// Every clause checked.
    pub clauses: Vec<Clause>,
    /// Whether every clause held: then the plan approved it.
    pub conforming: bool,
    /// The candidate's validation report.
    pub report: SignedReport,
    /// The replaced version's report on the same data.
    pub replaced_report: SignedReport,
    /// The steps taken (validated, approved by the plan).
    pub transitions: Vec<Transition>,
}

/// The clauses of `plan` for a candidate against the version it replaces, both measured on the
/// same held-out data.
pub fn verify(plan: &PlanDoc, replaced: &SignedReport, candidate: &SignedReport) -> Vec<Clause> {
    let (old, new) = (&replaced.body, &candidate.body);
    let v = &plan.verification;
    let mut out = vec![Clause {
        clause: "verification.policy".into(),
        passed: new.passed,
        detail: if new.passed {
            format!("passed the validation policy {}", short(&new.policy_hash))
        } else {
            new.reasons.join("; ")
        },
    }];
    let (a_old, a_new) = (
        old.report.metrics.auroc.value,
        new.report.metrics.auroc.value,
    );
    out.push(Clause {
        clause: "verification.max_auroc_drop".into(),
        passed: a_new >= a_old - v.max_auroc_drop,
        detail: format!(
            "AUROC {a_new:.4} against {a_old:.4} (the most it may fall: {})",
            v.max_auroc_drop
        ),
    });
    if let Some(max) = v.max_ece {
        let e = new.report.metrics.ece.value;
        out.push(Clause {
            clause: "verification.max_ece".into(),
            passed: e <= max,
            detail: format!("ECE {e:.4} (at most {max})"),
        });
    }
    if let Some(max) = v.max_equalized_odds_increase {
        for d in &new.report.disparities {
            let now = d.equalized_odds_difference.as_ref().map(|e| e.value);
            let before = old
                .report
                .disparities
                .iter()
                .find(|o| o.attribute == d.attribute)
                .and_then(|o| o.equalized_odds_difference.as_ref().map(|e| e.value));
            let (passed, detail) = match (now, before) {
                (Some(n), Some(b)) => (
                    n <= b + max,
                    format!("equalized-odds difference {n:.4} against {b:.4} (at most +{max})"),
                ),
                _ => (
                    false,
                    "not measured for both versions (groups too small)".to_owned(),
                ),
            };
            out.push(Clause {
                clause: format!("verification.max_equalized_odds_increase[{}]", d.attribute),
                passed,
                detail,
            });
        }
    }
    if let Some(max) = v.max_membership_tpr {
        let tpr = new
            .report
            .membership_inference
            .as_ref()
            .map(|m| m.tpr_at_fpr_0_001);
        out.push(Clause {
            clause: "verification.max_membership_tpr".into(),
            passed: tpr.is_some_and(|t| t <= max),
            detail: tpr.map_or_else(
                || "the attack could not run (training rows unavailable)".to_owned(),
                |t| format!("TPR {t:.4} at 0.1% FPR (at most {max})"),
            ),
        });
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn plan_message(name: &str, version: i64, model: &str, text: &str) -> Vec<u8> {
    format!(
        "{SIGNATURE_CONTEXT}\nplan {name}\nversion {version}\nmodel {model}\ndocument {}\n",
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    )
    .into_bytes()
}

impl Registry {
    /// A plan's ledger entry (a configuration change of the model it governs).
    async fn audit_plan(&self, model: &str, reason: String) -> Result<u64, RegistryError> {
        Ok(self
            .home()
            .audit(
                self.home()
                    .entry(
                        EventType::ConfigChange,
                        Zone::Clinical,
                        OutcomeKind::Success,
                    )
                    .with_resource(format!("model:{model}"))
                    .with_reason(reason),
            )
            .await?)
    }

    /// Propose a plan (a new version of it, `proposed` until the quorum approves it).
    pub async fn propose_plan(&self, text: &str) -> Result<PlanRecord, RegistryError> {
        let doc = PlanDoc::parse(text)?;
        let model = ModelName::new(&doc.model)?;
        if self.versions(&model).await?.is_empty() {
            return Err(RegistryError::NotFound {
                name: model.to_string(),
                version: None,
            });
        }
        let mut tx = self.home().db().begin(&Scope::all()).await?;
        let next: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM model_plans WHERE name = $1",
        )
        .bind(&doc.plan)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        let sig = self
            .home()
            .sign_artifact(&plan_message(&doc.plan, next, &doc.model, text))?;
        let idx = self
            .audit_plan(
                &doc.model,
                format!(
                    "change control plan {}@{next} proposed ({})",
                    doc.plan,
                    short(&hash)
                ),
            )
            .await?;
        let mut tx = self.home().db().begin(&Scope::all()).await?;
        sqlx::query(
            "INSERT INTO model_plans (name, version, model, body, hash, ed25519, proposed_by, \
             proposed_at, state, ledger_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'proposed', $9)",
        )
        .bind(&doc.plan)
        .bind(next)
        .bind(&doc.model)
        .bind(text)
        .bind(&hash)
        .bind(hex::encode(sig))
        .bind(self.home().actor().as_str())
        .bind(now())
        .bind(i64::try_from(idx).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.plan(&format!("{}@{next}", doc.plan)).await
    }

    /// A plan, `name` (its latest version) or `name@version`, verified against its signature.
    pub async fn plan(&self, spec: &str) -> Result<PlanRecord, RegistryError> {
        let (name, version) = match spec.split_once('@') {
            Some((n, v)) => (
                n,
                Some(
                    v.parse::<i64>()
                        .map_err(|_| plan_err(n, "a plan version is a number"))?,
                ),
            ),
            None => (spec, None),
        };
        let mut tx = self.home().db().begin(&Scope::all()).await?;
        let row = sqlx::query(
            "SELECT name, version, model, body, hash, ed25519, proposed_by, proposed_at, state, \
             ledger_index FROM model_plans WHERE name = $1 AND ($2 IS NULL OR version = $2) \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let approvals = match &row {
            None => Vec::new(),
            Some(r) => sqlx::query(
                "SELECT role, actor, reason, at, ledger_index FROM model_plan_approvals \
                 WHERE name = $1 AND version = $2 ORDER BY at",
            )
            .bind(name)
            .bind(r.try_get::<i64, _>("version")?)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|a| {
                Ok::<_, sqlx::Error>(Approval {
                    role: a.try_get("role")?,
                    actor: a.try_get("actor")?,
                    reason: a.try_get("reason")?,
                    at: a.try_get("at")?,
                    ledger_index: u64::try_from(a.try_get::<i64, _>("ledger_index")?).unwrap_or(0),
                })
            })
            .collect::<Result<_, _>>()?,
        };
        tx.commit().await?;
        let row = row.ok_or_else(|| RegistryError::PlanNotFound {
            plan: name.to_owned(),
        })?;
        let text: String = row.try_get("body")?;
        let version: i64 = row.try_get("version")?;
        let model: String = row.try_get("model")?;
        let ed25519: String = row.try_get("ed25519")?;
        let tampered = || plan_err(name, "the stored plan does not match its signature");
        let sig = hex::decode(&ed25519).map_err(|_| tampered())?;
        if !self
            .home()
            .verify_artifact(&plan_message(name, version, &model, &text), &sig)
        {
            return Err(tampered());
        }
        let document = PlanDoc::parse(&text)?;
        let have: Vec<&str> = approvals
            .iter()
            .map(|a: &Approval| a.role.as_str())
            .collect();
        let missing_roles = self
            .approver_roles()
            .iter()
            .filter(|r| !have.contains(&r.as_str()))
            .cloned()
            .collect();
        Ok(PlanRecord {
            name: name.to_owned(),
            version,
            model,
            state: row.try_get("state")?,
            hash: row.try_get("hash")?,
            ed25519,
            proposed_by: row.try_get("proposed_by")?,
            proposed_at: row.try_get("proposed_at")?,
            ledger_index: row.try_get("ledger_index")?,
            document,
            text,
            approvals,
            missing_roles,
        })
    }

    /// The plans of a model (every version).
    pub async fn plans(&self, model: &ModelName) -> Result<Vec<PlanRecord>, RegistryError> {
        let mut tx = self.home().db().begin(&Scope::all()).await?;
        let rows = sqlx::query(
            "SELECT name, version FROM model_plans WHERE model = $1 ORDER BY name, version",
        )
        .bind(model.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.try_get("name")?;
            let version: i64 = r.try_get("version")?;
            out.push(self.plan(&format!("{name}@{version}")).await?);
        }
        Ok(out)
    }

    /// One role's approval of a plan: the same rules as a version's (a role the quorum needs,
    /// never its proposer, one person once); the last one makes it `approved`.
    pub async fn approve_plan(
        &self,
        spec: &str,
        role: &str,
        reason: &str,
    ) -> Result<PlanRecord, RegistryError> {
        let p = self.plan(spec).await?;
        let refuse = |rule: String| plan_err(&p.name, rule);
        if p.state != "proposed" {
            return Err(refuse(format!(
                "version {} is already {}",
                p.version, p.state
            )));
        }
        if !self.approver_roles().iter().any(|r| r == role) {
            return Err(refuse(format!(
                "the approval policy needs {}, not {role}",
                self.approver_roles().join(" and ")
            )));
        }
        let actor = self.home().actor().as_str();
        if p.proposed_by == actor {
            return Err(refuse("nobody approves a plan they proposed".into()));
        }
        if p.approvals.iter().any(|a| a.actor == actor) {
            return Err(refuse(
                "one person approves once; the quorum needs different people".into(),
            ));
        }
        if p.approvals.iter().any(|a| a.role == role) {
            return Err(refuse(format!("the {role} approval is already given")));
        }
        let complete = p.missing_roles.iter().all(|r| r == role);
        let idx = self
            .audit_plan(
                &p.model,
                format!(
                    "change control plan {}@{} ({}) approved as {role}{}: {reason}",
                    p.name,
                    p.version,
                    short(&p.hash),
                    if complete { ", quorum complete" } else { "" }
                ),
            )
            .await?;
        let mut tx = self.home().db().begin(&Scope::all()).await?;
        sqlx::query(
            "INSERT INTO model_plan_approvals (name, version, role, actor, reason, at, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&p.name)
        .bind(p.version)
        .bind(role)
        .bind(actor)
        .bind(reason)
        .bind(now())
        .bind(i64::try_from(idx).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        if complete {
            sqlx::query(
                "UPDATE model_plans SET state = 'approved' WHERE name = $1 AND version = $2",
            )
            .bind(&p.name)
            .bind(p.version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.plan(&format!("{}@{}", p.name, p.version)).await
    }

    /// The plan that approved a version, with its rollout, when one did.
    pub async fn approving_plan(
        &self,
        hash: &ContentHash,
    ) -> Result<Option<PlanRecord>, RegistryError> {
        let mut tx = self.home().db().begin(&Scope::all()).await?;
        let row = sqlx::query("SELECT plan, plan_version FROM model_plan_updates WHERE hash = $1")
            .bind(hash.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let name: String = r.try_get("plan")?;
                let version: i64 = r.try_get("plan_version")?;
                Ok(Some(self.plan(&format!("{name}@{version}")).await?))
            }
        }
    }

    /// `validated → approved` by a plan: the clauses and the plan's hash in the ledger and in
    /// `model_plan_updates`.
    async fn approve_by_plan(
        &self,
        v: &ModelVersion,
        plan: &PlanRecord,
        replaces: &ModelVersion,
        clauses: &[Clause],
    ) -> Result<Transition, RegistryError> {
        let reason = format!(
            "approved under change control plan {}@{} ({}), replacing {}: {} clause(s) held",
            plan.name,
            plan.version,
            short(&plan.hash),
            replaces.hash.short(),
            clauses.len()
        );
        let idx = self
            .home()
            .audit(
                self.home()
                    .entry(
                        EventType::ModelApprove,
                        Zone::Clinical,
                        OutcomeKind::Success,
                    )
                    .with_resource(format!("model:{}@{}", v.name, v.hash.to_hex()))
                    .with_reason(format!("approved as {PLAN_APPROVAL_ROLE}: {reason}")),
            )
            .await?;
        let at = now();
        let mut tx = self.home().db().begin(&Scope::all()).await?;
        sqlx::query(
            "INSERT INTO model_approvals (hash, zone, role, actor, reason, at, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(v.hash.to_hex())
        .bind(Zone::Clinical.as_str())
        .bind(PLAN_APPROVAL_ROLE)
        .bind(self.home().actor().as_str())
        .bind(&reason)
        .bind(&at)
        .bind(i64::try_from(idx).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO model_plan_updates (hash, plan, plan_version, plan_hash, replaces, clauses, at, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(v.hash.to_hex())
        .bind(&plan.name)
        .bind(plan.version)
        .bind(&plan.hash)
        .bind(replaces.hash.to_hex())
        .bind(serde_json::to_string(clauses).unwrap_or_default())
        .bind(&at)
        .bind(i64::try_from(idx).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.step(v, State::Approved, &reason).await
    }
}

/// Update a model under an approved plan (see the module): refuse what the plan does not
/// allow, retrain, validate both versions on the same data, check every clause, and let the
/// plan approve a conforming candidate.
pub async fn update_under_plan(
    home: &airlock_store::Home,
    registry: &Registry,
    req: &UpdateRequest,
    reason: &str,
) -> Result<UpdateOutcome, RegistryError> {
    let plan = registry.plan(&req.plan).await?;
    let refuse = |rule: String| plan_err(&plan.name, rule);
    if plan.state != "approved" {
        return Err(refuse(format!(
            "version {} is {}: a plan governs updates once the quorum has approved it",
            plan.version, plan.state
        )));
    }
    if plan.model != req.model.as_str() {
        return Err(refuse(format!(
            "it governs {}, not {}",
            plan.model, req.model
        )));
    }
    let from = registry.get(&req.model, &req.from).await?;
    let experiment = from.card.experiment.clone().ok_or_else(|| {
        refuse("the version it would replace has no training record (imported)".into())
    })?;
    // Only the modifications the plan lists: features, family and target stay.
    if req
        .features
        .as_ref()
        .is_some_and(|f| *f != experiment.features)
    {
        return Err(refuse(
            "changing the features is not a modification this plan allows".into(),
        ));
    }
    if req.family.as_ref().is_some_and(|f| *f != from.card.family) {
        return Err(refuse(
            "changing the model family is not a modification this plan allows".into(),
        ));
    }
    if req.target.as_ref().is_some_and(|t| *t != experiment.target) {
        return Err(refuse(
            "changing the target is not a modification this plan allows".into(),
        ));
    }
    if !plan.document.allows(&Modification::Retrain) {
        return Err(refuse(
            "retraining is not a modification this plan allows".into(),
        ));
    }
    // A newer version of the same dataset (its lineage), not another dataset.
    let trained_on = from
        .card
        .training_data
        .dataset
        .split_once('@')
        .map_or(from.card.training_data.dataset.as_str(), |(n, _)| n);
    let (new_name, new_version) =
        airlock_store::parse_version_spec(&req.dataset).map_err(|e| RegistryError::Data {
            reason: e.to_string(),
        })?;
    if new_name.as_str() != trained_on {
        return Err(refuse(format!(
            "a retrain reads a newer version of {trained_on}, not {new_name}"
        )));
    }
    let newer = home.version(&new_name, new_version).await?;
    if newer.manifest_hash == from.card.training_data.dataset_hash {
        return Err(refuse(format!(
            "{}@{} is the data {} was trained on: a retrain needs newer data",
            newer.dataset,
            newer.version,
            from.hash.short()
        )));
    }
    let features = experiment
        .features
        .iter()
        .map(|f| {
            match experiment
                .signature
                .features
                .iter()
                .find(|s| &s.name == f)
                .map(|s| &s.kind)
            {
                Some(FeatureKind::Categorical { .. }) => FeatureSpec::Categorical(f.clone()),
                _ => FeatureSpec::Numeric(f.clone()),
            }
        })
        .collect();
    let trained = train_on_dataset(
        home,
        registry,
        &TrainRequest {
            dataset: req.dataset.clone(),
            file: None,
            target: experiment.target.clone(),
            positive: experiment.positive.clone(),
            features,
            params: experiment.params.clone(),
            seed: experiment.seed,
            test_fraction: experiment.split.test_fraction,
            name: req.model.clone(),
            intended_use: from.card.intended_use.clone(),
            limitations: from.card.limitations.clone(),
        },
    )
    .await?;
    let validate = ValidateRequest {
        dataset: req.validate_on.clone(),
        file: None,
        sensitive: plan.document.verification.sensitive.clone(),
        threshold: None,
        resamples: Some(200),
    };
    let why = format!(
        "{reason} (update under plan {}@{})",
        plan.name, plan.version
    );
    let (replaced_report, _) = validate_dataset(
        home,
        registry,
        &req.model,
        &from.hash.to_hex(),
        &validate,
        &why,
    )
    .await?;
    let (report, validated) = validate_dataset(
        home,
        registry,
        &req.model,
        &trained.version.hash.to_hex(),
        &validate,
        &why,
    )
    .await?;
    let clauses = verify(&plan.document, &replaced_report, &report);
    let conforming = clauses.iter().all(|c| c.passed);
    let mut transitions: Vec<Transition> = validated.into_iter().collect();
    let candidate = registry
        .get(&req.model, &trained.version.hash.to_hex())
        .await?;
    if conforming {
        transitions.push(
            registry
                .approve_by_plan(&candidate, &plan, &from, &clauses)
                .await?,
        );
    } else {
        let broken: Vec<&str> = clauses
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.clause.as_str())
            .collect();
        home.audit(
            home.entry(EventType::ModelApprove, Zone::Clinical, OutcomeKind::Denied)
                .with_resource(format!(
                    "model:{}@{}",
                    candidate.name,
                    candidate.hash.to_hex()
                ))
                .with_reason(format!(
                    "not approved under change control plan {}@{} ({}): broke {}; the full approval path applies",
                    plan.name,
                    plan.version,
                    short(&plan.hash),
                    broken.join(", ")
                )),
        )
        .await?;
    }
    Ok(UpdateOutcome {
        plan: format!("{}@{}", plan.name, plan.version),
        plan_hash: plan.hash.clone(),
        replaces: from.label(),
        version: registry
            .get(&req.model, &trained.version.hash.to_hex())
            .await?,
        clauses,
        conforming,
        report,
        replaced_report,
        transitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"plan = "p"
model = "m"
[[modification]]
kind = "retrain"
[verification]
max_auroc_drop = 0.02
[rollout]
min_silent_predictions = 10
max_canary_percent = 10
rollback_auroc_below = 0.6
rollback_min_outcomes = 20
"#;

    #[test]
    fn plans_are_checked_by_name() {
        let p = PlanDoc::parse(PLAN).unwrap();
        assert!(p.allows(&Modification::Retrain));
        for (from, to, why) in [
            (
                "max_canary_percent = 10",
                "max_canary_percent = 80",
                "max_canary_percent",
            ),
            (
                "max_auroc_drop = 0.02",
                "max_auroc_drop = 2",
                "max_auroc_drop",
            ),
            (
                "rollback_min_outcomes = 20",
                "rollback_min_outcomes = 2",
                "rollback_min_outcomes",
            ),
            (
                "kind = \"retrain\"",
                "kind = \"recolour\"",
                "does not parse",
            ),
            ("plan = \"p\"", "plan = \"P Q\"", "plan:"),
        ] {
            let e = PlanDoc::parse(&PLAN.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_rollback_trigger_waits_for_outcomes() {
        let r = PlanDoc::parse(PLAN).unwrap().rollout;
        assert_eq!(r.rollback_due(19, Some(0.5)), None);
        assert!(r.rollback_due(20, Some(0.59)).is_some());
        assert_eq!(r.rollback_due(200, Some(0.6)), None);
        assert_eq!(r.rollback_due(200, None), None);
    }
}
