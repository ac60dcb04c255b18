//! # airlock-registry: which model version may answer for a patient, and who put it there?
//!
//! Model versions are content-addressed (SHA-256 of the [`Package`]: artifact plus the
//! signature of the inputs it accepts), signed with the deployment's Ed25519 key together with
//! their [`ModelCard`], stored encrypted in the zone of the data they were trained on, and moved
//! through a [`State`] lifecycle in which every step is a ledger entry and a row of the model's
//! history. Approval needs a quorum of roles (by default a clinical reviewer and the privacy
//! officer, two different people, neither of whom trained the model); a model reaches patients
//! only through silent mode and a canary. Loading verifies hash and signature; a version that
//! fails is refused, and the refusal is in the ledger.
//!
//! [`serving`] routes each request (the canary takes a keyed, per-patient deterministic share)
//! and builds the ledger's prediction records; [`report`] compares silent and shown versions on
//! the same requests from the ledger and posted outcomes; [`monitoring`] keeps the prediction
//! log (what each prediction was given and gave, batched into encrypted clinical blobs) that
//! drift and performance monitoring read.
//!
//! Authorization is the caller's: the registry enforces the lifecycle, the quorum and the zone
//! rules; the server and CLI ask the policy who may ask for each step.

mod error;
pub mod monitoring;
mod package;
pub mod plan;
mod registry;
pub mod report;
pub mod serving;
mod state;
pub mod training;
pub mod validation;

pub use error::RegistryError;
pub use package::{
    ArtifactKind, ModelCard, ModelName, OnnxRuntime, Package, Scorer, TrainingData, VectorScorer,
};
pub use registry::{
    Approval, ApprovalOutcome, DEFAULT_APPROVER_ROLES, MIN_PREFIX, ModelVersion, Registry,
    Transition,
};
pub use serving::{Deployment, LoadedModel, Routes, Scored, ScoredRequest};
pub use state::State;
pub use training::{
    BatchScores, ImportRequest, TrainRequest, TrainResult, import_model, score_dataset,
    train_on_dataset,
};
