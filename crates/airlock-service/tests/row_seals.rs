#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]
//! Issue 28, finding 7: the identity rows that carry authority are sealed under a key the
//! database does not hold. Rows an older version wrote are sealed once, at the first start
//! after the upgrade; from then on an unsealed row is refused, whoever inserted it.

use std::sync::Arc;

use airlock_authz::{Action, Authorizer, Role};
use airlock_crypto::KdfParams;
use airlock_service::{IDENTITY_ROWS_SEALED, IdentityPolicy, NoObserver, Service};
use airlock_store::{Home, InitOptions, Passphrase, Scope};
use airlock_types::ActorId;

async fn sql(home: &Home, statement: &str) {
    let mut tx = home.db().begin(&Scope::none()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn service(home: &Home) -> Service {
    Service::new(
        home.clone(),
        Authorizer::new().unwrap(),
        IdentityPolicy::default(),
        Arc::new(NoObserver),
    )
    .unwrap()
}

#[tokio::test]
async fn rows_from_before_seals_are_adopted_once_and_later_unsealed_rows_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        name: "seals".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: None,
    };
    let pass = Passphrase::new("a row seal passphrase".into());
    let op = ActorId::new("operator").unwrap();
    let home = Home::init(tmp.path(), &pass, &opts, op.clone())
        .await
        .unwrap();
    let ehr = ActorId::new("ehr-bridge").unwrap();
    let first = service(&home);
    let ids = first.identities();
    ids.add_service(&op, &ehr, &[Role::MlopsEngineer])
        .await
        .unwrap();
    let token = ids
        .issue_token(&ehr, &[Action::ReadModel], 30)
        .await
        .unwrap();
    let bearer = String::from_utf8(token.token.expose_secret().to_vec()).unwrap();
    let now = chrono::Utc::now();
    assert!(ids.authenticate(&bearer, now).await.unwrap().is_some());
    assert!(tmp.path().join(IDENTITY_ROWS_SEALED).exists());
    drop(first);

    // As an older version left them: no seals, and no record of an adoption.
    sql(&home, "UPDATE principals SET mac = NULL").await;
    sql(&home, "UPDATE api_tokens SET mac = NULL").await;
    std::fs::remove_file(tmp.path().join(IDENTITY_ROWS_SEALED)).unwrap();
    let upgraded = service(&home);
    assert!(
        upgraded
            .identities()
            .authenticate(&bearer, now)
            .await
            .unwrap()
            .is_some(),
        "the rows were not adopted at the first start after the upgrade"
    );
    assert!(tmp.path().join(IDENTITY_ROWS_SEALED).exists());
    drop(upgraded);

    // After that, a row written without the key is refused, by this start and the next.
    sql(&home, "UPDATE api_tokens SET mac = NULL").await;
    for _ in 0..2 {
        let s = service(&home);
        assert!(
            s.identities()
                .authenticate(&bearer, now)
                .await
                .unwrap()
                .is_none(),
            "an unsealed row was adopted after the upgrade"
        );
    }
}

/// Finding 7, the periodic part: a sweep finds every row written without the key, including
/// rows nobody has tried to use yet, and records a security alert in the ledger naming the
/// tables and principals (never a credential). A clean deployment sweeps clean, silently.
#[tokio::test]
async fn the_reconciliation_finds_tampered_rows_and_records_an_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        name: "sweep".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: None,
    };
    let pass = Passphrase::new("a row seal passphrase".into());
    let op = ActorId::new("operator").unwrap();
    let home = Home::init(tmp.path(), &pass, &opts, op.clone())
        .await
        .unwrap();
    let s = service(&home);
    let ids = s.identities();
    let ehr = ActorId::new("ehr-bridge").unwrap();
    ids.add_service(&op, &ehr, &[Role::MlopsEngineer])
        .await
        .unwrap();
    let token = ids
        .issue_token(&ehr, &[Action::ReadModel], 30)
        .await
        .unwrap();
    let dana = ActorId::new("dr-dana").unwrap();
    ids.add_user(
        &op,
        &dana,
        &[Role::Clinician],
        &airlock_crypto::Secret::new(b"a long enough passphrase 1".to_vec()),
    )
    .await
    .unwrap();
    ids.link_practitioner(
        &op,
        &dana,
        &airlock_service::PractitionerLink::parse("1234567893").unwrap(),
    )
    .await
    .unwrap();
    let alerts = |s: &Service| {
        let s = s.clone();
        async move {
            s.audit_search(airlock_ledger::Filter {
                events: vec![airlock_ledger::EventType::SecurityAlert],
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    let clean = s.reconcile_identities().await.unwrap();
    assert!(clean.failing.is_empty(), "{:?}", clean.failing);
    assert_eq!(clean.checked, 4, "two principals, a token, a link");
    assert!(alerts(&s).await.is_empty());

    // Someone with database access widens the token, re-points the link and adds a role.
    sql(&home, "UPDATE api_tokens SET scopes = 'read-model,predict'").await;
    sql(&home, "UPDATE practitioner_links SET value = '9999999999'").await;
    sql(
        &home,
        "UPDATE principals SET roles = 'mlops-engineer,clinician' WHERE id = 'ehr-bridge'",
    )
    .await;
    let found = s.reconcile_identities().await.unwrap();
    let mut tables: Vec<&str> = found.failing.iter().map(|f| f.table).collect();
    tables.sort_unstable();
    assert_eq!(tables, ["api_tokens", "practitioner_links", "principals"]);
    let entries = alerts(&s).await;
    assert_eq!(entries.len(), 1);
    let text = serde_json::to_string(&entries[0].1).unwrap();
    assert!(
        text.contains("ehr-bridge") && text.contains("dr-dana"),
        "{text}"
    );
    let bearer = String::from_utf8(token.token.expose_secret().to_vec()).unwrap();
    assert!(!text.contains(&bearer), "a credential in the alert");
    drop(s);
    home.close().await.unwrap();
}
