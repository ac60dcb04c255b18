//! `/v1/patients/lookup`: one patient's record, for a clinician with a purpose of use.

use airlock_service::patients::{Lookup, Searchset};
use axum::Json;

use crate::extract::Body;
use crate::{ApiError, Ctx};

pub(crate) async fn lookup(
    ctx: Ctx,
    body: Result<Body<Lookup>, ApiError>,
) -> Result<Json<Searchset>, ApiError> {
    let Body(body) = body?;
    Ok(Json(ctx.lookup(body).await?))
}
