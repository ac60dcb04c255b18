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
}

impl Default for RolloutConfig {
    /// Half the patients at most, an hour and 100 shown predictions of soak.
    fn default() -> Self {
        RolloutConfig {
            max_canary_percent: 50.0,
            min_canary_minutes: 60,
            min_canary_predictions: 100,
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
    /// The metadata database file, relative to the home.
    pub database: String,
}

/// The audit ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// The log's origin line (C2SP tlog-checkpoint), also the signer name.
    pub origin: String,
    /// The ledger directory, relative to the home.
    pub dir: String,
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
            },
            ledger: LedgerConfig {
                origin: format!("airlock.local/{name}/audit"),
                dir: "ledger".into(),
            },
            rollout: RolloutConfig::default(),
        }
    }

    /// Read and validate `airlock.toml`.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = std::fs::read_to_string(path).map_err(StoreError::io(path))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| StoreError::Config {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
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
