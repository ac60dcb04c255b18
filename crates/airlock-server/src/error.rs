//! One error type for every handler. 4xx responses carry a safe message that names the field
//! or rule at fault, never a submitted value; 5xx responses carry a generic message and the
//! request id, and the details go to the server log (which never carries PHI either: store and
//! engine errors name files, fields and positions only).

use airlock_service::ServiceError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What went wrong, as the client may see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No or bad credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Credentials are fine; the policy said no.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// The deciding policies (ids only).
        reason: String,
    },
    /// A malformed request; names the field.
    #[error("invalid request: `{field}` {reason}")]
    BadRequest {
        /// The field (a name, a JSON path or a parameter).
        field: std::borrow::Cow<'static, str>,
        /// What is wrong (no value).
        reason: String,
    },
    /// Not found (or not visible to this principal: the two are not distinguished).
    #[error("not found: {what}")]
    NotFound {
        /// What was asked for, by kind.
        what: &'static str,
    },
    /// A conflict with existing state.
    #[error("conflict: {reason}")]
    Conflict {
        /// Why.
        reason: String,
    },
    /// The request was refused by the zone rules or a gate.
    #[error("refused: {reason}")]
    Refused {
        /// Why (zone names, rule names).
        reason: String,
    },
    /// Too many failures: the account is locked for a while.
    #[error("account temporarily locked")]
    Locked,
    /// Too many attempts from this source.
    #[error("too many attempts; retry in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// How long until one more attempt is allowed (sent as `Retry-After`).
        retry_after: std::time::Duration,
    },
    /// Anything else; the detail is logged, not returned.
    #[error("internal error")]
    Internal {
        /// For the log only.
        detail: String,
    },
}

impl ApiError {
    /// An internal error from any displayable cause (logged, never returned).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            detail: e.to_string(),
        }
    }

    /// A bad request naming `field`.
    pub fn bad(
        field: impl Into<std::borrow::Cow<'static, str>>,
        reason: impl Into<String>,
    ) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Locked | ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Refused { .. } => "refused",
            ApiError::Locked => "locked",
            ApiError::Throttled { .. } => "throttled",
            ApiError::Internal { .. } => "internal",
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthenticated => ApiError::Unauthenticated,
            ServiceError::Forbidden { reason } => ApiError::Forbidden { reason },
            ServiceError::Invalid { field, reason } => ApiError::BadRequest { field, reason },
            ServiceError::NotFound { what } => ApiError::NotFound { what },
            ServiceError::Conflict { reason } => ApiError::Conflict { reason },
            ServiceError::Refused { reason } => ApiError::Refused { reason },
            ServiceError::Locked => ApiError::Locked,
            ServiceError::Throttled { retry_after } => ApiError::Throttled { retry_after },
            ServiceError::Internal { detail } => ApiError::Internal { detail },
            other => ApiError::internal(other),
        }
    }
}

/// A request refused by the HTTP layer (a body that did not parse) handed to an operation that
/// decides before it looks at the body: it stays the same refusal.
impl From<ApiError> for ServiceError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadRequest { field, reason } => ServiceError::Invalid { field, reason },
            ApiError::NotFound { what } => ServiceError::NotFound { what },
            other => ServiceError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The request id is attached by the middleware (it reads the response extension).
        let message = match &self {
            ApiError::Internal { detail } => {
                tracing::error!(detail = %detail, "internal error");
                "internal error; quote the request id to an administrator".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = (
            status,
            Json(json!({"error": self.code(), "message": message})),
        )
            .into_response();
        if let ApiError::Throttled { retry_after } = &self
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
