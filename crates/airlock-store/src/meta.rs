//! The metadata store and its migrations: SQLite by default, PostgreSQL when the deployment's
//! database is a `postgres://` URL.
//!
//! One set of statements serves both (sqlx's `Any` driver, `$N` placeholders, portable types).
//! On PostgreSQL every table with zone-bound or identity data also carries row-level security
//! (migrations `0004_postgres_rls.sql` and `0008_postgres_rls_identity_models.sql`): every
//! transaction begins by declaring the zones its caller may see (`airlock.zones`) and whether it
//! is an identity transaction (`airlock.identity`), and the database itself hides every other
//! row, as defence in depth behind the application's own checks.
//!
//! Policies bind only a role that cannot switch them off, so PostgreSQL has two roles: an owner
//! that runs the migrations ([`Db::migrate_postgres`]) and grants the other, the serving role,
//! only the statements the application runs on each table ([`SERVING_GRANTS`]). [`Db::connect`]
//! never migrates a PostgreSQL database, and refuses a role that is a superuser, has
//! `BYPASSRLS`, or owns the database, its schema or a table in it. Both connections must be
//! verified TLS (`sslmode=verify-full`) unless the server is on loopback.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use airlock_crypto::WrappedKey;
use airlock_types::{Classification, ContentHash, DatasetName, DatasetVersionId, Zone};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Row, Transaction};

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
    Migration {
        version: 8,
        postgres_only: true,
        sql: include_str!("../migrations/0008_postgres_rls_identity_models.sql"),
    },
    Migration {
        version: 9,
        postgres_only: false,
        sql: include_str!("../migrations/0009_witness_logs.sql"),
    },
    Migration {
        version: 10,
        postgres_only: false,
        sql: include_str!("../migrations/0010_identity_row_seals.sql"),
    },
    Migration {
        version: 11,
        postgres_only: false,
        sql: include_str!("../migrations/0011_practitioner_links.sql"),
    },
    Migration {
        version: 12,
        postgres_only: true,
        sql: include_str!("../migrations/0012_postgres_rls_practitioner_links.sql"),
    },
    Migration {
        version: 13,
        postgres_only: false,
        sql: include_str!("../migrations/0013_dp.sql"),
    },
    Migration {
        version: 14,
        postgres_only: false,
        sql: include_str!("../migrations/0014_change_control_plans.sql"),
    },
    Migration {
        version: 15,
        postgres_only: false,
        sql: include_str!("../migrations/0015_prediction_log.sql"),
    },
    Migration {
        version: 16,
        postgres_only: true,
        sql: include_str!("../migrations/0016_postgres_rls_prediction_log.sql"),
    },
    Migration {
        version: 17,
        postgres_only: false,
        sql: include_str!("../migrations/0017_monitoring_alerts.sql"),
    },
];

/// What the serving role may do to each table on PostgreSQL, as `GRANT` privilege lists: the
/// statements the application runs and nothing more. Append-only tables get no `UPDATE` or
/// `DELETE`, and `UPDATE` is limited to the columns the application changes, so the serving
/// role cannot rewrite a lineage record, a model card or a ledger index it did not set. A new
/// table needs a line here (a unit test checks that every migrated table has one).
pub const SERVING_GRANTS: &[(&str, &str)] = &[
    ("schema_migrations", "SELECT"),
    // `wrapped_key` is also how an object is erased (its key destroyed, never the row).
    ("objects", "SELECT, INSERT, UPDATE (wrapped_key)"),
    ("datasets", "SELECT, INSERT"),
    ("dataset_versions", "SELECT, INSERT, UPDATE (ledger_index)"),
    ("version_parents", "SELECT, INSERT"),
    (
        "blobs",
        "SELECT, INSERT, UPDATE (zone, classification, hash, size, updated_at), DELETE",
    ),
    (
        "principals",
        "SELECT, INSERT, UPDATE (roles, password_hash, totp_secret, totp_last_step, \
         client_cert_sha256, client_cert_scopes, failed_logins, locked_until, disabled, mac)",
    ),
    ("sessions", "SELECT, INSERT, UPDATE (last_seen), DELETE"),
    ("api_tokens", "SELECT, INSERT, UPDATE (revoked_at, mac)"),
    (
        "break_glass",
        "SELECT, INSERT, UPDATE (reviewed_by, reviewed_at)",
    ),
    (
        "deid_runs",
        "SELECT, INSERT, UPDATE (status, report, error, finished_at)",
    ),
    ("enrolments", "SELECT, INSERT, DELETE"),
    ("role_grants", "SELECT, INSERT, DELETE"),
    (
        "practitioner_links",
        "SELECT, INSERT, UPDATE (system, value, linked_by, linked_at, confirmed_by, mac)",
    ),
    (
        "model_versions",
        "SELECT, INSERT, UPDATE (state, canary_share_bp, zone)",
    ),
    ("model_transitions", "SELECT, INSERT"),
    ("model_approvals", "SELECT, INSERT"),
    (
        "prediction_outcomes",
        "SELECT, INSERT, UPDATE (label, posted_by, at)",
    ),
    (
        "witness_logs",
        "SELECT, INSERT, UPDATE (size, root, checkpoint, updated_at)",
    ),
    ("dp_metadata", "SELECT, INSERT"),
    ("model_plans", "SELECT, INSERT, UPDATE (state)"),
    ("model_plan_approvals", "SELECT, INSERT"),
    // Batches past the retention period are deleted with their blob.
    ("prediction_log_batches", "SELECT, INSERT, DELETE"),
    ("monitoring_rules", "SELECT, INSERT"),
    ("monitoring_alerts", "SELECT, INSERT"),
    ("webhook_destinations", "SELECT, INSERT, UPDATE (active)"),
    ("model_plan_updates", "SELECT, INSERT"),
    (
        "dp_budgets",
        "SELECT, INSERT, UPDATE (limit_units, spent_units, delta, set_by, updated_at)",
    ),
];

/// The PostgreSQL advisory lock key that lets one migrator run at a time ("AIRLOCKS" as a
/// big-endian integer; the registry's lifecycle lock is "AIRLOCKM").
const MIGRATION_LOCK_KEY: i64 = 0x4149_524c_4f43_4b53;

/// The newest migration this build knows.
fn latest_migration() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The zones a caller may see, and whether the transaction is an identity transaction. On
/// PostgreSQL, row-level security enforces both; on SQLite the application's checks are the
/// only line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    zones: BTreeSet<Zone>,
    identity: bool,
}

impl Scope {
    /// Every zone (the local operator, who holds the deployment passphrase); no identity table.
    pub fn all() -> Self {
        Scope::zones(Zone::ALL)
    }

    /// Only these zones; no identity table.
    pub fn zones(zones: impl IntoIterator<Item = Zone>) -> Self {
        Scope {
            zones: zones.into_iter().collect(),
            identity: false,
        }
    }

    /// The identity tables (principals, sessions, tokens, enrolments, role grants) and no zone.
    pub fn identity() -> Self {
        Scope {
            zones: BTreeSet::new(),
            identity: true,
        }
    }

    /// No zone: the identity tables only (the same as [`Scope::identity`]).
    pub fn none() -> Self {
        Scope::identity()
    }

    /// Whether `zone` is in scope.
    pub fn contains(&self, zone: Zone) -> bool {
        self.zones.contains(&zone)
    }

    /// The zones, comma-separated, as the RLS policies read them.
    fn setting(&self) -> String {
        self.zones
            .iter()
            .map(|z| z.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `airlock.identity` as the RLS policies read it.
    fn identity_setting(&self) -> &'static str {
        if self.identity { "on" } else { "" }
    }
}

/// How a PostgreSQL connection must be protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatabaseTls {
    /// `sslmode=verify-full` to every host but loopback and Unix sockets (the default).
    #[default]
    VerifyFull,
    /// Any `sslmode` to any host (`storage.danger_database_without_verified_tls`): the
    /// connection, the role's password included, can be read or changed on the network.
    DangerUnverified,
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

/// A PostgreSQL URL for the `Any` driver, refused unless its connection is verified TLS or
/// stays on this machine (or `tls` is the danger override). The URL is never quoted back: it
/// may carry a password.
fn postgres_url(url: &str, tls: DatabaseTls) -> Result<(url::Url, PgConnectOptions), StoreError> {
    let unparsable = || StoreError::Config {
        path: "database".into(),
        reason: "the PostgreSQL URL does not parse".into(),
    };
    let parsed: url::Url = url.parse().map_err(|_| unparsable())?;
    // sqlx's own reading of the URL (with PGHOST, PGSSLMODE... where the URL is silent), which
    // is the one the connection will use.
    let opts = PgConnectOptions::from_url(&parsed).map_err(|_| unparsable())?;
    let mode = opts.get_ssl_mode();
    if is_local(&opts) || matches!(mode, PgSslMode::VerifyFull) {
        return Ok((parsed, opts));
    }
    match tls {
        DatabaseTls::VerifyFull => Err(StoreError::DatabaseTransport {
            host: opts.get_host().to_string(),
            mode: ssl_mode_name(mode),
        }),
        DatabaseTls::DangerUnverified => {
            tracing::warn!(
                host = %opts.get_host(),
                sslmode = ssl_mode_name(mode),
                "connecting to PostgreSQL without verified TLS \
                 (storage.danger_database_without_verified_tls): the connection and the role's \
                 password can be read or changed on the network"
            );
            Ok((parsed, opts))
        }
    }
}

/// Whether the connection stays on this machine: a Unix socket or a loopback address.
fn is_local(opts: &PgConnectOptions) -> bool {
    let host = opts.get_host();
    opts.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Db {
    /// Connect to a SQLite file (migrating it) or to a PostgreSQL URL as the serving role.
    ///
    /// A PostgreSQL database is never migrated here: its owner does that
    /// ([`Db::migrate_postgres`]). The role is refused if row-level security would not bind it
    /// (a superuser, `BYPASSRLS`, or an owner of the database, its schema or a table in it,
    /// directly or through a role it belongs to), and the schema must be at this build's
    /// newest migration.
    pub async fn connect(target: &DbTarget, create: bool) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match target {
            DbTarget::Sqlite(path) => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(create);
                (opts.to_url_lossy(), Backend::Sqlite)
            }
            DbTarget::Postgres(url, tls) => (postgres_url(url, *tls)?.0, Backend::Postgres),
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
        match backend {
            Backend::Sqlite => {
                let mut conn = db.pool.acquire().await?;
                migrate(&mut conn, Backend::Sqlite).await?;
            }
            Backend::Postgres => {
                db.check_serving_role().await?;
                db.check_schema().await?;
            }
        }
        Ok(db)
    }

    /// Migrate a PostgreSQL database as the role that owns its tables (the user of
    /// `owner_url`), then grant the serving role (the user of `serving_url`, which is only read
    /// for its role name) exactly [`SERVING_GRANTS`]. Returns the migrations it applied.
    ///
    /// The two URLs must name the same database and different roles, and the serving role
    /// must not belong to the owner role (it would inherit the ownership). Migrators take
    /// turns (an advisory lock), so servers started together with the owner's URL can both
    /// ask.
    pub async fn migrate_postgres(
        owner_url: &str,
        serving_url: &str,
        tls: DatabaseTls,
    ) -> Result<Vec<i64>, StoreError> {
        sqlx::any::install_default_drivers();
        let (owner_parsed, owner) = postgres_url(owner_url, tls)?;
        let (_, serving) = postgres_url(serving_url, tls)?;
        let place = |o: &PgConnectOptions| {
            (
                o.get_host().to_string(),
                o.get_port(),
                o.get_socket().cloned(),
                o.get_database().map(str::to_string),
            )
        };
        if place(&owner) != place(&serving) {
            return Err(StoreError::Config {
                path: "--database-owner".into(),
                reason: "the owner's and the serving role's URLs name different databases".into(),
            });
        }
        let role = serving.get_username();
        if role.is_empty() || role.contains('\0') {
            return Err(StoreError::Config {
                path: "database".into(),
                reason: "the serving URL names no database role".into(),
            });
        }
        if role == owner.get_username() {
            return Err(StoreError::DatabaseRole {
                reason: "the serving role and the owner role are the same; serve as a role \
                         that owns nothing",
            });
        }
        let mut conn =
            AnyConnection::connect_with(&AnyConnectOptions::from_url(&owner_parsed)?).await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut conn)
            .await?;
        let applied = migrate_as_owner(&mut conn, role).await;
        // Closing the session releases the advisory lock.
        conn.close().await?;
        applied
    }

    /// Which engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Refuse a role that row-level security would not bind, or that could switch it off.
    async fn check_serving_role(&self) -> Result<(), StoreError> {
        let row = sqlx::query(
            "SELECT CAST(r.rolsuper OR r.rolbypassrls AS INT) AS bypasses, \
                    CAST(EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = current_database() \
                                 AND pg_has_role(current_user, d.datdba, 'MEMBER')) \
                      OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = current_schema() \
                                 AND pg_has_role(current_user, n.nspowner, 'MEMBER')) \
                      OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                                 WHERE n.nspname = current_schema() \
                                 AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS INT) AS owns \
             FROM pg_roles r WHERE r.rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?;
        if row.try_get::<i32, _>("bypasses")? != 0 {
            return Err(StoreError::DatabaseRole {
                reason: "it is a superuser or has BYPASSRLS, which bypass row-level security; \
                         connect as an ordinary role",
            });
        }
        if row.try_get::<i32, _>("owns")? != 0 {
            return Err(StoreError::DatabaseRole {
                reason: "it owns the database, its schema or a table in it (or belongs to a \
                         role that does), and an owner can switch row-level security off; serve \
                         as a role that owns nothing and migrate as the owner (`--database-owner`)",
            });
        }
        Ok(())
    }

    /// Refuse a schema older than this build: the serving role cannot migrate it.
    async fn check_schema(&self) -> Result<(), StoreError> {
        let exists: i32 =
            sqlx::query_scalar("SELECT CAST(to_regclass('schema_migrations') IS NOT NULL AS INT)")
                .fetch_one(&self.pool)
                .await?;
        let found: i64 = if exists == 0 {
            0
        } else {
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?
        };
        let needed = latest_migration();
        if found < needed {
            return Err(StoreError::SchemaBehind { found, needed });
        }
        Ok(())
    }

    /// Begin a transaction that sees only `scope`'s zones (and the identity tables only if the
    /// scope is [`Scope::identity`]).
    pub async fn begin(&self, scope: &Scope) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query(
                "SELECT set_config('airlock.zones', $1, true), \
                        set_config('airlock.identity', $2, true)",
            )
            .bind(scope.setting())
            .bind(scope.identity_setting())
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

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// [`Db::migrate_postgres`]'s work on the owner's connection, holding the migration lock.
async fn migrate_as_owner(conn: &mut AnyConnection, role: &str) -> Result<Vec<i64>, StoreError> {
    let serving: Option<i32> = sqlx::query_scalar(
        "SELECT CAST(pg_has_role(rolname, current_user, 'MEMBER') AS INT) FROM pg_roles \
         WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut *conn)
    .await?;
    match serving {
        None => {
            return Err(StoreError::DatabaseRole {
                reason: "the serving role named by the database URL does not exist",
            });
        }
        Some(0) => {}
        Some(_) => {
            return Err(StoreError::DatabaseRole {
                reason: "the serving role belongs to the owner role, so it would own the tables \
                         too; serve as a role that owns nothing",
            });
        }
    }
    // A deployment made before the two roles has its tables owned by the serving role.
    let owned: Option<i32> = sqlx::query_scalar(
        "SELECT CAST(pg_has_role(current_user, c.relowner, 'USAGE') AS INT) FROM pg_class c \
         WHERE c.oid = to_regclass('schema_migrations')",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if owned == Some(0) {
        return Err(StoreError::DatabaseRole {
            reason: "the tables belong to another role (a deployment made before migrations ran \
                     as an owner role); as a superuser, `REASSIGN OWNED BY` that role `TO` the \
                     owner role first",
        });
    }
    let applied = migrate(conn, Backend::Postgres).await?;
    let grantee = quote_ident(role);
    let mut tx = conn.begin().await?;
    for (table, privileges) in SERVING_GRANTS {
        // Both names are ours: the table from the list above, the role quoted.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "REVOKE ALL ON TABLE {table} FROM {grantee}"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "GRANT {privileges} ON TABLE {table} TO {grantee}"
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(applied)
}

/// Apply the migrations `conn` has not seen, each in its own transaction; returns their
/// versions.
async fn migrate(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<i64>, StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *conn)
                .await?;
        if done.is_some() {
            continue;
        }
        let mut tx = conn.begin().await?;
        if !m.postgres_only || backend == Backend::Postgres {
            for body in statements(m.sql) {
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
        applied.push(m.version);
    }
    Ok(applied)
}

/// A migration's statements. Comments go first, so a `;` inside one cannot split a statement.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Where the metadata lives.
#[derive(Clone)]
pub enum DbTarget {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (may carry a password: never logged, never written to the config) and
    /// how its connection must be protected.
    Postgres(String, DatabaseTls),
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            // The URL may carry a password.
            DbTarget::Postgres(_, tls) => f
                .debug_tuple("Postgres")
                .field(&"<url redacted>")
                .field(tls)
                .finish(),
        }
    }
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
        match row {
            Some(t) if t == ERASED_KEY => Err(StoreError::Erased {
                hash: obj.hash.short(),
            }),
            Some(t) => Ok(Some(WrappedKey::from_text(&t)?)),
            None => Ok(None),
        }
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
        // The same content again after it was erased: it gets a new key.
        sqlx::query(
            "UPDATE objects SET wrapped_key = $1 WHERE zone = $2 AND classification = $3 \
             AND hash = $4 AND wrapped_key = $5",
        )
        .bind(offered.to_text())
        .bind(obj.zone.as_str())
        .bind(obj.classification.as_str())
        .bind(obj.hash.to_hex())
        .bind(ERASED_KEY)
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
        // An erased object has no key left to re-wrap.
        let rows = sqlx::query(
            "SELECT zone, classification, hash, size, wrapped_key FROM objects WHERE wrapped_key <> $1",
        )
        .bind(ERASED_KEY)
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

/// What an erased object's `wrapped_key` holds: no key, so nothing opens its ciphertext.
pub(crate) const ERASED_KEY: &str = "erased";

/// Forget the named blob and destroy its object's data key, in `tx`; the object (for its
/// ciphertext to be deleted after commit), or `None` when no such blob is left. A key another
/// blob still names is kept (content addressing may share an object).
pub(crate) async fn erase_blob(tx: &mut Tx, name: &str) -> Result<Option<ObjectRef>, StoreError> {
    let row = sqlx::query("SELECT zone, classification, hash, size FROM blobs WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(r) = row else { return Ok(None) };
    let obj = ObjectRef {
        zone: parse(&r.try_get::<String, _>("zone")?, name)?,
        classification: parse(&r.try_get::<String, _>("classification")?, name)?,
        hash: parse(&r.try_get::<String, _>("hash")?, name)?,
        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
    };
    sqlx::query("DELETE FROM blobs WHERE name = $1")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    let erased = sqlx::query(
        "UPDATE objects SET wrapped_key = $1 WHERE zone = $2 AND classification = $3 AND hash = $4 \
         AND NOT EXISTS (SELECT 1 FROM blobs WHERE zone = $2 AND hash = $4)",
    )
    .bind(ERASED_KEY)
    .bind(obj.zone.as_str())
    .bind(obj.classification.as_str())
    .bind(obj.hash.to_hex())
    .execute(&mut **tx)
    .await?;
    Ok((erased.rows_affected() > 0).then_some(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migrated_table_has_a_line_in_the_serving_grants() {
        let mut created: BTreeSet<String> = MIGRATIONS
            .iter()
            .flat_map(|m| statements(m.sql))
            .filter_map(|s| {
                let rest = s.strip_prefix("CREATE TABLE ")?;
                Some(rest.split_whitespace().next()?.to_string())
            })
            .collect();
        created.insert("schema_migrations".into());
        let granted: BTreeSet<String> = SERVING_GRANTS.iter().map(|(t, _)| t.to_string()).collect();
        assert_eq!(created, granted);
        assert_eq!(granted.len(), SERVING_GRANTS.len(), "a table listed twice");
    }

    #[test]
    fn only_verified_tls_leaves_this_machine() {
        let refused = |url: &str| {
            matches!(
                postgres_url(url, DatabaseTls::VerifyFull),
                Err(StoreError::DatabaseTransport { .. })
            )
        };
        for local in [
            "postgres://u:p@127.0.0.1:5432/db",
            "postgres://u:p@127.8.9.10/db?sslmode=disable",
            "postgres://u:p@localhost/db",
            "postgres://u:p@LOCALHOST/db?sslmode=prefer",
            "postgres://u:p@[::1]:5432/db",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres://u:p@db.example.org/db?host=/var/run/postgresql",
            "postgres://u:p@db.example.org/db?sslmode=verify-full",
            "postgresql://u:p@10.0.0.5/db?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        ] {
            assert!(
                postgres_url(local, DatabaseTls::VerifyFull).is_ok(),
                "{local}"
            );
        }
        for remote in [
            "postgres://u:p@db.example.org/db",
            "postgres://u:p@db.example.org/db?sslmode=require",
            "postgres://u:p@10.0.0.5/db?sslmode=verify-ca",
            "postgres://u:p@[2001:db8::1]/db?sslmode=allow",
            "postgres://u:p@127.0.0.1/db?host=db.example.org",
            "postgres://u:p@127.0.0.1/db?hostaddr=10.0.0.5",
        ] {
            assert!(refused(remote), "{remote}");
            // The named override accepts it (and warns).
            assert!(
                postgres_url(remote, DatabaseTls::DangerUnverified).is_ok(),
                "{remote}"
            );
        }
        let err = postgres_url(
            "postgres://u:hunter2@db.example.org/db?sslmode=require",
            DatabaseTls::VerifyFull,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("db.example.org") && err.contains("sslmode=require"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_target_debug_hides_the_url() {
        let t = DbTarget::Postgres("postgres://u:hunter2@db/x".into(), DatabaseTls::VerifyFull);
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn only_the_identity_scope_reaches_the_identity_tables() {
        assert_eq!(Scope::identity().identity_setting(), "on");
        assert_eq!(Scope::none(), Scope::identity());
        assert_eq!(Scope::identity().setting(), "");
        for s in [
            Scope::all(),
            Scope::zones([]),
            Scope::zones([Zone::Clinical]),
        ] {
            assert_eq!(s.identity_setting(), "", "{s:?}");
        }
    }
}
