//! Training and batch scoring on dataset versions, inside the zone rules: a model is trained in
//! development or staging on a de-identified (or synthetic, or DP) version, never on PHI; batch
//! scoring for validation runs there too. Both read the version through the store, so the read
//! (or its refusal) is in the ledger, and training registers the result with its lineage.

use airlock_ledger::{Entry, EventType, OutcomeKind, Timestamp};
use airlock_models::{
    Experiment, FeatureSpec, Metrics, Params, Record, Table, TrainConfig, Value, train,
};
use airlock_store::{Access, DatasetVersion, Home, ManifestFile, parse_version_spec};
use airlock_types::Zone;
use serde::Serialize;

use crate::error::RegistryError;
use crate::package::{ModelCard, ModelName, Package, TrainingData};
use crate::registry::{ModelVersion, Registry};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// `NAME[@VERSION]` of the dataset.
    pub dataset: String,
    /// Which CSV file of the version (by manifest name); the only CSV when `None`.
    pub file: Option<String>,
    /// Target column.
    pub target: String,
    /// Target value counted as positive.
    pub positive: String,
    /// Feature columns with their typing.
    pub features: Vec<FeatureSpec>,
    /// Kind and hyper-parameters.
    pub params: Params,
    /// Seed of the split.
    pub seed: u64,
    /// Held-out share.
    pub test_fraction: f64,
    /// The model's registry name.
    pub name: ModelName,
    /// For the model card.
    pub intended_use: String,
    /// For the model card.
    pub limitations: Vec<String>,
}

/// What training produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainResult {
    /// The registered version.
    pub version: ModelVersion,
    /// The training run.
    pub experiment: Experiment,
    /// The dataset version trained on.
    pub dataset: String,
}

fn store_err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Package {
        reason: e.to_string(),
    }
}

/// Read one CSV table of a dataset version, as a reader working in the version's zone. The
/// zone rules refuse identified data and anything outside development and staging (and the
/// store records the refusal).
pub async fn read_table(
    home: &Home,
    spec: &str,
    file: Option<&str>,
    columns: &[&str],
) -> Result<(DatasetVersion, Table), RegistryError> {
    let (name, ver) = parse_version_spec(spec).map_err(store_err)?;
    let v = home.version(&name, ver).await?;
    let zone = match v.zone {
        Zone::Development | Zone::Staging => v.zone,
        // Models are built in development: a reader there may not read this version.
        _ => Zone::Development,
    };
    let files = home.read_version(&v, Access::Zone(zone), None).await?;
    let csvs: Vec<&(ManifestFile, Vec<u8>)> = files
        .iter()
        .filter(|(f, _)| f.format == "csv" || f.name.ends_with(".csv"))
        .filter(|(f, _)| {
            file.is_none_or(|want| f.name == want || f.name.ends_with(&format!("/{want}")))
        })
        .collect();
    let (_, bytes) = match csvs.as_slice() {
        [one] => *one,
        [] => {
            return Err(store_err(format!(
                "{}@{} has no CSV file{}",
                v.dataset,
                v.version,
                file.map(|f| format!(" named `{f}`")).unwrap_or_default()
            )));
        }
        _ => {
            return Err(store_err(format!(
                "{}@{} has several CSV files; name one with --file",
                v.dataset, v.version
            )));
        }
    };
    let table = Table::read_csv(bytes.as_slice(), Some(columns))?;
    Ok((v, table))
}

/// Train on a dataset version and register the model (state `registered`), acting as the
/// home's actor (recorded as the trainer).
pub async fn train_on_dataset(
    home: &Home,
    registry: &Registry,
    req: &TrainRequest,
) -> Result<TrainResult, RegistryError> {
    let mut columns: Vec<&str> = req.features.iter().map(FeatureSpec::name).collect();
    columns.push(&req.target);
    let (v, table) = read_table(home, &req.dataset, req.file.as_deref(), &columns).await?;
    let config = TrainConfig {
        dataset_hash: v.manifest_hash,
        target: req.target.clone(),
        positive: req.positive.clone(),
        features: req.features.clone(),
        params: req.params.clone(),
        seed: req.seed,
        test_fraction: req.test_fraction,
    };
    let rows = table.rows() as u64;
    let outcome = tokio::task::spawn_blocking(move || train(&table, &config))
        .await
        .map_err(|_| store_err("training was interrupted"))??;
    let card = ModelCard::for_trained(
        &outcome,
        TrainingData {
            dataset: format!("{}@{}", v.dataset, v.version),
            dataset_hash: v.manifest_hash,
            zone: v.zone,
            classification: v.classification,
            rows,
        },
        home.actor().clone(),
        req.intended_use.clone(),
        req.limitations.clone(),
    );
    let version = registry
        .register(&req.name, &Package::from_trained(&outcome.model), &card)
        .await?;
    Ok(TrainResult {
        version,
        experiment: outcome.experiment,
        dataset: format!("{}@{}", v.dataset, v.version),
    })
}

/// Batch scores of a dataset version.
#[derive(Debug, Clone, Serialize)]
pub struct BatchScores {
    /// The model version.
    pub model: String,
    /// The dataset version.
    pub dataset: String,
    /// One score per row, in row order.
    #[serde(skip)]
    pub scores: Vec<f64>,
    /// Rows scored.
    pub rows: u64,
    /// Metrics against the target, when one was named.
    pub metrics: Option<Metrics>,
}

/// Score every row of a dataset version (development or staging) with a registered version,
/// verified before use. With `target`/`positive`, metrics are computed too. The run is in the
/// ledger as a query.
pub async fn score_dataset(
    home: &Home,
    registry: &Registry,
    model: &ModelVersion,
    dataset: &str,
    file: Option<&str>,
    target: Option<(&str, &str)>,
) -> Result<BatchScores, RegistryError> {
    let loaded = registry.load(model).await?;
    let mut columns: Vec<&str> = loaded.features.iter().map(String::as_str).collect();
    if let Some((t, _)) = target {
        columns.push(t);
    }
    let (v, table) = read_table(home, dataset, file, &columns).await?;
    let loaded2 = loaded.clone();
    let target_owned = target.map(|(t, p)| (t.to_string(), p.to_string()));
    let (scores, labels) = tokio::task::spawn_blocking(move || {
        let cols: Vec<&airlock_models::Column> = loaded2
            .signature
            .features
            .iter()
            .filter_map(|f| table.column(&f.name).ok())
            .collect();
        let mut scores = Vec::with_capacity(table.rows());
        for row in 0..table.rows() {
            let mut rec = Record::new();
            for (f, c) in loaded2.signature.features.iter().zip(&cols) {
                let cell = c.cells().get(row).map(String::as_str).unwrap_or_default();
                let value = match f.kind {
                    airlock_models::FeatureKind::Numeric { .. } => cell
                        .trim()
                        .parse::<f64>()
                        .map(Value::Number)
                        .unwrap_or_else(|_| Value::Text(cell.to_string())),
                    airlock_models::FeatureKind::Categorical { .. } => {
                        Value::Text(cell.to_string())
                    }
                };
                rec.insert(f.name.clone(), value);
            }
            scores.push(loaded2.score(&rec).map_err(|e| (row, e))?);
        }
        let labels = target_owned.and_then(|(t, p)| {
            table
                .column(&t)
                .ok()
                .map(|c| c.cells().iter().map(|x| *x == p).collect::<Vec<bool>>())
        });
        Ok::<_, (usize, RegistryError)>((scores, labels))
    })
    .await
    .map_err(|_| store_err("scoring was interrupted"))?
    .map_err(|(row, e)| RegistryError::Package {
        reason: format!("row {}: {e}", row + 1),
    })?;
    let metrics = match labels {
        Some(l) => Some(Metrics::compute(&l, &scores)?),
        None => None,
    };
    let rows = scores.len() as u64;
    home.audit(
        Entry::new(
            Timestamp::now(),
            home.actor().clone(),
            EventType::Query,
            v.zone,
            home.request_id(),
            OutcomeKind::Success,
        )
        .with_resource(format!("model:{}@{}", model.name, model.hash.to_hex()))
        .with_resource(format!("{}@{}", v.dataset, v.version))
        .with_reason(format!("batch scoring of {rows} rows for validation")),
    )?;
    Ok(BatchScores {
        model: model.label(),
        dataset: format!("{}@{}", v.dataset, v.version),
        scores,
        rows,
        metrics,
    })
}
