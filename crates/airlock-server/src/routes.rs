//! The handlers. Each one takes a [`Ctx`] (except the public ones and login), asks
//! [`Ctx::authorize`] before it touches anything, and returns JSON.

use std::collections::BTreeSet;

use airlock_authz::{Action, Resource, Role};
use airlock_crypto::Secret;
use airlock_ledger::{EventType, Filter, OutcomeKind, PatientPseudonym, patient_pseudonym};
use airlock_store::{Access, DatasetVersion, Scope, parse_version_spec};
use airlock_types::{ActorId, Classification, DatasetName, DatasetVersionId, Purpose, Zone};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::extract::{Body, Path, Query};
use crate::identity::IdentityError;
use crate::{ApiError, AppState, Ctx, anonymous};

pub(crate) fn router(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/whoami", get(whoami))
        .route("/v1/users", get(list_users).post(add_user))
        .route("/v1/users/{id}/disable", post(disable_user))
        .route("/v1/users/{id}/reset-mfa", post(reset_mfa))
        .route("/v1/tokens", post(issue_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/datasets", get(list_datasets))
        .route("/v1/datasets/{name}", get(show_dataset))
        .route("/v1/datasets/{name}/lineage", get(lineage))
        .route("/v1/datasets/{name}/files", get(list_files))
        .route("/v1/datasets/{name}/files/{index}", get(download_file))
        .route("/v1/deid-runs", post(start_deid))
        .route("/v1/deid-runs/{id}", get(deid_status))
        .route("/v1/deid-runs/{id}/report", get(deid_report))
        .route("/v1/audit/search", post(audit_search))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/audit/checkpoint", get(audit_checkpoint))
        .route("/v1/audit/proofs/{index}", get(audit_proof))
        .route("/v1/audit/export", get(audit_export))
        .route("/v1/audit/disclosures", post(audit_disclosures))
        .route("/v1/break-glass", get(list_break_glass).post(break_glass))
        .route("/v1/break-glass/{id}/review", post(review_break_glass))
        .route("/v1/patients/lookup", post(patient_lookup))
        .route("/v1/models", get(crate::models::list_models))
        .route("/v1/models/{name}", get(crate::models::show_model))
        .route(
            "/v1/models/{name}/versions/{version}/validate",
            post(crate::models::validate),
        )
        .route(
            "/v1/models/{name}/versions/{version}/approve",
            post(crate::models::approve),
        )
        .route(
            "/v1/models/{name}/versions/{version}/deploy",
            post(crate::models::deploy),
        )
        .route("/v1/models/{name}/promote", post(crate::models::promote))
        .route("/v1/models/{name}/rollback", post(crate::models::rollback))
        .route("/v1/models/{name}/predict", post(crate::models::predict))
        .route("/v1/models/{name}/report", get(crate::models::report))
        .route(
            "/v1/predictions/{index}/override",
            post(crate::models::override_prediction),
        )
        .route(
            "/v1/predictions/{index}/outcome",
            post(crate::models::post_outcome),
        )
}

// ----------------------------------------------------------------------------- public

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response()
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

// ----------------------------------------------------------------------------- auth

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
    totp: String,
}

async fn login(
    State(state): State<AppState>,
    ctx_id: Option<axum::Extension<crate::ReqId>>,
    body: Result<Body<LoginBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let request_id = ctx_id.map(|e| e.0.0).unwrap_or_else(crate::new_request_id);
    let Body(body) = body?;
    let password = Secret::new(body.password.into_bytes());
    let entry = |actor: ActorId, outcome, reason: &str| {
        airlock_ledger::Entry::new(
            airlock_ledger::Timestamp::now(),
            actor,
            EventType::Login,
            Zone::Clinical,
            request_id.clone(),
            outcome,
        )
        .with_reason(reason.to_string())
    };
    match state
        .identities()
        .login(&body.username, &password, &body.totp, chrono::Utc::now())
        .await
    {
        Ok((actor, session)) => {
            crate::append(
                &state,
                entry(actor, OutcomeKind::Success, "password and TOTP"),
            )
            .await?;
            Ok(Json(json!({
                "token": session.bearer(),
                "expires_at": session.expires_at,
                "idle_timeout_seconds": state.identities().policy().idle_timeout.num_seconds(),
            })))
        }
        // The name is recorded only when it names a principal.
        Err(IdentityError::BadCredentials) => {
            let actor = ActorId::new(body.username.clone()).unwrap_or_else(|_| anonymous());
            crate::append(
                &state,
                entry(actor, OutcomeKind::Failure, "invalid credentials"),
            )
            .await?;
            Err(ApiError::Unauthenticated)
        }
        Err(IdentityError::UnknownPrincipal) => {
            crate::append(
                &state,
                entry(
                    anonymous(),
                    OutcomeKind::Failure,
                    "invalid credentials (unknown principal)",
                ),
            )
            .await?;
            Err(ApiError::Unauthenticated)
        }
        Err(IdentityError::Locked { id, .. }) => {
            let actor = ActorId::new(id).unwrap_or_else(|_| anonymous());
            crate::append(&state, entry(actor, OutcomeKind::Failure, "account locked")).await?;
            Err(ApiError::Locked)
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn logout(ctx: Ctx, headers: axum::http::HeaderMap) -> Result<StatusCode, ApiError> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        ctx.state()
            .identities()
            .logout(t.trim())
            .await
            .map_err(ApiError::internal)?;
    }
    ctx.audit(
        ctx.entry(EventType::Login, Zone::Clinical, OutcomeKind::Success)
            .with_reason("logout"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn whoami(ctx: Ctx) -> Result<Json<Value>, ApiError> {
    ctx.audit(
        ctx.entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
            .with_resource("identity:self"),
    )
    .await?;
    let zones: Vec<&str> = Zone::ALL
        .into_iter()
        .filter(|z| ctx.home().scope().contains(*z))
        .map(|z| z.as_str())
        .collect();
    Ok(Json(json!({
        "id": ctx.who.principal.id,
        "kind": ctx.who.principal.kind,
        "roles": ctx.who.principal.roles,
        "mfa": ctx.who.mfa,
        "zones": zones,
    })))
}

// ----------------------------------------------------------------------------- users, tokens

/// Record an identity or token change made by this request.
async fn config_change(
    ctx: &Ctx,
    resource: impl Into<String>,
    reason: impl Into<String>,
) -> Result<(), ApiError> {
    ctx.audit(
        ctx.entry(
            EventType::ConfigChange,
            Zone::Clinical,
            OutcomeKind::Success,
        )
        .with_resource(resource)
        .with_reason(reason),
    )
    .await
}

fn identity_error(e: IdentityError) -> ApiError {
    match e {
        IdentityError::NotFound { .. } => ApiError::NotFound { what: "principal" },
        IdentityError::Exists { id } => ApiError::Conflict {
            reason: format!("principal `{id}` already exists"),
        },
        IdentityError::WeakPassword { .. } | IdentityError::Invalid { .. } => {
            ApiError::bad("body", e.to_string())
        }
        IdentityError::WrongKind { reason } => ApiError::Conflict { reason },
        other => ApiError::internal(other),
    }
}

async fn list_users(ctx: Ctx) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::ManageUsers, &Resource::Identities)
        .await?;
    let list = ctx
        .state()
        .identities()
        .list()
        .await
        .map_err(identity_error)?;
    Ok(Json(json!({ "principals": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum NewKind {
    User,
    Service,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPrincipal {
    id: String,
    kind: NewKind,
    roles: Vec<Role>,
    #[serde(default)]
    password: Option<String>,
}

async fn add_user(
    ctx: Ctx,
    body: Result<Body<NewPrincipal>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.authorize(Action::ManageUsers, &Resource::Identities)
        .await?;
    let Body(body) = body?;
    let id = ActorId::new(body.id).map_err(|e| ApiError::bad("id", e.to_string()))?;
    if body.roles.is_empty() {
        return Err(ApiError::bad("roles", "at least one role is required"));
    }
    let ids = ctx.state().identities();
    let by = ctx.who.principal.id.clone();
    let out = match body.kind {
        NewKind::User => {
            let pw = body
                .password
                .ok_or_else(|| ApiError::bad("password", "is required for a user"))?;
            let e = ids
                .add_user(&by, &id, &body.roles, &Secret::new(pw.into_bytes()))
                .await
                .map_err(identity_error)?;
            json!({"id": id, "kind": "user", "otpauth_uri": e.otpauth_uri})
        }
        NewKind::Service => {
            if body.password.is_some() {
                return Err(ApiError::bad(
                    "password",
                    "services authenticate with tokens",
                ));
            }
            ids.add_service(&by, &id, &body.roles)
                .await
                .map_err(identity_error)?;
            json!({"id": id, "kind": "service"})
        }
    };
    let roles = body.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>();
    config_change(
        &ctx,
        format!("principal:{id}"),
        format!("principal created with roles {}", roles.join(",")),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

fn path_actor(id: &str) -> Result<ActorId, ApiError> {
    ActorId::new(id).map_err(|_| ApiError::NotFound { what: "principal" })
}

async fn disable_user(ctx: Ctx, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ctx.authorize(Action::ManageUsers, &Resource::Identities)
        .await?;
    let id = path_actor(&id)?;
    ctx.state()
        .identities()
        .disable(&id)
        .await
        .map_err(identity_error)?;
    config_change(
        &ctx,
        format!("principal:{id}"),
        "principal disabled; sessions and tokens ended",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_mfa(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::ManageUsers, &Resource::Identities)
        .await?;
    let id = path_actor(&id)?;
    let e = ctx
        .state()
        .identities()
        .reset_mfa(&id)
        .await
        .map_err(identity_error)?;
    config_change(&ctx, format!("principal:{id}"), "MFA reset; sessions ended").await?;
    Ok(Json(json!({"id": id, "otpauth_uri": e.otpauth_uri})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    principal: String,
    scopes: Vec<Action>,
    #[serde(deserialize_with = "crate::extract::integer")]
    days: i64,
}

async fn issue_token(
    ctx: Ctx,
    body: Result<Body<NewToken>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.authorize(Action::ManageTokens, &Resource::Identities)
        .await?;
    let Body(body) = body?;
    let principal =
        ActorId::new(body.principal).map_err(|e| ApiError::bad("principal", e.to_string()))?;
    let t = ctx
        .state()
        .identities()
        .issue_token(&principal, &body.scopes, body.days)
        .await
        .map_err(identity_error)?;
    config_change(
        &ctx,
        format!("token:{}", t.id),
        format!("API token issued to {principal}, expires {}", t.expires_at),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": t.id, "token": t.bearer(), "expires_at": t.expires_at})),
    ))
}

async fn revoke_token(ctx: Ctx, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ctx.authorize(Action::ManageTokens, &Resource::Identities)
        .await?;
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound { what: "token" });
    }
    ctx.state()
        .identities()
        .revoke_token(&id)
        .await
        .map_err(identity_error)?;
    config_change(&ctx, format!("token:{id}"), "API token revoked").await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------------- datasets

fn dataset_resource(v: &DatasetVersion) -> Resource {
    Resource::Dataset {
        name: v.dataset.to_string(),
        zone: v.zone,
        classification: v.classification,
    }
}

fn summary_json(v: &DatasetVersion) -> Value {
    json!({
        "dataset": v.dataset,
        "version": v.version.get(),
        "zone": v.zone,
        "classification": v.classification,
        "format": v.format,
        "manifest_hash": v.manifest_hash.to_hex(),
        "objects": v.objects,
        "bytes": v.bytes,
        "records": v.records,
        "created_at": v.created_at,
        "lineage": v.lineage,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    #[serde(default)]
    version: Option<u32>,
}

/// Look a dataset up within the principal's scope; invisible and absent are the same 404.
async fn find_version(
    ctx: &Ctx,
    name: &str,
    version: Option<u32>,
) -> Result<DatasetVersion, ApiError> {
    let name =
        DatasetName::new(name.to_string()).map_err(|_| ApiError::NotFound { what: "dataset" })?;
    let version = version
        .map(DatasetVersionId::new)
        .transpose()
        .map_err(|_| ApiError::bad("version", "must be 1 or more"))?;
    match ctx.home().version(&name, version).await {
        Ok(v) => Ok(v),
        Err(airlock_store::StoreError::NotFound { .. }) => {
            // Absent and outside the principal's zones look the same to the caller; the ledger
            // records the refusal either way.
            ctx.audit(
                ctx.entry(
                    EventType::PolicyDecision,
                    Zone::Clinical,
                    OutcomeKind::Denied,
                )
                .with_resource(format!("dataset:{name}"))
                .with_reason("deny:not-found-or-outside-scope"),
            )
            .await?;
            Err(ApiError::NotFound { what: "dataset" })
        }
        Err(e) => Err(e.into()),
    }
}

async fn list_datasets(ctx: Ctx) -> Result<Json<Value>, ApiError> {
    // Listing needs the policy's leave in at least one zone; otherwise record and refuse
    // through the policy, naming its reason.
    let listable = Zone::ALL.into_iter().find(|z| {
        ctx.decide(Action::ListDatasets, &Resource::Zone(*z), false)
            .allowed()
    });
    ctx.authorize(
        Action::ListDatasets,
        &Resource::Zone(listable.unwrap_or(Zone::Clinical)),
    )
    .await?;
    let all = ctx.home().datasets().await?;
    let mut out = Vec::new();
    for d in &all {
        let r = Resource::Dataset {
            name: d.name.to_string(),
            zone: d.zone,
            classification: d.classification,
        };
        if ctx.decide(Action::ListDatasets, &r, false).allowed() {
            out.push(json!({
                "name": d.name,
                "zone": d.zone,
                "classification": d.classification,
                "latest": d.latest.map(|v| v.get()),
                "created_at": d.created_at,
            }));
        }
    }
    ctx.audit(
        ctx.entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
            .with_resource("datasets:*")
            .with_reason(format!(
                "listed {} of {} in scope, filtered by policy",
                out.len(),
                all.len()
            )),
    )
    .await?;
    Ok(Json(json!({ "datasets": out })))
}

async fn show_dataset(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Value>, ApiError> {
    let v = find_version(&ctx, &name, q.version).await?;
    ctx.authorize(Action::ReadDataset, &dataset_resource(&v))
        .await?;
    let versions: Vec<u32> = ctx
        .home()
        .versions(&v.dataset)
        .await?
        .into_iter()
        .map(|r| r.version.get())
        .collect();
    let mut j = summary_json(&v);
    if let Some(o) = j.as_object_mut() {
        o.insert("versions".into(), json!(versions));
    }
    Ok(Json(j))
}

async fn lineage(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Value>, ApiError> {
    let v = find_version(&ctx, &name, q.version).await?;
    ctx.authorize(Action::ReadDataset, &dataset_resource(&v))
        .await?;
    let chain = ctx.home().lineage(&v.dataset, Some(v.version)).await?;
    Ok(Json(json!({
        "lineage": chain.iter().map(summary_json).collect::<Vec<_>>(),
    })))
}

async fn read_files(
    ctx: &Ctx,
    v: &DatasetVersion,
) -> Result<Vec<(airlock_store::ManifestFile, Vec<u8>)>, ApiError> {
    Ok(ctx
        .home()
        .read_version(v, Access::Zone(v.zone), ctx.purpose)
        .await?)
}

async fn list_files(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Value>, ApiError> {
    let v = find_version(&ctx, &name, q.version).await?;
    ctx.authorize(Action::DownloadDataset, &dataset_resource(&v))
        .await?;
    let files = read_files(&ctx, &v).await?;
    // File names can carry patient names (Synthea names its bundles after the patient), so
    // the API lists files by index, format and size only.
    let list: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, (f, b))| json!({"index": i, "format": f.format, "records": f.records, "bytes": b.len()}))
        .collect();
    Ok(Json(
        json!({"dataset": v.dataset, "version": v.version.get(), "files": list}),
    ))
}

async fn download_file(
    ctx: Ctx,
    Path((name, index)): Path<(String, usize)>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let v = find_version(&ctx, &name, q.version).await?;
    ctx.authorize(Action::DownloadDataset, &dataset_resource(&v))
        .await?;
    let files = read_files(&ctx, &v).await?;
    let Some((f, bytes)) = files.into_iter().nth(index) else {
        return Err(ApiError::NotFound { what: "file" });
    };
    let mut entry = ctx
        .entry(EventType::Export, v.zone, OutcomeKind::Success)
        .with_resource(v.reference().to_string())
        .with_reason(format!("file {index} downloaded over the API"));
    if v.classification.is_identified() {
        entry = entry.with_disclosure(airlock_ledger::DisclosureInfo {
            recipient: ctx.who.principal.id.to_string(),
            description: format!("{} file of {}", f.format, v.reference()),
        });
    }
    ctx.audit(entry).await?;
    let ctype = if f.format.starts_with("fhir") || f.format == "report" {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, ctype)], bytes).into_response())
}

// ----------------------------------------------------------------------------- de-identification

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeidBody {
    profile: String,
    dataset: String,
    out_dataset: String,
}

async fn start_deid(
    ctx: Ctx,
    body: Result<Body<DeidBody>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Body(body) = body?;
    // Only the built-in profiles over the API: a path would let a request read server files.
    if !crate::openapi::API_PROFILES.contains(&body.profile.as_str()) {
        return Err(ApiError::bad(
            "profile",
            format!("must be one of {}", crate::openapi::API_PROFILES.join(", ")),
        ));
    }
    let out = DatasetName::new(body.out_dataset.clone())
        .map_err(|e| ApiError::bad("out_dataset", e.to_string()))?;
    let (name, ver) =
        parse_version_spec(&body.dataset).map_err(|e| ApiError::bad("dataset", e.to_string()))?;
    let input = find_version(&ctx, name.as_str(), ver.map(|v| v.get())).await?;
    ctx.authorize(Action::RunDeid, &dataset_resource(&input))
        .await?;
    let run_id = hex::encode(rand::random::<[u8; 12]>());
    let db = ctx.home().db().clone();
    let mut tx = db.begin(&Scope::zones([Zone::Airlock])).await?;
    sqlx::query(
        "INSERT INTO deid_runs (id, zone, actor, profile, dataset, out_dataset, status, started_at) \
         VALUES ($1, 'airlock', $2, $3, $4, $5, 'running', $6)",
    )
    .bind(&run_id)
    .bind(ctx.who.principal.id.as_str())
    .bind(&body.profile)
    .bind(input.reference().to_string())
    .bind(out.as_str())
    .bind(chrono::Utc::now().to_rfc3339())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // The gate runs as the requester, across the zones a gate spans.
    let home = ctx.home().acting_as(
        ctx.who.principal.id.clone(),
        ctx.request_id.clone(),
        Scope::all(),
    );
    let spec = body.profile.clone();
    let dataset = input.reference().to_string();
    let id = run_id.clone();
    tokio::spawn(async move {
        let result = crate::gate::run_gate(&home, &spec, &dataset, &out).await;
        let (status, report, error) = match result {
            Ok(o) => ("succeeded", Some(o.version.reference().to_string()), None),
            Err(e) => ("failed", None, Some(e.to_string())),
        };
        let done = async {
            let mut tx = db.begin(&Scope::zones([Zone::Airlock])).await?;
            sqlx::query("UPDATE deid_runs SET status = $1, report = $2, error = $3, finished_at = $4 WHERE id = $5")
                .bind(status)
                .bind(report)
                .bind(error)
                .bind(chrono::Utc::now().to_rfc3339())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, airlock_store::StoreError>(())
        };
        if let Err(e) = done.await {
            tracing::error!(run = %id, error = %e, "could not record the end of a de-identification run");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": run_id, "status": "running"})),
    ))
}

async fn run_row(ctx: &Ctx, id: &str) -> Result<Value, ApiError> {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound {
            what: "de-identification run",
        });
    }
    let mut tx = ctx
        .home()
        .db()
        .begin(&Scope::zones([Zone::Airlock]))
        .await?;
    let row = sqlx::query(
        "SELECT id, actor, profile, dataset, out_dataset, status, report, error, started_at, finished_at \
         FROM deid_runs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let r = row.ok_or(ApiError::NotFound {
        what: "de-identification run",
    })?;
    let g = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
    Ok(json!({
        "id": g("id"), "actor": g("actor"), "profile": g("profile"), "dataset": g("dataset"),
        "out_dataset": g("out_dataset"), "status": g("status"), "output": g("report"),
        "error": g("error"), "started_at": g("started_at"), "finished_at": g("finished_at"),
    }))
}

fn airlock_zone() -> Resource {
    Resource::Zone(Zone::Airlock)
}

async fn deid_status(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::ReadDeidReport, &airlock_zone())
        .await?;
    Ok(Json(run_row(&ctx, &id).await?))
}

async fn deid_report(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.authorize(Action::ReadDeidReport, &airlock_zone())
        .await?;
    let row = run_row(&ctx, &id).await?;
    let Some(output) = row.get("output").and_then(Value::as_str) else {
        return Err(ApiError::NotFound {
            what: "report (the run has not succeeded)",
        });
    };
    let (name, ver) = parse_version_spec(output).map_err(ApiError::internal)?;
    // The report lives in the output version; read it with a handle that spans the gate.
    let home = ctx.home().acting_as(
        ctx.who.principal.id.clone(),
        ctx.request_id.clone(),
        Scope::all(),
    );
    let v = home.version(&name, ver).await?;
    let files = home.read_version(&v, Access::Zone(v.zone), None).await?;
    let report = files
        .into_iter()
        .find(|(f, _)| f.format == "report")
        .ok_or(ApiError::NotFound { what: "report" })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], report.1).into_response())
}

// ----------------------------------------------------------------------------- audit

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    patient_mrn: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::optional_integer")]
    limit: Option<usize>,
}

fn parse_time(field: &'static str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| ApiError::bad(field, "must be an RFC 3339 time"))
}

/// The longest medical record number a request may name, in characters.
pub(crate) const MRN_MAX: usize = 128;

/// The pseudonym of the patient a request names in `field`, once the value is checked: 1 to
/// [`MRN_MAX`] characters, none of them control characters. (An empty one would name a
/// patient nobody is, and a break-glass grant for it would be a grant for nobody.) The error
/// names the field, never the value.
pub(crate) fn patient(
    ctx: &Ctx,
    field: &'static str,
    mrn: &str,
) -> Result<PatientPseudonym, ApiError> {
    let n = mrn.chars().count();
    if n == 0 || n > MRN_MAX || mrn.chars().any(char::is_control) {
        return Err(ApiError::bad(
            field,
            format!("must be 1 to {MRN_MAX} characters, none of them control characters"),
        ));
    }
    Ok(patient_pseudonym(
        ctx.state().pseudonym_key().expose_secret(),
        mrn,
    ))
}

async fn audit_search(
    ctx: Ctx,
    body: Result<Body<SearchBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::ReadAudit, &Resource::Audit).await?;
    let Body(body) = body?;
    let filter = Filter {
        actor: body
            .actor
            .map(ActorId::new)
            .transpose()
            .map_err(|_| ApiError::bad("actor", "is not a valid actor id"))?,
        patient: body
            .patient_mrn
            .as_deref()
            .map(|m| patient(&ctx, "patient_mrn", m))
            .transpose()?,
        events: body
            .events
            .iter()
            .map(|e| {
                e.parse()
                    .map_err(|_| ApiError::bad("events", "names an unknown event type"))
            })
            .collect::<Result<_, _>>()?,
        since: body
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until: body
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
    };
    let limit = match body.limit {
        None => 1000,
        Some(n) if (1..=10_000).contains(&n) => n,
        Some(_) => return Err(ApiError::bad("limit", "must be between 1 and 10000")),
    };
    let hits = ctx.state().audit_search(filter).await?;
    let total = hits.len();
    let entries: Vec<Value> = hits
        .into_iter()
        .rev()
        .take(limit)
        .map(|(i, e)| json!({"index": i, "entry": e}))
        .collect();
    Ok(Json(
        json!({"total": total, "returned": entries.len(), "entries": entries}),
    ))
}

async fn audit_verify(ctx: Ctx) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::VerifyAudit, &Resource::Audit).await?;
    // Sign a checkpoint first so the verification covers every entry written so far.
    ctx.home().ledger().checkpoint()?;
    let dir = ctx.home().ledger_dir();
    let key = ctx.home().verifier_key();
    let r = tokio::task::spawn_blocking(move || airlock_ledger::verify_dir(&dir, &key, None))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(match r {
        Ok(rep) => json!({
            "verified": true,
            "size": rep.checkpoint.size,
            "root": hex::encode(rep.checkpoint.root),
            "entries": rep.entries,
            "tiles": rep.tiles,
        }),
        Err(e) => json!({"verified": false, "error": e.to_string()}),
    }))
}

async fn audit_checkpoint(ctx: Ctx) -> Result<Response, ApiError> {
    ctx.authorize(Action::VerifyAudit, &Resource::Audit).await?;
    let cp = ctx.home().ledger().checkpoint()?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cp.text,
    )
        .into_response())
}

async fn audit_proof(ctx: Ctx, Path(index): Path<u64>) -> Result<Response, ApiError> {
    ctx.authorize(Action::VerifyAudit, &Resource::Audit).await?;
    let ledger = ctx.home().ledger();
    if index >= ledger.size()? {
        return Err(ApiError::NotFound {
            what: "ledger entry",
        });
    }
    let proof = ledger.proof_file(index)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], proof).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn audit_export(ctx: Ctx, Query(q): Query<ExportQuery>) -> Result<Response, ApiError> {
    ctx.authorize(Action::ReadAudit, &Resource::Audit).await?;
    let fhir = match q.format.as_deref() {
        None | Some("jsonl") => false,
        Some("fhir") => true,
        Some(_) => return Err(ApiError::bad("format", "must be jsonl or fhir")),
    };
    let all = ctx.state().audit_search(Filter::default()).await?;
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        if fhir {
            let events: Vec<Value> = all
                .iter()
                .map(|(i, e)| json!({"resource": airlock_ledger::to_fhir_audit_event(*i, e)}))
                .collect();
            out = serde_json::to_vec(
                &json!({"resourceType": "Bundle", "type": "collection", "entry": events}),
            )
            .map_err(ApiError::internal)?;
        } else {
            airlock_ledger::write_jsonl(all.iter().map(|(_, e)| e), &mut out)?;
        }
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)??;
    let ctype = if fhir {
        "application/fhir+json"
    } else {
        "application/jsonl"
    };
    Ok(([(header::CONTENT_TYPE, ctype)], body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisclosuresBody {
    patient_mrn: String,
}

async fn audit_disclosures(
    ctx: Ctx,
    body: Result<Body<DisclosuresBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::ReadAudit, &Resource::Audit).await?;
    let Body(body) = body?;
    let p = patient(&ctx, "patient_mrn", &body.patient_mrn)?;
    let all = ctx.state().audit_search(Filter::default()).await?;
    let recs =
        airlock_ledger::disclosures(all.iter().map(|(i, e)| (*i, e)), &p, chrono::Utc::now());
    Ok(Json(json!({
        "patient": p.as_str(),
        "disclosures": recs.iter().map(|r| json!({
            "index": r.index, "date": r.date.to_rfc3339(), "recipient": r.recipient,
            "description": r.description, "purpose": r.purpose,
        })).collect::<Vec<_>>(),
    })))
}

// ----------------------------------------------------------------------------- break-glass

/// The reasons a clinician may state for emergency access (coded, so no free text with PHI
/// reaches the ledger).
const BREAK_GLASS_REASONS: &[&str] = &[
    "emergency-treatment",
    "patient-unresponsive",
    "urgent-consult",
    "system-downtime",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassBody {
    patient_mrn: String,
    reason: String,
    #[serde(default, deserialize_with = "crate::extract::optional_integer")]
    minutes: Option<i64>,
}

async fn break_glass(
    ctx: Ctx,
    body: Result<Body<BreakGlassBody>, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Body(body) = body?;
    if !BREAK_GLASS_REASONS.contains(&body.reason.as_str()) {
        return Err(ApiError::bad(
            "reason",
            format!("must be one of {}", BREAK_GLASS_REASONS.join(", ")),
        ));
    }
    let minutes = body.minutes.unwrap_or(60);
    if !(1..=240).contains(&minutes) {
        return Err(ApiError::bad("minutes", "must be between 1 and 240"));
    }
    let p = patient(&ctx, "patient_mrn", &body.patient_mrn)?;
    ctx.authorize_with(
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
    let mut tx = ctx
        .home()
        .db()
        .begin(&Scope::zones([Zone::Clinical]))
        .await?;
    sqlx::query(
        "INSERT INTO break_glass (id, zone, principal, patient, reason, started_at, expires_at) \
         VALUES ($1, 'clinical', $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(ctx.who.principal.id.as_str())
    .bind(p.as_str())
    .bind(&body.reason)
    .bind(now.to_rfc3339())
    .bind(expires.to_rfc3339())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    ctx.audit(
        ctx.entry(
            EventType::BreakGlassStart,
            Zone::Clinical,
            OutcomeKind::Success,
        )
        .with_resource(format!("break-glass:{id}"))
        .with_patient(p)
        .with_reason(format!(
            "{}; {minutes} minutes; flagged for privacy review",
            body.reason
        )),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "expires_at": expires.to_rfc3339(), "review": "pending"})),
    ))
}

/// The live grant for this principal and patient, if any.
pub(crate) async fn active_grant(
    ctx: &Ctx,
    p: &PatientPseudonym,
) -> Result<Option<String>, ApiError> {
    let mut tx = ctx
        .home()
        .db()
        .begin(&Scope::zones([Zone::Clinical]))
        .await?;
    let rows =
        sqlx::query("SELECT id, expires_at FROM break_glass WHERE principal = $1 AND patient = $2")
            .bind(ctx.who.principal.id.as_str())
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

async fn list_break_glass(ctx: Ctx) -> Result<Json<Value>, ApiError> {
    ctx.authorize(Action::ReviewBreakGlass, &Resource::Audit)
        .await?;
    let mut tx = ctx
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
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let g = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
            json!({
                "id": g("id"), "principal": g("principal"), "patient": g("patient"),
                "reason": g("reason"), "started_at": g("started_at"), "expires_at": g("expires_at"),
                "reviewed_by": g("reviewed_by"), "reviewed_at": g("reviewed_at"),
            })
        })
        .collect();
    Ok(Json(json!({"grants": list})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
enum ReviewOutcome {
    Appropriate,
    Inappropriate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    outcome: ReviewOutcome,
}

async fn review_break_glass(
    ctx: Ctx,
    Path(id): Path<String>,
    body: Result<Body<ReviewBody>, ApiError>,
) -> Result<StatusCode, ApiError> {
    ctx.authorize(Action::ReviewBreakGlass, &Resource::Audit)
        .await?;
    let Body(body) = body?;
    let mut tx = ctx
        .home()
        .db()
        .begin(&Scope::zones([Zone::Clinical]))
        .await?;
    let n = sqlx::query("UPDATE break_glass SET reviewed_by = $1, reviewed_at = $2 WHERE id = $3 AND reviewed_at IS NULL")
        .bind(ctx.who.principal.id.as_str())
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    if n == 0 {
        return Err(ApiError::NotFound {
            what: "unreviewed break-glass grant",
        });
    }
    let outcome = match body.outcome {
        ReviewOutcome::Appropriate => "appropriate",
        ReviewOutcome::Inappropriate => "inappropriate",
    };
    ctx.audit(
        ctx.entry(
            EventType::BreakGlassStop,
            Zone::Clinical,
            OutcomeKind::Success,
        )
        .with_resource(format!("break-glass:{id}"))
        .with_reason(format!("reviewed: {outcome}")),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------------- patients

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupBody {
    dataset: String,
    mrn: String,
}

/// The FHIR resources of one patient in a dataset version: the Patient whose identifier has
/// this value, and every resource that references it.
fn patient_resources(files: &[(airlock_store::ManifestFile, Vec<u8>)], mrn: &str) -> Vec<Value> {
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
        let has_mrn = r
            .get("identifier")
            .and_then(Value::as_array)
            .is_some_and(|ids| {
                ids.iter()
                    .any(|i| i.get("value").and_then(Value::as_str) == Some(mrn))
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

async fn patient_lookup(
    ctx: Ctx,
    body: Result<Body<LookupBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Body(body) = body?;
    let (name, ver) =
        parse_version_spec(&body.dataset).map_err(|e| ApiError::bad("dataset", e.to_string()))?;
    let p = patient(&ctx, "mrn", &body.mrn)?;
    let v = find_version(&ctx, name.as_str(), ver.map(|v| v.get())).await?;
    let grant = if ctx.purpose == Some(Purpose::Emergency) {
        active_grant(&ctx, &p).await?
    } else {
        None
    };
    ctx.authorize_with(
        Action::ReadPatientRecord,
        &Resource::Patient { zone: v.zone },
        grant.is_some(),
        Some(p.clone()),
    )
    .await?;
    if v.classification != Classification::Phi || v.zone != Zone::Clinical {
        return Err(ApiError::Refused {
            reason: "patient records are looked up in identified clinical datasets".into(),
        });
    }
    let files = read_files(&ctx, &v).await?;
    let mrn = body.mrn.clone();
    let found = tokio::task::spawn_blocking(move || patient_resources(&files, &mrn))
        .await
        .map_err(ApiError::internal)?;
    let mut entry = ctx
        .entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
        .with_resource(v.reference().to_string())
        .with_patient(p)
        .with_reason(format!("{} resources", found.len()));
    if let Some(g) = &grant {
        entry = entry
            .with_resource(format!("break-glass:{g}"))
            .with_reason(format!(
                "{} resources; under break-glass grant {g}",
                found.len()
            ));
    }
    ctx.audit(entry).await?;
    if found.is_empty() {
        return Err(ApiError::NotFound { what: "patient" });
    }
    Ok(Json(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": found.len(),
        "entry": found.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>(),
    })))
}
