//! The router, by resource. Each handler extracts, calls one service operation with the
//! caller's [`Ctx`], and answers its typed result as JSON; the service decides and records.

mod audit;
mod break_glass;
mod datasets;
mod deid;
mod identities;
mod models;
mod patients;

use airlock_service::ServiceError;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/v1/auth/login", post(identities::login))
        .route("/v1/auth/logout", post(identities::logout))
        .route("/v1/auth/whoami", get(identities::whoami))
        .route(
            "/v1/users",
            get(identities::list_users).post(identities::add_user),
        )
        .route("/v1/enrol", post(identities::enrol))
        .route(
            "/v1/users/{id}/roles/{role}/confirm",
            post(identities::confirm_role),
        )
        .route("/v1/users/{id}/disable", post(identities::disable_user))
        .route("/v1/users/{id}/reset-mfa", post(identities::reset_mfa))
        .route("/v1/tokens", post(identities::issue_token))
        .route("/v1/tokens/{id}", delete(identities::revoke_token))
        .route("/v1/datasets", get(datasets::list))
        .route("/v1/datasets/{name}", get(datasets::show))
        .route("/v1/datasets/{name}/lineage", get(datasets::lineage))
        .route("/v1/datasets/{name}/files", get(datasets::files))
        .route("/v1/datasets/{name}/files/{index}", get(datasets::download))
        .route("/v1/deid-runs", post(deid::start))
        .route("/v1/deid-runs/{id}", get(deid::status))
        .route("/v1/deid-runs/{id}/report", get(deid::report))
        .route("/v1/audit/search", post(audit::search))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/checkpoint", get(audit::checkpoint))
        .route("/v1/audit/proofs/{index}", get(audit::proof))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/disclosures", post(audit::disclosures))
        .route(
            "/v1/break-glass",
            get(break_glass::list).post(break_glass::open),
        )
        .route("/v1/break-glass/{id}/review", post(break_glass::review))
        .route("/v1/patients/lookup", post(patients::lookup))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{name}", get(models::show))
        .route(
            "/v1/models/{name}/versions/{version}/validate",
            post(models::validate),
        )
        .route(
            "/v1/models/{name}/versions/{version}/approve",
            post(models::approve),
        )
        .route(
            "/v1/models/{name}/versions/{version}/deploy",
            post(models::deploy),
        )
        .route("/v1/models/{name}/promote", post(models::promote))
        .route("/v1/models/{name}/rollback", post(models::rollback))
        .route("/v1/models/{name}/predict", post(models::predict))
        .route("/v1/models/{name}/report", get(models::report))
        .route(
            "/v1/predictions/{index}/override",
            post(models::override_prediction),
        )
        .route("/v1/predictions/{index}/outcome", post(models::outcome))
}

/// A parsed body, or its refusal, for an operation that decides before it reads the body.
fn parsed<T>(body: Result<crate::extract::Body<T>, crate::ApiError>) -> Result<T, ServiceError> {
    body.map(|crate::extract::Body(b)| b)
        .map_err(ServiceError::from)
}

/// Bytes with a media type.
fn typed(media_type: &'static str, bytes: impl IntoResponse) -> Response {
    ([(header::CONTENT_TYPE, media_type)], bytes).into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The Prometheus text, for [`crate::metrics_app`] (not part of the API: request counts by
/// route and decisions by action are nobody's business outside operations).
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    typed("text/plain; version=0.0.4", state.metrics().render())
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
