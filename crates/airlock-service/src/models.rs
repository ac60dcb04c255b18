//! The model lifecycle as callers drive it (every step decided by the policy and recorded),
//! predictions with their ledger entries, overrides, outcomes and the silent-mode report.
//!
//! A prediction request is decided once (Cedar, ~15 µs), scored by every deployed version of
//! the model (the one shown to this patient, then the silent ones), and written to the ledger
//! as one durable group of entries: one per version, each with the model version, the feature
//! names, a keyed hash of the values, the output, the confidence, shown or silent, the patient
//! pseudonym, the requester and the purpose. The shown entry's ledger index is the prediction
//! id that overrides and outcomes refer to.

use schemars::JsonSchema;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_authz::{Action, Resource, Role};
use airlock_ledger::{Display, Entry, EventType, Filter, OutcomeKind};
use airlock_models::{Record, Value as FeatureValue};
use airlock_registry::report::Comparison;
use airlock_registry::serving::{self, Scored};
use airlock_registry::{
    Approval, ApprovalOutcome, ArtifactKind, Deployment, LoadedModel, ModelCard, ModelName,
    ModelVersion, State, TrainingData, Transition,
};
use airlock_types::{ActorId, Classification, Purpose, Zone};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Caller, LedgerResource, Service, ServiceError};

/// How long a server trusts its routing table before asking the registry whether it changed
/// (a change made through this server's API applies at once).
pub const RELOAD_INTERVAL: Duration = Duration::from_millis(500);

/// The loaded, verified models and when the registry was last asked about them.
pub(crate) struct ModelCache {
    current: std::sync::RwLock<Arc<Deployment>>,
    checked: std::sync::Mutex<Option<Instant>>,
    reload: tokio::sync::Mutex<()>,
    /// A background check of the registry is under way.
    checking: std::sync::atomic::AtomicBool,
}

impl Default for ModelCache {
    fn default() -> Self {
        ModelCache {
            current: std::sync::RwLock::new(Arc::new(Deployment::default())),
            checked: std::sync::Mutex::new(None),
            reload: tokio::sync::Mutex::new(()),
            checking: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Service {
    /// The current routing table, reloaded from the registry when it changed, or now when
    /// `force` (a change made through this server).
    ///
    /// A table older than [`RELOAD_INTERVAL`] is still served while one background task asks
    /// the registry whether it changed: a prediction never waits for that query. (When the
    /// requests that found the table stale each waited for it, and then each queried the
    /// registry in turn, every check held up the predictions behind it: a stall every half
    /// second in the prediction bench.) Only the first load is made on the request's path.
    pub async fn deployment(&self, force: bool) -> Result<Arc<Deployment>, ServiceError> {
        use std::sync::atomic::Ordering;
        let cache = &self.inner.models;
        let current = cache
            .current
            .read()
            .map(|d| Arc::clone(&d))
            .map_err(|_| ServiceError::internal("model cache poisoned"))?;
        let (fresh, checked_once) = cache
            .checked
            .lock()
            .map(|c| {
                (
                    c.is_some_and(|t| t.elapsed() < RELOAD_INTERVAL),
                    c.is_some(),
                )
            })
            .unwrap_or((false, false));
        if force {
            return self.reload_deployment(true).await;
        }
        if fresh {
            return Ok(current);
        }
        if checked_once {
            if !cache.checking.swap(true, Ordering::AcqRel) {
                let service = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = service.reload_deployment(false).await {
                        tracing::error!(error = %e, "checking the model registry");
                    }
                    service
                        .inner
                        .models
                        .checking
                        .store(false, Ordering::Release);
                });
            }
            return Ok(current);
        }
        self.reload_deployment(false).await
    }

    /// Asks the registry whether the deployment changed and reloads it if so; unless `force`,
    /// not again when another task did while this one waited for its turn.
    async fn reload_deployment(&self, force: bool) -> Result<Arc<Deployment>, ServiceError> {
        let cache = &self.inner.models;
        let _one = cache.reload.lock().await;
        if !force
            && let Ok(c) = cache.checked.lock()
            && c.is_some_and(|t| t.elapsed() < RELOAD_INTERVAL)
            && let Ok(d) = cache.current.read()
        {
            return Ok(Arc::clone(&d));
        }
        let registry = self.registry();
        let generation = registry.generation().await?;
        let current = cache
            .current
            .read()
            .map(|d| Arc::clone(&d))
            .map_err(|_| ServiceError::internal("model cache poisoned"))?;
        let checked_once = cache.checked.lock().map(|c| c.is_some()).unwrap_or(false);
        let next = if checked_once && generation == current.generation() {
            current
        } else {
            let (d, errors) = registry.deployment(Some(&current)).await?;
            for e in errors {
                tracing::error!(error = %e, "a deployed model version was refused");
            }
            let d = Arc::new(d);
            if let Ok(mut w) = cache.current.write() {
                *w = Arc::clone(&d);
            }
            d
        };
        if let Ok(mut c) = cache.checked.lock() {
            *c = Some(Instant::now());
        }
        Ok(next)
    }
}

pub(crate) fn model_name(s: &str) -> Result<ModelName, ServiceError> {
    ModelName::new(s).map_err(|e| ServiceError::invalid("name", e.to_string()))
}

/// The policy's view of a model version, in `zone` (where it is, or where it is going).
pub(crate) fn resource(v: &ModelVersion, zone: Zone) -> Resource {
    Resource::Model {
        name: v.name.to_string(),
        zone,
        trained_by: Some(v.card.trained_by.clone()),
        state: v.state.as_str().to_string(),
    }
}

fn loaded_resource(m: &LoadedModel) -> Resource {
    resource(&m.version, Zone::Clinical)
}

fn version_resource(model: &str, hash: &airlock_types::ContentHash) -> LedgerResource {
    LedgerResource::ModelVersion {
        name: model.to_string(),
        hash: hash.to_hex(),
    }
}

/// A model version as listed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionView {
    /// The model.
    pub name: ModelName,
    /// The version's hash, hex.
    pub version: String,
    /// Its lifecycle state.
    pub state: State,
    /// Where it is.
    pub zone: Zone,
    /// What its training data was.
    pub classification: Classification,
    /// Native or ONNX.
    pub kind: ArtifactKind,
    /// `logistic`, `gbdt`, `onnx`...
    pub family: String,
    /// Who trained it.
    pub trained_by: ActorId,
    /// Who registered it.
    pub registered_by: ActorId,
    /// When.
    pub registered_at: String,
    /// The dataset version it was trained on.
    pub training_data: TrainingData,
    /// Input features.
    pub features: Vec<String>,
    /// Held-out AUROC.
    pub auroc: f64,
    /// The canary's share, in basis points.
    pub canary_share_bp: u16,
    /// The deployment's signature over name, version and card.
    pub ed25519: String,
    /// The model card (when shown in detail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<ModelCard>,
    /// Approvals so far (when shown in detail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Vec<Approval>>,
    /// Its signed validation reports, oldest first (when shown in detail): the headline
    /// metrics, the per-group table, the disparities and the attack, for the model committee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_reports: Option<Vec<airlock_registry::validation::SignedReport>>,
}

impl VersionView {
    fn of(v: &ModelVersion, detail: bool) -> VersionView {
        VersionView {
            name: v.name.clone(),
            version: v.hash.to_hex(),
            state: v.state,
            zone: v.zone,
            classification: v.classification,
            kind: v.kind,
            family: v.card.family.clone(),
            trained_by: v.card.trained_by.clone(),
            registered_by: v.registered_by.clone(),
            registered_at: v.registered_at.clone(),
            training_data: v.card.training_data.clone(),
            features: v.card.features.clone(),
            auroc: v.card.metrics.auroc,
            canary_share_bp: v.canary_share_bp,
            ed25519: v.ed25519.clone(),
            card: detail.then(|| v.card.clone()),
            approvals: None,
            validation_reports: None,
        }
    }
}

/// Every model version the caller may read.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelList {
    /// The versions.
    pub models: Vec<VersionView>,
}

/// One model: versions with their approvals, the roles that approve, the history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelDetail {
    /// The model.
    pub name: ModelName,
    /// The roles whose approvals make a quorum.
    pub approver_roles: Vec<String>,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
    /// Every transition, in order.
    pub history: Vec<Transition>,
}

/// A reason given for a lifecycle step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// One line, 1 to 500 characters.
    #[schemars(with = "crate::schema::ReasonLine")]
    pub reason: String,
}

/// A validation on held-out data.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    /// One line, 1 to 500 characters.
    #[schemars(with = "crate::schema::ReasonLine")]
    pub reason: String,
    /// The held-out dataset version, `name[@version]` (de-identified, development or staging;
    /// the version's training dataset means its held-out split).
    #[schemars(with = "crate::schema::DatasetSpec")]
    pub dataset: String,
    /// Columns to report groups by (`race`, `gender`, `age`...).
    #[serde(default)]
    #[schemars(length(max = 10), with = "Vec<crate::schema::ReasonLine>")]
    pub sensitive: Vec<String>,
    /// The operating threshold: a score at or above it is positive (0.5 when absent).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: Option<f64>,
}

/// A validation's outcome: the signed report, and the transition to `validated` when it passed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Validated {
    /// The transition, when the report passed the policy.
    pub transition: Option<Transition>,
    /// The signed report (kept with the version either way).
    pub report: airlock_registry::validation::SignedReport,
}

/// The transitions a step made (a deployment can retire another version).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Transitions {
    /// In order.
    pub transitions: Vec<Transition>,
}

/// One role's approval.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The role approved as (the caller must hold it).
    pub role: Role,
    /// Why.
    #[schemars(with = "crate::schema::ReasonLine")]
    pub reason: String,
}

/// A deployment step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// `silent`, `canary` or `retired`.
    #[schemars(schema_with = "crate::schema::deploy_state")]
    pub state: State,
    /// The canary's share of patients, in (0, 100].
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::canary_percent")]
    pub canary_percent: Option<f64>,
    /// Why.
    #[schemars(with = "crate::schema::ReasonLine")]
    pub reason: String,
}

/// A prediction request.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    /// The patient's record number.
    #[schemars(with = "airlock_types::Mrn")]
    pub patient_mrn: String,
    /// Feature values by name.
    #[schemars(schema_with = "crate::schema::features")]
    pub features: serde_json::Map<String, Value>,
}

impl std::fmt::Debug for PredictBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PredictBody(<redacted>)")
    }
}

/// Whether a prediction's output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// A production or canary version's output, shown to the clinician.
    Shown,
    /// No shown version for this patient (a first model in silent mode, or a first model's
    /// canary outside its share): what is deployed was scored and logged, and no model output
    /// is shown.
    None,
}

/// A prediction: the shown version's output, or, while a model is only in silent mode, the
/// record that it was scored and logged with nothing shown.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Prediction {
    /// The ledger index of the shown entry (overrides and outcomes refer to it); with nothing
    /// shown, of the first silent entry.
    pub prediction_id: u64,
    /// The model.
    pub model: ModelName,
    /// The version shown, hex (absent when nothing is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<airlock_types::ContentHash>")]
    pub version: Option<String>,
    /// Its state (absent when nothing is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// Probability of the positive class (absent when nothing is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub score: Option<f64>,
    /// The probability of the predicted class at the 0.5 threshold, `max(score, 1 - score)`:
    /// 0.5 (on the boundary) to 1 (absent when nothing is shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.5, max = 1))]
    pub confidence: Option<f64>,
    /// The features the shown version used (else the first silent one), in order.
    pub features: Vec<String>,
    /// Whether an output is shown.
    pub display: Shown,
    /// Silent versions scored and logged beside it.
    pub silent_versions_logged: usize,
}

/// Reasons a clinician may give for overriding a prediction (coded: no free text, so no PHI
/// reaches the ledger).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideReason {
    /// The clinician's judgement differs.
    ClinicalJudgement,
    /// The clinician knows something the model does not.
    InformationNotInModel,
    /// The inputs were wrong.
    DataError,
    /// The model does not apply to this patient.
    ModelNotApplicable,
    /// The patient's preference.
    PatientPreference,
}

impl OverrideReason {
    /// The coded name.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideReason::ClinicalJudgement => "clinical-judgement",
            OverrideReason::InformationNotInModel => "information-not-in-model",
            OverrideReason::DataError => "data-error",
            OverrideReason::ModelNotApplicable => "model-not-applicable",
            OverrideReason::PatientPreference => "patient-preference",
        }
    }
}

/// What the clinician decided instead.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideDecision {
    /// Treat as high risk.
    HighRisk,
    /// Treat as low risk.
    LowRisk,
}

impl OverrideDecision {
    fn as_str(self) -> &'static str {
        match self {
            OverrideDecision::HighRisk => "high-risk",
            OverrideDecision::LowRisk => "low-risk",
        }
    }
}

/// An override.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// Why.
    pub reason: OverrideReason,
    /// What instead.
    pub decision: OverrideDecision,
}

/// An override recorded.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Overridden {
    /// The override's ledger index.
    pub override_id: u64,
    /// The prediction overridden.
    pub prediction_id: u64,
    /// Why.
    pub reason: OverrideReason,
    /// What instead.
    pub decision: OverrideDecision,
}

/// An observed outcome.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    /// Whether the predicted event happened.
    pub label: bool,
    /// Replace an outcome already recorded with the other label (the ledger keeps both).
    #[serde(default)]
    pub correction: bool,
}

/// An outcome recorded.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OutcomeRecorded {
    /// The prediction.
    pub prediction_id: u64,
    /// Always true.
    #[schemars(schema_with = "crate::schema::always_true")]
    pub recorded: bool,
}

/// Silent and canary versions against what was shown.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Report {
    /// The comparison.
    pub report: Comparison,
    /// Each version's state now, by hash.
    pub states: BTreeMap<String, State>,
}

pub(crate) fn check_reason(r: &str) -> Result<&str, ServiceError> {
    let r = r.trim();
    if r.is_empty() || r.chars().count() > 500 || r.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "reason",
            "must be 1 to 500 characters on one line",
        ));
    }
    Ok(r)
}

fn record_of(features: serde_json::Map<String, Value>) -> Result<Record, ServiceError> {
    let mut r = Record::new();
    for (i, (k, v)) in features.into_iter().enumerate() {
        let value = match v {
            Value::Number(n) => FeatureValue::Number(
                n.as_f64()
                    .ok_or_else(|| ServiceError::invalid("features", "a number is out of range"))?,
            ),
            Value::String(s) => FeatureValue::Text(s),
            // The key is the client's text: named by position, never echoed.
            _ => {
                return Err(ServiceError::invalid(
                    "features",
                    format!(
                        "the value of feature {} (in the order sent) must be a number or a string",
                        i + 1
                    ),
                ));
            }
        };
        r.insert(k, value);
    }
    Ok(r)
}

impl Caller {
    /// Every model version the caller may read.
    pub async fn models(&self) -> Result<ModelList, ServiceError> {
        let all = self.registry().list().await?;
        let models: Vec<VersionView> = all
            .iter()
            .filter(|v| {
                self.decide(Action::ReadModel, &resource(v, v.zone), false)
                    .allowed()
            })
            .map(|v| VersionView::of(v, false))
            .collect();
        self.audit(
            self.entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
                .with_resource(LedgerResource::Models)
                .with_reason(format!(
                    "listed {} of {} model versions",
                    models.len(),
                    all.len()
                )),
        )
        .await?;
        Ok(ModelList { models })
    }

    /// One model's versions, approvals and history.
    pub async fn model(&self, name: &str) -> Result<ModelDetail, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let versions = reg.versions(&name).await?;
        let Some(latest) = versions.last() else {
            return Err(ServiceError::NotFound { what: "model" });
        };
        self.authorize(Action::ReadModel, &resource(latest, latest.zone))
            .await?;
        let mut out = Vec::with_capacity(versions.len());
        for v in &versions {
            let mut view = VersionView::of(v, true);
            view.approvals = Some(reg.approvals(&v.hash).await?);
            view.validation_reports = Some(reg.reports(v).await?);
            out.push(view);
        }
        Ok(ModelDetail {
            approver_roles: reg.approver_roles().to_vec(),
            history: reg.history(&name).await?,
            name,
            versions: out,
        })
    }

    /// Validate a registered version on held-out data under the deployment's validation
    /// policy: a signed report is stored with the version, and the version becomes `validated`
    /// only if it passed.
    pub async fn validate_model(
        &self,
        name: &str,
        version: &str,
        body: ValidateBody,
    ) -> Result<Validated, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let v = reg.get(&name, version).await?;
        self.authorize(Action::RegisterModel, &resource(&v, v.zone))
            .await?;
        let reason = check_reason(&body.reason)?;
        let (ds, ver) = airlock_store::parse_version_spec(&body.dataset)
            .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
        let held = self.find_version(ds.as_str(), ver.map(|v| v.get())).await?;
        // Scoring its rows reads them: the policy decides as for a download.
        self.authorize(Action::DownloadDataset, &crate::datasets::resource(&held))
            .await?;
        if let Some(t) = body.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(ServiceError::invalid(
                "threshold",
                "must be between 0 and 1",
            ));
        }
        let sensitive = body.sensitive.clone();
        let req = airlock_registry::validation::ValidateRequest {
            dataset: held.reference().to_string(),
            file: None,
            sensitive: body.sensitive,
            threshold: body.threshold,
            // The minimum: a request waits for the report (the CLI takes more).
            resamples: Some(200),
        };
        let (report, transition) = airlock_registry::validation::validate_dataset(
            self.home(),
            &reg,
            &name,
            version,
            &req,
            reason,
        )
        .await
        .map_err(|e| match e {
            // A sensitive column the data lacks: the name is the client's own text, not echoed.
            airlock_registry::RegistryError::Model(
                airlock_models::ModelsError::MissingColumn { column },
            ) if sensitive.contains(&column) => {
                ServiceError::invalid("sensitive", "names a column the dataset does not have")
            }
            // The held-out data does not fit the model (a feature or the target missing, a bad
            // value): named, by the model's own column names and row numbers.
            airlock_registry::RegistryError::Data { reason } => {
                ServiceError::invalid("dataset", reason)
            }
            airlock_registry::RegistryError::Model(m) => {
                ServiceError::invalid("dataset", m.to_string())
            }
            e => e.into(),
        })?;
        Ok(Validated { transition, report })
    }

    /// May the caller approve (a version, or a plan of its model) as `role`: the policy's
    /// approve-model decision, and the role held.
    pub(crate) async fn authorize_approval(
        &self,
        v: &ModelVersion,
        role: Role,
    ) -> Result<(), ServiceError> {
        self.authorize(Action::ApproveModel, &resource(v, Zone::Clinical))
            .await?;
        if !self.who.principal.roles.contains(&role) {
            return Err(ServiceError::Forbidden {
                reason: format!("the principal does not hold the role {}", role.as_str()),
            });
        }
        Ok(())
    }

    /// One role's approval of a version.
    pub async fn approve_model(
        &self,
        name: &str,
        version: &str,
        body: ApproveBody,
    ) -> Result<ApprovalOutcome, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let v = reg.get(&name, version).await?;
        self.authorize_approval(&v, body.role).await?;
        Ok(reg
            .approve(
                &name,
                version,
                body.role.as_str(),
                check_reason(&body.reason)?,
            )
            .await?)
    }

    /// Deploy a version silent, as a canary, or retire it.
    pub async fn deploy_model(
        &self,
        name: &str,
        version: &str,
        body: DeployBody,
    ) -> Result<Transitions, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let v = reg.get(&name, version).await?;
        self.authorize(Action::DeployModel, &resource(&v, Zone::Clinical))
            .await?;
        let share = match body.canary_percent {
            None => None,
            Some(p) if p.is_finite() && p > 0.0 && p <= 100.0 => Some((p * 100.0).round() as u16),
            Some(_) => {
                return Err(ServiceError::invalid(
                    "canary_percent",
                    "must be in (0, 100]",
                ));
            }
        };
        self.check_plan_rollout(&v, body.state, share).await?;
        let transitions = reg
            .deploy(
                &name,
                version,
                body.state,
                share,
                check_reason(&body.reason)?,
            )
            .await?;
        self.service().deployment(true).await?;
        Ok(Transitions { transitions })
    }

    async fn canary_step(
        &self,
        name: &str,
        reason: &str,
        promote: bool,
    ) -> Result<Transitions, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let versions = reg.versions(&name).await?;
        let canary = versions.iter().find(|v| v.state == State::Canary);
        // A rollback without a canary moves production (back to the version before it).
        let subject = match canary {
            Some(c) => c,
            None if !promote => versions
                .iter()
                .find(|v| v.state == State::Production)
                .ok_or(ServiceError::NotFound {
                    what: "canary or production version",
                })?,
            None => return Err(ServiceError::NotFound { what: "canary" }),
        };
        self.authorize(Action::DeployModel, &resource(subject, Zone::Clinical))
            .await?;
        let reason = check_reason(reason)?;
        let transitions = if let (true, Some(canary)) = (promote, canary) {
            let shown = self.shown_since_canary(&reg, &name, canary).await?;
            reg.promote(&name, reason, shown).await?
        } else {
            reg.rollback(&name, reason).await?
        };
        self.service().deployment(true).await?;
        Ok(Transitions { transitions })
    }

    /// Predictions shown from `canary` since it became the canary, counted in the ledger.
    async fn shown_since_canary(
        &self,
        reg: &airlock_registry::Registry,
        name: &ModelName,
        canary: &ModelVersion,
    ) -> Result<u64, ServiceError> {
        let since = reg.canary_since(name).await?.map_or(0, |t| t.ledger_index);
        let entries = self
            .service()
            .audit_search(Filter {
                events: vec![EventType::Prediction],
                ..Filter::default()
            })
            .await?;
        Ok(entries
            .iter()
            .filter(|(i, e)| {
                *i > since
                    && e.prediction.as_ref().is_some_and(|p| {
                        p.version_hash == canary.hash && p.display == Display::Shown
                    })
            })
            .count() as u64)
    }

    /// The canary becomes production (the old one retires).
    pub async fn promote_model(
        &self,
        name: &str,
        body: ReasonBody,
    ) -> Result<Transitions, ServiceError> {
        self.canary_step(name, &body.reason, true).await
    }

    /// The canary goes back to silent; without a canary, production goes back to the version
    /// that was production before it (standing by in silent mode).
    pub async fn rollback_model(
        &self,
        name: &str,
        body: ReasonBody,
    ) -> Result<Transitions, ServiceError> {
        self.canary_step(name, &body.reason, false).await
    }

    /// Score a patient with every deployed version of a model; one durable group of ledger
    /// entries, the shown version's first.
    pub async fn predict(&self, name: &str, body: PredictBody) -> Result<Prediction, ServiceError> {
        let name = model_name(name)?;
        let patient = self.patient("patient_mrn", &body.patient_mrn)?;
        let record = record_of(body.features)?;
        let grant = if self.purpose == Some(Purpose::Emergency) {
            self.active_grant(&patient).await?
        } else {
            None
        };
        // Decided before anything about the deployment is looked at, so a caller who may not
        // predict cannot learn which models are deployed from a 404.
        let any = Resource::Model {
            name: name.to_string(),
            zone: Zone::Clinical,
            trained_by: None,
            state: State::Production.as_str().to_string(),
        };
        let first = self.decide(Action::Predict, &any, grant.is_some());
        if !first.allowed() {
            self.record(Action::Predict, &any, &first, Some(patient))
                .await?;
            return Err(ServiceError::Forbidden {
                reason: first.reason(),
            });
        }
        let deployment = self.service().deployment(false).await?;
        let routes = deployment
            .routes(name.as_str())
            .ok_or(ServiceError::NotFound {
                what: "deployed model",
            })?;
        let key = self.service().pseudonym_key().expose_secret();
        // A model only in silent mode is scored and logged with nothing shown: deployment
        // starts silent beside the existing workflow, and that is what silent mode measures.
        let shown = routes.shown_for(key, &patient);
        let decided_on = shown
            .or(routes.canary.as_ref())
            .or_else(|| routes.silent.first())
            .ok_or(ServiceError::NotFound {
                what: "deployed model",
            })?;
        let res = loaded_resource(decided_on);
        let decision = self.decide(Action::Predict, &res, grant.is_some());
        if !decision.allowed() {
            self.record(Action::Predict, &res, &decision, Some(patient))
                .await?;
            return Err(ServiceError::Forbidden {
                reason: decision.reason(),
            });
        }
        let (scored, silent_failures) = match serving::score_all(routes, key, &patient, &record) {
            Ok(s) => s,
            Err(e) => {
                self.record(Action::Predict, &res, &decision, Some(patient))
                    .await?;
                return Err(e.into());
            }
        };
        let fhash = serving::features_hash(key, &record);
        let mut why = format!("predict allowed by {}", decision.reason());
        if let Some(g) = &grant {
            why.push_str(&format!("; under break-glass grant {g}"));
        }
        if silent_failures > 0 {
            why.push_str(&format!(
                "; {silent_failures} silent version(s) refused the record"
            ));
        }
        let entries: Vec<Entry> = scored
            .iter()
            .map(|(m, s)| {
                self.entry(EventType::Prediction, Zone::Clinical, OutcomeKind::Success)
                    .with_resource(version_resource(m.version.name.as_str(), &m.version.hash))
                    .with_patient(patient.clone())
                    .with_reason(why.clone())
                    .with_prediction(serving::prediction_record(m, s, fhash))
            })
            .collect::<Vec<_>>();
        let entries = if entries.is_empty() {
            // Silent versions only, and each refused the record: the request is still recorded.
            vec![
                self.entry(EventType::Prediction, Zone::Clinical, OutcomeKind::Failure)
                    .with_resource(version_resource(
                        decided_on.version.name.as_str(),
                        &decided_on.version.hash,
                    ))
                    .with_patient(patient.clone())
                    .with_reason(why.clone()),
            ]
        } else {
            entries
        };
        let first = self.audit_many(entries).await?;
        let logged: Vec<_> = scored.iter().map(|(m, s)| (m.as_ref(), s)).collect();
        if !logged.is_empty() {
            self.service()
                .log_predictions(first, &logged, &record)
                .await?;
        }
        self.service()
            .observer()
            .decision(Action::Predict.as_str(), true);
        let Some((m, s)) = scored.first().filter(|(_, s)| s.display == Display::Shown) else {
            // Nothing shown (silent versions only, or a first model's canary outside its share;
            // perhaps every one refused the record): all of it is logged above.
            return Ok(Prediction {
                prediction_id: first,
                model: decided_on.version.name.clone(),
                version: None,
                state: None,
                score: None,
                confidence: None,
                features: decided_on.features.clone(),
                display: Shown::None,
                silent_versions_logged: scored.len(),
            });
        };
        let Scored { score, state, .. } = s;
        Ok(Prediction {
            prediction_id: first,
            model: m.version.name.clone(),
            version: Some(m.version.hash.to_hex()),
            state: Some(*state),
            score: Some(*score),
            confidence: Some(serving::confidence(*score)),
            features: m.features.clone(),
            display: Shown::Shown,
            silent_versions_logged: scored.len() - 1,
        })
    }

    /// The shown prediction entry at `index`.
    async fn shown_prediction(&self, index: u64) -> Result<Entry, ServiceError> {
        let home = self.service().home().clone();
        let bytes = tokio::task::spawn_blocking(move || home.ledger().entry_bytes(index))
            .await
            .map_err(ServiceError::internal)?
            .map_err(|_| ServiceError::NotFound { what: "prediction" })?;
        let e = Entry::parse(&bytes).map_err(ServiceError::internal)?;
        match &e.prediction {
            Some(p) if e.event == EventType::Prediction && p.display == Display::Shown => Ok(e),
            _ => Err(ServiceError::NotFound { what: "prediction" }),
        }
    }

    async fn model_resource_of(&self, e: &Entry) -> Result<Resource, ServiceError> {
        let Some(p) = &e.prediction else {
            return Err(ServiceError::NotFound { what: "prediction" });
        };
        let name = model_name(&p.model)?;
        let v = self.registry().get(&name, &p.version_hash.to_hex()).await?;
        Ok(resource(&v, Zone::Clinical))
    }

    /// A clinician's coded override of a shown prediction.
    pub async fn override_prediction(
        &self,
        index: u64,
        body: OverrideBody,
    ) -> Result<Overridden, ServiceError> {
        let e = self.shown_prediction(index).await?;
        let res = self.model_resource_of(&e).await?;
        let patient = e.patient.clone();
        let grant = match (&patient, self.purpose) {
            (Some(p), Some(Purpose::Emergency)) => self.active_grant(p).await?,
            _ => None,
        };
        let mut decision = self.decide(Action::OverridePrediction, &res, grant.is_some());
        // The policy says clinicians may override; which clinician is a fact of this
        // prediction: the one it was shown to, or one with a live grant for the patient.
        if decision.allowed() && e.actor != self.who.principal.id && grant.is_none() {
            decision = airlock_authz::Decision {
                effect: airlock_authz::Effect::Deny,
                policies: vec!["forbid:override-not-shown-to-caller".into()],
                errors: Vec::new(),
            };
        }
        if !decision.allowed() {
            self.record(Action::OverridePrediction, &res, &decision, patient)
                .await?;
            return Err(ServiceError::Forbidden {
                reason: decision.reason(),
            });
        }
        let Some(mut p) = e.prediction.clone() else {
            return Err(ServiceError::NotFound { what: "prediction" });
        };
        p.override_reason = Some(format!(
            "{}; clinician decided {}",
            body.reason.as_str(),
            body.decision.as_str()
        ));
        let mut entry = self
            .entry(EventType::Override, Zone::Clinical, OutcomeKind::Success)
            .with_resource(LedgerResource::Prediction(index))
            .with_resource(version_resource(&p.model, &p.version_hash))
            .with_reason(format!("override allowed by {}", decision.reason()))
            .with_prediction(p);
        if let Some(pt) = patient {
            entry = entry.with_patient(pt);
        }
        let override_id = self.audit_many(vec![entry]).await?;
        Ok(Overridden {
            override_id,
            prediction_id: index,
            reason: body.reason,
            decision: body.decision,
        })
    }

    /// The observed outcome of a shown prediction, for outcome metrics.
    pub async fn post_outcome(
        &self,
        index: u64,
        body: OutcomeBody,
    ) -> Result<OutcomeRecorded, ServiceError> {
        let e = self.shown_prediction(index).await?;
        let res = self.model_resource_of(&e).await?;
        self.authorize_with(Action::Predict, &res, false, e.patient.clone())
            .await?;
        let before = self
            .registry()
            .post_outcome(index, body.label, body.correction)
            .await?;
        let reason = match before {
            Some(b) if b != body.label => {
                format!(
                    "outcome corrected from {b} to {} for outcome metrics",
                    body.label
                )
            }
            _ => "outcome posted for outcome metrics".to_string(),
        };
        let mut entry = self
            .entry(EventType::Outcome, Zone::Clinical, OutcomeKind::Success)
            .with_resource(LedgerResource::Prediction(index))
            .with_reason(reason);
        if let Some(p) = e.patient.clone() {
            entry = entry.with_patient(p);
        }
        self.audit(entry).await?;
        if let Some(p) = &e.prediction {
            self.plan_rollback_trigger(p).await?;
        }
        Ok(OutcomeRecorded {
            prediction_id: index,
            recorded: true,
        })
    }

    /// A model's versions compared on the same requests, from the ledger and posted outcomes.
    pub(crate) async fn comparison(
        &self,
        reg: &airlock_registry::Registry,
        name: &ModelName,
    ) -> Result<Comparison, ServiceError> {
        let entries = self
            .service()
            .audit_search(Filter {
                events: vec![EventType::Prediction, EventType::Override],
                ..Filter::default()
            })
            .await?;
        let outcomes = reg.outcomes().await?;
        Ok(airlock_registry::report::compare(
            name.as_str(),
            &entries,
            &outcomes,
        ))
    }

    /// Silent and canary versions against what was shown, on the same requests.
    pub async fn model_report(&self, name: &str) -> Result<Report, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let versions = reg.versions(&name).await?;
        let Some(latest) = versions.last() else {
            return Err(ServiceError::NotFound { what: "model" });
        };
        self.authorize(Action::ReadModel, &resource(latest, Zone::Clinical))
            .await?;
        let report = self.comparison(&reg, &name).await?;
        let states = versions
            .iter()
            .map(|v| (v.hash.to_hex(), v.state))
            .collect();
        Ok(Report { report, states })
    }
}
