//! One error type for the application layer. Every message is safe to show the caller: it names
//! the field, rule or kind of thing at fault, never a submitted value, a record or a secret;
//! [`ServiceError::Internal`] keeps its detail for the operator's log only.

use std::borrow::Cow;

/// What went wrong, as a caller (HTTP client or terminal user) may see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No or bad credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// The right password with a TOTP code used already (a code works once).
    #[error("that TOTP code was used already; a code works once: wait for the next one")]
    CodeReused,
    /// Credentials are fine; the policy said no.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// The deciding policies (ids only).
        reason: String,
    },
    /// A malformed request; names the field.
    #[error("invalid request: `{field}` {reason}")]
    Invalid {
        /// The field (a name, a JSON path or a parameter).
        field: Cow<'static, str>,
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
    /// Too many attempts from this source; try again after the wait.
    #[error("too many attempts; retry in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// How long until one more attempt is allowed.
        retry_after: std::time::Duration,
    },
    /// Anything else; the detail is for the operator's log, never for the caller.
    #[error("internal error")]
    Internal {
        /// For the log only (no PHI: store and engine errors name files, fields and positions).
        detail: String,
    },
}

impl ServiceError {
    /// An internal error from any displayable cause (logged, never returned).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ServiceError::Internal {
            detail: e.to_string(),
        }
    }

    /// A bad request naming `field`.
    pub fn invalid(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<airlock_store::StoreError> for ServiceError {
    fn from(e: airlock_store::StoreError) -> Self {
        use airlock_store::StoreError as S;
        match e {
            S::NotFound { .. } => ServiceError::NotFound { what: "dataset" },
            S::Zone(z) => ServiceError::Refused {
                reason: z.to_string(),
            },
            S::DatasetMismatch { .. } => ServiceError::Conflict {
                reason: e.to_string(),
            },
            S::Id(i) => ServiceError::invalid("id", i.to_string()),
            other => ServiceError::internal(other),
        }
    }
}

impl From<airlock_registry::RegistryError> for ServiceError {
    fn from(e: airlock_registry::RegistryError) -> Self {
        use airlock_registry::RegistryError as R;
        match e {
            R::NotFound { .. } => ServiceError::NotFound { what: "model" },
            R::PlanNotFound { .. } => ServiceError::NotFound { what: "plan" },
            R::Plan { .. } => ServiceError::Refused {
                reason: e.to_string(),
            },
            R::Name { .. } | R::Ambiguous { .. } => ServiceError::invalid("name", e.to_string()),
            // An unknown field's name is the client's own text: never echoed.
            R::Model(airlock_models::ModelsError::UnknownField { .. }) => ServiceError::invalid(
                "features",
                "names a field that is not a feature of this model",
            ),
            R::Model(m) => ServiceError::invalid("features", m.to_string()),
            R::Duplicate { .. }
            | R::Transition { .. }
            | R::Approval { .. }
            | R::OutcomeRecorded { .. } => ServiceError::Conflict {
                reason: e.to_string(),
            },
            R::Tampered { .. } | R::Zone(_) | R::Unsupported { .. } | R::Rollout { .. } => {
                ServiceError::Refused {
                    reason: e.to_string(),
                }
            }
            R::Store(s) => ServiceError::from(s),
            other => ServiceError::internal(other),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        ServiceError::internal(format!("metadata store: {e}"))
    }
}

impl From<airlock_ledger::LedgerError> for ServiceError {
    fn from(e: airlock_ledger::LedgerError) -> Self {
        ServiceError::internal(format!("ledger: {e}"))
    }
}

impl From<crate::identity::IdentityError> for ServiceError {
    fn from(e: crate::identity::IdentityError) -> Self {
        use crate::identity::IdentityError as I;
        match e {
            I::NotFound { .. } => ServiceError::NotFound { what: "principal" },
            I::Exists { id } => ServiceError::Conflict {
                reason: format!("principal `{id}` already exists"),
            },
            I::WeakPassword { .. } | I::GuessablePassword { .. } | I::Invalid { .. } => {
                ServiceError::invalid("body", e.to_string())
            }
            I::WrongKind { reason } => ServiceError::Conflict { reason },
            I::CodeReused => ServiceError::CodeReused,
            other => ServiceError::internal(other),
        }
    }
}
