//! Helpers for test suites (this crate's and the server's) that run against PostgreSQL.
//!
//! `AIRLOCK_TEST_POSTGRES` names a server and the ordinary role Airlock serves as;
//! `AIRLOCK_TEST_POSTGRES_OWNER` names the same server and the role that may create databases
//! and owns their tables (`scripts/test-postgres.sh` starts one, over verified TLS, and prints
//! both). Each call makes a fresh database, owned by the owner role, so tests never see each
//! other's rows. When `AIRLOCK_TEST_POSTGRES` is unset the PostgreSQL half of a suite is skipped
//! with a message, unless `AIRLOCK_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes that a failure.
//!
//! A database is named after the test process (`airlock_t_<label>_<pid>_<random>`), and the first
//! call in a process drops the databases of test processes that have ended, so a developer's
//! cluster does not fill up run after run.

use std::fmt;

use sqlx::AnyConnection;
use sqlx::Connection;

use crate::StoreError;
use crate::meta::{DatabaseTls, Db};

/// The variable naming the test server and the serving role.
pub const TEST_POSTGRES_ENV: &str = "AIRLOCK_TEST_POSTGRES";

/// The variable naming the test server and the owner role.
pub const TEST_POSTGRES_OWNER_ENV: &str = "AIRLOCK_TEST_POSTGRES_OWNER";

/// A new database on the test server: the URL to serve it as the ordinary role, and the URL of
/// the role that owns it (both carry passwords, so `Debug` shows neither).
pub struct TestDatabase {
    /// The serving role's URL.
    pub url: String,
    /// The owner role's URL.
    pub owner_url: String,
}

impl TestDatabase {
    /// Migrate it as the owner and grant the serving role what Airlock needs.
    ///
    /// # Errors
    /// When the migration or the grants fail.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Db::migrate_postgres(&self.owner_url, &self.url, DatabaseTls::VerifyFull).await?;
        Ok(())
    }
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestDatabase(<urls redacted>)")
    }
}

/// The serving role's URL to a new database on the test server, migrated by the owner role, or
/// `None` when no server is configured.
///
/// # Errors
/// When the server is configured but the database cannot be created or migrated, or when none
/// is configured but `AIRLOCK_REQUIRE_POSTGRES=1`.
pub async fn fresh_postgres_url(label: &str) -> Result<Option<String>, StoreError> {
    let Some(db) = fresh_postgres_database(label).await? else {
        return Ok(None);
    };
    db.migrate().await?;
    Ok(Some(db.url))
}

/// A new, empty (unmigrated) database on the test server, or `None` when no server is
/// configured.
///
/// # Errors
/// As [`fresh_postgres_url`], and when the owner role's variable is missing.
pub async fn fresh_postgres_database(label: &str) -> Result<Option<TestDatabase>, StoreError> {
    let Ok(base) = std::env::var(TEST_POSTGRES_ENV) else {
        if std::env::var("AIRLOCK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            return Err(StoreError::Config {
                path: TEST_POSTGRES_ENV.into(),
                reason: "AIRLOCK_REQUIRE_POSTGRES=1 but no test server is configured".into(),
            });
        }
        return Ok(None);
    };
    let owner_base = std::env::var(TEST_POSTGRES_OWNER_ENV).map_err(|_| StoreError::Config {
        path: TEST_POSTGRES_OWNER_ENV.into(),
        reason: "unset while AIRLOCK_TEST_POSTGRES is set; run \
                 `eval \"$(scripts/test-postgres.sh)\"` again"
            .into(),
    })?;
    sqlx::any::install_default_drivers();
    let not_url = |var: &str| StoreError::Config {
        path: var.into(),
        reason: "not a URL".into(),
    };
    let mut url: url::Url = base.parse().map_err(|_| not_url(TEST_POSTGRES_ENV))?;
    let mut owner_url: url::Url = owner_base
        .parse()
        .map_err(|_| not_url(TEST_POSTGRES_OWNER_ENV))?;
    let clean: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect::<String>()
        .to_ascii_lowercase();
    let name = format!(
        "airlock_t_{clean}_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut conn = AnyConnection::connect(&owner_base).await?;
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        drop_ended(&mut conn).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    url.set_path(&format!("/{name}"));
    owner_url.set_path(&format!("/{name}"));
    Ok(Some(TestDatabase {
        url: url.to_string(),
        owner_url: owner_url.to_string(),
    }))
}

/// Drops the test databases left by test processes that are no longer running on this machine
/// (best effort: one that cannot be dropped, say because another role owns it, is left).
async fn drop_ended(conn: &mut AnyConnection) {
    use sqlx::Row;
    let Ok(rows) =
        sqlx::query("SELECT datname::text FROM pg_database WHERE datname LIKE 'airlock\\_t\\_%'")
            .fetch_all(&mut *conn)
            .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else {
            continue;
        };
        if let Some(pid) = pid_of(&name)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            // The name is one of ours (checked by `pid_of`): safe to splice.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// The process id in a test database's name, if the name is exactly one this module makes.
fn pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("airlock_t_")?;
    let mut parts = rest.rsplitn(3, '_');
    let random = parts.next()?;
    let pid = parts.next()?;
    let label = parts.next()?;
    let ours = random.len() == 8
        && random.bytes().all(|b| b.is_ascii_hexdigit())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ours { pid.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_names_this_module_makes_give_a_pid() {
        assert_eq!(super::pid_of("airlock_t_api_4242_0badf00d"), Some(4242));
        assert_eq!(super::pid_of("airlock_t__4242_0badf00d"), Some(4242));
        for other in [
            "airlock_t_api_4242_0badf00",
            "airlock_t_api_x42_0badf00d",
            "airlock_t_api;drop_4242_0badf00d",
            "airlock_prod",
            "airlock_t_api_4242",
        ] {
            assert_eq!(super::pid_of(other), None, "{other}");
        }
    }
}
