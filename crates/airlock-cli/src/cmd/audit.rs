//! `airlock audit`: verify the ledger, checkpoints, proofs, search, export, disclosures.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use airlock_ledger::{EventType, Filter, PatientPseudonym};
use airlock_store::Home;
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use super::home::{HomeArgs, block_on, read_passphrase};

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
        /// An older checkpoint file: also prove the log is consistent with it.
        #[arg(long)]
        since: Option<PathBuf>,
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
        AuditCmd::Verify { home, since } => {
            let dir = Home::ledger_dir_of(&home)?;
            let key = Home::verifier_key_of(&home)?;
            let since_text = since
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read `{}`", p.display()))
                })
                .transpose()?;
            let started = std::time::Instant::now();
            match airlock_ledger::verify_dir(&dir, &key, since_text.as_deref()) {
                Ok(r) => {
                    println!(
                        "ledger verified: {} entries, checkpoint size {}, {} tiles and {} entry bundles checked{} in {:.2?}",
                        r.entries,
                        r.checkpoint.size,
                        r.tiles,
                        r.bundles,
                        r.consistent_with
                            .map(|n| format!(", consistent with the checkpoint of size {n}"))
                            .unwrap_or_default(),
                        started.elapsed()
                    );
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
            let key = if std::path::Path::new(&key).is_file() {
                std::fs::read_to_string(&key)?.trim().to_string()
            } else {
                key
            };
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
