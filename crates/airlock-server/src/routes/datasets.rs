//! `/v1/datasets`: datasets, versions, lineage and files, within the caller's zones.

use airlock_service::datasets::{DatasetList, FileList, LineageChain, VersionDetail};
use axum::Json;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Deserialize;

use super::typed;
use crate::extract::{Path, Query};
use crate::{ApiError, Ctx};

/// Which version (the latest when absent).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionQuery {
    /// The version number.
    #[serde(default)]
    #[schemars(with = "Option<airlock_types::DatasetVersionId>")]
    version: Option<u32>,
}

pub(crate) async fn list(ctx: Ctx) -> Result<Json<DatasetList>, ApiError> {
    Ok(Json(ctx.datasets().await?))
}

pub(crate) async fn show(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<VersionDetail>, ApiError> {
    Ok(Json(ctx.dataset(&name, q.version).await?))
}

pub(crate) async fn lineage(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<LineageChain>, ApiError> {
    Ok(Json(ctx.lineage(&name, q.version).await?))
}

pub(crate) async fn files(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<FileList>, ApiError> {
    Ok(Json(ctx.files(&name, q.version).await?))
}

pub(crate) async fn download(
    ctx: Ctx,
    Path((name, index)): Path<(String, usize)>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let file = ctx.download(&name, index, q.version).await?;
    Ok(typed(file.media_type(), file.bytes))
}

/// `POST /v1/views/$run`: a SQL-on-FHIR view over resources sent with it, or over a dataset
/// version the caller may download.
pub(crate) async fn run_view(
    ctx: Ctx,
    body: Result<crate::extract::Body<airlock_service::views::RunRequest>, ApiError>,
) -> Result<Json<airlock_service::views::RunResult>, ApiError> {
    let crate::extract::Body(body) = body?;
    Ok(Json(ctx.run_view(body).await?))
}
