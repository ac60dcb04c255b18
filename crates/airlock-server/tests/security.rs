#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! Regression tests for the findings of attacking Airlock (issue 28), one or more per finding,
//! named after it. Each failed before its fix.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use airlock_authz::Role;
use airlock_server::tls::{self, Limits, PeerAddr};
use axum::body::Body;
use axum::http::Request;
use common::{Db, World, user_of};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// A login request as if it came from `source`.
async fn login_from(w: &World, source: [u8; 4], user: &str, password: &str) -> (u16, Vec<u8>) {
    let body = json!({"username": user, "password": password, "totp": "000000"});
    let mut req = Request::builder()
        .method("POST")
        .uri("/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from((source, 40000))));
    let resp = w.app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").is_some();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    if status == 429 {
        assert!(retry, "a throttled login says when to retry");
    }
    (status, body)
}

/// Finding 3: one source flooding the login route gets its burst of password checks, then
/// 429s; another source is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_03_login_flood_from_one_source_is_throttled() {
    let policy = airlock_server::IdentityPolicy {
        login_burst: 5,
        login_per_second: 0.5,
        ..Default::default()
    };
    let w = World::with_policy(Db::Sqlite, policy).await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            login_from(&w, [198, 51, 100, 7], "nobody", "wrong password 1")
                .await
                .0,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    let other = login_from(&w, [198, 51, 100, 8], "nobody", "wrong password 1").await;
    assert_eq!(other.0, 401, "another source still gets its answer");
}

/// Finding 3: refused credentials are summarised per source and minute, not one durable entry
/// each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_03_unauthenticated_refusals_are_summarised_per_source() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let before = w.ledger_size();
    for _ in 0..50 {
        let mut req = Request::builder()
            .uri("/v1/auth/whoami")
            .header("authorization", "Bearer als_forged")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(PeerAddr(SocketAddr::from(([203, 0, 113, 9], 5555))));
        let r = w.app.clone().oneshot(req).await.unwrap();
        assert_eq!(r.status(), 401);
    }
    w.state.service().flush_refusals().await;
    let grown = w.ledger_size() - before;
    assert!(
        (1..=2).contains(&grown),
        "50 refusals took {grown} ledger entries"
    );
    let hits = w
        .state
        .service()
        .audit_search(airlock_ledger::Filter::default())
        .await
        .unwrap();
    let summary = hits
        .iter()
        .filter(|(i, _)| *i >= before)
        .find(|(_, e)| e.resources.iter().any(|r| r == "source:203.0.113.9"))
        .map(|(_, e)| e.outcome.reason.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(summary.starts_with("50 request(s) refused"), "{summary}");
}

async fn serve_with_limits(
    w: &World,
    limits: Limits,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (cert, key) = w.state.home().tls_identity().unwrap();
    let server_tls = tls::server_config(&cert, key.expose_secret()).unwrap();
    let listener = tls::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tls::serve_with(
        listener,
        server_tls,
        airlock_server::app(w.state.clone()),
        async move {
            let _ = stopped.await;
        },
        limits,
    ));
    (addr, stop)
}

/// Reads until the server closes the connection (or `limit` passes); how long that took.
async fn time_to_close(
    stream: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Finding 3: a client that connects and never starts TLS, or starts it and never sends a
/// request, or sends its headers a byte at a time, is cut off; the connection cap holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_03_slow_clients_are_cut_off() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let limits = Limits {
        max_connections: 4,
        handshake: Duration::from_millis(500),
        headers: Duration::from_millis(700),
        body: Duration::from_millis(700),
    };
    let (addr, stop) = serve_with_limits(&w, limits).await;

    // No handshake at all.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let closed = time_to_close(&mut silent, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "a silent TCP client was never cut off");

    // A handshake, then no request.
    let (cert, _) = w.state.home().tls_identity().unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(airlock_server::client::tls_config(&cert).unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut idle = connector.connect(name.clone(), tcp).await.unwrap();
    let closed = time_to_close(&mut idle, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "an idle TLS client was never cut off");

    // Headers a byte at a time, slower than the limit allows.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = connector.connect(name.clone(), tcp).await.unwrap();
    let start = Instant::now();
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1".iter() {
        if slow.write_all(&[*b]).await.is_err() || slow.flush().await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    if !cut {
        cut = time_to_close(&mut slow, Duration::from_secs(3))
            .await
            .is_some();
    }
    assert!(cut, "a slow-header client held its connection");

    // A body that never finishes.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stalled = connector.connect(name.clone(), tcp).await.unwrap();
    stalled
        .write_all(b"POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"username\":")
        .await
        .unwrap();
    stalled.flush().await.unwrap();
    let closed = time_to_close(&mut stalled, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "a stalled body held its connection");

    // Four idle TLS connections fill the cap; the fifth gets no handshake until one leaves.
    let mut held = Vec::new();
    for _ in 0..4 {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        held.push(connector.connect(name.clone(), tcp).await.unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        connector.connect(name.clone(), tcp),
    )
    .await;
    assert!(
        waiting.is_err(),
        "a fifth connection was served past the cap of four"
    );
    let _ = stop.send(());
}

/// Finding 10: a locked account answers exactly as a wrong password or an unknown name, so
/// the answer says neither that the name exists nor that the lock worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_10_lockout_does_not_reveal_the_account() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let user = user_of(Role::Auditor);
    for _ in 0..5 {
        assert_eq!(w.login(&user, "wrong password here").await.status, 401);
    }
    let locked = w.login(&user, common::PASSWORD).await;
    let unknown = w
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"username": "nobody-here", "password": "wrong password here", "totp": "123456"})),
        )
        .await;
    assert_eq!(locked.status, 401);
    assert_eq!(locked.status, unknown.status);
    assert_eq!(locked.body, unknown.body);
}

/// Finding 10: the ids the ledger uses for principals nobody logs in as cannot be created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_10_reserved_principal_ids_cannot_be_created() {
    let w = World::new(Db::Sqlite).await.unwrap();
    for id in [
        "anonymous",
        "local-operator",
        "operator:root@host",
        "Anonymous",
    ] {
        let r = w
            .as_role(
                Role::SecurityAdmin,
                "POST",
                "/v1/users",
                &[],
                Some(json!({"id": id, "kind": "service", "roles": ["clinician"]})),
            )
            .await;
        assert_eq!(r.status, 400, "{id}: {}", String::from_utf8_lossy(&r.body));
    }
}

/// Finding 16: a request with an invalid purpose header still leaves a ledger entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_16_invalid_purpose_is_recorded() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let before = w.ledger_size();
    let r = w
        .as_role(
            Role::Clinician,
            "GET",
            "/v1/datasets",
            &[("x-purpose-of-use", "curiosity")],
            None,
        )
        .await;
    r.assert_refused("X-Purpose-Of-Use", "curiosity");
    assert_eq!(w.ledger_size(), before + 1, "the refusal left no trace");
}

/// Finding 2: with the deployment's rollout rules, a canary above half the patients is
/// refused, and promotion waits for the soak (time and shown predictions), which the promote
/// transition's ledger entry names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_02_canary_share_is_capped_and_promotion_needs_soak() {
    use common::models::{silent_version, step};
    // The deployment's rules, but for silent mode's exit criterion (tested in
    // finding_02_promotion_counts_the_canarys_shown_predictions): a day would stop this test.
    let rules = airlock_store::RolloutConfig {
        min_silent_minutes: 0,
        min_silent_predictions: 0,
        ..Default::default()
    };
    let w = World::with_rules(Db::Sqlite, Default::default(), Some(rules))
        .await
        .unwrap();
    let v = silent_version(&w, 1).await;
    let deploy = format!("/v1/models/risk/versions/{v}/deploy");
    let all = step(
        &w,
        Role::MlopsEngineer,
        &deploy,
        json!({"state": "canary", "canary_percent": 100, "reason": "everyone at once"}),
    )
    .await;
    assert_eq!(all.status, 422, "{}", String::from_utf8_lossy(&all.body));
    assert!(String::from_utf8_lossy(&all.body).contains("at most 50%"));
    let half = step(
        &w,
        Role::MlopsEngineer,
        &deploy,
        json!({"state": "canary", "canary_percent": 50, "reason": "half"}),
    )
    .await;
    assert_eq!(half.status, 200);
    let early = step(
        &w,
        Role::MlopsEngineer,
        "/v1/models/risk/promote",
        json!({"reason": "looks fine"}),
    )
    .await;
    assert_eq!(early.status, 422);
    assert!(
        String::from_utf8_lossy(&early.body).contains("soaked 0 min with 0 shown predictions"),
        "{}",
        String::from_utf8_lossy(&early.body)
    );
}

/// Finding 2: the soak counts predictions shown from the canary since it became the canary,
/// and the promote transition records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_02_promotion_counts_the_canarys_shown_predictions() {
    use common::models::{TREAT, silent_version, step};
    let rules = airlock_store::RolloutConfig {
        max_canary_percent: 100.0,
        min_canary_minutes: 0,
        min_canary_predictions: 3,
        min_silent_minutes: 0,
        min_silent_predictions: 2,
    };
    let w = World::with_rules(Db::Sqlite, Default::default(), Some(rules))
        .await
        .unwrap();
    let v = silent_version(&w, 1).await;
    let deploy = format!("/v1/models/risk/versions/{v}/deploy");
    let canary = || {
        step(
            &w,
            Role::MlopsEngineer,
            &deploy,
            json!({"state": "canary", "canary_percent": 100, "reason": "all"}),
        )
    };
    let predict = |i: usize| {
        w.as_role(
            Role::Clinician,
            "POST",
            "/v1/models/risk/predict",
            TREAT,
            Some(json!({"patient_mrn": format!("MRN-{i}"), "features": {"x": 1.0, "c": "a"}})),
        )
    };
    // Silent mode's exit criterion (issue 29): two silent predictions before a canary, and
    // the refusal names the rule and the figures.
    for i in 0..2 {
        let early = canary().await;
        assert_eq!(early.status, 422, "a canary after {i} silent predictions");
        let text = String::from_utf8_lossy(&early.body);
        assert!(
            text.contains("min_silent_predictions") && text.contains(&format!("{i} silent")),
            "{text}"
        );
        assert_eq!(predict(100 + i).await.json()["display"], "none");
    }
    let r = canary().await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let promote = || {
        step(
            &w,
            Role::MlopsEngineer,
            "/v1/models/risk/promote",
            json!({"reason": "soaked"}),
        )
    };
    for i in 0..3 {
        assert_eq!(
            promote().await.status,
            422,
            "promoted after {i} predictions"
        );
        let p = predict(i).await;
        assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
    }
    let done = promote().await;
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    let reason = done.json()["transitions"]
        .as_array()
        .and_then(|t| t.last().cloned())
        .unwrap_or_default()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("with 3 shown predictions"), "{reason}");
}

/// Finding 9: a prediction is overridden by the clinician it was shown to (or one with a live
/// break-glass grant), an outcome is never silently replaced, prediction errors do not echo a
/// client's field names, and a caller who may not predict learns nothing about deployments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_09_overrides_outcomes_and_predict_errors() {
    use common::models::{TREAT, silent_version, step};
    let w = World::new(Db::Sqlite).await.unwrap();
    // Nothing deployed: an unauthorized caller gets 403, not the 404 that would say so.
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/models/risk/predict",
            TREAT,
            Some(json!({"patient_mrn": "MRN-1", "features": {"x": 1.0, "c": "a"}})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let v = silent_version(&w, 1).await;
    step(
        &w,
        Role::MlopsEngineer,
        &format!("/v1/models/risk/versions/{v}/deploy"),
        json!({"state": "canary", "canary_percent": 100, "reason": "all"}),
    )
    .await;
    let p = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/models/risk/predict",
            TREAT,
            Some(json!({"patient_mrn": "MRN-1", "features": {"x": 1.0, "c": "a"}})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
    let id = p.json()["prediction_id"].as_u64().unwrap();

    // A field the model does not know is refused without its name.
    let secret_key = "Jane-Doe-555-0142";
    let bad = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/models/risk/predict",
            TREAT,
            Some(json!({"patient_mrn": "MRN-1", "features": {"x": 1.0, "c": "a", secret_key: 1}})),
        )
        .await;
    bad.assert_refused("features", secret_key);
    let odd = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/models/risk/predict",
            TREAT,
            Some(json!({"patient_mrn": "MRN-1", "features": {secret_key: [1]}})),
        )
        .await;
    odd.assert_refused("features", secret_key);

    // Another clinician (a second account with the clinician role) may not override it.
    let other = airlock_types::ActorId::new("u-clinician-2").unwrap();
    let e = w
        .state
        .identities()
        .add_user(
            &airlock_types::ActorId::new("operator").unwrap(),
            &other,
            &[Role::Clinician],
            &airlock_crypto::Secret::new(common::PASSWORD.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let login = w
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(
                json!({"username": "u-clinician-2", "password": common::PASSWORD,
                        "totp": airlock_service::totp::code_at(e.secret.expose_secret(), now)}),
            ),
        )
        .await;
    assert_eq!(login.status, 200);
    let token = login.json()["token"].as_str().unwrap().to_string();
    let body = json!({"reason": "clinical-judgement", "decision": "low-risk"});
    let path = format!("/v1/predictions/{id}/override");
    let theirs = w
        .call("POST", &path, Some(&token), TREAT, Some(body.clone()))
        .await;
    assert_eq!(
        theirs.status,
        403,
        "{}",
        String::from_utf8_lossy(&theirs.body)
    );
    assert!(String::from_utf8_lossy(&theirs.body).contains("override-not-shown-to-caller"));
    let mine = w
        .as_role(Role::Clinician, "POST", &path, TREAT, Some(body))
        .await;
    assert_eq!(mine.status, 200, "{}", String::from_utf8_lossy(&mine.body));

    // The first outcome stands; a different one needs `correction`, and the ledger keeps both.
    let outcome = format!("/v1/predictions/{id}/outcome");
    let post = |label: bool, correction: Option<bool>| {
        let mut b = json!({"label": label});
        if let Some(c) = correction {
            b["correction"] = json!(c);
        }
        w.as_role(Role::Clinician, "POST", &outcome, TREAT, Some(b))
    };
    assert_eq!(post(true, None).await.status, 200);
    assert_eq!(
        post(false, None).await.status,
        409,
        "an outcome was overwritten"
    );
    assert_eq!(post(false, Some(true)).await.status, 200);
    let hits = w
        .state
        .service()
        .audit_search(airlock_ledger::Filter {
            events: vec![airlock_ledger::EventType::Outcome],
            ..Default::default()
        })
        .await
        .unwrap();
    let reasons: Vec<String> = hits
        .iter()
        .filter_map(|(_, e)| e.outcome.reason.clone())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[1].contains("corrected from true to false"),
        "{reasons:?}"
    );
}

/// Finding 16: a de-identification run a stopped server left `running` is marked failed by
/// the next server, and revoking a token twice says "token", not "principal".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_16_interrupted_runs_fail_and_token_refusals_name_tokens() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let db = w.state.home().db().clone();
    let mut tx = db.begin(&airlock_store::Scope::all()).await.unwrap();
    sqlx::query(
        "INSERT INTO deid_runs (id, zone, actor, profile, dataset, out_dataset, status, started_at) \
         VALUES ('00aa', 'airlock', 'u-privacy-officer', 'safe-harbor', 'ehr@1', 'x', 'running', '2020-01-01T00:00:00+00:00')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = w
        .as_role(Role::PrivacyOfficer, "GET", "/v1/deid-runs/00aa", &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "failed");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted")
    );

    let issued = w
        .as_role(
            Role::SecurityAdmin,
            "POST",
            "/v1/tokens",
            &[],
            Some(json!({"principal": "svc-ehr", "scopes": ["read-patient-record"], "days": 1})),
        )
        .await;
    assert_eq!(
        issued.status,
        201,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );
    let path = format!("/v1/tokens/{}", issued.json()["id"].as_str().unwrap());
    let first = w
        .as_role(Role::SecurityAdmin, "DELETE", &path, &[], None)
        .await;
    assert_eq!(first.status, 204);
    let again = w
        .as_role(Role::SecurityAdmin, "DELETE", &path, &[], None)
        .await;
    assert_eq!(again.status, 404);
    let text = String::from_utf8_lossy(&again.body);
    assert!(
        text.contains("token") && !text.contains("principal"),
        "{text}"
    );
}

/// Finding 8: a clinician opens a record by its record number only (an SSN finds nobody),
/// at a bounded rate, and nobody reviews their own break-glass grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_08_lookup_by_record_number_only_at_a_bounded_rate() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let treat = [("x-purpose-of-use", "treatment")];
    let lookup = |id: String| {
        w.as_role(
            Role::Clinician,
            "POST",
            "/v1/patients/lookup",
            &treat,
            Some(json!({"dataset": "ehr", "mrn": id})),
        )
    };
    let by_mrn = lookup(w.mrn.clone()).await;
    assert_eq!(
        by_mrn.status,
        200,
        "{}",
        String::from_utf8_lossy(&by_mrn.body)
    );
    // The same patient's SSN (in the synthetic cohort, the value after the MRN).
    let i = w.phi_values.iter().position(|v| *v == w.mrn).unwrap();
    let ssn = w.phi_values[i + 1].clone();
    assert_eq!(
        lookup(ssn).await.status,
        404,
        "a lookup by SSN found a patient"
    );
    let mut statuses = Vec::new();
    for _ in 0..airlock_service::LOOKUP_BURST + 2 {
        statuses.push(lookup(w.mrn.clone()).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .take(airlock_service::LOOKUP_BURST as usize - 2)
            .all(|s| *s == 200),
        "{statuses:?}"
    );
}

/// Finding 8: a clinician opens only the records of patients they treat: the record names
/// the practitioner they are linked to (here an Encounter's participant). Any other record
/// needs a break-glass grant under `emergency`; a clinician with no link, or a link row written
/// without the deployment's key, treats nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_08_a_clinician_opens_only_records_of_patients_they_treat() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let lookup = |mrn: String, purpose: &'static str| {
        let w = &w;
        async move {
            w.as_role(
                Role::Clinician,
                "POST",
                "/v1/patients/lookup",
                &[("x-purpose-of-use", purpose)],
                Some(json!({"dataset": "ehr", "mrn": mrn})),
            )
            .await
        }
    };
    let treated = lookup(w.mrn.clone(), "treatment").await;
    assert_eq!(
        treated.status,
        200,
        "{}",
        String::from_utf8_lossy(&treated.body)
    );
    let other = lookup(w.other_mrn.clone(), "treatment").await;
    assert_eq!(
        other.status, 403,
        "a clinician opened a patient they do not treat"
    );
    let text = String::from_utf8_lossy(&other.body);
    assert!(text.contains("treatment-relationship"), "{text}");
    assert!(
        !w.phi_values.iter().any(|v| text.contains(v.as_str())),
        "{text}"
    );
    // The refusal is in the ledger, naming the rule.
    let search = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"actor": "u-clinician", "patient_mrn": w.other_mrn})),
        )
        .await;
    assert!(
        String::from_utf8_lossy(&search.body).contains("treatment-relationship"),
        "{}",
        String::from_utf8_lossy(&search.body)
    );
    // In an emergency, under a break-glass grant for that patient, the record opens.
    let grant = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/break-glass",
            &[("x-purpose-of-use", "emergency")],
            Some(json!({"patient_mrn": w.other_mrn, "reason": "patient-unresponsive"})),
        )
        .await;
    assert_eq!(
        grant.status,
        201,
        "{}",
        String::from_utf8_lossy(&grant.body)
    );
    let emergency = lookup(w.other_mrn.clone(), "emergency").await;
    assert_eq!(
        emergency.status,
        200,
        "{}",
        String::from_utf8_lossy(&emergency.body)
    );

    // A link row someone rewrote in the database (to another practitioner) fails its seal.
    tamper(
        &w,
        "UPDATE practitioner_links SET value = 'someone-else' WHERE principal = 'u-clinician'",
    )
    .await;
    let forged = lookup(w.mrn.clone(), "treatment").await;
    assert_eq!(
        forged.status, 403,
        "a link written without the key was believed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_08_break_glass_is_not_reviewed_by_its_holder() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let both = airlock_types::ActorId::new("dr-both").unwrap();
    let e = w
        .state
        .identities()
        .add_user(
            &airlock_types::ActorId::new("operator").unwrap(),
            &both,
            &[Role::Clinician, Role::PrivacyOfficer],
            &airlock_crypto::Secret::new(common::PASSWORD.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let login = w
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"username": "dr-both", "password": common::PASSWORD,
                        "totp": airlock_service::totp::code_at(e.secret.expose_secret(), now)})),
        )
        .await;
    let token = login.json()["token"].as_str().unwrap().to_string();
    let emergency = [("x-purpose-of-use", "emergency")];
    let g = w
        .call(
            "POST",
            "/v1/break-glass",
            Some(&token),
            &emergency,
            Some(json!({"patient_mrn": w.mrn, "reason": "patient-unresponsive"})),
        )
        .await;
    assert_eq!(g.status, 201, "{}", String::from_utf8_lossy(&g.body));
    let path = format!(
        "/v1/break-glass/{}/review",
        g.json()["id"].as_str().unwrap()
    );
    let own = w
        .call(
            "POST",
            &path,
            Some(&token),
            &[],
            Some(json!({"outcome": "appropriate"})),
        )
        .await;
    assert_eq!(own.status, 403, "{}", String::from_utf8_lossy(&own.body));
    let other = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            &path,
            &[],
            Some(json!({"outcome": "appropriate"})),
        )
        .await;
    assert_eq!(other.status, 204);
}

/// Finding 1: a security administrator cannot give itself PHI access. A person it creates
/// enrols their own password and second factor from a one-time token (the administrator
/// sees neither), and a role that reaches PHI takes effect only when a second person (the
/// privacy officer) confirms it; services hold no person roles and their tokens no person
/// actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_01_an_administrator_cannot_make_a_puppet_clinician() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let admin = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let w = &w;
        async move {
            w.as_role(Role::SecurityAdmin, method, &path, &[], body)
                .await
        }
    };
    // The old way, with a password the administrator chooses, is refused.
    let with_pw = admin(
        "POST",
        "/v1/users".into(),
        Some(json!({"id": "dr-puppet", "kind": "user", "roles": ["clinician"], "password": "a long enough passphrase 9"})),
    )
    .await;
    assert_eq!(
        with_pw.status,
        400,
        "{}",
        String::from_utf8_lossy(&with_pw.body)
    );
    // A practitioner identity goes only with the clinician role.
    let misplaced = admin(
        "POST",
        "/v1/users".into(),
        Some(
            json!({"id": "dr-misplaced", "kind": "user", "roles": ["auditor"],
                    "practitioner": {"system": airlock_service::NPI_SYSTEM, "value": w.npi}}),
        ),
    )
    .await;
    misplaced.assert_refused("practitioner", "");
    let created = admin(
        "POST",
        "/v1/users".into(),
        Some(
            json!({"id": "dr-puppet", "kind": "user", "roles": ["clinician"],
                    "practitioner": {"system": airlock_service::NPI_SYSTEM, "value": w.npi}}),
        ),
    )
    .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let body = created.json();
    assert!(
        body.get("otpauth_uri").is_none(),
        "the administrator saw the second factor"
    );
    assert_eq!(body["pending_roles"], json!(["clinician"]));
    let token = body["enrolment_token"].as_str().unwrap().to_string();

    // Whoever holds the token (here, the administrator) sets a password and a second factor...
    let guessable = w
        .call(
            "POST",
            "/v1/enrol",
            None,
            &[],
            Some(json!({"token": token, "password": "Password2024!!"})),
        )
        .await;
    assert_eq!(guessable.status, 400, "a common password was accepted");
    let pw = "correct horse battery staple 7";
    let enrolled = w
        .call(
            "POST",
            "/v1/enrol",
            None,
            &[],
            Some(json!({"token": token, "password": pw})),
        )
        .await;
    assert_eq!(
        enrolled.status,
        200,
        "{}",
        String::from_utf8_lossy(&enrolled.body)
    );
    let again = w
        .call(
            "POST",
            "/v1/enrol",
            None,
            &[],
            Some(json!({"token": token, "password": pw})),
        )
        .await;
    assert_eq!(again.status, 401, "an enrolment token worked twice");
    let uri = enrolled.json()["otpauth_uri"].as_str().unwrap().to_string();
    let secret_b32 = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap()
        .to_string();
    let secret = airlock_service::totp::base32_decode(&secret_b32).unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let login = w
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"username": "dr-puppet", "password": pw, "totp": airlock_service::totp::code_at(&secret, now)})),
        )
        .await;
    assert_eq!(login.status, 200);
    let puppet = login.json()["token"].as_str().unwrap().to_string();
    // ...but the clinician role is not in effect: no record.
    let treat = [("x-purpose-of-use", "treatment")];
    let look = || {
        w.call(
            "POST",
            "/v1/patients/lookup",
            Some(&puppet),
            &treat,
            Some(json!({"dataset": "ehr", "mrn": w.mrn})),
        )
    };
    // (404: with no role in effect, the clinical dataset is outside every zone it may see.)
    let before = look().await.status;
    assert!(
        matches!(before, 403 | 404),
        "an unconfirmed clinician read a record: {before}"
    );
    // The administrator cannot confirm its own grant; the privacy officer can.
    let confirm = "/v1/users/dr-puppet/roles/clinician/confirm".to_string();
    assert_eq!(admin("POST", confirm.clone(), None).await.status, 403);
    let ok = w
        .as_role(Role::PrivacyOfficer, "POST", &confirm, &[], None)
        .await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let after = look().await;
    assert_eq!(
        after.status,
        200,
        "{}",
        String::from_utf8_lossy(&after.body)
    );

    // Services hold no person roles, and their tokens no person actions or long lives.
    let svc = admin(
        "POST",
        "/v1/users".into(),
        Some(json!({"id": "svc-officer", "kind": "service", "roles": ["privacy-officer"]})),
    )
    .await;
    assert_eq!(svc.status, 400, "{}", String::from_utf8_lossy(&svc.body));
    for (scopes, days) in [
        (json!(["manage-users"]), 1),
        (json!(["read-patient-record"]), 365),
    ] {
        let t = admin(
            "POST",
            "/v1/tokens".into(),
            Some(json!({"principal": "svc-ehr", "scopes": scopes, "days": days})),
        )
        .await;
        assert_eq!(t.status, 400, "{}", String::from_utf8_lossy(&t.body));
    }
}

/// Finding 16: the API does not serve metrics (request counts by route, decisions by action);
/// they are on a listener of their own the operator opts into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_16_metrics_are_not_on_the_api() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let r = w.call("GET", "/metrics", None, &[], None).await;
    assert_eq!(r.status, 404);
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let m = airlock_server::metrics_app(w.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
}

/// Finding 6: another Airlock deployment witnesses this one's ledger over the API (C2SP
/// tlog-witness `add-checkpoint`): it cosigns a checkpoint that extends what it saw, and
/// answers a rolled-back log with 409 and the size it cosigned, in the spec's media type.
#[tokio::test]
async fn finding_06_another_deployment_witnesses_over_the_api() {
    use airlock_authz::Authorizer;
    use airlock_crypto::KdfParams;
    use airlock_ledger::witness::{AddCheckpoint, CosignatureVerifier};
    use airlock_ledger::{Entry, EventType, OutcomeKind, Timestamp};
    use airlock_server::{AppState, IdentityPolicy};
    use airlock_store::{Home, InitOptions, Passphrase};
    use airlock_types::{ActorId, RequestId, Zone};

    let tmp = tempfile::tempdir().unwrap();
    let pass = || Passphrase::new("a witness route passphrase".into());
    let op = ActorId::new("operator").unwrap();
    let opts = |name: &str| InitOptions {
        name: name.into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: None,
    };
    let log = Home::init(&tmp.path().join("log"), &pass(), &opts("log"), op.clone())
        .await
        .unwrap();
    let append = |n: u8| {
        for i in 0..n {
            let e = Entry::new(
                Timestamp::now(),
                op.clone(),
                EventType::ConfigChange,
                Zone::Clinical,
                RequestId::from_bytes([i; 16]),
                OutcomeKind::Success,
            );
            log.ledger().append(&e).unwrap();
        }
    };
    // The witness trusts the log's key.
    let wit_dir = tmp.path().join("wit");
    Home::init(&wit_dir, &pass(), &opts("wit"), op.clone())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let config = wit_dir.join("airlock.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[witness]\nlogs = [\"{}\"]\n",
        log.verifier_key()
    ));
    std::fs::write(&config, text).unwrap();
    let wit = Home::open(&wit_dir, &pass(), op.clone()).await.unwrap();
    let state = AppState::new(wit, Authorizer::new().unwrap(), IdentityPolicy::default()).unwrap();
    let app = airlock_server::app(state);
    let post = |body: Vec<u8>| {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .method("POST")
                .uri("/v1/witness/add-checkpoint")
                .header("content-type", "text/plain")
                .body(Body::from(body))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, ct, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let request = |old: u64| {
        let cp = log.ledger().checkpoint().unwrap();
        let proof = log
            .ledger()
            .prove_consistency(old, cp.checkpoint.size)
            .unwrap();
        let body = AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: cp.text.clone(),
        }
        .to_body();
        (cp, body.into_bytes())
    };

    // The witness publishes its key; the cosignature verifies under it.
    let key = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/witness/key")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let key =
        String::from_utf8(key.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let verifier = CosignatureVerifier::parse(key.trim()).unwrap();
    append(3);
    let (cp, body) = request(0);
    // The document's pattern admits a real request (proof lines included, below).
    let doc = airlock_server::openapi::document();
    let pattern = doc["paths"]["/v1/witness/add-checkpoint"]["post"]["requestBody"]["content"]
        ["text/plain; charset=utf-8"]["schema"]["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    let shape = regex::Regex::new(&pattern).unwrap();
    assert!(shape.is_match(std::str::from_utf8(&body).unwrap()));
    let (status, _, lines) = post(body).await;
    assert_eq!(status, 200, "{lines}");
    let cosigned = verifier.verify(&format!("{}{lines}", cp.text)).unwrap();
    assert_eq!(cosigned.checkpoint.size, cp.checkpoint.size);

    // A client that claims the witness saw nothing is told the size it cosigned.
    append(2);
    let (_, body) = request(0);
    let (status, ct, size) = post(body).await;
    assert_eq!((status, ct.as_str()), (409, "text/x.tlog.size"));
    assert_eq!(size, format!("{}\n", cp.checkpoint.size));

    // Extending from what it cosigned is accepted.
    let (_, body) = request(cp.checkpoint.size);
    assert!(shape.is_match(std::str::from_utf8(&body).unwrap()));
    assert_eq!(post(body).await.0, 200);

    // Garbage is a 400 with the API's JSON error.
    let (status, ct, _) = post(b"not a request".to_vec()).await;
    assert_eq!((status, ct.as_str()), (400, "application/json"));
}

/// Runs `sql` on the identity tables as someone with database access and no key would.
async fn tamper(w: &World, sql: &str) {
    let db = w.state.home().db().clone();
    let mut tx = db.begin(&airlock_store::Scope::none()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    w.state.identities().forget_credentials();
}

// Finding 7: rows written with database access alone grant nothing. A session or a token
// inserted for a principal, a role added to a principal, a principal re-enabled or given a
// certificate: each fails its seal (an HMAC under a key the database does not hold), so the
// credential is refused. Before, each of these gave the access it named.
both!(finding_07_database_rows_grant_nothing);
async fn finding_07_database_rows_grant_nothing(db: Db) {
    use sha2::Digest as _;
    let Some(w) = World::new(db).await else {
        return;
    };
    let clinician = user_of(Role::Clinician);
    let scientist = user_of(Role::DataScientist);
    // A session row for the clinician, with the hash of a bearer the attacker chose.
    let bearer = format!("als_{}", "A".repeat(43));
    let hash = hex::encode(sha2::Sha256::digest(bearer.as_bytes()));
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::hours(1);
    tamper(
        &w,
        &format!(
            "INSERT INTO sessions (token_hash, principal, created_at, last_seen, expires_at) \
             VALUES ('{hash}', '{clinician}', '{}', '{}', '{}')",
            now.to_rfc3339(),
            now.to_rfc3339(),
            later.to_rfc3339()
        ),
    )
    .await;
    let r = w
        .call("GET", "/v1/auth/whoami", Some(&bearer), &[], None)
        .await;
    assert_eq!(r.status, 401, "an inserted session row was accepted");

    // A token row for the EHR service, scoped to read records.
    let token = format!("alk_{}", "B".repeat(43));
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    tamper(
        &w,
        &format!(
            "INSERT INTO api_tokens (id, token_hash, principal, scopes, created_at, expires_at) \
             SELECT 'forged', '{hash}', principal, 'read-patient-record', '{}', '{}' FROM api_tokens LIMIT 1",
            now.to_rfc3339(),
            later.to_rfc3339()
        ),
    )
    .await;
    let r = w
        .call("GET", "/v1/auth/whoami", Some(&token), &[], None)
        .await;
    assert_eq!(r.status, 401, "an inserted token row was accepted");

    // The data scientist's session works until someone adds a role to her row.
    let r = w
        .as_role(Role::DataScientist, "GET", "/v1/auth/whoami", &[], None)
        .await;
    assert_eq!(r.status, 200);
    tamper(
        &w,
        &format!(
            "UPDATE principals SET roles = 'data-scientist,clinician' WHERE id = '{scientist}'"
        ),
    )
    .await;
    let r = w
        .as_role(Role::DataScientist, "GET", "/v1/auth/whoami", &[], None)
        .await;
    assert_eq!(r.status, 401, "an edited role column was accepted");
    // Undone, the row's seal holds again.
    tamper(
        &w,
        &format!("UPDATE principals SET roles = 'data-scientist' WHERE id = '{scientist}'"),
    )
    .await;
    let r = w
        .as_role(Role::DataScientist, "GET", "/v1/auth/whoami", &[], None)
        .await;
    assert_eq!(r.status, 200);
}
