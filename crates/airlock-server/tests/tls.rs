#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! End to end over a real TLS socket: bearer tokens, mutual TLS for a service identity, a
//! client certificate from another CA refused at the handshake, plain HTTP refused.

mod common;

use std::net::SocketAddr;

use airlock_authz::Role;
use airlock_server::client::{Client, tls_config, tls_config_with_identity};
use airlock_server::tls;
use airlock_types::ActorId;
use common::{Db, World};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

fn client_cert(ca: &Ca, name: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_mutual_tls_over_a_real_socket() {
    let w = World::new(Db::Sqlite).await.unwrap();
    let hospital_ca = ca("Hospital service CA");
    let (svc_cert, svc_key) = client_cert(&hospital_ca, "lab-bridge");
    let svc = ActorId::new("lab-bridge").unwrap();
    let ids = w.state.identities();
    ids.add_service(&svc, &svc, &[Role::Clinician])
        .await
        .unwrap();
    ids.set_client_cert(
        &svc,
        &tls::fingerprint_pem(&svc_cert).unwrap(),
        &[airlock_authz::Action::ReadPatientRecord],
    )
    .await
    .unwrap();

    let (cert, key) = w.state.home().tls_identity().unwrap();
    let server_tls =
        tls::server_config_mtls(&cert, key.expose_secret(), Some(&hospital_ca.pem)).unwrap();
    let listener = tls::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tls::serve(
        listener,
        server_tls,
        airlock_server::app(w.state.clone()),
        async move {
            let _ = stopped.await;
        },
    ));

    // A bearer token over TLS, and nothing without one.
    let mut c = Client::connect(addr, "localhost", tls_config(&cert).unwrap())
        .await
        .unwrap();
    assert_eq!(
        c.send("GET", "/v1/auth/whoami", &[], None)
            .await
            .unwrap()
            .status,
        401
    );
    let auth = format!("Bearer {}", w.sessions[&Role::DataScientist]);
    let r = c
        .send("GET", "/v1/auth/whoami", &[("authorization", &auth)], None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "u-data-scientist");
    assert_eq!(
        c.send("GET", "/healthz", &[], None).await.unwrap().status,
        200
    );

    // Mutual TLS: the service is its certificate.
    let mtls = tls_config_with_identity(&cert, Some((&svc_cert, svc_key.as_bytes()))).unwrap();
    let mut s = Client::connect(addr, "localhost", mtls).await.unwrap();
    let r = s.send("GET", "/v1/auth/whoami", &[], None).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["id"], "lab-bridge");
    assert_eq!(r.json()["kind"], "service");
    // Its certificate alone is one factor: no identified record (issue 28, finding 1)...
    let lookup = json!({"dataset": "ehr", "mrn": w.mrn});
    let r = s
        .send(
            "POST",
            "/v1/patients/lookup",
            &[("x-purpose-of-use", "treatment")],
            Some(&lookup),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("service-phi-two-factors"));
    // ...its token with its certificate is two, and reads the record.
    let token = ids
        .issue_token(&svc, &[airlock_authz::Action::ReadPatientRecord], 1)
        .await
        .unwrap()
        .bearer();
    let svc_auth = format!("Bearer {token}");
    let r = s
        .send(
            "POST",
            "/v1/patients/lookup",
            &[
                ("x-purpose-of-use", "treatment"),
                ("authorization", &svc_auth),
            ],
            Some(&lookup),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .send(
            "GET",
            "/v1/auth/whoami",
            &[("authorization", &svc_auth)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        r.json()["mfa"],
        true,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // Another service's token over this certificate is refused outright.
    let other_auth = format!("Bearer {}", w.service_token);
    let r = s
        .send(
            "GET",
            "/v1/auth/whoami",
            &[("authorization", &other_auth)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        r.status, 401,
        "one service's token passed with another's certificate"
    );
    // Its roles still bound it: no audit for a clinician service.
    let r = s.send("GET", "/v1/audit/verify", &[], None).await.unwrap();
    assert_eq!(r.status, 403);
    // And so does its certificate's scope (finding 16): its role lists datasets, its
    // certificate was registered to read records only.
    let r = s.send("GET", "/v1/datasets", &[], None).await.unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("credential-scope"));

    // A certificate from another CA never completes the handshake.
    let rogue_ca = ca("Rogue CA");
    let (rogue_cert, rogue_key) = client_cert(&rogue_ca, "lab-bridge");
    let rogue = tls_config_with_identity(&cert, Some((&rogue_cert, rogue_key.as_bytes()))).unwrap();
    let refused = match Client::connect(addr, "localhost", rogue).await {
        Err(_) => true,
        Ok(mut c) => c.send("GET", "/v1/auth/whoami", &[], None).await.is_err(),
    };
    assert!(
        refused,
        "a client certificate from an unknown CA was accepted"
    );

    // A valid certificate that no service registered authenticates nobody.
    let (other_cert, other_key) = client_cert(&hospital_ca, "someone-else");
    let other = tls_config_with_identity(&cert, Some((&other_cert, other_key.as_bytes()))).unwrap();
    let mut o = Client::connect(addr, "localhost", other).await.unwrap();
    assert_eq!(
        o.send("GET", "/v1/auth/whoami", &[], None)
            .await
            .unwrap()
            .status,
        401
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), raw.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));

    let _ = stop.send(());
    server.await.unwrap();
}
