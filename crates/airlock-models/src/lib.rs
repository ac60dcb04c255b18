//! # airlock-models: which model was trained on what, how good is it, and what may it be asked?
//!
//! A pure engine (no I/O beyond reading a CSV from a caller's reader, no async runtime, no
//! database, no ML runtime) that trains two kinds of binary classifier on a [`Table`]:
//! L2-regularised logistic regression fitted by Newton's method on standardised inputs
//! ([`logistic`]), and histogram-based gradient-boosted trees on log-loss ([`gbdt`]). Both
//! implement [`Model`] and serialise to canonical bytes (little-endian integers, IEEE-754 float
//! bits, length prefixes: [`codec`]), so a [`TrainedModel`] (signature plus model) is named by the SHA-256
//! of its bytes.
//!
//! **Reproducibility.** [`train`] splits the table with a seeded, stratified shuffle
//! ([`DataSplit`]), fits single-threaded in a fixed order, and records an [`Experiment`]: dataset
//! hash, features, [`Signature`], hyper-parameters, seed, engine version, held-out [`Metrics`]
//! (AUROC as the Mann-Whitney statistic, average precision as scikit-learn defines it, Brier
//! score, log loss, a ten-bin reliability curve), training time and model hash. The same table,
//! configuration and seed give the same model hash; only the measured time differs.
//!
//! **What a model may be asked.** A [`Signature`] lists the features: numeric with an allowed
//! range, or categorical with allowed categories. [`TrainedModel::predict`] validates a
//! [`Record`] against it before encoding (one-hot for logistic regression, ordinal codes for
//! trees); a refusal names the field and the rule, never the value.
//!
//! **Validation.** [`validate`] measures held-out scores overall and per sensitive group with
//! seeded bootstrap intervals and Fairlearn's disparities ([`validation`]);
//! [`membership_inference`] attacks the model's own training rows with offline RMIA and
//! reference models trained here ([`membership`]); [`evaluate`] checks the result against a
//! TOML [`Policy`] and names every failed rule ([`policy`]).
//!
//! **No values in errors.** [`ModelsError`] carries column names, row indices, offsets and rules.
//! [`Table`], [`Column`] and [`Value`] print their shape, not their cells.

pub mod codec;
pub mod dpsgd;
pub mod gbdt;
pub mod logistic;
pub mod membership;
pub mod metrics;
pub mod monitor;
pub mod policy;
pub mod reference;
pub mod synth;
pub mod testing;
pub mod validation;

mod error;
mod model;
mod rng;
mod signature;
mod table;
mod train;

pub use dpsgd::DpSgd;
pub use error::ModelsError;
pub use gbdt::{GbdtModel, GbdtParams};
pub use logistic::{LogisticModel, LogisticParams};
pub use membership::{
    Attack, AttackConfig, AttackTarget, MembershipInference, membership_inference,
    membership_inference_for_experiment,
};
pub use metrics::{CalibrationBin, Metrics};
pub use model::{AnyModel, Model, ModelKind};
pub use policy::{
    DEFAULT_POLICY_TOML, DisparityRules, Evidence, Policy, PolicyFailure, Verdict, evaluate,
};
pub use signature::{Encoding, Feature, FeatureKind, FeatureSpec, Record, Signature, Value};
pub use table::{Column, Table};
pub use train::{
    DataSplit, Experiment, Params, SplitSummary, TrainConfig, TrainOutcome, TrainedModel,
    code_version, train,
};
pub use validation::{
    AttributeDisparities, CalibrationFit, Estimate, GroupMetric, GroupMetrics, OverallMetrics,
    ValidationConfig, ValidationReport, calibration_fit, expected_calibration_error, validate,
};
