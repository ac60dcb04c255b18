#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::type_complexity,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! The API suite, run against both metadata backends (SQLite always; PostgreSQL with row-level
//! security when `AIRLOCK_TEST_POSTGRES` names a server).

#[macro_use]
mod common;

use airlock_authz::Role;
use airlock_server::openapi::{ROUTES, document};
use airlock_types::Zone;
use common::{Db, World, user_of};
use serde_json::json;

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                if seg == "{index}" {
                    "0".to_string()
                } else {
                    "x".to_string()
                }
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

both!(every_route_requires_credentials);
async fn every_route_requires_credentials(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let before = w.ledger_size();
    let mut authenticated = 0;
    for r in ROUTES.iter() {
        let path = concrete(r.path);
        let body = r.body.map(|_| json!({}));
        let anon = w
            .call(&r.method.to_uppercase(), &path, None, &[], body.clone())
            .await;
        let forged = w
            .call(
                &r.method.to_uppercase(),
                &path,
                Some("als_forged"),
                &[],
                body,
            )
            .await;
        if r.authenticated {
            authenticated += 1;
            assert_eq!(
                anon.status, 401,
                "{} {} without credentials",
                r.method, r.path
            );
            assert_eq!(
                forged.status, 401,
                "{} {} with a forged token",
                r.method, r.path
            );
            assert_eq!(anon.json()["error"], "unauthenticated");
        } else {
            assert_ne!(anon.status, 401, "{} {} is public", r.method, r.path);
        }
    }
    assert!(authenticated >= 25, "{authenticated}");
    // Every refused request is in the ledger, counted in one entry per source, minute and
    // reason (one durable entry each let one client write thousands a second).
    w.state.service().flush_refusals().await;
    let counted: u64 = w
        .state
        .service()
        .audit_search(airlock_ledger::Filter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|(i, e)| *i >= before && e.actor.as_str() == "anonymous")
        .filter_map(|(_, e)| e.outcome.reason?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        counted,
        2 * authenticated,
        "unauthenticated requests missing from the ledger"
    );
}

#[tokio::test]
async fn openapi_document_matches_the_golden_file() {
    let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let doc = serde_json::to_string_pretty(&document()).unwrap() + "\n";
    if std::env::var("AIRLOCK_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(golden_path, &doc).unwrap();
    }
    let golden = std::fs::read_to_string(golden_path).unwrap();
    assert_eq!(
        doc, golden,
        "the OpenAPI document changed; review and run with AIRLOCK_UPDATE_GOLDEN=1"
    );
    // The document is served as is.
    let Some(w) = World::new(Db::Sqlite).await else {
        return;
    };
    let served = w.call("GET", "/openapi.json", None, &[], None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json(), document());
}

/// The datasets of the test world: name, zone, identified?, classification.
const DATASETS: &[(&str, Zone, &str)] = &[
    ("ehr", Zone::Clinical, "phi"),
    ("ehr-lds", Zone::Clinical, "limited-data-set"),
    ("ehr-deid", Zone::Development, "deidentified"),
    ("synth-dev", Zone::Development, "synthetic"),
    ("synth-stage", Zone::Staging, "synthetic"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DsAction {
    List,
    Read,
    Download,
}

/// What the issue says each role may do with datasets, written out independently of the
/// Cedar text.
fn expect_dataset(role: Role, action: DsAction, zone: Zone, class: &str) -> bool {
    let identified = matches!(class, "phi" | "limited-data-set");
    let outside_clinical = matches!(zone, Zone::Development | Zone::Staging);
    match role {
        // De-identified, synthetic and DP data in development and staging; never PHI.
        Role::DataScientist => outside_clinical && !identified,
        // Names of datasets (to deploy against), never contents.
        Role::MlopsEngineer => action == DsAction::List,
        // Oversight: list and read metadata everywhere; download de-identified for release review.
        Role::PrivacyOfficer => match action {
            DsAction::List | DsAction::Read => true,
            DsAction::Download => class == "deidentified",
        },
        // The expert of a determination: figures and paths, metadata, never contents.
        Role::DeidExpert => action != DsAction::Download,
        // Clinicians see patients, not bulk datasets; the rest see no data.
        Role::Clinician | Role::ClinicalReviewer | Role::SecurityAdmin | Role::Auditor => false,
    }
}

both!(role_zone_action_matrix);
async fn role_zone_action_matrix(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let mut cells = 0;
    for role in Role::ALL {
        let listed = w.as_role(role, "GET", "/v1/datasets", &[], None).await;
        let names: Vec<String> = if listed.status == 200 {
            listed.json()["datasets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect()
        } else {
            assert_eq!(listed.status, 403, "{role:?} list");
            Vec::new()
        };
        for &(name, zone, class) in DATASETS {
            // List.
            let want = expect_dataset(role, DsAction::List, zone, class);
            assert_eq!(
                names.contains(&name.to_string()),
                want,
                "{role:?} list {name}"
            );
            cells += 1;
            // Read metadata, and download, with and without a purpose of use.
            for purpose in [None, Some("operations"), Some("treatment")] {
                let headers: Vec<(&str, &str)> = purpose
                    .map(|p| ("x-purpose-of-use", p))
                    .into_iter()
                    .collect();
                let read = w
                    .as_role(role, "GET", &format!("/v1/datasets/{name}"), &headers, None)
                    .await;
                let want = expect_dataset(role, DsAction::Read, zone, class);
                assert_eq!(
                    read.status == 200,
                    want,
                    "{role:?} read {name} purpose {purpose:?}: {}",
                    read.status
                );
                if !want {
                    assert!(
                        matches!(read.status, 403 | 404),
                        "{role:?} read {name}: {}",
                        read.status
                    );
                }
                let dl = w
                    .as_role(
                        role,
                        "GET",
                        &format!("/v1/datasets/{name}/files/0"),
                        &headers,
                        None,
                    )
                    .await;
                let want = expect_dataset(role, DsAction::Download, zone, class);
                assert_eq!(
                    dl.status == 200,
                    want,
                    "{role:?} download {name} purpose {purpose:?}: {}",
                    dl.status
                );
                if !want {
                    assert!(
                        matches!(dl.status, 403 | 404),
                        "{role:?} download {name}: {}",
                        dl.status
                    );
                }
                cells += 2;
            }
        }

        // Everything else, one row per role.
        let allowed = |roles: &[Role]| roles.contains(&role);
        let checks: Vec<(
            &str,
            String,
            Vec<(&str, &str)>,
            Option<serde_json::Value>,
            bool,
        )> = vec![
            ("GET", "/v1/auth/whoami".into(), vec![], None, true),
            (
                "GET",
                "/v1/users".into(),
                vec![],
                None,
                allowed(&[Role::SecurityAdmin]),
            ),
            (
                "POST",
                "/v1/tokens".into(),
                vec![],
                Some(json!({"principal": "svc-ehr", "scopes": ["predict"], "days": 1})),
                allowed(&[Role::SecurityAdmin]),
            ),
            (
                "POST",
                "/v1/audit/search".into(),
                vec![],
                Some(json!({"limit": 5})),
                allowed(&[Role::PrivacyOfficer, Role::Auditor]),
            ),
            (
                "GET",
                "/v1/audit/verify".into(),
                vec![],
                None,
                allowed(&[Role::PrivacyOfficer, Role::Auditor]),
            ),
            (
                "GET",
                "/v1/audit/checkpoint".into(),
                vec![],
                None,
                allowed(&[Role::PrivacyOfficer, Role::Auditor]),
            ),
            (
                "GET",
                "/v1/audit/proofs/0".into(),
                vec![],
                None,
                allowed(&[Role::PrivacyOfficer, Role::Auditor]),
            ),
            (
                "GET",
                "/v1/audit/export?format=fhir".into(),
                vec![],
                None,
                allowed(&[Role::PrivacyOfficer, Role::Auditor]),
            ),
            (
                "POST",
                "/v1/audit/disclosures".into(),
                vec![],
                Some(json!({"patient_mrn": w.mrn})),
                allowed(&[Role::PrivacyOfficer, Role::Auditor]),
            ),
            (
                "GET",
                "/v1/break-glass".into(),
                vec![],
                None,
                allowed(&[Role::PrivacyOfficer, Role::Auditor]),
            ),
            (
                "POST",
                "/v1/deid-runs".into(),
                vec![],
                Some(
                    json!({"profile": "safe-harbor", "dataset": "ehr", "out_dataset": format!("run-{}", role.as_str())}),
                ),
                allowed(&[Role::PrivacyOfficer]),
            ),
            (
                "POST",
                "/v1/patients/lookup".into(),
                vec![("x-purpose-of-use", "treatment")],
                Some(json!({"dataset": "ehr", "mrn": w.mrn})),
                allowed(&[Role::Clinician]),
            ),
            // Without a purpose of use, nobody reads a patient record.
            (
                "POST",
                "/v1/patients/lookup".into(),
                vec![],
                Some(json!({"dataset": "ehr", "mrn": w.mrn})),
                false,
            ),
            // Research is not treatment.
            (
                "POST",
                "/v1/patients/lookup".into(),
                vec![("x-purpose-of-use", "research")],
                Some(json!({"dataset": "ehr", "mrn": w.mrn})),
                false,
            ),
            // Emergency without an open break-glass grant is refused.
            (
                "POST",
                "/v1/patients/lookup".into(),
                vec![("x-purpose-of-use", "emergency")],
                Some(json!({"dataset": "ehr", "mrn": w.mrn})),
                false,
            ),
            (
                "POST",
                "/v1/break-glass".into(),
                vec![("x-purpose-of-use", "emergency")],
                Some(json!({"patient_mrn": w.mrn, "reason": "patient-unresponsive", "minutes": 5})),
                allowed(&[Role::Clinician]),
            ),
        ];
        for (method, path, headers, body, want) in checks {
            let r = w.as_role(role, method, &path, &headers, body).await;
            let ok = (200..300).contains(&r.status);
            assert_eq!(
                ok,
                want,
                "{role:?} {method} {path} {headers:?}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            if !want {
                assert!(
                    matches!(r.status, 403 | 404),
                    "{role:?} {method} {path}: {}",
                    r.status
                );
            }
            cells += 1;
        }
    }
    assert_eq!(cells, Role::ALL.len() * (DATASETS.len() * 7 + 16));
}

both!(break_glass_is_allowed_flagged_and_reviewed);
async fn break_glass_is_allowed_flagged_and_reviewed(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let emergency = [("x-purpose-of-use", "emergency")];
    let lookup = json!({"dataset": "ehr", "mrn": w.mrn});
    let r = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/patients/lookup",
            &emergency,
            Some(lookup.clone()),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["message"].as_str().unwrap().contains("deny"),
        "{}",
        r.json()
    );
    // Open emergency access with a coded reason.
    let bg = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/break-glass",
            &emergency,
            Some(json!({"patient_mrn": w.mrn, "reason": "patient-unresponsive", "minutes": 10})),
        )
        .await;
    assert_eq!(bg.status, 201, "{}", String::from_utf8_lossy(&bg.body));
    let grant = bg.json()["id"].as_str().unwrap().to_string();
    // Refused, naming the field and never echoing the value: free text in the reason (it could
    // carry PHI into the ledger), and a record number that is empty (a grant for nobody), over
    // 128 characters, or holds a control character.
    let cases = [
        (w.mrn.clone(), "John Smith fell", "reason", "John"),
        (String::new(), "urgent-consult", "patient_mrn", ""),
        (
            "MRN-SECRET\u{7}".into(),
            "urgent-consult",
            "patient_mrn",
            "SECRET",
        ),
        (
            "SECRET".repeat(22),
            "urgent-consult",
            "patient_mrn",
            "SECRET",
        ),
    ];
    for (mrn, reason, field, secret) in cases {
        w.as_role(
            Role::Clinician,
            "POST",
            "/v1/break-glass",
            &emergency,
            Some(json!({"patient_mrn": mrn, "reason": reason})),
        )
        .await
        .assert_refused(field, secret);
    }
    w.as_role(
        Role::Clinician,
        "POST",
        "/v1/patients/lookup",
        &emergency,
        Some(json!({"dataset": "ehr", "mrn": ""})),
    )
    .await
    .assert_refused("mrn", "");
    // A record number sent as a JSON number is refused naming the field, and the number is
    // not repeated (serde's own message would quote it).
    w.as_role(
        Role::Clinician,
        "POST",
        "/v1/break-glass",
        &emergency,
        Some(json!({"patient_mrn": 4_815_162_342_u64, "reason": "urgent-consult"})),
    )
    .await
    .assert_refused("patient_mrn", "4815162342");
    // Characters are counted, not bytes: 128 two-byte characters are a valid record number.
    for (n, status) in [(128, 200), (129, 400)] {
        let r = w
            .as_role(
                Role::PrivacyOfficer,
                "POST",
                "/v1/audit/disclosures",
                &[],
                Some(json!({"patient_mrn": "é".repeat(n)})),
            )
            .await;
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/patients/lookup",
            &emergency,
            Some(lookup.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let bundle = r.json();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert!(bundle["total"].as_u64().unwrap() > 1);
    // Another clinician has no grant for this patient.
    // The ledger has its own event type, and the access names the grant.
    let search = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"events": ["break_glass_start"]})),
        )
        .await;
    assert_eq!(search.status, 200);
    assert_eq!(search.json()["total"], 1);
    let access = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"patient_mrn": w.mrn, "events": ["access"]})),
        )
        .await;
    let reasons = access.json()["entries"].to_string();
    assert!(
        reasons.contains(&format!("break-glass:{grant}")),
        "{reasons}"
    );
    // The privacy officer sees it pending and reviews it.
    let list = w
        .as_role(Role::PrivacyOfficer, "GET", "/v1/break-glass", &[], None)
        .await;
    let grants = list.json()["grants"].as_array().unwrap().clone();
    assert_eq!(grants.len(), 1);
    assert!(grants[0]["reviewed_at"].is_null());
    // The patient appears only as a pseudonym.
    assert!(!String::from_utf8_lossy(&list.body).contains(&w.mrn));
    let rv = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            &format!("/v1/break-glass/{grant}/review"),
            &[],
            Some(json!({"outcome": "appropriate"})),
        )
        .await;
    assert_eq!(rv.status, 204);
    let again = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            &format!("/v1/break-glass/{grant}/review"),
            &[],
            Some(json!({"outcome": "appropriate"})),
        )
        .await;
    assert_eq!(again.status, 404);
    // Services never break the glass (their token is not even scoped for it).
    let svc = w
        .call(
            "POST",
            "/v1/break-glass",
            Some(&w.service_token),
            &emergency,
            Some(json!({"patient_mrn": w.mrn, "reason": "urgent-consult"})),
        )
        .await;
    assert_eq!(svc.status, 403);
    // JSON Schema's integers include `10.0`: the OpenAPI document allows it, so the API does.
    let r = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/break-glass",
            &emergency,
            Some(json!({"patient_mrn": w.mrn, "reason": "urgent-consult", "minutes": 10.0})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    for minutes in [json!(10.5), json!(-3), json!(1e300)] {
        w.as_role(
            Role::Clinician,
            "POST",
            "/v1/break-glass",
            &emergency,
            Some(json!({"patient_mrn": w.mrn, "reason": "urgent-consult", "minutes": minutes})),
        )
        .await
        .assert_refused("minutes", &minutes.to_string());
    }
}

both!(sessions_lockout_and_tokens);
async fn sessions_lockout_and_tokens(db: Db) {
    // Idle sessions end after 4 s here: long enough for the world's sessions to last through
    // the Argon2 checks and record lookups below on a loaded PostgreSQL run (2 s did not).
    let policy = airlock_server::IdentityPolicy {
        idle_timeout: chrono::Duration::seconds(4),
        ..Default::default()
    };
    let Some(w) = World::with_policy(db, policy).await else {
        return;
    };
    // A wrong password five times locks the account, even against the right password; the
    // answer stays a wrong password's (see the security suite, finding 10).
    let user = user_of(Role::Auditor);
    for _ in 0..4 {
        assert_eq!(w.login(&user, "wrong password here").await.status, 401);
    }
    let fifth = w.login(&user, "wrong password here").await;
    assert_eq!(fifth.status, 401);
    assert_eq!(w.login(&user, common::PASSWORD).await.status, 401);
    // An unknown user gets the same answer as a wrong password.
    let unknown = w
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"username": "nobody", "password": "x", "totp": "123456"})),
        )
        .await;
    assert_eq!(unknown.status, 401);
    // A service token alone is one factor: no identified record (issue 28, finding 1; with
    // its client certificate over mutual TLS it reads them, see tls.rs).
    let treatment = [("x-purpose-of-use", "treatment")];
    let r = w
        .call(
            "POST",
            "/v1/patients/lookup",
            Some(&w.service_token),
            &treatment,
            Some(json!({"dataset": "ehr", "mrn": w.mrn})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("service-phi-two-factors"));
    let r = w
        .call("GET", "/v1/datasets", Some(&w.service_token), &[], None)
        .await;
    assert_eq!(r.status, 403);
    // Issue, use and revoke a token through the API (security administrator).
    let admin_token = w.sessions[&Role::SecurityAdmin].clone();
    let issued = w
        .call(
            "POST",
            "/v1/tokens",
            Some(&admin_token),
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
    let tok = issued.json()["token"].as_str().unwrap().to_string();
    let id = issued.json()["id"].as_str().unwrap().to_string();
    let r = w
        .call("GET", "/v1/auth/whoami", Some(&tok), &[], None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        w.call(
            "DELETE",
            &format!("/v1/tokens/{id}"),
            Some(&admin_token),
            &[],
            None
        )
        .await
        .status,
        204
    );
    let r = w
        .call("GET", "/v1/auth/whoami", Some(&tok), &[], None)
        .await;
    assert_eq!(r.status, 401);
    // Tokens are for services; people log in.
    let r = w
        .call(
            "POST",
            "/v1/tokens",
            Some(&admin_token),
            &[],
            Some(json!({"principal": user_of(Role::Clinician), "scopes": ["predict"], "days": 1})),
        )
        .await;
    // Well formed, but it does not fit that principal: a conflict, not a bad request.
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    // Logout ends a session at once.
    let ca = w.sessions[&Role::ClinicalReviewer].clone();
    assert_eq!(
        w.call("POST", "/v1/auth/logout", Some(&ca), &[], None)
            .await
            .status,
        204
    );
    assert_eq!(
        w.call("GET", "/v1/auth/whoami", Some(&ca), &[], None)
            .await
            .status,
        401
    );
    // A TOTP code is good once: the same code a second time fails.
    let user = user_of(Role::ClinicalReviewer);
    let code = w.code(&user);
    let body = json!({"username": user, "password": common::PASSWORD, "totp": code});
    let first = w
        .call("POST", "/v1/auth/login", None, &[], Some(body.clone()))
        .await;
    let second = w
        .call("POST", "/v1/auth/login", None, &[], Some(body))
        .await;
    // The world's own login may already have used this step's code; either way, never twice.
    assert!(!(first.status == 200 && second.status == 200));
    assert_eq!(second.status, 401);
    // And the refusal says why (issue 29): the code was used, not wrong.
    let text = String::from_utf8_lossy(&second.body);
    assert!(text.contains("used already"), "{text}");
    // A session ends after inactivity (automatic logoff): a fresh user, logged in now.
    let fresh = airlock_types::ActorId::new("u-fresh").unwrap();
    let e = w
        .state
        .identities()
        .add_user(
            &fresh,
            &fresh,
            &[Role::DataScientist],
            &airlock_crypto::Secret::new(common::PASSWORD.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let code = airlock_service::totp::code_at(
        e.secret.expose_secret(),
        chrono::Utc::now().timestamp() as u64,
    );
    let l = w
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"username": "u-fresh", "password": common::PASSWORD, "totp": code})),
        )
        .await;
    assert_eq!(l.status, 200);
    let ds = l.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        w.call("GET", "/v1/auth/whoami", Some(&ds), &[], None)
            .await
            .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    assert_eq!(
        w.call("GET", "/v1/auth/whoami", Some(&ds), &[], None)
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_query_parameters_are_refused_like_bodies() {
    let Some(w) = World::new(Db::Sqlite).await else {
        return;
    };
    // (role, path, the parameter named, a value that must not come back)
    let cases = [
        (Role::Auditor, "GET", "/v1/audit/proofs/-1", "index", "-1"),
        (
            Role::Auditor,
            "GET",
            "/v1/audit/proofs/184467440737095516160",
            "index",
            "184467440737095516160",
        ),
        (
            Role::Auditor,
            "GET",
            "/v1/audit/export?format=JaneDoe",
            "format",
            "JaneDoe",
        ),
        (
            Role::Auditor,
            "GET",
            "/v1/audit/export?format=jsonl&format=fhir",
            "format",
            "",
        ),
        (
            Role::PrivacyOfficer,
            "GET",
            "/v1/datasets/ehr?version=4294967296",
            "version",
            "4294967296",
        ),
        (
            Role::PrivacyOfficer,
            "GET",
            "/v1/datasets/ehr/files/x9?version=1",
            "index",
            "x9",
        ),
        (
            Role::Clinician,
            "POST",
            "/v1/predictions/-7/outcome",
            "index",
            "-7",
        ),
    ];
    for (role, method, path, field, value) in cases {
        let body = (method == "POST").then(|| json!({"label": true}));
        // `call` also checks the answer is a status the OpenAPI document lists and a JSON body.
        w.as_role(
            role,
            method,
            path,
            &[("x-purpose-of-use", "operations")],
            body,
        )
        .await
        .assert_refused(field, value);
    }
}

both!(no_route_leaks_another_zone_or_value);
async fn no_route_leaks_another_zone_or_value(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    // A data scientist cannot tell a clinical dataset from a missing one.
    let a = w
        .as_role(Role::DataScientist, "GET", "/v1/datasets/ehr", &[], None)
        .await;
    let b = w
        .as_role(
            Role::DataScientist,
            "GET",
            "/v1/datasets/no-such-thing",
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body, b.body);
    // Lineage of a de-identified version names its clinical parent but shows no clinical detail.
    let l = w
        .as_role(
            Role::DataScientist,
            "GET",
            "/v1/datasets/ehr-deid/lineage",
            &[],
            None,
        )
        .await;
    assert_eq!(l.status, 200);
    let chain = l.json()["lineage"].as_array().unwrap().clone();
    assert_eq!(chain.len(), 1, "a clinical ancestor was shown: {chain:?}");
    // The privacy officer sees the whole chain.
    let l = w
        .as_role(
            Role::PrivacyOfficer,
            "GET",
            "/v1/datasets/ehr-deid/lineage",
            &[],
            None,
        )
        .await;
    assert_eq!(l.json()["lineage"].as_array().unwrap().len(), 2);
    // Bad input is refused naming the field, never echoing the value.
    let secret_value = w.phi_values[0].clone();
    let r = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"actor": format!("{secret_value} !"), "limit": 1})),
        )
        .await;
    r.assert_refused("actor", &secret_value);
    let r = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"nonsense": secret_value})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.body).contains(&secret_value));
    let r = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/patients/lookup",
            &[("x-purpose-of-use", &secret_value)],
            Some(json!({"dataset": "ehr", "mrn": w.mrn})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.body).contains(&secret_value));
    // The de-identification run over the API produces a development version and a report.
    let run = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            "/v1/deid-runs",
            &[],
            Some(json!({"profile": "safe-harbor", "dataset": "ehr", "out_dataset": "api-deid"})),
        )
        .await;
    assert_eq!(run.status, 202);
    let id = run.json()["id"].as_str().unwrap().to_string();
    let mut status = String::new();
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
        status = s.json()["status"].as_str().unwrap_or("").to_string();
        if status != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "succeeded");
    let rep = w
        .as_role(
            Role::PrivacyOfficer,
            "GET",
            &format!("/v1/deid-runs/{id}/report"),
            &[],
            None,
        )
        .await;
    assert_eq!(rep.status, 200);
    let rep_text = String::from_utf8_lossy(&rep.body);
    for v in &w.phi_values {
        assert!(
            !rep_text.contains(v.as_str()),
            "the report carries an identifying value"
        );
    }
    // The new version is visible to a data scientist and downloadable without PHI.
    let dl = w
        .as_role(
            Role::DataScientist,
            "GET",
            "/v1/datasets/api-deid/files/0",
            &[],
            None,
        )
        .await;
    assert_eq!(dl.status, 200);
    let body = String::from_utf8_lossy(&dl.body);
    for v in &w.phi_values {
        assert!(
            !body.contains(v.as_str()),
            "de-identified download carries an identifying value"
        );
    }
    // A login typed with a patient's name as the user name leaves no name in the ledger.
    let typed = w
        .call(
            "POST",
            "/v1/auth/login",
            None,
            &[],
            Some(json!({"username": w.phi_values[1], "password": "x", "totp": "000000"})),
        )
        .await;
    assert_eq!(typed.status, 401);
    // The whole ledger verifies, and every entry is free of the cohort's identifying values.
    let v = w
        .as_role(Role::Auditor, "GET", "/v1/audit/verify", &[], None)
        .await;
    assert_eq!(v.json()["verified"], true, "{}", v.json());
    let export = w
        .as_role(Role::Auditor, "GET", "/v1/audit/export", &[], None)
        .await;
    let text = String::from_utf8_lossy(&export.body);
    assert!(text.lines().count() > 20);
    for v in &w.phi_values {
        assert!(
            !text.contains(v.as_str()),
            "a ledger entry carries an identifying value"
        );
    }
}

both!(every_request_is_in_the_ledger);
async fn every_request_is_in_the_ledger(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let before = w.ledger_size();
    let n = 12;
    for i in 0..n {
        let role = if i % 2 == 0 {
            Role::DataScientist
        } else {
            Role::SecurityAdmin
        };
        let r = w
            .as_role(role, "GET", "/v1/datasets/ehr-deid", &[], None)
            .await;
        assert!(matches!(r.status, 200 | 403 | 404), "{}", r.status);
    }
    let after = w.ledger_size();
    assert!(
        after - before >= n,
        "{} entries for {n} requests",
        after - before
    );
    let s = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"actor": user_of(Role::SecurityAdmin), "events": ["policy_decision"]})),
        )
        .await;
    let entries = s.json()["entries"].as_array().unwrap().clone();
    let denied: Vec<_> = entries
        .iter()
        .filter(|e| e["entry"]["outcome"]["result"] == "denied")
        .collect();
    assert!(denied.len() >= (n / 2) as usize, "{}", denied.len());
    assert!(
        denied[0]["entry"]["outcome"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("forbid:")
            || denied[0]["entry"]["outcome"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("deny:")
    );
}

/// Revokes every API token straight in the database, as another process (the CLI) would, so
/// the server's credential cache is not told.
async fn revoke_every_token_elsewhere(w: &World) {
    let mut tx = w
        .state
        .home()
        .db()
        .begin(&airlock_store::Scope::none())
        .await
        .unwrap();
    sqlx::query("UPDATE api_tokens SET revoked_at = $1")
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

both!(a_credential_in_steady_use_is_checked_again_by_one_request_at_a_time);
async fn a_credential_in_steady_use_is_checked_again_by_one_request_at_a_time(db: Db) {
    let ttl = std::time::Duration::from_secs(1);
    let policy = airlock_server::IdentityPolicy {
        credential_cache: ttl,
        ..Default::default()
    };
    let Some(w) = World::with_policy(db, policy).await else {
        return;
    };
    let ids = w.state.identities().clone();
    let hammer = |ids: airlock_service::identity::Identities, token: String, run_for| async move {
        // 32 callers at once, each about 1,000 calls a second, as the requests of a busy
        // integration engine are.
        let callers: Vec<_> = (0..32)
            .map(|_| {
                let (ids, token) = (ids.clone(), token.clone());
                tokio::spawn(async move {
                    let (start, mut outcomes) = (std::time::Instant::now(), Vec::new());
                    while start.elapsed() < run_for {
                        let a = ids.authenticate(&token, chrono::Utc::now()).await.unwrap();
                        outcomes.push((start.elapsed(), a.is_some()));
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    outcomes
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in callers {
            all.extend(c.await.unwrap());
        }
        all
    };
    // Checked once, so the callers start with a fresh answer.
    assert!(
        ids.authenticate(&w.service_token, chrono::Utc::now())
            .await
            .unwrap()
            .is_some()
    );
    let before = ids.credential_lookups();
    let run_for = ttl * 3;
    let outcomes = hammer(ids.clone(), w.service_token.clone(), run_for).await;
    let lookups = ids.credential_lookups() - before;
    assert!(outcomes.iter().all(|(_, ok)| *ok));
    assert!(outcomes.len() > 1000, "{} calls", outcomes.len());
    // One refresh each half cache time: about 6. Without the refresh, every caller that found
    // the answer expired asked (32 at a time, 3 times).
    let most = 2 + (run_for.as_millis() / (ttl / 2).as_millis()) as u64;
    assert!(
        lookups <= most,
        "{lookups} database lookups for {} calls in {run_for:?} (at most {most})",
        outcomes.len()
    );
    // Revoked elsewhere while in steady use: the refreshes keep the answer from living past
    // the cache time.
    revoke_every_token_elsewhere(&w).await;
    let outcomes = hammer(ids, w.service_token.clone(), ttl * 2).await;
    let late: Vec<_> = outcomes
        .iter()
        .filter(|(at, ok)| *ok && *at >= ttl)
        .collect();
    assert!(
        late.is_empty(),
        "{} calls trusted a revoked token after the cache time",
        late.len()
    );
    assert!(outcomes.iter().any(|(_, ok)| !*ok));
}

both!(a_credential_revoked_elsewhere_ends_within_the_cache_time);
async fn a_credential_revoked_elsewhere_ends_within_the_cache_time(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let lookup = || w.call("GET", "/v1/auth/whoami", Some(&w.service_token), &[], None);
    assert_eq!(lookup().await.status, 200);
    // Another process (the CLI) revokes the token: straight in the database, so this server's
    // cache is not told.
    revoke_every_token_elsewhere(&w).await;
    let ttl = airlock_server::IdentityPolicy::default().credential_cache;
    tokio::time::sleep(ttl + std::time::Duration::from_millis(100)).await;
    assert_eq!(
        lookup().await.status,
        401,
        "a revoked token must stop working within the credential cache time"
    );
}

/// A run's final status and error, polled.
async fn finished_run(w: &World, id: &str) -> (String, String) {
    for _ in 0..400 {
        let s = w
            .as_role(
                Role::PrivacyOfficer,
                "GET",
                &format!("/v1/deid-runs/{id}"),
                &[],
                None,
            )
            .await;
        let j = s.json();
        let status = j["status"].as_str().unwrap_or("").to_string();
        if status != "running" {
            return (status, j["error"].as_str().unwrap_or("").to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the run did not finish");
}

async fn start_run(w: &World, profile: &str, out: &str) -> String {
    let run = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            "/v1/deid-runs",
            &[],
            Some(json!({"profile": profile, "dataset": "ehr", "out_dataset": out})),
        )
        .await;
    assert_eq!(run.status, 202, "{}", String::from_utf8_lossy(&run.body));
    run.json()["id"].as_str().unwrap().to_string()
}

// Issue 29: an expert-determination release without a signed determination is refused; a
// person with the deid-expert role signs one over findings the server computes (no values),
// and the same release then runs, carrying the determination, under its conditions.
both!(expert_determination_gates_the_release);
async fn expert_determination_gates_the_release(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let id = start_run(&w, "expert-determination", "ehr-research").await;
    let (status, error) = finished_run(&w, &id).await;
    assert_eq!(status, "failed");
    assert!(error.contains("no expert determination covers"), "{error}");
    let expires = (chrono::Utc::now().date_naive() + chrono::Days::new(30))
        .format("%Y-%m-%d")
        .to_string();
    let body = |expires: &str| {
        json!({
            "dataset": "ehr",
            "profile": "expert-determination",
            "method": "k-anonymity on birth year, sex, zip3, race, ethnicity; leak check",
            "conditions": {
                "recipients": ["readmission study"],
                "environment": "development zone",
                "expires": expires,
            },
        })
    };
    // Only the expert signs: not the privacy officer who runs the gate; a data scientist
    // does not even learn the clinical dataset exists.
    for (role, status) in [(Role::PrivacyOfficer, 403), (Role::DataScientist, 404)] {
        let r = w
            .as_role(
                role,
                "POST",
                "/v1/expert-determinations",
                &[],
                Some(body(&expires)),
            )
            .await;
        assert_eq!(r.status, status, "{role}");
    }
    let r = w
        .as_role(
            Role::DeidExpert,
            "POST",
            "/v1/expert-determinations",
            &[],
            Some(body("2020-01-01")),
        )
        .await;
    r.assert_refused("conditions.expires", "");
    let r = w
        .as_role(
            Role::DeidExpert,
            "POST",
            "/v1/expert-determinations",
            &[],
            Some(body(&expires)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8_lossy(&r.body).to_string();
    for v in &w.phi_values {
        assert!(
            !text.contains(v.as_str()),
            "a determination carries a value"
        );
    }
    let d = r.json();
    assert_eq!(d["expert"], user_of(Role::DeidExpert));
    assert_eq!(d["source"], "ehr@1");
    assert_eq!(d["conditions"]["expires"], expires.as_str());
    assert_eq!(d["signature"].as_str().unwrap().len(), 128);
    assert!(d["findings"]["records_in"].as_u64().unwrap() > 0);
    let det_id = d["id"].as_str().unwrap().to_string();

    let id = start_run(&w, "expert-determination", "ehr-research").await;
    let (status, error) = finished_run(&w, &id).await;
    assert_eq!(status, "succeeded", "{error}");
    // The determination travels with the version, and the ledger names it.
    let files = w
        .as_role(
            Role::PrivacyOfficer,
            "GET",
            "/v1/datasets/ehr-research",
            &[],
            None,
        )
        .await;
    assert_eq!(files.status, 200);
    let detail = files.json().to_string();
    assert!(detail.contains(&det_id), "{detail}");
    let search = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"events": ["expert_determination"]})),
        )
        .await;
    assert_eq!(search.status, 200);
    assert_eq!(search.json()["total"], 1);
    let runs = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"events": ["deid_run"]})),
        )
        .await;
    assert!(
        runs.json().to_string().contains(&det_id),
        "the release's entry names the determination"
    );
    // Safe Harbor needs no determination and takes none.
    let id = start_run(&w, "safe-harbor", "ehr-sh").await;
    assert_eq!(finished_run(&w, &id).await.0, "succeeded");
}

// Issue 26: the spec's `$run` over resources sent with it, and over a dataset version as a
// download (the policy and the zone rules decide).
both!(views_run_over_resources_and_datasets);
async fn views_run_over_resources_and_datasets(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let view = json!({"resource": "Patient", "select": [{"column": [
        {"name": "id", "path": "getResourceKey()", "type": "id"},
        {"name": "gender", "path": "gender", "type": "code"}]}]});
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/views/$run",
            &[],
            Some(json!({"view": view, "resources": [
                {"resourceType": "Patient", "id": "a", "gender": "female"},
                {"resourceType": "Bundle", "type": "collection", "entry": [
                    {"resource": {"resourceType": "Patient", "id": "b", "gender": "male"}},
                    {"resource": {"resourceType": "Observation", "id": "o"}}]}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"columns": ["id", "gender"], "rows": [
            {"id": "a", "gender": "female"}, {"id": "b", "gender": "male"}]})
    );
    // Over the de-identified version: one row per patient; over the clinical one, a data
    // scientist learns nothing, and the privacy officer may not download PHI.
    let over = |ds: &str| json!({"view": view, "dataset": ds});
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/views/$run",
            &[],
            Some(over("ehr-deid")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 6);
    let text = String::from_utf8_lossy(&r.body).to_string();
    for v in &w.phi_values {
        assert!(!text.contains(v.as_str()));
    }
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/views/$run",
            &[],
            Some(over("ehr")),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            "/v1/views/$run",
            &[],
            Some(over("ehr")),
        )
        .await;
    assert_eq!(r.status, 403);
    // A bad view is named, not run.
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/views/$run",
            &[],
            Some(
                json!({"view": {"resource": "Patient", "select": [{"column": [
                {"name": "x", "path": "name.resolve()"}]}]}, "resources": []}),
            ),
        )
        .await;
    r.assert_refused("view", "");
}

// Issue 21: DP questions over the API. The privacy officer declares the metadata and the
// budgets; a data scientist asks the clinical FHIR dataset through its views (a join of two
// private tables on the patient) and gets noisy figures, never a value; the budget refuses the
// question that would overspend it, and the ledger has both.
both!(dp_questions_over_identified_fhir);
async fn dp_questions_over_identified_fhir(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let ask = |sql: &str, epsilon: f64| json!({"dataset": "ehr", "sql": sql, "epsilon": epsilon});
    let sql = "SELECT p.gender, COUNT(*) AS encounters, COUNT(DISTINCT e.patient_id) AS patients \
               FROM encounters e JOIN patient_demographics p ON e.patient_id = p.patient_id \
               GROUP BY p.gender";
    // Before the metadata: refused (422), naming what is missing.
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/dp/queries",
            &[],
            Some(ask(sql, 1.0)),
        )
        .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    // A data scientist may not declare metadata or budgets.
    let meta = json!({"dataset": "ehr", "unit": "patient_id", "max_rows_per_unit": 20,
        "domains": {"gender": ["female", "male", "other", "unknown"]}});
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/dp/metadata",
            &[],
            Some(meta.clone()),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = w
        .as_role(
            Role::PrivacyOfficer,
            "POST",
            "/v1/dp/metadata",
            &[],
            Some(meta),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["version"], 1);
    let analyst = common::user_of(Role::DataScientist);
    for body in [
        json!({"dataset": "ehr", "analyst": analyst, "epsilon": 1.2}),
        json!({"dataset": "ehr", "epsilon": 10.0}),
    ] {
        let r = w
            .as_role(
                Role::PrivacyOfficer,
                "POST",
                "/v1/dp/budgets",
                &[],
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/dp/queries",
            &[],
            Some(ask(sql, 1.0)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let a = r.json();
    assert_eq!(a["rows"].as_array().unwrap().len(), 4);
    assert_eq!(a["mechanism"], "discrete-laplace");
    assert!(a["accuracy"]["encounters"].as_f64().unwrap() > 0.0);
    let text = String::from_utf8_lossy(&r.body).to_string();
    for v in &w.phi_values {
        assert!(!text.contains(v.as_str()), "a PHI value in a DP answer");
    }
    // ε 1 of 1.2 spent: one more at ε 1 is refused by the budget.
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/dp/queries",
            &[],
            Some(ask(sql, 1.0)),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(String::from_utf8_lossy(&r.body).contains("your budget"));
    let r = w
        .as_role(Role::DataScientist, "GET", "/v1/dp/budgets", &[], None)
        .await;
    assert_eq!(r.status, 200);
    let mine = r.json()["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["analyst"] == analyst.as_str())
        .cloned()
        .unwrap();
    assert!(
        (mine["remaining"].as_f64().unwrap() - 0.2).abs() < 1e-9,
        "{mine}"
    );
    // A form outside the subset is refused with its reason; a clinician may not ask at all.
    let r = w
        .as_role(
            Role::DataScientist,
            "POST",
            "/v1/dp/queries",
            &[],
            Some(ask("SELECT patient_id FROM patient_demographics", 0.1)),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/dp/queries",
            &[],
            Some(ask(sql, 0.1)),
        )
        .await;
    assert_eq!(r.status, 403);
    // One who cannot see the clinical zone learns nothing, not even that the name exists.
    let r = w
        .as_role(
            Role::SecurityAdmin,
            "POST",
            "/v1/dp/queries",
            &[],
            Some(ask(sql, 0.1)),
        )
        .await;
    assert_eq!(r.status, 404);
    // The ledger has the release and the refusal.
    let r = w
        .as_role(
            Role::Auditor,
            "POST",
            "/v1/audit/search",
            &[],
            Some(json!({"events": ["dp_release"]})),
        )
        .await;
    assert_eq!(r.status, 200);
    let entries = r.json()["entries"].as_array().unwrap().clone();
    assert!(
        entries
            .iter()
            .any(|e| e["entry"]["outcome"]["result"] == "success"),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["entry"]["outcome"]["result"] == "denied"),
        "{entries:?}"
    );
}

both!(incident_findings_over_the_api);
// Issue 24's detection over the API: the test deployment's own setup raises nothing; a burst of
// failed logins against one account does, citing exactly its entries; only those who read the
// audit may scan, and the scan is itself in the ledger.
async fn incident_findings_over_the_api(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let r = w
        .as_role(Role::Auditor, "GET", "/v1/incidents/findings", &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let quiet = r.json();
    assert_eq!(quiet["verified"], true, "{quiet:#}");
    assert_eq!(quiet["findings"], json!([]), "{quiet:#}");
    let first = w.ledger_size();
    let victim = user_of(Role::Clinician);
    for _ in 0..6 {
        let r = w
            .call(
                "POST",
                "/v1/auth/login",
                None,
                &[],
                Some(json!({"username": victim, "password": "not the password", "totp": "000000"})),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let last = w.ledger_size();
    let r = w
        .as_role(
            Role::PrivacyOfficer,
            "GET",
            "/v1/incidents/findings",
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let findings = body["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{body:#}");
    let f = &findings[0];
    assert_eq!(f["rule"], "failed_logins");
    assert_eq!(f["actor"], victim.as_str());
    assert_eq!(f["count"], 6);
    let cited: Vec<u64> = f["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert_eq!(cited, (first..last).collect::<Vec<_>>());
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .starts_with("6 failed logins (")
            && f["summary"]
                .as_str()
                .unwrap()
                .contains("against a locked account"),
        "{f:#}"
    );
    // The scan is a query entry of its own.
    assert!(w.ledger_size() > last);
    assert_eq!(
        w.as_role(
            Role::DataScientist,
            "GET",
            "/v1/incidents/findings",
            &[],
            None
        )
        .await
        .status,
        403
    );
}
