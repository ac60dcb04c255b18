//! `/v1/audit/*`: search, verification, checkpoints, proofs, exports and disclosures.

use airlock_service::audit::{Disclosures, ExportFormat, SearchQuery, SearchResult, Verification};
use axum::Json;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{parsed, typed};
use crate::extract::{Body, Path, Query};
use crate::{ApiError, Ctx};

pub(crate) const SIGNED_NOTE: &str = "text/plain; charset=utf-8";

pub(crate) async fn search(
    ctx: Ctx,
    body: Result<Body<SearchQuery>, ApiError>,
) -> Result<Json<SearchResult>, ApiError> {
    Ok(Json(ctx.audit_search(parsed(body)).await?))
}

pub(crate) async fn verify(ctx: Ctx) -> Result<Json<Verification>, ApiError> {
    Ok(Json(ctx.audit_verify().await?))
}

pub(crate) async fn findings(ctx: Ctx) -> Result<Json<airlock_service::incidents::Scan>, ApiError> {
    Ok(Json(ctx.incident_scan(None).await?))
}

pub(crate) async fn checkpoint(ctx: Ctx) -> Result<Response, ApiError> {
    Ok(typed(SIGNED_NOTE, ctx.audit_checkpoint().await?))
}

pub(crate) async fn proof(ctx: Ctx, Path(index): Path<u64>) -> Result<Response, ApiError> {
    Ok(typed(SIGNED_NOTE, ctx.audit_proof(index).await?))
}

/// The export's query.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// `jsonl` (the default) or `fhir`.
    #[serde(default)]
    #[schemars(with = "Option<ExportFormat>")]
    format: Option<String>,
}

pub(crate) async fn export(ctx: Ctx, Query(q): Query<ExportQuery>) -> Result<Response, ApiError> {
    let (format, body) = ctx
        .audit_export(ExportFormat::parse(q.format.as_deref()))
        .await?;
    Ok(typed(format.media_type(), body))
}

/// Whose disclosures.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisclosuresBody {
    /// The patient's record number.
    #[schemars(with = "airlock_types::Mrn")]
    patient_mrn: String,
}

pub(crate) async fn disclosures(
    ctx: Ctx,
    body: Result<Body<DisclosuresBody>, ApiError>,
) -> Result<Json<Disclosures>, ApiError> {
    let mrn = parsed(body).map(|b| b.patient_mrn);
    Ok(Json(ctx.audit_disclosures(mrn).await?))
}
