//! The words a request is made of: roles, principals, actions, resources.
//!
//! These are Airlock's own types; the engine translates them into Cedar entities, so callers
//! never build a Cedar value and a typo in a role or an action name cannot compile.

use std::fmt;
use std::str::FromStr;

use airlock_types::{ActorId, Classification, Purpose, Zone};
use serde::{Deserialize, Serialize};

use crate::AuthzError;

/// A role a principal holds. A principal may hold several; permits are per role, and a `forbid`
/// on one role holds even when another role would permit.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Builds models on de-identified, synthetic and DP data in development and staging.
    DataScientist,
    /// Deploys approved models and runs the platform.
    MlopsEngineer,
    /// Treats patients: reads their records and the predictions about them.
    Clinician,
    /// Approves models for clinical use.
    ClinicalReviewer,
    /// Runs de-identification, reviews releases and emergency access, reads the ledger.
    PrivacyOfficer,
    /// Manages users, tokens and keys; sees no data.
    SecurityAdmin,
    /// Reads and verifies the ledger.
    Auditor,
    /// The expert of an expert determination (45 CFR 164.514(b)(1)): signs that a release's
    /// residual risk is very small under stated conditions; sees figures and paths, no values.
    DeidExpert,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 8] = [
        Role::DataScientist,
        Role::MlopsEngineer,
        Role::Clinician,
        Role::ClinicalReviewer,
        Role::PrivacyOfficer,
        Role::SecurityAdmin,
        Role::Auditor,
        Role::DeidExpert,
    ];

    /// The role's name in policies, configuration and ledger entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::DataScientist => "data-scientist",
            Role::MlopsEngineer => "mlops-engineer",
            Role::Clinician => "clinician",
            Role::ClinicalReviewer => "clinical-reviewer",
            Role::PrivacyOfficer => "privacy-officer",
            Role::SecurityAdmin => "security-admin",
            Role::Auditor => "auditor",
            Role::DeidExpert => "deid-expert",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthzError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AuthzError::UnknownRole { name: truncate(s) })
    }
}

/// Whether a principal is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// A person; needs a second factor (`mfa`) for anything.
    User,
    /// A program (an EHR integration, a pipeline); never breaks the glass or administers
    /// identities and keys.
    Service,
}

impl PrincipalKind {
    /// `user` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Principal {
    /// The actor id, as recorded in the ledger.
    pub id: ActorId,
    /// Person or program.
    pub kind: PrincipalKind,
    /// The roles held.
    pub roles: Vec<Role>,
}

impl Principal {
    /// A person holding `roles`.
    pub fn user(id: ActorId, roles: impl IntoIterator<Item = Role>) -> Self {
        Principal {
            id,
            kind: PrincipalKind::User,
            roles: roles.into_iter().collect(),
        }
    }

    /// A program holding `roles`.
    pub fn service(id: ActorId, roles: impl IntoIterator<Item = Role>) -> Self {
        Principal {
            id,
            kind: PrincipalKind::Service,
            roles: roles.into_iter().collect(),
        }
    }
}

/// What is being done.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// List datasets (names and classifications), on a [`Resource::Zone`] or per
    /// [`Resource::Dataset`].
    ListDatasets,
    /// Read a dataset's metadata and lineage.
    ReadDataset,
    /// Download a dataset's contents.
    DownloadDataset,
    /// Bring data into a zone.
    IngestDataset,
    /// Run de-identification (on a [`Resource::Zone`] or a source [`Resource::Dataset`]).
    RunDeid,
    /// Read a de-identification report.
    ReadDeidReport,
    /// Search and export the ledger, list disclosures.
    ReadAudit,
    /// Verify the ledger: checkpoints, inclusion and consistency proofs.
    VerifyAudit,
    /// Create, change and disable users.
    ManageUsers,
    /// Issue and revoke API tokens.
    ManageTokens,
    /// Confirm a role another person granted (the second person of the two-person rule for
    /// roles that reach PHI or approve models).
    ConfirmRole,
    /// Rotate and manage keys.
    ManageKeys,
    /// Start emergency access (on a [`Resource::Zone`] or a [`Resource::Patient`]).
    BreakGlass,
    /// Review emergency access after the fact.
    ReviewBreakGlass,
    /// Read a patient's record.
    ReadPatientRecord,
    /// Register a model version.
    RegisterModel,
    /// Approve a model version for clinical use.
    ApproveModel,
    /// Deploy a model version (the model's zone is the target zone).
    DeployModel,
    /// Ask a model for a prediction about a patient.
    Predict,
    /// Override a model's prediction about a patient.
    OverridePrediction,
    /// Read a model's card, metrics and lineage.
    ReadModel,
    /// Sign an expert determination for a release from a source [`Resource::Dataset`].
    SignExpertDetermination,
    /// Ask a differentially private question of a [`Resource::Dataset`] (the rows stay
    /// where they are; only the noisy answer leaves, charged to a budget).
    DpQuery,
    /// Set a dataset's DP metadata (privacy unit, bounds, domains) and the privacy budgets
    /// on it.
    ManageDpBudget,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 24] = [
        Action::ListDatasets,
        Action::ReadDataset,
        Action::DownloadDataset,
        Action::IngestDataset,
        Action::RunDeid,
        Action::ReadDeidReport,
        Action::ReadAudit,
        Action::VerifyAudit,
        Action::ManageUsers,
        Action::ManageTokens,
        Action::ConfirmRole,
        Action::ManageKeys,
        Action::BreakGlass,
        Action::ReviewBreakGlass,
        Action::ReadPatientRecord,
        Action::RegisterModel,
        Action::ApproveModel,
        Action::DeployModel,
        Action::Predict,
        Action::OverridePrediction,
        Action::ReadModel,
        Action::SignExpertDetermination,
        Action::DpQuery,
        Action::ManageDpBudget,
    ];

    /// The action's name in policies (`Airlock::Action::"<name>"`) and ledger entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ListDatasets => "list-datasets",
            Action::ReadDataset => "read-dataset",
            Action::DownloadDataset => "download-dataset",
            Action::IngestDataset => "ingest-dataset",
            Action::RunDeid => "run-deid",
            Action::ReadDeidReport => "read-deid-report",
            Action::ReadAudit => "read-audit",
            Action::VerifyAudit => "verify-audit",
            Action::ManageUsers => "manage-users",
            Action::ManageTokens => "manage-tokens",
            Action::ConfirmRole => "confirm-role",
            Action::ManageKeys => "manage-keys",
            Action::BreakGlass => "break-glass",
            Action::ReviewBreakGlass => "review-break-glass",
            Action::ReadPatientRecord => "read-patient-record",
            Action::RegisterModel => "register-model",
            Action::ApproveModel => "approve-model",
            Action::DeployModel => "deploy-model",
            Action::Predict => "predict",
            Action::OverridePrediction => "override-prediction",
            Action::ReadModel => "read-model",
            Action::SignExpertDetermination => "sign-expert-determination",
            Action::DpQuery => "dp-query",
            Action::ManageDpBudget => "manage-dp-budget",
        }
    }

    /// The kinds of resource this action applies to, as declared in the schema. A request for
    /// any other kind is denied with an error.
    pub fn resource_kinds(self) -> &'static [ResourceKind] {
        use ResourceKind as K;
        match self {
            Action::ListDatasets
            | Action::IngestDataset
            | Action::RunDeid
            | Action::ReadDeidReport => &[K::Zone, K::Dataset],
            Action::ReadDataset
            | Action::DownloadDataset
            | Action::SignExpertDetermination
            | Action::DpQuery
            | Action::ManageDpBudget => &[K::Dataset],
            Action::ReadAudit | Action::VerifyAudit | Action::ReviewBreakGlass => &[K::Audit],
            Action::ManageUsers | Action::ManageTokens | Action::ConfirmRole => &[K::Identities],
            Action::ManageKeys => &[K::Keys],
            Action::BreakGlass => &[K::Zone, K::Patient],
            Action::ReadPatientRecord => &[K::Patient],
            Action::RegisterModel
            | Action::ApproveModel
            | Action::DeployModel
            | Action::Predict
            | Action::OverridePrediction
            | Action::ReadModel => &[K::Model],
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = AuthzError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| AuthzError::UnknownAction { name: truncate(s) })
    }
}

/// What is being acted on. Each variant is a Cedar entity type in the `Airlock` namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// A whole zone (listing, ingest, de-identification runs, break-glass).
    Zone(Zone),
    /// A dataset, with where it lives and what it is.
    Dataset {
        /// The dataset's name.
        name: String,
        /// Where it lives.
        zone: Zone,
        /// What it is.
        classification: Classification,
    },
    /// A model version.
    Model {
        /// The model's name.
        name: String,
        /// The zone the request is about: where the model is, or where it is being deployed.
        zone: Zone,
        /// Who trained it, when known (an approver must be someone else).
        trained_by: Option<ActorId>,
        /// Lifecycle state: registered, validated, approved, silent, canary, production,
        /// retired.
        state: String,
    },
    /// The ledger.
    Audit,
    /// Users and API tokens.
    Identities,
    /// The key hierarchy.
    Keys,
    /// A clinical patient record (which patient does not matter to policy).
    Patient {
        /// Where the record lives.
        zone: Zone,
    },
}

impl Resource {
    /// The resource's kind (its Cedar entity type).
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Zone(_) => ResourceKind::Zone,
            Resource::Dataset { .. } => ResourceKind::Dataset,
            Resource::Model { .. } => ResourceKind::Model,
            Resource::Audit => ResourceKind::Audit,
            Resource::Identities => ResourceKind::Identities,
            Resource::Keys => ResourceKind::Keys,
            Resource::Patient { .. } => ResourceKind::Patient,
        }
    }

    /// The zone the resource is in, for those that have one.
    pub fn zone(&self) -> Option<Zone> {
        match self {
            Resource::Zone(zone)
            | Resource::Dataset { zone, .. }
            | Resource::Model { zone, .. }
            | Resource::Patient { zone } => Some(*zone),
            Resource::Audit | Resource::Identities | Resource::Keys => None,
        }
    }
}

/// The kinds of [`Resource`], named as their Cedar entity types (`Airlock::<name>`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum ResourceKind {
    /// [`Resource::Zone`].
    Zone,
    /// [`Resource::Dataset`].
    Dataset,
    /// [`Resource::Model`].
    Model,
    /// [`Resource::Audit`].
    Audit,
    /// [`Resource::Identities`].
    Identities,
    /// [`Resource::Keys`].
    Keys,
    /// [`Resource::Patient`].
    Patient,
}

impl ResourceKind {
    /// Every kind, in a stable order.
    pub const ALL: [ResourceKind; 7] = [
        ResourceKind::Zone,
        ResourceKind::Dataset,
        ResourceKind::Model,
        ResourceKind::Audit,
        ResourceKind::Identities,
        ResourceKind::Keys,
        ResourceKind::Patient,
    ];

    /// The Cedar entity type name, without the `Airlock::` namespace.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Zone => "Zone",
            ResourceKind::Dataset => "Dataset",
            ResourceKind::Model => "Model",
            ResourceKind::Audit => "Audit",
            ResourceKind::Identities => "Identities",
            ResourceKind::Keys => "Keys",
            ResourceKind::Patient => "Patient",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One authorization question: may `principal` do `action` to `resource`, for `purpose`?
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// What they want to do.
    pub action: Action,
    /// What to.
    pub resource: &'a Resource,
    /// Why (HL7 PurposeOfUse); required for any access to PHI.
    pub purpose: Option<Purpose>,
    /// Whether the principal is acting inside an emergency-access (break-glass) session.
    pub break_glass: bool,
    /// Whether the principal authenticated with a second factor (always required of a
    /// [`PrincipalKind::User`]).
    pub mfa: bool,
}

/// Keep user-supplied names short in error messages.
fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
