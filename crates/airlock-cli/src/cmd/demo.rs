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
    /// Where the API listens at the end (an ephemeral port when this one is taken).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
    /// Check the API over TLS, then stop instead of serving until Ctrl-C.
    #[arg(long)]
    no_serve: bool,
    /// Train the demo's models on a synthetic registry even when the shared readmission table
    /// is present.
    #[arg(long)]
    synthetic_only: bool,
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
            ("clinic-notes", source.join("notes.jsonl")),
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
            ("clinic-notes", "safe-harbor", "clinic-notes-deid"),
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
        // Expert determination is an expert's judgement, not a profile's: without one the gate
        // refuses (the API tour below has the expert sign one, then the release runs).
        match super::gate::run_gate(
            &home,
            "expert-determination",
            "adt-hl7",
            &DatasetName::new("adt-hl7-research")?,
        )
        .await
        {
            Ok(_) => anyhow::bail!("an expert-determination release ran without a determination"),
            Err(e) => println!(
                "    adt-hl7 --expert-determination--> refused: {}",
                e.to_string().split(". A person").next().unwrap_or_default()
            ),
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
            // Tables from the de-identified FHIR with SQL-on-FHIR views, kept in development
            // as versions of their own (lineage gate `derive`: nothing crosses a zone).
            for view in ["patient_demographics", "observations_long"] {
                let out = airlock_service::views::derived_name(v.dataset.as_str(), view)?;
                let t = airlock_service::views::materialise(
                    &home,
                    &v.reference().to_string(),
                    view,
                    &out,
                )
                .await?;
                println!(
                    "    SQL-on-FHIR view `{view}` over {}@{} -> {}@{}: {} rows in `{}` as {}",
                    v.dataset, v.version, t.dataset, t.version, t.records, t.zone, t.classification
                );
            }
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
        // A second deployment (another hospital's, in production) witnesses the ledger: it
        // cosigns only checkpoints consistent with what it cosigned before (C2SP
        // tlog-witness), so this deployment's operator cannot roll the ledger back or fork it
        // unseen.
        let witness_dir = root.join("witness-home");
        let operator = ActorId::new("demo-admin")?;
        Home::init(
            &witness_dir,
            &pass,
            &InitOptions {
                name: "witness".into(),
                kdf: KdfParams::default(),
                database_url: None,
            },
            operator.clone(),
        )
        .await?
        .close()
        .await?;
        let witness_config = witness_dir.join("airlock.toml");
        let mut text = std::fs::read_to_string(&witness_config)?;
        text.push_str(&format!("\n[witness]\nlogs = [\"{key}\"]\n"));
        std::fs::write(&witness_config, text)?;
        let witness_home = Home::open(&witness_dir, &pass, operator.clone()).await?;
        let witness = airlock_service::witness::Witness::new(&witness_home)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let log = Home::open(&home_dir, &pass, operator).await?;
        print!("    ");
        if super::audit::witness_latest(&log, &witness).await? != ExitCode::SUCCESS {
            anyhow::bail!("the witness refused the demo's checkpoint");
        }
        log.close().await?;
        witness_home.close().await?;

        step(
            8,
            "the API over HTTPS: people log in with password + TOTP, Cedar decides every request, the ledger records it",
        );
        let admin = ActorId::new("demo-admin")?;
        let home = Home::open(&home_dir, &pass, admin).await?;
        let ids = super::serve::identities(&home)?;
        let mut logins = String::from(
            "# Demo logins (throw-away deployment). Password, then the TOTP enrolment URI.\n",
        );
        let mut secrets = std::collections::BTreeMap::new();
        for (user, role) in [
            ("dana-scientist", airlock_authz::Role::DataScientist),
            ("pat-privacy", airlock_authz::Role::PrivacyOfficer),
            ("alex-auditor", airlock_authz::Role::Auditor),
            ("casey-clinician", airlock_authz::Role::Clinician),
            ("sam-security", airlock_authz::Role::SecurityAdmin),
            ("rita-reviewer", airlock_authz::Role::ClinicalReviewer),
            ("mo-mlops", airlock_authz::Role::MlopsEngineer),
            ("eve-expert", airlock_authz::Role::DeidExpert),
        ] {
            let pw = super::serve::random_password(user);
            let id = ActorId::new(user)?;
            let e = ids
                .add_user(
                    home.actor(),
                    &id,
                    &[role],
                    &airlock_crypto::Secret::new(pw.clone().into_bytes()),
                )
                .await?;
            super::serve::audit_change(
                &home,
                format!("principal:{id}"),
                format!("demo user with role {}", role.as_str()),
            )
            .await?;
            logins.push_str(&format!(
                "{user}\t{}\t{pw}\t{}\n",
                role.as_str(),
                e.otpauth_uri
            ));
            let uri_file = root.join(format!("{user}.otpauth"));
            std::fs::write(&uri_file, format!("{}\n", e.otpauth_uri))?;
            restrict(&uri_file);
            secrets.insert(user, (pw, e.secret));
        }
        let logins_file = root.join("demo-logins.tsv");
        std::fs::write(&logins_file, logins)?;
        restrict(&logins_file);
        let (cert, tls_key) = home.tls_identity()?;
        let cert_file = root.join("tls-cert.pem");
        std::fs::write(&cert_file, &cert)?;
        let tls = airlock_server::tls::server_config(&cert, tls_key.expose_secret())?;
        let state = airlock_server::AppState::new(
            home.clone(),
            airlock_authz::Authorizer::new()?,
            airlock_service::IdentityPolicy::default(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_onnx(std::sync::Arc::new(airlock_onnx::TractRuntime))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        // The deployment's canary cap (50%), with a soak of a few predictions instead of an
        // hour and 100 (and one silent prediction instead of a day and 100), so the tour can
        // show a promotion.
        .with_rollout(airlock_store::RolloutConfig {
            min_canary_minutes: 0,
            min_canary_predictions: super::demo_models::DEMO_SOAK,
            min_silent_minutes: 0,
            min_silent_predictions: 1,
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let service = state.service().clone();
        // Every identity row's seal, as `serve` sweeps them at start and periodically.
        let swept = state
            .service()
            .reconcile_identities()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "    identity rows swept: {} checked, {} written without the deployment's key",
            swept.checked,
            swept.failing.len()
        );
        let listener = match airlock_server::tls::bind(a.listen).await {
            Ok(l) => l,
            Err(_) => {
                airlock_server::tls::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?
            }
        };
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(airlock_server::tls::serve(
            listener,
            tls,
            airlock_server::app(state),
            async move {
                let _ = stop_rx.await;
            },
        ));
        println!(
            "    listening on https://{addr} with the deployment's own certificate ({})",
            cert_file.display()
        );
        let client_tls = airlock_server::client::tls_config(&cert)?;
        let login = |user: &'static str| {
            let Some((pw, secret)) = secrets.get(user) else {
                return serde_json::Value::Null;
            };
            let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
            serde_json::json!({"username": user, "password": pw, "totp": airlock_service::totp::code_at(secret.expose_secret(), now)})
        };
        let mut c =
            airlock_server::client::Client::connect(addr, "localhost", client_tls.clone()).await?;
        let r = c.send("GET", "/v1/datasets", &[], None).await?;
        println!("    GET /v1/datasets without credentials -> {}", r.status);
        let r = c
            .send(
                "POST",
                "/v1/auth/login",
                &[],
                Some(&login("dana-scientist")),
            )
            .await?;
        let tok = r
            .json()
            .get("token")
            .cloned()
            .unwrap_or_default()
            .as_str()
            .unwrap_or("")
            .to_string();
        println!(
            "    dana-scientist logs in with password + TOTP -> {}",
            r.status
        );
        let auth = format!("Bearer {tok}");
        let r = c
            .send("GET", "/v1/datasets", &[("authorization", &auth)], None)
            .await?;
        let names: Vec<String> = r
            .json()
            .get("datasets")
            .cloned()
            .unwrap_or_default()
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "    dana-scientist lists datasets -> {} {:?} (development only)",
            r.status, names
        );
        let r = c
            .send(
                "GET",
                "/v1/datasets/ehr-fhir",
                &[("authorization", &auth)],
                None,
            )
            .await?;
        println!(
            "    dana-scientist asks for the clinical ehr-fhir -> {} (outside her zones: not even its existence)",
            r.status
        );
        let r = c
            .send("POST", "/v1/auth/login", &[], Some(&login("alex-auditor")))
            .await?;
        let auth = format!(
            "Bearer {}",
            r.json()
                .get("token")
                .cloned()
                .unwrap_or_default()
                .as_str()
                .unwrap_or("")
        );
        let r = c
            .send(
                "POST",
                "/v1/audit/search",
                &[("authorization", &auth)],
                Some(&serde_json::json!({"actor": "dana-scientist", "limit": 10})),
            )
            .await?;
        println!(
            "    alex-auditor searches the ledger for dana-scientist -> {}: {} entries, every decision with its policy",
            r.status,
            r.json().get("total").cloned().unwrap_or_default()
        );
        let r = c
            .send("GET", "/v1/audit/verify", &[("authorization", &auth)], None)
            .await?;
        println!(
            "    alex-auditor verifies the ledger over the API -> verified={}, size {}",
            r.json().get("verified").cloned().unwrap_or_default(),
            r.json().get("size").cloned().unwrap_or_default()
        );

        // A TOTP code is good once: dana-scientist keeps the session she opened above.
        let mut tokens = std::collections::BTreeMap::new();
        tokens.insert("dana-scientist", tok.clone());
        for user in [
            "rita-reviewer",
            "pat-privacy",
            "mo-mlops",
            "casey-clinician",
            "eve-expert",
        ] {
            let r = c
                .send("POST", "/v1/auth/login", &[], Some(&login(user)))
                .await?;
            let tok = r
                .json()
                .get("token")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string();
            tokens.insert(user, tok);
        }
        // Minimum necessary: casey-clinician is linked to the first patient's attending
        // practitioner (by NPI) and opens that record, not another clinician's patient's.
        let cohort = airlock_synth::generate(&airlock_synth::GenOptions::new(a.patients, a.seed));
        let treated = cohort.patients.first();
        let other = cohort
            .patients
            .iter()
            .find(|p| treated.is_some_and(|t| p.clinician.npi != t.clinician.npi));
        if let (Some(treated), Some(other)) = (treated, other) {
            super::serve::identities(&home)?
                .link_practitioner(
                    home.actor(),
                    &ActorId::new("casey-clinician")?,
                    &airlock_service::PractitionerLink::parse(&treated.clinician.npi)?,
                )
                .await?;
            let casey = format!(
                "Bearer {}",
                tokens.get("casey-clinician").cloned().unwrap_or_default()
            );
            let mut status = Vec::new();
            for p in [treated, other] {
                status.push(lookup(&mut c, &casey, &p.identity.mrn).await?);
            }
            println!(
                "    casey-clinician (linked to an NPI) opens a patient she treats -> {}, another clinician's patient -> {} (no treatment relationship; break-glass would be needed)",
                status.first().copied().unwrap_or_default(),
                status.get(1).copied().unwrap_or_default()
            );
        }
        expert_tour(&mut c, &tokens).await?;
        super::demo_dp::tour(&mut c, &tokens, &home, &root).await?;
        let admin = enrolment_tour(&mut c, &login("sam-security"), &tokens).await?;
        // A TOTP code is good once: the monitoring step uses the session sam-security opened.
        tokens.insert("sam-security", admin);
        let monitoring_from =
            super::demo_models::tour(&mut c, &home, &root, &tokens, a.synthetic_only).await?;
        // Retention, time compressed as the rollout's soak is: the predictions logged before
        // the monitoring step stand for those past the deployment's period.
        service
            .flush_prediction_log()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let days = home.config().monitoring.prediction_log_days;
        let sweep = service
            .expire_prediction_log_before(days, monitoring_from)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "\n    retention: the prediction log keeps a prediction's values {days} days (monitoring.prediction_log_days), swept hourly by the server; as if that long had passed since the steps before monitoring:"
        );
        for m in &sweep.models {
            println!(
                "      {}: {} logged prediction(s) in {} batch(es) erased, their data keys destroyed -> erasure entry {} (each prediction's own ledger entry stays)",
                m.model, m.predictions, m.batches, m.ledger_index
            );
        }
        insider_tour(&mut c, &auth, &tokens, &cohort).await?;
        let r = c
            .send("GET", "/v1/audit/verify", &[("authorization", &auth)], None)
            .await?;
        println!(
            "\n    alex-auditor verifies the whole ledger again, predictions included -> verified={}, size {}",
            r.json().get("verified").cloned().unwrap_or_default(),
            r.json().get("size").cloned().unwrap_or_default()
        );

        if !a.no_serve {
            println!(
                "\n    The API stays up until Ctrl-C. Log in (logins in {}):",
                logins_file.display()
            );
            println!(
                "      curl --cacert {} -H 'content-type: application/json' https://localhost:{}/v1/auth/login \\",
                cert_file.display(),
                addr.port()
            );
            println!(
                "        -d \"{{\\\"username\\\":\\\"pat-privacy\\\",\\\"password\\\":\\\"<from the file>\\\",\\\"totp\\\":\\\"$(airlock totp --secret-file {})\\\"}}\"",
                root.join("pat-privacy.otpauth").display()
            );
            println!(
                "      curl --cacert {} -H 'authorization: Bearer <token>' https://localhost:{}/v1/datasets",
                cert_file.display(),
                addr.port()
            );
            println!(
                "      OpenAPI: https://localhost:{}/openapi.json",
                addr.port()
            );
        }

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
        if !a.no_serve {
            super::home::stop_signal().await;
        }
        let _ = stop_tx.send(());
        let _ = server.await;
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

#[cfg(unix)]
/// A new clinician joins: the security administrator creates the account and sees neither its
/// password nor its second factor (the person enrols both with a one-time token), and the
/// clinician role, which reaches PHI, waits for a second person: the privacy officer.
/// The JSON value at `pointer`, null when absent.
fn at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a serde_json::Value {
    static NULL: serde_json::Value = serde_json::Value::Null;
    v.pointer(pointer).unwrap_or(&NULL)
}

/// An expert-determination release: the expert signs what the release would hold (findings
/// computed by the server, never values), with method and conditions; the privacy officer's
/// gate run then releases exactly that.
async fn expert_tour(
    c: &mut airlock_server::client::Client,
    tokens: &std::collections::BTreeMap<&str, String>,
) -> anyhow::Result<()> {
    let bearer = |u: &str| format!("Bearer {}", tokens.get(u).cloned().unwrap_or_default());
    let expires = (chrono::Utc::now().date_naive() + chrono::Days::new(180))
        .format("%Y-%m-%d")
        .to_string();
    let body = serde_json::json!({
        "dataset": "adt-hl7",
        "profile": "expert-determination",
        "method": "k-anonymity (k=5) on birth year, sex, zip3, race, ethnicity; keyed pseudonyms and per-patient date shifts; leak check over every output",
        "conditions": {
            "recipients": ["readmission research team"],
            "environment": "Airlock development zone; no export outside it",
            "expires": expires,
        },
    });
    let r = c
        .send(
            "POST",
            "/v1/expert-determinations",
            &[("authorization", &bearer("pat-privacy"))],
            Some(&body),
        )
        .await?;
    println!(
        "\n    pat-privacy tries to sign an expert determination herself -> {} (only a deid-expert signs)",
        r.status
    );
    let r = c
        .send(
            "POST",
            "/v1/expert-determinations",
            &[("authorization", &bearer("eve-expert"))],
            Some(&body),
        )
        .await?;
    let d = r.json();
    let risk = at(&d, "/findings/risk")
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    format!(
                        "{} k={} journalist max {:.3}",
                        at(t, "/table").as_str().unwrap_or(""),
                        at(t, "/k"),
                        at(t, "/journalist_max").as_f64().unwrap_or(f64::NAN)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "    eve-expert (deid-expert) reviews the findings of adt-hl7 under expert-determination and signs -> {}: determination {} ({} leak-check hits; risk {risk}; until {expires})",
        r.status,
        at(&d, "/id").as_str().unwrap_or("?"),
        at(&d, "/findings/leak_hits")
    );
    let officer = bearer("pat-privacy");
    let r = c
        .send(
            "POST",
            "/v1/deid-runs",
            &[("authorization", &officer)],
            Some(&serde_json::json!({"profile": "expert-determination", "dataset": "adt-hl7", "out_dataset": "adt-hl7-research"})),
        )
        .await?;
    let id = at(&r.json(), "/id").as_str().unwrap_or("").to_string();
    let mut run = serde_json::Value::Null;
    for _ in 0..600 {
        let r = c
            .send(
                "GET",
                &format!("/v1/deid-runs/{id}"),
                &[("authorization", &officer)],
                None,
            )
            .await?;
        run = r.json();
        if at(&run, "/status") != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    println!(
        "    pat-privacy runs the gate under expert-determination -> {} {} (the determination travels with the version and the ledger names it)",
        at(&run, "/status").as_str().unwrap_or("?"),
        at(&run, "/output")
            .as_str()
            .unwrap_or(at(&run, "/error").as_str().unwrap_or(""))
    );
    if at(&run, "/status") != "succeeded" {
        anyhow::bail!("the expert-determination release did not run");
    }
    Ok(())
}

async fn enrolment_tour(
    c: &mut airlock_server::client::Client,
    admin_login: &serde_json::Value,
    tokens: &std::collections::BTreeMap<&str, String>,
) -> anyhow::Result<String> {
    use serde_json::json;
    let r = c
        .send("POST", "/v1/auth/login", &[], Some(admin_login))
        .await?;
    let token = r
        .json()
        .get("token")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    let admin = format!("Bearer {token}");
    let r = c
        .send(
            "POST",
            "/v1/users",
            &[("authorization", &admin)],
            Some(&json!({"id": "jo-clinician", "kind": "user", "roles": ["clinician"]})),
        )
        .await?;
    let enrolment = r
        .json()
        .get("enrolment_token")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    println!(
        "\n    sam-security creates jo-clinician -> {}: a one-time enrolment token, roles pending {}",
        r.status,
        r.json().get("pending_roles").cloned().unwrap_or_default()
    );
    let r = c
        .send(
            "POST",
            "/v1/enrol",
            &[],
            Some(&json!({"token": enrolment, "password": super::serve::random_password("jo-clinician")})),
        )
        .await?;
    println!(
        "    jo-clinician enrols her own password and TOTP -> {} (the authenticator URI is shown to her once)",
        r.status
    );
    let r = c
        .send(
            "POST",
            "/v1/users/jo-clinician/roles/clinician/confirm",
            &[("authorization", &admin)],
            None,
        )
        .await?;
    println!(
        "    sam-security confirms the clinician role he granted -> {} (a second person must)",
        r.status
    );
    let officer = format!(
        "Bearer {}",
        tokens.get("pat-privacy").map_or("", String::as_str)
    );
    let r = c
        .send(
            "POST",
            "/v1/users/jo-clinician/roles/clinician/confirm",
            &[("authorization", &officer)],
            None,
        )
        .await?;
    println!(
        "    pat-privacy confirms it -> {}: roles in effect {}",
        r.status,
        r.json().get("roles").cloned().unwrap_or_default()
    );
    if r.status != 200 {
        anyhow::bail!("the role confirmation failed ({})", r.status);
    }
    Ok(token)
}

fn restrict(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_path: &std::path::Path) {}

/// Detection over the ledger: the demo's ordinary activity raises nothing; an insider who
/// browses records of patients she does not treat does, and the finding cites the entries.
async fn insider_tour(
    c: &mut airlock_server::client::Client,
    auditor: &str,
    tokens: &std::collections::BTreeMap<&'static str, String>,
    cohort: &airlock_synth::Cohort,
) -> anyhow::Result<()> {
    let scan = async |c: &mut airlock_server::client::Client| -> anyhow::Result<serde_json::Value> {
        let r = c
            .send(
                "GET",
                "/v1/incidents/findings",
                &[("authorization", auditor)],
                None,
            )
            .await?;
        anyhow::ensure!(r.status == 200, "the incident scan answered {}", r.status);
        Ok(r.json())
    };
    let count = |v: &serde_json::Value| {
        v.get("findings")
            .and_then(|f| f.as_array())
            .map_or(0, Vec::len)
    };
    let before = scan(c).await?;
    println!(
        "\n    incident detection: alex-auditor runs the rules over the ledger's {} entries (patient volume against each actor's and peers' baselines, off-hours reads, unreviewed break-glass, bursts of failed logins, refusals and releases, failed leak checks, verification) -> {} finding(s) on the demo's own activity",
        before.get("entries").cloned().unwrap_or_default(),
        count(&before)
    );
    super::incidents::print_findings(
        &serde_json::from_value::<Vec<airlock_incidents::detect::Finding>>(
            before.get("findings").cloned().unwrap_or_default(),
        )
        .unwrap_or_default(),
    );
    // casey-clinician browses: every patient whose attending practitioner is not hers.
    let casey = format!(
        "Bearer {}",
        tokens
            .get("casey-clinician")
            .map(String::as_str)
            .unwrap_or("")
    );
    let mine = cohort.patients.first().map(|p| p.clinician.npi.clone());
    let mut refused = 0;
    let mut throttled = 0;
    let mut tried = 0;
    for p in cohort
        .patients
        .iter()
        .filter(|p| Some(&p.clinician.npi) != mine.as_ref())
        .take(30)
    {
        tried += 1;
        match lookup(c, &casey, &p.identity.mrn).await? {
            403 => refused += 1,
            429 => throttled += 1,
            _ => {}
        }
    }
    let after = scan(c).await?;
    println!(
        "    casey-clinician opens {tried} records of patients she does not treat -> {refused} refused (no treatment relationship), {throttled} throttled (too many lookups); the rules again -> {} finding(s):",
        count(&after)
    );
    super::incidents::print_findings(
        &serde_json::from_value::<Vec<airlock_incidents::detect::Finding>>(
            after.get("findings").cloned().unwrap_or_default(),
        )
        .unwrap_or_default(),
    );
    Ok(())
}

/// A clinician's patient lookup in the clinical FHIR dataset, for treatment: the status.
async fn lookup(
    c: &mut airlock_server::client::Client,
    bearer: &str,
    mrn: &str,
) -> anyhow::Result<u16> {
    let body = serde_json::json!({"dataset": "ehr-fhir", "mrn": mrn});
    let r = c
        .send(
            "POST",
            "/v1/patients/lookup",
            &[("authorization", bearer), ("x-purpose-of-use", "treatment")],
            Some(&body),
        )
        .await?;
    Ok(r.status)
}
