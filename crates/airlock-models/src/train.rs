//! Training from a table: a seeded, stratified held-out split, a signature inferred from the
//! table, the fit, held-out metrics, and an [`Experiment`] record that names the model by the
//! SHA-256 of its canonical bytes. Everything but the measured duration is a function of the
//! inputs, so the same table, configuration and seed give the same model hash.

use std::time::Instant;

use airlock_types::ContentHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{Reader, Writer};
use crate::error::ModelsError;
use crate::gbdt::{GbdtModel, GbdtParams};
use crate::logistic::{LogisticModel, LogisticParams};
use crate::metrics::Metrics;
use crate::model::{AnyModel, ModelKind};
use crate::rng::SplitMix64;
use crate::signature::{FeatureSpec, Record, Signature};
use crate::table::{Column, Table};

/// Magic and format version at the start of a trained model's bytes.
const MAGIC: &[u8; 8] = b"ALMODEL1";

/// Hyper-parameters, which also choose the model kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Params {
    /// Logistic regression.
    Logistic(LogisticParams),
    /// Gradient-boosted trees.
    Gbdt(GbdtParams),
}

impl Params {
    /// The model kind these parameters train.
    pub fn kind(&self) -> ModelKind {
        match self {
            Params::Logistic(_) => ModelKind::Logistic,
            Params::Gbdt(_) => ModelKind::Gbdt,
        }
    }
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Hash of the dataset version the table came from (recorded, not checked).
    pub dataset_hash: ContentHash,
    /// Target column.
    pub target: String,
    /// The target value that counts as positive; every other value is negative.
    pub positive: String,
    /// Feature columns, in order, with how to type them.
    pub features: Vec<FeatureSpec>,
    /// Kind and hyper-parameters.
    pub params: Params,
    /// Seed of the split and of any subsampling.
    pub seed: u64,
    /// Share of rows held out for evaluation, in (0, 1).
    pub test_fraction: f64,
}

/// The held-out split: row indices into the table, each list ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSplit {
    /// Training rows.
    pub train: Vec<usize>,
    /// Held-out rows.
    pub test: Vec<usize>,
}

impl DataSplit {
    /// Stratified split: each class is shuffled with the seed and its first
    /// `round(test_fraction * class size)` rows are held out.
    pub fn stratified(labels: &[bool], test_fraction: f64, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut train = Vec::new();
        let mut test = Vec::new();
        for class in [false, true] {
            let mut idx: Vec<usize> = labels
                .iter()
                .enumerate()
                .filter(|(_, y)| **y == class)
                .map(|(i, _)| i)
                .collect();
            rng.shuffle(&mut idx);
            let k = ((idx.len() as f64) * test_fraction).round() as usize;
            let (te, tr) = idx.split_at(k.min(idx.len()));
            test.extend_from_slice(te);
            train.extend_from_slice(tr);
        }
        train.sort_unstable();
        test.sort_unstable();
        DataSplit { train, test }
    }
}

/// A model with its signature: what serving loads.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    signature: Signature,
    model: AnyModel,
}

impl TrainedModel {
    /// Pair a signature with a model: the signature must be valid and its encoded width must be
    /// the model's input width.
    pub fn new(signature: Signature, model: AnyModel) -> Result<Self, ModelsError> {
        signature.validate()?;
        let width = signature.width(model.kind().encoding());
        if width != model.n_inputs() {
            return Err(ModelsError::Dimension {
                expected: model.n_inputs(),
                found: width,
            });
        }
        Ok(TrainedModel { signature, model })
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The model.
    pub fn model(&self) -> &AnyModel {
        &self.model
    }

    /// Validate a record against the signature, encode it and predict.
    pub fn predict(&self, record: &Record) -> Result<f64, ModelsError> {
        let x = self
            .signature
            .encode(record, self.model.kind().encoding())?;
        self.model.predict_proba(&x)
    }

    /// Score every row of `table`, in row order. Columns are found by feature name (others are
    /// ignored) and every cell is checked against the signature, as [`TrainedModel::predict`]
    /// checks a record.
    pub fn predict_table(&self, table: &Table) -> Result<Vec<f64>, ModelsError> {
        let rows: Vec<usize> = (0..table.rows()).collect();
        let x = self.encode_rows(table, &rows)?;
        let d = self.model.n_inputs();
        if d == 0 {
            return rows.iter().map(|_| self.model.predict_proba(&[])).collect();
        }
        x.chunks_exact(d)
            .map(|row| self.model.predict_proba(row))
            .collect()
    }

    /// Encode rows of `table` as this model's input matrix (row-major).
    pub(crate) fn encode_rows(
        &self,
        table: &Table,
        rows: &[usize],
    ) -> Result<Vec<f64>, ModelsError> {
        let columns = self
            .signature
            .features
            .iter()
            .map(|f| table.column(&f.name))
            .collect::<Result<Vec<&Column>, _>>()?;
        self.signature
            .encode_columns(&columns, rows, self.model.kind().encoding())
    }

    /// Canonical bytes: magic, signature, kind, model bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(MAGIC);
        self.signature.write(&mut w);
        w.u8(self.model.kind().tag());
        let body = self.model.to_bytes();
        w.len(body.len());
        w.bytes(&body);
        w.finish()
    }

    /// Decode canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelsError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(r.err("not an airlock model"));
        }
        let signature = Signature::read(&mut r)?;
        let kind = r.u8()?;
        let model = AnyModel::from_kind_bytes(kind, &mut r)?;
        r.expect_end()?;
        TrainedModel::new(signature, model)
    }

    /// SHA-256 of the canonical bytes (which include the signature).
    pub fn hash(&self) -> ContentHash {
        ContentHash::from_bytes(Sha256::digest(self.to_bytes()).into())
    }
}

/// Sizes of the split, recorded in the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSummary {
    /// Held-out share asked for.
    pub test_fraction: f64,
    /// Training rows.
    pub train_rows: u64,
    /// Held-out rows.
    pub test_rows: u64,
    /// Positives among training rows.
    pub train_positives: u64,
    /// Positives among held-out rows.
    pub test_positives: u64,
}

/// The record of one training run, for the registry and the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Dataset version hash, as passed in.
    pub dataset_hash: ContentHash,
    /// Target column.
    pub target: String,
    /// Positive value of the target.
    pub positive: String,
    /// Feature column names, in order.
    pub features: Vec<String>,
    /// The signature.
    pub signature: Signature,
    /// Model kind.
    pub kind: ModelKind,
    /// Hyper-parameters.
    pub params: Params,
    /// Seed.
    pub seed: u64,
    /// The engine that trained: `airlock-models <version>`.
    pub code_version: String,
    /// Split sizes.
    pub split: SplitSummary,
    /// Metrics on the held-out split.
    pub metrics: Metrics,
    /// Wall-clock training time in seconds (fit only; not part of any hash).
    pub training_seconds: f64,
    /// SHA-256 of the trained model's canonical bytes.
    pub model_hash: ContentHash,
}

/// Everything a training run produces.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The model.
    pub model: TrainedModel,
    /// The record.
    pub experiment: Experiment,
    /// The exact split, for audit and for reproducing the run elsewhere.
    pub split: DataSplit,
}

/// The engine version recorded in experiments.
pub fn code_version() -> String {
    format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// Train one model on `table` as `config` says.
pub fn train(table: &Table, config: &TrainConfig) -> Result<TrainOutcome, ModelsError> {
    if !(config.test_fraction > 0.0 && config.test_fraction < 1.0) {
        return Err(ModelsError::InvalidParam {
            param: "test_fraction",
            rule: "must be in (0, 1)",
        });
    }
    let target = table.column(&config.target)?;
    let mut columns: Vec<(&FeatureSpec, &Column)> = Vec::with_capacity(config.features.len());
    for spec in &config.features {
        if spec.name() == config.target {
            return Err(ModelsError::TargetAsFeature {
                column: config.target.clone(),
            });
        }
        if columns.iter().any(|(s, _)| s.name() == spec.name()) {
            return Err(ModelsError::DuplicateColumn {
                column: spec.name().to_owned(),
            });
        }
        columns.push((spec, table.column(spec.name())?));
    }
    let needed = 10;
    if table.rows() < needed {
        return Err(ModelsError::TooFewRows {
            rows: table.rows(),
            needed,
        });
    }
    let labels: Vec<bool> = target
        .cells()
        .iter()
        .map(|c| *c == config.positive)
        .collect();
    let split = DataSplit::stratified(&labels, config.test_fraction, config.seed);
    let pick = |rows: &[usize]| -> Vec<bool> {
        rows.iter()
            .map(|&r| labels.get(r).copied().unwrap_or(false))
            .collect()
    };
    let (y_train, y_test) = (pick(&split.train), pick(&split.test));
    for (part, y) in [("training split", &y_train), ("held-out split", &y_test)] {
        if !(y.iter().any(|v| *v) && y.iter().any(|v| !*v)) {
            return Err(ModelsError::SingleClass { part });
        }
    }
    // The signature describes the whole table's schema (ranges, categories), so a category seen
    // only in the held-out rows is still a valid input; the fit itself sees training rows only.
    let signature = Signature::infer(&columns)?;
    let kind = config.params.kind();
    let encoding = kind.encoding();
    let cols: Vec<&Column> = columns.iter().map(|(_, c)| *c).collect();
    let d = signature.width(encoding);
    let x_train = signature.encode_columns(&cols, &split.train, encoding)?;
    let x_test = signature.encode_columns(&cols, &split.test, encoding)?;
    let started = Instant::now();
    // What the experiment records: the parameters, with DP-SGD's accountant figures.
    let mut recorded = config.params.clone();
    let model = match &config.params {
        Params::Logistic(p) => match &p.dp {
            None => AnyModel::Logistic(LogisticModel::fit(&x_train, d, &y_train, p)?),
            Some(dp) => {
                let (m, filled) =
                    crate::dpsgd::fit_logistic(&x_train, d, &y_train, p.l2, dp, true)?;
                recorded = Params::Logistic(LogisticParams {
                    dp: Some(filled),
                    ..p.clone()
                });
                AnyModel::Logistic(m)
            }
        },
        Params::Gbdt(p) => AnyModel::Gbdt(GbdtModel::fit(&x_train, d, &y_train, p, config.seed)?),
    };
    let training_seconds = started.elapsed().as_secs_f64();
    let scores = x_test
        .chunks_exact(d.max(1))
        .map(|row| model.predict_proba(row))
        .collect::<Result<Vec<f64>, _>>()?;
    let metrics = Metrics::compute(&y_test, &scores)?;
    let model = TrainedModel::new(signature, model)?;
    let count = |y: &[bool]| y.iter().filter(|v| **v).count() as u64;
    let experiment = Experiment {
        dataset_hash: config.dataset_hash,
        target: config.target.clone(),
        positive: config.positive.clone(),
        features: config
            .features
            .iter()
            .map(|f| f.name().to_owned())
            .collect(),
        signature: model.signature().clone(),
        kind,
        params: recorded,
        seed: config.seed,
        code_version: code_version(),
        split: SplitSummary {
            test_fraction: config.test_fraction,
            train_rows: split.train.len() as u64,
            test_rows: split.test.len() as u64,
            train_positives: count(&y_train),
            test_positives: count(&y_test),
        },
        metrics,
        training_seconds,
        model_hash: model.hash(),
    };
    Ok(TrainOutcome {
        model,
        experiment,
        split,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_is_seeded_and_partitions() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let a = DataSplit::stratified(&labels, 0.2, 1);
        let b = DataSplit::stratified(&labels, 0.2, 1);
        let c = DataSplit::stratified(&labels, 0.2, 2);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.test.len(), 200);
        assert_eq!(a.test.iter().filter(|&&i| labels[i]).count(), 20);
        let mut all: Vec<usize> = a.train.iter().chain(&a.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
}
