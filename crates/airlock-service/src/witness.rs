//! This deployment as a C2SP tlog-witness for other deployments' ledgers: it cosigns a log's
//! checkpoint only if the log's key (configured in `airlock.toml`'s `[witness] logs`) signed it
//! and it extends, by a consistency proof, the latest checkpoint this witness cosigned for that
//! log. A log that shows it a fork or an older view gets a refusal, never a cosignature, so a
//! deployment cannot roll its own ledger back or rewrite it unseen once another one witnesses
//! it.
//!
//! The checks are `airlock_ledger::witness`'s (pure); this module keeps the per-log state in
//! the metadata database (`witness_logs`, migration 0009), which works on SQLite and on a
//! PostgreSQL database that several servers share, and changes a row only by compare-and-swap
//! on the state it checked against, as the spec requires (two requests checked against one
//! state must not both be recorded). The cosigning key is derived from the deployment's ledger
//! key ([`airlock_store::Home::witness_cosigner`]).
//!
//! The spec leaves requests unauthenticated beyond the checkpoint's signature: an HTTP route
//! calls [`Witness::add_checkpoint`] with the raw body and answers [`WitnessError::status`]
//! (with [`WitnessError::conflict_size`] as a 409's `text/x.tlog.size` body).

use std::collections::BTreeMap;

use airlock_ledger::witness::{
    AddCheckpoint, AddCheckpointError, CosignatureVerifier, Cosigner, Recorded,
    check_add_checkpoint,
};
use airlock_ledger::{Hash, Verifier};
use airlock_store::{Db, Home, Scope};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::Row;

/// Compare-and-swap attempts before a request that keeps losing the race is refused (each
/// loss means another request changed the record; the next check normally answers 409).
const ATTEMPTS: usize = 3;

/// Why the witness did not cosign. Messages name origins and sizes only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// Refused by the spec's checks; [`AddCheckpointError::status`] is the answer.
    #[error(transparent)]
    Refused(#[from] AddCheckpointError),
    /// The witness's state could not be read or written, or it holds a row it cannot read; the
    /// detail is for the operator's log.
    #[error("witness state unavailable")]
    Storage {
        /// For the log only.
        detail: String,
    },
}

impl WitnessError {
    /// The HTTP status of the answer: the spec's for a refusal (400, 403, 404, 409, 422), 500
    /// for a storage failure (generic body).
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Refused(e) => e.status(),
            WitnessError::Storage { .. } => 500,
        }
    }

    /// For a 409: the size of the latest checkpoint cosigned for the log, the response body
    /// (`"{size}\n"`, `Content-Type: text/x.tlog.size`).
    pub fn conflict_size(&self) -> Option<u64> {
        match self {
            WitnessError::Refused(AddCheckpointError::Conflict { recorded }) => Some(*recorded),
            _ => None,
        }
    }

    fn storage(e: impl std::fmt::Display) -> Self {
        WitnessError::Storage {
            detail: e.to_string(),
        }
    }
}

impl From<sqlx::Error> for WitnessError {
    fn from(e: sqlx::Error) -> Self {
        WitnessError::storage(format_args!("metadata store: {e}"))
    }
}

impl From<airlock_store::StoreError> for WitnessError {
    fn from(e: airlock_store::StoreError) -> Self {
        WitnessError::storage(e)
    }
}

/// What the witness holds for one log: the latest cosigned size and root, and that checkpoint
/// as the log signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedLog {
    /// Size and root hash.
    pub recorded: Recorded,
    /// The checkpoint note as submitted (the log's signature on it).
    pub checkpoint: String,
}

/// A deployment acting as witness. Cheap to share (`Arc`); every method takes `&self`.
pub struct Witness {
    db: Db,
    cosigner: Cosigner,
    /// The trusted keys of each log, by origin.
    logs: BTreeMap<String, Vec<Verifier>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("cosigner", &self.cosigner)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// The witness of the deployment `home`: its cosigner, and the logs `airlock.toml`'s
    /// `[witness] logs` lists (validated when the configuration was loaded).
    pub fn new(home: &Home) -> Result<Witness, WitnessError> {
        let mut logs: BTreeMap<String, Vec<Verifier>> = BTreeMap::new();
        for key in &home.config().witness.logs {
            let v = Verifier::parse(key).map_err(WitnessError::storage)?;
            logs.entry(v.name().to_owned()).or_default().push(v);
        }
        Ok(Witness {
            db: home.db().clone(),
            cosigner: home.witness_cosigner()?,
            logs,
        })
    }

    /// The witness's public key, `name+keyid+key` (signature type 0x04), for those who check
    /// its cosignatures.
    pub fn verifier(&self) -> CosignatureVerifier {
        self.cosigner.verifier()
    }

    /// The origins this witness cosigns.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// C2SP tlog-witness `add-checkpoint`: check the request body against the log's keys and
    /// the recorded state, record the new state (compare-and-swap, durable before answering),
    /// and return the cosignature line(s) (each `— <name> <base64>\n`).
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<String, WitnessError> {
        let req = AddCheckpoint::parse(body)?;
        let origin = req.origin()?.to_owned();
        let keys = self.logs.get(&origin).map_or(&[][..], Vec::as_slice);
        for _ in 0..ATTEMPTS {
            let mut tx = self.db.begin_write(&no_zone()).await?;
            let current = read_log(&mut tx, &origin).await?;
            let cp = match check_add_checkpoint(&req, keys, current.as_ref().map(|l| &l.recorded)) {
                Ok(cp) => cp,
                Err(e) => {
                    let recorded = current.as_ref().map_or(0, |l| l.recorded.size);
                    // A proof that fails, or another root at the recorded size, is evidence
                    // of a fork: worth an operator's look (a 409 for another old size is how
                    // clients learn the recorded one). Sizes and the origin only.
                    let fork = matches!(e, AddCheckpointError::BadProof { .. })
                        || (matches!(e, AddCheckpointError::Conflict { .. })
                            && req.old_size == recorded);
                    if !fork {
                        return Err(e.into());
                    }
                    tracing::warn!(
                        origin = %origin,
                        old = req.old_size,
                        recorded,
                        status = e.status(),
                        "witness refused a checkpoint that forks the log"
                    );
                    return Err(e.into());
                }
            };
            let new = Recorded {
                size: cp.checkpoint.size,
                root: cp.checkpoint.root,
            };
            let size = i64::try_from(new.size).map_err(|_| AddCheckpointError::Malformed {
                line: 1,
                reason: "tree size too large",
            })?;
            let now = chrono::Utc::now();
            let stored = match &current {
                // The same checkpoint again: nothing changes, and it is cosigned again.
                Some(l) if l.recorded == new => true,
                Some(l) => {
                    let old_size = i64::try_from(l.recorded.size).map_err(WitnessError::storage)?;
                    sqlx::query(
                        "UPDATE witness_logs SET size = $1, root = $2, checkpoint = $3, \
                         updated_at = $4 WHERE origin = $5 AND size = $6 AND root = $7",
                    )
                    .bind(size)
                    .bind(B64.encode(new.root))
                    .bind(&req.checkpoint)
                    .bind(now.to_rfc3339())
                    .bind(&origin)
                    .bind(old_size)
                    .bind(B64.encode(l.recorded.root))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                }
                None => {
                    sqlx::query(
                        "INSERT INTO witness_logs (origin, size, root, checkpoint, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin) DO NOTHING",
                    )
                    .bind(&origin)
                    .bind(size)
                    .bind(B64.encode(new.root))
                    .bind(&req.checkpoint)
                    .bind(now.to_rfc3339())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                }
            };
            if !stored {
                // Another request changed the record since it was read: check again.
                tx.rollback().await?;
                continue;
            }
            tx.commit().await?;
            let timestamp = u64::try_from(now.timestamp()).map_err(WitnessError::storage)?;
            return self
                .cosigner
                .cosign(&cp.checkpoint.to_body(), timestamp)
                .map_err(WitnessError::storage);
        }
        Err(WitnessError::storage(
            "the witness record kept changing under the request",
        ))
    }

    /// What this witness holds for `origin`: the latest checkpoint it cosigned, if any.
    pub async fn latest(&self, origin: &str) -> Result<Option<WitnessedLog>, WitnessError> {
        let mut tx = self.db.begin(&no_zone()).await?;
        let log = read_log(&mut tx, origin).await?;
        tx.commit().await?;
        Ok(log)
    }
}

/// The witness's transactions see no zone and no identity table (`witness_logs` is bound by
/// neither).
fn no_zone() -> Scope {
    Scope::zones(std::iter::empty::<airlock_types::Zone>())
}

async fn read_log(
    tx: &mut airlock_store::Tx,
    origin: &str,
) -> Result<Option<WitnessedLog>, WitnessError> {
    let Some(row) =
        sqlx::query("SELECT size, root, checkpoint FROM witness_logs WHERE origin = $1")
            .bind(origin)
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(None);
    };
    let size = u64::try_from(row.try_get::<i64, _>("size")?).map_err(WitnessError::storage)?;
    let root: Hash = B64
        .decode(row.try_get::<String, _>("root")?)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| WitnessError::storage("a recorded root hash is not 32 bytes of base64"))?;
    Ok(Some(WitnessedLog {
        recorded: Recorded { size, root },
        checkpoint: row.try_get("checkpoint")?,
    }))
}
