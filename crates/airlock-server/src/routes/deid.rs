//! `/v1/deid-runs`: the de-identification gate, run in the background; and
//! `/v1/expert-determinations`, which an expert-determination release needs.

use airlock_service::deid_runs::{NewRun, Run, Started};
use airlock_service::determinations::{Determination, NewDetermination};
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

pub(crate) async fn determine(
    ctx: Ctx,
    body: Result<Body<NewDetermination>, ApiError>,
) -> Result<(StatusCode, Json<Determination>), ApiError> {
    let Body(body) = body?;
    Ok((
        StatusCode::CREATED,
        Json(ctx.sign_expert_determination(body).await?),
    ))
}
