//! Differentially private synthetic data (the synthesis gate): a data scientist asks for rows
//! that stand in for a clinical table (or a de-identified one in development, to share where
//! no BAA covers it); MST runs where the data is, on the columns the privacy
//! officer has declared (domains, bounds, bins), and only the synthetic rows and a report of
//! aggregates leave, to a `synthetic` version in development, charged to the same budgets as
//! DP questions.
//!
//! Order, so that a refusal spends nothing: check ε, δ and the output name, find the version
//! and ask the policy (synthesis is a DP release: the `dp-query` action), load the DP
//! metadata, read the table and choose its columns (an identifier, an undeclared column or an
//! unknown one is refused here), code the rows, then reserve ρ on the analyst's and the
//! dataset's budgets, then measure. Once a mechanism has run the charge stands, even if a
//! later step fails: the noise was drawn from the data.
//!
//! A fifth of the privacy units (all their rows) is held out and never read by the
//! synthesiser: the report measures utility and closeness against those rows. The report is
//! computed here, in the source's zone, and holds aggregates only.

use std::collections::BTreeMap;

use airlock_dp::{Privacy, PrivacyUnit};
use airlock_ledger::{EventType, OutcomeKind};
use airlock_models::synth::report::{Inputs, SynthReport, report};
use airlock_models::synth::{
    Charge, ColumnKind, MstConfig, SynthColumn, bound_contributions, decode, encode, mst,
    split_units,
};
use airlock_store::{Lineage, NewFile, NewVersion, Transform};
use airlock_types::{Classification, DatasetName, Gate, Zone};
use rand::RngCore as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dp::Remaining;
use crate::{Caller, LedgerResource, ServiceError};

/// The most synthetic rows one run may ask for.
pub const MAX_ROWS: u64 = 1_000_000;

/// The share of units held out for the report.
const HOLDOUT: f64 = 0.2;

/// Rows of each side sampled for the distance figures.
const DISTANCE_SAMPLE: usize = 1_000;

/// Mirror-descent iterations of the final estimation (it stops once converged).
const ITERATIONS: usize = 1_000;

fn default_delta() -> f64 {
    1e-6
}

/// A synthesis request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynthBody {
    /// The source version, `name[@version]` (clinical or airlock zone, or de-identified in
    /// development).
    #[schemars(length(min = 1, max = 200))]
    pub dataset: String,
    /// ε of the whole run.
    pub epsilon: f64,
    /// δ (the run is ρ-zCDP, converted to (ε, δ)).
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// The table: a CSV file's stem when the version has several, or a view of a FHIR version.
    #[schemars(length(min = 1, max = 128))]
    pub table: Option<String>,
    /// The columns to synthesise (default: every column with a declared domain or bounds,
    /// identifiers excepted).
    pub columns: Option<Vec<String>>,
    /// Rows to generate (default: the model's noisy estimate of the rows it read).
    #[schemars(range(min = 1, max = 1_000_000))]
    pub rows: Option<u64>,
    /// A categorical column to measure utility on (train on synthetic, test on real).
    #[schemars(length(min = 1, max = 128))]
    pub target: Option<String>,
    /// The target's positive value (default `1`).
    #[schemars(length(min = 1, max = 128))]
    pub positive: Option<String>,
    /// The output dataset (a `synthetic` version in development).
    #[schemars(with = "airlock_types::DatasetName")]
    pub out_dataset: String,
    /// The sampling seed (default: random, and recorded).
    pub seed: Option<u64>,
}

/// What a synthesis produced.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SynthResult {
    /// The source version.
    pub source: String,
    /// The synthetic version written.
    pub dataset: String,
    /// The method (`mst`).
    pub method: String,
    /// Rows generated.
    pub rows: u64,
    /// The columns and their declared discretisation.
    pub columns: Vec<SynthColumn>,
    /// ε asked.
    pub epsilon: f64,
    /// δ asked.
    pub delta: f64,
    /// ρ charged to the budgets.
    pub rho: f64,
    /// ρ the mechanisms spent (their zCDP composition, at most `rho`).
    pub rho_spent: f64,
    /// Every mechanism's charge.
    pub charges: Vec<Charge>,
    /// The pairs of columns whose joint distribution was measured.
    pub selected: Vec<[String; 2]>,
    /// Per column, declared cells merged for being too rare to measure.
    pub merged: BTreeMap<String, usize>,
    /// The sampling seed.
    pub seed: u64,
    /// The DP metadata version used.
    pub metadata_version: i64,
    /// Fidelity, utility and privacy figures.
    pub report: SynthReport,
    /// Budgets left.
    pub remaining: Remaining,
}

/// A source table in columns, with each row's privacy unit.
struct Source {
    columns: Vec<(String, Vec<String>)>,
    units: Vec<String>,
}

impl Caller {
    /// Synthesise a table (`airlock synth`, `POST /v1/synth`).
    pub async fn synthesize(&self, body: SynthBody) -> Result<SynthResult, ServiceError> {
        let privacy = Privacy {
            epsilon: body.epsilon,
            delta: Some(body.delta),
        };
        privacy.check().map_err(|e| {
            let field = if body.delta.is_finite() && body.delta > 0.0 && body.delta <= 1e-3 {
                "epsilon"
            } else {
                "delta"
            };
            ServiceError::invalid(field, e.to_string())
        })?;
        let rho = privacy
            .rho()
            .map_err(|e| ServiceError::invalid("epsilon", e.to_string()))?;
        let out = DatasetName::new(body.out_dataset.clone())
            .map_err(|e| ServiceError::invalid("out_dataset", e.to_string()))?;
        if body.rows.is_some_and(|r| r == 0 || r > MAX_ROWS) {
            return Err(ServiceError::invalid(
                "rows",
                format!("rows must be between 1 and {MAX_ROWS}"),
            ));
        }
        let (v, meta_view) = self
            .dp_source(&body.dataset, "synthetic data is generated from", true)
            .await?;
        let meta = meta_view.metadata();
        let wanted: Vec<String> = body.table.iter().cloned().collect();
        let mut tables = self.dp_tables(&v, &wanted, Gate::Synthesize).await?;
        let table_name = match &body.table {
            Some(t) => t.clone(),
            None if tables.len() == 1 => tables.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(ServiceError::invalid(
                    "table",
                    if tables.is_empty() {
                        "a FHIR version is synthesised through a view: name it as the table"
                            .to_owned()
                    } else {
                        format!(
                            "the version has several tables; name one of {}",
                            tables.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                ));
            }
        };
        let table = tables.remove(&table_name).ok_or_else(|| {
            ServiceError::invalid("table", format!("the version has no table {table_name:?}"))
        })?;
        drop(tables);

        // The columns, each declared; identifiers never.
        let unit_column = match &meta.unit {
            PrivacyUnit::Column(c) => Some(c.clone()),
            PrivacyUnit::Row => None,
        };
        let identifier = |c: &str| -> Option<String> {
            if unit_column.as_deref() == Some(c) {
                return Some("the privacy unit".into());
            }
            airlock_store::identifier_column(c).map(|k| format!("a direct identifier ({k})"))
        };
        let declared = |c: &str| {
            meta.domain_of(&table_name, c).is_some() || meta.bounds_of(&table_name, c).is_some()
        };
        let names: Vec<String> = match &body.columns {
            Some(c) => c.clone(),
            None => table
                .columns
                .iter()
                .filter(|c| declared(c) && identifier(c).is_none())
                .cloned()
                .collect(),
        };
        if names.is_empty() {
            return Err(ServiceError::invalid(
                "columns",
                "no column to synthesise: a privacy officer declares domains or bounds first",
            ));
        }
        let mut columns = Vec::with_capacity(names.len());
        for c in &names {
            if !table.columns.contains(c) {
                return Err(ServiceError::invalid(
                    "columns",
                    format!("column {c:?} is not in table {table_name:?}"),
                ));
            }
            if let Some(what) = identifier(c) {
                return Err(ServiceError::Refused {
                    reason: format!("column {c:?} is {what} and is never synthesised"),
                });
            }
            let kind = if let Some(domain) = meta.domain_of(&table_name, c) {
                ColumnKind::Categorical {
                    domain: domain.clone(),
                }
            } else if let (Some((lo, hi)), Some(bins)) =
                (meta.bounds_of(&table_name, c), meta.bins_of(&table_name, c))
            {
                ColumnKind::Numeric { lo, hi, bins }
            } else {
                return Err(ServiceError::Refused {
                    reason: format!(
                        "column {c:?} has no declared domain or bounds; a privacy officer declares them (airlock dp metadata set --domain or --bound)"
                    ),
                });
            };
            let column = SynthColumn {
                name: c.clone(),
                kind,
            };
            column
                .check()
                .map_err(|e| ServiceError::invalid("columns", e.to_string()))?;
            columns.push(column);
        }
        let target = match &body.target {
            None => None,
            Some(t) => {
                let positive = body.positive.clone().unwrap_or_else(|| "1".into());
                match columns.iter().find(|c| &c.name == t).map(|c| &c.kind) {
                    Some(ColumnKind::Categorical { domain }) if domain.contains(&positive) => {}
                    Some(ColumnKind::Categorical { .. }) => {
                        return Err(ServiceError::invalid(
                            "positive",
                            format!("the positive value is not in the declared domain of {t:?}"),
                        ));
                    }
                    _ => {
                        return Err(ServiceError::invalid(
                            "target",
                            format!(
                                "the target {t:?} must be one of the synthesised categorical columns"
                            ),
                        ));
                    }
                }
                Some((t.clone(), positive))
            }
        };
        let source = source_columns(&table_name, &table, &names, unit_column.as_deref())?;
        drop(table);
        let rows_per_unit = match meta.unit {
            PrivacyUnit::Row => 1,
            PrivacyUnit::Column(_) => meta.rows_per_unit_of(&table_name),
        };
        let seed = body.seed.unwrap_or_else(|| rand::rngs::OsRng.next_u64());

        // The reservation is never released: once a mechanism runs, the charge stands.
        if let Err(why) = self.reserve(&v.dataset, &privacy, rho).await {
            {
                self.audit(
                    self.entry(EventType::DpRelease, v.zone, OutcomeKind::Denied)
                        .with_resource(LedgerResource::DatasetVersion(v.reference().to_string()))
                        .with_reason(format!(
                            "budget: dp-synthetic over {} column(s) needs epsilon {} (rho {rho:.6})",
                            columns.len(),
                            privacy.epsilon
                        )),
                )
                .await?;
                return Err(ServiceError::Refused { reason: why });
            }
        }
        let job_columns = columns.clone();
        let rows = body.rows;
        let run = tokio::task::spawn_blocking(move || {
            run_mst(
                &source,
                &job_columns,
                target,
                rho,
                rows_per_unit,
                rows,
                seed,
            )
        })
        .await
        .map_err(ServiceError::internal)?;
        let (fit, synthetic_csv, report) = match run {
            Ok(r) => r,
            Err(e) => {
                self.audit(
                    self.entry(EventType::DpRelease, v.zone, OutcomeKind::Failure)
                        .with_resource(LedgerResource::DatasetVersion(v.reference().to_string()))
                        .with_reason(format!(
                            "dp-synthetic failed after its budget was reserved (the charge stands): {e}"
                        )),
                )
                .await?;
                return Err(ServiceError::internal(e));
            }
        };
        let selected: Vec<[String; 2]> = fit
            .edges
            .iter()
            .map(|&(i, j)| {
                let name = |k: usize| names.get(k).cloned().unwrap_or_default();
                [name(i), name(j)]
            })
            .collect();
        let merged: BTreeMap<String, usize> = names
            .iter()
            .cloned()
            .zip(fit.merged())
            .filter(|(_, m)| *m > 0)
            .collect();
        let generated = synthetic_csv.1;
        let report_bytes = serde_json::to_vec_pretty(&report).map_err(ServiceError::internal)?;
        let mut params = BTreeMap::new();
        params.insert("method".to_owned(), "mst".to_owned());
        params.insert("epsilon".to_owned(), privacy.epsilon.to_string());
        params.insert("delta".to_owned(), format!("{:e}", body.delta));
        params.insert("rho".to_owned(), format!("{rho:.9}"));
        params.insert("rho_spent".to_owned(), format!("{:.9}", fit.rho_spent));
        params.insert("seed".to_owned(), seed.to_string());
        params.insert("table".to_owned(), table_name.clone());
        params.insert("columns".to_owned(), names.join(","));
        params.insert(
            "marginals".to_owned(),
            selected
                .iter()
                .map(|[a, b]| format!("{a}x{b}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        params.insert("source_manifest".to_owned(), v.manifest_hash.to_hex());
        params.insert(
            "dp_metadata_version".to_owned(),
            meta_view.version.to_string(),
        );
        let nv = NewVersion {
            dataset: out.clone(),
            zone: Zone::Development,
            classification: Classification::Synthetic,
            source: Some((v.zone, v.classification)),
            files: vec![
                NewFile {
                    name: "synthetic.csv".into(),
                    format: "csv".into(),
                    records: generated,
                    bytes: synthetic_csv.0,
                },
                NewFile {
                    name: "synthesis-report.json".into(),
                    format: "report".into(),
                    records: 1,
                    bytes: report_bytes,
                },
            ],
            lineage: Lineage {
                source_system: v.lineage.source_system.clone(),
                extracted_at: chrono::Utc::now().to_rfc3339(),
                triggered_by: self.who.principal.id.clone(),
                parents: vec![v.reference()],
                gate: Gate::Synthesize,
                transform: Transform {
                    name: "dp-synthetic".into(),
                    config_hash: None,
                    params,
                },
                airlock_version: airlock_store::AIRLOCK_VERSION.into(),
            },
        };
        let written = self.home_across_zones().write_version(nv).await?;
        self.audit(
            self.entry(EventType::DpRelease, v.zone, OutcomeKind::Success)
                .with_resource(LedgerResource::DatasetVersion(v.reference().to_string()))
                .with_reason(format!(
                    "dp-synthetic: mst over {} column(s), {} pair(s), epsilon {} delta {:e} rho {rho:.6} (spent {:.6}) under dp metadata v{}, {} row(s) saved as {}",
                    names.len(),
                    selected.len(),
                    privacy.epsilon,
                    body.delta,
                    fit.rho_spent,
                    meta_view.version,
                    generated,
                    written.reference()
                )),
        )
        .await?;
        Ok(SynthResult {
            source: v.reference().to_string(),
            dataset: written.reference().to_string(),
            method: "mst".into(),
            rows: generated,
            columns,
            epsilon: privacy.epsilon,
            delta: body.delta,
            rho,
            rho_spent: fit.rho_spent,
            charges: fit.charges,
            selected,
            merged,
            seed,
            metadata_version: meta_view.version,
            report,
            remaining: self.remaining(&v.dataset).await?,
        })
    }
}

/// The chosen columns of a DP table, column-major, with each row's unit (its row number when
/// the row is the unit).
fn source_columns(
    table_name: &str,
    table: &airlock_dp::Table,
    names: &[String],
    unit: Option<&str>,
) -> Result<Source, ServiceError> {
    let index = |c: &str| table.columns.iter().position(|x| x == c);
    let mut columns: Vec<(String, Vec<String>)> = names
        .iter()
        .map(|n| (n.clone(), Vec::with_capacity(table.rows.len())))
        .collect();
    let picks: Vec<Option<usize>> = names.iter().map(|n| index(n)).collect();
    let unit_at = match unit {
        None => None,
        Some(u) => Some(index(u).ok_or_else(|| {
            ServiceError::invalid(
                "table",
                format!("table {table_name:?} lacks the privacy unit column {u:?}"),
            )
        })?),
    };
    let mut units = Vec::with_capacity(table.rows.len());
    for (r, row) in table.rows.iter().enumerate() {
        for ((_, cells), pick) in columns.iter_mut().zip(&picks) {
            cells.push(pick.and_then(|i| row.get(i)).cloned().unwrap_or_default());
        }
        units.push(match unit_at {
            Some(i) => row.get(i).cloned().unwrap_or_default(),
            None => r.to_string(),
        });
    }
    Ok(Source { columns, units })
}

/// The fitted model, the synthetic CSV and its row count, and the report.
type Synthesised = (mst::MstOutcome, (Vec<u8>, u64), SynthReport);

/// Everything that reads rows: split, bound, code, fit, sample, report. CPU-bound, so it runs
/// off the async workers.
fn run_mst(
    source: &Source,
    columns: &[SynthColumn],
    target: Option<(String, String)>,
    rho: f64,
    rows_per_unit: u32,
    rows: Option<u64>,
    seed: u64,
) -> Result<Synthesised, airlock_models::ModelsError> {
    let units: Vec<&str> = source.units.iter().map(String::as_str).collect();
    let (keep, held) = split_units(&units, HOLDOUT, seed);
    let kept_units: Vec<&str> = keep.iter().filter_map(|&r| units.get(r).copied()).collect();
    let bounded: Vec<usize> = bound_contributions(&kept_units, rows_per_unit as usize, seed)
        .into_iter()
        .filter_map(|i| keep.get(i).copied())
        .collect();
    let pick = |rows: &[usize]| {
        airlock_models::Table::from_columns(
            source
                .columns
                .iter()
                .map(|(n, cells)| {
                    (
                        n.clone(),
                        rows.iter().filter_map(|&r| cells.get(r).cloned()).collect(),
                    )
                })
                .collect(),
        )
    };
    let train = pick(&bounded)?;
    let holdout = pick(&held)?;
    let data = encode(&train, columns)?;
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let fit = mst::fit(
        &data,
        &names,
        &MstConfig {
            rho,
            rows_per_unit,
            iterations: ITERATIONS,
        },
    )?;
    let n = rows.map_or(fit.estimated_rows.round().max(1.0) as usize, |r| r as usize);
    let synthetic = decode(&fit.sample(n, seed)?, columns, seed)?;
    let report = report(&Inputs {
        columns,
        train: &train,
        holdout: &holdout,
        synthetic: &synthetic,
        target: target.as_ref().map(|(t, p)| (t.as_str(), p.as_str())),
        sample: DISTANCE_SAMPLE,
        seed,
    })?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let write_err = |_| airlock_models::ModelsError::MetricInput {
        rule: "the synthetic rows could not be written as CSV",
    };
    w.write_record(&names).map_err(write_err)?;
    for r in 0..synthetic.rows() {
        w.write_record(
            synthetic
                .columns()
                .iter()
                .map(|c| c.cells().get(r).map_or("", String::as_str)),
        )
        .map_err(write_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|_| airlock_models::ModelsError::MetricInput {
            rule: "the synthetic rows could not be written as CSV",
        })?;
    Ok((fit, (bytes, n as u64), report))
}
