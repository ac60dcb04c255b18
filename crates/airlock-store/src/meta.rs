//! The metadata store (SQLite by default) and its migrations.
//!
//! Queries use `$N` placeholders and portable types so the same statements run on PostgreSQL.

use std::path::Path;
use std::str::FromStr;

use airlock_crypto::WrappedKey;
use airlock_types::{Classification, ContentHash, DatasetName, DatasetVersionId, Zone};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::StoreError;
use crate::datasets::{DatasetSummary, DatasetVersion, Lineage, VersionRef};
use crate::objects::ObjectRef;

/// Ordered migrations, embedded in the binary.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_blobs.sql")),
];

/// The metadata store.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pool: SqlitePool,
}

fn parse<T: FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt {
        hash: what.to_string(),
        reason: "unparseable value in the metadata store".into(),
    })
}

impl Meta {
    /// Open (creating if asked) and migrate.
    pub(crate) async fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let meta = Meta { pool };
        meta.migrate().await?;
        Ok(meta)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let body: String = stmt
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                if body.trim().is_empty() {
                    continue;
                }
                // Migration text is embedded at compile time; no input reaches it.
                sqlx::query(sqlx::AssertSqlSafe(body))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn object_key(
        &self,
        obj: &ObjectRef,
    ) -> Result<Option<WrappedKey>, StoreError> {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT wrapped_key FROM objects WHERE zone = $1 AND classification = $2 AND hash = $3",
        )
        .bind(obj.zone.as_str())
        .bind(obj.classification.as_str())
        .bind(obj.hash.to_hex())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|t| WrappedKey::from_text(&t).map_err(StoreError::from))
            .transpose()
    }

    pub(crate) async fn insert_object(
        &self,
        obj: &ObjectRef,
        key: &WrappedKey,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO objects (zone, classification, hash, size, wrapped_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(obj.zone.as_str())
        .bind(obj.classification.as_str())
        .bind(obj.hash.to_hex())
        .bind(i64::try_from(obj.size).unwrap_or(i64::MAX))
        .bind(key.to_text())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every object with its wrapped key (for key rotation).
    pub(crate) async fn all_object_keys(&self) -> Result<Vec<(ObjectRef, WrappedKey)>, StoreError> {
        let rows = sqlx::query("SELECT zone, classification, hash, size, wrapped_key FROM objects")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let hash: String = r.try_get("hash")?;
            let obj = ObjectRef {
                zone: parse(&r.try_get::<String, _>("zone")?, &hash)?,
                classification: parse(&r.try_get::<String, _>("classification")?, &hash)?,
                hash: parse::<ContentHash>(&hash, &hash)?,
                size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
            };
            let wk = WrappedKey::from_text(&r.try_get::<String, _>("wrapped_key")?)?;
            out.push((obj, wk));
        }
        Ok(out)
    }

    /// Replace wrapped keys in one transaction.
    pub(crate) async fn replace_keys(
        &self,
        keys: &[(ObjectRef, WrappedKey)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (obj, key) in keys {
            sqlx::query(
                "UPDATE objects SET wrapped_key = $1 WHERE zone = $2 AND classification = $3 AND hash = $4",
            )
            .bind(key.to_text())
            .bind(obj.zone.as_str())
            .bind(obj.classification.as_str())
            .bind(obj.hash.to_hex())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The dataset's zone and classification, if it exists.
    pub(crate) async fn dataset_home(
        tx: &mut Transaction<'static, Sqlite>,
        name: &DatasetName,
    ) -> Result<Option<(Zone, Classification)>, StoreError> {
        let row = sqlx::query("SELECT zone, classification FROM datasets WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((
                parse(&r.try_get::<String, _>("zone")?, name.as_str())?,
                parse(&r.try_get::<String, _>("classification")?, name.as_str())?,
            ))),
        }
    }

    pub(crate) async fn insert_dataset(
        tx: &mut Transaction<'static, Sqlite>,
        name: &DatasetName,
        zone: Zone,
        classification: Classification,
        actor: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO datasets (name, zone, classification, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name.as_str())
        .bind(zone.as_str())
        .bind(classification.as_str())
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(actor)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(crate) async fn next_version(
        tx: &mut Transaction<'static, Sqlite>,
        name: &DatasetName,
    ) -> Result<DatasetVersionId, StoreError> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM dataset_versions WHERE dataset = $1")
                .bind(name.as_str())
                .fetch_one(&mut **tx)
                .await?;
        match max {
            None => Ok(DatasetVersionId::FIRST),
            Some(n) => Ok(DatasetVersionId::new(u32::try_from(n).unwrap_or(0))?.next()),
        }
    }

    pub(crate) async fn insert_version(
        tx: &mut Transaction<'static, Sqlite>,
        v: &DatasetVersion,
    ) -> Result<(), StoreError> {
        let lineage = serde_json::to_string(&v.lineage).unwrap_or_default();
        sqlx::query(
            "INSERT INTO dataset_versions (dataset, version, format, manifest_hash, objects, bytes, records, lineage, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(v.dataset.as_str())
        .bind(i64::from(v.version.get()))
        .bind(&v.format)
        .bind(v.manifest_hash.to_hex())
        .bind(i64::try_from(v.objects).unwrap_or(i64::MAX))
        .bind(i64::try_from(v.bytes).unwrap_or(i64::MAX))
        .bind(i64::try_from(v.records).unwrap_or(i64::MAX))
        .bind(lineage)
        .bind(&v.created_at)
        .execute(&mut **tx)
        .await?;
        for p in &v.lineage.parents {
            sqlx::query(
                "INSERT INTO version_parents (dataset, version, parent_dataset, parent_version) VALUES ($1, $2, $3, $4)",
            )
            .bind(v.dataset.as_str())
            .bind(i64::from(v.version.get()))
            .bind(p.dataset.as_str())
            .bind(i64::from(p.version.get()))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn datasets(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.name, d.zone, d.classification, d.created_at, \
                    (SELECT MAX(version) FROM dataset_versions v WHERE v.dataset = d.name) AS latest \
             FROM datasets d ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get("name")?;
            out.push(DatasetSummary {
                name: DatasetName::new(name.clone())?,
                zone: parse(&r.try_get::<String, _>("zone")?, &name)?,
                classification: parse(&r.try_get::<String, _>("classification")?, &name)?,
                created_at: r.try_get("created_at")?,
                latest: r
                    .try_get::<Option<i64>, _>("latest")?
                    .and_then(|n| u32::try_from(n).ok())
                    .and_then(|n| DatasetVersionId::new(n).ok()),
            });
        }
        Ok(out)
    }

    pub(crate) async fn version(
        &self,
        name: &DatasetName,
        version: Option<DatasetVersionId>,
    ) -> Result<DatasetVersion, StoreError> {
        let not_found = || StoreError::NotFound {
            name: name.to_string(),
            version: version.map(DatasetVersionId::get),
        };
        let row = match version {
            Some(v) => sqlx::query(
                "SELECT v.*, d.zone, d.classification FROM dataset_versions v JOIN datasets d ON d.name = v.dataset \
                 WHERE v.dataset = $1 AND v.version = $2",
            )
            .bind(name.as_str())
            .bind(i64::from(v.get()))
            .fetch_optional(&self.pool)
            .await?,
            None => sqlx::query(
                "SELECT v.*, d.zone, d.classification FROM dataset_versions v JOIN datasets d ON d.name = v.dataset \
                 WHERE v.dataset = $1 ORDER BY v.version DESC LIMIT 1",
            )
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?,
        };
        let r = row.ok_or_else(not_found)?;
        let lineage: Lineage =
            serde_json::from_str(&r.try_get::<String, _>("lineage")?).map_err(|_| {
                StoreError::Corrupt {
                    hash: name.to_string(),
                    reason: "unreadable lineage record".into(),
                }
            })?;
        let n = |col: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(r.try_get::<i64, _>(col)?).unwrap_or(0))
        };
        Ok(DatasetVersion {
            dataset: name.clone(),
            version: DatasetVersionId::new(
                u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(0),
            )?,
            zone: parse(&r.try_get::<String, _>("zone")?, name.as_str())?,
            classification: parse(&r.try_get::<String, _>("classification")?, name.as_str())?,
            format: r.try_get("format")?,
            manifest_hash: parse(&r.try_get::<String, _>("manifest_hash")?, name.as_str())?,
            objects: n("objects")?,
            bytes: n("bytes")?,
            records: n("records")?,
            lineage,
            created_at: r.try_get("created_at")?,
        })
    }

    pub(crate) async fn versions(&self, name: &DatasetName) -> Result<Vec<VersionRef>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM dataset_versions WHERE dataset = $1 ORDER BY version",
        )
        .bind(name.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|v| {
                Ok(VersionRef {
                    dataset: name.clone(),
                    version: DatasetVersionId::new(u32::try_from(v).unwrap_or(0))?,
                })
            })
            .collect()
    }

    pub(crate) async fn set_blob(&self, name: &str, obj: &ObjectRef) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO blobs (name, zone, classification, hash, size, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, classification = excluded.classification, \
             hash = excluded.hash, size = excluded.size, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(obj.zone.as_str())
        .bind(obj.classification.as_str())
        .bind(obj.hash.to_hex())
        .bind(i64::try_from(obj.size).unwrap_or(i64::MAX))
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn blob(&self, name: &str) -> Result<Option<ObjectRef>, StoreError> {
        let row = sqlx::query("SELECT zone, classification, hash, size FROM blobs WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(ObjectRef {
            zone: parse(&r.try_get::<String, _>("zone")?, name)?,
            classification: parse(&r.try_get::<String, _>("classification")?, name)?,
            hash: parse(&r.try_get::<String, _>("hash")?, name)?,
            size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        }))
    }
}
