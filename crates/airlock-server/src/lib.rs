//! The Airlock server: everything Airlock does, over an authenticated HTTPS API.
//!
//! Request path: the [`track`] middleware gives every request an id, times it and counts it;
//! the [`Ctx`] extractor authenticates the bearer (a login session with MFA, or a service's API
//! token) and hands the handler an authorization context as a value; the handler asks
//! [`Ctx::authorize`] about each action and resource, which asks Cedar
//! ([`airlock_authz::Authorizer`]) and writes the decision, with the policies that decided it,
//! to the ledger before anything is read. A request that fails authentication is written to the
//! ledger too, as a denied decision by `anonymous`.
//!
//! The metadata database sees each request through a [`Scope`]: the zones in which the policy
//! lets the principal list datasets. On PostgreSQL, row-level security enforces that scope
//! inside the database as well.

pub mod client;
pub mod error;
mod extract;
pub mod gate;
pub mod identity;
pub mod metrics;
pub mod models;
pub mod openapi;
mod routes;
pub mod tls;
pub mod totp;

use std::sync::Arc;
use std::time::Instant;

use airlock_authz::{
    Action, Authorizer, Decision, PrincipalKind, Request as AuthzRequest, Resource,
};
use airlock_crypto::Secret;
use airlock_ledger::{Entry, EventType, OutcomeKind, Timestamp};
use airlock_store::{Home, Scope};
use airlock_types::{ActorId, Purpose, RequestId, Zone};
use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;

pub use error::ApiError;
pub use identity::{Authenticated, Identities, IdentityError, IdentityPolicy, Via};
pub use metrics::{Histogram, Metrics};

/// The header that carries the purpose of use.
pub const PURPOSE_HEADER: &str = "x-purpose-of-use";
/// The response header with the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

/// The ledger's entries kept in memory for the audit routes, read incrementally from the
/// write-ahead log (each search reads only what was appended since the last one).
#[derive(Default)]
struct AuditIndex {
    tail: airlock_ledger::Tail,
    entries: Vec<(u64, Entry)>,
}

/// One request's encoded entries and where to send their first index.
type Batch = (
    Vec<airlock_ledger::Encoded>,
    tokio::sync::oneshot::Sender<Result<u64, String>>,
);

/// The server's ledger writer: one thread that drains every request waiting to append, writes
/// them in one durable group (one fsync), and answers each request with its first index. A
/// request's entries stay consecutive. Entries are validated and encoded on the request's task
/// (so one bad entry fails its own request, not the group), never again by the writer.
///
/// The tiles and bundles of each full tile (every 256 entries) are written by a second
/// thread that runs in idle time ([`run_in_idle_time`]), nudged when a group completes 16 of
/// them (and at least every second, for entries appended elsewhere), so no request
/// waits for those files; checkpoints make them durable as before. The same thread keeps
/// zero-filled space ahead of the WAL's end ([`airlock_ledger::Ledger::preallocate`]), so a
/// group commit's fsync carries no journal commit for a grown file.
struct LedgerWriter {
    tx: std::sync::mpsc::Sender<Batch>,
}

/// The tile publisher's pause after each file it writes and starts writing to disk
/// ([`airlock_ledger::Ledger::publish_paced`]).
const WRITE_BEHIND_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// How long the tile publisher waits for a nudge before publishing anyway.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Entries per nudge of the tile publisher: 16 full tiles (under a second at 5,000 entries/s;
/// their entries wait in memory meanwhile, about 1.5 MB). Creating the tile files delays the
/// commits around it a little; batched, that happens 16 times less often. In 8 interleaved
/// runs of the predict bench at 5,000 requests/s, nudging every tile left 129 short bursts of
/// slow requests (at most 5 requests over 2 ms each), nudging every 16 tiles 39.
const PUBLISH_BATCH: u64 = 16 * airlock_ledger::tiles::TILE_WIDTH;

/// Lets the calling thread run only in the time other threads leave: `SCHED_IDLE`, or the
/// weakest nice value where that is refused. Best effort: a failure only logs.
///
/// The tile publisher used to run at nice 10, and its file writes every 256 entries still
/// delayed a few requests by about 2 ms each time (the bench's latency trace showed bursts
/// 51.2 ms apart at 5,000 requests/s, one per tile); under `SCHED_IDLE` those bursts are gone.
/// A publisher starved this way falls behind only while the machine is saturated, and the
/// ledger then publishes from the committing thread ([`airlock_ledger::MAX_DEFERRED`]).
fn run_in_idle_time() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_current_thread_priority, set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(err) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
    {
        tracing::warn!(error = %err, "SCHED_IDLE refused for the tile publisher; lowering its nice value instead");
        if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
            tracing::warn!(error = %err, "lowering the tile publisher's priority");
        }
    }
}

impl LedgerWriter {
    fn start(home: Home, metrics: Arc<Metrics>) -> Result<LedgerWriter, ApiError> {
        let (tx, rx) = std::sync::mpsc::channel::<Batch>();
        let (nudge, nudged) = std::sync::mpsc::channel::<()>();
        let publisher = home.clone();
        home.ledger().defer_publishing(true);
        std::thread::Builder::new()
            .name("airlock-tiles".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                // Publishing and preallocating must not take a core from the requests.
                run_in_idle_time();
                loop {
                    // Zeros ahead of the WAL's end, so group commits overwrite existing blocks
                    // (see `Ledger::preallocate`); checked at start, then with every publish.
                    if let Err(err) = publisher.ledger().preallocate() {
                        tracing::warn!(error = %err, "preallocating ledger space");
                    }
                    let last = match nudged.recv_timeout(PUBLISH_EVERY) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => false,
                        Err(RecvTimeoutError::Disconnected) => true,
                    };
                    while nudged.try_recv().is_ok() {}
                    if last {
                        publisher.ledger().defer_publishing(false);
                    }
                    if let Err(err) = publisher.ledger().publish_paced(WRITE_BEHIND_PAUSE) {
                        // Not lost: the next checkpoint writes them.
                        tracing::warn!(error = %err, "publishing ledger tiles");
                    }
                    if last {
                        break;
                    }
                }
            })
            .map_err(ApiError::internal)?;
        // The group-commit thread runs at normal priority. Under SCHED_FIFO (tried, at the lowest
        // real-time priority: it then preempts whatever holds its core at each of its ~4,000
        // wake-ups a second), in two interleaved pairs of 20 s predict-bench runs, the open
        // loop's p50 went from 0.50/0.45 ms to 0.72/0.59 ms and its p99 from 2.35/1.81 ms to
        // 5.01/3.32 ms. Requests leading their own group commits on the worker threads, without
        // this thread, were slower too: closed loop 13,505/13,869 against 17,136/17,407
        // requests/s, open-loop p99 5.16/7.10 against 2.98/3.63 ms. Lingering 150 us for more
        // requests before each commit halved the commits (about 48,000 against 98,000 per 20 s
        // open loop) but not the slow ones (14-27 over 2 ms against 20-35), and added about
        // 0.2 ms to the p50 (2 interleaved pairs): it commits as soon as it has work.
        std::thread::Builder::new()
            .name("airlock-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batches = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batches.push(more);
                    }
                    let mut entries = Vec::new();
                    let mut replies = Vec::with_capacity(batches.len());
                    for (e, reply) in batches {
                        replies.push((e.len() as u64, reply));
                        entries.extend(e);
                    }
                    let n_ent = entries.len();
                    let began = std::time::Instant::now();
                    let result = home.ledger().append_encoded(entries);
                    if result.is_ok() {
                        metrics.commit(n_ent, began.elapsed());
                    }
                    if let Ok(first) = &result
                        && *first / PUBLISH_BATCH != (*first + n_ent as u64) / PUBLISH_BATCH
                    {
                        let _ = nudge.send(());
                    }
                    let mut at = 0u64;
                    for (n, reply) in replies {
                        let answer = match &result {
                            Ok(first) => Ok(first + at),
                            Err(err) => Err(err.to_string()),
                        };
                        at += n;
                        let _ = reply.send(answer);
                    }
                }
            })
            .map_err(ApiError::internal)?;
        Ok(LedgerWriter { tx })
    }

    async fn append(&self, entries: Vec<Entry>) -> Result<u64, ApiError> {
        let encoded = entries
            .iter()
            .map(Entry::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| ApiError::internal(format!("ledger entry: {err}")))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send((encoded, reply))
            .map_err(|_| ApiError::internal("the ledger writer stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the ledger writer stopped"))?
            .map_err(|e| ApiError::internal(format!("ledger: {e}")))
    }
}

struct StateInner {
    writer: LedgerWriter,
    audit: std::sync::Mutex<AuditIndex>,
    home: Home,
    authz: Authorizer,
    identities: Identities,
    metrics: Arc<Metrics>,
    pseudonym_key: Secret,
    models: models::ModelCache,
    onnx: std::sync::OnceLock<Arc<dyn airlock_registry::OnnxRuntime>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("home", &self.inner.home)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Build the state from an open home, a policy set and identity rules.
    pub fn new(home: Home, authz: Authorizer, policy: IdentityPolicy) -> Result<Self, ApiError> {
        let key = home.pseudonym_key().map_err(ApiError::internal)?;
        let identities = Identities::new(
            home.db().clone(),
            &key,
            &home.config().deployment.name,
            policy,
        )
        .map_err(ApiError::internal)?;
        let metrics = Arc::new(Metrics::default());
        Ok(AppState {
            inner: Arc::new(StateInner {
                writer: LedgerWriter::start(home.clone(), Arc::clone(&metrics))?,
                audit: std::sync::Mutex::new(AuditIndex::default()),
                home,
                authz,
                identities,
                metrics,
                pseudonym_key: key,
                models: models::ModelCache::default(),
                onnx: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The same state, running ONNX model artifacts with `runtime`. The first runtime given
    /// stays: a later call is refused.
    pub fn with_onnx(
        self,
        runtime: Arc<dyn airlock_registry::OnnxRuntime>,
    ) -> Result<Self, ApiError> {
        self.inner
            .onnx
            .set(runtime)
            .map_err(|_| ApiError::internal("an ONNX runtime is already set"))?;
        Ok(self)
    }

    /// The deployment (acting as the operator who started the server).
    pub fn home(&self) -> &Home {
        &self.inner.home
    }

    /// The identity store.
    pub fn identities(&self) -> &Identities {
        &self.inner.identities
    }

    /// The policy engine.
    pub fn authorizer(&self) -> &Authorizer {
        &self.inner.authz
    }

    /// Request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Ledger entries matching `filter`, oldest first (on a blocking thread: the index catches
    /// up with the write-ahead log first).
    pub async fn audit_search(
        &self,
        filter: airlock_ledger::Filter,
    ) -> Result<Vec<(u64, Entry)>, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let dir = state.home().ledger_dir();
            let mut idx = state
                .inner
                .audit
                .lock()
                .map_err(|_| ApiError::internal("audit index lock poisoned"))?;
            let mut tail = idx.tail;
            let new = airlock_ledger::read_new_entries(&dir, &mut tail)?;
            idx.entries.extend(new);
            idx.tail = tail;
            Ok(idx
                .entries
                .iter()
                .filter(|(_, e)| filter.matches(e))
                .cloned()
                .collect())
        })
        .await
        .map_err(ApiError::internal)?
    }

    pub(crate) fn pseudonym_key(&self) -> &Secret {
        &self.inner.pseudonym_key
    }
}

/// The request's id, set by [`track`].
#[derive(Debug, Clone)]
pub struct ReqId(pub RequestId);

/// Whether an authenticated request has written anything to the ledger. [`track`] writes an
/// entry for one that has not (a request refused for a malformed body before any decision, a
/// lookup of something outside the principal's zones), so that every authenticated request,
/// allowed or denied, leaves a trace.
#[derive(Debug, Default)]
pub(crate) struct AuditMark {
    actor: std::sync::Mutex<Option<ActorId>>,
    recorded: std::sync::atomic::AtomicBool,
}

fn new_request_id() -> RequestId {
    RequestId::from_bytes(rand::random())
}

/// Every request: an id, a latency sample, a count; 5xx bodies replaced by a generic one that
/// carries the id.
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
    let mark = Arc::new(AuditMark::default());
    req.extensions_mut().insert(Arc::clone(&mark));
    let mut resp = next.run(req).await;
    let status = resp.status();
    let actor = mark.actor.lock().ok().and_then(|a| a.clone());
    if let Some(actor) = actor
        && !mark.recorded.load(std::sync::atomic::Ordering::SeqCst)
    {
        let outcome = if status.is_success() {
            OutcomeKind::Success
        } else if status.is_server_error() {
            OutcomeKind::Failure
        } else {
            OutcomeKind::Denied
        };
        let entry = Entry::new(
            Timestamp::now(),
            actor,
            EventType::PolicyDecision,
            Zone::Clinical,
            id.clone(),
            outcome,
        )
        .with_resource(format!("{method} {route}"))
        .with_reason(format!(
            "refused before a policy decision: HTTP {}",
            status.as_u16()
        ));
        if let Err(e) = append(&state, entry).await {
            tracing::error!(error = %e, "ledger append failed");
        }
    }
    if status.is_server_error() {
        let body = serde_json::json!({
            "error": "internal",
            "message": "internal error; quote the request id to an administrator",
            "request_id": id.as_str(),
        });
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

/// The authorization context a handler receives: who, how they authenticated, why (purpose of
/// use), and a deployment handle that acts as them, under this request's id, within the zones
/// the policy lets them see.
#[derive(Clone)]
pub struct Ctx {
    state: AppState,
    /// The authenticated principal and how.
    pub who: Authenticated,
    /// This request's id.
    pub request_id: RequestId,
    /// The declared purpose of use, if any.
    pub purpose: Option<Purpose>,
    /// The deployment acting as this principal, made on first use (see [`Ctx::home`]).
    home: std::sync::OnceLock<Home>,
    mark: Option<Arc<AuditMark>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("principal", &self.who.principal.id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
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

/// Append to the ledger through the server's writer; returns once the entry is durable.
pub(crate) async fn append(state: &AppState, entry: Entry) -> Result<u64, ApiError> {
    state.inner.writer.append(vec![entry]).await
}

/// Write an authentication failure to the ledger.
pub(crate) async fn audit_unauthenticated(state: &AppState, request_id: RequestId, reason: &str) {
    let entry = Entry::new(
        Timestamp::now(),
        anonymous(),
        EventType::PolicyDecision,
        Zone::Clinical,
        request_id,
        OutcomeKind::Denied,
    )
    .with_reason(reason.to_string());
    if let Err(e) = append(state, entry).await {
        tracing::error!(error = %e, "ledger append failed");
    }
}

pub(crate) fn anonymous() -> ActorId {
    // A constant that satisfies the id rules.
    ActorId::new("anonymous").unwrap_or_else(|_| unreachable_actor())
}

#[expect(
    clippy::panic,
    reason = "INVARIANT: the literal `anonymous` is a valid actor id"
)]
fn unreachable_actor() -> ActorId {
    panic!("`anonymous` is a valid actor id")
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let request_id = request_id_of(parts);
        let mark = parts.extensions.get::<Arc<AuditMark>>().cloned();
        let found = match (bearer(parts), parts.extensions.get::<tls::PeerCert>()) {
            (Some(token), _) => {
                state
                    .identities()
                    .authenticate(token, chrono::Utc::now())
                    .await
            }
            (None, Some(cert)) => state.identities().authenticate_cert(&cert.0).await,
            (None, None) => {
                audit_unauthenticated(state, request_id, "unauthenticated: no credentials").await;
                return Err(ApiError::Unauthenticated);
            }
        };
        let who = match found {
            Ok(Some(w)) => w,
            Ok(None) => {
                audit_unauthenticated(
                    state,
                    request_id,
                    "unauthenticated: unknown, expired or revoked credentials",
                )
                .await;
                return Err(ApiError::Unauthenticated);
            }
            Err(e) => return Err(ApiError::internal(e)),
        };
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
        if let Some(m) = &mark
            && let Ok(mut a) = m.actor.lock()
        {
            *a = Some(who.principal.id.clone());
        }
        Ok(Ctx {
            state: state.clone(),
            who,
            request_id,
            purpose,
            home: std::sync::OnceLock::new(),
            mark,
        })
    }
}

fn describe(resource: &Resource) -> String {
    match resource {
        Resource::Zone(z) => format!("zone:{z}"),
        Resource::Dataset { name, .. } => format!("dataset:{name}"),
        Resource::Model { name, .. } => format!("model:{name}"),
        Resource::Audit => "audit".into(),
        Resource::Identities => "identities".into(),
        Resource::Keys => "keys".into(),
        Resource::Patient { zone } => format!("patient-record:{zone}"),
    }
}

impl Ctx {
    /// The deployment, acting as this principal, under this request's id, within the coarse
    /// outer bound the database enforces: the zones where the policy lets this principal list
    /// datasets or read a patient's record (for treatment). Each action is still decided on its
    /// own, with the request's real purpose, by the handler. Computed on first use (eight policy
    /// decisions), so a request that never reads the metadata store does not pay for it.
    pub fn home(&self) -> &Home {
        self.home.get_or_init(|| {
            let may = |action: Action, resource: Resource, purpose: Option<Purpose>| {
                self.state
                    .authorizer()
                    .decide(&AuthzRequest {
                        principal: &self.who.principal,
                        action,
                        resource: &resource,
                        purpose,
                        break_glass: false,
                        mfa: self.who.mfa,
                    })
                    .allowed()
            };
            let scope = Scope::zones(Zone::ALL.into_iter().filter(|z| {
                may(Action::ListDatasets, Resource::Zone(*z), self.purpose)
                    || may(
                        Action::ReadPatientRecord,
                        Resource::Patient { zone: *z },
                        Some(Purpose::Treatment),
                    )
            }));
            self.state.home().acting_as(
                self.who.principal.id.clone(),
                self.request_id.clone(),
                scope,
            )
        })
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Ask the policy without recording (for filtering lists; the caller records a summary).
    pub fn decide(&self, action: Action, resource: &Resource, break_glass: bool) -> Decision {
        if let Via::Token { scopes, .. } = &self.who.via
            && !scopes.contains(&action)
        {
            return Decision {
                effect: airlock_authz::Effect::Deny,
                policies: vec!["token-scope".into()],
                errors: Vec::new(),
            };
        }
        self.state.authorizer().decide(&AuthzRequest {
            principal: &self.who.principal,
            action,
            resource,
            purpose: self.purpose,
            break_glass,
            mfa: self.who.mfa,
        })
    }

    /// Decide, write the decision to the ledger (durably), and refuse with 403 when denied.
    pub async fn authorize(
        &self,
        action: Action,
        resource: &Resource,
    ) -> Result<Decision, ApiError> {
        self.authorize_with(action, resource, false, None).await
    }

    /// [`Ctx::authorize`] with break-glass and a patient pseudonym for the ledger.
    pub async fn authorize_with(
        &self,
        action: Action,
        resource: &Resource,
        break_glass: bool,
        patient: Option<airlock_ledger::PatientPseudonym>,
    ) -> Result<Decision, ApiError> {
        let decision = self.decide(action, resource, break_glass);
        self.record(action, resource, &decision, patient).await?;
        if decision.allowed() {
            Ok(decision)
        } else {
            Err(ApiError::Forbidden {
                reason: decision.reason(),
            })
        }
    }

    /// Write one decision to the ledger.
    pub async fn record(
        &self,
        action: Action,
        resource: &Resource,
        decision: &Decision,
        patient: Option<airlock_ledger::PatientPseudonym>,
    ) -> Result<(), ApiError> {
        let allowed = decision.allowed();
        self.state
            .metrics()
            .decision(action.as_str(), if allowed { "allow" } else { "deny" });
        let mut entry = self
            .entry(
                EventType::PolicyDecision,
                resource.zone().unwrap_or(Zone::Clinical),
                if allowed {
                    OutcomeKind::Allowed
                } else {
                    OutcomeKind::Denied
                },
            )
            .with_resource(format!("{}:{}", action.as_str(), describe(resource)))
            .with_reason(decision.reason());
        if let Some(p) = patient {
            entry = entry.with_patient(p);
        }
        self.audit(entry).await
    }

    /// Append an entry for this request (durably) and note that the request left a trace.
    /// The append waits for the ledger's group commit on a blocking thread, so concurrent
    /// requests share fsyncs and the async workers keep serving.
    pub async fn audit(&self, entry: Entry) -> Result<(), ApiError> {
        append(&self.state, entry).await?;
        if let Some(m) = &self.mark {
            m.recorded.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }

    /// Append several entries for this request in one durable group (consecutive indices);
    /// returns the first index.
    pub async fn audit_many(&self, entries: Vec<Entry>) -> Result<u64, ApiError> {
        let first = self.state.inner.writer.append(entries).await?;
        if let Some(m) = &self.mark {
            m.recorded.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(first)
    }

    /// A ledger entry by this principal, for this request.
    pub fn entry(&self, event: EventType, zone: Zone, outcome: OutcomeKind) -> Entry {
        let mut e = Entry::new(
            Timestamp::now(),
            self.who.principal.id.clone(),
            event,
            zone,
            self.request_id.clone(),
            outcome,
        );
        if let Some(p) = self.purpose {
            e = e.with_purpose(p);
        }
        e
    }

    /// Whether the principal is a person.
    pub fn is_user(&self) -> bool {
        self.who.principal.kind == PrincipalKind::User
    }
}

/// The whole API as a router (socket-free: tests drive it with `oneshot`).
pub fn app(state: AppState) -> Router {
    routes::router(state.clone())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    /// The scheduling policy of the calling thread, from `/proc/thread-self/stat` (field 41).
    fn policy_of_this_thread() -> Option<u32> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let rest = stat.rsplit_once(')')?.1;
        rest.split_whitespace().nth(41 - 3)?.parse().ok()
    }

    #[test]
    fn the_tile_publisher_runs_in_idle_time() {
        const SCHED_IDLE: u32 = 5;
        let policy = std::thread::spawn(|| {
            let before = policy_of_this_thread();
            super::run_in_idle_time();
            (before, policy_of_this_thread())
        })
        .join()
        .unwrap_or_default();
        match policy {
            (Some(before), Some(after)) => {
                assert_ne!(before, SCHED_IDLE, "a new thread starts under SCHED_OTHER");
                assert_eq!(after, SCHED_IDLE);
            }
            _ => eprintln!("skipping: no /proc/thread-self/stat on this system"),
        }
    }
}
