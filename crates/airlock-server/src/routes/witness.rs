//! `/v1/witness`: this deployment cosigns other deployments' checkpoints (C2SP tlog-witness).
//! No credential: the spec's only authentication is the checkpoint's signature by a log the
//! witness trusts (`[witness] logs` in `airlock.toml`).

use airlock_service::witness::WitnessError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::typed;
use crate::AppState;
use crate::error::ErrorBody;

/// The spec's media type of a 409's body: the size the witness last cosigned.
pub(crate) const TLOG_SIZE: &str = "text/x.tlog.size";
/// A signed note, a checkpoint request or cosignature lines.
pub(crate) const NOTE: &str = "text/plain; charset=utf-8";

/// An `add-checkpoint` request's shape (C2SP tlog-witness): `old SIZE`, up to 63 consistency
/// proof hashes, a blank line, then a signed checkpoint (origin without spaces or `+`, size,
/// root hash, a blank line, signature lines). Canonical base64 throughout; whether the log is
/// one this witness trusts and the signature and proof hold, only the witness can tell.
pub(crate) const ADD_CHECKPOINT: &str = concat!(
    "^old (0|[1-9][0-9]{0,17})\n",
    "([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\n){0,63}\n",
    "[!-*,-~]+\n(0|[1-9][0-9]{0,17})\n[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\n\n",
    "(\\u2014 [!-*,-~]+ ([A-Za-z0-9+/]{4}){16,30}([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\n)+$",
);

pub(crate) async fn add_checkpoint(State(state): State<AppState>, body: Bytes) -> Response {
    match state.service().witness().add_checkpoint(&body).await {
        Ok(cosignatures) => typed(NOTE, cosignatures),
        Err(e) => refusal(&e),
    }
}

pub(crate) async fn key(State(state): State<AppState>) -> Response {
    typed(NOTE, format!("{}\n", state.service().witness().verifier()))
}

fn refusal(e: &WitnessError) -> Response {
    if let Some(size) = e.conflict_size() {
        return (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, TLOG_SIZE)],
            format!("{size}\n"),
        )
            .into_response();
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        _ => "internal",
    };
    if let WitnessError::Storage { detail } = e {
        tracing::error!(detail = %detail, "witness state unavailable");
    }
    // A 5xx body is replaced with the generic one by the request middleware.
    let message = e.to_string();
    (
        status,
        axum::Json(ErrorBody {
            error,
            message,
            request_id: None,
        }),
    )
        .into_response()
}
