//! `/v1/auth/*`, `/v1/users`, `/v1/tokens`: sessions, principals and API tokens.

use airlock_crypto::Secret;
use airlock_service::accounts::{
    CreatedPrincipal, Enrolled, IssuedToken, MfaReset, NewPrincipal, NewToken, RolesNow, Session,
    WhoAmI,
};
use airlock_service::identity::PrincipalRecord;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::parsed;
use crate::extract::{Body, Path};
use crate::{ApiError, AppState, Ctx, Origin};

/// A login.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    /// The principal's id.
    username: String,
    /// The password.
    password: String,
    /// The authenticator's current code.
    #[schemars(schema_with = "airlock_service::schema::totp_code")]
    totp: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    origin: Origin,
    body: Result<Body<LoginBody>, ApiError>,
) -> Result<Json<Session>, ApiError> {
    let Body(body) = body?;
    let password = Secret::new(body.password.into_bytes());
    Ok(Json(
        state
            .service()
            .login(
                origin.request_id,
                origin.source,
                &body.username,
                &password,
                &body.totp,
            )
            .await?,
    ))
}

pub(crate) async fn logout(ctx: Ctx, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    ctx.logout(bearer).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn whoami(ctx: Ctx) -> Result<Json<WhoAmI>, ApiError> {
    Ok(Json(ctx.whoami().await?))
}

/// Every principal.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Principals {
    /// By id.
    principals: Vec<PrincipalRecord>,
}

pub(crate) async fn list_users(ctx: Ctx) -> Result<Json<Principals>, ApiError> {
    Ok(Json(Principals {
        principals: ctx.principals().await?,
    }))
}

pub(crate) async fn add_user(
    ctx: Ctx,
    body: Result<Body<NewPrincipal>, ApiError>,
) -> Result<(StatusCode, Json<CreatedPrincipal>), ApiError> {
    let created = ctx.add_principal(parsed(body)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(crate) async fn disable_user(ctx: Ctx, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ctx.disable_principal(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn reset_mfa(
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<MfaReset>, ApiError> {
    Ok(Json(ctx.reset_mfa(&id).await?))
}

pub(crate) async fn issue_token(
    ctx: Ctx,
    body: Result<Body<NewToken>, ApiError>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let issued = ctx.issue_token(parsed(body)).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

pub(crate) async fn revoke_token(ctx: Ctx, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ctx.revoke_token(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An enrolment.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolBody {
    /// The one-time enrolment token.
    #[schemars(schema_with = "airlock_service::schema::enrolment_token")]
    token: String,
    /// A new password (or, to set up a new second factor, the current one).
    #[schemars(schema_with = "airlock_service::schema::new_password")]
    password: String,
}

pub(crate) async fn enrol(
    State(state): State<AppState>,
    origin: Origin,
    body: Result<Body<EnrolBody>, ApiError>,
) -> Result<Json<Enrolled>, ApiError> {
    let Body(body) = body?;
    let password = Secret::new(body.password.into_bytes());
    Ok(Json(
        state
            .service()
            .enrol(origin.request_id, origin.source, &body.token, &password)
            .await?,
    ))
}

pub(crate) async fn confirm_role(
    ctx: Ctx,
    Path((id, role)): Path<(String, String)>,
) -> Result<Json<RolesNow>, ApiError> {
    Ok(Json(ctx.confirm_role(&id, &role).await?))
}
