//! Validation reports (issue 19): a model version is `validated` only by passing the
//! deployment's validation policy on held-out data, in a report signed with the deployment's
//! key, bound to the version's and the data's hashes and to the policy's hash, stored with the
//! version and named in the ledger.
//!
//! The held-out rows never include training rows: a row (its feature and target values) that
//! is also a row of the training split refuses the dataset, when the training data is at hand
//! to check (it is for versions trained here; an imported model's report says it was not).

use std::collections::HashSet;

use airlock_ledger::{EventType, OutcomeKind};
use airlock_models::{
    AttackConfig, DataSplit, Policy, Table, ValidationConfig, ValidationReport, evaluate,
    membership_inference_for_experiment, validate,
};
use airlock_types::{Classification, ContentHash};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{ModelName, ModelVersion, Registry, RegistryError, Transition};

const SIGNATURE_CONTEXT: &[u8] = b"airlock validation report v1\n";

/// Members and non-members the attack audits at most (its reference models still train on
/// halves of every member and non-member, as the target did on its split: four trainings of
/// half the training table's size, the attack's main cost).
pub const ATTACK_POOL: u32 = 2_000;

/// Whether the held-out rows were checked against the training split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Overlap {
    /// Checked (the training data was at hand).
    pub checked: bool,
    /// Training rows found among the held-out rows (a report is written only with none).
    pub rows: u64,
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportBody {
    /// The model, `name@hash`.
    pub model: String,
    /// The version's hash.
    pub model_hash: String,
    /// The held-out dataset version, `name@version`.
    pub dataset: String,
    /// Its content hash.
    pub dataset_hash: String,
    /// The policy's hash.
    pub policy_hash: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// The code that computed it.
    pub engine_version: String,
    /// The operating threshold (a score at or above it is positive).
    pub threshold: f64,
    /// The training-row check.
    pub training_overlap: Overlap,
    /// Rows the model refused to score (a value outside its signature: a category it never
    /// saw, a number outside the training range), left out of every figure.
    pub refused_rows: u64,
    /// Metrics, groups, disparities and the membership-inference attack (at the top level of
    /// the report: the field names are the contract).
    #[serde(flatten)]
    pub report: ValidationReport,
    /// Whether every rule of the policy held.
    pub passed: bool,
    /// Each rule that failed, by name, with the figure.
    pub reasons: Vec<String>,
}

/// A signed validation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignedReport {
    /// The first 16 hex digits of the SHA-256 of what is signed.
    pub id: String,
    /// The report.
    #[serde(flatten)]
    pub body: ReportBody,
    /// The deployment's Ed25519 signature (hex).
    pub signature: String,
}

impl ReportBody {
    fn message(&self) -> Vec<u8> {
        let mut m = SIGNATURE_CONTEXT.to_vec();
        m.extend(serde_json::to_vec(self).unwrap_or_default());
        m
    }
}

/// The held-out data of a validation.
#[derive(Debug)]
pub struct ValidationData<'a> {
    /// The dataset version, `name@version`.
    pub dataset: String,
    /// Its content hash.
    pub dataset_hash: ContentHash,
    /// Its rows: the model's features, the target and the sensitive columns.
    pub table: &'a Table,
    /// The training table the version was trained on, when at hand (training-row check and
    /// membership inference).
    pub training: Option<&'a Table>,
    /// The columns to report groups by.
    pub sensitive: Vec<String>,
    /// The target column and its positive value (from the version's experiment when `None`).
    pub target: Option<(String, String)>,
    /// The operating threshold.
    pub threshold: f64,
    /// Bootstrap resamples.
    pub resamples: u32,
    /// The rows are the held-out split of the training table itself, chosen by index: no row
    /// of the training split is among them by construction (equal-valued rows may be).
    pub held_out_split: bool,
}

fn data_err(reason: impl Into<String>) -> RegistryError {
    RegistryError::Data {
        reason: reason.into(),
    }
}

/// A row's identity for the training-row check: its values in `columns`, hashed.
fn row_hashes(
    table: &Table,
    columns: &[&str],
    rows: impl Iterator<Item = usize>,
) -> Result<Vec<[u8; 32]>, RegistryError> {
    let cols = columns
        .iter()
        .map(|c| table.column(c).map(|c| c.cells()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .map(|r| {
            let mut h = sha2::Sha256::new();
            for c in &cols {
                h.update(c.get(r).map_or("", String::as_str).as_bytes());
                h.update([0x1f]);
            }
            h.finalize().into()
        })
        .collect())
}

/// The rows `rows` of a table, in that order.
fn subset(table: &Table, rows: &[usize]) -> Result<Table, RegistryError> {
    let columns = table
        .columns()
        .iter()
        .map(|c| {
            let cells = c.cells();
            (
                c.name().to_owned(),
                rows.iter()
                    .map(|&r| cells.get(r).cloned().unwrap_or_default())
                    .collect(),
            )
        })
        .collect();
    Ok(Table::from_columns(columns)?)
}

/// Reports stay where the version was validated, the zone of its training data, when the
/// version itself moves to the clinical zone.
fn reports_zone(v: &ModelVersion) -> airlock_types::Zone {
    v.card.training_data.zone
}

fn blob_name(v: &ModelVersion) -> String {
    format!("validation-reports/{}/{}", v.name, v.hash.to_hex())
}

impl Registry {
    /// The validation reports of a version, oldest first.
    pub async fn reports(&self, v: &ModelVersion) -> Result<Vec<SignedReport>, RegistryError> {
        match self.home().blob(&blob_name(v), reports_zone(v)).await? {
            Some(b) => serde_json::from_slice(&b).map_err(|_| RegistryError::Corrupt {
                name: v.name.to_string(),
                reason: "its validation reports are not readable",
            }),
            None => Ok(Vec::new()),
        }
    }

    /// The newest report of `v` that verifies with this deployment's key and passed `policy`.
    pub async fn passing_report(
        &self,
        v: &ModelVersion,
        policy: &Policy,
    ) -> Result<Option<SignedReport>, RegistryError> {
        let want = policy.hash().to_hex();
        Ok(self.reports(v).await?.into_iter().rev().find(|r| {
            r.body.passed
                && r.body.policy_hash == want
                && r.body.model_hash == v.hash.to_hex()
                && hex::decode(&r.signature)
                    .is_ok_and(|s| self.home().verify_artifact(&r.body.message(), &s))
        }))
    }

    /// Validate a registered version on held-out data under the registry's policy: the report
    /// is computed,
    /// signed, stored with the version and recorded in the ledger; when it passes, the version
    /// becomes `validated`. A failed report is kept too (the committee sees why).
    pub async fn validate_on(
        &self,
        name: &ModelName,
        prefix: &str,
        data: ValidationData<'_>,
        reason: &str,
    ) -> Result<(SignedReport, Option<Transition>), RegistryError> {
        let policy = self.policy();
        let v = self.get(name, prefix).await?;
        let loaded = self.load(&v).await?;
        let experiment = v.card.experiment.clone();
        let (target, positive) = match (&data.target, &experiment) {
            (Some(t), _) => t.clone(),
            (None, Some(e)) => (e.target.clone(), e.positive.clone()),
            (None, None) => {
                return Err(data_err(
                    "the version has no training record: name the target and its positive value",
                ));
            }
        };
        let table = data.table;
        let mut key_cols: Vec<&str> = loaded.features.iter().map(String::as_str).collect();
        key_cols.push(target.as_str());
        // The training-row check.
        let mut overlap = Overlap {
            checked: false,
            rows: 0,
        };
        if data.held_out_split {
            overlap.checked = true;
        } else if let (Some(training), Some(e)) = (data.training, &experiment) {
            let labels: Vec<bool> = training
                .column(&target)?
                .cells()
                .iter()
                .map(|c| *c == positive)
                .collect();
            let split = DataSplit::stratified(&labels, e.split.test_fraction, e.seed);
            let trained: HashSet<[u8; 32]> =
                row_hashes(training, &key_cols, split.train.iter().copied())?
                    .into_iter()
                    .collect();
            let held = row_hashes(table, &key_cols, 0..table.rows())?;
            overlap = Overlap {
                checked: true,
                rows: held.iter().filter(|h| trained.contains(*h)).count() as u64,
            };
        }
        // Rows are compared by value (the model's features and the target), so two patients
        // with the same values count too: a few such rows happen in any real data set, and are
        // reported; a data set mostly made of training rows is the training data, refused.
        if overlap.rows > 0 && overlap.rows * 2 > table.rows() as u64 {
            return Err(data_err(format!(
                "{} of the dataset's {} rows are training rows of this version: validate on held-out data",
                overlap.rows,
                table.rows()
            )));
        }
        // Score every row; rows the signature refuses are counted and left out.
        let mut kept = Vec::with_capacity(table.rows());
        let mut scores = Vec::with_capacity(table.rows());
        for row in 0..table.rows() {
            let rec = crate::training::record_at(table, &loaded.signature, row);
            if let Ok(s) = loaded.score(&rec) {
                kept.push(row);
                scores.push(s);
            }
        }
        let refused_rows = (table.rows() - kept.len()) as u64;
        if kept.is_empty() {
            return Err(data_err(
                "the model refused every row of the dataset (no row fits its signature)",
            ));
        }
        let scored = if refused_rows > 0 {
            subset(table, &kept)?
        } else {
            table.clone()
        };
        let labels: Vec<bool> = scored
            .column(&target)?
            .cells()
            .iter()
            .map(|c| *c == positive)
            .collect();
        let sensitive = data
            .sensitive
            .iter()
            .map(|s| scored.column(s))
            .collect::<Result<Vec<_>, _>>()?;
        let config = ValidationConfig {
            threshold: data.threshold,
            min_group_size: policy.min_group_size,
            resamples: data.resamples,
            seed: 0,
        };
        let mut report = validate(&labels, &scores, &sensitive, &config)?;
        if let (Some(training), Some(e)) = (data.training, &experiment)
            && let Some(model) = self.trained_model(&v).await?
        {
            let attack = AttackConfig {
                max_members: ATTACK_POOL,
                max_non_members: ATTACK_POOL,
                ..AttackConfig::default()
            };
            report.membership_inference = Some(membership_inference_for_experiment(
                &model, e, training, &attack,
            )?);
        }
        let verdict = evaluate(&report, policy);
        let body = ReportBody {
            model: v.label(),
            model_hash: v.hash.to_hex(),
            dataset: data.dataset.clone(),
            dataset_hash: data.dataset_hash.to_hex(),
            policy_hash: policy.hash().to_hex(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            engine_version: airlock_models::code_version(),
            threshold: data.threshold,
            training_overlap: overlap,
            refused_rows,
            report,
            passed: verdict.passed,
            reasons: verdict.reasons.iter().map(ToString::to_string).collect(),
        };
        let signature = self.home().sign_artifact(&body.message())?;
        let id: String = hex::encode(sha2::Sha256::digest(body.message()))
            .chars()
            .take(16)
            .collect();
        let signed = SignedReport {
            id,
            body,
            signature: hex::encode(signature),
        };
        let mut all = self.reports(&v).await?;
        all.push(signed.clone());
        let bytes = serde_json::to_vec_pretty(&all)
            .map_err(|_| data_err("the report could not be written"))?;
        // Figures and group labels only, no row: stored as de-identified, with the version.
        self.home()
            .put_blob(
                &blob_name(&v),
                reports_zone(&v),
                Classification::Deidentified,
                &bytes,
            )
            .await?;
        let home = self.home();
        home.audit(
            home.entry(
                EventType::ModelApprove,
                v.zone,
                if signed.body.passed {
                    OutcomeKind::Success
                } else {
                    OutcomeKind::Failure
                },
            )
            .with_resource(format!("model:{}@{}", v.name, v.hash.to_hex()))
            .with_resource(signed.body.dataset.clone())
            .with_reason(format!(
                "validation report {} ({}): {}",
                signed.id,
                if signed.body.passed {
                    "passed"
                } else {
                    "failed"
                },
                if signed.body.passed {
                    format!(
                        "policy {}",
                        &signed.body.policy_hash[..12.min(signed.body.policy_hash.len())]
                    )
                } else {
                    signed.body.reasons.join("; ")
                }
            )),
        )
        .await?;
        // A version already past `registered` (one in production, re-measured on new data
        // to compare a candidate with it) keeps its state: the report is stored all the same.
        let transition = if signed.body.passed && v.state == crate::State::Registered {
            Some(
                self.validate(
                    name,
                    prefix,
                    &format!("{reason} (validation report {})", signed.id),
                )
                .await?,
            )
        } else {
            None
        };
        Ok((signed, transition))
    }
}

/// What to validate a version on.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    /// The held-out dataset version, `name[@version]` (a CSV version in development or staging).
    pub dataset: String,
    /// Its CSV file, when it has several.
    pub file: Option<String>,
    /// Columns to report groups by (`race`, `gender`...).
    pub sensitive: Vec<String>,
    /// The operating threshold (0.5 when absent).
    pub threshold: Option<f64>,
    /// Bootstrap resamples (1,000 when absent).
    pub resamples: Option<u32>,
}

/// Validate a version on a dataset version of the deployment, read as `home`'s actor (the zone
/// rules apply): the held-out rows come from `req.dataset`; the training rows, for the
/// training-row check and the attack, from the version's training dataset when it is still
/// there with the hash the version was trained on.
pub async fn validate_dataset(
    home: &airlock_store::Home,
    registry: &Registry,
    name: &ModelName,
    prefix: &str,
    req: &ValidateRequest,
    reason: &str,
) -> Result<(SignedReport, Option<Transition>), RegistryError> {
    let v = registry.get(name, prefix).await?;
    let experiment = v.card.experiment.clone().ok_or_else(|| {
        data_err("the version has no training record (imported): its target is not known")
    })?;
    let mut columns: Vec<&str> = experiment.features.iter().map(String::as_str).collect();
    columns.push(experiment.target.as_str());
    for s in &req.sensitive {
        if !columns.contains(&s.as_str()) {
            columns.push(s.as_str());
        }
    }
    let (held_v, mut held) =
        crate::training::read_table(home, &req.dataset, req.file.as_deref(), &columns).await?;
    let mut note = String::new();
    if held_v.manifest_hash == experiment.dataset_hash {
        // The training dataset itself: only the rows its split held out.
        let labels: Vec<bool> = held
            .column(&experiment.target)?
            .cells()
            .iter()
            .map(|c| *c == experiment.positive)
            .collect();
        let split = DataSplit::stratified(&labels, experiment.split.test_fraction, experiment.seed);
        held = subset(&held, &split.test)?;
        note = " (its held-out split)".into();
    }
    let mut train_cols: Vec<&str> = experiment.features.iter().map(String::as_str).collect();
    train_cols.push(experiment.target.as_str());
    let training =
        match crate::training::read_table(home, &v.card.training_data.dataset, None, &train_cols)
            .await
        {
            Ok((tv, t)) if tv.manifest_hash == experiment.dataset_hash => Some(t),
            _ => None,
        };
    let data = ValidationData {
        dataset: format!("{}@{}{note}", held_v.dataset, held_v.version),
        dataset_hash: held_v.manifest_hash,
        table: &held,
        training: training.as_ref(),
        sensitive: req.sensitive.clone(),
        target: None,
        threshold: req.threshold.unwrap_or(0.5),
        resamples: req.resamples.unwrap_or(1_000),
        held_out_split: !note.is_empty(),
    };
    registry.validate_on(name, prefix, data, reason).await
}
