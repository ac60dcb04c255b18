//! The application's errors as HTTP answers. [`ApiError`] wraps the service's one error type
//! ([`ServiceError`], whose messages are safe to show: they name the field or rule at fault,
//! never a submitted value) and gives each kind its status and code; 5xx responses carry a
//! generic message and the request id, and the details go to the server log (which never
//! carries PHI either: store and engine errors name files, fields and positions only).

use airlock_service::ServiceError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What went wrong, as the client may see it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(pub ServiceError);

impl ApiError {
    /// No or bad credentials.
    pub const UNAUTHENTICATED: ApiError = ApiError(ServiceError::Unauthenticated);

    /// An internal error from any displayable cause (logged, never returned).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError(ServiceError::internal(e))
    }

    /// A bad request naming `field`.
    pub fn bad(
        field: impl Into<std::borrow::Cow<'static, str>>,
        reason: impl Into<String>,
    ) -> Self {
        ApiError(ServiceError::invalid(field, reason))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            ServiceError::Unauthenticated | ServiceError::CodeReused => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ServiceError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ServiceError::NotFound { .. } => StatusCode::NOT_FOUND,
            ServiceError::Conflict { .. } => StatusCode::CONFLICT,
            ServiceError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match &self.0 {
            ServiceError::Unauthenticated | ServiceError::CodeReused => "unauthenticated",
            ServiceError::Forbidden { .. } => "forbidden",
            ServiceError::Invalid { .. } => "bad_request",
            ServiceError::NotFound { .. } => "not_found",
            ServiceError::Conflict { .. } => "conflict",
            ServiceError::Refused { .. } => "refused",
            ServiceError::Throttled { .. } => "throttled",
            _ => "internal",
        }
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// A stable code (`invalid`, `denied`, `not_found`...).
    pub error: &'static str,
    /// What went wrong, naming the field or rule; never a submitted value.
    pub message: String,
    /// The request's id, on server errors (quote it to an administrator; also in the
    /// `x-request-id` header of every answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

/// A request refused by the HTTP layer (a body that did not parse) handed to an operation that
/// decides before it looks at the body: it stays the same refusal.
impl From<ApiError> for ServiceError {
    fn from(e: ApiError) -> Self {
        e.0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The request id is attached by the middleware (it reads the response extension).
        let message = if status.is_server_error() {
            let detail = match &self.0 {
                ServiceError::Internal { detail } => detail.clone(),
                other => other.to_string(),
            };
            tracing::error!(detail = %detail, "internal error");
            "internal error; quote the request id to an administrator".to_string()
        } else {
            self.0.to_string()
        };
        let mut resp = (
            status,
            Json(ErrorBody {
                error: self.code(),
                message,
                request_id: None,
            }),
        )
            .into_response();
        if let ServiceError::Throttled { retry_after } = &self.0
            && let Ok(v) =
                axum::http::HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"airlock\""),
            );
        }
        resp
    }
}
