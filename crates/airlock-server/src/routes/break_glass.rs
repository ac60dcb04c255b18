//! `/v1/break-glass`: emergency access grants and their review.

use airlock_service::break_glass::{Grants, NewGrant, Opened, Review};
use axum::Json;
use axum::http::StatusCode;

use super::parsed;
use crate::extract::{Body, Path};
use crate::{ApiError, Ctx};

pub(crate) async fn open(
    ctx: Ctx,
    body: Result<Body<NewGrant>, ApiError>,
) -> Result<(StatusCode, Json<Opened>), ApiError> {
    let Body(body) = body?;
    Ok((StatusCode::CREATED, Json(ctx.break_glass(body).await?)))
}

pub(crate) async fn list(ctx: Ctx) -> Result<Json<Grants>, ApiError> {
    Ok(Json(ctx.break_glass_grants().await?))
}

pub(crate) async fn review(
    ctx: Ctx,
    Path(id): Path<String>,
    body: Result<Body<Review>, ApiError>,
) -> Result<StatusCode, ApiError> {
    ctx.review_break_glass(&id, parsed(body)).await?;
    Ok(StatusCode::NO_CONTENT)
}
