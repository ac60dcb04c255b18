//! The prediction log: for every served prediction, the values the model was given, its score,
//! the version, shown or silent, and the time. Rows are written in batches, each batch one
//! encrypted blob in the clinical zone (envelope encryption like every other object), indexed by
//! a table that holds ledger indices, counts and times only.

use std::collections::BTreeMap;
use std::fmt;

use airlock_store::Scope;
use airlock_types::{Classification, Zone};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::RegistryError;
use crate::package::ModelName;
use crate::registry::Registry;

/// One version's answer to one request, as monitoring needs it. Values are PHI: `Debug` shows
/// the shape only.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedPrediction {
    /// This version's ledger entry.
    pub index: u64,
    /// The request's first entry: the prediction id outcomes are posted to.
    pub request: u64,
    /// The version's hash (hex).
    pub version: String,
    /// Shown to the clinician, or silent.
    pub shown: bool,
    /// When (RFC 3339).
    pub at: String,
    /// The score.
    pub score: f64,
    /// The feature values, in the version's signature order (numbers as decimal text).
    pub values: Vec<String>,
}

impl fmt::Debug for LoggedPrediction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggedPrediction")
            .field("index", &self.index)
            .field("version", &self.version)
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

/// What a retention sweep erased of one model's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expired {
    /// Batches erased.
    pub batches: u64,
    /// Logged predictions in them.
    pub predictions: u64,
}

fn batch_blob(model: &ModelName, first: u64) -> String {
    format!("prediction-log/{model}/{first:020}")
}

fn index(i: u64) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

impl Registry {
    /// Write one batch of a model's logged predictions (in ledger order).
    pub async fn log_predictions(
        &self,
        model: &ModelName,
        rows: &[LoggedPrediction],
    ) -> Result<(), RegistryError> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(());
        };
        let blob = batch_blob(model, first.index);
        let bytes = serde_json::to_vec(rows).map_err(|_| RegistryError::Data {
            reason: "a prediction log batch does not serialise".into(),
        })?;
        self.home
            .put_blob(&blob, Zone::Clinical, Classification::Phi, &bytes)
            .await?;
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        sqlx::query(
            "INSERT INTO prediction_log_batches \
             (model, first_index, last_index, row_count, first_at, last_at, blob, zone) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(model.as_str())
        .bind(index(first.index))
        .bind(index(last.index))
        .bind(i64::try_from(rows.len()).unwrap_or(i64::MAX))
        .bind(&first.at)
        .bind(&last.at)
        .bind(&blob)
        .bind(Zone::Clinical.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Erase every batch of the log whose newest prediction is older than `before` (RFC 3339,
    /// UTC): the index rows and blob names go in one transaction that also destroys the
    /// batches' data keys, then the ciphertext is deleted. What was erased, per model.
    pub async fn expire_prediction_log(
        &self,
        before: &str,
    ) -> Result<BTreeMap<ModelName, Expired>, RegistryError> {
        let mut tx = self
            .home
            .db()
            .begin(&Scope::zones([Zone::Clinical]))
            .await?;
        let rows = sqlx::query(
            "SELECT model, first_index, row_count, blob FROM prediction_log_batches \
             WHERE last_at < $1 ORDER BY model, first_index",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let mut out: BTreeMap<ModelName, Expired> = BTreeMap::new();
        let mut blobs = Vec::with_capacity(rows.len());
        for r in rows {
            let model: String = r.try_get("model")?;
            let first: i64 = r.try_get("first_index")?;
            sqlx::query("DELETE FROM prediction_log_batches WHERE model = $1 AND first_index = $2")
                .bind(&model)
                .bind(first)
                .execute(&mut *tx)
                .await?;
            let e = out.entry(ModelName::new(&model)?).or_default();
            e.batches += 1;
            e.predictions += u64::try_from(r.try_get::<i64, _>("row_count")?).unwrap_or(0);
            blobs.push(r.try_get::<String, _>("blob")?);
        }
        let erased = self.home.erase_blobs(&mut tx, &blobs).await?;
        tx.commit().await?;
        self.home.remove_erased(&erased).await?;
        Ok(out)
    }

    /// One batch's rows, decrypted.
    async fn read_batch(&self, name: &str) -> Result<Vec<LoggedPrediction>, RegistryError> {
        let Some(bytes) = self.home.blob(name, Zone::Clinical).await? else {
            return Err(RegistryError::Data {
                reason: format!("prediction log batch {name} is missing"),
            });
        };
        serde_json::from_slice(&bytes).map_err(|_| RegistryError::Data {
            reason: format!("prediction log batch {name} is unreadable"),
        })
    }

    /// A model's logged predictions from ledger index `since` on, in ledger order.
    pub async fn logged_predictions(
        &self,
        model: &ModelName,
        since: u64,
    ) -> Result<Vec<LoggedPrediction>, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let batches = sqlx::query(
            "SELECT blob FROM prediction_log_batches WHERE model = $1 AND last_index >= $2 \
             ORDER BY first_index",
        )
        .bind(model.as_str())
        .bind(index(since))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::new();
        for b in batches {
            let rows = self.read_batch(&b.try_get::<String, _>("blob")?).await?;
            out.extend(rows.into_iter().filter(|r| r.index >= since));
        }
        Ok(out)
    }

    /// A model's most recent logged predictions, reading batches newest first until each of
    /// `versions` has at least `per_version` rows (or the log is exhausted); in ledger order.
    pub async fn recent_predictions(
        &self,
        model: &ModelName,
        per_version: usize,
        versions: &[String],
    ) -> Result<Vec<LoggedPrediction>, RegistryError> {
        let mut tx = self.home.db().begin(&Scope::all()).await?;
        let batches = sqlx::query(
            "SELECT blob FROM prediction_log_batches WHERE model = $1 ORDER BY first_index DESC",
        )
        .bind(model.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::new();
        let mut counts: std::collections::BTreeMap<&str, usize> =
            versions.iter().map(|v| (v.as_str(), 0)).collect();
        for b in batches {
            if counts.values().all(|&n| n >= per_version) {
                break;
            }
            let rows = self.read_batch(&b.try_get::<String, _>("blob")?).await?;
            for r in &rows {
                if let Some(n) = counts.get_mut(r.version.as_str()) {
                    *n += 1;
                }
            }
            out.extend(rows);
        }
        out.sort_by_key(|r| r.index);
        Ok(out)
    }
}
