//! `airlock demo`: a throw-away deployment that walks through the product on embedded defaults.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use airlock_crypto::KdfParams;
use airlock_store::{Home, IngestRequest, InitOptions, Passphrase};
use airlock_types::{ActorId, Classification, DatasetName, Purpose, Zone};
use anyhow::Context;
use clap::Args;

use super::home::{block_on, expand_paths};

/// `airlock demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo deployment (default: a new directory under the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Patients to generate.
    #[arg(long, default_value_t = 50)]
    patients: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

/// Run the demo.
pub fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let root = match a.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "airlock-demo-{}",
            hex::encode(airlock_crypto::random_bytes::<4>())
        )),
    };
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        anyhow::bail!("`{}` is not empty; pick another --dir", root.display());
    }
    std::fs::create_dir_all(&root)
        .with_context(|| format!("cannot create `{}`", root.display()))?;
    let home_dir = root.join("home");
    let source = root.join("source-ehr-extract");
    // A random passphrase for the throw-away deployment, kept in a file, never printed.
    let pass_text = hex::encode(airlock_crypto::random_bytes::<16>());
    let pass_file = root.join("passphrase");
    std::fs::write(&pass_file, format!("{pass_text}\n"))?;
    restrict(&pass_file);
    let pass = Passphrase::new(pass_text);
    let started = Instant::now();
    println!("Airlock demo in {}", root.display());

    block_on(async move {
        step(
            1,
            "create a deployment: key hierarchy, encrypted object store, metadata, ledger",
        );
        let t = Instant::now();
        let admin = ActorId::new("demo-admin")?;
        let home = Home::init(
            &home_dir,
            &pass,
            &InitOptions {
                name: "demo".into(),
                kdf: KdfParams::default(),
                database_url: None,
            },
            admin,
        )
        .await?;
        println!(
            "    home {}  ({:.2?}, Argon2id 64 MiB)",
            home_dir.display(),
            t.elapsed()
        );
        println!("    ledger verifier key: {}", home.verifier_key());
        home.close().await?;

        step(
            2,
            &format!(
                "generate a synthetic identified cohort of {} patients",
                a.patients
            ),
        );
        let t = Instant::now();
        let s = super::generate::generate_into(a.patients, a.seed, &source)?;
        println!(
            "    {} patients, {} encounters, {} notes, {} FHIR resources in {} files ({:.2?})",
            s.patients,
            s.encounters,
            s.notes,
            s.resources,
            s.files,
            t.elapsed()
        );

        step(3, "ingest it into the clinical zone as PHI");
        let engineer = ActorId::new("data-engineer")?;
        let home = Home::open(&home_dir, &pass, engineer).await?;
        let mut ingested = Vec::new();
        for (name, path) in [
            ("ehr-fhir", source.join("fhir")),
            ("adt-hl7", source.join("hl7")),
            ("registry-csv", source.join("cohort.csv")),
        ] {
            let t = Instant::now();
            let v = home
                .ingest(
                    &IngestRequest {
                        zone: Zone::Clinical,
                        classification: Classification::Phi,
                        source_system: "demo-ehr".into(),
                        dataset: DatasetName::new(name)?,
                        files: expand_paths(&[path])?,
                    },
                    &mut |_, _| {},
                )
                .await?;
            println!(
                "    {}@{}: {} files, {} records, {:.1} MB encrypted at rest ({:.2?})",
                v.dataset,
                v.version,
                v.objects,
                v.records,
                v.bytes as f64 / 1e6,
                t.elapsed()
            );
            ingested.push(v);
        }
        home.close().await?;

        step(
            4,
            "a data scientist in development asks for the PHI: refused by the zone rules",
        );
        let scientist = ActorId::new("data-scientist")?;
        let home = Home::open(&home_dir, &pass, scientist).await?;
        if let Some(v) = ingested.first() {
            match home
                .export(
                    v,
                    Zone::Development,
                    Some(Purpose::Research),
                    &root.join("should-not-exist"),
                )
                .await
            {
                Ok(_) => anyhow::bail!("the zone rules let PHI into development"),
                Err(e) => println!("    refused: {e}"),
            }
        }
        home.close().await?;

        step(
            5,
            "the privacy officer runs the de-identification gate (airlock zone)",
        );
        let officer = ActorId::new("privacy-officer")?;
        let home = Home::open(&home_dir, &pass, officer).await?;
        let mut released = Vec::new();
        for (input, profile, out) in [
            ("ehr-fhir", "safe-harbor", "ehr-fhir-safe-harbor"),
            ("adt-hl7", "expert-determination", "adt-hl7-research"),
        ] {
            let t = Instant::now();
            let o = super::gate::run_gate(&home, profile, input, &DatasetName::new(out)?).await?;
            println!(
                "    {input} --{profile}--> {}@{} in `{}` as {}: {} records, {} quarantined, leak check passed ({:.2?})",
                o.version.dataset,
                o.version.version,
                o.version.zone,
                o.version.classification,
                o.version.records,
                o.quarantined,
                t.elapsed()
            );
            released.push(o.version);
        }
        if let Some(v) = released.first() {
            let lineage = home.lineage(&v.dataset, Some(v.version)).await?;
            let chain: Vec<String> = lineage
                .iter()
                .map(|l| {
                    format!(
                        "{}@{} ({}, {})",
                        l.dataset, l.version, l.zone, l.lineage.gate
                    )
                })
                .collect();
            println!("    lineage: {}", chain.join(" <- "));
        }
        home.close().await?;

        step(
            6,
            "the data scientist works on de-identified data on day one",
        );
        let scientist = ActorId::new("data-scientist")?;
        let home = Home::open(&home_dir, &pass, scientist).await?;
        if let Some(v) = released.first() {
            let out = root.join("development-workspace");
            let files = home.export(v, Zone::Development, None, &out).await?;
            println!(
                "    exported {} de-identified files to {}",
                files.len(),
                out.display()
            );
        }
        let ledger_dir = home.ledger_dir();
        let key = home.verifier_key();
        let checkpoint = home.ledger().checkpoint()?;
        let proof = home.ledger().proof_file(1)?;
        home.close().await?;

        step(
            7,
            "the auditor verifies the ledger and an offline inclusion proof",
        );
        let t = Instant::now();
        let report = airlock_ledger::verify_dir(&ledger_dir, &key, None)?;
        println!(
            "    ledger verified: {} entries, {} tiles, signed checkpoint of size {} ({:.2?})",
            report.entries,
            report.tiles,
            report.checkpoint.size,
            t.elapsed()
        );
        let cp_file = root.join("checkpoint.txt");
        std::fs::write(&cp_file, checkpoint.text.as_bytes())?;
        let proof_file = root.join("entry-1.proof");
        std::fs::write(&proof_file, proof.as_bytes())?;
        let p = airlock_ledger::verify_proof_file(&proof, &key)?;
        println!(
            "    proof of entry {} ({} by {}) verified with the public key alone",
            p.index,
            p.entry.event.as_str(),
            p.entry.actor
        );

        println!("\nDone in {:.2?}. Explore it:", started.elapsed());
        let h = home_dir.display();
        let pf = pass_file.display();
        println!("  export AIRLOCK_HOME={h}");
        println!("  airlock datasets list --passphrase-file {pf}");
        println!("  airlock datasets lineage ehr-fhir-safe-harbor --passphrase-file {pf}");
        println!("  airlock audit verify --since {}", cp_file.display());
        println!("  airlock audit export --format fhir | head");
        println!(
            "  airlock audit verify-proof {} --key '{key}'",
            proof_file.display()
        );
        Ok(ExitCode::SUCCESS)
    })?
}

#[cfg(unix)]
fn restrict(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_path: &std::path::Path) {}
