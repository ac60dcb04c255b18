//! Errors of the registry. Messages name models, versions, states, roles and fields; never a
//! feature value or a patient.

use airlock_types::ZoneError;

use crate::state::State;

/// Everything that can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A model name that breaks the naming rules.
    #[error("invalid model name: {reason}")]
    Name {
        /// Which rule.
        reason: &'static str,
    },
    /// No such model or version.
    #[error("no model `{name}`{}", version.as_deref().map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        /// The model.
        name: String,
        /// The version asked for, when one was.
        version: Option<String>,
    },
    /// A version prefix that names more than one version.
    #[error("version prefix `{prefix}` of `{name}` is ambiguous")]
    Ambiguous {
        /// The model.
        name: String,
        /// The prefix.
        prefix: String,
    },
    /// This exact artifact is already registered.
    #[error("model version {hash} is already registered as `{name}`")]
    Duplicate {
        /// The existing model name.
        name: String,
        /// The version hash.
        hash: String,
    },
    /// The rollout rules refuse this step (a canary's share, a canary's soak).
    #[error("`{name}`: {rule}")]
    Rollout {
        /// The model.
        name: String,
        /// The rule and the figures.
        rule: String,
    },
    /// A prediction has an outcome already, with the other label.
    #[error(
        "prediction {prediction} has an outcome already; post it with `correction: true` to replace it"
    )]
    OutcomeRecorded {
        /// The prediction's ledger index.
        prediction: u64,
    },
    /// The lifecycle does not allow this step.
    #[error("`{name}` version {version} is {from}; it cannot move to {to}: {rule}")]
    Transition {
        /// The model.
        name: String,
        /// The version (short hash).
        version: String,
        /// Its state.
        from: State,
        /// The state asked for.
        to: State,
        /// The rule that refuses it.
        rule: &'static str,
    },
    /// An approval that the quorum rules refuse.
    #[error("approval of `{name}` version {version} refused: {rule}")]
    Approval {
        /// The model.
        name: String,
        /// The version (short hash).
        version: String,
        /// The rule.
        rule: String,
    },
    /// The stored artifact does not match its hash or signature: it will not be served.
    #[error(
        "model `{name}` version {version} failed verification: {reason}; it will not be loaded"
    )]
    Tampered {
        /// The model.
        name: String,
        /// The version (short hash).
        version: String,
        /// What did not match.
        reason: &'static str,
    },
    /// A package or card that does not decode.
    #[error("model package is malformed: {reason}")]
    Package {
        /// What is wrong (offsets and field names only).
        reason: String,
    },
    /// The data a model is trained, evaluated or scored on cannot be used (names the dataset,
    /// file or row and the rule, never a value).
    #[error("training data: {reason}")]
    Data {
        /// What is wrong.
        reason: String,
    },
    /// The artifact kind cannot be run in this build.
    #[error("model `{name}`: {reason}")]
    Unsupported {
        /// The model.
        name: String,
        /// Why.
        reason: String,
    },
    /// A request or record that the model's signature refuses (names the field and the rule).
    #[error(transparent)]
    Model(#[from] airlock_models::ModelsError),
    /// The zone rules refuse it.
    #[error("refused by the zone rules: {0}")]
    Zone(#[from] ZoneError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] airlock_store::StoreError),
    /// The ledger failed.
    #[error("ledger error: {0}")]
    Ledger(#[from] airlock_ledger::LedgerError),
    /// A ledger entry failed validation.
    #[error("ledger entry error: {0}")]
    Entry(#[from] airlock_ledger::EntryError),
    /// The metadata database failed.
    #[error("metadata store error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row that does not parse.
    #[error("registry row for `{name}` is corrupt: {reason}")]
    Corrupt {
        /// The model.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A change control plan that does not parse, is not approved, or refuses the change.
    #[error("change control plan `{plan}`: {rule}")]
    Plan {
        /// The plan.
        plan: String,
        /// The rule (plan paths and figures, never a value from data).
        rule: String,
    },
    /// No plan of that name (and version).
    #[error("no change control plan `{plan}`")]
    PlanNotFound {
        /// The plan asked for.
        plan: String,
    },
}
