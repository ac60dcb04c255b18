//! One error type for every handler. 4xx responses carry a safe message that names the field
//! or rule at fault, never a submitted value; 5xx responses carry a generic message and the
//! request id, and the details go to the server log (which never carries PHI either: store and
//! engine errors name files, fields and positions only).

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
            ApiError::Locked => StatusCode::TOO_MANY_REQUESTS,
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
            ApiError::Internal { .. } => "internal",
        }
    }
}

impl From<airlock_store::StoreError> for ApiError {
    fn from(e: airlock_store::StoreError) -> Self {
        use airlock_store::StoreError as S;
        match e {
            S::NotFound { .. } => ApiError::NotFound { what: "dataset" },
            S::Zone(z) => ApiError::Refused {
                reason: z.to_string(),
            },
            S::DatasetMismatch { .. } => ApiError::Conflict {
                reason: e.to_string(),
            },
            S::Id(i) => ApiError::bad("id", i.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<airlock_registry::RegistryError> for ApiError {
    fn from(e: airlock_registry::RegistryError) -> Self {
        use airlock_registry::RegistryError as R;
        match e {
            R::NotFound { .. } => ApiError::NotFound { what: "model" },
            R::Name { .. } | R::Ambiguous { .. } => ApiError::bad("name", e.to_string()),
            R::Model(m) => ApiError::bad("features", m.to_string()),
            R::Duplicate { .. } | R::Transition { .. } | R::Approval { .. } => ApiError::Conflict {
                reason: e.to_string(),
            },
            R::Tampered { .. } | R::Zone(_) | R::Unsupported { .. } => ApiError::Refused {
                reason: e.to_string(),
            },
            R::Store(s) => ApiError::from(s),
            other => ApiError::internal(other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(format!("metadata store: {e}"))
    }
}

impl From<airlock_ledger::LedgerError> for ApiError {
    fn from(e: airlock_ledger::LedgerError) -> Self {
        ApiError::internal(format!("ledger: {e}"))
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
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"airlock\""),
            );
        }
        resp
    }
}
