//! The metadata store and its migrations: SQLite by default, PostgreSQL when the deployment's
//! database is a `postgres://` URL.
//!
//! One set of statements serves both (sqlx's `Any` driver, `$N` placeholders, portable types).
//! On PostgreSQL the zone-tagged tables also carry row-level security (migration
//! `0003_postgres_rls.sql`): every transaction begins by declaring the zones its caller may see
//! (`airlock.zones`), and the database itself hides every other row, as defence in depth
//! behind the application's own checks. The application's role must not be a superuser or hold
//! `BYPASSRLS`; [`Db::connect`] refuses one that does.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;

use airlock_crypto::WrappedKey;
use airlock_types::{Classification, ContentHash, DatasetName, DatasetVersionId, Zone};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Row, Transaction};

use crate::StoreError;
use crate::datasets::{DatasetSummary, DatasetVersion, Lineage, VersionRef};
use crate::objects::ObjectRef;

/// Which database engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a file in the home.
    Sqlite,
    /// A PostgreSQL server, with row-level security.
    Postgres,
}

/// A migration: its number, which backends run it, and its text.
struct Migration {
    version: i64,
    postgres_only: bool,
    sql: &'static str,
}

/// Ordered migrations, embedded in the binary.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        postgres_only: false,
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        postgres_only: false,
        sql: include_str!("../migrations/0002_blobs.sql"),
    },
    Migration {
        version: 3,
        postgres_only: false,
        sql: include_str!("../migrations/0003_identities.sql"),
    },
    Migration {
        version: 4,
        postgres_only: true,
        sql: include_str!("../migrations/0004_postgres_rls.sql"),
    },
    Migration {
        version: 5,
        postgres_only: false,
        sql: include_str!("../migrations/0005_models.sql"),
    },
    Migration {
        version: 6,
        postgres_only: false,
        sql: include_str!("../migrations/0006_enrolment_and_grants.sql"),
    },
    Migration {
        version: 7,
        postgres_only: false,
        sql: include_str!("../migrations/0007_version_ledger_index.sql"),
    },
];

/// The zones a caller may see. On PostgreSQL, row-level security enforces it; on SQLite the
/// application's checks are the only line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(BTreeSet<Zone>);

impl Scope {
    /// Every zone (the local operator, who holds the deployment passphrase).
    pub fn all() -> Self {
        Scope(Zone::ALL.into_iter().collect())
    }

    /// Only these zones.
    pub fn zones(zones: impl IntoIterator<Item = Zone>) -> Self {
        Scope(zones.into_iter().collect())
    }

    /// Nothing (identity tables only).
    pub fn none() -> Self {
        Scope(BTreeSet::new())
    }

    /// Whether `zone` is in scope.
    pub fn contains(&self, zone: Zone) -> bool {
        self.0.contains(&zone)
    }

    /// The zones, comma-separated, as the RLS policies read them.
    fn setting(&self) -> String {
        self.0
            .iter()
            .map(|z| z.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A connection pool to the metadata database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// A transaction on the metadata database, scoped to some zones.
pub type Tx = Transaction<'static, Any>;

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Db {
    /// Connect to a SQLite file or a PostgreSQL URL, then migrate.
    pub async fn connect(target: &DbTarget, create: bool) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match target {
            DbTarget::Sqlite(path) => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(create);
                (opts.to_url_lossy(), Backend::Sqlite)
            }
            DbTarget::Postgres(url) => (
                url.parse::<url::Url>().map_err(|_| StoreError::Config {
                    path: "database".into(),
                    reason: "the PostgreSQL URL does not parse".into(),
                })?,
                Backend::Postgres,
            ),
        };
        let opts = AnyConnectOptions::from_url(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers; FULL so a commit survives power loss.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let db = Db { pool, backend };
        if backend == Backend::Postgres {
            db.check_postgres_role().await?;
        }
        db.migrate().await?;
        Ok(db)
    }

    /// Which engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Refuse a role that row-level security would not bind.
    async fn check_postgres_role(&self) -> Result<(), StoreError> {
        let row = sqlx::query(
            "SELECT CAST(rolsuper AS INT) AS su, CAST(rolbypassrls AS INT) AS by \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?;
        let su: i32 = row.try_get("su")?;
        let by: i32 = row.try_get("by")?;
        if su != 0 || by != 0 {
            return Err(StoreError::Config {
                path: "database".into(),
                reason: "the database role is a superuser or has BYPASSRLS, which would \
                         bypass row-level security; connect as an ordinary role"
                    .into(),
            });
        }
        Ok(())
    }

    /// Begin a transaction that sees only `scope`'s zones.
    pub async fn begin(&self, scope: &Scope) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT set_config('airlock.zones', $1, true)")
                .bind(scope.setting())
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Begin a transaction that will write, seeing only `scope`'s zones.
    ///
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), waiting its turn behind
    /// other writers. A plain (deferred) transaction that reads and then writes cannot wait:
    /// when another writer committed since its read, SQLite refuses the upgrade at once with
    /// "database is locked", which made concurrent runs fail at random. On PostgreSQL it is
    /// [`Db::begin`].
    pub async fn begin_write(&self, scope: &Scope) -> Result<Tx, StoreError> {
        if self.backend != Backend::Sqlite {
            return self.begin(scope).await;
        }
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for m in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            if !m.postgres_only || self.backend == Backend::Postgres {
                // Comments go first, so a `;` inside one cannot split a statement.
                let text: String = m
                    .sql
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for body in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    // Migration text is embedded at compile time; no input reaches it.
                    sqlx::query(sqlx::AssertSqlSafe(body.to_string()))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(m.version)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Where the metadata lives.
#[derive(Debug, Clone)]
pub enum DbTarget {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (may carry a password: never logged, never written to the config).
    Postgres(String),
}

/// The metadata store.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    db: Db,
}

fn parse<T: FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt {
        hash: what.to_string(),
        reason: "unparseable value in the metadata store".into(),
    })
}

impl Meta {
    pub(crate) async fn open(target: &DbTarget, create: bool) -> Result<Self, StoreError> {
        Ok(Meta {
            db: Db::connect(target, create).await?,
        })
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) async fn close(&self) {
        self.db.close().await;
    }

    pub(crate) async fn object_key(
        &self,
        obj: &ObjectRef,
    ) -> Result<Option<WrappedKey>, StoreError> {
        let mut tx = self.db.begin(&Scope::zones([obj.zone])).await?;
        let row: Option<String> = sqlx::query_scalar(
            "SELECT wrapped_key FROM objects WHERE zone = $1 AND classification = $2 AND hash = $3",
        )
        .bind(obj.zone.as_str())
        .bind(obj.classification.as_str())
        .bind(obj.hash.to_hex())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|t| WrappedKey::from_text(&t).map_err(StoreError::from))
            .transpose()
    }

    /// Record `offered` as the object's data key unless one is recorded already, and return
    /// the key that is recorded: the one every writer of this object must seal under.
    ///
    /// Of concurrent callers exactly one insert wins. On PostgreSQL a losing insert waits for
    /// the winner's transaction and then does nothing, and the read after it (a new snapshot
    /// per statement under READ COMMITTED) sees the winner's row; on SQLite the write lock,
    /// taken at `BEGIN`, serialises the whole transaction.
    pub(crate) async fn claim_object_key(
        &self,
        obj: &ObjectRef,
        offered: &WrappedKey,
    ) -> Result<WrappedKey, StoreError> {
        let mut tx = self.db.begin_write(&Scope::zones([obj.zone])).await?;
        sqlx::query(
            "INSERT INTO objects (zone, classification, hash, size, wrapped_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(obj.zone.as_str())
        .bind(obj.classification.as_str())
        .bind(obj.hash.to_hex())
        .bind(i64::try_from(obj.size).unwrap_or(i64::MAX))
        .bind(offered.to_text())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?;
        let recorded: Option<String> = sqlx::query_scalar(
            "SELECT wrapped_key FROM objects WHERE zone = $1 AND classification = $2 AND hash = $3",
        )
        .bind(obj.zone.as_str())
        .bind(obj.classification.as_str())
        .bind(obj.hash.to_hex())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let text = recorded.ok_or_else(|| StoreError::Corrupt {
            hash: obj.hash.short(),
            reason: "its data key was recorded but cannot be read back".into(),
        })?;
        Ok(WrappedKey::from_text(&text)?)
    }

    /// Every object with its wrapped key (for key rotation).
    pub(crate) async fn all_object_keys(&self) -> Result<Vec<(ObjectRef, WrappedKey)>, StoreError> {
        let mut tx = self.db.begin(&Scope::all()).await?;
        let rows = sqlx::query("SELECT zone, classification, hash, size, wrapped_key FROM objects")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
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
        let mut tx = self.db.begin(&Scope::all()).await?;
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

    pub(crate) async fn begin_write(&self, scope: &Scope) -> Result<Tx, StoreError> {
        self.db.begin_write(scope).await
    }

    /// The dataset's zone and classification, if it exists.
    pub(crate) async fn dataset_home(
        tx: &mut Tx,
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
        tx: &mut Tx,
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
        tx: &mut Tx,
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

    pub(crate) async fn insert_version(tx: &mut Tx, v: &DatasetVersion) -> Result<(), StoreError> {
        let lineage = v.lineage.to_json();
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

    /// Record which ledger entry recorded a version (in the transaction that inserted it).
    pub(crate) async fn set_ledger_index(
        tx: &mut Tx,
        v: &DatasetVersion,
        index: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE dataset_versions SET ledger_index = $1 WHERE dataset = $2 AND version = $3",
        )
        .bind(i64::try_from(index).unwrap_or(i64::MAX))
        .bind(v.dataset.as_str())
        .bind(i64::from(v.version.get()))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Whether the dataset exists in one of `scope`'s zones.
    pub(crate) async fn visible(
        &self,
        scope: &Scope,
        name: &DatasetName,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin(scope).await?;
        let home = Self::dataset_home(&mut tx, name).await?;
        tx.commit().await?;
        // The application's own filter; on PostgreSQL the database applies it too.
        Ok(home.is_some_and(|(z, _)| scope.contains(z)))
    }

    pub(crate) async fn datasets(&self, scope: &Scope) -> Result<Vec<DatasetSummary>, StoreError> {
        let mut tx = self.db.begin(scope).await?;
        let rows = sqlx::query(
            "SELECT d.name, d.zone, d.classification, d.created_at, \
                    (SELECT MAX(version) FROM dataset_versions v WHERE v.dataset = d.name) AS latest \
             FROM datasets d ORDER BY d.name",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get("name")?;
            let zone: Zone = parse(&r.try_get::<String, _>("zone")?, &name)?;
            // The application's own filter; on PostgreSQL the database applies it too.
            if !scope.contains(zone) {
                continue;
            }
            out.push(DatasetSummary {
                name: DatasetName::new(name.clone())?,
                zone,
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
        scope: &Scope,
        name: &DatasetName,
        version: Option<DatasetVersionId>,
    ) -> Result<DatasetVersion, StoreError> {
        let not_found = || StoreError::NotFound {
            name: name.to_string(),
            version: version.map(DatasetVersionId::get),
        };
        let mut tx = self.db.begin(scope).await?;
        let row = match version {
            Some(v) => sqlx::query(
                "SELECT v.*, d.zone, d.classification FROM dataset_versions v JOIN datasets d ON d.name = v.dataset \
                 WHERE v.dataset = $1 AND v.version = $2",
            )
            .bind(name.as_str())
            .bind(i64::from(v.get()))
            .fetch_optional(&mut *tx)
            .await?,
            None => sqlx::query(
                "SELECT v.*, d.zone, d.classification FROM dataset_versions v JOIN datasets d ON d.name = v.dataset \
                 WHERE v.dataset = $1 ORDER BY v.version DESC LIMIT 1",
            )
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?,
        };
        tx.commit().await?;
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
        let zone: Zone = parse(&r.try_get::<String, _>("zone")?, name.as_str())?;
        if !scope.contains(zone) {
            return Err(not_found());
        }
        Ok(DatasetVersion {
            dataset: name.clone(),
            version: DatasetVersionId::new(
                u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(0),
            )?,
            zone,
            classification: parse(&r.try_get::<String, _>("classification")?, name.as_str())?,
            format: r.try_get("format")?,
            manifest_hash: parse(&r.try_get::<String, _>("manifest_hash")?, name.as_str())?,
            objects: n("objects")?,
            bytes: n("bytes")?,
            records: n("records")?,
            lineage,
            created_at: r.try_get("created_at")?,
            ledger_index: r
                .try_get::<Option<i64>, _>("ledger_index")?
                .and_then(|i| u64::try_from(i).ok()),
        })
    }

    pub(crate) async fn versions(
        &self,
        scope: &Scope,
        name: &DatasetName,
    ) -> Result<Vec<VersionRef>, StoreError> {
        let mut tx = self.db.begin(scope).await?;
        let home = Self::dataset_home(&mut tx, name).await?;
        if !home.is_some_and(|(z, _)| scope.contains(z)) {
            return Ok(Vec::new());
        }
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM dataset_versions WHERE dataset = $1 ORDER BY version",
        )
        .bind(name.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
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
        let mut tx = self.db.begin(&Scope::zones([obj.zone])).await?;
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn blob(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<ObjectRef>, StoreError> {
        let mut tx = self.db.begin(scope).await?;
        let row = sqlx::query("SELECT zone, classification, hash, size FROM blobs WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(ObjectRef {
            zone: parse(&r.try_get::<String, _>("zone")?, name)?,
            classification: parse(&r.try_get::<String, _>("classification")?, name)?,
            hash: parse(&r.try_get::<String, _>("hash")?, name)?,
            size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        }))
    }
}
