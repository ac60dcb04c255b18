//! One request's authorization context, and how a request leaves a trace in the ledger.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use airlock_authz::{Action, Decision, Request as AuthzRequest, Resource};
use airlock_ledger::{Entry, EventType, OutcomeKind, PatientPseudonym, Timestamp};
use airlock_store::{Home, Scope};
use airlock_types::{ActorId, Mrn, Phi, Purpose, RequestId, Zone};

use crate::{Authenticated, LedgerResource, Service, ServiceError, Via};

/// Whether a request has written anything to the ledger, and as whom. The HTTP layer writes an
/// entry for an authenticated request that has not (one refused for a malformed body before
/// any decision, a lookup of something outside the principal's zones), so that every
/// authenticated request, allowed or denied, leaves a trace.
#[derive(Debug, Default)]
pub struct Trace {
    actor: std::sync::Mutex<Option<ActorId>>,
    recorded: AtomicBool,
}

impl Trace {
    /// The principal the request authenticated as, once it has.
    pub fn actor(&self) -> Option<ActorId> {
        self.actor.lock().ok().and_then(|a| a.clone())
    }

    /// Whether the request appended anything.
    pub fn recorded(&self) -> bool {
        self.recorded.load(Ordering::SeqCst)
    }

    /// Note who the request authenticated as (done by [`Service::caller`]; a front end calls it
    /// earlier when it may refuse the request before it has a caller, so that refusal is
    /// recorded as theirs too).
    pub fn authenticated_as(&self, actor: &ActorId) {
        if let Ok(mut a) = self.actor.lock() {
            *a = Some(actor.clone());
        }
    }

    fn mark(&self) {
        self.recorded.store(true, Ordering::SeqCst);
    }
}

/// The principal recorded for what nobody authenticated as.
pub fn anonymous() -> ActorId {
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

/// The authorization context an operation receives: who, how they authenticated, why (purpose
/// of use), and a deployment handle that acts as them, under this request's id, within the
/// zones the policy lets them see.
#[derive(Clone)]
pub struct Caller {
    service: Service,
    /// The authenticated principal and how.
    pub who: Authenticated,
    /// This request's id.
    pub request_id: RequestId,
    /// The declared purpose of use, if any.
    pub purpose: Option<Purpose>,
    /// The deployment acting as this principal, made on first use (see [`Caller::home`]).
    home: std::sync::OnceLock<Home>,
    trace: Option<Arc<Trace>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("principal", &self.who.principal.id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Count a refused authentication from `source` (`None`: not known, as for requests made
    /// in process). Refusals are written to the ledger as one entry per minute, source and
    /// reason (see [`Service::flush_refusals`]), by `anonymous`.
    pub async fn audit_unauthenticated(&self, source: Option<IpAddr>, reason: &'static str) {
        let source = source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        let closed = self
            .inner
            .refusals
            .count(chrono::Utc::now().timestamp(), source, reason);
        self.start_summariser();
        self.write_summaries(closed).await;
    }

    /// Write every refusal counted so far (each minute's are written as the next begins, and
    /// every minute by a background task; call this before stopping).
    pub async fn flush_refusals(&self) {
        let pending = self.inner.refusals.drain();
        self.write_summaries(pending).await;
    }

    fn start_summariser(&self) {
        if self.inner.summariser.get().is_some() {
            return;
        }
        if self.inner.summariser.set(()).is_ok() && tokio::runtime::Handle::try_current().is_ok() {
            // A weak handle: the task ends with the service instead of keeping it alive.
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    let Some(inner) = weak.upgrade() else { break };
                    Service { inner }.flush_refusals().await;
                }
            });
        }
    }

    async fn write_summaries(&self, summaries: Vec<crate::throttle::Summary>) {
        if summaries.is_empty() {
            return;
        }
        let entries = summaries
            .into_iter()
            .map(|(minute, source, reason, n)| {
                let from = chrono::DateTime::from_timestamp(minute, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                Entry::new(
                    Timestamp::now(),
                    anonymous(),
                    EventType::PolicyDecision,
                    Zone::Clinical,
                    RequestId::from_bytes(rand::random()),
                    OutcomeKind::Denied,
                )
                .with_resource(LedgerResource::Source(source))
                .with_reason(format!(
                    "{n} request(s) refused in the minute from {from}: {reason}"
                ))
            })
            .collect();
        if let Err(e) = self.append(entries).await {
            tracing::error!(error = %e, "ledger append failed");
        }
    }

    /// Take one password check for `source`; refused when it has used its share.
    pub(crate) async fn admit_login(&self, source: Option<IpAddr>) -> Result<(), ServiceError> {
        let Some(ip) = source else { return Ok(()) };
        match self.inner.logins.take(ip, std::time::Instant::now()) {
            Ok(()) => Ok(()),
            Err(retry_after) => {
                self.audit_unauthenticated(source, "login attempts over the per-source rate")
                    .await;
                Err(ServiceError::Throttled { retry_after })
            }
        }
    }

    /// Write an entry for an authenticated request that left no other trace.
    pub async fn audit_untraced(
        &self,
        actor: ActorId,
        request_id: RequestId,
        outcome: OutcomeKind,
        resource: LedgerResource,
        reason: String,
    ) {
        let entry = Entry::new(
            Timestamp::now(),
            actor,
            EventType::PolicyDecision,
            Zone::Clinical,
            request_id,
            outcome,
        )
        .with_resource(resource)
        .with_reason(reason);
        if let Err(e) = self.append(vec![entry]).await {
            tracing::error!(error = %e, "ledger append failed");
        }
    }

    /// The context for a request by `who`. `trace`, when given, learns who the caller is and
    /// whether the request appended anything.
    pub fn caller(
        &self,
        who: Authenticated,
        request_id: RequestId,
        purpose: Option<Purpose>,
        trace: Option<Arc<Trace>>,
    ) -> Caller {
        if let Some(t) = &trace {
            t.authenticated_as(&who.principal.id);
        }
        Caller {
            service: self.clone(),
            who,
            request_id,
            purpose,
            home: std::sync::OnceLock::new(),
            trace,
        }
    }
}

impl Caller {
    /// The deployment, acting as this principal, under this request's id, within the coarse
    /// outer bound the database enforces: the zones where the policy lets this principal list
    /// datasets or read a patient's record (for treatment). Each action is still decided on its
    /// own, with the request's real purpose, by the operation. Computed on first use (eight
    /// policy decisions), so a request that never reads the metadata store does not pay for it.
    pub fn home(&self) -> &Home {
        self.home.get_or_init(|| {
            let may = |action: Action, resource: Resource, purpose: Option<Purpose>| {
                self.service
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
            self.service.home().acting_as(
                self.who.principal.id.clone(),
                self.request_id.clone(),
                scope,
            )
        })
    }

    /// The deployment acting as this principal across every zone: for gates, which span zones
    /// by design, once the policy has allowed them.
    pub fn home_across_zones(&self) -> Home {
        self.service.home().acting_as(
            self.who.principal.id.clone(),
            self.request_id.clone(),
            Scope::all(),
        )
    }

    /// The application.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The registry, acting as this principal under this request's id.
    pub fn registry(&self) -> airlock_registry::Registry {
        self.service.registry_for(&self.home_across_zones())
    }

    /// The pseudonym of the patient a request names, once its record number is checked
    /// (1 to 128 characters, no control characters); the error names `field`, never the value.
    pub fn patient(
        &self,
        field: &'static str,
        mrn: &str,
    ) -> Result<PatientPseudonym, ServiceError> {
        Ok(self.service.pseudonym(&parse_mrn(field, mrn)?))
    }

    /// Ask the policy without recording (for filtering lists; the caller records a summary).
    pub fn decide(&self, action: Action, resource: &Resource, break_glass: bool) -> Decision {
        if let Via::Token { scopes, .. } | Via::MutualTls { scopes } = &self.who.via
            && !scopes.contains(&action)
        {
            return Decision {
                effect: airlock_authz::Effect::Deny,
                policies: vec!["credential-scope".into()],
                errors: Vec::new(),
            };
        }
        self.service.authorizer().decide(&AuthzRequest {
            principal: &self.who.principal,
            action,
            resource,
            purpose: self.purpose,
            break_glass,
            mfa: self.who.mfa,
        })
    }

    /// Decide, write the decision to the ledger (durably), and refuse when denied.
    pub async fn authorize(
        &self,
        action: Action,
        resource: &Resource,
    ) -> Result<Decision, ServiceError> {
        self.authorize_with(action, resource, false, None).await
    }

    /// [`Caller::authorize`] with break-glass and a patient pseudonym for the ledger.
    pub async fn authorize_with(
        &self,
        action: Action,
        resource: &Resource,
        break_glass: bool,
        patient: Option<PatientPseudonym>,
    ) -> Result<Decision, ServiceError> {
        let decision = self.decide(action, resource, break_glass);
        self.record(action, resource, &decision, patient).await?;
        if decision.allowed() {
            Ok(decision)
        } else {
            Err(ServiceError::Forbidden {
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
        patient: Option<PatientPseudonym>,
    ) -> Result<(), ServiceError> {
        let allowed = decision.allowed();
        self.service.observer().decision(action.as_str(), allowed);
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
            .with_resource(LedgerResource::Decision {
                action,
                target: resource.clone(),
            })
            .with_reason(decision.reason());
        if let Some(p) = patient {
            entry = entry.with_patient(p);
        }
        self.audit(entry).await
    }

    /// Append an entry for this request (durably) and note that the request left a trace.
    /// The append waits for the ledger's group commit, so concurrent requests share fsyncs.
    pub async fn audit(&self, entry: Entry) -> Result<(), ServiceError> {
        self.audit_many(vec![entry]).await.map(|_| ())
    }

    /// Append several entries for this request in one durable group (consecutive indices);
    /// returns the first index.
    pub async fn audit_many(&self, entries: Vec<Entry>) -> Result<u64, ServiceError> {
        let first = self.service.append(entries).await?;
        if let Some(t) = &self.trace {
            t.mark();
        }
        Ok(first)
    }

    /// A ledger entry by this principal, for this request. For the operator acting from the
    /// command line as a principal, the entry names the operator on the principal's behalf
    /// (`operator:<user>@<host>:<principal>`), never the principal alone.
    pub fn entry(&self, event: EventType, zone: Zone, outcome: OutcomeKind) -> Entry {
        let actor = match &self.who.via {
            crate::Via::Operator { operator } => operator.clone(),
            _ => self.who.principal.id.clone(),
        };
        let mut e = Entry::new(
            Timestamp::now(),
            actor,
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
}

/// A record number a request names in `field`, checked; the error names the field and the
/// rule, never the value.
pub(crate) fn parse_mrn(field: &'static str, mrn: &str) -> Result<Phi<Mrn>, ServiceError> {
    Mrn::parse(mrn).map_err(|_| {
        ServiceError::invalid(
            field,
            format!(
                "must be 1 to {} characters, none of them control characters",
                Mrn::MAX_CHARS
            ),
        )
    })
}
