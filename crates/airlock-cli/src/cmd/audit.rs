//! `airlock audit`: verify the ledger, checkpoints, proofs, search, export, disclosures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock_ledger::witness::{AddCheckpoint, CosignatureVerifier};
use airlock_ledger::{EventType, Filter, PatientPseudonym, SignedCheckpoint, Verifier};
use airlock_server::client::Client;
use airlock_service::witness::{Witness, WitnessError};
use airlock_store::{Home, Passphrase};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::home::{HomeArgs, block_on, local_actor, read_passphrase};

/// `airlock audit ...`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    cmd: AuditCmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Fhir,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Recompute the tree from every entry, check every tile and the signed checkpoint.
    Verify {
        /// The deployment's home directory.
        #[arg(long, env = "AIRLOCK_HOME")]
        home: PathBuf,
        /// The ledger's verifier key (`name+keyid+key`, as `airlock init` printed it), or
        /// `@FILE` holding it. Without it the check uses the key stored in the home, which
        /// whoever can replace the home can replace too, so it is not independent.
        #[arg(long)]
        key: Option<String>,
        /// An older checkpoint file: also prove the log is consistent with it.
        #[arg(long)]
        since: Option<PathBuf>,
        /// A directory of exported checkpoints (`ledger.checkpoint_export`, or a copy of one):
        /// prove the log extends the latest there. The directory the home configures is
        /// checked too, without this.
        #[arg(long)]
        checkpoints: Vec<PathBuf>,
        /// A witness's key (`name+keyid+key`, type 0x04, as `audit witness-key` prints it), or
        /// `@FILE`: a checkpoint kept next to the ledger must carry its valid cosignature.
        #[arg(long)]
        witness_key: Option<String>,
        /// A local witness deployment's home: prove the log extends the latest checkpoint that
        /// witness cosigned for it (needs its passphrase: `--witness-passphrase-file`, else
        /// AIRLOCK_WITNESS_PASSPHRASE, else AIRLOCK_PASSPHRASE).
        #[arg(long)]
        witness_home: Option<PathBuf>,
        /// A file holding the witness home's passphrase.
        #[arg(long)]
        witness_passphrase_file: Option<PathBuf>,
    },
    /// Ask another deployment, acting as witness (C2SP tlog-witness), to cosign the latest
    /// checkpoint, and keep the cosigned checkpoint next to the ledger (`witnessed/`).
    Witness {
        #[command(flatten)]
        home: HomeArgs,
        /// The witness deployment's home; its `[witness] logs` must list this ledger's key.
        #[arg(
            long,
            required_unless_present = "witness_url",
            conflicts_with = "witness_url"
        )]
        witness_home: Option<PathBuf>,
        /// A file holding the witness home's passphrase (else AIRLOCK_WITNESS_PASSPHRASE, else
        /// this home's).
        #[arg(long, conflicts_with = "witness_url")]
        witness_passphrase_file: Option<PathBuf>,
        /// A witness served by another deployment (`https://HOST[:PORT]`, its `airlock serve`);
        /// its `[witness] logs` must list this ledger's key.
        #[arg(long, requires_all = ["witness_ca", "witness_key"])]
        witness_url: Option<String>,
        /// The remote witness's TLS certificate, or the CA that issued it (PEM).
        #[arg(long, requires = "witness_url")]
        witness_ca: Option<PathBuf>,
        /// The remote witness's cosignature key (`name+keyid+key`, as its `audit witness-key`
        /// prints it), or `@FILE`, obtained out of band: the key it serves is only compared,
        /// since whoever sits in the middle could serve their own.
        #[arg(long, requires = "witness_url")]
        witness_key: Option<String>,
    },
    /// Print this deployment's witness key (`name+keyid+key`, signature type 0x04), which
    /// checks the cosignatures it makes as a witness.
    WitnessKey {
        #[command(flatten)]
        home: HomeArgs,
    },
    /// Write and print a fresh signed checkpoint.
    Checkpoint {
        #[command(flatten)]
        home: HomeArgs,
        /// Also save it to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write an offline inclusion proof (C2SP tlog-proof) for one entry.
    Proof {
        #[command(flatten)]
        home: HomeArgs,
        /// The entry's index.
        index: u64,
        /// Where to write the proof.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an offline proof with only the public verifier key.
    VerifyProof {
        /// The proof file.
        file: PathBuf,
        /// The verifier key (`name+keyid+key`) or a file holding it.
        #[arg(long)]
        key: String,
    },
    /// Print the ledger's public verifier key.
    Key {
        /// The deployment's home directory.
        #[arg(long, env = "AIRLOCK_HOME")]
        home: PathBuf,
    },
    /// Find entries by actor, patient, event type and time.
    Search {
        /// The deployment's home directory.
        #[arg(long, env = "AIRLOCK_HOME")]
        home: PathBuf,
        /// A file holding the passphrase (needed only with `--patient-mrn`).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Only this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only this patient (the MRN is hashed with the deployment key before the search).
        #[arg(long)]
        patient_mrn: Option<String>,
        /// Only these event types (repeatable).
        #[arg(long)]
        event: Vec<String>,
        /// From this time (RFC 3339).
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        /// Until this time (RFC 3339).
        #[arg(long)]
        until: Option<DateTime<Utc>>,
    },
    /// Export every entry as JSON lines or FHIR R4 AuditEvent resources (NDJSON).
    Export {
        /// The deployment's home directory.
        #[arg(long, env = "AIRLOCK_HOME")]
        home: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// An accounting of disclosures for one patient (45 CFR 164.528).
    Disclosures {
        /// The deployment's home directory.
        #[arg(long, env = "AIRLOCK_HOME")]
        home: PathBuf,
        /// A file holding the passphrase (else AIRLOCK_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The patient's MRN (hashed with the deployment key; never stored or printed).
        #[arg(long)]
        patient_mrn: String,
    },
}

/// Run an audit command.
pub fn run(a: AuditArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        AuditCmd::Verify {
            home,
            key,
            since,
            checkpoints,
            witness_key,
            witness_home,
            witness_passphrase_file,
        } => {
            let dir = Home::ledger_dir_of(&home)?;
            let stored = Home::verifier_key_of(&home);
            let key = match &key {
                Some(k) => {
                    let k = key_arg(k)?;
                    Verifier::parse(&k).context("`--key`")?;
                    k
                }
                None => {
                    let k = stored.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?.clone();
                    println!(
                        "NOT INDEPENDENT: checked with the verifier key stored in the home ({}); \
                         whoever can replace the home can replace that key too. Pass `--key` \
                         with the key `airlock init` printed.",
                        short_key(&k)
                    );
                    k
                }
            };
            // Checkpoints kept outside the ledger, which it must extend: `(source, text)`.
            let mut kept: Vec<(String, String)> = Vec::new();
            if let Some(p) = since {
                kept.push((p.display().to_string(), read_text(&p)?));
            }
            let mut export_dirs = checkpoints;
            if let Some(configured) = Home::checkpoint_export_of(&home)?
                && !export_dirs.contains(&configured)
            {
                export_dirs.push(configured);
            }
            for d in &export_dirs {
                // A configured export that cannot be read fails the check: skipping it would
                // pass exactly the rollback it exists to catch.
                match airlock_ledger::latest_export(d).with_context(|| {
                    format!("cannot read the checkpoint export `{}`", d.display())
                })? {
                    Some((_, file)) => kept.push((file.display().to_string(), read_text(&file)?)),
                    None => println!("no checkpoint exported to {} yet", d.display()),
                }
            }
            // Checkpoints cosigned by witnesses, kept next to the ledger by `audit witness`.
            let witnessed = witnessed_files(&dir)?;
            let witness_key = witness_key
                .map(|k| {
                    let k = key_arg(&k)?;
                    CosignatureVerifier::parse(&k).context("`--witness-key`")
                })
                .transpose()?;
            let mut cosigned = None;
            for (path, text) in &witnessed {
                if let Some(w) = &witness_key
                    && let Ok(c) = w.verify(text)
                {
                    cosigned = Some((path.clone(), c));
                }
                kept.push((path.display().to_string(), text.clone()));
            }
            if let Some(w) = &witness_key
                && cosigned.is_none()
            {
                eprintln!(
                    "ledger verification FAILED: no checkpoint next to the ledger carries a \
                     valid cosignature by the witness key `{}+{}`",
                    w.name(),
                    hex::encode(w.key_id())
                );
                return Ok(ExitCode::FAILURE);
            }
            if witness_key.is_none() && !witnessed.is_empty() {
                println!(
                    "{} witnessed checkpoint(s) next to the ledger are checked for consistency; \
                     their cosignatures are not (pass `--witness-key`)",
                    witnessed.len()
                );
            }
            if let Some(w) = &witness_home {
                let origin = Verifier::parse(&key)?.name().to_owned();
                let pass = witness_passphrase(witness_passphrase_file.as_deref())?;
                let wdir = w.clone();
                let held = block_on(async move {
                    let home = Home::open(&wdir, &pass, local_actor(None)?).await?;
                    let witness = Witness::new(&home)?;
                    let held = witness.latest(&origin).await;
                    home.close().await?;
                    anyhow::Ok(held?)
                })??;
                match held {
                    Some(log) => kept.push((
                        format!("latest cosigned by the witness at {}", w.display()),
                        log.checkpoint,
                    )),
                    None => println!("the witness holds no checkpoint of this log yet"),
                }
            }
            let kept_refs: Vec<airlock_ledger::Kept<'_>> = kept
                .iter()
                .map(|(source, text)| airlock_ledger::Kept { source, text })
                .collect();
            let started = std::time::Instant::now();
            match airlock_ledger::verify_dir_kept(&dir, &key, &kept_refs) {
                Ok(r) => {
                    println!(
                        "ledger verified: {} entries, checkpoint size {}, {} tiles and {} entry bundles checked{} in {:.2?}",
                        r.entries,
                        r.checkpoint.size,
                        r.tiles,
                        r.bundles,
                        r.consistent_with
                            .map(|n| format!(
                                ", consistent with {} kept checkpoint{} (the largest of size {n})",
                                kept.len(),
                                if kept.len() == 1 { "" } else { "s" }
                            ))
                            .unwrap_or_default(),
                        started.elapsed()
                    );
                    if let Ok(stored) = &stored
                        && short_key(stored) != short_key(&key)
                    {
                        println!(
                            "WARNING: the key stored in the home ({}) is not the key checked \
                             against ({}); the home's keyring was replaced",
                            short_key(stored),
                            short_key(&key)
                        );
                    }
                    if let Some((path, c)) = &cosigned {
                        println!(
                            "witnessed: the checkpoint of size {} in {} is cosigned by the \
                             witness key given, at {}",
                            c.checkpoint.size,
                            path.display(),
                            rfc3339(c.timestamp)
                        );
                    }
                    let unsigned = r.unsigned_entries();
                    if unsigned > 0 {
                        println!(
                            "{unsigned} entries after the signed checkpoint are not yet covered by a signature (a running server signs every few seconds; `airlock audit checkpoint` signs now)"
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("ledger verification FAILED: {e}");
                    if let Some(why) = key_mismatch(&dir, &key) {
                        eprintln!("{why}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCmd::Checkpoint { home, out } => block_on(async move {
            let h = home.open().await?;
            let cp = h.ledger().checkpoint()?;
            print!("{}", cp.text);
            if let Some(out) = out {
                std::fs::write(&out, cp.text.as_bytes())
                    .with_context(|| format!("cannot write `{}`", out.display()))?;
            }
            h.close().await?;
            Ok(ExitCode::SUCCESS)
        })?,
        AuditCmd::Proof { home, index, out } => block_on(async move {
            let h = home.open().await?;
            h.ledger().checkpoint()?;
            let proof = h.ledger().proof_file(index)?;
            std::fs::write(&out, proof.as_bytes())
                .with_context(|| format!("cannot write `{}`", out.display()))?;
            println!(
                "wrote the inclusion proof of entry {index} to {}",
                out.display()
            );
            h.close().await?;
            Ok(ExitCode::SUCCESS)
        })?,
        AuditCmd::VerifyProof { file, key } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            let key = key_arg(&key)?;
            match airlock_ledger::verify_proof_file(&text, &key) {
                Ok(p) => {
                    println!(
                        "proof verified: entry {} ({} by {} at {}) is in the log of size {} signed by {}",
                        p.index,
                        p.entry.event.as_str(),
                        p.entry.actor,
                        p.entry.time,
                        p.checkpoint.size,
                        p.checkpoint.origin
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("proof REJECTED: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCmd::Witness {
            home,
            witness_home,
            witness_passphrase_file,
            witness_url,
            witness_ca,
            witness_key,
        } => match (witness_home, witness_url) {
            (Some(witness_home), None) => {
                let pass = witness_passphrase(witness_passphrase_file.as_deref())?;
                block_on(async move {
                    let w = Home::open(&witness_home, &pass, local_actor(None)?).await?;
                    let h = match home.open().await {
                        Ok(h) => h,
                        Err(e) => {
                            w.close().await?;
                            return Err(e);
                        }
                    };
                    let code = witness_latest(&h, &Witness::new(&w)?).await;
                    h.close().await?;
                    w.close().await?;
                    code
                })?
            }
            (None, Some(url)) => {
                // clap requires both with `--witness-url`; these say so if that ever changes.
                let ca = witness_ca.context("`--witness-url` needs `--witness-ca`")?;
                let ca = read_text(&ca)?;
                let key = witness_key.context("`--witness-url` needs `--witness-key`")?;
                let key = CosignatureVerifier::parse(&key_arg(&key)?).context("`--witness-key`")?;
                block_on(async move {
                    let remote = RemoteWitness::connect(&url, &ca, key).await?;
                    let h = home.open().await?;
                    let code = witness_latest(&h, &remote).await;
                    h.close().await?;
                    code
                })?
            }
            _ => anyhow::bail!("give either `--witness-home` or `--witness-url`"),
        },
        AuditCmd::WitnessKey { home } => block_on(async move {
            let h = home.open().await?;
            println!("{}", h.witness_cosigner()?.verifier());
            h.close().await?;
            Ok(ExitCode::SUCCESS)
        })?,
        AuditCmd::Key { home } => {
            println!("{}", Home::verifier_key_of(&home)?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Search {
            home,
            passphrase_file,
            actor,
            patient_mrn,
            event,
            since,
            until,
        } => {
            let dir = Home::ledger_dir_of(&home)?;
            let patient = patient_mrn
                .map(|mrn| pseudonym_for(&home, passphrase_file.as_deref(), &mrn))
                .transpose()?;
            let events = event
                .iter()
                .map(|e| {
                    e.parse::<EventType>()
                        .map_err(|_| anyhow::anyhow!("unknown event type `{e}`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let filter = Filter {
                actor: actor
                    .map(airlock_types::ActorId::new)
                    .transpose()
                    .context("`--actor`")?,
                patient,
                events,
                since,
                until,
            };
            let hits = airlock_ledger::search(&dir, &filter)?;
            let mut out = std::io::stdout().lock();
            for (i, e) in &hits {
                let line = serde_json::json!({ "index": i, "entry": e });
                writeln!(out, "{line}")?;
            }
            eprintln!("{} matching entries", hits.len());
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Export { home, format, out } => {
            let dir = Home::ledger_dir_of(&home)?;
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create `{}`", p.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut n = 0u64;
            for item in airlock_ledger::read_entries(&dir)? {
                let (i, e) = item?;
                match format {
                    ExportFormat::Jsonl => {
                        airlock_ledger::write_jsonl([&e], &mut sink)?;
                    }
                    ExportFormat::Fhir => {
                        writeln!(sink, "{}", airlock_ledger::to_fhir_audit_event(i, &e))?;
                    }
                }
                n += 1;
            }
            sink.flush()?;
            eprintln!("exported {n} entries");
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Disclosures {
            home,
            passphrase_file,
            patient_mrn,
        } => {
            let dir = Home::ledger_dir_of(&home)?;
            let patient = pseudonym_for(&home, passphrase_file.as_deref(), &patient_mrn)?;
            let entries: Vec<(u64, airlock_ledger::Entry)> =
                airlock_ledger::read_entries(&dir)?.collect::<Result<_, _>>()?;
            let records = airlock_ledger::disclosures(
                entries.iter().map(|(i, e)| (*i, e)),
                &patient,
                Utc::now(),
            );
            println!("accounting of disclosures (45 CFR 164.528), last six years:");
            println!(
                "{:<8} {:<26} {:<28} {:<24} description",
                "index", "date", "recipient", "purpose"
            );
            for r in &records {
                println!(
                    "{:<8} {:<26} {:<28} {:<24} {}",
                    r.index,
                    r.date.to_rfc3339(),
                    r.recipient,
                    r.purpose,
                    r.description
                );
            }
            println!("{} disclosures", records.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where `audit witness` keeps checkpoints cosigned by witnesses, inside the ledger directory.
const WITNESSED_DIR: &str = "witnessed";

/// The cosigned checkpoints kept next to the ledger: `(path, text)`, by file name.
fn witnessed_files(ledger_dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let dir = ledger_dir.join(WITNESSED_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list `{}`", dir.display())),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        // Dot files are half-written ones.
        if path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        {
            let text = read_text(&path)?;
            out.push((path, text));
        }
    }
    out.sort();
    Ok(out)
}

/// The witness home's passphrase: from the file, else AIRLOCK_WITNESS_PASSPHRASE, else the
/// one this command was given for its own home.
fn witness_passphrase(file: Option<&Path>) -> anyhow::Result<Passphrase> {
    if let Some(f) = file {
        return read_passphrase(Some(f));
    }
    match std::env::var("AIRLOCK_WITNESS_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Ok(Passphrase::new(p)),
        _ => read_passphrase(None),
    }
}

/// Write `text` to `path` whole or not at all: 0600 under a dot name, fsynced, renamed.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let dir = path.parent().context("no parent directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path.file_name().context("no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// How `audit witness` reaches a witness: a deployment opened from its home here, or one
/// served over HTTPS ([`RemoteWitness`]). The protocol around it (the old size, the proof, the
/// retry after a 409, the checks of the answer) is [`witness_latest`]'s, the same for both.
pub(crate) trait WitnessTransport {
    /// The key the witness's cosignatures must verify with.
    fn verifier(&self) -> CosignatureVerifier;

    /// Send one C2SP tlog-witness add-checkpoint request; the cosignature lines, or why not.
    async fn add_checkpoint(&self, body: &str) -> Result<String, Refusal>;
}

/// A witness's answer to add-checkpoint other than cosignature lines.
pub(crate) enum Refusal {
    /// 409: the witness last cosigned a checkpoint of this size of the log.
    Conflict(u64),
    /// Anything else, as the line the operator sees.
    Stop(String),
}

impl WitnessTransport for Witness {
    fn verifier(&self) -> CosignatureVerifier {
        Witness::verifier(self)
    }

    async fn add_checkpoint(&self, body: &str) -> Result<String, Refusal> {
        Witness::add_checkpoint(self, body.as_bytes())
            .await
            .map_err(|e| match (e.conflict_size(), &e) {
                (Some(size), _) => Refusal::Conflict(size),
                // The operator's own terminal: the detail a server would only log.
                (None, WitnessError::Storage { detail }) => {
                    Refusal::Stop(format!("witness FAILED: {detail}"))
                }
                (None, _) => Refusal::Stop(format!("witness REFUSED (status {}): {e}", e.status())),
            })
    }
}

/// Where Airlock serves the witness (`airlock serve`; the paths and media types of
/// `airlock-server`'s `routes/witness.rs` and the C2SP tlog-witness spec).
const WITNESS_ADD_CHECKPOINT: &str = "/v1/witness/add-checkpoint";
const WITNESS_KEY: &str = "/v1/witness/key";
const NOTE_MEDIA: &str = "text/plain; charset=utf-8";
const TLOG_SIZE_MEDIA: &str = "text/x.tlog.size";
/// The most a remote witness's answer is read: cosignature lines and a key are a few hundred
/// bytes each.
const WITNESS_MAX_ANSWER: usize = 64 * 1024;
/// How long one request to a remote witness may take, connecting included.
const WITNESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A witness served by another deployment over HTTPS. Its answers are read by status and
/// media type: no text of a body it sends reaches the operator's terminal (a number at most),
/// and its cosignatures are checked with the key given out of band, never the one it serves.
struct RemoteWitness {
    url: String,
    key: CosignatureVerifier,
    // `add_checkpoint` takes `&self`, as the local witness's does; one request at a time.
    client: tokio::sync::Mutex<Client>,
}

impl RemoteWitness {
    /// Connect to `url` (`https://HOST[:PORT]`) trusting `ca_pem`, and compare the key the
    /// witness serves with `key`, so that a witness given the wrong key is told apart from a
    /// bad cosignature before it is asked to cosign anything.
    async fn connect(url: &str, ca_pem: &str, key: CosignatureVerifier) -> anyhow::Result<Self> {
        let (host, port) = witness_host(url)?;
        let tls = airlock_server::client::tls_config(ca_pem).context("`--witness-ca`")?;
        let mut client = tokio::time::timeout(WITNESS_TIMEOUT, async {
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .next()
                .context("the host has no address")?;
            anyhow::Ok(Client::connect(addr, &host, tls).await?)
        })
        .await
        .map_err(|_| anyhow::anyhow!("no answer in {}s", WITNESS_TIMEOUT.as_secs()))
        .and_then(|r| r)
        .with_context(|| format!("cannot connect to the witness at `{url}`"))?;
        let served = tokio::time::timeout(
            WITNESS_TIMEOUT,
            client.send_typed("GET", WITNESS_KEY, None, WITNESS_MAX_ANSWER),
        )
        .await;
        // Only a key that parses can be compared; without one the cosignature check, with
        // the key given, is what decides.
        let served = match served {
            Ok(Ok(r)) if r.status == 200 => std::str::from_utf8(&r.body)
                .ok()
                .and_then(|t| CosignatureVerifier::parse(t.trim()).ok()),
            _ => None,
        };
        match served {
            // Only the served key's id is shown: its name is the server's text.
            Some(s) if s != key => anyhow::bail!(
                "the witness at `{url}` serves another key (key id {}) than the `--witness-key` \
                 given (`{}+{}`); no checkpoint was sent to it. Check which key it was given \
                 out of band",
                hex::encode(s.key_id()),
                key.name(),
                hex::encode(key.key_id())
            ),
            Some(_) => {}
            None => println!(
                "the witness at {url} serves no key to compare with `--witness-key`; its \
                 cosignature is checked with the key given"
            ),
        }
        Ok(RemoteWitness {
            url: url.to_owned(),
            key,
            client: tokio::sync::Mutex::new(client),
        })
    }
}

impl WitnessTransport for RemoteWitness {
    fn verifier(&self) -> CosignatureVerifier {
        self.key.clone()
    }

    async fn add_checkpoint(&self, body: &str) -> Result<String, Refusal> {
        let url = &self.url;
        let sent = {
            let mut client = self.client.lock().await;
            tokio::time::timeout(
                WITNESS_TIMEOUT,
                client.send_typed(
                    "POST",
                    WITNESS_ADD_CHECKPOINT,
                    Some((NOTE_MEDIA, body.as_bytes().to_vec())),
                    WITNESS_MAX_ANSWER,
                ),
            )
            .await
        };
        let reply = match sent {
            Ok(Ok(r)) => r,
            // Transport errors name TLS or the connection, never the body.
            Ok(Err(e)) => return Err(Refusal::Stop(format!("witness FAILED at {url}: {e}"))),
            Err(_) => {
                return Err(Refusal::Stop(format!(
                    "witness FAILED: no answer from {url} in {}s",
                    WITNESS_TIMEOUT.as_secs()
                )));
            }
        };
        match reply.status {
            200 => String::from_utf8(reply.body).map_err(|_| {
                Refusal::Stop(format!("witness FAILED: the answer from {url} is not text"))
            }),
            409 => reply
                .content_type
                .filter(|t| t.starts_with(TLOG_SIZE_MEDIA))
                .and(std::str::from_utf8(&reply.body).ok())
                .and_then(|t| t.strip_suffix('\n'))
                .filter(|t| t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse().ok())
                .map_or_else(
                    || {
                        Err(Refusal::Stop(format!(
                            "witness REFUSED (status 409) at {url}, without a size"
                        )))
                    },
                    |size| Err(Refusal::Conflict(size)),
                ),
            // The spec's meaning of each status; the body (a message the server chose) is not
            // shown, as it cannot be told apart from whatever else a server might send.
            s @ (400 | 403 | 404 | 422) => {
                let why = match s {
                    400 => "the request is malformed",
                    403 => "the checkpoint carries no signature by a key it trusts for this log",
                    404 => "it does not witness this log (its `[witness] logs`)",
                    _ => "the consistency proof does not verify (a fork, or a rewritten log)",
                };
                Err(Refusal::Stop(format!(
                    "witness REFUSED (status {s}) at {url}: {why}"
                )))
            }
            s => Err(Refusal::Stop(format!(
                "witness FAILED (status {s}) at {url}"
            ))),
        }
    }
}

/// `(host, port)` of `--witness-url`: `https://HOST[:PORT]`, an IPv6 address in brackets, no
/// path (Airlock serves the witness at fixed paths), port 443 unless given.
fn witness_host(url: &str) -> anyhow::Result<(String, u16)> {
    let form = "`--witness-url` must be `https://HOST[:PORT]`";
    let rest = url.strip_prefix("https://").context(form)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    anyhow::ensure!(!rest.contains(['/', '?', '#', '@']), form);
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').context(form)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').context(form)?)),
            }
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    anyhow::ensure!(!host.is_empty(), form);
    let port = match port {
        Some(p) => p
            .parse()
            .with_context(|| format!("{form}: the port is not a number up to 65535"))?,
        None => 443,
    };
    Ok((host.to_owned(), port))
}

/// `audit witness`: the latest checkpoint of `h`, cosigned by `witness` from the size it last
/// cosigned (learnt from the cosigned checkpoint kept before, or from its 409), kept next to
/// the ledger.
pub(crate) async fn witness_latest(
    h: &Home,
    witness: &impl WitnessTransport,
) -> anyhow::Result<ExitCode> {
    let ledger = h.ledger();
    let cp = ledger.checkpoint()?;
    let n = cp.checkpoint.size;
    let wkey = witness.verifier();
    let file = h.ledger_dir().join(WITNESSED_DIR).join(format!(
        "{}+{}",
        wkey.name().replace('/', "_"),
        hex::encode(wkey.key_id())
    ));
    // The size this witness cosigned last, as far as this home knows (checked: signed by the
    // log and cosigned by the witness).
    let mut old = std::fs::read_to_string(&file)
        .ok()
        .filter(|t| SignedCheckpoint::open(t, ledger.verifier()).is_ok())
        .and_then(|t| wkey.verify(&t).ok())
        .map_or(0, |c| c.checkpoint.size);
    for attempt in 0..2 {
        if old > n {
            eprintln!(
                "ROLLED BACK: the witness `{}` cosigned a checkpoint of size {old} of this log, \
                 but its checkpoint now has size {n}",
                wkey.name()
            );
            return Ok(ExitCode::FAILURE);
        }
        let body = AddCheckpoint {
            old_size: old,
            proof: ledger.prove_consistency(old, n)?,
            checkpoint: cp.text.clone(),
        }
        .to_body();
        match witness.add_checkpoint(&body).await {
            Ok(lines) => {
                let cosigned = format!("{}{lines}", cp.text);
                let c = wkey
                    .verify(&cosigned)
                    .context("the witness's answer does not verify")?;
                write_private(&file, &cosigned)?;
                println!(
                    "checkpoint of size {n} cosigned by the witness `{}` at {}; kept in {}",
                    wkey.name(),
                    rfc3339(c.timestamp),
                    file.display()
                );
                println!("witness key: {wkey}");
                return Ok(ExitCode::SUCCESS);
            }
            // The witness holds another size: once more from there.
            Err(Refusal::Conflict(size)) if attempt == 0 => old = size,
            Err(Refusal::Conflict(_)) => break,
            Err(Refusal::Stop(line)) => {
                eprintln!("{line}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    eprintln!("witness REFUSED: its recorded size kept changing");
    Ok(ExitCode::FAILURE)
}

/// A cosignature's time (seconds since the epoch) as RFC 3339.
fn rfc3339(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| seconds.to_string(), |t| t.to_rfc3339())
}

/// The text of a file, naming it if it cannot be read.
fn read_text(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read `{}`", p.display()))
}

/// A verifier key from the command line: `@FILE` (or the path of a file) holding it, or the
/// key itself.
fn key_arg(arg: &str) -> anyhow::Result<String> {
    let file = match arg.strip_prefix('@') {
        Some(f) => Some(Path::new(f)),
        None => Some(Path::new(arg)).filter(|p| p.is_file()),
    };
    match file {
        Some(f) => Ok(std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the key file `{}`", f.display()))?
            .trim()
            .to_string()),
        None => Ok(arg.trim().to_string()),
    }
}

/// `name+keyid` of a verifier key (enough to tell keys apart, short enough to read).
fn short_key(key: &str) -> String {
    match Verifier::parse(key) {
        Ok(v) => format!("`{}+{}`", v.name(), hex::encode(v.key_id())),
        Err(_) => "a malformed key".into(),
    }
}

/// When the ledger's checkpoint carries no signature by `key`, which keys it is signed by.
fn key_mismatch(ledger_dir: &Path, key: &str) -> Option<String> {
    let v = Verifier::parse(key).ok()?;
    let text = std::fs::read_to_string(ledger_dir.join("checkpoint")).ok()?;
    let signers = airlock_ledger::note::signers(&text).ok()?;
    if signers
        .iter()
        .any(|(n, id)| n == v.name() && *id == v.key_id())
    {
        return None;
    }
    let by: Vec<String> = signers
        .iter()
        .map(|(n, id)| format!("`{n}+{}`", hex::encode(id)))
        .collect();
    Some(format!(
        "KEY MISMATCH: the ledger's checkpoint is signed by {}, not by the key checked against, {}: \
         this ledger was signed by another key",
        by.join(", "),
        short_key(key)
    ))
}

/// Hash an MRN with the deployment's pseudonymisation key (needs the passphrase).
fn pseudonym_for(
    home: &std::path::Path,
    passphrase_file: Option<&std::path::Path>,
    mrn: &str,
) -> anyhow::Result<PatientPseudonym> {
    let pass = read_passphrase(passphrase_file)?;
    let key = Home::pseudonym_key_of(home, &pass)?;
    Ok(airlock_ledger::patient_pseudonym(key.expose_secret(), mrn))
}
