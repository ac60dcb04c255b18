//! `/v1/deid-runs`: the de-identification gate, run in the background.

use airlock_service::deid_runs::{NewRun, Run, Started};
use axum::Json;
use axum::http::StatusCode;
use axum::response::Response;

use super::typed;
use crate::extract::{Body, Path};
use crate::{ApiError, Ctx};

pub(crate) async fn start(
    ctx: Ctx,
    body: Result<Body<NewRun>, ApiError>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let Body(body) = body?;
    Ok((StatusCode::ACCEPTED, Json(ctx.start_deid(body).await?)))
}

pub(crate) async fn status(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Run>, ApiError> {
    Ok(Json(ctx.deid_run(&id).await?))
}

pub(crate) async fn report(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(typed("application/json", ctx.deid_report(&id).await?))
}
