//! De-identification runs started by a caller: the gate ([`crate::gate::run_gate`]) runs in
//! the background as the requester, and its progress lives in the `deid_runs` table of the
//! airlock zone.

use airlock_authz::{Action, Resource};
use airlock_store::{Access, Scope, parse_version_spec};
use airlock_types::{DatasetName, Zone};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Caller, ServiceError};

/// The profiles a remote caller may name: the built-in ones only (a path would let a request
/// read the server's files).
pub use airlock_deid::BUILTIN_PROFILES as REMOTE_PROFILES;

/// A run to start.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// A built-in profile.
    #[schemars(schema_with = "crate::schema::remote_profile")]
    pub profile: String,
    /// The input, `name[@version]`.
    #[schemars(with = "crate::schema::DatasetSpec")]
    pub dataset: String,
    /// The dataset the output becomes a version of.
    #[schemars(with = "airlock_types::DatasetName")]
    pub out_dataset: String,
}

/// A run just started.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Started {
    /// The run's id.
    pub id: String,
    /// Always `running`.
    #[schemars(schema_with = "crate::schema::always_running")]
    pub status: &'static str,
}

/// A run as recorded.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Run {
    /// The run's id.
    pub id: Option<String>,
    /// Who started it.
    pub actor: Option<String>,
    /// The profile.
    pub profile: Option<String>,
    /// The input version.
    pub dataset: Option<String>,
    /// The output dataset.
    pub out_dataset: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// The output version, once it succeeded.
    pub output: Option<String>,
    /// Why it failed (no values).
    pub error: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
}

fn airlock_zone() -> Resource {
    Resource::Zone(Zone::Airlock)
}

impl crate::Service {
    /// Mark the runs a stopped server left `running` as failed (once per service: runs this
    /// service started are its own and still going).
    pub async fn fail_interrupted_runs(&self) -> Result<(), ServiceError> {
        let Some(started) = self.claim_run_recovery() else {
            return Ok(());
        };
        let mut tx = self
            .home()
            .db()
            .begin(&Scope::zones([Zone::Airlock]))
            .await?;
        let n = sqlx::query(
            "UPDATE deid_runs SET status = 'failed', error = $1, finished_at = $2 \
             WHERE status = 'running' AND started_at < $3",
        )
        .bind("interrupted: the server stopped during the run; start it again")
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(started)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n > 0 {
            tracing::warn!(
                runs = n,
                "de-identification runs interrupted by a stop marked failed"
            );
        }
        Ok(())
    }
}

impl Caller {
    /// Start the de-identification gate over a clinical version, in the background.
    pub async fn start_deid(&self, body: NewRun) -> Result<Started, ServiceError> {
        if !REMOTE_PROFILES.contains(&body.profile.as_str()) {
            return Err(ServiceError::invalid(
                "profile",
                format!("must be one of {}", REMOTE_PROFILES.join(", ")),
            ));
        }
        let out = DatasetName::new(body.out_dataset.clone())
            .map_err(|e| ServiceError::invalid("out_dataset", e.to_string()))?;
        let (name, ver) = parse_version_spec(&body.dataset)
            .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
        let input = self
            .find_version(name.as_str(), ver.map(|v| v.get()))
            .await?;
        self.authorize(Action::RunDeid, &crate::datasets::resource(&input))
            .await?;
        let run_id = hex::encode(rand::random::<[u8; 12]>());
        let db = self.home().db().clone();
        let mut tx = db.begin(&Scope::zones([Zone::Airlock])).await?;
        sqlx::query(
            "INSERT INTO deid_runs (id, zone, actor, profile, dataset, out_dataset, status, started_at) \
             VALUES ($1, 'airlock', $2, $3, $4, $5, 'running', $6)",
        )
        .bind(&run_id)
        .bind(self.who.principal.id.as_str())
        .bind(&body.profile)
        .bind(input.reference().to_string())
        .bind(out.as_str())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // The gate runs as the requester, across the zones a gate spans.
        let home = self.home_across_zones();
        let spec = body.profile;
        let dataset = input.reference().to_string();
        let id = run_id.clone();
        tokio::spawn(async move {
            let result = crate::gate::run_gate(&home, &spec, &dataset, &out).await;
            let (status, report, error) = match result {
                Ok(o) => ("succeeded", Some(o.version.reference().to_string()), None),
                Err(e) => ("failed", None, Some(e.to_string())),
            };
            let done = async {
                let mut tx = db.begin(&Scope::zones([Zone::Airlock])).await?;
                sqlx::query(
                    "UPDATE deid_runs SET status = $1, report = $2, error = $3, finished_at = $4 \
                     WHERE id = $5",
                )
                .bind(status)
                .bind(report)
                .bind(error)
                .bind(chrono::Utc::now().to_rfc3339())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, airlock_store::StoreError>(())
            };
            if let Err(e) = done.await {
                tracing::error!(run = %id, error = %e, "could not record the end of a de-identification run");
            }
        });
        Ok(Started {
            id: run_id,
            status: "running",
        })
    }

    async fn run_row(&self, id: &str) -> Result<Run, ServiceError> {
        self.service().fail_interrupted_runs().await?;
        const NOT_FOUND: ServiceError = ServiceError::NotFound {
            what: "de-identification run",
        };
        if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NOT_FOUND);
        }
        let mut tx = self
            .home()
            .db()
            .begin(&Scope::zones([Zone::Airlock]))
            .await?;
        let row = sqlx::query(
            "SELECT id, actor, profile, dataset, out_dataset, status, report, error, started_at, finished_at \
             FROM deid_runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let r = row.ok_or(NOT_FOUND)?;
        let g = |c: &str| r.try_get::<Option<String>, _>(c).ok().flatten();
        Ok(Run {
            id: g("id"),
            actor: g("actor"),
            profile: g("profile"),
            dataset: g("dataset"),
            out_dataset: g("out_dataset"),
            status: g("status"),
            output: g("report"),
            error: g("error"),
            started_at: g("started_at"),
            finished_at: g("finished_at"),
        })
    }

    /// A run's status.
    pub async fn deid_run(&self, id: &str) -> Result<Run, ServiceError> {
        self.authorize(Action::ReadDeidReport, &airlock_zone())
            .await?;
        self.run_row(id).await
    }

    /// A succeeded run's report (JSON bytes, no values).
    pub async fn deid_report(&self, id: &str) -> Result<Vec<u8>, ServiceError> {
        self.authorize(Action::ReadDeidReport, &airlock_zone())
            .await?;
        let run = self.run_row(id).await?;
        let Some(output) = run.output else {
            return Err(ServiceError::NotFound {
                what: "report (the run has not succeeded)",
            });
        };
        let (name, ver) = parse_version_spec(&output).map_err(ServiceError::internal)?;
        // The report lives in the output version; read it with a handle that spans the gate.
        let home = self.home_across_zones();
        let v = home.version(&name, ver).await?;
        let files = home.read_version(&v, Access::Zone(v.zone), None).await?;
        files
            .into_iter()
            .find(|(f, _)| f.format == "report")
            .map(|(_, bytes)| bytes)
            .ok_or(ServiceError::NotFound { what: "report" })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn remote_profiles_load_as_built_in_profiles() {
        for p in super::REMOTE_PROFILES {
            assert!(airlock_deid::Profile::builtin(p).is_ok(), "{p}");
        }
    }
}
