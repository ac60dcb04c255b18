//! The deployment home: `init`, `open`, and every operation that touches data.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_crypto::{KdfParams, KeyManager, Keyring, LocalKeyManager, NamedKey, Secret};
use airlock_ledger::{Entry, EventType, Ledger, OutcomeKind, Timestamp};
use airlock_types::{ActorId, DatasetName, DatasetVersionId, Gate, Purpose, RequestId, Zone, zone};

use crate::config::Config;
use crate::datasets::{
    Access, DatasetSummary, DatasetVersion, IngestRequest, Lineage, Manifest, ManifestFile,
    NewFile, NewVersion, Transform, VersionRef,
};
use crate::files::{self, write_atomic};
use crate::meta::{Db, DbTarget, Meta, Scope, is_postgres_url};
use crate::objects::Objects;
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

/// Where the metadata lives: the config names it (without credentials); an explicit URL, which
/// may carry credentials, must name the same kind of database.
fn db_target(dir: &Path, config: &Config, url: Option<&str>) -> Result<DbTarget, StoreError> {
    let configured = &config.storage.database;
    match (is_postgres_url(configured), url) {
        (true, Some(u)) if is_postgres_url(u) => Ok(DbTarget::Postgres(u.to_string())),
        (true, None) => Ok(DbTarget::Postgres(configured.clone())),
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
    ledger: Ledger,
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

impl Home {
    /// Create a deployment in `dir` (which must not hold one).
    ///
    /// The home is made 0700 and everything in it 0600 (directories 0700), whatever the umask.
    /// An `init` that fails removes what it made: the whole directory when it created it, or
    /// else the files and directories it added (and the directory's mode is restored). A
    /// PostgreSQL database keeps the tables its migrations created; they are empty, and a new
    /// `init` migrates over them.
    pub async fn init(
        dir: &Path,
        passphrase: &Passphrase,
        opts: &InitOptions,
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
        let mut guard = InitGuard::begin(dir)?;
        let home = Self::init_in(dir, passphrase, opts, actor, &mut guard).await?;
        guard.disarm();
        Ok(home)
    }

    /// [`Home::init`]'s work, in a directory that exists and is 0700; `guard` is told of every
    /// path before it is created.
    async fn init_in(
        dir: &Path,
        passphrase: &Passphrase,
        opts: &InitOptions,
        actor: ActorId,
        guard: &mut InitGuard,
    ) -> Result<Home, StoreError> {
        let mut config = Config::new(&opts.name);
        if let Some(url) = &opts.database_url {
            config.storage.database = without_password(url);
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
                ledger,
            }),
            actor,
            request: None,
            scope: Scope::all(),
        };
        home.audit(
            Entry::new(
                Timestamp::now(),
                home.actor.clone(),
                EventType::ConfigChange,
                Zone::Clinical,
                request_id(),
                OutcomeKind::Success,
            )
            .with_reason("deployment initialised"),
        )?;
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
                ledger,
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

    /// Append an entry to the ledger; returns once it is durable.
    pub fn audit(&self, entry: Entry) -> Result<u64, StoreError> {
        Ok(self.inner.ledger.append(&entry)?)
    }

    fn entry(&self, event: EventType, zone: Zone, outcome: OutcomeKind) -> Entry {
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
    pub async fn write_version(&self, nv: NewVersion) -> Result<DatasetVersion, StoreError> {
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
            )?;
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
        };
        Meta::insert_version(&mut tx, &dv).await?;
        // The ledger entry is durable before the version becomes visible.
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
            .with_resource(dv.reference().to_string())
            .with_reason(format!(
                "gate {gate}; {} files, {} records",
                dv.objects, dv.records
            ));
        for p in &dv.lineage.parents {
            entry = entry.with_resource(p.to_string());
        }
        self.audit(entry)?;
        tx.commit().await?;
        Ok(dv)
    }

    /// Ingest files from a source system. Every file is validated before anything is stored.
    pub async fn ingest(
        &self,
        req: &IngestRequest,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<DatasetVersion, StoreError> {
        zone::check_residence(req.zone, req.classification)?;
        let total = req.files.len() as u64;
        let mut files = Vec::with_capacity(req.files.len());
        for (i, path) in req.files.iter().enumerate() {
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
                    name: "ingest".into(),
                    config_hash: None,
                    params: Default::default(),
                },
                airlock_version: AIRLOCK_VERSION.into(),
            },
        };
        self.write_version(nv).await
    }

    /// Every dataset.
    pub async fn datasets(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        self.inner.meta.datasets(&self.scope).await
    }

    /// One version (the latest when `version` is `None`).
    pub async fn version(
        &self,
        name: &DatasetName,
        version: Option<DatasetVersionId>,
    ) -> Result<DatasetVersion, StoreError> {
        self.inner.meta.version(&self.scope, name, version).await
    }

    /// All versions of a dataset.
    pub async fn versions(&self, name: &DatasetName) -> Result<Vec<VersionRef>, StoreError> {
        self.inner.meta.versions(&self.scope, name).await
    }

    /// The version and all its ancestors, breadth first.
    pub async fn lineage(
        &self,
        name: &DatasetName,
        version: Option<DatasetVersionId>,
    ) -> Result<Vec<DatasetVersion>, StoreError> {
        let first = self.version(name, version).await?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([first]);
        while let Some(v) = queue.pop_front() {
            if !seen.insert(v.reference()) {
                continue;
            }
            for p in &v.lineage.parents {
                // A parent outside this handle's zones stays named in the child's lineage
                // record, but its details are not shown.
                match self.version(&p.dataset, Some(p.version)).await {
                    Ok(pv) => queue.push_back(pv),
                    Err(StoreError::NotFound { .. }) if self.scope != Scope::all() => {}
                    Err(e) => return Err(e),
                }
            }
            out.push(v);
        }
        Ok(out)
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
        if let Err(e) = self.check_access(v, access) {
            self.audit(
                self.entry(EventType::PolicyDecision, v.zone, OutcomeKind::Denied)
                    .with_resource(v.reference().to_string())
                    .with_reason(e.to_string()),
            )?;
            return Err(e);
        }
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
        self.audit(entry)?;
        Ok(out)
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
        self.audit(entry)?;
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
        )?;
        Ok(RotationSummary {
            old_key_id,
            new_key_id,
            rewrapped: rewrapped.len(),
        })
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

    /// Write a signed checkpoint and close the metadata store.
    pub async fn close(self) -> Result<(), StoreError> {
        self.inner.ledger.checkpoint()?;
        self.inner.meta.close().await;
        // The checkpoint may have written new tiles.
        self.make_private_or_warn();
        Ok(())
    }
}
