//! The deployment home: `init`, `open`, and every operation that touches data.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_crypto::{KdfParams, KeyManager, Keyring, LocalKeyManager, NamedKey, Secret};
use airlock_ledger::{Entry, EventType, Ledger, OutcomeKind, Timestamp};
use airlock_types::{
    ActorId, Classification, DatasetName, DatasetVersionId, Gate, Purpose, RequestId, Zone, zone,
};

use crate::attest::Attestation;
use crate::config::Config;
use crate::datasets::{
    Access, DatasetSummary, DatasetVersion, IngestRequest, Lineage, Manifest, ManifestFile,
    NewFile, NewVersion, Transform, VersionRef,
};
use crate::files::{self, write_atomic};
use crate::meta::{DatabaseTls, Db, DbTarget, Meta, Scope, Tx, is_postgres_url};
use crate::objects::{ObjectRef, Objects};
use crate::scan::{self, Refusal};
use crate::{AIRLOCK_VERSION, StoreError};

const CONFIG_FILE: &str = "airlock.toml";
const KEYRING_FILE: &str = "keyring.json";
/// Public verifier key of the ledger, in the keyring's public section.
pub const PUBLIC_LEDGER_VERIFIER: &str = "ledger-verifier";
/// The self-signed TLS certificate, in the keyring's public section.
pub const PUBLIC_TLS_CERT: &str = "tls-cert";

/// A passphrase, zeroized on drop.
pub struct Passphrase(Secret);

impl Passphrase {
    /// Wrap a passphrase.
    pub fn new(s: String) -> Self {
        Passphrase(Secret::new(s.into_bytes()))
    }

    fn as_str(&self) -> Result<&str, StoreError> {
        std::str::from_utf8(self.0.expose_secret()).map_err(|_| StoreError::Config {
            path: PathBuf::from("passphrase"),
            reason: "the passphrase is not valid UTF-8".into(),
        })
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// The environment variable that carries a PostgreSQL URL with credentials.
pub const DATABASE_URL_ENV: &str = "AIRLOCK_DATABASE_URL";

/// The environment variable that carries the PostgreSQL owner role's URL (for migrations).
pub const DATABASE_OWNER_URL_ENV: &str = "AIRLOCK_DATABASE_OWNER_URL";

/// Options for `init`.
#[derive(Clone)]
pub struct InitOptions {
    /// The deployment's short name.
    pub name: String,
    /// Argon2id cost.
    pub kdf: KdfParams,
    /// A PostgreSQL URL for the metadata (the embedded SQLite file when `None`). Its password,
    /// if any, is used to connect and never written to `airlock.toml`.
    pub database_url: Option<String>,
}

impl fmt::Debug for InitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitOptions")
            .field("name", &self.name)
            .field("kdf", &self.kdf)
            .field("postgres", &self.database_url.is_some())
            .finish()
    }
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            name: "airlock".into(),
            kdf: KdfParams::default(),
            database_url: None,
        }
    }
}

/// How `init` sets up a PostgreSQL database, beyond [`InitOptions::database_url`] (which names
/// the serving role).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct DatabaseSetup {
    owner_url: Option<String>,
    danger_without_verified_tls: bool,
}

impl DatabaseSetup {
    /// Migrate as the role of `url`, which will own the tables, and grant the serving role only
    /// what the application needs. Without it the database must be migrated already.
    pub fn owner(mut self, url: String) -> Self {
        self.owner_url = Some(url);
        self
    }

    /// Accept a server that is not on loopback without `sslmode=verify-full`, and record the
    /// choice in `airlock.toml` (`storage.danger_database_without_verified_tls`).
    pub fn danger_without_verified_tls(mut self) -> Self {
        self.danger_without_verified_tls = true;
        self
    }
}

impl fmt::Debug for DatabaseSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The owner's URL may carry a password.
        f.debug_struct("DatabaseSetup")
            .field("owner", &self.owner_url.is_some())
            .field(
                "danger_without_verified_tls",
                &self.danger_without_verified_tls,
            )
            .finish()
    }
}

/// Where the metadata lives: the config names it (without credentials); an explicit URL, which
/// may carry credentials, must name the same kind of database.
fn db_target(dir: &Path, config: &Config, url: Option<&str>) -> Result<DbTarget, StoreError> {
    let configured = &config.storage.database;
    let tls = if config.storage.danger_database_without_verified_tls {
        DatabaseTls::DangerUnverified
    } else {
        DatabaseTls::VerifyFull
    };
    match (is_postgres_url(configured), url) {
        (true, Some(u)) if is_postgres_url(u) => Ok(DbTarget::Postgres(u.to_string(), tls)),
        (true, None) => Ok(DbTarget::Postgres(configured.clone(), tls)),
        (false, Some(u)) if is_postgres_url(u) => Err(StoreError::Config {
            path: dir.join(CONFIG_FILE),
            reason: "this deployment keeps its metadata in SQLite; a PostgreSQL URL was given \
                     (initialise a deployment with `--database postgres://...` to use PostgreSQL)"
                .into(),
        }),
        (true, Some(_)) => Err(StoreError::Config {
            path: dir.join(CONFIG_FILE),
            reason: "this deployment keeps its metadata in PostgreSQL; the database URL given \
                     is not a PostgreSQL URL"
                .into(),
        }),
        (false, _) => Ok(DbTarget::Sqlite(Config::resolve(dir, configured))),
    }
}

/// The URL without its password, for `airlock.toml`.
fn without_password(url: &str) -> String {
    match url.parse::<url::Url>() {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// What a key rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotationSummary {
    /// The old master key id.
    pub old_key_id: String,
    /// The new master key id.
    pub new_key_id: String,
    /// Data keys re-wrapped.
    pub rewrapped: usize,
}

/// An open deployment, acting for one principal within some zones.
///
/// Cheap to clone: [`Home::acting_as`] gives a handle that writes the ledger as another actor,
/// under one request id, and sees only the zones of its [`Scope`] in the metadata store.
#[derive(Clone)]
pub struct Home {
    inner: Arc<HomeInner>,
    actor: ActorId,
    request: Option<RequestId>,
    scope: Scope,
}

struct HomeInner {
    dir: PathBuf,
    config: Config,
    keyring: Keyring,
    kms: LocalKeyManager,
    meta: Meta,
    objects: Objects,
    ledger: Arc<Ledger>,
    /// The running service's ledger writer, when one runs (weak: the writer's own thread holds
    /// a handle to this home, and a strong reference would keep both alive forever).
    sink: std::sync::Mutex<Option<std::sync::Weak<dyn LedgerSink>>>,
}

/// Where a deployment's ledger entries go while a service runs: its group-commit writer, so a
/// process appends by one path only (one order, one fsync per group), whoever builds the
/// entry. Without one, [`Home::audit`] appends directly, off the async threads.
pub trait LedgerSink: Send + Sync {
    /// Append `entries` consecutively and durably; the first one's index.
    fn append(
        &self,
        entries: Vec<Entry>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send + '_>>;
}

impl fmt::Debug for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Home")
            .field("dir", &self.inner.dir)
            .field("actor", &self.actor)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A SQLite database file and the journal, WAL and shared-memory files beside it.
fn sqlite_files(db: &Path) -> [PathBuf; 4] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    [
        db.to_path_buf(),
        with("-journal"),
        with("-wal"),
        with("-shm"),
    ]
}

/// Undoes a failed (or abandoned) `init` when dropped armed: removes the outermost directory
/// `init` created, or, in a directory that existed before, each path `init` added, and restores
/// that directory's mode. Dropping rather than an explicit call covers every `?` and a future
/// dropped mid-way.
struct InitGuard {
    dir: PathBuf,
    /// The outermost directory this `init` created (the home, or an ancestor made for it).
    created: Option<PathBuf>,
    /// The mode of a home directory that existed before.
    previous_mode: Option<u32>,
    /// Paths made inside a home directory that existed before, in the order made.
    made: Vec<PathBuf>,
    armed: bool,
}

impl InitGuard {
    /// Create `dir` 0700 (its missing parents with the default mode), or make an existing one
    /// 0700, remembering which.
    fn begin(dir: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut created = None;
        let mut missing = Some(dir);
        while let Some(d) = missing {
            if std::fs::symlink_metadata(d).is_ok() || d.as_os_str().is_empty() {
                break;
            }
            created = Some(d.to_path_buf());
            missing = d.parent();
        }
        let mut guard = InitGuard {
            dir: dir.to_path_buf(),
            created,
            previous_mode: None,
            made: Vec::new(),
            armed: true,
        };
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
        }
        if !files::create_private_dir(dir).map_err(StoreError::io(dir))? {
            let md = std::fs::metadata(dir).map_err(StoreError::io(dir))?;
            guard.previous_mode = Some(md.permissions().mode() & 0o7777);
            files::make_private(dir).map_err(StoreError::io(dir))?;
        }
        Ok(guard)
    }

    /// Note `path`, about to be created; a path that exists already is not `init`'s to remove.
    fn track(&mut self, path: &Path) {
        if self.created.is_none() && std::fs::symlink_metadata(path).is_err() {
            self.made.push(path.to_path_buf());
        }
    }

    /// `init` succeeded: keep everything.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if !self.armed {
            return;
        }
        // Best effort: the error that made `init` fail is the one worth reporting.
        if let Some(top) = &self.created {
            let _ = std::fs::remove_dir_all(top);
            return;
        }
        for p in self.made.iter().rev() {
            let _ = match std::fs::symlink_metadata(p) {
                Ok(md) if md.is_dir() => std::fs::remove_dir_all(p),
                Ok(_) => std::fs::remove_file(p),
                Err(_) => Ok(()),
            };
        }
        if let Some(mode) = self.previous_mode {
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(mode));
        }
    }
}

/// The label the witness cosigner's seed is derived under ([`Home::witness_cosigner`]).
pub const WITNESS_KEY_LABEL: &[u8] = b"airlock witness cosigner v1";

/// Domain separation for artifact signatures.
pub const ARTIFACT_SIGNATURE_CONTEXT: &[u8] = b"airlock artifact signature v1\n";

fn artifact_message(message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ARTIFACT_SIGNATURE_CONTEXT.len() + message.len());
    m.extend_from_slice(ARTIFACT_SIGNATURE_CONTEXT);
    m.extend_from_slice(message);
    m
}

fn request_id() -> RequestId {
    RequestId::from_bytes(airlock_crypto::random_bytes())
}

fn signing_key(kms: &LocalKeyManager) -> Result<ed25519_dalek::SigningKey, StoreError> {
    let seed = kms.named_key(NamedKey::LedgerSigning)?;
    let bytes: [u8; 32] =
        seed.expose_secret()
            .try_into()
            .map_err(|_| airlock_crypto::CryptoError::MissingKey {
                name: NamedKey::LedgerSigning.as_str().into(),
            })?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

/// Resource prefixes of a version's ledger entry: the hashes its provenance rests on.
const MANIFEST_PREFIX: &str = "manifest:";
const LINEAGE_PREFIX: &str = "lineage:";

const NEEDS_ATTESTATION: &str = "outside the clinical zone an ingest is an attested import: it \
     needs an attestation of the data's basis (`Home::import_attested`; `airlock ingest \
     --attest-basis`)";

/// Where an ingest may go with or without an attestation (the zone rules are checked first).
fn check_import(
    zone: Zone,
    classification: Classification,
    attested: bool,
) -> Result<(), StoreError> {
    let reason = match (zone, attested) {
        (Zone::Clinical, false) => return Ok(()),
        (Zone::Clinical, true) => {
            "the clinical zone takes data from source systems without an attestation; an \
             attested import goes to another zone"
        }
        (_, false) => NEEDS_ATTESTATION,
        (_, true) if classification.is_identified() => {
            "an attested import brings de-identified, synthetic or DP data; identified data is \
             ingested into the clinical zone"
        }
        (_, true) => return Ok(()),
    };
    Err(StoreError::Attestation {
        zone,
        classification,
        reason,
    })
}

/// A source system's name goes into the lineage and the ledger.
fn check_source_system(name: &str) -> Result<(), StoreError> {
    let rule = if name.trim().is_empty() {
        "must not be empty"
    } else if name.len() > 128 {
        "at most 128 bytes"
    } else if name.chars().any(char::is_control) {
        "no control characters"
    } else {
        return Ok(());
    };
    Err(airlock_types::IdError::Invalid {
        kind: "source system",
        rule,
    }
    .into())
}

/// Text from an older record, made fit for a ledger field (no control characters, bounded).
fn ledger_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(128)
        .collect()
}

/// Whether a ledger entry is the one that records a version's creation.
fn creates_version(e: &Entry) -> bool {
    matches!(e.event, EventType::Ingest | EventType::DatasetCreate)
        && e.outcome.result == OutcomeKind::Success
}

/// How a version compares with a ledger entry that records its creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// The entry carries the version's lineage and manifest hashes.
    Matches,
    /// The entry is from before entries carried hashes.
    Legacy,
    /// Something differs: what.
    Differs(&'static str),
}

fn recorded(v: &DatasetVersion, e: &Entry) -> Recorded {
    if !creates_version(e) || e.resources.first() != Some(&v.reference().to_string()) {
        return Recorded::Differs("its ledger entry records something else");
    }
    if e.zone != v.zone {
        return Recorded::Differs("its zone was changed");
    }
    let carried = |prefix: &str| e.resources.iter().find_map(|r| r.strip_prefix(prefix));
    match (carried(LINEAGE_PREFIX), carried(MANIFEST_PREFIX)) {
        (None, None) => Recorded::Legacy,
        (Some(lineage), Some(manifest)) => {
            if lineage != v.lineage.record_hash().to_hex() {
                Recorded::Differs("its lineage record was changed")
            } else if manifest != v.manifest_hash.to_hex() {
                Recorded::Differs("its manifest hash was changed")
            } else {
                Recorded::Matches
            }
        }
        _ => Recorded::Differs("its ledger entry is incomplete"),
    }
}

/// Name each of `v`'s parents in `hidden` by a placeholder only.
fn withhold(v: &mut DatasetVersion, hidden: &BTreeSet<VersionRef>) {
    let gate = v.lineage.gate;
    for p in &mut v.lineage.parents {
        if hidden.contains(p) {
            p.dataset = DatasetName::withheld(gate);
        }
    }
}

impl Home {
    /// Create a deployment in `dir` (which must not hold one).
    ///
    /// The home is made 0700 and everything in it 0600 (directories 0700), whatever the umask.
    /// An `init` that fails removes what it made: the whole directory when it created it, or
    /// else the files and directories it added (and the directory's mode is restored). A
    /// PostgreSQL database keeps the tables its migrations created; they are empty, and a new
    /// `init` uses them.
    ///
    /// On PostgreSQL the database must be migrated already, by its owner role; see
    /// [`Home::init_with`] to migrate it here.
    pub async fn init(
        dir: &Path,
        passphrase: &Passphrase,
        opts: &InitOptions,
        actor: ActorId,
    ) -> Result<Home, StoreError> {
        Self::init_with(dir, passphrase, opts, &DatabaseSetup::default(), actor).await
    }

    /// [`Home::init`], setting up a PostgreSQL database as `setup` says: migrated first as
    /// its owner role, and reached without verified TLS only if the operator accepts the
    /// danger.
    pub async fn init_with(
        dir: &Path,
        passphrase: &Passphrase,
        opts: &InitOptions,
        setup: &DatabaseSetup,
        actor: ActorId,
    ) -> Result<Home, StoreError> {
        if dir.join(CONFIG_FILE).exists() || dir.join(KEYRING_FILE).exists() {
            return Err(StoreError::HomeExists {
                path: dir.to_path_buf(),
            });
        }
        if let Some(url) = &opts.database_url
            && (!is_postgres_url(url) || url.parse::<url::Url>().is_err())
        {
            return Err(StoreError::Config {
                path: PathBuf::from("--database"),
                reason: "expected a postgres:// URL".into(),
            });
        }
        if let Some(owner) = &setup.owner_url
            && (opts.database_url.is_none() || !is_postgres_url(owner))
        {
            return Err(StoreError::Config {
                path: PathBuf::from("--database-owner"),
                reason: "expected a postgres:// URL, beside a PostgreSQL `--database`".into(),
            });
        }
        let mut guard = InitGuard::begin(dir)?;
        let home = Self::init_in(dir, passphrase, opts, setup, actor, &mut guard).await?;
        guard.disarm();
        Ok(home)
    }

    /// [`Home::init`]'s work, in a directory that exists and is 0700; `guard` is told of every
    /// path before it is created.
    async fn init_in(
        dir: &Path,
        passphrase: &Passphrase,
        opts: &InitOptions,
        setup: &DatabaseSetup,
        actor: ActorId,
        guard: &mut InitGuard,
    ) -> Result<Home, StoreError> {
        let mut config = Config::new(&opts.name);
        if let Some(url) = &opts.database_url {
            config.storage.database = without_password(url);
            config.storage.danger_database_without_verified_tls = setup.danger_without_verified_tls;
        }
        let (mut keyring, mut kms) = Keyring::create(passphrase.as_str()?, opts.kdf)?;
        let tls = airlock_crypto::generate_tls_identity(&["localhost", "127.0.0.1"])?;
        keyring.put_named(&mut kms, NamedKey::TlsPrivateKey, tls.key_pem)?;
        keyring.public.insert(PUBLIC_TLS_CERT.into(), tls.cert_pem);
        let ledger_dir = Config::resolve(dir, &config.ledger.dir);
        guard.track(&ledger_dir);
        if !ledger_dir.exists() {
            // Made here, 0700, before the ledger fills it.
            files::create_private_dir(&ledger_dir).map_err(StoreError::io(&ledger_dir))?;
        }
        let ledger = Ledger::open(&ledger_dir, &config.ledger.origin, signing_key(&kms)?)?;
        keyring
            .public
            .insert(PUBLIC_LEDGER_VERIFIER.into(), ledger.verifier_key());
        guard.track(&dir.join(KEYRING_FILE));
        write_atomic(&dir.join(KEYRING_FILE), &keyring.to_json())?;
        let target = db_target(dir, &config, opts.database_url.as_deref())?;
        if let DbTarget::Sqlite(path) = &target {
            for p in sqlite_files(path) {
                guard.track(&p);
            }
            // SQLite creates its journal, WAL and shared-memory files with the database file's
            // mode, so a database file made 0600 here keeps all of them private.
            if !path.exists() {
                files::create_private_file(path).map_err(StoreError::io(path))?;
            }
        }
        if let (DbTarget::Postgres(url, tls), Some(owner)) = (&target, &setup.owner_url) {
            Db::migrate_postgres(owner, url, *tls).await?;
        }
        let meta = Meta::open(&target, true).await?;
        let objects_dir = Config::resolve(dir, &config.storage.objects);
        guard.track(&objects_dir);
        let objects = Objects::local(objects_dir)?;
        guard.track(&dir.join(CONFIG_FILE));
        write_atomic(&dir.join(CONFIG_FILE), config.to_toml().as_bytes())?;
        let home = Home {
            inner: Arc::new(HomeInner {
                dir: dir.to_path_buf(),
                config,
                keyring,
                kms,
                meta,
                objects,
                ledger: Arc::new(ledger),
                sink: std::sync::Mutex::new(None),
            }),
            actor,
            request: None,
            scope: Scope::all(),
        };
        home.audit(
            home.entry(
                EventType::ConfigChange,
                Zone::Clinical,
                OutcomeKind::Success,
            )
            .with_reason("deployment initialised"),
        )
        .await?;
        home.inner.ledger.checkpoint()?;
        home.make_private().map_err(StoreError::io(dir))?;
        Ok(home)
    }

    /// Make the home and what Airlock keeps in it 0700/0600: the keyring, the configuration,
    /// the SQLite files, the object store's root, and the ledger with every file in it. Returns
    /// how many modes changed.
    ///
    /// The ledger's own writer (the `airlock-ledger` crate) creates its files with the umask's
    /// mode; this is called after `init`, on `open` and after the checkpoint on `close`, so they
    /// are private at rest, and the 0700 home and ledger directories keep everyone else out in
    /// between. Objects are not walked: the store writes each one 0600 itself.
    fn make_private(&self) -> std::io::Result<usize> {
        let dir = &self.inner.dir;
        let config = &self.inner.config;
        let mut changed = 0;
        for p in [
            dir.to_path_buf(),
            dir.join(KEYRING_FILE),
            dir.join(CONFIG_FILE),
            Config::resolve(dir, &config.storage.objects),
        ] {
            changed += usize::from(files::make_private(&p)?);
        }
        if self.inner.meta.db().backend() == crate::Backend::Sqlite {
            for p in sqlite_files(&Config::resolve(dir, &config.storage.database)) {
                changed += usize::from(files::make_private(&p)?);
            }
        }
        changed += files::make_private_tree(&self.ledger_dir())?;
        Ok(changed)
    }

    /// [`Home::make_private`] for a deployment that is already running: a file that cannot be
    /// changed (another user's, say) is reported rather than refusing to open.
    fn make_private_or_warn(&self) {
        match self.make_private() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                home = %self.inner.dir.display(),
                changed = n,
                "made files of the deployment private (0600, directories 0700)"
            ),
            Err(e) => tracing::warn!(
                home = %self.inner.dir.display(),
                error = %e,
                "could not make every file of the deployment private"
            ),
        }
    }

    /// Migrate a deployment's PostgreSQL database as its owner role (`owner_url`) and grant the
    /// serving role (the user of `database_url`, else of the URL in `airlock.toml`) only what
    /// the application needs; see [`Db::migrate_postgres`]. Needs no passphrase: it touches
    /// no key and no row. Returns the migrations it applied.
    pub async fn migrate_database(
        dir: &Path,
        owner_url: &str,
        database_url: Option<&str>,
    ) -> Result<Vec<i64>, StoreError> {
        let cfg_path = dir.join(CONFIG_FILE);
        if !cfg_path.exists() {
            return Err(StoreError::MissingHome {
                path: dir.to_path_buf(),
            });
        }
        let config = Config::load(&cfg_path)?;
        match db_target(dir, &config, database_url)? {
            DbTarget::Postgres(url, tls) => Db::migrate_postgres(owner_url, &url, tls).await,
            DbTarget::Sqlite(_) => Err(StoreError::Config {
                path: cfg_path,
                reason: "this deployment keeps its metadata in SQLite, which has no owner role"
                    .into(),
            }),
        }
    }

    /// Open an existing deployment with its passphrase.
    pub async fn open(
        dir: &Path,
        passphrase: &Passphrase,
        actor: ActorId,
    ) -> Result<Home, StoreError> {
        let url = std::env::var(DATABASE_URL_ENV).ok();
        Self::open_with_database(dir, passphrase, actor, url.as_deref()).await
    }

    /// Open, connecting to the metadata database at `database_url` (a PostgreSQL URL with its
    /// credentials) instead of the credential-free one in `airlock.toml`. The two must name the
    /// same kind of database.
    pub async fn open_with_database(
        dir: &Path,
        passphrase: &Passphrase,
        actor: ActorId,
        database_url: Option<&str>,
    ) -> Result<Home, StoreError> {
        let cfg_path = dir.join(CONFIG_FILE);
        if !cfg_path.exists() {
            return Err(StoreError::MissingHome {
                path: dir.to_path_buf(),
            });
        }
        let config = Config::load(&cfg_path)?;
        let ring_path = dir.join(KEYRING_FILE);
        let ring_bytes = std::fs::read(&ring_path).map_err(StoreError::io(&ring_path))?;
        let keyring = Keyring::from_json(&ring_bytes)?;
        let kms = keyring.unlock(passphrase.as_str()?)?;
        let ledger_dir = Config::resolve(dir, &config.ledger.dir);
        let ledger = Ledger::open(&ledger_dir, &config.ledger.origin, signing_key(&kms)?)?;
        // Every checkpoint signed from here on, and the latest now: an export that cannot be
        // written refuses to open rather than leave history unpinned unnoticed.
        if let Some(export) = &config.ledger.checkpoint_export {
            ledger.export_checkpoints(&Config::resolve(dir, export))?;
        }
        let meta = Meta::open(&db_target(dir, &config, database_url)?, false).await?;
        let objects = Objects::local(Config::resolve(dir, &config.storage.objects))?;
        let home = Home {
            inner: Arc::new(HomeInner {
                dir: dir.to_path_buf(),
                config,
                keyring,
                kms,
                meta,
                objects,
                ledger: Arc::new(ledger),
                sink: std::sync::Mutex::new(None),
            }),
            actor,
            request: None,
            scope: Scope::all(),
        };
        // Deployments made before `init` set modes itself have 0644 files.
        home.make_private_or_warn();
        Ok(home)
    }

    /// The public verifier key of the ledger of the deployment at `dir` (no passphrase needed).
    pub fn verifier_key_of(dir: &Path) -> Result<String, StoreError> {
        let ring_path = dir.join(KEYRING_FILE);
        if !dir.join(CONFIG_FILE).exists() {
            return Err(StoreError::MissingHome {
                path: dir.to_path_buf(),
            });
        }
        let ring_bytes = std::fs::read(&ring_path).map_err(StoreError::io(&ring_path))?;
        let keyring = Keyring::from_json(&ring_bytes)?;
        keyring
            .public
            .get(PUBLIC_LEDGER_VERIFIER)
            .cloned()
            .ok_or_else(|| StoreError::Config {
                path: ring_path,
                reason: "no ledger verifier key".into(),
            })
    }

    /// The pseudonymisation key of the deployment at `dir`, without opening the ledger.
    pub fn pseudonym_key_of(dir: &Path, passphrase: &Passphrase) -> Result<Secret, StoreError> {
        let ring_path = dir.join(KEYRING_FILE);
        if !dir.join(CONFIG_FILE).exists() {
            return Err(StoreError::MissingHome {
                path: dir.to_path_buf(),
            });
        }
        let ring_bytes = std::fs::read(&ring_path).map_err(StoreError::io(&ring_path))?;
        let kms = Keyring::from_json(&ring_bytes)?.unlock(passphrase.as_str()?)?;
        Ok(kms.named_key(NamedKey::Pseudonym)?)
    }

    /// The checkpoint export directory configured for the deployment at `dir`
    /// (`ledger.checkpoint_export`), if any (no passphrase needed).
    pub fn checkpoint_export_of(dir: &Path) -> Result<Option<PathBuf>, StoreError> {
        let cfg_path = dir.join(CONFIG_FILE);
        if !cfg_path.exists() {
            return Err(StoreError::MissingHome {
                path: dir.to_path_buf(),
            });
        }
        let config = Config::load(&cfg_path)?;
        Ok(config
            .ledger
            .checkpoint_export
            .map(|p| Config::resolve(dir, &p)))
    }

    /// The ledger directory of the deployment at `dir` (no passphrase needed).
    pub fn ledger_dir_of(dir: &Path) -> Result<PathBuf, StoreError> {
        let cfg_path = dir.join(CONFIG_FILE);
        if !cfg_path.exists() {
            return Err(StoreError::MissingHome {
                path: dir.to_path_buf(),
            });
        }
        let config = Config::load(&cfg_path)?;
        Ok(Config::resolve(dir, &config.ledger.dir))
    }

    /// The home directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Who is acting.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// The key manager.
    pub fn kms(&self) -> &dyn KeyManager {
        &self.inner.kms
    }

    /// The audit ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The ledger directory.
    pub fn ledger_dir(&self) -> PathBuf {
        Config::resolve(&self.inner.dir, &self.inner.config.ledger.dir)
    }

    /// The ledger's verifier key (`name+keyid+key`).
    pub fn verifier_key(&self) -> String {
        self.inner.ledger.verifier_key()
    }

    /// The deployment's TLS certificate (PEM) and private key (PKCS#8 PEM), made at `init`.
    pub fn tls_identity(&self) -> Result<(String, Secret), StoreError> {
        let cert = self
            .inner
            .keyring
            .public
            .get(PUBLIC_TLS_CERT)
            .cloned()
            .ok_or_else(|| StoreError::Config {
                path: self.inner.dir.join(KEYRING_FILE),
                reason: "no TLS certificate in the keyring".into(),
            })?;
        Ok((cert, self.inner.kms.named_key(NamedKey::TlsPrivateKey)?))
    }

    /// Sign an artifact (a model version) with the deployment's Ed25519 key. The message is
    /// prefixed with [`ARTIFACT_SIGNATURE_CONTEXT`], so no artifact signature can pass for a
    /// ledger checkpoint's or the other way round.
    pub fn sign_artifact(&self, message: &[u8]) -> Result<[u8; 64], StoreError> {
        use ed25519_dalek::Signer;
        let key = signing_key(&self.inner.kms)?;
        Ok(key.sign(&artifact_message(message)).to_bytes())
    }

    /// Check a signature made by [`Home::sign_artifact`] against this deployment's public key.
    pub fn verify_artifact(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        let Ok(key) = signing_key(&self.inner.kms) else {
            return false;
        };
        key.verifying_key()
            .verify_strict(&artifact_message(message), &sig)
            .is_ok()
    }

    /// The pseudonymisation key (HMAC-SHA256).
    pub fn pseudonym_key(&self) -> Result<Secret, StoreError> {
        Ok(self.inner.kms.named_key(NamedKey::Pseudonym)?)
    }

    /// The deployment's witness cosigner (C2SP tlog-cosignature, Ed25519) under its witness
    /// name (`witness.name`, default `airlock.local/<deployment>/witness`). Its seed is
    /// HMAC-SHA256 of the ledger's signing seed with [`WITNESS_KEY_LABEL`]: the spec asks for a
    /// key of its own per cosigner, so it never signs what the log key signs, and a home needs
    /// no new keyring entry for it.
    pub fn witness_cosigner(&self) -> Result<airlock_ledger::witness::Cosigner, StoreError> {
        let seed = self.inner.kms.named_key(NamedKey::LedgerSigning)?;
        let derived = airlock_crypto::derive_key(&seed, WITNESS_KEY_LABEL)?;
        let bytes: [u8; 32] = derived.expose_secret().try_into().map_err(|_| {
            airlock_crypto::CryptoError::MissingKey {
                name: NamedKey::LedgerSigning.as_str().into(),
            }
        })?;
        let name = self.inner.config.witness.name.clone().unwrap_or_else(|| {
            format!(
                "airlock.local/{}/witness",
                self.inner.config.deployment.name
            )
        });
        airlock_ledger::witness::Cosigner::new(&name, ed25519_dalek::SigningKey::from_bytes(&bytes))
            .map_err(|e| StoreError::Config {
                path: self.inner.dir.join(CONFIG_FILE),
                reason: format!("`witness.name`: {e}"),
            })
    }

    /// The key that seals people's TOTP secrets: a named key of its own, wrapped by the master
    /// key like the others (so `keys rotate` re-wraps it). A home made before it existed has
    /// none; its secrets were sealed under a key derived from the pseudonym key, which is
    /// returned instead, so they still open.
    pub fn identity_seal_key(&self) -> Result<Secret, StoreError> {
        match self.inner.kms.named_key(NamedKey::IdentitySeal) {
            Ok(k) => Ok(k),
            Err(airlock_crypto::CryptoError::MissingKey { .. }) => Ok(airlock_crypto::derive_key(
                &self.pseudonym_key()?,
                b"airlock identity seal v1",
            )?),
            Err(e) => Err(e.into()),
        }
    }

    /// The request id this handle writes (a fresh one per entry when none was set).
    pub fn request_id(&self) -> RequestId {
        self.request.clone().unwrap_or_else(request_id)
    }

    /// A handle acting for `actor`, under `request`, seeing only `scope`'s zones.
    pub fn acting_as(&self, actor: ActorId, request: RequestId, scope: Scope) -> Home {
        Home {
            inner: Arc::clone(&self.inner),
            actor,
            request: Some(request),
            scope,
        }
    }

    /// The zones this handle may see.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The metadata database (for services that keep their own tables in it).
    pub fn db(&self) -> &Db {
        self.inner.meta.db()
    }

    /// Send this deployment's ledger entries through `sink` (a running service's writer) for
    /// as long as it lives.
    pub fn route_ledger_to(&self, sink: std::sync::Weak<dyn LedgerSink>) {
        if let Ok(mut slot) = self.inner.sink.lock() {
            *slot = Some(sink);
        }
    }

    /// Append an entry to the ledger; returns its index once it is durable.
    pub async fn audit(&self, entry: Entry) -> Result<u64, StoreError> {
        self.audit_many(vec![entry]).await
    }

    /// Append entries consecutively; returns the first one's index once all are durable.
    pub async fn audit_many(&self, entries: Vec<Entry>) -> Result<u64, StoreError> {
        let sink = self
            .inner
            .sink
            .lock()
            .ok()
            .and_then(|slot| slot.as_ref().and_then(std::sync::Weak::upgrade));
        match sink {
            Some(sink) => sink
                .append(entries)
                .await
                .map_err(|detail| StoreError::LedgerWriter { detail }),
            None => {
                // An fsync: not on the async threads.
                let ledger = Arc::clone(&self.inner.ledger);
                tokio::task::spawn_blocking(move || ledger.append_many(&entries))
                    .await
                    .map_err(|e| StoreError::LedgerWriter {
                        detail: e.to_string(),
                    })?
                    .map_err(StoreError::from)
            }
        }
    }

    /// A ledger entry by this handle's actor under its request id, now: the one way entries
    /// are started outside the service (whose `Caller` adds purpose and trace).
    pub fn entry(&self, event: EventType, zone: Zone, outcome: OutcomeKind) -> Entry {
        Entry::new(
            Timestamp::now(),
            self.actor.clone(),
            event,
            zone,
            self.request_id(),
            outcome,
        )
    }

    /// Write a new dataset version through a gate. The only path by which data enters a zone.
    ///
    /// Data from outside Airlock (the ingest gate) goes to the clinical zone only: anywhere else
    /// it is an attested import, which [`Home::import_attested`] scans and records, and lineage
    /// parameters named `attestation.*` are that path's alone.
    pub async fn write_version(&self, nv: NewVersion) -> Result<DatasetVersion, StoreError> {
        let misplaced = if nv.lineage.gate == Gate::Ingest && nv.zone != Zone::Clinical {
            Some(NEEDS_ATTESTATION)
        } else if Attestation::in_params(&nv.lineage.transform.params) {
            Some("only an attested import records an attestation")
        } else {
            None
        };
        if let Some(reason) = misplaced {
            let e = StoreError::Attestation {
                zone: nv.zone,
                classification: nv.classification,
                reason,
            };
            self.audit(
                self.entry(EventType::PolicyDecision, nv.zone, OutcomeKind::Denied)
                    .with_resource(nv.dataset.to_string())
                    .with_reason(e.to_string()),
            )
            .await?;
            return Err(e);
        }
        self.write_version_as(nv, None).await
    }

    /// [`Home::write_version`]'s work, for an attested import too.
    async fn write_version_as(
        &self,
        nv: NewVersion,
        attestation: Option<&Attestation>,
    ) -> Result<DatasetVersion, StoreError> {
        let gate = nv.lineage.gate;
        let refusal = match nv.source {
            None if gate == Gate::Ingest => zone::check_residence(nv.zone, nv.classification),
            None => zone::check_transfer(
                (nv.zone, nv.classification),
                (nv.zone, nv.classification),
                Some(gate),
            ),
            Some(src) => zone::check_transfer(src, (nv.zone, nv.classification), Some(gate)),
        };
        if let Err(e) = refusal {
            self.audit(
                self.entry(EventType::PolicyDecision, nv.zone, OutcomeKind::Denied)
                    .with_resource(nv.dataset.to_string())
                    .with_reason(e.to_string()),
            )
            .await?;
            return Err(e.into());
        }
        let mut files = Vec::with_capacity(nv.files.len());
        let (mut bytes, mut records) = (0u64, 0u64);
        let mut formats = BTreeSet::new();
        for f in &nv.files {
            let object = self
                .inner
                .objects
                .put(
                    &self.inner.kms,
                    &self.inner.meta,
                    nv.zone,
                    nv.classification,
                    &f.bytes,
                )
                .await?;
            bytes += object.size;
            records += f.records;
            formats.insert(f.format.clone());
            files.push(ManifestFile {
                name: f.name.clone(),
                format: f.format.clone(),
                object,
                records: f.records,
            });
        }
        let manifest = Manifest { v: 1, files };
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
        let mobj = self
            .inner
            .objects
            .put(
                &self.inner.kms,
                &self.inner.meta,
                nv.zone,
                nv.classification,
                &manifest_bytes,
            )
            .await?;
        // Read back every object the version names before recording it: a version is complete
        // only when each of its objects opens under its recorded key to its content hash.
        for obj in manifest.files.iter().map(|f| &f.object).chain([&mobj]) {
            self.inner
                .objects
                .verify(&self.inner.kms, &self.inner.meta, obj)
                .await?;
        }
        let mut tx = self.inner.meta.begin_write(&self.scope).await?;
        match Meta::dataset_home(&mut tx, &nv.dataset).await? {
            None => {
                Meta::insert_dataset(
                    &mut tx,
                    &nv.dataset,
                    nv.zone,
                    nv.classification,
                    self.actor.as_str(),
                )
                .await?
            }
            Some((z, c)) if z == nv.zone && c == nv.classification => {}
            Some((zone, classification)) => {
                return Err(StoreError::DatasetMismatch {
                    name: nv.dataset.to_string(),
                    zone,
                    classification,
                });
            }
        }
        let version = Meta::next_version(&mut tx, &nv.dataset).await?;
        let format = match formats.len() {
            1 => formats.into_iter().next().unwrap_or_default(),
            _ => "mixed".to_string(),
        };
        let dv = DatasetVersion {
            dataset: nv.dataset.clone(),
            version,
            zone: nv.zone,
            classification: nv.classification,
            format,
            manifest_hash: mobj.hash,
            objects: manifest.files.len() as u64,
            bytes,
            records,
            lineage: nv.lineage,
            created_at: chrono::Utc::now().to_rfc3339(),
            ledger_index: None,
        };
        Meta::insert_version(&mut tx, &dv).await?;
        // The ledger entry is durable before the version becomes visible. It carries what the
        // version's provenance rests on (the hashes of its lineage record and manifest, its
        // source system), so an edit to the metadata shows when the lineage is read.
        let mut entry = self
            .entry(
                if gate == Gate::Ingest {
                    EventType::Ingest
                } else {
                    EventType::DatasetCreate
                },
                nv.zone,
                OutcomeKind::Success,
            )
            .with_resource(dv.reference().to_string());
        for p in &dv.lineage.parents {
            entry = entry.with_resource(p.to_string());
        }
        entry = entry
            .with_resource(format!("{MANIFEST_PREFIX}{}", dv.manifest_hash.to_hex()))
            .with_resource(format!(
                "{LINEAGE_PREFIX}{}",
                dv.lineage.record_hash().to_hex()
            ));
        if let Some(s) = &dv.lineage.source_system {
            entry = entry.with_resource(format!("source-system:{}", ledger_text(s)));
        }
        let mut reason = format!(
            "gate {gate}; {} as {}; {} files, {} records",
            dv.zone, dv.classification, dv.objects, dv.records
        );
        if let Some(a) = attestation {
            reason.push_str(&format!("; {a}"));
        }
        let index = self.audit(entry.with_reason(reason)).await?;
        Meta::set_ledger_index(&mut tx, &dv, index).await?;
        tx.commit().await?;
        Ok(DatasetVersion {
            ledger_index: Some(index),
            ..dv
        })
    }

    /// Ingest files from a source system into the clinical zone. Every file is validated
    /// before anything is stored. Any other zone takes [`Home::import_attested`]. A failed
    /// ingest is a ledger entry too, naming the file by its index and the class of failure.
    pub async fn ingest(
        &self,
        req: &IngestRequest,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<DatasetVersion, StoreError> {
        self.ingest_as(req, None, progress).await
    }

    /// Import de-identified, synthetic or DP data from outside Airlock into a zone other than
    /// clinical, on `attestation`. Every text value of every file is scanned before anything is
    /// stored (see the `scan` module): a direct identifier refuses the whole import with
    /// [`StoreError::Identifier`], which names the file's index, the position and the kind of
    /// identifier, never the value. The attestation is kept in the version's lineage
    /// ([`Lineage::attestation`]) and in the ledger entry.
    ///
    /// Who may attest (the privacy officer) is the caller's policy: the store has no roles.
    pub async fn import_attested(
        &self,
        req: &IngestRequest,
        attestation: &Attestation,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<DatasetVersion, StoreError> {
        self.ingest_as(req, Some(attestation), progress).await
    }

    async fn ingest_as(
        &self,
        req: &IngestRequest,
        attestation: Option<&Attestation>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<DatasetVersion, StoreError> {
        let mut at = None;
        let result = self.ingest_files(req, attestation, progress, &mut at).await;
        if let Err(e) = &result {
            let mut reason = String::from("ingest failed");
            if let Some(i) = at {
                reason.push_str(&format!(": `files[{i}]`"));
            }
            match e {
                StoreError::Identifier { position, kind, .. } => {
                    reason.push_str(&format!(" {position}: {kind} found"));
                }
                _ => reason.push_str(&format!(": {}", e.class())),
            }
            if let Some(a) = attestation {
                reason.push_str(&format!("; {a}"));
            }
            self.audit(
                self.entry(EventType::Ingest, req.zone, OutcomeKind::Failure)
                    .with_resource(req.dataset.to_string())
                    .with_reason(reason),
            )
            .await?;
        }
        result
    }

    /// Read, validate (and for an attested import, scan) every file, then write the version;
    /// `at` names the file being worked on, for the failure entry.
    async fn ingest_files(
        &self,
        req: &IngestRequest,
        attestation: Option<&Attestation>,
        progress: &mut dyn FnMut(u64, u64),
        at: &mut Option<usize>,
    ) -> Result<DatasetVersion, StoreError> {
        zone::check_residence(req.zone, req.classification)?;
        check_import(req.zone, req.classification, attestation.is_some())?;
        check_source_system(&req.source_system)?;
        let total = req.files.len() as u64;
        let mut files = Vec::with_capacity(req.files.len());
        for (i, path) in req.files.iter().enumerate() {
            *at = Some(i);
            let bytes = std::fs::read(path).map_err(StoreError::io(path))?;
            let head = bytes.get(..bytes.len().min(4096)).unwrap_or(&bytes);
            let format = airlock_formats::sniff(path, head).ok_or_else(|| StoreError::Input {
                path: path.clone(),
                reason: "not a FHIR R4 JSON/NDJSON, HL7 v2 or CSV file".into(),
            })?;
            let summary =
                airlock_formats::validate(format, &bytes).map_err(|e| StoreError::Input {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if attestation.is_some() {
                scan::scan(format, &bytes).map_err(|r| match r {
                    Refusal::Identifier { position, kind } => StoreError::Identifier {
                        file: i,
                        position,
                        kind,
                    },
                    Refusal::Unreadable { reason } => StoreError::Input {
                        path: path.clone(),
                        reason,
                    },
                })?;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("file-{i}"));
            files.push(NewFile {
                name,
                format: format.name().to_string(),
                records: summary.records,
                bytes,
            });
            progress(i as u64 + 1, total);
        }
        *at = None;
        let mut params = BTreeMap::new();
        if let Some(a) = attestation {
            a.to_params(&mut params);
        }
        let nv = NewVersion {
            dataset: req.dataset.clone(),
            zone: req.zone,
            classification: req.classification,
            source: None,
            files,
            lineage: Lineage {
                source_system: Some(req.source_system.clone()),
                extracted_at: chrono::Utc::now().to_rfc3339(),
                triggered_by: self.actor.clone(),
                parents: Vec::new(),
                gate: Gate::Ingest,
                transform: Transform {
                    name: if attestation.is_some() {
                        "attested-import"
                    } else {
                        "ingest"
                    }
                    .into(),
                    config_hash: None,
                    params,
                },
                airlock_version: AIRLOCK_VERSION.into(),
            },
        };
        self.write_version_as(nv, attestation).await
    }

    /// Every dataset.
    pub async fn datasets(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        self.inner.meta.datasets(&self.scope).await
    }

    /// One version (the latest when `version` is `None`). Parents outside this handle's zones
    /// are shown as [`DatasetName::withheld`] placeholders.
    pub async fn version(
        &self,
        name: &DatasetName,
        version: Option<DatasetVersionId>,
    ) -> Result<DatasetVersion, StoreError> {
        let mut v = self.inner.meta.version(&self.scope, name, version).await?;
        if self.scope != Scope::all() {
            let mut hidden = BTreeSet::new();
            for p in &v.lineage.parents {
                if !self.inner.meta.visible(&self.scope, &p.dataset).await? {
                    hidden.insert(p.clone());
                }
            }
            withhold(&mut v, &hidden);
        }
        Ok(v)
    }

    /// All versions of a dataset.
    pub async fn versions(&self, name: &DatasetName) -> Result<Vec<VersionRef>, StoreError> {
        self.inner.meta.versions(&self.scope, name).await
    }

    /// The version and all its ancestors, breadth first.
    ///
    /// Each version's lineage record and manifest hash are checked against the ledger entry
    /// that recorded it: an edit in the database is a [`StoreError::Provenance`] naming the
    /// version. A parent outside this handle's zones is not shown, and is named only by a
    /// [`DatasetName::withheld`] placeholder in its child's record.
    pub async fn lineage(
        &self,
        name: &DatasetName,
        version: Option<DatasetVersionId>,
    ) -> Result<Vec<DatasetVersion>, StoreError> {
        let first = self.inner.meta.version(&self.scope, name, version).await?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        let mut queue = VecDeque::from([first]);
        while let Some(v) = queue.pop_front() {
            if !seen.insert(v.reference()) {
                continue;
            }
            for p in &v.lineage.parents {
                match self
                    .inner
                    .meta
                    .version(&self.scope, &p.dataset, Some(p.version))
                    .await
                {
                    Ok(pv) => queue.push_back(pv),
                    Err(StoreError::NotFound { .. }) if self.scope != Scope::all() => {
                        hidden.insert(p.clone());
                    }
                    Err(e) => return Err(e),
                }
            }
            out.push(v);
        }
        // Checked as stored, before anything is withheld from the caller.
        self.check_provenance(&out)?;
        for v in &mut out {
            withhold(v, &hidden);
        }
        Ok(out)
    }

    /// Check each version against the ledger entry that recorded it.
    fn check_provenance(&self, versions: &[DatasetVersion]) -> Result<(), StoreError> {
        let mismatch = |v: &DatasetVersion, index, reason| StoreError::Provenance {
            version: v.reference().to_string(),
            index,
            reason,
        };
        let mut unindexed = Vec::new();
        let size = self.inner.ledger.size()?;
        for v in versions {
            let Some(index) = v.ledger_index else {
                unindexed.push(v);
                continue;
            };
            if index >= size {
                return Err(mismatch(
                    v,
                    Some(index),
                    "its ledger entry is past the ledger's end",
                ));
            }
            let entry = Entry::parse(&self.inner.ledger.entry_bytes(index)?)?;
            match recorded(v, &entry) {
                Recorded::Matches => {}
                // Only an entry that carries the hashes is ever indexed.
                Recorded::Legacy => {
                    return Err(mismatch(
                        v,
                        Some(index),
                        "its ledger entry carries no hashes",
                    ));
                }
                Recorded::Differs(reason) => return Err(mismatch(v, Some(index), reason)),
            }
        }
        if unindexed.is_empty() {
            return Ok(());
        }
        // Versions written before the index was kept (or whose index was removed): the
        // entries that name them, found by reading the whole ledger.
        let wanted: BTreeSet<String> = unindexed
            .iter()
            .map(|v| v.reference().to_string())
            .collect();
        let mut found: BTreeMap<String, Vec<(u64, Entry)>> = BTreeMap::new();
        for item in airlock_ledger::search::read_entries(&self.ledger_dir())? {
            let (i, e) = item?;
            if let Some(r) = e.resources.first()
                && wanted.contains(r)
            {
                found.entry(r.clone()).or_default().push((i, e));
            }
        }
        for v in unindexed {
            let verdicts: Vec<(u64, Recorded)> = found
                .get(&v.reference().to_string())
                .into_iter()
                .flatten()
                .filter(|(_, e)| creates_version(e))
                .map(|(i, e)| (*i, recorded(v, e)))
                .collect();
            if verdicts.iter().any(|(_, r)| *r == Recorded::Matches) {
                continue;
            }
            if let Some((i, Recorded::Differs(reason))) = verdicts
                .iter()
                .find(|(_, r)| matches!(r, Recorded::Differs(_)))
            {
                return Err(mismatch(v, Some(*i), reason));
            }
            if verdicts.is_empty() {
                return Err(mismatch(v, None, "no ledger entry records it"));
            }
            // Only entries from before they carried hashes: nothing to check against.
        }
        Ok(())
    }

    fn check_access(&self, v: &DatasetVersion, access: Access) -> Result<(), StoreError> {
        match access {
            Access::Zone(z) => {
                zone::check_read(z, v.classification)?;
                if z != v.zone {
                    return Err(airlock_types::ZoneError::NoGate {
                        from: v.zone,
                        to: z,
                    }
                    .into());
                }
            }
            Access::Gate(g) => zone::check_gate_source(g, v.zone)?,
        }
        Ok(())
    }

    /// Decrypt a version's manifest and files, if the zone rules allow `access`.
    pub async fn read_version(
        &self,
        v: &DatasetVersion,
        access: Access,
        purpose: Option<Purpose>,
    ) -> Result<Vec<(ManifestFile, Vec<u8>)>, StoreError> {
        self.admit(v, access).await?;
        let mref = crate::ObjectRef {
            zone: v.zone,
            classification: v.classification,
            hash: v.manifest_hash,
            size: 0,
        };
        let mbytes = self
            .inner
            .objects
            .get(&self.inner.kms, &self.inner.meta, &mref)
            .await?;
        let manifest: Manifest =
            serde_json::from_slice(&mbytes).map_err(|_| StoreError::Corrupt {
                hash: v.manifest_hash.short(),
                reason: "the manifest is not valid".into(),
            })?;
        let mut out = Vec::with_capacity(manifest.files.len());
        for f in manifest.files {
            if f.object.zone != v.zone || f.object.classification != v.classification {
                return Err(StoreError::Corrupt {
                    hash: f.object.hash.short(),
                    reason: "a manifest entry points outside its version's zone".into(),
                });
            }
            let bytes = self
                .inner
                .objects
                .get(&self.inner.kms, &self.inner.meta, &f.object)
                .await?;
            out.push((f, bytes));
        }
        let mut entry = self
            .entry(EventType::Access, v.zone, OutcomeKind::Success)
            .with_resource(v.reference().to_string());
        if let Some(p) = purpose {
            entry = entry.with_purpose(p);
        }
        if let Access::Gate(g) = access {
            entry = entry.with_reason(format!("read by the {g} gate"));
        }
        self.audit(entry).await?;
        Ok(out)
    }

    /// The zone rules' answer for reading `v` with `access`; a refusal is recorded.
    async fn admit(&self, v: &DatasetVersion, access: Access) -> Result<(), StoreError> {
        if let Err(e) = self.check_access(v, access) {
            self.audit(
                self.entry(EventType::PolicyDecision, v.zone, OutcomeKind::Denied)
                    .with_resource(v.reference().to_string())
                    .with_reason(e.to_string()),
            )
            .await?;
            return Err(e);
        }
        Ok(())
    }

    /// Decrypt a version into `out_dir`, allowed only where the zone rules allow a reader in
    /// `zone`; identified data needs a purpose of use. Files are written 0600 (atomically), a
    /// missing `out_dir` is created 0700, and identified data is refused an existing `out_dir`
    /// that other users can reach ([`StoreError::Permissions`]).
    pub async fn export(
        &self,
        v: &DatasetVersion,
        zone: Zone,
        purpose: Option<Purpose>,
        out_dir: &Path,
    ) -> Result<Vec<PathBuf>, StoreError> {
        // The zone's refusal first: no purpose of use would change it, so asking for one
        // would send the user the wrong way.
        self.admit(v, Access::Zone(zone)).await?;
        if v.classification.is_identified() && purpose.is_none() {
            return Err(StoreError::Config {
                path: PathBuf::from("--purpose"),
                reason: format!("exporting {} data needs a purpose of use", v.classification),
            });
        }
        // Decrypted identified data goes only where no one else can read it. A directory that
        // exists and is open to others is refused rather than changed: it is the caller's, and
        // may be shared on purpose. De-identified and synthetic data may go there.
        if v.classification.is_identified()
            && let Ok(md) = std::fs::metadata(out_dir)
            && files::open_to_others(&md)
        {
            return Err(StoreError::Permissions {
                path: out_dir.to_path_buf(),
                mode: std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777,
            });
        }
        let files = self.read_version(v, Access::Zone(zone), purpose).await?;
        if !out_dir.is_dir() {
            if let Some(parent) = out_dir.parent() {
                std::fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
            }
            files::create_private_dir(out_dir).map_err(StoreError::io(out_dir))?;
        }
        let mut written = Vec::with_capacity(files.len());
        let mut used = BTreeSet::new();
        for (i, (f, bytes)) in files.into_iter().enumerate() {
            // Only the final component: a manifest can never write outside `out_dir`.
            let base = Path::new(&f.name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .unwrap_or_else(|| format!("file-{i}"));
            let name = if used.insert(base.clone()) {
                base
            } else {
                format!("{i}-{base}")
            };
            let path = out_dir.join(&name);
            write_atomic(&path, &bytes)?;
            written.push(path);
        }
        let mut entry = self
            .entry(EventType::Export, v.zone, OutcomeKind::Success)
            .with_resource(v.reference().to_string())
            .with_reason(format!("{} files decrypted to a local path", written.len()));
        if let Some(p) = purpose {
            entry = entry.with_purpose(p);
        }
        self.audit(entry).await?;
        Ok(written)
    }

    /// Re-wrap every data key under a new master key (optionally with a new passphrase),
    /// without rewriting any object.
    pub async fn rotate_keys(
        &mut self,
        new_passphrase: &Passphrase,
        kdf: KdfParams,
    ) -> Result<RotationSummary, StoreError> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| StoreError::Config {
            path: PathBuf::from("keyring.json"),
            reason: "key rotation needs the only open handle on the deployment".into(),
        })?;
        let old_key_id = inner.kms.current_kek_id().to_string();
        let plan = inner
            .keyring
            .rotate(&inner.kms, new_passphrase.as_str()?, kdf)?;
        let ring_path = inner.dir.join(KEYRING_FILE);
        // 1. A keyring that holds both master keys: a crash from here on loses nothing.
        write_atomic(&ring_path, &plan.keyring_during.to_json())?;
        // 2. Re-wrap every data key in one transaction.
        let keys = inner.meta.all_object_keys().await?;
        let mut rewrapped = Vec::with_capacity(keys.len());
        for (obj, wk) in keys {
            let aad = airlock_crypto::Binding {
                zone: obj.zone,
                classification: obj.classification,
                hash: obj.hash,
            }
            .key_aad();
            rewrapped.push((obj, plan.manager.rewrap(&wk, &aad)?));
        }
        inner.meta.replace_keys(&rewrapped).await?;
        // 3. Only the new master key remains.
        write_atomic(&ring_path, &plan.keyring_after.to_json())?;
        let mut manager = plan.manager;
        manager.retire_old_masters();
        inner.kms = manager;
        inner.keyring = plan.keyring_after;
        let new_key_id = self.inner.kms.current_kek_id().to_string();
        self.audit(
            self.entry(EventType::KeyRotation, Zone::Clinical, OutcomeKind::Success)
                .with_reason(format!(
                    "master key {old_key_id} replaced by {new_key_id}; {} data keys re-wrapped",
                    rewrapped.len()
                )),
        )
        .await?;
        Ok(RotationSummary {
            old_key_id,
            new_key_id,
            rewrapped: rewrapped.len(),
        })
    }

    /// Replace the deployment's own TLS certificate and key with a fresh pair valid for a
    /// year (`airlock keys renew-tls`); servers pick it up at their next start. Returns the
    /// new certificate (public).
    pub async fn renew_tls_identity(&mut self) -> Result<String, StoreError> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| StoreError::Config {
            path: PathBuf::from("keyring.json"),
            reason: "renewing the certificate needs the only open handle on the deployment".into(),
        })?;
        let tls = airlock_crypto::generate_tls_identity(&["localhost", "127.0.0.1"])?;
        let mut keyring = inner.keyring.clone();
        keyring.put_named(&mut inner.kms, NamedKey::TlsPrivateKey, tls.key_pem)?;
        keyring
            .public
            .insert(PUBLIC_TLS_CERT.into(), tls.cert_pem.clone());
        write_atomic(&inner.dir.join(KEYRING_FILE), &keyring.to_json())?;
        inner.keyring = keyring;
        self.audit(
            self.entry(EventType::KeyRotation, Zone::Clinical, OutcomeKind::Success)
                .with_resource("tls-certificate")
                .with_reason(format!(
                    "TLS certificate renewed for {} days (sha256 {})",
                    airlock_crypto::TLS_VALID_DAYS,
                    airlock_crypto::sha256(tls.cert_pem.as_bytes()).to_hex()
                )),
        )
        .await?;
        Ok(tls.cert_pem)
    }

    /// Store a named encrypted blob in a zone (replacing the previous one of that name).
    pub async fn put_blob(
        &self,
        name: &str,
        zone: Zone,
        classification: airlock_types::Classification,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let obj = self
            .inner
            .objects
            .put(
                &self.inner.kms,
                &self.inner.meta,
                zone,
                classification,
                bytes,
            )
            .await?;
        self.inner.meta.set_blob(name, &obj).await
    }

    /// Read a named blob, if a reader in `zone` may.
    pub async fn blob(&self, name: &str, zone: Zone) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(obj) = self.inner.meta.blob(&self.scope, name).await? else {
            return Ok(None);
        };
        zone::check_read(zone, obj.classification)?;
        if obj.zone != zone {
            return Err(airlock_types::ZoneError::NoGate {
                from: obj.zone,
                to: zone,
            }
            .into());
        }
        Ok(Some(
            self.inner
                .objects
                .get(&self.inner.kms, &self.inner.meta, &obj)
                .await?,
        ))
    }

    /// Erase named blobs for good (the end of a retention period) in the caller's transaction,
    /// so its own rows go in the same commit: each name is forgotten and its object's data key
    /// destroyed (crypto-shredding: the ciphertext, wherever a copy lies, no longer opens with
    /// this deployment's metadata). After the commit, [`Home::remove_erased`] deletes the
    /// ciphertext itself.
    pub async fn erase_blobs(
        &self,
        tx: &mut Tx,
        names: &[String],
    ) -> Result<Vec<ObjectRef>, StoreError> {
        let mut erased = Vec::with_capacity(names.len());
        for name in names {
            erased.extend(crate::meta::erase_blob(tx, name).await?);
        }
        Ok(erased)
    }

    /// Delete the ciphertext of objects [`Home::erase_blobs`] erased (a crash before this leaves
    /// ciphertext no key opens; it is deleted by nothing else, and harms nothing).
    pub async fn remove_erased(&self, objects: &[ObjectRef]) -> Result<(), StoreError> {
        for obj in objects {
            self.inner.objects.remove(obj).await?;
        }
        Ok(())
    }

    /// Write a signed checkpoint and close the metadata store.
    pub async fn close(self) -> Result<(), StoreError> {
        self.inner.ledger.checkpoint()?;
        self.inner.meta.close().await;
        // The checkpoint may have written new tiles.
        self.make_private_or_warn();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_danger_override_comes_from_the_configuration() {
        let dir = Path::new("/nonexistent");
        let mut config = Config::new("t");
        config.storage.database = "postgres://airlock@db.example.org/airlock".into();
        let tls = |c: &Config, url: Option<&str>| match db_target(dir, c, url) {
            Ok(DbTarget::Postgres(_, tls)) => Some(tls),
            _ => None,
        };
        assert_eq!(tls(&config, None), Some(DatabaseTls::VerifyFull));
        config.storage.danger_database_without_verified_tls = true;
        assert_eq!(
            tls(
                &config,
                Some("postgres://airlock:pw@db.example.org/airlock")
            ),
            Some(DatabaseTls::DangerUnverified)
        );
        // Written to airlock.toml only when set, and read back.
        let text = config.to_toml();
        assert!(
            text.contains("danger_database_without_verified_tls = true"),
            "{text}"
        );
        config.storage.danger_database_without_verified_tls = false;
        assert!(!config.to_toml().contains("danger"));
    }
}
