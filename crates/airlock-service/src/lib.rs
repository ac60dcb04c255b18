//! Airlock's application layer: what the CLI and the HTTPS API both call.
//!
//! A [`Service`] holds a deployment ([`Home`]), the policy engine, the identity store, the one
//! ledger writer every caller appends through, and the loaded models. A [`Caller`] is one
//! request's authorization context: who (authenticated, with how), why (purpose of use), under
//! which request id; operations take it as a value, ask the policy through
//! [`Caller::authorize`] (which records the decision before anything is read) and return typed
//! outputs and [`ServiceError`]s. Nothing here speaks HTTP or writes to a terminal.
//!
//! Where PHI is unwrapped: a record number ([`airlock_types::Mrn`]) travels inside
//! [`airlock_types::Phi`] from the request to two places only, [`Service::pseudonym`] (the
//! ledger's keyed pseudonym) and [`Caller::lookup`] (matching a FHIR `Patient.identifier`).

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod break_glass;
mod caller;
pub mod datasets;
pub mod deid_runs;
pub mod determinations;
pub mod dp;
pub mod error;
pub mod gate;
pub mod identity;
pub mod incidents;
pub mod json;
pub mod ledger;
pub mod models;
pub mod monitoring;
pub mod patients;
pub mod plans;
pub mod resource;
pub mod schema;
pub mod synth;
mod throttle;
pub mod totp;
pub mod views;
pub mod witness;

use std::sync::Arc;

use airlock_authz::Authorizer;
use airlock_crypto::Secret;
use airlock_ledger::{Entry, PatientPseudonym};
use airlock_store::Home;
use airlock_types::{Mrn, Phi, Zone};

pub use airlock_models::Policy as ValidationPolicy;
pub use caller::{Caller, Trace, anonymous};
pub use error::ServiceError;
pub use identity::{
    Authenticated, FailingRow, Identities, IdentityError, IdentityPolicy, NPI_SYSTEM,
    PractitionerLink, Reconciliation, Via,
};
pub use ledger::{NoObserver, Observer};
pub use resource::LedgerResource;

/// Patient records a principal may open at once...
pub const LOOKUP_BURST: u32 = 20;
/// ...and per second after that (one every six seconds: rounds, not a harvest).
pub const LOOKUP_PER_SECOND: f64 = 1.0 / 6.0;

/// The application: a deployment with its policy, identities, ledger writer and models.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    writer: ledger::LedgerWriter,
    audit: std::sync::Mutex<ledger::AuditIndex>,
    home: Home,
    authz: Authorizer,
    identities: Identities,
    observer: Arc<dyn Observer>,
    pseudonym_key: Secret,
    models: models::ModelCache,
    onnx: std::sync::OnceLock<Arc<dyn airlock_registry::OnnxRuntime>>,
    /// Rollout rules that replace `airlock.toml`'s, when set.
    rollout: std::sync::OnceLock<airlock_store::RolloutConfig>,
    /// The validation policy versions are held to, when not the default one.
    validation: std::sync::OnceLock<airlock_models::Policy>,
    logins: throttle::LoginBuckets,
    /// Patient records each principal may open, beyond which they wait (minimum necessary:
    /// a clinician harvested 50 records in 7.6 s).
    lookups: throttle::Buckets<airlock_types::ActorId>,
    refusals: throttle::Refusals,
    /// The task that writes refusal summaries each minute, started on the first refusal.
    summariser: std::sync::OnceLock<()>,
    /// When this service started (RFC 3339), and whether it has failed the de-identification
    /// runs an earlier process left running.
    started_at: String,
    runs_recovered: std::sync::atomic::AtomicBool,
    /// This deployment as a witness of other deployments' ledgers.
    witness: witness::Witness,
    /// Served predictions not yet written to the prediction log, and its background writer.
    prediction_log: monitoring::LogBuffer,
    /// Where monitoring alerts are sent (the server's HTTP client), once installed.
    notifier: std::sync::OnceLock<Arc<dyn alerts::Notifier>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("home", &self.inner.home)
            .finish_non_exhaustive()
    }
}

/// The file in a home that says its identity rows were sealed ([`Identities::adopting_unsealed_rows`]).
pub const IDENTITY_ROWS_SEALED: &str = "identity-rows.sealed";

impl Service {
    /// Start the application over an open home: the identity store, and the ledger writer's
    /// threads (group commit, tile publisher). `observer` hears of commits and decisions.
    pub fn new(
        home: Home,
        authz: Authorizer,
        policy: IdentityPolicy,
        observer: Arc<dyn Observer>,
    ) -> Result<Self, ServiceError> {
        let key = home.pseudonym_key().map_err(ServiceError::internal)?;
        let identities = Identities::new(
            home.db().clone(),
            home.identity_seal_key().map_err(ServiceError::internal)?,
            &home.config().deployment.name,
            policy,
        )
        .map_err(ServiceError::internal)?
        .adopting_unsealed_rows(home.dir().join(IDENTITY_ROWS_SEALED));
        let logins = throttle::LoginBuckets::new(
            identities.policy().login_burst,
            identities.policy().login_per_second,
        );
        Ok(Service {
            inner: Arc::new(Inner {
                logins,
                lookups: throttle::Buckets::new(LOOKUP_BURST, LOOKUP_PER_SECOND),
                refusals: throttle::Refusals::default(),
                summariser: std::sync::OnceLock::new(),
                prediction_log: monitoring::LogBuffer::default(),
                notifier: std::sync::OnceLock::new(),
                started_at: chrono::Utc::now().to_rfc3339(),
                runs_recovered: std::sync::atomic::AtomicBool::new(false),
                witness: witness::Witness::new(&home).map_err(ServiceError::internal)?,
                writer: ledger::LedgerWriter::start(home.clone(), Arc::clone(&observer))?,
                audit: std::sync::Mutex::new(ledger::AuditIndex::default()),
                home,
                authz,
                identities,
                observer,
                pseudonym_key: key,
                models: models::ModelCache::default(),
                onnx: std::sync::OnceLock::new(),
                rollout: std::sync::OnceLock::new(),
                validation: std::sync::OnceLock::new(),
            }),
        })
    }

    /// This deployment as a witness (C2SP tlog-witness) of the logs `airlock.toml` trusts.
    pub fn witness(&self) -> &witness::Witness {
        &self.inner.witness
    }

    /// The same service, running ONNX model artifacts with `runtime`. The first runtime given
    /// stays: a later call is refused.
    pub fn with_onnx(
        self,
        runtime: Arc<dyn airlock_registry::OnnxRuntime>,
    ) -> Result<Self, ServiceError> {
        self.inner
            .onnx
            .set(runtime)
            .map_err(|_| ServiceError::internal("an ONNX runtime is already set"))?;
        Ok(self)
    }

    /// The same service, with these rollout rules instead of `airlock.toml`'s (the demo's
    /// canary soaks for a handful of predictions, not an hour). The first given stays.
    pub fn with_rollout(self, rollout: airlock_store::RolloutConfig) -> Result<Self, ServiceError> {
        self.inner
            .rollout
            .set(rollout)
            .map_err(|_| ServiceError::internal("rollout rules are already set"))?;
        Ok(self)
    }

    /// The same service, holding model versions to this validation policy instead of the
    /// default one. The first given stays.
    pub fn with_validation_policy(
        self,
        policy: airlock_models::Policy,
    ) -> Result<Self, ServiceError> {
        self.inner
            .validation
            .set(policy)
            .map_err(|_| ServiceError::internal("a validation policy is already set"))?;
        Ok(self)
    }

    /// The deployment (acting as the operator who started the service).
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

    /// What hears of commits and decisions.
    pub fn observer(&self) -> &dyn Observer {
        self.inner.observer.as_ref()
    }

    /// The ledger's keyed pseudonym of a patient: one of the two places a record number is
    /// unwrapped (see the crate's documentation).
    pub fn pseudonym(&self, mrn: &Phi<Mrn>) -> PatientPseudonym {
        airlock_ledger::patient_pseudonym(
            self.inner.pseudonym_key.expose_secret(),
            mrn.expose().as_str(),
        )
    }

    /// The key the canary's per-patient share and the features' hash are keyed with.
    pub(crate) fn pseudonym_key(&self) -> &Secret {
        &self.inner.pseudonym_key
    }

    /// Append entries in one durable group (consecutive indices) through the one ledger
    /// writer; returns the first index once they are durable.
    pub async fn append(&self, entries: Vec<Entry>) -> Result<u64, ServiceError> {
        self.inner.writer.append(entries).await
    }

    /// Sweep the identity rows' seals ([`Identities::reconcile`]) and, when any fails, record
    /// a `security_alert` entry naming the tables and principals (ids, never a credential), so
    /// tampering with the database is in the ledger when it happens. The server runs this
    /// periodically; `airlock users reconcile` on demand.
    pub async fn reconcile_identities(&self) -> Result<identity::Reconciliation, ServiceError> {
        let found = self.identities().reconcile().await?;
        if !found.failing.is_empty() {
            let mut by_table: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
                std::collections::BTreeMap::new();
            for f in &found.failing {
                by_table.entry(f.table).or_default().insert(&f.principal);
            }
            let detail = by_table
                .iter()
                .map(|(t, who)| {
                    format!("{t}: {}", who.iter().copied().collect::<Vec<_>>().join(","))
                })
                .collect::<Vec<_>>()
                .join("; ");
            tracing::error!(
                rows = found.failing.len(),
                "identity rows fail their seals: written without the deployment's key"
            );
            self.home()
                .audit(
                    self.home()
                        .entry(
                            airlock_ledger::EventType::SecurityAlert,
                            Zone::Clinical,
                            airlock_ledger::OutcomeKind::Failure,
                        )
                        .with_resource("identities")
                        .with_reason(format!(
                            "{} of {} identity rows fail their seals (written without the \
                             deployment's key; they grant nothing): {detail}",
                            found.failing.len(),
                            found.checked
                        )),
                )
                .await?;
        }
        Ok(found)
    }

    /// Ledger entries matching `filter`, oldest first (on a blocking thread: the index catches
    /// up with the write-ahead log first).
    pub async fn audit_search(
        &self,
        filter: airlock_ledger::Filter,
    ) -> Result<Vec<(u64, Entry)>, ServiceError> {
        let service = self.clone();
        tokio::task::spawn_blocking(move || {
            let dir = service.home().ledger_dir();
            let mut idx = service
                .inner
                .audit
                .lock()
                .map_err(|_| ServiceError::internal("audit index lock poisoned"))?;
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
        .map_err(ServiceError::internal)?
    }

    /// The registry, acting as `home`'s actor, with this service's ONNX runtime if it has one.
    pub(crate) fn registry_for(&self, home: &Home) -> airlock_registry::Registry {
        let mut r = airlock_registry::Registry::new(home);
        if let Some(rollout) = self.inner.rollout.get() {
            r = r.with_rollout(*rollout);
        }
        if let Some(policy) = self.inner.validation.get() {
            r = r.with_policy(policy.clone());
        }
        match self.inner.onnx.get() {
            Some(rt) => r.with_onnx(Arc::clone(rt)),
            None => r,
        }
    }

    /// This service's start time, the first time it is asked (the runs started before it are
    /// an earlier process's).
    pub(crate) fn claim_run_recovery(&self) -> Option<&str> {
        let first = !self
            .inner
            .runs_recovered
            .swap(true, std::sync::atomic::Ordering::AcqRel);
        first.then_some(self.inner.started_at.as_str())
    }

    /// The registry, acting as the service's operator.
    pub fn registry(&self) -> airlock_registry::Registry {
        self.registry_for(self.home())
    }
}
