//! `init`, `ingest`, `datasets`, `export`, `keys`: the deployment home.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock_crypto::KdfParams;
use airlock_store::{
    Attestation, AttestationBasis, AttestationReference, DatabaseSetup, Home, IngestRequest,
    InitOptions, Passphrase, parse_version_spec,
};
use airlock_types::{ActorId, Classification, DatasetName, Purpose, Zone};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// Where the deployment is and how to unlock it.
#[derive(Debug, Clone, Args)]
pub struct HomeArgs {
    /// The deployment's home directory (required; before or after a subcommand).
    #[arg(long = "home", env = "AIRLOCK_HOME", global = true)]
    pub home_dir: Option<PathBuf>,
    /// A file holding the passphrase (else the AIRLOCK_PASSPHRASE environment variable).
    #[arg(long, global = true)]
    pub passphrase_file: Option<PathBuf>,
    /// On whose behalf the operator acts (recorded with the operator, never instead of them).
    #[arg(long, env = "AIRLOCK_ACTOR", global = true)]
    pub actor: Option<String>,
}

impl HomeArgs {
    /// The home directory. Optional to the parser (options that may follow a subcommand are
    /// global, and clap cannot require a global one), required here.
    pub fn home(&self) -> anyhow::Result<&Path> {
        self.home_dir
            .as_deref()
            .context("the deployment's home is required: --home DIR (or AIRLOCK_HOME)")
    }

    /// The passphrase from the file or the environment.
    pub fn passphrase(&self) -> anyhow::Result<Passphrase> {
        read_passphrase(self.passphrase_file.as_deref())
    }

    /// The acting identity: the local operator (see [`local_actor`]).
    pub fn actor(&self) -> anyhow::Result<ActorId> {
        local_actor(self.actor.as_deref())
    }

    /// Open the deployment.
    pub async fn open(&self) -> anyhow::Result<Home> {
        Ok(Home::open(self.home()?, &self.passphrase()?, self.actor()?).await?)
    }
}

/// Who the ledger records for a command run with the passphrase: the operating-system user
/// and host (`operator:<user>@<host>`), whatever the command line claims. The passphrase is
/// root, so a name given with `--actor` (or `AIRLOCK_ACTOR`) is recorded as "on behalf of"
/// (`operator:<user>@<host>:<name>`), never as the actor itself, and the registry counts every
/// `operator:` principal as one person for quorums and self-approval.
pub fn local_actor(on_behalf_of: Option<&str>) -> anyhow::Result<ActorId> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect()
    };
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .map_or_else(|| "unknown".to_string(), |u| clean(&u));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| clean(h.trim()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let mut id = format!("operator:{user}@{host}");
    if let Some(name) = on_behalf_of.filter(|n| !n.is_empty()) {
        let name = ActorId::new(name.to_string()).context("`--actor`")?;
        id.push(':');
        id.push_str(name.as_str());
    }
    ActorId::new(id.chars().take(128).collect::<String>()).context("the operator's identity")
}

/// Read the passphrase from a file (first line) or `AIRLOCK_PASSPHRASE`.
pub fn read_passphrase(file: Option<&Path>) -> anyhow::Result<Passphrase> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the passphrase file `{}`", f.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        return Ok(Passphrase::new(line));
    }
    match std::env::var("AIRLOCK_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Ok(Passphrase::new(p)),
        _ => bail!("no passphrase: set AIRLOCK_PASSPHRASE or pass `--passphrase-file FILE`"),
    }
}

/// Run async work on a runtime.
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

/// `airlock init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// The deployment's short name.
    #[arg(long, default_value = "airlock")]
    name: String,
    /// Keep the metadata in PostgreSQL (`postgres://user:password@host/db`) instead of the
    /// embedded SQLite file. The password is used to connect and never written to disk.
    #[arg(long, env = "AIRLOCK_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// The PostgreSQL role that owns the tables (`postgres://owner:password@host/db`): `init`
    /// migrates as it and grants the `--database` role only what Airlock needs. Without it the
    /// database must be migrated already.
    #[arg(
        long,
        env = "AIRLOCK_DATABASE_OWNER_URL",
        hide_env_values = true,
        requires = "database"
    )]
    database_owner: Option<String>,
    /// Accept a PostgreSQL server that is not on loopback without `sslmode=verify-full`, and
    /// record that in airlock.toml: the connection, passwords included, can then be read or
    /// changed on the network.
    #[arg(long, requires = "database")]
    danger_database_without_verified_tls: bool,
    /// The first administrator (role security-admin), who creates everyone else.
    #[arg(long, default_value = "admin")]
    admin: ActorId,
    /// A file holding the administrator's password (else one is generated and printed once).
    #[arg(long)]
    admin_password_file: Option<PathBuf>,
}

/// Create a deployment.
pub fn init(a: InitArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let pass = a.home.passphrase()?;
        let opts = InitOptions {
            name: a.name.clone(),
            kdf: KdfParams::default(),
            database_url: a.database.clone(),
        };
        let mut setup = DatabaseSetup::default();
        if let Some(owner) = &a.database_owner {
            setup = setup.owner(owner.clone());
        }
        if a.danger_database_without_verified_tls {
            setup = setup.danger_without_verified_tls();
        }
        // The first administrator's password is checked before anything is created: a refused
        // one must not leave a deployment without an administrator behind.
        let (pw, generated) = match &a.admin_password_file {
            Some(f) => (
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read `{}`", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
                false,
            ),
            None => (super::serve::random_password(a.admin.as_str()), true),
        };
        airlock_service::identity::check_password(
            &airlock_service::IdentityPolicy::default(),
            a.admin.as_str(),
            &pw,
        )
        .context("the administrator's password (`--admin-password-file`)")?;
        let home = Home::init_with(a.home.home()?, &pass, &opts, &setup, a.home.actor()?).await?;
        println!(
            "initialised Airlock deployment `{}` at {}",
            a.name,
            a.home.home()?.display()
        );
        println!("  ledger verifier key: {}", home.verifier_key());
        println!(
            "    (keep it outside this home: `airlock audit verify --key` checks the ledger against it)"
        );
        let enrolment = super::serve::identities(&home)?
            .add_user(
                home.actor(),
                &a.admin,
                &[airlock_authz::Role::SecurityAdmin],
                &airlock_crypto::Secret::new(pw.clone().into_bytes()),
            )
            .await?;
        super::serve::audit_change(
            &home,
            format!("principal:{}", a.admin),
            "first administrator created with role security-admin".into(),
        )
        .await?;
        println!("  administrator:       {} (role security-admin)", a.admin);
        if generated {
            println!("  admin password (shown once): {pw}");
        }
        println!(
            "  admin TOTP enrolment (shown once): {}",
            enrolment.otpauth_uri
        );
        println!(
            "  master key id:       {}",
            airlock_crypto::KeyManager::current_kek_id(home.kms())
        );
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// `airlock ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// The zone to ingest into.
    #[arg(long, default_value = "clinical")]
    zone: Zone,
    /// The data's classification.
    #[arg(long, default_value = "phi")]
    classification: Classification,
    /// The source system (EHR, lab system) the data was extracted from.
    #[arg(long)]
    source_system: String,
    /// The dataset to add a version to.
    #[arg(long)]
    dataset: DatasetName,
    /// Outside the clinical zone an ingest is an attested import, and this is required: the
    /// basis on which the data is de-identified, synthetic or DP (public-deidentified,
    /// data-use-agreement, expert-determination, synthetic). The acting identity is recorded
    /// as the attester (the privacy officer); every text value is scanned first and a direct
    /// identifier refuses the import.
    #[arg(long)]
    attest_basis: Option<AttestationBasis>,
    /// What the attestation rests on: the data use agreement's number, the determination's
    /// report, the dataset's published name.
    #[arg(long, requires = "attest_basis")]
    attest_reference: Option<AttestationReference>,
    /// Files or directories (recursed).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Every file under the given paths, sorted.
pub fn expand_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list `{}`", p.display()))?
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out)?;
            }
        } else if p.is_file() {
            if !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                out.push(p.to_path_buf());
            }
        } else {
            bail!("`{}` does not exist", p.display());
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    Ok(out)
}

fn progress_bar(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_message(what.to_string());
    Some(pb)
}

/// Ingest files: into the clinical zone from a source system, or elsewhere as an attested
/// import.
pub fn ingest(a: IngestArgs) -> anyhow::Result<ExitCode> {
    if a.zone == Zone::Clinical && a.attest_basis.is_some() {
        bail!(
            "`--attest-basis` is for an import outside the clinical zone; data from a source \
             system enters the clinical zone without one"
        );
    }
    block_on(async {
        let home = a.home.open().await?;
        let files = expand_paths(&a.files)?;
        let req = IngestRequest {
            zone: a.zone,
            classification: a.classification,
            source_system: a.source_system.clone(),
            dataset: a.dataset.clone(),
            files,
        };
        // Without a basis, a zone other than clinical is refused by the store, which records
        // the refusal in the ledger.
        let attestation = a.attest_basis.map(|basis| Attestation {
            basis,
            attested_by: home.actor().clone(),
            reference: a.attest_reference.clone(),
        });
        let started = std::time::Instant::now();
        let pb = progress_bar(req.files.len() as u64, "ingesting");
        let mut tick = |done, _| {
            if let Some(pb) = &pb {
                pb.set_position(done);
            }
        };
        let result = match &attestation {
            Some(att) => home.import_attested(&req, att, &mut tick).await,
            None => home.ingest(&req, &mut tick).await,
        };
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        let v = match result {
            Ok(v) => v,
            Err(e) => {
                home.close().await?;
                return Err(e.into());
            }
        };
        println!(
            "ingested {}@{} into `{}` as {}: {} files, {} records, {} bytes in {:.2?}",
            v.dataset,
            v.version,
            v.zone,
            v.classification,
            v.objects,
            v.records,
            v.bytes,
            started.elapsed()
        );
        if let Some(att) = v.lineage.attestation() {
            println!("  {att}; scanned: no direct identifier found");
        }
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// `airlock datasets`.
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    cmd: DatasetsCmd,
}

#[derive(Debug, Subcommand)]
enum DatasetsCmd {
    /// Every dataset with its zone, classification and latest version.
    List,
    /// One version's metadata and lineage record (JSON).
    Show {
        /// `NAME` or `NAME@VERSION`.
        spec: String,
    },
    /// A version and all its ancestors.
    Lineage {
        /// `NAME` or `NAME@VERSION`.
        spec: String,
    },
}

/// Dataset listings.
pub fn datasets(a: DatasetsArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let home = a.home.open().await?;
        match a.cmd {
            DatasetsCmd::List => {
                println!(
                    "{:<28} {:<12} {:<18} latest",
                    "dataset", "zone", "classification"
                );
                for d in home.datasets().await? {
                    println!(
                        "{:<28} {:<12} {:<18} {}",
                        d.name.as_str(),
                        d.zone.as_str(),
                        d.classification.as_str(),
                        d.latest
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
            DatasetsCmd::Show { spec } => {
                let (name, ver) = parse_version_spec(&spec)?;
                let v = home.version(&name, ver).await?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            DatasetsCmd::Lineage { spec } => {
                let (name, ver) = parse_version_spec(&spec)?;
                for v in home.lineage(&name, ver).await? {
                    let parents: Vec<String> =
                        v.lineage.parents.iter().map(|p| p.to_string()).collect();
                    let attested = v
                        .lineage
                        .attestation()
                        .map(|a| format!(" {a};"))
                        .unwrap_or_default();
                    println!(
                        "{}@{}  zone={} class={} gate={} transform={}{} source={} by={}{} at={} airlock={} parents=[{}]",
                        v.dataset,
                        v.version,
                        v.zone,
                        v.classification,
                        v.lineage.gate,
                        v.lineage.transform.name,
                        v.lineage
                            .transform
                            .config_hash
                            .map(|h| format!(" config={}", h.short()))
                            .unwrap_or_default(),
                        v.lineage.source_system.as_deref().unwrap_or("-"),
                        v.lineage.triggered_by,
                        attested,
                        v.created_at,
                        v.lineage.airlock_version,
                        parents.join(", ")
                    );
                }
            }
        }
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// `airlock export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// `NAME` or `NAME@VERSION`.
    #[arg(long)]
    dataset: String,
    /// The zone you are working in; the zone rules decide whether you may read the data.
    #[arg(long)]
    zone: Zone,
    /// Purpose of use (required for identified data).
    #[arg(long)]
    purpose: Option<Purpose>,
    /// Directory to decrypt into.
    #[arg(long)]
    out: PathBuf,
}

/// Decrypt a version to a directory.
pub fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let home = a.home.open().await?;
        let (name, ver) = parse_version_spec(&a.dataset)?;
        let v = home.version(&name, ver).await?;
        let written = home.export(&v, a.zone, a.purpose, &a.out).await;
        let code = match written {
            Ok(w) => {
                println!(
                    "exported {}@{}: {} files to {}",
                    v.dataset,
                    v.version,
                    w.len(),
                    a.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
        home.close().await?;
        Ok(code)
    })?
}

/// `airlock keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    cmd: KeysCmd,
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Replace the master key and re-wrap every data key (objects are not rewritten).
    Rotate {
        /// A file with the new passphrase (else AIRLOCK_NEW_PASSPHRASE, else keep the current one).
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Replace the deployment's own TLS certificate and key (valid for a year); restart the
    /// server to use it.
    RenewTls,
    /// Print the deployment's current TLS certificate (PEM, public): what clients trust, e.g.
    /// `curl --cacert`.
    TlsCert,
}

/// Key management.
pub fn keys(a: KeysArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let mut home = a.home.open().await?;
        match a.cmd {
            KeysCmd::Rotate {
                new_passphrase_file,
            } => {
                let new = match (new_passphrase_file, std::env::var("AIRLOCK_NEW_PASSPHRASE")) {
                    (Some(f), _) => read_passphrase(Some(&f))?,
                    (None, Ok(p)) if !p.is_empty() => Passphrase::new(p),
                    _ => a.home.passphrase()?,
                };
                let s = home.rotate_keys(&new, KdfParams::default()).await?;
                println!(
                    "rotated the master key {} -> {}; {} data keys re-wrapped, no object rewritten",
                    s.old_key_id, s.new_key_id, s.rewrapped
                );
            }
            KeysCmd::TlsCert => {
                let (cert, _) = home.tls_identity()?;
                print!("{cert}");
            }
            KeysCmd::RenewTls => {
                let cert = home.renew_tls_identity().await?;
                print!("{cert}");
                eprintln!(
                    "renewed the deployment's TLS certificate (valid {} days); restart the server to use it",
                    airlock_crypto::TLS_VALID_DAYS
                );
            }
        }
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// Resolves on Ctrl-C or SIGTERM (what service managers send), so the server stops the same
/// way for both: its refusal summaries written and a checkpoint signed.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
