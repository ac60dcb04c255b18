//! `airlock.toml`: the deployment's configuration. Holds no secret.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// About the deployment.
    pub deployment: DeploymentConfig,
    /// Where data and metadata live.
    pub storage: StorageConfig,
    /// The audit ledger.
    pub ledger: LedgerConfig,
    /// How a model version may reach every patient.
    #[serde(default)]
    pub rollout: RolloutConfig,
    /// Acting as a witness for other deployments' ledgers.
    #[serde(default, skip_serializing_if = "WitnessConfig::is_unset")]
    pub witness: WitnessConfig,
    /// Production monitoring's data.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
}

/// How long production monitoring keeps what it logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Days a served prediction's logged feature values and score are kept before they are
    /// erased (their data keys destroyed). The ledger's record of each prediction (who, which
    /// version, when) is not affected: it is kept for ever.
    pub prediction_log_days: u32,
}

impl Default for MonitoringConfig {
    /// A year: a drift comparison across seasons, and no feature values kept longer than
    /// monitoring needs them (minimum necessary).
    fn default() -> Self {
        MonitoringConfig {
            prediction_log_days: 365,
        }
    }
}

/// Acting as a C2SP tlog-witness: which logs this deployment cosigns, and under what name. Its
/// cosigning key is derived from the deployment's ledger key ([`crate::Home::witness_cosigner`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessConfig {
    /// The cosigner's key name (default `airlock.local/<deployment name>/witness`).
    pub name: Option<String>,
    /// The verifier keys (`name+keyid+key`, the key name being the log's origin) of the logs
    /// this deployment cosigns; a checkpoint of any other origin is refused.
    pub logs: Vec<String>,
}

impl WitnessConfig {
    fn is_unset(&self) -> bool {
        self == &WitnessConfig::default()
    }
}

/// How a model version may reach every patient: a canary's largest share, and the soak it must
/// have before it is promoted (both checked by the registry and named in the transition's
/// ledger entry).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// The largest share of patients a canary may get, in percent.
    pub max_canary_percent: f64,
    /// The shortest time a version must be the canary before it is promoted, in minutes.
    pub min_canary_minutes: u64,
    /// The fewest predictions shown from the canary before it is promoted.
    pub min_canary_predictions: u64,
    /// The shortest time a version must run silent before it becomes a canary, in minutes.
    pub min_silent_minutes: u64,
    /// The fewest silent predictions logged for a version before it becomes a canary.
    pub min_silent_predictions: u64,
}

impl Default for RolloutConfig {
    /// Half the patients at most, an hour and 100 shown predictions of soak; a day and 100
    /// silent predictions before a canary.
    fn default() -> Self {
        RolloutConfig {
            max_canary_percent: 50.0,
            min_canary_minutes: 60,
            min_canary_predictions: 100,
            // A day beside the existing workflow, and enough requests to compare.
            min_silent_minutes: 24 * 60,
            min_silent_predictions: 100,
        }
    }
}

/// About the deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// A short name, used in the ledger origin.
    pub name: String,
    /// When `init` ran (RFC 3339).
    pub created_at: String,
}

/// Where data and metadata live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The object store: a directory relative to the home, an absolute path, or a `file://` URL.
    /// Other schemes (s3://, gs://, az://) are object_store backends compiled in by feature.
    pub objects: String,
    /// The metadata database file, relative to the home, or a PostgreSQL URL without its
    /// password.
    pub database: String,
    /// Accept a PostgreSQL server that is not on loopback without `sslmode=verify-full`: the
    /// connection, the role's password included, can then be read or changed on the network.
    /// Set by `init --danger-database-without-verified-tls`; absent means refuse.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub danger_database_without_verified_tls: bool,
}

/// The audit ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// The log's origin line (C2SP tlog-checkpoint), also the signer name.
    pub origin: String,
    /// The ledger directory, relative to the home.
    pub dir: String,
    /// A directory every checkpoint the ledger signs is also written to, as a 0600 file named
    /// by its tree size (an absolute path, or relative to the home). Point it at storage this
    /// deployment's operator cannot rewrite (a write-once bucket, another team's volume):
    /// `airlock audit verify` checks the log extends the latest checkpoint there, so putting
    /// back an older copy of the ledger, or a rewritten one, fails. Unset: no export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_export: Option<String>,
}

impl Config {
    /// The defaults for a new deployment.
    pub fn new(name: &str) -> Self {
        Config {
            deployment: DeploymentConfig {
                name: name.to_string(),
                created_at: chrono::Utc::now().to_rfc3339(),
            },
            storage: StorageConfig {
                objects: "objects".into(),
                database: "metadata.db".into(),
                danger_database_without_verified_tls: false,
            },
            ledger: LedgerConfig {
                origin: format!("airlock.local/{name}/audit"),
                dir: "ledger".into(),
                checkpoint_export: None,
            },
            rollout: RolloutConfig::default(),
            witness: WitnessConfig::default(),
            monitoring: MonitoringConfig::default(),
        }
    }

    /// Read and validate `airlock.toml`.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = std::fs::read_to_string(path).map_err(StoreError::io(path))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| StoreError::Config {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
        if cfg.monitoring.prediction_log_days == 0 {
            return Err(StoreError::Config {
                path: path.to_path_buf(),
                reason: "monitoring.prediction_log_days must be at least 1 (monitoring reads the log it keeps)".into(),
            });
        }
        for (i, key) in cfg.witness.logs.iter().enumerate() {
            airlock_ledger::Verifier::parse(key).map_err(|e| StoreError::Config {
                path: path.to_path_buf(),
                reason: format!("`witness.logs[{i}]`: {e}"),
            })?;
        }
        let share = cfg.rollout.max_canary_percent;
        if !(share > 0.0 && share <= 100.0) {
            return Err(StoreError::Config {
                path: path.to_path_buf(),
                reason: "`rollout.max_canary_percent` must be in (0, 100]".into(),
            });
        }
        Ok(cfg)
    }

    /// Serialise to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Resolve a path from the config relative to the home.
    pub fn resolve(home: &Path, p: &str) -> PathBuf {
        let p = p.strip_prefix("file://").unwrap_or(p);
        let pb = PathBuf::from(p);
        if pb.is_absolute() { pb } else { home.join(pb) }
    }
}
