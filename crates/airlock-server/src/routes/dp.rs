//! `/v1/dp/...`: differentially private questions over identified data (the DP release gate),
//! synthetic rows (the synthesis gate), the datasets' DP metadata, and the budgets both are
//! charged to.

use airlock_service::dp::{
    BudgetBody, BudgetList, BudgetView, DpAnswer, MetadataBody, MetadataView, QueryBody,
};
use airlock_service::synth::{SynthBody, SynthResult};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::extract::{Body, Path, Query};
use crate::{ApiError, Ctx};

pub(crate) async fn query(
    ctx: Ctx,
    body: Result<Body<QueryBody>, ApiError>,
) -> Result<Json<DpAnswer>, ApiError> {
    let Body(body) = body?;
    Ok(Json(ctx.dp_query(body).await?))
}

pub(crate) async fn synthesize(
    ctx: Ctx,
    body: Result<Body<SynthBody>, ApiError>,
) -> Result<Json<SynthResult>, ApiError> {
    let Body(body) = body?;
    Ok(Json(ctx.synthesize(body).await?))
}

pub(crate) async fn set_metadata(
    ctx: Ctx,
    body: Result<Body<MetadataBody>, ApiError>,
) -> Result<Json<MetadataView>, ApiError> {
    let Body(body) = body?;
    Ok(Json(ctx.set_dp_metadata(body).await?))
}

pub(crate) async fn metadata(
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<MetadataView>, ApiError> {
    Ok(Json(ctx.dp_metadata(&name).await?))
}

pub(crate) async fn set_budget(
    ctx: Ctx,
    body: Result<Body<BudgetBody>, ApiError>,
) -> Result<Json<BudgetView>, ApiError> {
    let Body(body) = body?;
    Ok(Json(ctx.set_dp_budget(body).await?))
}

/// Which budgets.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetQuery {
    /// Only this dataset's.
    #[serde(default)]
    #[schemars(with = "Option<airlock_types::DatasetName>")]
    dataset: Option<String>,
}

pub(crate) async fn budgets(
    ctx: Ctx,
    Query(q): Query<BudgetQuery>,
) -> Result<Json<BudgetList>, ApiError> {
    Ok(Json(ctx.dp_budgets(q.dataset.as_deref()).await?))
}
