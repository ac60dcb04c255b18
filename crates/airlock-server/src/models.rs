//! The model routes: the registry's lifecycle over HTTP (every step decided by the policy and
//! recorded), predictions with their ledger entries, overrides, outcomes and the silent-mode
//! report.
//!
//! A prediction request is decided once (Cedar, ~15 µs), scored by every deployed version of
//! the model (the one shown to this patient, then the silent ones), and written to the ledger
//! as one durable group of entries: one per version, each with the model version, the feature
//! names, a keyed hash of the values, the output, the confidence, shown or silent, the patient
//! pseudonym, the requester and the purpose. The shown entry's ledger index is the prediction
//! id that overrides and outcomes refer to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_authz::{Action, Resource, Role};
use airlock_ledger::{Display, Entry, EventType, Filter, OutcomeKind};
use airlock_models::{Record, Value as FeatureValue};
use airlock_registry::serving::{self, Scored};
use airlock_registry::{Deployment, LoadedModel, ModelName, ModelVersion, Registry, State};
use airlock_types::{Purpose, Zone};
use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{Body, Path};
use crate::{ApiError, AppState, Ctx};

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

impl AppState {
    /// The registry, acting as the server's operator (callers use [`Ctx::registry`]).
    pub fn registry(&self) -> Registry {
        self.registry_for(self.home())
    }

    /// The registry acting as `home`'s actor, with this server's ONNX runtime if it has one.
    fn registry_for(&self, home: &airlock_store::Home) -> Registry {
        let r = Registry::new(home);
        match self.inner.onnx.get() {
            Some(rt) => r.with_onnx(Arc::clone(rt)),
            None => r,
        }
    }

    /// The current routing table, reloaded from the registry when it changed, or now when
    /// `force` (a change made through this server).
    ///
    /// A table older than [`RELOAD_INTERVAL`] is still served while one background task asks
    /// the registry whether it changed: a prediction never waits for that query. (When the
    /// requests that found the table stale each waited for it, and then each queried the
    /// registry in turn, every check held up the predictions behind it: a stall every half
    /// second in the prediction bench.) Only the first load is made on the request's path.
    pub async fn deployment(&self, force: bool) -> Result<Arc<Deployment>, ApiError> {
        use std::sync::atomic::Ordering;
        let cache = &self.inner.models;
        let current = cache
            .current
            .read()
            .map(|d| Arc::clone(&d))
            .map_err(|_| ApiError::internal("model cache poisoned"))?;
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
                let state = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = state.reload_deployment(false).await {
                        tracing::error!(error = %e, "checking the model registry");
                    }
                    state.inner.models.checking.store(false, Ordering::Release);
                });
            }
            return Ok(current);
        }
        self.reload_deployment(false).await
    }

    /// Asks the registry whether the deployment changed and reloads it if so; unless `force`,
    /// not again when another task did while this one waited for its turn.
    async fn reload_deployment(&self, force: bool) -> Result<Arc<Deployment>, ApiError> {
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
            .map_err(|_| ApiError::internal("model cache poisoned"))?;
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

impl Ctx {
    /// The registry, acting as this principal under this request's id.
    pub fn registry(&self) -> Registry {
        self.state().registry_for(&self.state().home().acting_as(
            self.who.principal.id.clone(),
            self.request_id.clone(),
            airlock_store::Scope::all(),
        ))
    }
}

fn model_name(s: &str) -> Result<ModelName, ApiError> {
    ModelName::new(s).map_err(|e| ApiError::bad("name", e.to_string()))
}

fn resource(v: &ModelVersion, zone: Zone) -> Resource {
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

fn version_json(v: &ModelVersion, detail: bool) -> Value {
    let mut j = json!({
        "name": v.name,
        "version": v.hash.to_hex(),
        "state": v.state,
        "zone": v.zone,
        "classification": v.classification,
        "kind": v.kind,
        "family": v.card.family,
        "trained_by": v.card.trained_by,
        "registered_by": v.registered_by,
        "registered_at": v.registered_at,
        "training_data": v.card.training_data,
        "features": v.card.features,
        "auroc": v.card.metrics.auroc,
        "canary_share_bp": v.canary_share_bp,
        "ed25519": v.ed25519,
    });
    if detail && let Some(o) = j.as_object_mut() {
        o.insert("card".into(), json!(v.card));
    }
    j
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    reason: String,
}

fn check_reason(r: &str) -> Result<&str, ApiError> {
    let r = r.trim();
    if r.is_empty() || r.len() > 500 || r.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "reason",
            "must be 1 to 500 characters on one line",
        ));
    }
    Ok(r)
}

/// `GET /v1/models`: every version the principal may read.
pub(crate) async fn list_models(ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let all = ctx.registry().list().await?;
    let visible: Vec<Value> = all
        .iter()
        .filter(|v| {
            ctx.decide(Action::ReadModel, &resource(v, v.zone), false)
                .allowed()
        })
        .map(|v| version_json(v, false))
        .collect();
    ctx.audit(
        ctx.entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
            .with_resource("models")
            .with_reason(format!(
                "listed {} of {} model versions",
                visible.len(),
                all.len()
            )),
    )
    .await?;
    Ok(Json(json!({"models": visible})))
}

/// `GET /v1/models/{name}`: versions, history and approvals.
pub(crate) async fn show_model(
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = model_name(&name)?;
    let reg = ctx.registry();
    let versions = reg.versions(&name).await?;
    let Some(latest) = versions.last() else {
        return Err(ApiError::NotFound { what: "model" });
    };
    ctx.authorize(Action::ReadModel, &resource(latest, latest.zone))
        .await?;
    let mut out = Vec::with_capacity(versions.len());
    for v in &versions {
        let mut j = version_json(v, true);
        if let Some(o) = j.as_object_mut() {
            o.insert("approvals".into(), json!(reg.approvals(&v.hash).await?));
        }
        out.push(j);
    }
    Ok(Json(json!({
        "name": name,
        "approver_roles": reg.approver_roles(),
        "versions": out,
        "history": reg.history(&name).await?,
    })))
}

/// `POST /v1/models/{name}/versions/{version}/validate`.
pub(crate) async fn validate(
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
    b: Result<Body<ReasonBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    let name = model_name(&name)?;
    let reg = ctx.registry();
    let v = reg.get(&name, &version).await?;
    ctx.authorize(Action::RegisterModel, &resource(&v, v.zone))
        .await?;
    let t = reg
        .validate(&name, &version, check_reason(&b.reason)?)
        .await?;
    Ok(Json(json!({"transition": t})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    role: Role,
    reason: String,
}

/// `POST /v1/models/{name}/versions/{version}/approve`: one role's approval.
pub(crate) async fn approve(
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
    b: Result<Body<ApproveBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    let name = model_name(&name)?;
    let reg = ctx.registry();
    let v = reg.get(&name, &version).await?;
    ctx.authorize(Action::ApproveModel, &resource(&v, Zone::Clinical))
        .await?;
    if !ctx.who.principal.roles.contains(&b.role) {
        return Err(ApiError::Forbidden {
            reason: format!("the principal does not hold the role {}", b.role.as_str()),
        });
    }
    let out = reg
        .approve(&name, &version, b.role.as_str(), check_reason(&b.reason)?)
        .await?;
    Ok(Json(json!(out)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployBody {
    state: State,
    #[serde(default)]
    canary_percent: Option<f64>,
    reason: String,
}

/// `POST /v1/models/{name}/versions/{version}/deploy`: to silent, canary or retired.
pub(crate) async fn deploy(
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
    b: Result<Body<DeployBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    let name = model_name(&name)?;
    let reg = ctx.registry();
    let v = reg.get(&name, &version).await?;
    ctx.authorize(Action::DeployModel, &resource(&v, Zone::Clinical))
        .await?;
    let share = match b.canary_percent {
        None => None,
        Some(p) if p.is_finite() && p > 0.0 && p <= 100.0 => Some((p * 100.0).round() as u16),
        Some(_) => return Err(ApiError::bad("canary_percent", "must be in (0, 100]")),
    };
    let t = reg
        .deploy(&name, &version, b.state, share, check_reason(&b.reason)?)
        .await?;
    ctx.state().deployment(true).await?;
    Ok(Json(json!({"transitions": t})))
}

async fn canary_step(
    ctx: Ctx,
    name: String,
    reason: String,
    promote: bool,
) -> Result<Json<Value>, ApiError> {
    let name = model_name(&name)?;
    let reg = ctx.registry();
    let canary = reg
        .versions(&name)
        .await?
        .into_iter()
        .find(|v| v.state == State::Canary)
        .ok_or(ApiError::NotFound { what: "canary" })?;
    ctx.authorize(Action::DeployModel, &resource(&canary, Zone::Clinical))
        .await?;
    let reason = check_reason(&reason)?;
    let t = if promote {
        reg.promote(&name, reason).await?
    } else {
        reg.rollback(&name, reason).await?
    };
    ctx.state().deployment(true).await?;
    Ok(Json(json!({"transitions": t})))
}

/// `POST /v1/models/{name}/promote`: the canary becomes production (the old one retires).
pub(crate) async fn promote(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<ReasonBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    canary_step(ctx, name, b.reason, true).await
}

/// `POST /v1/models/{name}/rollback`: the canary goes back to silent.
pub(crate) async fn rollback(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<ReasonBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    canary_step(ctx, name, b.reason, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PredictBody {
    patient_mrn: String,
    features: serde_json::Map<String, Value>,
}

fn record_of(features: serde_json::Map<String, Value>) -> Result<Record, ApiError> {
    let mut r = Record::new();
    for (k, v) in features {
        let value = match v {
            Value::Number(n) => FeatureValue::Number(
                n.as_f64()
                    .ok_or_else(|| ApiError::bad("features", "a number is out of range"))?,
            ),
            Value::String(s) => FeatureValue::Text(s),
            _ => {
                return Err(ApiError::bad(
                    "features",
                    format!(
                        "`{}` must be a number or a string",
                        k.chars().take(64).collect::<String>()
                    ),
                ));
            }
        };
        r.insert(k, value);
    }
    Ok(r)
}

/// `POST /v1/models/{name}/predict`.
pub(crate) async fn predict(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<PredictBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    let name = model_name(&name)?;
    let patient = crate::routes::patient(&ctx, "patient_mrn", &b.patient_mrn)?;
    let record = record_of(b.features)?;
    let deployment = ctx.state().deployment(false).await?;
    let routes = deployment.routes(name.as_str()).ok_or(ApiError::NotFound {
        what: "deployed model",
    })?;
    let key = ctx.state().pseudonym_key().expose_secret();
    let shown = routes.shown_for(key, &patient).ok_or(ApiError::NotFound {
        what: "deployed model",
    })?;
    let res = loaded_resource(shown);
    let grant = if ctx.purpose == Some(Purpose::Emergency) {
        crate::routes::active_grant(&ctx, &patient).await?
    } else {
        None
    };
    let decision = ctx.decide(Action::Predict, &res, grant.is_some());
    if !decision.allowed() {
        ctx.record(Action::Predict, &res, &decision, Some(patient))
            .await?;
        return Err(ApiError::Forbidden {
            reason: decision.reason(),
        });
    }
    let (scored, silent_failures) = match serving::score_all(routes, key, &patient, &record) {
        Ok(s) => s,
        Err(e) => {
            ctx.record(Action::Predict, &res, &decision, Some(patient))
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
            ctx.entry(EventType::Prediction, Zone::Clinical, OutcomeKind::Success)
                .with_resource(format!(
                    "model:{}@{}",
                    m.version.name,
                    m.version.hash.to_hex()
                ))
                .with_patient(patient.clone())
                .with_reason(why.clone())
                .with_prediction(serving::prediction_record(m, s, fhash))
        })
        .collect();
    let first = ctx.audit_many(entries).await?;
    ctx.state()
        .metrics()
        .decision(Action::Predict.as_str(), "allow");
    let Some((m, s)) = scored.first() else {
        return Err(ApiError::internal("no shown prediction"));
    };
    let Scored { score, state, .. } = s;
    Ok(Json(json!({
        "prediction_id": first,
        "model": m.version.name,
        "version": m.version.hash.to_hex(),
        "state": state,
        "score": score,
        "confidence": serving::confidence(*score),
        "features": m.features,
        "display": "shown",
        "silent_versions_logged": scored.len() - 1,
    })))
}

/// The shown prediction entry at `index`.
async fn shown_prediction(ctx: &Ctx, index: u64) -> Result<Entry, ApiError> {
    let home = ctx.state().home().clone();
    let bytes = tokio::task::spawn_blocking(move || home.ledger().entry_bytes(index))
        .await
        .map_err(ApiError::internal)?
        .map_err(|_| ApiError::NotFound { what: "prediction" })?;
    let e = Entry::parse(&bytes).map_err(ApiError::internal)?;
    match &e.prediction {
        Some(p) if e.event == EventType::Prediction && p.display == Display::Shown => Ok(e),
        _ => Err(ApiError::NotFound { what: "prediction" }),
    }
}

async fn model_resource_of(ctx: &Ctx, e: &Entry) -> Result<Resource, ApiError> {
    let Some(p) = &e.prediction else {
        return Err(ApiError::NotFound { what: "prediction" });
    };
    let name = model_name(&p.model)?;
    let v = ctx.registry().get(&name, &p.version_hash.to_hex()).await?;
    Ok(resource(&v, Zone::Clinical))
}

/// Reasons a clinician may give for overriding a prediction (coded: no free text, so no PHI
/// reaches the ledger).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OverrideReason {
    ClinicalJudgement,
    InformationNotInModel,
    DataError,
    ModelNotApplicable,
    PatientPreference,
}

impl OverrideReason {
    fn as_str(self) -> &'static str {
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
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OverrideDecision {
    HighRisk,
    LowRisk,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverrideBody {
    reason: OverrideReason,
    decision: OverrideDecision,
}

/// `POST /v1/predictions/{index}/override`.
pub(crate) async fn override_prediction(
    ctx: Ctx,
    Path(index): Path<u64>,
    b: Result<Body<OverrideBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    let e = shown_prediction(&ctx, index).await?;
    let res = model_resource_of(&ctx, &e).await?;
    let patient = e.patient.clone();
    let grant = match (&patient, ctx.purpose) {
        (Some(p), Some(Purpose::Emergency)) => crate::routes::active_grant(&ctx, p).await?,
        _ => None,
    };
    let decision = ctx.decide(Action::OverridePrediction, &res, grant.is_some());
    if !decision.allowed() {
        ctx.record(Action::OverridePrediction, &res, &decision, patient)
            .await?;
        return Err(ApiError::Forbidden {
            reason: decision.reason(),
        });
    }
    let Some(mut p) = e.prediction.clone() else {
        return Err(ApiError::NotFound { what: "prediction" });
    };
    let decided = match b.decision {
        OverrideDecision::HighRisk => "high-risk",
        OverrideDecision::LowRisk => "low-risk",
    };
    p.override_reason = Some(format!(
        "{}; clinician decided {decided}",
        b.reason.as_str()
    ));
    let mut entry = ctx
        .entry(EventType::Override, Zone::Clinical, OutcomeKind::Success)
        .with_resource(format!("prediction:{index}"))
        .with_resource(format!("model:{}@{}", p.model, p.version_hash.to_hex()))
        .with_reason(format!("override allowed by {}", decision.reason()))
        .with_prediction(p);
    if let Some(pt) = patient {
        entry = entry.with_patient(pt);
    }
    let at = ctx.audit_many(vec![entry]).await?;
    Ok(Json(json!({
        "override_id": at,
        "prediction_id": index,
        "reason": b.reason.as_str(),
        "decision": decided,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutcomeBody {
    label: bool,
}

/// `POST /v1/predictions/{index}/outcome`: the observed outcome, for outcome metrics.
pub(crate) async fn post_outcome(
    ctx: Ctx,
    Path(index): Path<u64>,
    b: Result<Body<OutcomeBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(b) = b?;
    let e = shown_prediction(&ctx, index).await?;
    let res = model_resource_of(&ctx, &e).await?;
    ctx.authorize_with(Action::Predict, &res, false, e.patient.clone())
        .await?;
    ctx.registry().post_outcome(index, b.label).await?;
    let mut entry = ctx
        .entry(EventType::Outcome, Zone::Clinical, OutcomeKind::Success)
        .with_resource(format!("prediction:{index}"))
        .with_reason("outcome posted for outcome metrics");
    if let Some(p) = e.patient {
        entry = entry.with_patient(p);
    }
    ctx.audit(entry).await?;
    Ok(Json(json!({"prediction_id": index, "recorded": true})))
}

/// `GET /v1/models/{name}/report`: silent and canary versions against what was shown.
pub(crate) async fn report(ctx: Ctx, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let name = model_name(&name)?;
    let reg = ctx.registry();
    let versions = reg.versions(&name).await?;
    let Some(latest) = versions.last() else {
        return Err(ApiError::NotFound { what: "model" });
    };
    ctx.authorize(Action::ReadModel, &resource(latest, Zone::Clinical))
        .await?;
    let entries = ctx
        .state()
        .audit_search(Filter {
            events: vec![EventType::Prediction, EventType::Override],
            ..Filter::default()
        })
        .await?;
    let outcomes = reg.outcomes().await?;
    let c = airlock_registry::report::compare(name.as_str(), &entries, &outcomes);
    let states: serde_json::Map<String, Value> = versions
        .iter()
        .map(|v| (v.hash.to_hex(), json!(v.state)))
        .collect();
    Ok(Json(json!({"report": c, "states": states})))
}
