//! Training and batch scoring on dataset versions, inside the zone rules: a model is trained in
//! development or staging on a de-identified (or synthetic, or DP) version, never on PHI; batch
//! scoring for validation runs there too. Both read the version through the store, so the read
//! (or its refusal) is in the ledger, and training registers the result with its lineage.

use airlock_ledger::{EventType, OutcomeKind};
use airlock_models::monitor::Reference;
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
    /// The exact split (row indices), so callers can evaluate on held-out rows only.
    #[serde(skip)]
    pub split: Option<airlock_models::DataSplit>,
}

fn data_err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Data {
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
    let (name, ver) = parse_version_spec(spec).map_err(data_err)?;
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
            return Err(data_err(format!(
                "{}@{} has no CSV file{}",
                v.dataset,
                v.version,
                file.map(|f| format!(" named `{f}`")).unwrap_or_default()
            )));
        }
        _ => {
            return Err(data_err(format!(
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
    let source = format!("{}@{}", v.dataset, v.version);
    let (outcome, reference) = tokio::task::spawn_blocking(move || {
        let outcome = train(&table, &config)?;
        // The monitoring reference: the features as trained on, the scores as held out.
        let scores = outcome.model.predict_table(&table)?;
        let held_out = outcome
            .split
            .test
            .iter()
            .filter_map(|&i| scores.get(i).copied())
            .collect();
        let reference = Reference::build(source, &table, outcome.model.signature(), held_out)?;
        Ok::<_, airlock_models::ModelsError>((outcome, reference))
    })
    .await
    .map_err(|_| data_err("training was interrupted"))??;
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
    registry.save_reference(&version, &reference).await?;
    Ok(TrainResult {
        version,
        experiment: outcome.experiment,
        dataset: format!("{}@{}", v.dataset, v.version),
        split: Some(outcome.split),
    })
}

/// A model trained elsewhere, to evaluate on a dataset version and register.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// What the artifact is.
    pub kind: crate::package::ArtifactKind,
    /// Its bytes (an ONNX file).
    pub artifact: Vec<u8>,
    /// What it accepts; its one-hot encoding is the model's input vector.
    pub signature: airlock_models::Signature,
    /// `NAME[@VERSION]` of a dataset (development or staging) with the features and the target,
    /// on which Airlock measures the model for its card.
    pub dataset: String,
    /// Which CSV of the version.
    pub file: Option<String>,
    /// Target column.
    pub target: String,
    /// Positive value of the target.
    pub positive: String,
    /// Registry name.
    pub name: ModelName,
    /// Model card.
    pub intended_use: String,
    /// Model card.
    pub limitations: Vec<String>,
    /// Who trained it, outside Airlock (never an approver).
    pub trained_by: airlock_types::ActorId,
}

/// Import a model trained elsewhere: load it with the registry's runtime (which refuses what it
/// cannot run), measure it on a dataset version Airlock holds, and register it.
pub async fn import_model(
    home: &Home,
    registry: &Registry,
    req: &ImportRequest,
) -> Result<TrainResult, RegistryError> {
    req.signature.validate()?;
    let package = Package {
        kind: req.kind,
        artifact: req.artifact.clone(),
        signature: req.signature.clone(),
    };
    let scorer = registry.scorer_for(&req.name, &package)?;
    let mut columns: Vec<&str> = req
        .signature
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    columns.push(&req.target);
    let (v, table) = read_table(home, &req.dataset, req.file.as_deref(), &columns).await?;
    let signature = req.signature.clone();
    let target = req.target.clone();
    let positive = req.positive.clone();
    let source = format!("{}@{}", v.dataset, v.version);
    let (scores, labels, reference) = tokio::task::spawn_blocking(move || {
        let mut scores = Vec::with_capacity(table.rows());
        for row in 0..table.rows() {
            let rec = record_at(&table, &signature, row);
            scores.push(scorer.score(&rec).map_err(|e| (row, e))?);
        }
        let labels: Vec<bool> = table
            .column(&target)
            .map(|c| c.cells().iter().map(|x| *x == positive).collect())
            .unwrap_or_default();
        let reference = Reference::build(source, &table, &signature, scores.clone())
            .map_err(|e| (0, e.into()))?;
        Ok::<_, (usize, RegistryError)>((scores, labels, reference))
    })
    .await
    .map_err(|_| data_err("evaluation was interrupted"))?
    .map_err(|(row, e)| RegistryError::Data {
        reason: format!("row {}: {e}", row + 1),
    })?;
    let metrics = Metrics::compute(&labels, &scores)?;
    let card = ModelCard {
        intended_use: req.intended_use.clone(),
        limitations: req.limitations.clone(),
        trained_by: req.trained_by.clone(),
        family: req.kind.as_str().to_string(),
        training_data: TrainingData {
            dataset: format!("{}@{}", v.dataset, v.version),
            dataset_hash: v.manifest_hash,
            zone: v.zone,
            classification: v.classification,
            rows: scores.len() as u64,
        },
        features: req
            .signature
            .features
            .iter()
            .map(|f| f.name.clone())
            .collect(),
        metrics: metrics.clone(),
        experiment: None,
        code_version: format!(
            "imported; evaluated by airlock-registry {}",
            env!("CARGO_PKG_VERSION")
        ),
    };
    let version = registry.register(&req.name, &package, &card).await?;
    registry.save_reference(&version, &reference).await?;
    let experiment = Experiment {
        dataset_hash: v.manifest_hash,
        target: req.target.clone(),
        positive: req.positive.clone(),
        features: card.features.clone(),
        signature: req.signature.clone(),
        kind: airlock_models::ModelKind::Onnx,
        params: Params::Logistic(airlock_models::LogisticParams::default()),
        seed: 0,
        code_version: card.code_version.clone(),
        split: airlock_models::SplitSummary {
            test_fraction: 1.0,
            train_rows: 0,
            test_rows: scores.len() as u64,
            train_positives: 0,
            test_positives: labels.iter().filter(|l| **l).count() as u64,
        },
        metrics,
        training_seconds: 0.0,
        model_hash: version.hash,
    };
    Ok(TrainResult {
        version,
        experiment,
        dataset: format!("{}@{}", v.dataset, v.version),
        split: None,
    })
}

/// A record from one table row, typed by the signature (numeric cells that do not parse stay
/// text, so the signature refuses them by name).
pub(crate) fn record_at(
    table: &Table,
    signature: &airlock_models::Signature,
    row: usize,
) -> Record {
    let mut rec = Record::new();
    for f in &signature.features {
        let cell = table
            .column(&f.name)
            .ok()
            .and_then(|c| c.cells().get(row))
            .map(String::as_str)
            .unwrap_or_default();
        let value = match f.kind {
            airlock_models::FeatureKind::Numeric { .. } => cell
                .trim()
                .parse::<f64>()
                .map(Value::Number)
                .unwrap_or_else(|_| Value::Text(cell.to_string())),
            airlock_models::FeatureKind::Categorical { .. } => Value::Text(cell.to_string()),
        };
        rec.insert(f.name.clone(), value);
    }
    rec
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
        let mut scores = Vec::with_capacity(table.rows());
        for row in 0..table.rows() {
            let rec = record_at(&table, &loaded2.signature, row);
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
    .map_err(|_| data_err("scoring was interrupted"))?
    .map_err(|(row, e)| RegistryError::Data {
        reason: format!("row {}: {e}", row + 1),
    })?;
    let metrics = match labels {
        Some(l) => Some(Metrics::compute(&l, &scores)?),
        None => None,
    };
    let rows = scores.len() as u64;
    home.audit(
        home.entry(EventType::Query, v.zone, OutcomeKind::Success)
            .with_resource(format!("model:{}@{}", model.name, model.hash.to_hex()))
            .with_resource(format!("{}@{}", v.dataset, v.version))
            .with_reason(format!("batch scoring of {rows} rows for validation")),
    )
    .await?;
    Ok(BatchScores {
        model: model.label(),
        dataset: format!("{}@{}", v.dataset, v.version),
        scores,
        rows,
        metrics,
    })
}
