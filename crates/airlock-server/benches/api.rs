//! Loopback load benchmark of the HTTPS API, over real TLS, with keep-alive connections.
//!
//! `cargo bench -p airlock-server --bench api`
//!
//! Builds a deployment in a temporary directory (SQLite metadata; identified data in clinical,
//! de-identified and synthetic datasets in development), logs a data scientist and an auditor in
//! over TLS, starts the server on `127.0.0.1:0`, and drives three scenarios with `C` concurrent
//! connections for `D` seconds each after a one-second warm-up:
//!
//! - `GET /healthz`, the baseline: no authentication, no policy decision, no ledger write;
//! - `GET /v1/datasets` as the data scientist: session lookup, Cedar decisions, the metadata
//!   query and two durable (fsynced) ledger appends per request;
//! - `POST /v1/audit/search` as the auditor: one durable ledger append, then a scan of the
//!   whole ledger, so its latency grows with the ledger.
//!
//! `AIRLOCK_BENCH_CONNS` (default 16) and `AIRLOCK_BENCH_SECS` (default 5) set `C` and `D`.
//! Every response must be 200; the run fails after printing its figures if any is not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]

mod common;

use common::{Scenario, WARM_UP, env_or, report, run_scenario, session};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use airlock_authz::{Authorizer, Role};
use airlock_crypto::KdfParams;
use airlock_server::client::Client;
use airlock_server::{AppState, IdentityPolicy};
use airlock_store::{Home, IngestRequest, InitOptions, Passphrase};
use airlock_types::{ActorId, Classification, DatasetName, Zone};
use serde_json::json;

fn ingest(name: &str, zone: Zone, class: Classification, files: Vec<PathBuf>) -> IngestRequest {
    IngestRequest {
        zone,
        classification: class,
        source_system: "bench".into(),
        dataset: DatasetName::new(name).unwrap(),
        files,
    }
}

/// A deployment with identified data in clinical, a de-identified derivative and a few
/// synthetic datasets in development.
async fn deployment(dir: &Path) -> Home {
    let opts = InitOptions {
        name: "apibench".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: None,
    };
    let home = Home::init(
        &dir.join("home"),
        &Passphrase::new("bench passphrase".into()),
        &opts,
        ActorId::new("operator").unwrap(),
    )
    .await
    .unwrap();
    let cohort = airlock_synth::generate(&airlock_synth::GenOptions::new(6, 7));
    let gen_dir = dir.join("gen");
    airlock_synth::write_all(&cohort, &gen_dir).unwrap();
    let bundles: Vec<PathBuf> = std::fs::read_dir(gen_dir.join("fhir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    home.ingest(
        &ingest("ehr", Zone::Clinical, Classification::Phi, bundles),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    airlock_service::gate::run_gate(
        &home,
        "safe-harbor",
        "ehr",
        &DatasetName::new("ehr-deid").unwrap(),
    )
    .await
    .unwrap();
    let csv = dir.join("synth.csv");
    std::fs::write(&csv, "age_band,sex,dx\n40-49,F,E11\n70-79,M,I10\n").unwrap();
    let synthetic = airlock_store::Attestation {
        basis: airlock_store::AttestationBasis::Synthetic,
        attested_by: ActorId::new("privacy-officer").unwrap(),
        reference: None,
    };
    for name in ["synth-a", "synth-b", "synth-c"] {
        home.import_attested(
            &ingest(
                name,
                Zone::Development,
                Classification::Synthetic,
                vec![csv.clone()],
            ),
            &synthetic,
            &mut |_, _| {},
        )
        .await
        .unwrap();
    }
    home
}

/// Enrol `user` with `role` and log in over TLS; returns the session token.
fn main() {
    common::init_tracing();
    let conns = usize::try_from(env_or("AIRLOCK_BENCH_CONNS", 16).max(1)).unwrap();
    let secs = env_or("AIRLOCK_BENCH_SECS", 5).max(1);
    let (rt, cores) = common::runtime();
    rt.block_on(bench(conns, secs, cores));
}

async fn bench(conns: usize, secs: u64, cores: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let home = deployment(tmp.path()).await;
    let state = AppState::new(home, Authorizer::new().unwrap(), IdentityPolicy::default()).unwrap();
    let common::Running {
        target,
        stop,
        server,
    } = common::serve(state).await;
    let addr = target.addr;
    let scientist = session(&target, "u-data-scientist", Role::DataScientist).await;
    let auditor = session(&target, "u-auditor", Role::Auditor).await;

    // The listing must return something, or the scenario measures an empty answer.
    let mut c = Client::connect(addr, "localhost", Arc::clone(&target.tls))
        .await
        .unwrap();
    let auth = format!("Bearer {scientist}");
    let listed = c
        .send("GET", "/v1/datasets", &[("authorization", &auth)], None)
        .await
        .unwrap();
    assert_eq!(listed.status, 200);
    let n_listed = listed.json()["datasets"].as_array().map_or(0, Vec::len);
    assert!(n_listed > 0, "the data scientist's listing is empty");
    drop(c);

    println!(
        "airlock-server API load benchmark: HTTPS (rustls, TLS 1.3) on loopback, HTTP/1.1 keep-alive"
    );
    println!(
        "{conns} connections per scenario, {}s warm-up then {secs}s measured; SQLite metadata; set up in {:.1}s",
        WARM_UP.as_secs(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "note: client and server share this machine's {cores} core(s) and one {cores}-worker tokio runtime; \
         figures are lower bounds for a dedicated server"
    );
    println!("the data scientist's listing returns {n_listed} datasets");
    println!();

    let scenarios = [
        Scenario {
            name: "GET /healthz",
            method: "GET",
            path: "/healthz",
            bearer: None,
            body: None,
            purpose: None,
        },
        Scenario {
            name: "GET /v1/datasets",
            method: "GET",
            path: "/v1/datasets",
            bearer: Some(scientist),
            body: None,
            purpose: None,
        },
        Scenario {
            name: "POST /v1/audit/search",
            method: "POST",
            path: "/v1/audit/search",
            bearer: Some(auditor),
            body: Some(json!({"events": ["login"], "limit": 50})),
            purpose: None,
        },
    ];
    let mut outcomes = Vec::new();
    for sc in &scenarios {
        if sc.path == "/v1/audit/search" {
            println!(
                "(the audit search filters every entry of the ledger per request (an in-memory index the server tops up from the WAL): {} entries at the start of this scenario)",
                target.state.home().ledger().size().unwrap()
            );
        }
        let o = run_scenario(&target, sc, conns, secs).await;
        report(sc.name, &o);
        outcomes.push(o);
    }

    println!();
    let base = &outcomes[0];
    for (sc, o) in scenarios.iter().zip(&outcomes).skip(1) {
        let short = if sc.path == "/v1/datasets" {
            "listing"
        } else {
            "audit-search"
        };
        println!(
            "ratio {short}/healthz throughput: {:.3}   p50 latency: {:.1}x   p99 latency: {:.1}x",
            o.throughput() / base.throughput(),
            o.percentile_ms(0.50) / base.percentile_ms(0.50),
            o.percentile_ms(0.99) / base.percentile_ms(0.99),
        );
    }

    let _ = stop.send(());
    let _ = server.await;
    let failed: usize = outcomes.iter().map(|o| o.failures).sum();
    if failed > 0 {
        panic!("{failed} requests did not return 200; see FAILURES above");
    }
    drop(tmp);
}
