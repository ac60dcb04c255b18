//! `/v1/models`, `/v1/predictions`: the model lifecycle, change control plans and updates
//! under them, predictions, overrides, outcomes, the silent-mode report and monitoring.

use airlock_registry::ApprovalOutcome;
use airlock_registry::plan::{PlanRecord, UpdateOutcome};
use airlock_service::alerts::{
    AlertList, Evaluation, RulesBody, RulesView, Webhook, WebhookBody, WebhookList,
};
use airlock_service::models::{
    ApproveBody, DeployBody, ModelDetail, ModelList, OutcomeBody, OutcomeRecorded, Overridden,
    OverrideBody, PredictBody, Prediction, ReasonBody, Report, Transitions, ValidateBody,
    Validated,
};
use airlock_service::monitoring::{DriftBody, DriftReport, MonitorQuery, MonitoringReport};
use airlock_service::plans::{PlanApproveBody, PlanBody, PlanList, UpdateBody};
use axum::Json;

use crate::extract::{Body, Path, Query};
use crate::{ApiError, Ctx};

pub(crate) async fn list(ctx: Ctx) -> Result<Json<ModelList>, ApiError> {
    Ok(Json(ctx.models().await?))
}

pub(crate) async fn show(
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<ModelDetail>, ApiError> {
    Ok(Json(ctx.model(&name).await?))
}

pub(crate) async fn validate(
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
    b: Result<Body<ValidateBody>, ApiError>,
) -> Result<Json<Validated>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.validate_model(&name, &version, b).await?))
}

pub(crate) async fn approve(
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
    b: Result<Body<ApproveBody>, ApiError>,
) -> Result<Json<ApprovalOutcome>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.approve_model(&name, &version, b).await?))
}

pub(crate) async fn deploy(
    ctx: Ctx,
    Path((name, version)): Path<(String, String)>,
    b: Result<Body<DeployBody>, ApiError>,
) -> Result<Json<Transitions>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.deploy_model(&name, &version, b).await?))
}

pub(crate) async fn promote(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<ReasonBody>, ApiError>,
) -> Result<Json<Transitions>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.promote_model(&name, b).await?))
}

pub(crate) async fn rollback(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<ReasonBody>, ApiError>,
) -> Result<Json<Transitions>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.rollback_model(&name, b).await?))
}

pub(crate) async fn predict(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<PredictBody>, ApiError>,
) -> Result<Json<Prediction>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.predict(&name, b).await?))
}

pub(crate) async fn override_prediction(
    ctx: Ctx,
    Path(index): Path<u64>,
    b: Result<Body<OverrideBody>, ApiError>,
) -> Result<Json<Overridden>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.override_prediction(index, b).await?))
}

pub(crate) async fn outcome(
    ctx: Ctx,
    Path(index): Path<u64>,
    b: Result<Body<OutcomeBody>, ApiError>,
) -> Result<Json<OutcomeRecorded>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.post_outcome(index, b).await?))
}

pub(crate) async fn report(ctx: Ctx, Path(name): Path<String>) -> Result<Json<Report>, ApiError> {
    Ok(Json(ctx.model_report(&name).await?))
}

pub(crate) async fn monitoring(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<MonitorQuery>,
) -> Result<Json<MonitoringReport>, ApiError> {
    Ok(Json(ctx.monitoring_report(&name, q).await?))
}

pub(crate) async fn monitoring_rules(
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<RulesView>, ApiError> {
    Ok(Json(ctx.monitoring_rules(&name).await?))
}

pub(crate) async fn set_monitoring_rules(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<RulesBody>, ApiError>,
) -> Result<Json<RulesView>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.set_monitoring_rules(&name, b).await?))
}

pub(crate) async fn monitoring_alerts(
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<AlertList>, ApiError> {
    Ok(Json(ctx.monitoring_alerts(&name).await?))
}

pub(crate) async fn evaluate_monitoring(
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<Evaluation>, ApiError> {
    Ok(Json(ctx.evaluate_monitoring(&name).await?))
}

pub(crate) async fn add_webhook(
    ctx: Ctx,
    b: Result<Body<WebhookBody>, ApiError>,
) -> Result<Json<Webhook>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.add_webhook(b).await?))
}

pub(crate) async fn webhooks(ctx: Ctx) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(ctx.webhooks().await?))
}

pub(crate) async fn dataset_drift(
    ctx: Ctx,
    b: Result<Body<DriftBody>, ApiError>,
) -> Result<Json<DriftReport>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.dataset_drift(b).await?))
}

pub(crate) async fn propose_plan(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<PlanBody>, ApiError>,
) -> Result<Json<PlanRecord>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.propose_plan(&name, b).await?))
}

pub(crate) async fn plans(ctx: Ctx, Path(name): Path<String>) -> Result<Json<PlanList>, ApiError> {
    Ok(Json(ctx.model_plans(&name).await?))
}

pub(crate) async fn approve_plan(
    ctx: Ctx,
    Path((name, plan)): Path<(String, String)>,
    b: Result<Body<PlanApproveBody>, ApiError>,
) -> Result<Json<PlanRecord>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.approve_plan(&name, &plan, b).await?))
}

pub(crate) async fn update(
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Body<UpdateBody>, ApiError>,
) -> Result<Json<UpdateOutcome>, ApiError> {
    let Body(b) = b?;
    Ok(Json(ctx.update_model(&name, b).await?))
}
