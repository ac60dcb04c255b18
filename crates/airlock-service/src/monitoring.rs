//! Production monitoring: is a deployed model still seeing the data it was approved on, and how
//! is it doing? Every served prediction (shown or silent) is kept in the prediction log (the
//! values it was given, its score), batched into encrypted clinical blobs; a report compares a
//! window of it with the reference profile the version was registered with (drift per feature
//! and for the score, on Evidently's definitions), estimates performance from the scores alone
//! (NannyML's CBPE), and measures it where outcomes have been posted. Reports hold aggregates
//! and the counts behind each; no logged row leaves the clinical zone.
//!
//! Offline, two development datasets can be compared the same way ([`Caller::dataset_drift`]).

use std::collections::BTreeMap;
use std::time::Duration;

use airlock_authz::Action;
use airlock_ledger::{EventType, OutcomeKind};
use airlock_models::monitor::{self, ColumnProfile, Drift, DriftOptions, Estimated, Kind, Profile};
use airlock_models::{Record, Table, Value as FeatureValue};
use airlock_registry::monitoring::LoggedPrediction;
use airlock_registry::{ModelName, Scored};
use airlock_store::{DatasetVersion, parse_version_spec};
use airlock_types::Zone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::models::{model_name, resource};
use crate::{Caller, LedgerResource, Service, ServiceError};

/// Rows buffered before the background writer is woken to write a batch.
pub const LOG_BATCH: usize = 256;
/// Rows buffered beyond which a request writes the batch itself (the writer is behind or
/// failing: memory stays bounded and the request waits, rather than the log losing rows).
pub const LOG_MAX_PENDING: usize = 64 * LOG_BATCH;
/// The longest a served prediction waits in memory before its batch is written. (A crash loses
/// at most this much of the log; the ledger keeps every prediction regardless.)
pub const LOG_INTERVAL: Duration = Duration::from_secs(2);
/// Predictions per version in a report's window unless the caller says otherwise.
pub const DEFAULT_WINDOW: usize = 1000;
/// The largest window a report takes.
pub const MAX_WINDOW: usize = 1_000_000;

/// How often the server erases the prediction log's batches past their retention period.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// What one retention sweep of the prediction log erased.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RetentionSweep {
    /// The retention period, in days (`monitoring.prediction_log_days`).
    pub days: u32,
    /// Batches whose newest prediction was logged before this time were erased.
    pub before: String,
    /// Per model with something erased.
    pub models: Vec<ModelErased>,
}

/// One model's log erased by a sweep.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ModelErased {
    /// The model.
    pub model: String,
    /// Batches erased.
    pub batches: u64,
    /// Logged predictions in them.
    pub predictions: u64,
    /// The erasure's ledger entry.
    pub ledger_index: u64,
}

/// Served predictions not yet in the prediction log.
#[derive(Default)]
pub(crate) struct LogBuffer {
    pending: std::sync::Mutex<Vec<(ModelName, LoggedPrediction)>>,
    /// One batch writer at a time, so batches stay in ledger order.
    writer: tokio::sync::Mutex<()>,
    /// Wakes the background writer when a batch is full (its own handle: the writer waits on
    /// it without keeping the service alive).
    wake: std::sync::Arc<tokio::sync::Notify>,
    flusher: std::sync::OnceLock<()>,
    /// One evaluation of monitoring rules at a time (the background task and callers), so an
    /// alert is never fired twice by two evaluations that both saw it clear.
    pub(crate) evaluating: tokio::sync::Mutex<()>,
    /// Per model, predictions logged since its rules were last evaluated, and when that was.
    since_evaluation: std::sync::Mutex<BTreeMap<ModelName, (usize, std::time::Instant)>>,
}

/// A logged prediction's feature values, in the version's order (numbers as shortest decimals).
pub fn logged_values(features: &[String], record: &Record) -> Vec<String> {
    features
        .iter()
        .map(|f| match record.get(f) {
            Some(FeatureValue::Number(x)) => x.to_string(),
            Some(FeatureValue::Text(t)) => t.clone(),
            None => String::new(),
        })
        .collect()
}

impl Service {
    /// Queue one request's scored versions for the prediction log (`first` is the ledger index
    /// of the first entry, the prediction id).
    pub(crate) async fn log_predictions(
        &self,
        first: u64,
        scored: &[(&airlock_registry::LoadedModel, &Scored)],
        record: &Record,
    ) -> Result<(), ServiceError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let rows = scored.iter().enumerate().map(|(i, (m, s))| {
            (
                m.version.name.clone(),
                LoggedPrediction {
                    index: first + i as u64,
                    request: first,
                    version: m.version.hash.to_hex(),
                    shown: s.display == airlock_ledger::Display::Shown,
                    at: at.clone(),
                    score: s.score,
                    values: logged_values(&m.features, record),
                },
            )
        });
        self.log_rows(rows.collect()).await
    }

    /// Queue logged predictions. The background writer writes them once [`LOG_BATCH`] rows
    /// wait or within [`LOG_INTERVAL`], off the request's path; past [`LOG_MAX_PENDING`] the
    /// caller writes them itself.
    pub async fn log_rows(
        &self,
        rows: Vec<(ModelName, LoggedPrediction)>,
    ) -> Result<(), ServiceError> {
        let waiting = {
            let mut pending = self
                .inner
                .prediction_log
                .pending
                .lock()
                .map_err(|_| ServiceError::internal("prediction log lock"))?;
            pending.extend(rows);
            pending.len()
        };
        let background = self.start_log_writer();
        if waiting >= LOG_MAX_PENDING || (!background && waiting >= LOG_BATCH) {
            self.flush_prediction_log().await?;
        } else if waiting >= LOG_BATCH {
            self.inner.prediction_log.wake.notify_one();
        }
        Ok(())
    }

    /// Write every buffered prediction to the log (a batch per model). Reports call this first;
    /// call it before stopping.
    pub async fn flush_prediction_log(&self) -> Result<(), ServiceError> {
        let _one = self.inner.prediction_log.writer.lock().await;
        let rows = {
            let mut pending = self
                .inner
                .prediction_log
                .pending
                .lock()
                .map_err(|_| ServiceError::internal("prediction log lock"))?;
            std::mem::take(&mut *pending)
        };
        let mut by_model: BTreeMap<ModelName, Vec<LoggedPrediction>> = BTreeMap::new();
        for (m, r) in rows {
            by_model.entry(m).or_default().push(r);
        }
        let registry = self.registry();
        for (model, rows) in by_model {
            registry.log_predictions(&model, &rows).await?;
            if let Ok(mut due) = self.inner.prediction_log.since_evaluation.lock() {
                due.entry(model).or_insert((0, std::time::Instant::now())).0 += rows.len();
            }
        }
        Ok(())
    }

    /// Evaluate the rules of every model with enough new predictions (or new predictions
    /// waiting longer than [`crate::alerts::EVALUATE_INTERVAL`]).
    async fn evaluate_due(&self) {
        let due: Vec<ModelName> = match self.inner.prediction_log.since_evaluation.lock() {
            Ok(mut m) => {
                let now = std::time::Instant::now();
                let ready: Vec<ModelName> = m
                    .iter()
                    .filter(|(_, (n, since))| {
                        *n >= crate::alerts::EVALUATE_EVERY
                            || (*n > 0
                                && now.duration_since(*since) >= crate::alerts::EVALUATE_INTERVAL)
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in &ready {
                    m.insert(k.clone(), (0, now));
                }
                ready
            }
            Err(_) => Vec::new(),
        };
        for model in due {
            if let Err(e) = self.evaluate_monitoring(&model).await {
                tracing::warn!(model = %model, error = %e, "monitoring rules were not evaluated");
            }
        }
    }

    /// Erase the prediction log's batches past the deployment's retention period
    /// (`monitoring.prediction_log_days`); each model's erasure is a ledger entry. The server
    /// runs this every [`RETENTION_INTERVAL`]; `airlock monitor expire` on demand.
    pub async fn expire_prediction_log(&self) -> Result<RetentionSweep, ServiceError> {
        let days = self.home().config().monitoring.prediction_log_days;
        let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        self.expire_prediction_log_before(days, before).await
    }

    /// Erase the prediction log's batches whose newest prediction is older than `before`.
    pub async fn expire_prediction_log_before(
        &self,
        days: u32,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<RetentionSweep, ServiceError> {
        // Logged times are UTC with microseconds and `Z`: they compare as text.
        let cut = before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let erased = self.registry().expire_prediction_log(&cut).await?;
        let home = self.home();
        let mut models = Vec::with_capacity(erased.len());
        for (model, e) in erased {
            let ledger_index = home
                .audit(
                    home.entry(EventType::Erasure, Zone::Clinical, OutcomeKind::Success)
                        .with_resource(LedgerResource::PredictionLog(model.clone()).to_string())
                        .with_reason(format!(
                            "{} logged prediction(s) in {} batch(es) before {cut} erased: \
                             retention {days} day(s); their data keys destroyed",
                            e.predictions, e.batches
                        )),
                )
                .await?;
            models.push(ModelErased {
                model: model.to_string(),
                batches: e.batches,
                predictions: e.predictions,
                ledger_index,
            });
        }
        Ok(RetentionSweep {
            days,
            before: cut,
            models,
        })
    }

    /// Start the hourly retention sweep of the prediction log (first shortly after start, so
    /// a restarted server catches up); not outside a runtime. The task ends with the service.
    pub fn start_retention(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(10);
            loop {
                tokio::time::sleep(wait).await;
                wait = RETENTION_INTERVAL;
                let Some(inner) = weak.upgrade() else { break };
                let service = Service { inner };
                match service.expire_prediction_log().await {
                    Ok(sweep) => {
                        for m in &sweep.models {
                            tracing::info!(model = %m.model, batches = m.batches, predictions = m.predictions, "prediction log past its retention erased");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the prediction log's retention sweep failed; retrying next hour")
                    }
                }
            }
        });
    }

    /// Start the background writer once; whether one runs (not outside a runtime).
    fn start_log_writer(&self) -> bool {
        let log = &self.inner.prediction_log;
        if log.flusher.get().is_some() {
            return true;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return false;
        }
        if log.flusher.set(()).is_ok() {
            // A weak handle: the task ends with the service instead of keeping it alive.
            let weak = std::sync::Arc::downgrade(&self.inner);
            let wake = std::sync::Arc::clone(&log.wake);
            tokio::spawn(async move {
                loop {
                    // A full batch or the interval, whichever comes first.
                    tokio::select! {
                        () = tokio::time::sleep(LOG_INTERVAL) => {}
                        () = wake.notified() => {}
                    }
                    let Some(inner) = weak.upgrade() else { break };
                    let service = Service { inner };
                    if let Err(e) = service.flush_prediction_log().await {
                        tracing::warn!(error = %e, "the prediction log batch was not written; retrying");
                    }
                    service.evaluate_due().await;
                }
            });
        }
        true
    }
}

/// Which predictions a report covers.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorQuery {
    /// One version (hash or unique prefix); every version with logged predictions otherwise.
    #[serde(default)]
    pub version: Option<String>,
    /// The most recent this-many predictions per version (default 1,000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub last: Option<u64>,
    /// Only predictions at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Statistical tests (KS, chi-squared, z) for every feature at any reference size, instead
    /// of Evidently's distances for large references.
    #[serde(default)]
    pub tests: Option<bool>,
    /// The operating threshold for CBPE and realised TPR/FPR (default 0.5).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: Option<f64>,
}

/// The predictions a figure rests on.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Window {
    /// Predictions in the window.
    pub predictions: u64,
    /// The first and last prediction's ledger index.
    pub first_index: Option<u64>,
    /// The last.
    pub last_index: Option<u64>,
    /// The first and last prediction's time.
    pub from: Option<String>,
    /// The last.
    pub to: Option<String>,
}

/// One side of a drift comparison.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Side {
    /// What it is: a dataset version, a model version's reference, or a prediction window.
    pub name: String,
    /// Rows in it.
    pub rows: u64,
}

/// A drift report: per feature (and for the score), the test, its statistic, its p-value
/// where it has one, the threshold and the verdict; the share drifted and the dataset verdict.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DriftReport {
    /// The reference side.
    pub reference: Side,
    /// The current side.
    pub current: Side,
    /// The predictions compared, for a model's report.
    pub window: Option<Window>,
    /// The figures.
    #[serde(flatten)]
    pub drift: Drift,
}

/// Realised performance where outcomes were posted.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Realised {
    /// Predictions in the window with an outcome.
    pub outcomes: u64,
    /// Positives among them.
    pub positives: u64,
    /// AUROC (absent while one class is missing).
    pub auroc: Option<f64>,
    /// Expected calibration error (ten bins).
    pub ece: Option<f64>,
    /// True-positive rate at the threshold.
    pub tpr: Option<f64>,
    /// False-positive rate at the threshold.
    pub fpr: Option<f64>,
}

/// Realised performance in one group of an attribute the validation report grouped by (and the
/// model takes as a feature, so the log holds it).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GroupRealised {
    /// The attribute.
    pub attribute: String,
    /// The group's value.
    pub value: String,
    /// Fewer outcomes than the validation's minimum group size: figures withheld.
    pub too_small: bool,
    /// The figures (absent when too small).
    pub realised: Option<Realised>,
    /// Outcomes in the group.
    pub outcomes: u64,
}

/// What CBPE rests on: the version's latest validation report, whose calibration says whether
/// scores can stand in for probabilities.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidationBasis {
    /// The report's id.
    pub report: String,
    /// Held-out AUROC at validation.
    pub auroc: f64,
    /// Held-out expected calibration error at validation: CBPE's estimates are as good as this
    /// is small.
    pub ece: f64,
    /// The operating threshold validation used (the report's default threshold).
    pub threshold: f64,
}

/// One version's monitoring.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VersionMonitoring {
    /// The version's hash.
    pub version: String,
    /// Its state now.
    pub state: String,
    /// Predictions shown and silent in the window.
    pub shown: u64,
    /// Silent.
    pub silent: u64,
    /// Drift against the version's reference, or why there is none.
    pub drift: Option<DriftReport>,
    /// Why there is no drift report (no reference profile, no predictions).
    pub no_drift: Option<String>,
    /// Performance estimated from the scores (NannyML's CBPE).
    pub estimated: Option<Estimated>,
    /// The validation that estimate leans on, when the version has one.
    pub validation: Option<ValidationBasis>,
    /// Performance measured on posted outcomes.
    pub realised: Realised,
    /// The same per group, for the validation's attributes the model takes as features.
    pub realised_by_group: Vec<GroupRealised>,
}

/// A model's monitoring report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MonitoringReport {
    /// The model.
    pub model: String,
    /// The threshold asked for (each version otherwise uses its validation's, else 0.5).
    pub threshold: Option<f64>,
    /// One entry per version with logged predictions in the window.
    pub versions: Vec<VersionMonitoring>,
}

/// An offline comparison of two development datasets.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftBody {
    /// `NAME[@VERSION]` of the reference.
    #[schemars(with = "crate::schema::DatasetSpec")]
    pub reference: String,
    /// `NAME[@VERSION]` of the current data.
    #[schemars(with = "crate::schema::DatasetSpec")]
    pub current: String,
    /// The CSV file of each version, when it has several.
    #[serde(default)]
    pub file: Option<String>,
    /// For FHIR versions: the SQL-on-FHIR view (registered for each dataset, or built in)
    /// whose rows are compared; instead of `file`.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub view: Option<String>,
    /// Columns to compare (every column of the reference by default).
    #[serde(default)]
    pub features: Vec<String>,
    /// Methods and thresholds per column, and the dataset-drift share.
    #[serde(default)]
    pub options: Option<DriftOptions>,
}

pub(crate) fn current_profile(
    reference: &Profile,
    names: &[String],
    rows: &[&LoggedPrediction],
) -> Result<Profile, ServiceError> {
    let mut columns = Vec::with_capacity(reference.columns.len());
    for r in &reference.columns {
        let Some(pos) = names.iter().position(|n| *n == r.name) else {
            return Err(ServiceError::invalid(
                "reference",
                format!("feature `{}` is not in the version's signature", r.name),
            ));
        };
        let cells: Vec<String> = rows
            .iter()
            .map(|p| p.values.get(pos).cloned().unwrap_or_default())
            .collect();
        columns.push(
            monitor::profile_cells(&r.name, &cells, r.sample.kind())
                .map_err(|e| ServiceError::invalid("prediction log", e.to_string()))?,
        );
    }
    Ok(Profile {
        rows: rows.len() as u64,
        columns,
    })
}

/// A window of a version's predictions against its reference: every feature, and the score.
pub(crate) fn window_drift(
    reference: &monitor::Reference,
    features: &[String],
    window: &[&LoggedPrediction],
    options: &DriftOptions,
) -> Result<Drift, ServiceError> {
    let current = current_profile(&reference.features, features, window)?;
    let score = ColumnProfile {
        name: "score".into(),
        sample: monitor::Sample::Numeric(monitor::Numbers::from_values(
            window.iter().map(|p| p.score).collect(),
        )),
        missing: 0,
    };
    monitor::drift(
        &reference.features,
        &current,
        Some((&reference.score, &score)),
        options,
    )
    .map_err(|e| ServiceError::invalid("prediction log", e.to_string()))
}

fn realised(pairs: &[(bool, f64)], threshold: f64) -> Realised {
    let labels: Vec<bool> = pairs.iter().map(|p| p.0).collect();
    let scores: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let positives = labels.iter().filter(|&&y| y).count() as u64;
    let negatives = labels.len() as u64 - positives;
    let hits = |want: bool| {
        pairs
            .iter()
            .filter(|(y, s)| *y == want && *s >= threshold)
            .count() as f64
    };
    Realised {
        outcomes: labels.len() as u64,
        positives,
        auroc: airlock_models::metrics::auroc(&labels, &scores).ok(),
        ece: airlock_models::validation::expected_calibration_error(&labels, &scores).ok(),
        tpr: (positives > 0).then(|| hits(true) / positives as f64),
        fpr: (negatives > 0).then(|| hits(false) / negatives as f64),
    }
}

impl Caller {
    /// A model's monitoring report: per version with logged predictions in the window, drift
    /// against its reference, CBPE, and realised performance. Needs `read-model`.
    pub async fn monitoring_report(
        &self,
        name: &str,
        query: MonitorQuery,
    ) -> Result<MonitoringReport, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let versions = reg.versions(&name).await?;
        let Some(latest) = versions.last() else {
            return Err(ServiceError::NotFound { what: "model" });
        };
        self.authorize(Action::ReadModel, &resource(latest, Zone::Clinical))
            .await?;
        if query.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err(ServiceError::invalid("threshold", "must be in [0, 1]"));
        }
        let last = query
            .last
            .map_or(DEFAULT_WINDOW, |n| usize::try_from(n).unwrap_or(usize::MAX));
        if !(1..=MAX_WINDOW).contains(&last) {
            return Err(ServiceError::invalid("last", "from 1 to 1,000,000"));
        }
        let only = match &query.version {
            Some(v) => Some(reg.get(&name, v).await?.hash.to_hex()),
            None => None,
        };
        self.service().flush_prediction_log().await?;
        // A window of the latest predictions reads the newest batches only, until each version
        // that can be serving (or the one asked for) has its window; a time window reads all.
        let logged = match &query.since {
            Some(_) => reg.logged_predictions(&name, 0).await?,
            None => {
                let wanted: Vec<String> = versions
                    .iter()
                    .filter(|v| match &only {
                        Some(o) => v.hash.to_hex() == *o,
                        None => matches!(
                            v.state,
                            airlock_registry::State::Silent
                                | airlock_registry::State::Canary
                                | airlock_registry::State::Production
                        ),
                    })
                    .map(|v| v.hash.to_hex())
                    .collect();
                reg.recent_predictions(&name, last, &wanted).await?
            }
        };
        let outcomes = reg.outcomes().await?;
        let mut out = Vec::new();
        for v in &versions {
            let hash = v.hash.to_hex();
            if only.as_ref().is_some_and(|h| *h != hash) {
                continue;
            }
            let mine: Vec<&LoggedPrediction> = logged
                .iter()
                .filter(|p| p.version == hash)
                .filter(|p| {
                    query
                        .since
                        .as_ref()
                        .is_none_or(|s| p.at.as_str() >= s.as_str())
                })
                .collect();
            let skip = mine.len().saturating_sub(last);
            let window: Vec<&LoggedPrediction> = mine.into_iter().skip(skip).collect();
            if window.is_empty() && only.is_none() {
                continue;
            }
            let w = Window {
                predictions: window.len() as u64,
                first_index: window.first().map(|p| p.index),
                last_index: window.last().map(|p| p.index),
                from: window.first().map(|p| p.at.clone()),
                to: window.last().map(|p| p.at.clone()),
            };
            let scores: Vec<f64> = window.iter().map(|p| p.score).collect();
            let (drift, no_drift) = match reg.reference(v).await? {
                _ if window.is_empty() => (None, Some("no predictions in the window".into())),
                None => (
                    None,
                    Some(
                        "the version has no reference profile (registered before monitoring)"
                            .into(),
                    ),
                ),
                Some(reference) => {
                    let options = DriftOptions {
                        statistical_tests: query.tests.unwrap_or(false),
                        ..DriftOptions::default()
                    };
                    let drift = window_drift(&reference, &v.card.features, &window, &options)?;
                    (
                        Some(DriftReport {
                            reference: Side {
                                name: format!(
                                    "{}@{} reference ({})",
                                    name,
                                    v.hash.short(),
                                    reference.source
                                ),
                                rows: reference.features.rows,
                            },
                            current: Side {
                                name: format!(
                                    "{} predictions of {}@{}",
                                    w.predictions,
                                    name,
                                    v.hash.short()
                                ),
                                rows: w.predictions,
                            },
                            window: Some(w.clone()),
                            drift,
                        }),
                        None,
                    )
                }
            };
            let report = reg.reports(v).await?.into_iter().last();
            let validation = report.as_ref().map(|r| ValidationBasis {
                report: r.id.clone(),
                auroc: r.body.report.metrics.auroc.value,
                ece: r.body.report.metrics.ece.value,
                threshold: r.body.threshold,
            });
            let threshold = query
                .threshold
                .or(validation.as_ref().map(|b| b.threshold))
                .unwrap_or(0.5);
            let labelled: Vec<(&LoggedPrediction, bool)> = window
                .iter()
                .filter_map(|p| outcomes.get(&p.request).map(|&y| (*p, y)))
                .collect();
            let pairs: Vec<(bool, f64)> = labelled.iter().map(|(p, y)| (*y, p.score)).collect();
            // Per group, for the attributes validation grouped by that the log holds.
            let mut realised_by_group = Vec::new();
            if let Some(r) = &report {
                let min = r.body.report.config.min_group_size;
                let mut attributes: Vec<&str> = r
                    .body
                    .report
                    .groups
                    .iter()
                    .map(|g| g.attribute.as_str())
                    .collect();
                attributes.dedup();
                for a in attributes {
                    let Some(pos) = v.card.features.iter().position(|f| f == a) else {
                        continue;
                    };
                    let mut groups: BTreeMap<&str, Vec<(bool, f64)>> = BTreeMap::new();
                    for (p, y) in &labelled {
                        if let Some(value) = p.values.get(pos) {
                            groups
                                .entry(value.as_str())
                                .or_default()
                                .push((*y, p.score));
                        }
                    }
                    for (value, g) in groups {
                        let too_small = (g.len() as u64) < min;
                        realised_by_group.push(GroupRealised {
                            attribute: a.to_string(),
                            value: value.to_string(),
                            too_small,
                            realised: (!too_small).then(|| realised(&g, threshold)),
                            outcomes: g.len() as u64,
                        });
                    }
                }
            }
            out.push(VersionMonitoring {
                version: hash,
                state: v.state.as_str().to_string(),
                shown: window.iter().filter(|p| p.shown).count() as u64,
                silent: window.iter().filter(|p| !p.shown).count() as u64,
                drift,
                no_drift,
                estimated: monitor::cbpe(&scores, threshold),
                validation,
                realised: realised(&pairs, threshold),
                realised_by_group,
            });
        }
        let mut entry = self
            .entry(EventType::Query, Zone::Clinical, OutcomeKind::Success)
            .with_reason(format!("monitoring report over {} version(s)", out.len()));
        for v in &out {
            entry = entry.with_resource(LedgerResource::ModelVersion {
                name: name.to_string(),
                hash: v.version.clone(),
            });
        }
        self.audit(entry).await?;
        Ok(MonitoringReport {
            model: name.to_string(),
            threshold: query.threshold,
            versions: out,
        })
    }

    /// Drift of one development dataset against another (offline: the rows never leave the
    /// development zone and the answer holds aggregates only). Each needs `download-dataset`.
    pub async fn dataset_drift(&self, body: DriftBody) -> Result<DriftReport, ServiceError> {
        let (rv, reference) = self
            .drift_table(&body.reference, body.file.as_deref(), body.view.as_deref())
            .await?;
        let (cv, current) = self
            .drift_table(&body.current, body.file.as_deref(), body.view.as_deref())
            .await?;
        let names: Vec<String> = if body.features.is_empty() {
            reference
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect()
        } else {
            body.features.clone()
        };
        let options = body.options.unwrap_or_default();
        let drift = tokio::task::spawn_blocking(move || {
            let cols: Vec<&str> = names.iter().map(String::as_str).collect();
            let rp = Profile::from_table(&reference, &cols, &BTreeMap::new())?;
            let kinds: BTreeMap<String, Kind> = rp.kinds();
            let cp = Profile::from_table(&current, &cols, &kinds)?;
            monitor::drift(&rp, &cp, None, &options).map(|d| (d, rp.rows, cp.rows))
        })
        .await
        .map_err(ServiceError::internal)?
        .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
        let (drift, rrows, crows) = drift;
        self.audit(
            self.entry(EventType::Query, Zone::Development, OutcomeKind::Success)
                .with_resource(LedgerResource::DatasetVersion(rv.reference().to_string()))
                .with_resource(LedgerResource::DatasetVersion(cv.reference().to_string()))
                .with_reason(format!(
                    "drift over {} column(s): {} drifted",
                    drift.features.len(),
                    drift.features.iter().filter(|f| f.drifted).count()
                )),
        )
        .await?;
        Ok(DriftReport {
            reference: Side {
                name: rv.reference().to_string(),
                rows: rrows,
            },
            current: Side {
                name: cv.reference().to_string(),
                rows: crows,
            },
            window: None,
            drift,
        })
    }

    async fn drift_table(
        &self,
        spec: &str,
        file: Option<&str>,
        view: Option<&str>,
    ) -> Result<(DatasetVersion, Table), ServiceError> {
        if file.is_some() && view.is_some() {
            return Err(ServiceError::invalid(
                "view",
                "a CSV file or a view, not both",
            ));
        }
        let (name, ver) = parse_version_spec(spec)
            .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
        let v = self
            .find_version(name.as_str(), ver.map(airlock_types::DatasetVersionId::get))
            .await?;
        self.authorize(Action::DownloadDataset, &crate::datasets::resource(&v))
            .await?;
        if !matches!(v.zone, Zone::Development | Zone::Staging) {
            return Err(ServiceError::Refused {
                reason: format!(
                    "offline drift compares development and staging datasets; {} is in {} (a deployed model's drift is its monitoring report)",
                    v.reference(),
                    v.zone
                ),
            });
        }
        if let Some(view) = view {
            // Read, not materialised: the report holds aggregates only.
            let (view, _) = crate::views::find(self.home(), &v.dataset, view)
                .await
                .map_err(|e| ServiceError::invalid("view", e.to_string()))?;
            let (csv, _) = crate::views::rows_of(self.home(), &v, &view)
                .await
                .map_err(|e| ServiceError::invalid("view", e.to_string()))?;
            let table = Table::read_csv(csv.as_slice(), None)
                .map_err(|e| ServiceError::invalid("dataset", format!("{}: {e}", v.reference())))?;
            return Ok((v, table));
        }
        let files = self.read_files(&v).await?;
        let csvs: Vec<_> = files
            .into_iter()
            .filter(|(f, _)| f.format == "csv")
            .filter(|(f, _)| file.is_none_or(|w| f.name == w || f.name.ends_with(&format!("/{w}"))))
            .collect();
        let [(_, bytes)] = csvs.as_slice() else {
            return Err(ServiceError::invalid(
                "file",
                format!(
                    "{} has {} matching CSV files; name one",
                    v.reference(),
                    csvs.len()
                ),
            ));
        };
        let table = Table::read_csv(bytes.as_slice(), None)
            .map_err(|e| ServiceError::invalid("dataset", format!("{}: {e}", v.reference())))?;
        Ok((v, table))
    }
}
