//! Differentially private questions (the DP release gate): a data scientist asks an aggregate
//! question of identified data in the clinical or airlock zone; the query runs where the data
//! is and only the noisy answer leaves, charged to a privacy budget no interleaving can
//! overspend.
//!
//! Order of a query, so a refusal costs nothing and reads no row into an answer: check ε and
//! δ, parse the SQL, find the version and ask the policy, load the dataset's DP metadata, read
//! the tables' headers and plan (unknown columns, missing bounds and domains refused here),
//! reserve the charge on the analyst's and the dataset's budgets in one transaction, run, and
//! release the reservation if the run fails. The ledger records every answer and every
//! refusal by budget, with the SQL's hash (never its text: a filter could name a patient).
//!
//! A budget is of one of two kinds, chosen when it is set. Without δ it is a pure ε-DP budget:
//! questions are charged their ε (basic composition) and only pure (discrete Laplace)
//! questions fit it. With δ it is a zCDP budget: its limit is the ρ whose conversion is
//! (ε, δ), and every question is charged its ρ (ε²/2 for a pure one). Charging pure questions
//! ε²/2 against an "ε" budget would be wrong: four questions at ε 0.5 are 2-DP, not 1-DP.

use std::collections::BTreeMap;

use airlock_authz::Action;
use airlock_dp::{DpError, DpMetadata, Privacy, PrivacyUnit};
use airlock_ledger::{EventType, OutcomeKind};
use airlock_store::{
    Access, DatasetVersion, Lineage, NewFile, NewVersion, Scope, Transform, parse_version_spec,
};
use airlock_types::{ActorId, Classification, ContentHash, DatasetName, Gate, Zone};
use rand::RngCore as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest as _;
use sqlx::Row as _;

use crate::{Caller, LedgerResource, ServiceError};

/// Budget figures (ε for a pure budget, ρ for a zCDP one) are stored as integers of this
/// many, so that sums are exact.
const UNIT: f64 = 1e-12;

/// The analyst column's value for the dataset's total budget.
const TOTAL: &str = "*";

fn to_units(x: f64) -> i64 {
    (x / UNIT).round() as i64
}

fn from_units(units: i64) -> f64 {
    units as f64 * UNIT
}

fn no_zone() -> Scope {
    Scope::zones(std::iter::empty::<Zone>())
}

/// A DP question.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// The version asked, `name[@version]` (clinical or airlock zone).
    #[schemars(with = "crate::schema::DatasetSpec")]
    pub dataset: String,
    /// The SQL (see `airlock dp query --help` for the subset).
    #[schemars(length(min = 1, max = 16384))]
    pub sql: String,
    /// ε of the whole query.
    pub epsilon: f64,
    /// δ: absent for pure ε-DP (discrete Laplace), present for zCDP (discrete Gaussian).
    #[serde(default)]
    pub delta: Option<f64>,
    /// Keep the answer as a `dp-aggregate` dataset version in development under this name.
    #[serde(default)]
    #[schemars(with = "Option<airlock_types::DatasetName>")]
    pub save_as: Option<String>,
}

/// What is left of the budgets a question was charged to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Remaining {
    /// The analyst's budget left, as ε (at the budget's δ for a zCDP budget).
    pub analyst_epsilon: f64,
    /// The dataset's total budget left, as ε.
    pub dataset_epsilon: f64,
    /// The analyst's budget, in its own units (ε or ρ).
    pub analyst: Option<BudgetView>,
}

/// A released answer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DpAnswer {
    /// The version asked.
    pub dataset: String,
    /// One object per group, keyed by the query's output names.
    pub rows: Vec<Map<String, Value>>,
    /// `discrete-laplace` or `discrete-gaussian`.
    pub mechanism: String,
    /// Noise scale per output column (in the column's units).
    pub scale: Map<String, Value>,
    /// Half-width of the 95% interval per output column (null where not bounded).
    pub accuracy: Map<String, Value>,
    /// ε spent.
    pub epsilon: f64,
    /// δ, if the query was (ε, δ).
    pub delta: Option<f64>,
    /// ρ charged (zCDP).
    pub rho: f64,
    /// What is left.
    pub remaining: Remaining,
    /// The DP metadata version the query ran under.
    pub metadata_version: i64,
    /// The saved version, with `save_as`.
    pub saved: Option<String>,
}

/// DP metadata to set.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataBody {
    /// The dataset.
    #[schemars(with = "airlock_types::DatasetName")]
    pub dataset: String,
    /// The privacy unit: a column naming the person in every table, or `row`.
    #[schemars(length(min = 1, max = 128))]
    pub unit: String,
    /// The most rows one unit contributes.
    #[schemars(range(min = 1, max = 10000))]
    pub max_rows_per_unit: u32,
    /// Tighter bounds for some tables (`table → rows`, each at most `max_rows_per_unit`).
    #[serde(default)]
    pub table_rows_per_unit: BTreeMap<String, u32>,
    /// `column → [lo, hi]`.
    #[serde(default)]
    pub bounds: BTreeMap<String, [f64; 2]>,
    /// `column → values`.
    #[serde(default)]
    pub domains: BTreeMap<String, Vec<String>>,
    /// `column → bins` for synthetic data (numeric columns; default from the bounds).
    #[serde(default)]
    pub bins: BTreeMap<String, u32>,
}

/// A dataset's DP metadata as stored.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MetadataView {
    /// The dataset.
    pub dataset: String,
    /// Its version (1, 2, ...).
    pub version: i64,
    /// Who set it.
    pub set_by: String,
    /// When.
    pub set_at: String,
    /// The privacy unit (`row` or a column name).
    pub unit: String,
    /// Rows per unit, at most.
    pub max_rows_per_unit: u32,
    /// Tighter bounds per table.
    pub table_rows_per_unit: BTreeMap<String, u32>,
    /// Bounds.
    pub bounds: BTreeMap<String, [f64; 2]>,
    /// Domains.
    pub domains: BTreeMap<String, Vec<String>>,
    /// Declared bins of numeric columns (for synthetic data).
    #[serde(default)]
    pub bins: BTreeMap<String, u32>,
}

impl MetadataView {
    /// The metadata the mechanisms read.
    pub fn metadata(&self) -> DpMetadata {
        DpMetadata {
            unit: if self.unit == "row" {
                PrivacyUnit::Row
            } else {
                PrivacyUnit::Column(self.unit.clone())
            },
            max_rows_per_unit: self.max_rows_per_unit,
            table_rows_per_unit: self.table_rows_per_unit.clone(),
            bounds: pairs(&self.bounds),
            domains: self.domains.clone(),
            bins: self.bins.clone(),
        }
    }
}

/// A budget to set.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    /// The dataset.
    #[schemars(with = "airlock_types::DatasetName")]
    pub dataset: String,
    /// The analyst (a principal id); absent for the dataset's total budget.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub analyst: Option<String>,
    /// The limit as ε.
    pub epsilon: f64,
    /// At this δ (the limit is the ρ whose conversion is (ε, δ)); absent: ε²/2.
    #[serde(default)]
    pub delta: Option<f64>,
}

/// How a budget composes its questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Accounting {
    /// Pure ε-DP: ε adds up; only pure questions fit.
    Pure,
    /// zCDP: ρ adds up; shown as ε at the budget's δ.
    Zcdp,
}

/// A budget.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BudgetView {
    /// The dataset.
    pub dataset: String,
    /// The analyst, or `*` for the dataset's total.
    pub analyst: String,
    /// Pure (ε) or zCDP (ρ).
    pub accounting: Accounting,
    /// The limit, in the budget's units (ε or ρ).
    pub limit: f64,
    /// Spent, in those units.
    pub spent: f64,
    /// Left, in those units.
    pub remaining: f64,
    /// δ of a zCDP budget.
    pub delta: Option<f64>,
    /// The limit as ε at that δ.
    pub limit_epsilon: f64,
    /// What is left as ε at that δ.
    pub remaining_epsilon: f64,
    /// Who set it last.
    pub set_by: String,
    /// When.
    pub updated_at: String,
}

/// The budgets the caller may see.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BudgetList {
    /// Budgets.
    pub budgets: Vec<BudgetView>,
}

/// A budget figure as ε: itself for a pure budget, its (ε, δ) conversion for a zCDP one.
fn epsilon_of(units: f64, delta: Option<f64>) -> Result<f64, ServiceError> {
    match delta {
        Some(d) => airlock_dp::rho_to_epsilon(units.max(0.0), d).map_err(ServiceError::internal),
        None => Ok(units.max(0.0)),
    }
}

/// `[lo, hi]` as the engine's `(lo, hi)`. The API spells a bound as a two-element array
/// (a tuple's JSON Schema is not valid OpenAPI 3.1).
fn pairs(bounds: &BTreeMap<String, [f64; 2]>) -> BTreeMap<String, (f64, f64)> {
    bounds
        .iter()
        .map(|(c, [lo, hi])| (c.clone(), (*lo, *hi)))
        .collect()
}

fn dp_invalid(field: &'static str, e: DpError) -> ServiceError {
    match e {
        DpError::Internal(_) => ServiceError::internal(e),
        DpError::Refused(why) => ServiceError::Refused { reason: why },
        e => ServiceError::invalid(field, e.to_string()),
    }
}

fn parse_csv_table(name: &str, bytes: &[u8]) -> Result<airlock_dp::Table, ServiceError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| {
            ServiceError::invalid(
                "dataset",
                format!(
                    "table {name}: the header does not parse ({})",
                    csv_position(&e)
                ),
            )
        })?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            ServiceError::invalid(
                "dataset",
                format!(
                    "table {name}: record {} does not parse ({})",
                    i + 1,
                    csv_position(&e)
                ),
            )
        })?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(airlock_dp::Table { columns, rows })
}

/// A CSV error's position and kind, never the field's text.
fn csv_position(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "line {}: {len} fields where the header has {expected_len}",
            pos.as_ref().map(|p| p.line()).unwrap_or(0)
        ),
        csv::ErrorKind::Utf8 { pos, .. } => format!(
            "line {}: not UTF-8",
            pos.as_ref().map(|p| p.line()).unwrap_or(0)
        ),
        _ => "malformed CSV".into(),
    }
}

fn table_stem(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.strip_suffix(".csv").unwrap_or(base).to_owned()
}

impl Caller {
    /// The latest DP metadata of a dataset.
    pub(crate) async fn dp_metadata_row(
        &self,
        dataset: &DatasetName,
    ) -> Result<Option<MetadataView>, ServiceError> {
        let db = self.service().home().db().clone();
        let mut tx = db.begin(&no_zone()).await?;
        let row = sqlx::query(
            "SELECT version, body, set_by, set_at FROM dp_metadata WHERE dataset = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(dataset.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(ServiceError::internal)?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let body: String = row.try_get("body").map_err(ServiceError::internal)?;
        let meta: DpMetadata = serde_json::from_str(&body).map_err(ServiceError::internal)?;
        Ok(Some(MetadataView {
            dataset: dataset.to_string(),
            version: row.try_get("version").map_err(ServiceError::internal)?,
            set_by: row.try_get("set_by").map_err(ServiceError::internal)?,
            set_at: row.try_get("set_at").map_err(ServiceError::internal)?,
            unit: match &meta.unit {
                PrivacyUnit::Row => "row".into(),
                PrivacyUnit::Column(c) => c.clone(),
            },
            max_rows_per_unit: meta.max_rows_per_unit,
            table_rows_per_unit: meta.table_rows_per_unit,
            bounds: meta
                .bounds
                .into_iter()
                .map(|(c, (lo, hi))| (c, [lo, hi]))
                .collect(),
            domains: meta.domains,
            bins: meta.bins,
        }))
    }

    /// The latest version of a dataset, across zones, after the policy allows `action` on it.
    async fn dp_dataset(&self, name: &str, action: Action) -> Result<DatasetVersion, ServiceError> {
        let name = DatasetName::new(name.to_owned())
            .map_err(|_| ServiceError::NotFound { what: "dataset" })?;
        let v = match self.home_across_zones().version(&name, None).await {
            Ok(v) => v,
            Err(airlock_store::StoreError::NotFound { .. }) => {
                return Err(ServiceError::NotFound { what: "dataset" });
            }
            Err(e) => return Err(e.into()),
        };
        self.authorize_visible(action, &v).await?;
        Ok(v)
    }

    /// The policy's decision on `action` over `v`; a refusal reads as not-found to a caller
    /// who could not see the dataset anyway (outside their zones, and not one they may ask DP
    /// questions of), so the answer does not tell them that the name exists.
    pub(crate) async fn authorize_visible(
        &self,
        action: Action,
        v: &DatasetVersion,
    ) -> Result<(), ServiceError> {
        let resource = crate::datasets::resource(v);
        match self.authorize(action, &resource).await {
            Ok(_) => Ok(()),
            Err(ServiceError::Forbidden { reason }) => {
                let visible = self.decide(Action::DpQuery, &resource, false).allowed()
                    || self.home().version(&v.dataset, None).await.is_ok();
                if visible {
                    Err(ServiceError::Forbidden { reason })
                } else {
                    Err(ServiceError::NotFound { what: "dataset" })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The version a DP release reads (`name[@version]`), once the policy allows `dp-query`
    /// on it, in the clinical or airlock zone, with its DP metadata; `what` starts a refusal.
    pub(crate) async fn dp_source(
        &self,
        spec: &str,
        what: &str,
        development: bool,
    ) -> Result<(DatasetVersion, MetadataView), ServiceError> {
        let (name, ver) = parse_version_spec(spec)
            .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
        let v = match self.home_across_zones().version(&name, ver).await {
            Ok(v) => v,
            Err(airlock_store::StoreError::NotFound { .. }) => {
                return Err(ServiceError::NotFound { what: "dataset" });
            }
            Err(e) => return Err(e.into()),
        };
        if development && v.zone == Zone::Development {
            // De-identified rows the caller could download anyway: the policy decides as for
            // a download.
            self.authorize(Action::DownloadDataset, &crate::datasets::resource(&v))
                .await?;
        } else {
            self.authorize_visible(Action::DpQuery, &v).await?;
        }
        if !(matches!(v.zone, Zone::Clinical | Zone::Airlock)
            || (development && v.zone == Zone::Development))
        {
            return Err(ServiceError::Refused {
                reason: format!(
                    "{what} the clinical and airlock zones only; {} is in {} (download it instead)",
                    v.reference(),
                    v.zone
                ),
            });
        }
        let meta = self
            .dp_metadata_row(&v.dataset)
            .await?
            .ok_or_else(|| ServiceError::Refused {
                reason: format!(
                    "{} has no DP metadata; a privacy officer declares its privacy unit, bounds, bins and domains (airlock dp metadata set)",
                    v.dataset
                ),
            })?;
        Ok((v, meta))
    }

    /// Set a dataset's DP metadata (a new version of it). Privacy officer.
    pub async fn set_dp_metadata(&self, body: MetadataBody) -> Result<MetadataView, ServiceError> {
        let v = self
            .dp_dataset(&body.dataset, Action::ManageDpBudget)
            .await?;
        let meta = DpMetadata {
            unit: if body.unit == "row" {
                PrivacyUnit::Row
            } else {
                PrivacyUnit::Column(body.unit.clone())
            },
            max_rows_per_unit: body.max_rows_per_unit,
            table_rows_per_unit: body.table_rows_per_unit,
            bounds: pairs(&body.bounds),
            domains: body.domains,
            bins: body.bins,
        };
        meta.check().map_err(|e| dp_invalid("metadata", e))?;
        let text = serde_json::to_string(&meta).map_err(ServiceError::internal)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let db = self.service().home().db().clone();
        let mut tx = db.begin_write(&no_zone()).await?;
        let next: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM dp_metadata WHERE dataset = $1",
        )
        .bind(v.dataset.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(ServiceError::internal)?;
        sqlx::query(
            "INSERT INTO dp_metadata (dataset, version, body, set_by, set_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(v.dataset.as_str())
        .bind(next)
        .bind(&text)
        .bind(self.who.principal.id.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(ServiceError::internal)?;
        tx.commit().await?;
        self.audit(
            self.entry(EventType::ConfigChange, v.zone, OutcomeKind::Success)
                .with_resource(LedgerResource::Dataset(v.dataset.clone()))
                .with_reason(format!(
                    "dp metadata v{next}: {} bound(s), {} domain(s), {} row(s) per unit ({})",
                    meta.bounds.len(),
                    meta.domains.len(),
                    meta.max_rows_per_unit,
                    ContentHash::from_bytes(sha2::Sha256::digest(text.as_bytes()).into()).short()
                )),
        )
        .await?;
        self.dp_metadata_row(&v.dataset)
            .await?
            .ok_or_else(|| ServiceError::internal("metadata vanished"))
    }

    /// A dataset's DP metadata (the analyst needs the bounds and domains to write queries).
    pub async fn dp_metadata(&self, dataset: &str) -> Result<MetadataView, ServiceError> {
        let v = match self.dp_dataset(dataset, Action::DpQuery).await {
            Ok(v) => v,
            Err(ServiceError::Forbidden { .. }) => {
                self.dp_dataset(dataset, Action::ManageDpBudget).await?
            }
            Err(e) => return Err(e),
        };
        self.dp_metadata_row(&v.dataset)
            .await?
            .ok_or(ServiceError::NotFound {
                what: "dp metadata",
            })
    }

    /// Set a budget (an analyst's, or the dataset's total). Privacy officer.
    pub async fn set_dp_budget(&self, body: BudgetBody) -> Result<BudgetView, ServiceError> {
        let v = self
            .dp_dataset(&body.dataset, Action::ManageDpBudget)
            .await?;
        let privacy = Privacy {
            epsilon: body.epsilon,
            delta: body.delta,
        };
        // A budget may be larger than one query's ε cap.
        if !body.epsilon.is_finite() || body.epsilon <= 0.0 || body.epsilon > 100.0 {
            return Err(ServiceError::invalid(
                "epsilon",
                "must be a finite number above 0 and at most 100",
            ));
        }
        if let Some(d) = body.delta
            && (!d.is_finite() || d <= 0.0 || d > 1e-3)
        {
            return Err(ServiceError::invalid(
                "delta",
                "must be a finite number above 0 and at most 0.001",
            ));
        }
        let limit = match privacy.delta {
            None => privacy.epsilon,
            Some(d) => {
                airlock_dp::rho_for_epsilon(privacy.epsilon, d).map_err(ServiceError::internal)?
            }
        };
        let analyst = match &body.analyst {
            None => TOTAL.to_owned(),
            Some(a) => {
                let id = ActorId::new(a.clone())
                    .map_err(|_| ServiceError::invalid("analyst", "is not a principal id"))?;
                let known = self
                    .service()
                    .identities()
                    .principal(&id)
                    .await
                    .map_err(ServiceError::internal)?;
                if known.is_none() {
                    return Err(ServiceError::invalid(
                        "analyst",
                        "names no principal of this deployment",
                    ));
                }
                id.as_str().to_owned()
            }
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let db = self.service().home().db().clone();
        let mut tx = db.begin_write(&no_zone()).await?;
        // Spending in one unit cannot be read in the other: a budget changes kind only unspent.
        let existing = sqlx::query(
            "SELECT spent_units, delta FROM dp_budgets WHERE dataset = $1 AND analyst = $2",
        )
        .bind(v.dataset.as_str())
        .bind(&analyst)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ServiceError::internal)?;
        if let Some(row) = existing {
            let spent: i64 = row.try_get("spent_units").map_err(ServiceError::internal)?;
            let delta: Option<f64> = row.try_get("delta").map_err(ServiceError::internal)?;
            if spent > 0 && delta.is_some() != body.delta.is_some() {
                return Err(ServiceError::Conflict {
                    reason: "this budget has been spent as a pure epsilon-DP budget or as a zCDP budget; set it again in the same kind (with or without delta)".into(),
                });
            }
        }
        let updated = sqlx::query(
            "UPDATE dp_budgets SET limit_units = $1, delta = $2, set_by = $3, updated_at = $4 \
             WHERE dataset = $5 AND analyst = $6",
        )
        .bind(to_units(limit))
        .bind(body.delta)
        .bind(self.who.principal.id.as_str())
        .bind(&now)
        .bind(v.dataset.as_str())
        .bind(&analyst)
        .execute(&mut *tx)
        .await
        .map_err(ServiceError::internal)?
        .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO dp_budgets (dataset, analyst, limit_units, spent_units, delta, set_by, updated_at) \
                 VALUES ($1, $2, $3, 0, $4, $5, $6)",
            )
            .bind(v.dataset.as_str())
            .bind(&analyst)
            .bind(to_units(limit))
            .bind(body.delta)
            .bind(self.who.principal.id.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(ServiceError::internal)?;
        }
        tx.commit().await?;
        self.audit(
            self.entry(EventType::ConfigChange, v.zone, OutcomeKind::Success)
                .with_resource(LedgerResource::Dataset(v.dataset.clone()))
                .with_reason(format!(
                    "dp budget of {} set to epsilon {}{} ({} limit {:.6})",
                    if analyst == TOTAL {
                        "the dataset".to_owned()
                    } else {
                        analyst.clone()
                    },
                    body.epsilon,
                    body.delta
                        .map(|d| format!(" at delta {d:e}"))
                        .unwrap_or_default(),
                    if body.delta.is_some() {
                        "zCDP rho"
                    } else {
                        "pure epsilon"
                    },
                    limit
                )),
        )
        .await?;
        self.budgets_where(Some(v.dataset.as_str()), Some(&analyst))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ServiceError::internal("budget vanished"))
    }

    async fn budgets_where(
        &self,
        dataset: Option<&str>,
        analyst: Option<&str>,
    ) -> Result<Vec<BudgetView>, ServiceError> {
        let db = self.service().home().db().clone();
        let mut tx = db.begin(&no_zone()).await?;
        let rows = sqlx::query(
            "SELECT dataset, analyst, limit_units, spent_units, delta, set_by, updated_at FROM dp_budgets \
             WHERE ($1 = '' OR dataset = $1) AND ($2 = '' OR analyst = $2) ORDER BY dataset, analyst",
        )
        .bind(dataset.unwrap_or(""))
        .bind(analyst.unwrap_or(""))
        .fetch_all(&mut *tx)
        .await
        .map_err(ServiceError::internal)?;
        tx.commit().await?;
        let mut out = Vec::new();
        for r in rows {
            let limit = from_units(r.try_get("limit_units").map_err(ServiceError::internal)?);
            let spent = from_units(r.try_get("spent_units").map_err(ServiceError::internal)?);
            let delta: Option<f64> = r.try_get("delta").map_err(ServiceError::internal)?;
            out.push(BudgetView {
                dataset: r.try_get("dataset").map_err(ServiceError::internal)?,
                analyst: r.try_get("analyst").map_err(ServiceError::internal)?,
                accounting: if delta.is_some() {
                    Accounting::Zcdp
                } else {
                    Accounting::Pure
                },
                limit,
                spent,
                remaining: (limit - spent).max(0.0),
                delta,
                limit_epsilon: epsilon_of(limit, delta)?,
                remaining_epsilon: epsilon_of((limit - spent).max(0.0), delta)?,
                set_by: r.try_get("set_by").map_err(ServiceError::internal)?,
                updated_at: r.try_get("updated_at").map_err(ServiceError::internal)?,
            });
        }
        Ok(out)
    }

    /// Budgets: all of them for a privacy officer, one's own (and the datasets' totals) for an
    /// analyst.
    pub async fn dp_budgets(&self, dataset: Option<&str>) -> Result<BudgetList, ServiceError> {
        if let Some(d) = dataset {
            DatasetName::new(d.to_owned())
                .map_err(|_| ServiceError::invalid("dataset", "is not a dataset name"))?;
        }
        let officer = match dataset {
            Some(d) => self.dp_dataset(d, Action::ManageDpBudget).await.is_ok(),
            None => self
                .who
                .principal
                .roles
                .contains(&airlock_authz::Role::PrivacyOfficer),
        };
        let all = self.budgets_where(dataset, None).await?;
        let me = self.who.principal.id.as_str();
        Ok(BudgetList {
            budgets: all
                .into_iter()
                .filter(|b| officer || b.analyst == me || b.analyst == TOTAL)
                .collect(),
        })
    }

    /// Reserve a question's charge on the analyst's and the dataset's budgets (each charged
    /// in its own kind: ε for a pure budget, ρ for a zCDP one), or say which one refused. The
    /// kind is part of each conditional update, so a budget reset to the other kind meanwhile
    /// cannot be charged in the wrong unit.
    pub(crate) async fn reserve(
        &self,
        dataset: &DatasetName,
        privacy: &Privacy,
        rho: f64,
    ) -> Result<Vec<(String, i64)>, String> {
        let me = self.who.principal.id.as_str().to_owned();
        let pure = privacy.delta.is_none();
        let db = self.service().home().db().clone();
        let attempt = async {
            let mut tx = db
                .begin_write(&no_zone())
                .await
                .map_err(|e| e.to_string())?;
            let mut charged = Vec::new();
            // A pure budget takes pure questions only, at their ε; a zCDP budget any
            // question, at its ρ. The kind is in each update's condition.
            let mut kinds = Vec::new();
            if pure {
                kinds.push(("delta IS NULL", to_units(privacy.epsilon).max(1)));
            }
            kinds.push(("delta IS NOT NULL", to_units(rho).max(1)));
            for who in [me.as_str(), TOTAL] {
                let mut done = false;
                for (kind, units) in &kinds {
                    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE dp_budgets SET spent_units = spent_units + $1 \
                         WHERE dataset = $2 AND analyst = $3 AND {kind} \
                         AND spent_units + $1 <= limit_units"
                    )))
                    .bind(*units)
                    .bind(dataset.as_str())
                    .bind(who)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?
                    .rows_affected();
                    if n == 1 {
                        charged.push((who.to_owned(), *units));
                        done = true;
                        break;
                    }
                }
                if !done {
                    // Dropping the transaction rolls the other row back.
                    return Ok::<Result<Vec<(String, i64)>, &str>, String>(Err(who));
                }
            }
            tx.commit().await.map_err(|e| e.to_string())?;
            Ok(Ok(charged))
        };
        match attempt.await {
            Ok(Ok(charged)) => Ok(charged),
            Ok(Err(who)) => {
                let left = self
                    .budgets_where(Some(dataset.as_str()), Some(who))
                    .await
                    .ok()
                    .and_then(|b| b.into_iter().next());
                let whose = if who == TOTAL {
                    "the dataset's total budget"
                } else {
                    "your budget"
                };
                Err(match left {
                    None => format!(
                        "{whose} on {dataset} is not set; a privacy officer sets it (airlock dp budget set)"
                    ),
                    Some(b) if b.accounting == Accounting::Pure && !pure => format!(
                        "{whose} on {dataset} is a pure epsilon-DP budget; ask without delta (discrete Laplace)"
                    ),
                    Some(b) => format!(
                        "{whose} on {dataset} has epsilon {:.4} left{}; this question needs {}",
                        b.remaining_epsilon,
                        b.delta
                            .map(|d| format!(" at delta {d:e} (rho {:.6})", b.remaining))
                            .unwrap_or_default(),
                        if b.accounting == Accounting::Pure {
                            format!("epsilon {}", privacy.epsilon)
                        } else {
                            format!("rho {rho:.6}")
                        }
                    ),
                })
            }
            Err(e) => Err(format!("the budget could not be reserved: {e}")),
        }
    }

    /// What is left of the caller's and the dataset's budgets.
    pub(crate) async fn remaining(&self, dataset: &DatasetName) -> Result<Remaining, ServiceError> {
        let mine = self
            .budgets_where(Some(dataset.as_str()), Some(self.who.principal.id.as_str()))
            .await?
            .into_iter()
            .next();
        let total = self
            .budgets_where(Some(dataset.as_str()), Some(TOTAL))
            .await?
            .into_iter()
            .next();
        Ok(Remaining {
            analyst_epsilon: mine.as_ref().map_or(0.0, |b| b.remaining_epsilon),
            dataset_epsilon: total.as_ref().map_or(0.0, |b| b.remaining_epsilon),
            analyst: mine,
        })
    }

    pub(crate) async fn release_reservation(
        &self,
        dataset: &DatasetName,
        charged: &[(String, i64)],
    ) -> Result<(), ServiceError> {
        let db = self.service().home().db().clone();
        let mut tx = db.begin_write(&no_zone()).await?;
        for (who, units) in charged {
            sqlx::query(
                "UPDATE dp_budgets SET spent_units = spent_units - $1 WHERE dataset = $2 AND analyst = $3",
            )
            .bind(*units)
            .bind(dataset.as_str())
            .bind(who)
            .execute(&mut *tx)
            .await
            .map_err(ServiceError::internal)?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The tables a version exposes: a CSV version's file is `data` when it has one, else
    /// each file by its stem; a FHIR version exposes the views (registered or built in) the
    /// query names.
    pub(crate) async fn dp_tables(
        &self,
        v: &DatasetVersion,
        wanted: &[String],
        gate: Gate,
    ) -> Result<BTreeMap<String, airlock_dp::Table>, ServiceError> {
        let home = self.home_across_zones();
        let files = home
            .read_version(v, Access::Gate(gate), self.purpose)
            .await?;
        let csv: Vec<_> = files.iter().filter(|(f, _)| f.format == "csv").collect();
        let mut tables = BTreeMap::new();
        if !csv.is_empty() {
            let single = csv.len() == 1;
            for (f, bytes) in csv {
                let name = if single {
                    "data".to_owned()
                } else {
                    table_stem(&f.name)
                };
                tables.insert(name.clone(), parse_csv_table(&name, bytes)?);
            }
            return Ok(tables);
        }
        let texts: Vec<&str> = files
            .iter()
            .filter(|(f, _)| f.format == "fhir-json" || f.format == "fhir-ndjson")
            .filter_map(|(_, b)| std::str::from_utf8(b).ok())
            .collect();
        if texts.is_empty() {
            return Err(ServiceError::invalid(
                "dataset",
                "DP questions are answered over CSV versions and FHIR versions (through views)",
            ));
        }
        for name in wanted {
            let (view, _) = match crate::views::find(&home, &v.dataset, name).await {
                Ok(found) => found,
                Err(crate::views::ViewsError::Unknown { .. }) => continue,
                Err(e) => return Err(ServiceError::internal(e)),
            };
            let (bytes, _, _) = crate::views::run_to_csv(&view, texts.iter().copied())
                .map_err(ServiceError::internal)?;
            tables.insert(name.clone(), parse_csv_table(name, &bytes)?);
        }
        Ok(tables)
    }

    /// Answer a DP question (`airlock dp query`, `POST /v1/dp/queries`).
    pub async fn dp_query(&self, body: QueryBody) -> Result<DpAnswer, ServiceError> {
        let privacy = Privacy {
            epsilon: body.epsilon,
            delta: body.delta,
        };
        privacy.check().map_err(|e| match body.delta {
            Some(d) if !(d.is_finite() && d > 0.0 && d <= 1e-3) => dp_invalid("delta", e),
            _ => dp_invalid("epsilon", e),
        })?;
        let rho = privacy.rho().map_err(|e| dp_invalid("epsilon", e))?;
        let query = airlock_dp::parse(&body.sql).map_err(|e| dp_invalid("sql", e))?;
        let save_as = body
            .save_as
            .as_deref()
            .map(|n| {
                DatasetName::new(n.to_owned())
                    .map_err(|e| ServiceError::invalid("save_as", e.to_string()))
            })
            .transpose()?;
        let (v, meta_view) = self
            .dp_source(&body.dataset, "DP questions are asked of", false)
            .await?;
        let meta = meta_view.metadata();
        let wanted: Vec<String> = query.tables.iter().map(|(t, _)| t.clone()).collect();
        let tables = self.dp_tables(&v, &wanted, Gate::DpRelease).await?;
        let schema: airlock_dp::sql::Schema = tables
            .iter()
            .map(|(n, t)| (n.clone(), t.columns.clone()))
            .collect();
        let plan = query
            .plan(&schema, &meta)
            .map_err(|e| dp_invalid("sql", e))?;
        let sql_hash = ContentHash::from_bytes(sha2::Sha256::digest(body.sql.as_bytes()).into());

        let charged = match self.reserve(&v.dataset, &privacy, rho).await {
            Ok(c) => c,
            Err(why) => {
                self.audit(
                    self.entry(EventType::DpRelease, v.zone, OutcomeKind::Denied)
                        .with_resource(LedgerResource::DatasetVersion(v.reference().to_string()))
                        .with_reason(format!(
                            "budget: query {} needs epsilon {} (rho {rho:.6})",
                            sql_hash.short(),
                            privacy.epsilon
                        )),
                )
                .await?;
                return Err(ServiceError::Refused { reason: why });
            }
        };
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let answer = match airlock_dp::answer(&plan, &tables, privacy, seed) {
            Ok(a) => a,
            Err(e) => {
                self.release_reservation(&v.dataset, &charged).await?;
                return Err(dp_invalid("sql", e));
            }
        };
        drop(tables);

        let mut scale = Map::new();
        let mut accuracy = Map::new();
        for c in &answer.columns {
            if c.aggregate == "group" {
                continue;
            }
            scale.insert(c.name.clone(), c.scale.map_or(Value::Null, Value::from));
            accuracy.insert(c.name.clone(), c.accuracy.map_or(Value::Null, Value::from));
        }
        let saved = match &save_as {
            Some(out) => Some(
                self.save_answer(&v, out, &answer, &sql_hash, &privacy)
                    .await?,
            ),
            None => None,
        };
        self.audit(
            self.entry(EventType::DpRelease, v.zone, OutcomeKind::Success)
                .with_resource(LedgerResource::DatasetVersion(v.reference().to_string()))
                .with_reason(format!(
                    "dp-aggregate: query {} ({} row(s), {} measurement(s)) by {} epsilon {}{} rho {:.6} under dp metadata v{}{}",
                    sql_hash.short(),
                    answer.rows.len(),
                    answer.measurements,
                    answer.mechanism.as_str(),
                    privacy.epsilon,
                    privacy.delta.map(|d| format!(" delta {d:e}")).unwrap_or_default(),
                    rho,
                    meta_view.version,
                    saved.as_ref().map(|s| format!(", saved as {s}")).unwrap_or_default()
                )),
        )
        .await?;
        let remaining = self.remaining(&v.dataset).await?;
        Ok(DpAnswer {
            dataset: v.reference().to_string(),
            rows: answer.rows,
            mechanism: answer.mechanism.as_str().to_owned(),
            scale,
            accuracy,
            epsilon: privacy.epsilon,
            delta: privacy.delta,
            rho,
            remaining,
            metadata_version: meta_view.version,
            saved,
        })
    }

    async fn save_answer(
        &self,
        source: &DatasetVersion,
        out: &DatasetName,
        answer: &airlock_dp::Answer,
        sql_hash: &ContentHash,
        privacy: &Privacy,
    ) -> Result<String, ServiceError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let names: Vec<&str> = answer.columns.iter().map(|c| c.name.as_str()).collect();
        w.write_record(&names).map_err(ServiceError::internal)?;
        for row in &answer.rows {
            w.write_record(names.iter().map(|n| match row.get(*n) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            }))
            .map_err(ServiceError::internal)?;
        }
        let bytes = w.into_inner().map_err(ServiceError::internal)?;
        let mut params = BTreeMap::new();
        params.insert("mechanism".to_owned(), answer.mechanism.as_str().to_owned());
        params.insert("epsilon".to_owned(), privacy.epsilon.to_string());
        if let Some(d) = privacy.delta {
            params.insert("delta".to_owned(), format!("{d:e}"));
        }
        params.insert("rho".to_owned(), format!("{:.9}", answer.rho));
        params.insert("query_sha256".to_owned(), sql_hash.to_hex());
        let nv = NewVersion {
            dataset: out.clone(),
            zone: Zone::Development,
            classification: Classification::DpAggregate,
            source: Some((source.zone, source.classification)),
            files: vec![NewFile {
                name: "answer.csv".into(),
                format: "csv".into(),
                records: answer.rows.len() as u64,
                bytes,
            }],
            lineage: Lineage {
                source_system: source.lineage.source_system.clone(),
                extracted_at: chrono::Utc::now().to_rfc3339(),
                triggered_by: self.who.principal.id.clone(),
                parents: vec![source.reference()],
                gate: Gate::DpRelease,
                transform: Transform {
                    name: "dp-query".into(),
                    config_hash: Some(*sql_hash),
                    params,
                },
                airlock_version: airlock_store::AIRLOCK_VERSION.into(),
            },
        };
        let written = self.home_across_zones().write_version(nv).await?;
        Ok(written.reference().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_trip_and_stems() {
        assert_eq!(from_units(to_units(0.125)), 0.125);
        assert_eq!(table_stem("export/encounters.csv"), "encounters");
        let t = parse_csv_table("t", b"a,b\n1,2\n3,4\n").unwrap_or_default();
        assert_eq!(t.rows.len(), 2);
        let bad = parse_csv_table("t", b"a,b\n1,2\n3\n");
        assert!(bad.is_err_and(|e| e.to_string().contains("record 2")));
    }
}
