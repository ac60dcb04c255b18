#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr
)]
//! Regression tests for the findings of attacking Airlock (issue 28), one or more per finding,
//! named after it. Each failed before its fix.

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
