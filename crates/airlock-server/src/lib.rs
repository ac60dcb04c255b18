//! The Airlock server: the application ([`airlock_service`]) over an authenticated HTTPS API.
//!
//! This crate is HTTP only. Request path: the [`track`] middleware gives every request an id,
//! times it and counts it; the [`Ctx`] extractor authenticates the bearer (a login session
//! with MFA, a service's API token, or a client certificate) and hands the handler the
//! service's authorization context ([`airlock_service::Caller`]) as a value; each handler calls
//! one service operation, which decides with Cedar and writes the decision to the ledger
//! before anything is read, and maps its typed answer or error to HTTP. A request that fails
//! authentication is written to the ledger too, as a denied decision by `anonymous`.
//!
//! The metadata database sees each request through a scope: the zones in which the policy
//! lets the principal list datasets. On PostgreSQL, row-level security enforces that scope
//! inside the database as well.

pub mod client;
pub mod error;
mod extract;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod tls;
pub mod webhook;

use std::sync::Arc;
use std::time::Instant;

use airlock_authz::Authorizer;
use airlock_ledger::OutcomeKind;
use airlock_service::{Caller, LedgerResource, Service, Trace};
use airlock_store::Home;
use airlock_types::{Purpose, RequestId};
use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;

pub use airlock_service::{Authenticated, Identities, IdentityError, IdentityPolicy, Via};
pub use error::ApiError;
pub use metrics::{Histogram, Metrics};

/// The header that carries the purpose of use.
pub const PURPOSE_HEADER: &str = "x-purpose-of-use";
/// The response header with the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Everything the handlers share: the application and the HTTP metrics.
#[derive(Clone)]
pub struct AppState {
    service: Service,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Start the application over an open home, a policy set and identity rules.
    pub fn new(home: Home, authz: Authorizer, policy: IdentityPolicy) -> Result<Self, ApiError> {
        let metrics = Arc::new(Metrics::default());
        let observer: Arc<dyn airlock_service::Observer> = metrics.clone();
        let service = Service::new(home, authz, policy, observer)?;
        service.set_notifier(Arc::new(webhook::HttpNotifier));
        service.start_retention();
        Ok(AppState { service, metrics })
    }

    /// The same state, running ONNX model artifacts with `runtime`. The first runtime given
    /// stays: a later call is refused.
    pub fn with_onnx(
        self,
        runtime: Arc<dyn airlock_registry::OnnxRuntime>,
    ) -> Result<Self, ApiError> {
        Ok(AppState {
            service: self.service.with_onnx(runtime)?,
            metrics: self.metrics,
        })
    }

    /// The same state, with these rollout rules instead of `airlock.toml`'s.
    pub fn with_rollout(self, rollout: airlock_store::RolloutConfig) -> Result<Self, ApiError> {
        Ok(AppState {
            service: self.service.with_rollout(rollout)?,
            metrics: self.metrics,
        })
    }

    /// The same state, holding model versions to this validation policy.
    pub fn with_validation_policy(
        self,
        policy: airlock_service::ValidationPolicy,
    ) -> Result<Self, ApiError> {
        Ok(AppState {
            service: self.service.with_validation_policy(policy)?,
            metrics: self.metrics,
        })
    }

    /// The application.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The deployment (acting as the operator who started the server).
    pub fn home(&self) -> &Home {
        self.service.home()
    }

    /// The identity store.
    pub fn identities(&self) -> &Identities {
        self.service.identities()
    }

    /// The policy engine.
    pub fn authorizer(&self) -> &Authorizer {
        self.service.authorizer()
    }

    /// Request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The current routing table of deployed models (see [`Service::deployment`]).
    pub async fn deployment(
        &self,
        force: bool,
    ) -> Result<Arc<airlock_registry::Deployment>, ApiError> {
        Ok(self.service.deployment(force).await?)
    }
}

/// The request's id, set by [`track`].
#[derive(Debug, Clone)]
pub struct ReqId(pub RequestId);

fn new_request_id() -> RequestId {
    RequestId::from_bytes(rand::random())
}

/// Every request: an id, a latency sample, a count, and a ledger entry for an authenticated
/// request that left none; 5xx bodies replaced by a generic one that carries the id.
pub async fn track(
    State(state): State<AppState>,
    mut req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let start = Instant::now();
    let id = new_request_id();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    req.extensions_mut().insert(ReqId(id.clone()));
    let trace = Arc::new(Trace::default());
    req.extensions_mut().insert(Arc::clone(&trace));
    let mut resp = next.run(req).await;
    let status = resp.status();
    if let Some(actor) = trace.actor()
        && !trace.recorded()
    {
        let outcome = if status.is_success() {
            OutcomeKind::Success
        } else if status.is_server_error() {
            OutcomeKind::Failure
        } else {
            OutcomeKind::Denied
        };
        state
            .service
            .audit_untraced(
                actor,
                id.clone(),
                outcome,
                LedgerResource::Route {
                    method: method.clone(),
                    route: route.clone(),
                },
                format!("refused before a policy decision: HTTP {}", status.as_u16()),
            )
            .await;
    }
    if status.is_server_error() {
        let body = error::ErrorBody {
            error: "internal",
            message: "internal error; quote the request id to an administrator".into(),
            request_id: Some(id.to_string()),
        };
        let mut generic = axum::response::IntoResponse::into_response((status, axum::Json(body)));
        std::mem::swap(&mut resp, &mut generic);
    }
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    state
        .metrics()
        .observe(&route, &method, status.as_u16(), start.elapsed());
    resp
}

/// What the server knows of a request before anyone has authenticated: its id and the
/// client's address (`None` in process, as in the router tests).
#[derive(Debug, Clone)]
pub struct Origin {
    /// This request's id.
    pub request_id: RequestId,
    /// The client's address.
    pub source: Option<std::net::IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin {
            request_id: request_id_of(parts),
            source: parts.extensions.get::<tls::PeerAddr>().map(|p| p.0.ip()),
        })
    }
}

/// The authorization context a handler receives: the service's [`Caller`] for the principal
/// this request authenticated as.
#[derive(Debug, Clone)]
pub struct Ctx(pub Caller);

impl std::ops::Deref for Ctx {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn request_id_of(parts: &Parts) -> RequestId {
    parts
        .extensions
        .get::<ReqId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(new_request_id)
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request_id = request_id_of(parts);
        let source = parts.extensions.get::<tls::PeerAddr>().map(|p| p.0.ip());
        let service = state.service();
        let found = match (bearer(parts), parts.extensions.get::<tls::PeerCert>()) {
            (Some(token), None) => {
                service
                    .identities()
                    .authenticate(token, chrono::Utc::now())
                    .await
            }
            (Some(token), Some(cert)) => {
                service
                    .identities()
                    .authenticate_with_cert(token, &cert.0, chrono::Utc::now())
                    .await
            }
            (None, Some(cert)) => service.identities().authenticate_cert(&cert.0).await,
            (None, None) => {
                service
                    .audit_unauthenticated(source, "unauthenticated: no credentials")
                    .await;
                return Err(ApiError::UNAUTHENTICATED);
            }
        };
        let who = match found {
            Ok(Some(w)) => w,
            Ok(None) => {
                service
                    .audit_unauthenticated(
                        source,
                        "unauthenticated: unknown, expired or revoked credentials",
                    )
                    .await;
                return Err(ApiError::UNAUTHENTICATED);
            }
            Err(e) => return Err(ApiError::internal(e)),
        };
        let trace = parts.extensions.get::<Arc<Trace>>().cloned();
        // Known from here on: a refusal of the purpose below is recorded as theirs.
        if let Some(t) = &trace {
            t.authenticated_as(&who.principal.id);
        }
        let purpose = match parts.headers.get(PURPOSE_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse::<Purpose>().ok())
                    .ok_or_else(|| {
                        ApiError::bad(
                            "X-Purpose-Of-Use",
                            "must be one of treatment, payment, operations, research, public-health, emergency",
                        )
                    })?,
            ),
        };
        Ok(Ctx(service.caller(who, request_id, purpose, trace)))
    }
}

/// Prometheus metrics alone, for a listener of their own (`airlock serve --metrics-listen`,
/// plain HTTP, normally on loopback for a local scraper): the API does not serve them.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(routes::metrics))
        .with_state(state)
}

/// Serve [`metrics_app`] over plain HTTP on `listener` until the process ends.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_app(state)).await
}

/// The whole API as a router (socket-free: tests drive it with `oneshot`).
pub fn app(state: AppState) -> Router {
    routes::router()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}
