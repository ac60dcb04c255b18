#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! PHI never reaches the logs: the API suite's kinds of request, including failing ones that
//! carry identifying values in their bodies and headers, with every log level on, and the log
//! searched for the cohort's names, MRNs, SSNs, phones, e-mails and streets.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use airlock_authz::Role;
use common::{Db, World};
use serde_json::json;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn exercise(w: &World) {
    let treat = [("x-purpose-of-use", "treatment")];
    let emerg = [("x-purpose-of-use", "emergency")];
    let mrn = w.mrn.clone();
    let name = w.phi_values[0].clone();
    let ssn = w.phi_values[3].clone();
    for role in Role::ALL {
        w.as_role(role, "GET", "/v1/datasets", &[], None).await;
        w.as_role(
            role,
            "POST",
            "/v1/patients/lookup",
            &treat,
            Some(json!({"dataset": "ehr", "mrn": mrn})),
        )
        .await;
        w.as_role(
            role,
            "POST",
            "/v1/break-glass",
            &emerg,
            Some(json!({"patient_mrn": mrn, "reason": "urgent-consult"})),
        )
        .await;
        w.as_role(
            role,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"patient_mrn": mrn})),
        )
        .await;
        w.as_role(
            role,
            "POST",
            "/v1/audit/disclosures",
            &[],
            Some(json!({"patient_mrn": ssn})),
        )
        .await;
    }
    // Bad input that carries identifying values: in a field, an unknown field, a header, a path.
    w.as_role(
        Role::Auditor,
        "POST",
        "/v1/audit/search",
        &[],
        Some(json!({"actor": format!("{name} {ssn}")})),
    )
    .await;
    w.as_role(
        Role::Auditor,
        "POST",
        "/v1/audit/search",
        &[],
        Some(json!({name.clone(): ssn})),
    )
    .await;
    w.as_role(
        Role::Clinician,
        "POST",
        "/v1/patients/lookup",
        &[("x-purpose-of-use", &name)],
        Some(json!({"dataset": "ehr", "mrn": mrn})),
    )
    .await;
    w.as_role(
        Role::Clinician,
        "POST",
        "/v1/patients/lookup",
        &treat,
        Some(json!({"dataset": name, "mrn": ssn})),
    )
    .await;
    w.as_role(
        Role::Clinician,
        "POST",
        "/v1/patients/lookup",
        &treat,
        Some(json!({"dataset": "ehr", "mrn": ssn})),
    )
    .await;
    w.as_role(
        Role::PrivacyOfficer,
        "GET",
        &format!("/v1/datasets/{mrn}"),
        &[],
        None,
    )
    .await;
    w.call(
        "POST",
        "/v1/auth/login",
        None,
        &[],
        Some(json!({"username": name, "password": ssn, "totp": "000000"})),
    )
    .await;
    w.call("GET", "/v1/datasets", Some(&ssn), &[], None).await;
    let run = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            "/v1/deid-runs",
            &[],
            Some(json!({"profile": "safe-harbor", "dataset": "ehr", "out_dataset": "logs-deid"})),
        )
        .await;
    let id = run.json()["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let s = w
            .as_role(
                Role::PrivacyOfficer,
                "GET",
                &format!("/v1/deid-runs/{id}"),
                &[],
                None,
            )
            .await;
        if s.json()["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    w.as_role(
        Role::PrivacyOfficer,
        "GET",
        &format!("/v1/deid-runs/{id}/report"),
        &[],
        None,
    )
    .await;
    w.as_role(
        Role::DataScientist,
        "GET",
        "/v1/datasets/logs-deid/files/0",
        &[],
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phi_in_trace_logs() {
    let buf = Buf::default();
    let sink = buf.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();
    let mut worlds = Vec::new();
    for db in [Db::Sqlite, Db::Postgres] {
        if let Some(w) = World::new(db).await {
            exercise(&w).await;
            worlds.push(w);
        }
    }
    let log = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    assert!(
        log.lines().count() > 50,
        "the logs are suspiciously short: {} lines",
        log.lines().count()
    );
    for w in &worlds {
        for v in &w.phi_values {
            assert!(
                !log.contains(v.as_str()),
                "an identifying value of the cohort appears in the logs ({} lines searched)",
                log.lines().count()
            );
        }
    }
}
