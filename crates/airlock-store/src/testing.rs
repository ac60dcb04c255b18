//! Helpers for test suites (this crate's and the server's) that run against PostgreSQL.
//!
//! `AIRLOCK_TEST_POSTGRES` names a server and an ordinary role that may create databases
//! (`scripts/test-postgres.sh` starts one); each call makes a fresh database so tests never see
//! each other's rows. When the variable is unset the PostgreSQL half of a suite is skipped with
//! a message, unless `AIRLOCK_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes that a failure.

use sqlx::AnyConnection;
use sqlx::Connection;

use crate::StoreError;

/// The variable naming the test server.
pub const TEST_POSTGRES_ENV: &str = "AIRLOCK_TEST_POSTGRES";

/// A URL to a new, empty database on the test server, or `None` when no server is configured.
///
/// # Errors
/// When the server is configured but the database cannot be created, or when none is
/// configured but `AIRLOCK_REQUIRE_POSTGRES=1`.
pub async fn fresh_postgres_url(label: &str) -> Result<Option<String>, StoreError> {
    let Ok(base) = std::env::var(TEST_POSTGRES_ENV) else {
        if std::env::var("AIRLOCK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            return Err(StoreError::Config {
                path: TEST_POSTGRES_ENV.into(),
                reason: "AIRLOCK_REQUIRE_POSTGRES=1 but no test server is configured".into(),
            });
        }
        return Ok(None);
    };
    sqlx::any::install_default_drivers();
    let mut url: url::Url = base.parse().map_err(|_| StoreError::Config {
        path: TEST_POSTGRES_ENV.into(),
        reason: "not a URL".into(),
    })?;
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
    let mut conn = AnyConnection::connect(&base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    url.set_path(&format!("/{name}"));
    Ok(Some(url.to_string()))
}
