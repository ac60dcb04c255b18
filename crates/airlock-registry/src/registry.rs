//! The registry proper: register, verify, validate, approve, deploy, promote, roll back, retire;
//! every step a ledger entry and a row in the model's history.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_ledger::{Entry, EventType, OutcomeKind};
use airlock_models::TrainedModel;
use airlock_store::{Backend, Home, RolloutConfig, Scope};
use airlock_types::{ActorId, Classification, ContentHash, Gate, Zone, zone};
use serde::Serialize;
use sqlx::Row;

use crate::error::RegistryError;
use crate::package::{
    ArtifactKind, ModelCard, ModelName, OnnxRuntime, OnnxScorer, Package, Scorer,
};
use crate::serving::{Deployment, LoadedModel, Routes};
use crate::state::State;

/// Orders the lifecycle steps of this process (see [`Registry::lifecycle`]).
static LIFECYCLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The PostgreSQL advisory lock key of model lifecycle steps ("AIRLOCKM" as a big-endian
/// integer).
const LIFECYCLE_LOCK_KEY: i64 = 0x4149_524c_4f43_4b4d;

/// Held while a lifecycle step runs: the process-wide mutex and, on PostgreSQL, the open
/// transaction holding the advisory lock (released when it ends, with the guard).
struct LifecycleGuard {
    _shared: Option<airlock_store::Tx>,
    _local: tokio::sync::MutexGuard<'static, ()>,
}

/// The roles whose approvals move a validated version to approved, unless the deployment names
/// others: a clinical reviewer and the privacy officer, two different people, neither of them
/// the person who trained the model.
pub const DEFAULT_APPROVER_ROLES: [&str; 2] = ["clinical-reviewer", "privacy-officer"];

/// Shortest version prefix accepted where a version is named.
pub const MIN_PREFIX: usize = 6;

/// A registered model version, as stored.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelVersion {
    /// The model.
    pub name: ModelName,
    /// SHA-256 of the package: the version's id.
    pub hash: ContentHash,
    /// Where the artifact lives now: where it was registered, or clinical once deployed.
    pub zone: Zone,
    /// What it was trained on (never identified).
    pub classification: Classification,
    /// What the artifact is.
    pub kind: ArtifactKind,
    /// Lifecycle state.
    pub state: State,
    /// Who registered it.
    pub registered_by: ActorId,
    /// When (RFC 3339).
    pub registered_at: String,
    /// The signed model card.
    pub card: ModelCard,
    /// For a canary: share of patients in basis points (1 to 10,000).
    pub canary_share_bp: u16,
    /// Ed25519 signature over name, hash and card digest (hex).
    pub ed25519: String,
    /// The card's stored JSON text, as signed.
    #[serde(skip)]
    pub card_json: String,
}

impl ModelVersion {
    /// `name@shorthash`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.hash.short())
    }
}

/// One step in a model's history.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Transition {
    /// Order within the deployment's registry.
    pub seq: i64,
    /// The model.
    pub name: String,
    /// The version.
    pub hash: ContentHash,
    /// From.
    pub from: State,
    /// To.
    pub to: State,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
    /// The ledger entry that records it.
    pub ledger_index: u64,
}

/// One approval of a version.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Approval {
    /// The role the approver approved as.
    pub role: String,
    /// The approver.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: String,
    /// Ledger entry.
    pub ledger_index: u64,
}

/// What an approval did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApprovalOutcome {
    /// The approval recorded.
    pub approval: Approval,
    /// Roles still missing.
    pub missing_roles: Vec<String>,
    /// The step to `approved`, when this approval completed the quorum.
    pub transition: Option<Transition>,
}

/// The model registry of one deployment, acting as the handle's actor.
#[derive(Clone)]
pub struct Registry {
    pub(crate) home: Home,
    approvers: Vec<String>,
    onnx: Option<Arc<dyn OnnxRuntime>>,
    rollout: RolloutConfig,
    /// The validation policy a version must pass to become `validated`.
    policy: airlock_models::Policy,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("actor", self.home.actor())
            .field("approvers", &self.approvers)
            .finish_non_exhaustive()
    }
}

/// What the Ed25519 signature covers: the name, the version and the SHA-256 of the card's
/// stored JSON text (the exact text, so a reader need not re-serialise anything to check it).
fn signed_message(name: &ModelName, hash: &ContentHash, card_json: &str) -> Vec<u8> {
    format!(
        "model {name}\nversion {}\ncard {}\n",
        hash.to_hex(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(card_json.as_bytes()))
    )
    .into_bytes()
}

/// A version's monitoring reference, beside the data it profiles (never identified).
fn reference_blob(v: &ModelVersion) -> String {
    format!(
        "reference/{}/{}",
        v.card.training_data.zone,
        v.hash.to_hex()
    )
}

fn blob_name(zone: Zone, hash: &ContentHash) -> String {
    format!("model/{zone}/{}", hash.to_hex())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Registry {
    /// The registry, acting as `home`'s actor.
    pub fn new(home: &Home) -> Registry {
        Registry {
            home: home.acting_as(home.actor().clone(), home.request_id(), Scope::all()),
            approvers: DEFAULT_APPROVER_ROLES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            onnx: None,
            rollout: home.config().rollout,
            policy: airlock_models::Policy::default(),
        }
    }

    /// Hold versions to this validation policy instead of the default one.
    pub fn with_policy(mut self, policy: airlock_models::Policy) -> Registry {
        self.policy = policy;
        self
    }

    /// The validation policy versions are held to.
    pub fn policy(&self) -> &airlock_models::Policy {
        &self.policy
    }

    /// Apply these rollout rules instead of the deployment's (`airlock.toml`'s `[rollout]`).
    pub fn with_rollout(mut self, rollout: RolloutConfig) -> Registry {
        self.rollout = rollout;
        self
    }

    /// The rollout rules in force.
    pub fn rollout(&self) -> RolloutConfig {
        self.rollout
    }

    /// Require these roles' approvals instead of the defaults (at least one).
    pub fn with_approver_roles(mut self, roles: Vec<String>) -> Registry {
        if !roles.is_empty() {
            self.approvers = roles;
        }
        self
    }

    /// Run ONNX artifacts with this runtime.
    pub fn with_onnx(mut self, runtime: Arc<dyn OnnxRuntime>) -> Registry {
        self.onnx = Some(runtime);
        self
    }

    /// The roles an approval quorum needs.
    pub fn approver_roles(&self) -> &[String] {
        &self.approvers
    }

    /// Serialise lifecycle steps: every step reads the versions, checks the rules, writes the
    /// ledger and then the rows, and two steps interleaving there would each check against a
    /// state the other is about to change (two approvers each seeing the quorum incomplete; a
    /// promote and a rollback both moving the same canary; two transitions taking the same
    /// sequence number). Within a process a mutex orders them; on PostgreSQL a transaction-level
    /// advisory lock, held until the guard is dropped, orders them across servers too.
    async fn lifecycle(&self) -> Result<LifecycleGuard, RegistryError> {
        let local = LIFECYCLE.lock().await;
        let shared = if self.home.db().backend() == Backend::Postgres {
            let mut tx = self.home.db().begin(&Scope::all()).await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LIFECYCLE_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            Some(tx)
        } else {
            None
        };
        Ok(LifecycleGuard {
            _shared: shared,
            _local: local,
        })
    }

    fn entry(&self, event: EventType, zone: Zone, outcome: OutcomeKind) -> Entry {
        self.home.entry(event, zone, outcome)
    }

    /// Register a version: check the card and the zone rules, sign, store the package
    /// encrypted in the training data's zone, record it. The version starts `registered`.
    pub async fn register(
        &self,
        name: &ModelName,
        package: &Package,
        card: &ModelCard,
    ) -> Result<ModelVersion, RegistryError> {
        let _order = self.lifecycle().await?;
        card.check().map_err(|rule| RegistryError::Package {
            reason: rule.to_string(),
        })?;
        let td = &card.training_data;
        // Models are built in development or staging, on data that may be read there.
        if !matches!(td.zone, Zone::Development | Zone::Staging) {
            return Err(airlock_types::ZoneError::GateSource {
                gate: Gate::PromoteModel,
                zone: td.zone,
            }
            .into());
        }
        zone::check_read(td.zone, td.classification)?;
        let sig_names: Vec<&str> = package
            .signature
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        if sig_names != card.features.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(RegistryError::Package {
                reason: "the card's features differ from the signature's".into(),
            });
        }
        let hash = package.hash();
        if let Some(existing) = self.find_hash(&hash).await? {
            return Err(RegistryError::Duplicate {
                name: existing.to_string(),
                hash: hash.short(),
            });
        }
        let card_json = serde_json::to_string(card).map_err(|_| RegistryError::Package {
            reason: "the card does not serialise".into(),
        })?;
        let sig = self
            .home
            .sign_artifact(&signed_message(name, &hash, &card_json))?;
        self.home
            .put_blob(
                &blob_name(td.zone, &hash),
                td.zone,
                td.classification,
                &package.to_bytes(),
            )
            .await?;
        let at = now();
        let idx = self
            .home
            .audit(
                self.entry(EventType::ModelRegister, td.zone, OutcomeKind::Success)
                    .with_resource(format!("model:{name}@{}", hash.to_hex()))
                    .with_resource(format!("dataset:{}", td.dataset))
                    .with_reason(format!(
                        "registered {} {} trained by {}",
                        package.kind.as_str(),
                        card.family,
                        card.trained_by
                    )),
            )
            .await?;
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        sqlx::query(
            "INSERT INTO model_versions (hash, name, zone, classification, kind, state, trained_by, \
             registered_by, registered_at, ed25519, card, canary_share_bp) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)",
        )
        .bind(hash.to_hex())
        .bind(name.as_str())
        .bind(td.zone.as_str())
        .bind(td.classification.as_str())
        .bind(package.kind.as_str())
        .bind(State::Registered.as_str())
        .bind(card.trained_by.as_str())
        .bind(self.home.actor().as_str())
        .bind(&at)
        .bind(hex::encode(sig))
        .bind(card_json)
        .execute(&mut *tx)
        .await?;
        insert_transition(
            &mut tx,
            td.zone,
            name,
            &hash,
            State::Registered,
            State::Registered,
            self.home.actor().as_str(),
            "registered",
            &at,
            idx,
        )
        .await?;
        tx.commit().await?;
        self.get(name, &hash.to_hex()).await
    }

    async fn find_hash(&self, hash: &ContentHash) -> Result<Option<String>, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM model_versions WHERE hash = $1")
                .bind(hash.to_hex())
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(name)
    }

    async fn query_versions(
        &self,
        name: Option<&ModelName>,
    ) -> Result<Vec<ModelVersion>, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let cols = "SELECT hash, name, zone, classification, kind, state, registered_by, \
                    registered_at, ed25519, card, canary_share_bp FROM model_versions";
        let rows = match name {
            Some(n) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{cols} WHERE name = $1 ORDER BY registered_at, hash"
                )))
                .bind(n.as_str())
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{cols} ORDER BY name, registered_at, hash"
                )))
                .fetch_all(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        rows.iter().map(version_of_row).collect()
    }

    /// Every version of every model.
    pub async fn list(&self) -> Result<Vec<ModelVersion>, RegistryError> {
        self.query_versions(None).await
    }

    /// Every version of one model, oldest first.
    pub async fn versions(&self, name: &ModelName) -> Result<Vec<ModelVersion>, RegistryError> {
        self.query_versions(Some(name)).await
    }

    /// One version, by a hex prefix of its hash (at least [`MIN_PREFIX`] digits).
    pub async fn get(&self, name: &ModelName, prefix: &str) -> Result<ModelVersion, RegistryError> {
        let not_found = || RegistryError::NotFound {
            name: name.to_string(),
            version: Some(prefix.chars().take(64).collect()),
        };
        if prefix.len() < MIN_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let prefix = prefix.to_ascii_lowercase();
        let mut found: Vec<ModelVersion> = self
            .versions(name)
            .await?
            .into_iter()
            .filter(|v| v.hash.to_hex().starts_with(&prefix))
            .collect();
        match found.len() {
            0 => Err(not_found()),
            1 => found.pop().ok_or_else(not_found),
            _ => Err(RegistryError::Ambiguous {
                name: name.to_string(),
                prefix,
            }),
        }
    }

    /// The model's history, oldest first.
    pub async fn history(&self, name: &ModelName) -> Result<Vec<Transition>, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let rows = sqlx::query(
            "SELECT seq, name, hash, from_state, to_state, actor, reason, at, ledger_index \
             FROM model_transitions WHERE name = $1 ORDER BY seq",
        )
        .bind(name.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                let bad = |reason| RegistryError::Corrupt {
                    name: name.to_string(),
                    reason,
                };
                Ok(Transition {
                    seq: r.try_get("seq")?,
                    name: r.try_get("name")?,
                    hash: r
                        .try_get::<String, _>("hash")?
                        .parse()
                        .map_err(|_| bad("hash"))?,
                    from: r
                        .try_get::<String, _>("from_state")?
                        .parse()
                        .map_err(|_| bad("state"))?,
                    to: r
                        .try_get::<String, _>("to_state")?
                        .parse()
                        .map_err(|_| bad("state"))?,
                    actor: r.try_get("actor")?,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                    ledger_index: u64::try_from(r.try_get::<i64, _>("ledger_index")?)
                        .map_err(|_| bad("ledger index"))?,
                })
            })
            .collect()
    }

    /// Which versions of `name` were in which deployed state at time `at` (RFC 3339 compare),
    /// replayed from the history: answers "which model produced this prediction on that date".
    pub async fn deployed_at(
        &self,
        name: &ModelName,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<BTreeMap<String, State>, RegistryError> {
        let mut states = BTreeMap::new();
        for t in self.history(name).await? {
            let when = chrono::DateTime::parse_from_rfc3339(&t.at)
                .map_err(|_| RegistryError::Corrupt {
                    name: name.to_string(),
                    reason: "transition time",
                })?
                .with_timezone(&chrono::Utc);
            if when > at {
                break;
            }
            states.insert(t.hash.to_hex(), t.to);
        }
        states.retain(|_, s| s.is_deployed());
        Ok(states)
    }

    /// Approvals of a version.
    pub async fn approvals(&self, hash: &ContentHash) -> Result<Vec<Approval>, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let rows = sqlx::query(
            "SELECT role, actor, reason, at, ledger_index FROM model_approvals WHERE hash = $1 ORDER BY at",
        )
        .bind(hash.to_hex())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(Approval {
                    role: r.try_get("role")?,
                    actor: r.try_get("actor")?,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                    ledger_index: u64::try_from(r.try_get::<i64, _>("ledger_index")?)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Read, verify (hash and signature) and load a version. A failure is written to the
    /// ledger as a refused deployment and the version is not loaded.
    pub async fn load(&self, v: &ModelVersion) -> Result<LoadedModel, RegistryError> {
        match self.load_unaudited(v).await {
            Ok(m) => Ok(m),
            Err(e) => {
                let reason = match &e {
                    RegistryError::Tampered { reason, .. } => (*reason).to_string(),
                    RegistryError::Store(_) => "the artifact could not be read or decrypted".into(),
                    _ => "the artifact could not be loaded".into(),
                };
                self.home
                    .audit(
                        self.entry(EventType::ModelDeploy, v.zone, OutcomeKind::Failure)
                            .with_resource(format!("model:{}@{}", v.name, v.hash.to_hex()))
                            .with_reason(format!("refused to load: {reason}")),
                    )
                    .await?;
                Err(e)
            }
        }
    }

    /// The model of a version trained by Airlock (`None` for an imported artifact), from its
    /// artifact, whose hash must be the version's.
    pub(crate) async fn trained_model(
        &self,
        v: &ModelVersion,
    ) -> Result<Option<TrainedModel>, RegistryError> {
        let Some(bytes) = self.home.blob(&blob_name(v.zone, &v.hash), v.zone).await? else {
            return Ok(None);
        };
        let package = Package::from_bytes(&bytes)?;
        if package.hash() != v.hash || package.kind != ArtifactKind::Airlock {
            return Ok(None);
        }
        Ok(Some(TrainedModel::from_bytes(&package.artifact)?))
    }

    /// The deployment's home, as the registry acts in it.
    pub(crate) fn home(&self) -> &Home {
        &self.home
    }

    async fn load_unaudited(&self, v: &ModelVersion) -> Result<LoadedModel, RegistryError> {
        let tampered = |reason| RegistryError::Tampered {
            name: v.name.to_string(),
            version: v.hash.short(),
            reason,
        };
        let sig = hex::decode(&v.ed25519).map_err(|_| tampered("signature is not hex"))?;
        if !self
            .home
            .verify_artifact(&signed_message(&v.name, &v.hash, &v.card_json), &sig)
        {
            return Err(tampered(
                "the Ed25519 signature over name, version and model card does not verify",
            ));
        }
        let bytes = self
            .home
            .blob(&blob_name(v.zone, &v.hash), v.zone)
            .await?
            .ok_or_else(|| tampered("the artifact is missing"))?;
        let package =
            Package::from_bytes(&bytes).map_err(|_| tampered("the artifact does not decode"))?;
        if package.hash() != v.hash {
            return Err(tampered("the artifact's SHA-256 is not the version's"));
        }
        if package.kind != v.kind {
            return Err(tampered("the artifact kind is not the registered one"));
        }
        let scorer = self.scorer_for(&v.name, &package)?;
        Ok(LoadedModel::new(v.clone(), package.signature, scorer))
    }

    /// A scorer for a package: Airlock's own models decoded (their embedded signature must be
    /// the package's), ONNX artifacts loaded by the runtime this registry was given.
    pub fn scorer_for(
        &self,
        name: &ModelName,
        package: &Package,
    ) -> Result<Arc<dyn Scorer>, RegistryError> {
        Ok(match package.kind {
            ArtifactKind::Airlock => {
                let m = TrainedModel::from_bytes(&package.artifact)?;
                if m.signature() != &package.signature {
                    return Err(RegistryError::Tampered {
                        name: name.to_string(),
                        version: package.hash().short(),
                        reason: "the model's signature differs from the package's",
                    });
                }
                Arc::new(m)
            }
            ArtifactKind::Onnx => {
                let rt = self
                    .onnx
                    .as_ref()
                    .ok_or_else(|| RegistryError::Unsupported {
                        name: name.to_string(),
                        reason: "this build has no ONNX runtime".into(),
                    })?;
                let width = package.signature.width(airlock_models::Encoding::OneHot);
                let inner = rt.load(&package.artifact, width).map_err(|reason| {
                    RegistryError::Unsupported {
                        name: name.to_string(),
                        reason,
                    }
                })?;
                Arc::new(OnnxScorer {
                    signature: package.signature.clone(),
                    inner,
                })
            }
        })
    }

    /// `registered → validated`: the registry re-reads and verifies the artifact, decodes it,
    /// and checks the card is complete.
    pub async fn validate(
        &self,
        name: &ModelName,
        prefix: &str,
        reason: &str,
    ) -> Result<Transition, RegistryError> {
        let _order = self.lifecycle().await?;
        let v = self.get(name, prefix).await?;
        self.check_step(&v, State::Validated)?;
        self.load(&v).await?;
        v.card.check().map_err(|rule| RegistryError::Transition {
            name: name.to_string(),
            version: v.hash.short(),
            from: v.state,
            to: State::Validated,
            rule,
        })?;
        // `validated` means "passed the validation policy": a signed report of this version,
        // under the policy in force, that passed (`validate_on` makes one).
        if self.passing_report(&v, &self.policy).await?.is_none() {
            return Err(RegistryError::Transition {
                name: name.to_string(),
                version: v.hash.short(),
                from: v.state,
                to: State::Validated,
                rule: "no passing validation report under the current policy: validate it on held-out data (`airlock models validate --dataset`)",
            });
        }
        let mut out = self
            .apply(&[(v, State::Validated, 0)], EventType::ModelApprove, reason)
            .await?;
        out.pop().ok_or(RegistryError::Corrupt {
            name: name.to_string(),
            reason: "no transition recorded",
        })
    }

    /// One lifecycle step of one version, in the ledger and the history.
    pub(crate) async fn step(
        &self,
        v: &ModelVersion,
        to: State,
        reason: &str,
    ) -> Result<Transition, RegistryError> {
        let _order = self.lifecycle().await?;
        let mut out = self
            .apply(&[(v.clone(), to, 0)], EventType::ModelApprove, reason)
            .await?;
        out.pop().ok_or(RegistryError::Corrupt {
            name: v.name.to_string(),
            reason: "no transition recorded",
        })
    }

    fn check_step(&self, v: &ModelVersion, to: State) -> Result<(), RegistryError> {
        v.state
            .check_step(to)
            .map_err(|rule| RegistryError::Transition {
                name: v.name.to_string(),
                version: v.hash.short(),
                from: v.state,
                to,
                rule,
            })
    }

    /// Record `actor`'s approval of a validated version as `role`. The approver must not have
    /// trained it, must not have approved it under another role, and `role` must be one the
    /// quorum needs; the caller has checked (with the policy) that the actor holds the role
    /// and may approve. When every role has approved, the version becomes `approved`.
    pub async fn approve(
        &self,
        name: &ModelName,
        prefix: &str,
        role: &str,
        reason: &str,
    ) -> Result<ApprovalOutcome, RegistryError> {
        let _order = self.lifecycle().await?;
        let v = self.get(name, prefix).await?;
        let refuse = |rule: String| RegistryError::Approval {
            name: name.to_string(),
            version: v.hash.short(),
            rule,
        };
        if v.state != State::Validated {
            return Err(refuse(format!("it is {}, not validated", v.state)));
        }
        if !self.approvers.iter().any(|r| r == role) {
            return Err(refuse(format!(
                "the approval policy needs {}, not {role}",
                self.approvers.join(" and ")
            )));
        }
        let actor = self.home.actor().as_str();
        if same_person(v.card.trained_by.as_str(), actor)
            || same_person(v.registered_by.as_str(), actor)
        {
            return Err(refuse(
                "nobody approves a model they trained or registered".into(),
            ));
        }
        let existing = self.approvals(&v.hash).await?;
        if existing.iter().any(|a| same_person(&a.actor, actor)) {
            return Err(refuse(
                "one person approves once; the quorum needs different people".into(),
            ));
        }
        if existing.iter().any(|a| a.role == role) {
            return Err(refuse(format!("the {role} approval is already given")));
        }
        let at = now();
        let idx = self
            .home
            .audit(
                self.entry(
                    EventType::ModelApprove,
                    Zone::Clinical,
                    OutcomeKind::Success,
                )
                .with_resource(format!("model:{}@{}", v.name, v.hash.to_hex()))
                .with_reason(format!("approved as {role}: {reason}")),
            )
            .await?;
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        sqlx::query(
            "INSERT INTO model_approvals (hash, zone, role, actor, reason, at, ledger_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(v.hash.to_hex())
        .bind(Zone::Clinical.as_str())
        .bind(role)
        .bind(actor)
        .bind(reason)
        .bind(&at)
        .bind(i64::try_from(idx).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let approval = Approval {
            role: role.to_string(),
            actor: actor.to_string(),
            reason: reason.to_string(),
            at,
            ledger_index: idx,
        };
        let mut have: Vec<String> = existing.into_iter().map(|a| a.role).collect();
        have.push(role.to_string());
        let missing: Vec<String> = self
            .approvers
            .iter()
            .filter(|r| !have.contains(r))
            .cloned()
            .collect();
        let transition = if missing.is_empty() {
            let quorum = format!("approved by {}", self.approvers.join(" and "));
            self.apply(&[(v, State::Approved, 0)], EventType::ModelApprove, &quorum)
                .await?
                .pop()
        } else {
            None
        };
        Ok(ApprovalOutcome {
            approval,
            missing_roles: missing,
            transition,
        })
    }

    /// Move a version to `silent`, `canary` (with its share of patients in basis points) or
    /// `retired`. A version entering live traffic is verified and its artifact promoted into
    /// the clinical zone through the promote-model gate.
    pub async fn deploy(
        &self,
        name: &ModelName,
        prefix: &str,
        to: State,
        canary_share_bp: Option<u16>,
        reason: &str,
    ) -> Result<Vec<Transition>, RegistryError> {
        let _order = self.lifecycle().await?;
        let v = self.get(name, prefix).await?;
        self.check_step(&v, to)?;
        let rule = |rule| RegistryError::Transition {
            name: name.to_string(),
            version: v.hash.short(),
            from: v.state,
            to,
            rule,
        };
        let mut share = 0;
        match to {
            State::Silent | State::Retired => {}
            State::Canary => {
                share = canary_share_bp
                    .filter(|s| (1..=10_000).contains(s))
                    .ok_or_else(|| rule("a canary needs a share of 1 to 10,000 basis points"))?;
                if f64::from(share) > self.rollout.max_canary_percent * 100.0 {
                    return Err(RegistryError::Rollout {
                        name: name.to_string(),
                        rule: format!(
                            "a canary may reach at most {}% of patients (rollout.max_canary_percent); asked {}%",
                            self.rollout.max_canary_percent,
                            f64::from(share) / 100.0
                        ),
                    });
                }
                if self
                    .versions(name)
                    .await?
                    .iter()
                    .any(|o| o.state == State::Canary && o.hash != v.hash)
                {
                    return Err(rule(
                        "another version is the canary; promote or roll it back first",
                    ));
                }
                if v.state == State::Silent {
                    self.check_silent_run(&v).await?;
                }
            }
            State::Production => {
                return Err(rule(
                    "promote the canary instead (its soak is checked there)",
                ));
            }
            _ => return Err(rule("use validate or approve for this step")),
        }
        let v = if to.is_deployed() && v.zone != Zone::Clinical {
            self.promote_artifact(&v).await?
        } else {
            v
        };
        self.apply(&[(v, to, share)], EventType::ModelDeploy, reason)
            .await
    }

    /// The promote-model gate: verify the artifact, then copy it into the clinical zone.
    async fn promote_artifact(&self, v: &ModelVersion) -> Result<ModelVersion, RegistryError> {
        self.load(v).await?;
        zone::check_transfer(
            (v.zone, v.classification),
            (Zone::Clinical, v.classification),
            Some(Gate::PromoteModel),
        )?;
        let bytes = self
            .home
            .blob(&blob_name(v.zone, &v.hash), v.zone)
            .await?
            .ok_or_else(|| RegistryError::Tampered {
                name: v.name.to_string(),
                version: v.hash.short(),
                reason: "the artifact is missing",
            })?;
        self.home
            .put_blob(
                &blob_name(Zone::Clinical, &v.hash),
                Zone::Clinical,
                v.classification,
                &bytes,
            )
            .await?;
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        sqlx::query("UPDATE model_versions SET zone = $1 WHERE hash = $2")
            .bind(Zone::Clinical.as_str())
            .bind(v.hash.to_hex())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut out = v.clone();
        out.zone = Zone::Clinical;
        Ok(out)
    }

    /// The canary becomes production; the production version it replaces is retired. One
    /// step: both transitions commit together. The canary must have soaked as the rollout
    /// rules ask: long enough since it became the canary, and `shown` predictions from it
    /// (counted by the caller from the ledger, after the canary transition's entry); the
    /// transition's reason records both.
    pub async fn promote(
        &self,
        name: &ModelName,
        reason: &str,
        shown: u64,
    ) -> Result<Vec<Transition>, RegistryError> {
        let _order = self.lifecycle().await?;
        self.promote_in_order(name, reason, shown).await
    }

    /// The exit criterion of silent mode (`rollout.min_silent_minutes` and
    /// `min_silent_predictions`): how long `v` has run silent since it last entered silent
    /// mode, and how many silent predictions the ledger holds for it since; refused, naming the
    /// rule and the figures, when either falls short.
    async fn check_silent_run(&self, v: &ModelVersion) -> Result<(), RegistryError> {
        let since = self
            .history(&v.name)
            .await?
            .into_iter()
            .rev()
            .find(|t| t.hash == v.hash && t.to == State::Silent);
        let minutes = since
            .as_ref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.at).ok())
            .map_or(0, |t| {
                u64::try_from((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_minutes())
                    .unwrap_or(0)
            });
        let (min_minutes, min_predictions) = (
            self.rollout.min_silent_minutes,
            self.rollout.min_silent_predictions,
        );
        let logged = if min_predictions == 0 {
            0
        } else {
            // The entries since the version went silent: bounded by the silent run, not the
            // ledger's length (read in place: a lifecycle step is rare, and holds its lock).
            let from = since.map_or(0, |t| t.ledger_index + 1);
            let ledger = self.home.ledger();
            let mut n = 0;
            for i in from..ledger.size()? {
                let e = Entry::parse(&ledger.entry_bytes(i)?)?;
                if e.event == EventType::Prediction
                    && e.prediction.as_ref().is_some_and(|p| {
                        p.version_hash == v.hash && p.display == airlock_ledger::Display::Silent
                    })
                {
                    n += 1;
                }
            }
            n
        };
        if minutes < min_minutes || logged < min_predictions {
            return Err(RegistryError::Rollout {
                name: v.name.to_string(),
                rule: format!(
                    "not a canary yet: silent for {minutes} min with {logged} silent predictions \
                     (rollout: at least {min_minutes} min and {min_predictions}, \
                     rollout.min_silent_minutes and rollout.min_silent_predictions)"
                ),
            });
        }
        Ok(())
    }

    /// When the current canary of `name` became the canary: its transition, if any.
    pub async fn canary_since(
        &self,
        name: &ModelName,
    ) -> Result<Option<Transition>, RegistryError> {
        let versions = self.versions(name).await?;
        let Some(canary) = versions.iter().find(|v| v.state == State::Canary) else {
            return Ok(None);
        };
        Ok(self
            .history(name)
            .await?
            .into_iter()
            .rev()
            .find(|t| t.hash == canary.hash && t.to == State::Canary))
    }

    /// [`Registry::promote`] with the lifecycle lock already held.
    async fn promote_in_order(
        &self,
        name: &ModelName,
        reason: &str,
        shown: u64,
    ) -> Result<Vec<Transition>, RegistryError> {
        let versions = self.versions(name).await?;
        let canary = versions
            .iter()
            .find(|v| v.state == State::Canary)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound {
                name: name.to_string(),
                version: Some("(canary)".into()),
            })?;
        let since = self.canary_since(name).await?;
        let minutes = since
            .as_ref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.at).ok())
            .map_or(0, |t| {
                u64::try_from((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_minutes())
                    .unwrap_or(0)
            });
        let soak = format!(
            "canary soaked {minutes} min with {shown} shown predictions (rollout: at least {} min and {})",
            self.rollout.min_canary_minutes, self.rollout.min_canary_predictions
        );
        if minutes < self.rollout.min_canary_minutes || shown < self.rollout.min_canary_predictions
        {
            return Err(RegistryError::Rollout {
                name: name.to_string(),
                rule: format!("not promoted: {soak}"),
            });
        }
        let reason = format!("{reason}; {soak}");
        let reason = reason.as_str();
        // The version it replaces stands by in silent mode: still scored (its agreement with
        // the new one is measured) and ready for a one-call rollback; retiring it is a choice.
        let mut steps: Vec<(ModelVersion, State, u16)> = versions
            .into_iter()
            .filter(|v| v.state == State::Production)
            .map(|v| (v, State::Silent, 0))
            .collect();
        steps.push((canary, State::Production, 0));
        self.apply(&steps, EventType::ModelDeploy, reason).await
    }

    /// The canary goes back to silent: every patient sees production again.
    /// With no canary, production goes back to the version that was production before it,
    /// which has stood by in silent mode since (the current one stands by in its place), in one
    /// step: refused, naming why, when that version was retired or there was none.
    pub async fn rollback(
        &self,
        name: &ModelName,
        reason: &str,
    ) -> Result<Vec<Transition>, RegistryError> {
        let _order = self.lifecycle().await?;
        let versions = self.versions(name).await?;
        if let Some(canary) = versions.iter().find(|v| v.state == State::Canary) {
            return self
                .apply(
                    &[(canary.clone(), State::Silent, 0)],
                    EventType::ModelDeploy,
                    reason,
                )
                .await;
        }
        let Some(current) = versions.iter().find(|v| v.state == State::Production) else {
            return Err(RegistryError::NotFound {
                name: name.to_string(),
                version: Some("(canary or production)".into()),
            });
        };
        // The newest other version that reached production.
        let history = self.history(name).await?;
        let previous = history
            .iter()
            .rev()
            .find(|t| t.to == State::Production && t.hash != current.hash)
            .map(|t| t.hash);
        let refuse = |rule: String| RegistryError::Rollout {
            name: name.to_string(),
            rule,
        };
        let Some(previous) = previous else {
            return Err(refuse(
                "no rollback: no other version of this model was ever in production".into(),
            ));
        };
        let Some(standby) = versions.iter().find(|v| v.hash == previous) else {
            return Err(refuse(
                "no rollback: the previous production version is gone".into(),
            ));
        };
        if standby.state != State::Silent {
            return Err(refuse(format!(
                "no rollback: the previous production version {} is {}, not standing by in silent mode",
                standby.hash.short(),
                standby.state
            )));
        }
        let reason = format!(
            "{reason}; production rolled back to {}, which was production before",
            standby.hash.short()
        );
        self.apply_steps(
            &[
                (current.clone(), State::Silent, 0),
                (standby.clone(), State::Production, 0),
            ],
            EventType::ModelDeploy,
            &reason,
            Some(&standby.hash),
        )
        .await
    }

    /// Apply steps together: ledger entries first (one durable append), then the rows in one
    /// transaction.
    async fn apply(
        &self,
        steps: &[(ModelVersion, State, u16)],
        event: EventType,
        reason: &str,
    ) -> Result<Vec<Transition>, RegistryError> {
        self.apply_steps(steps, event, reason, None).await
    }

    /// [`Registry::apply`], where `reinstated` (a version the caller checked was production
    /// before, standing by in silent mode) may go from silent straight back to production: it
    /// went through silent mode and a canary once already.
    async fn apply_steps(
        &self,
        steps: &[(ModelVersion, State, u16)],
        event: EventType,
        reason: &str,
        reinstated: Option<&ContentHash>,
    ) -> Result<Vec<Transition>, RegistryError> {
        for (v, to, _) in steps {
            let back =
                reinstated == Some(&v.hash) && v.state == State::Silent && *to == State::Production;
            if !back {
                self.check_step(v, *to)?;
            }
        }
        let entries: Vec<Entry> = steps
            .iter()
            .map(|(v, to, share)| {
                let mut why = format!("{} -> {}", v.state, to);
                if *to == State::Canary {
                    why.push_str(&format!(" ({:.2}% of patients)", f64::from(*share) / 100.0));
                }
                self.entry(event, zone_of(v, *to), OutcomeKind::Success)
                    .with_resource(format!("model:{}@{}", v.name, v.hash.to_hex()))
                    .with_reason(format!("{why}: {reason}"))
            })
            .collect();
        let first = self.home.audit_many(entries).await?;
        let at = now();
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let mut out = Vec::with_capacity(steps.len());
        for (i, (v, to, share)) in steps.iter().enumerate() {
            let idx = first + i as u64;
            sqlx::query(
                "UPDATE model_versions SET state = $1, canary_share_bp = $2 WHERE hash = $3",
            )
            .bind(to.as_str())
            .bind(i64::from(*share))
            .bind(v.hash.to_hex())
            .execute(&mut *tx)
            .await?;
            let seq = insert_transition(
                &mut tx,
                zone_of(v, *to),
                &v.name,
                &v.hash,
                v.state,
                *to,
                self.home.actor().as_str(),
                reason,
                &at,
                idx,
            )
            .await?;
            out.push(Transition {
                seq,
                name: v.name.to_string(),
                hash: v.hash,
                from: v.state,
                to: *to,
                actor: self.home.actor().to_string(),
                reason: reason.to_string(),
                at: at.clone(),
                ledger_index: idx,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A number that changes whenever any model's state changes (servers poll it to reload).
    pub async fn generation(&self) -> Result<i64, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_transitions")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Load every deployed version into a routing table. Versions that fail verification are
    /// left out (and their refusal is in the ledger); their errors come back beside the table.
    /// `previous` lends already verified models, so a reload re-reads only what changed.
    pub async fn deployment(
        &self,
        previous: Option<&Deployment>,
    ) -> Result<(Deployment, Vec<RegistryError>), RegistryError> {
        let generation = self.generation().await?;
        let mut routes: BTreeMap<String, Routes> = BTreeMap::new();
        let mut errors = Vec::new();
        for v in self.list().await? {
            if !v.state.is_deployed() {
                continue;
            }
            let loaded = match previous.and_then(|p| p.loaded(&v.hash)) {
                Some(m) => Arc::new(m.with_version(v.clone())),
                None => match self.load(&v).await {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
            };
            let r = routes.entry(v.name.to_string()).or_default();
            match v.state {
                State::Production => r.production = Some(loaded),
                State::Canary => r.canary = Some(loaded),
                _ => r.silent.push(loaded),
            }
        }
        Ok((Deployment::new(routes, generation), errors))
    }

    /// Keep a version's monitoring reference (aggregates of its de-identified training data).
    pub async fn save_reference(
        &self,
        v: &ModelVersion,
        reference: &airlock_models::monitor::Reference,
    ) -> Result<(), RegistryError> {
        let td = &v.card.training_data;
        let bytes = serde_json::to_vec(reference).map_err(|_| RegistryError::Data {
            reason: "the monitoring reference does not serialise".into(),
        })?;
        self.home
            .put_blob(&reference_blob(v), td.zone, td.classification, &bytes)
            .await?;
        Ok(())
    }

    /// A version's monitoring reference, if it has one (versions registered before monitoring
    /// existed do not).
    pub async fn reference(
        &self,
        v: &ModelVersion,
    ) -> Result<Option<airlock_models::monitor::Reference>, RegistryError> {
        let td = &v.card.training_data;
        let Some(bytes) = self.home.blob(&reference_blob(v), td.zone).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| RegistryError::Data {
                reason: format!("the monitoring reference of {} is unreadable", v.label()),
            })
    }

    /// Record the observed outcome of a prediction. The first outcome stands: a later one with
    /// another label is refused unless it is marked a `correction`, and then the ledger entry
    /// the caller writes says what it replaced, so no outcome is ever changed without a trace.
    /// Returns the label it replaced, if any.
    pub async fn post_outcome(
        &self,
        prediction: u64,
        label: bool,
        correction: bool,
    ) -> Result<Option<bool>, RegistryError> {
        let index = i64::try_from(prediction).unwrap_or(i64::MAX);
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let before: Option<i64> =
            sqlx::query_scalar("SELECT label FROM prediction_outcomes WHERE prediction = $1")
                .bind(index)
                .fetch_optional(&mut *tx)
                .await?;
        let before = before.map(|l| l != 0);
        match before {
            Some(b) if b == label => {
                tx.commit().await?;
                return Ok(Some(b));
            }
            Some(_) if !correction => {
                return Err(RegistryError::OutcomeRecorded { prediction });
            }
            _ => {}
        }
        sqlx::query(
            "INSERT INTO prediction_outcomes (prediction, zone, label, posted_by, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (prediction) DO UPDATE SET label = excluded.label, posted_by = excluded.posted_by, at = excluded.at",
        )
        .bind(index)
        .bind(Zone::Clinical.as_str())
        .bind(i64::from(label))
        .bind(self.home.actor().as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Every posted outcome: prediction ledger index to label.
    pub async fn outcomes(&self) -> Result<BTreeMap<u64, bool>, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let rows = sqlx::query("SELECT prediction, label FROM prediction_outcomes")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let p: i64 = r.try_get("prediction")?;
            let l: i64 = r.try_get("label")?;
            if let Ok(p) = u64::try_from(p) {
                out.insert(p, l != 0);
            }
        }
        Ok(out)
    }
}

/// Whether two recorded actors are one person for the rules that need different people. Every
/// `operator:` actor is the holder of the deployment passphrase (root), whoever they claim to
/// act for, so all of them count as one.
fn same_person(a: &str, b: &str) -> bool {
    a == b || (a.starts_with("operator:") && b.starts_with("operator:"))
}

fn zone_of(v: &ModelVersion, to: State) -> Zone {
    if to.is_deployed() {
        Zone::Clinical
    } else {
        v.zone
    }
}

#[expect(clippy::too_many_arguments, reason = "one row of the history table")]
async fn insert_transition(
    tx: &mut airlock_store::Tx,
    zone: Zone,
    name: &ModelName,
    hash: &ContentHash,
    from: State,
    to: State,
    actor: &str,
    reason: &str,
    at: &str,
    ledger_index: u64,
) -> Result<i64, RegistryError> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM model_transitions")
        .fetch_one(&mut **tx)
        .await?;
    let id = hex::encode(airlock_crypto::random_bytes::<16>());
    sqlx::query(
        "INSERT INTO model_transitions (id, seq, zone, name, hash, from_state, to_state, actor, reason, at, ledger_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(seq)
    .bind(zone.as_str())
    .bind(name.as_str())
    .bind(hash.to_hex())
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .bind(at)
    .bind(i64::try_from(ledger_index).unwrap_or(i64::MAX))
    .execute(&mut **tx)
    .await?;
    Ok(seq)
}

fn version_of_row(r: &sqlx::any::AnyRow) -> Result<ModelVersion, RegistryError> {
    let name: String = r.try_get("name")?;
    let bad = |reason| RegistryError::Corrupt {
        name: name.clone(),
        reason,
    };
    let card_json: String = r.try_get("card")?;
    let card: ModelCard = serde_json::from_str(&card_json).map_err(|_| bad("model card"))?;
    Ok(ModelVersion {
        name: ModelName::new(name.clone()).map_err(|_| bad("name"))?,
        hash: r
            .try_get::<String, _>("hash")?
            .parse()
            .map_err(|_| bad("hash"))?,
        zone: r
            .try_get::<String, _>("zone")?
            .parse()
            .map_err(|_| bad("zone"))?,
        classification: r
            .try_get::<String, _>("classification")?
            .parse()
            .map_err(|_| bad("classification"))?,
        kind: match r.try_get::<String, _>("kind")?.as_str() {
            "airlock" => ArtifactKind::Airlock,
            "onnx" => ArtifactKind::Onnx,
            _ => return Err(bad("kind")),
        },
        state: r
            .try_get::<String, _>("state")?
            .parse()
            .map_err(|_| bad("state"))?,
        registered_by: ActorId::new(r.try_get::<String, _>("registered_by")?)
            .map_err(|_| bad("registered_by"))?,
        registered_at: r.try_get("registered_at")?,
        card,
        canary_share_bp: u16::try_from(r.try_get::<i64, _>("canary_share_bp")?)
            .map_err(|_| bad("canary share"))?,
        ed25519: r.try_get("ed25519")?,
        card_json,
    })
}

#[cfg(test)]
mod tests {
    /// Issue 28, finding 13: every operator (the passphrase holder) is one person, whoever
    /// they claim to act for.
    #[test]
    fn operators_are_one_person_for_the_quorum() {
        assert!(super::same_person(
            "operator:alice@h1",
            "operator:bob@h2:dr-lee"
        ));
        assert!(super::same_person("dr-lee", "dr-lee"));
        assert!(!super::same_person("dr-lee", "operator:alice@h1:dr-lee"));
        assert!(!super::same_person("dr-lee", "dr-kim"));
    }
}
