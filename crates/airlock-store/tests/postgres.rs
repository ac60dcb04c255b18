#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! The same deployment on PostgreSQL, and the database's own row-level security: a transaction
//! scoped to `development` cannot see, count or write a clinical row even with raw SQL.

use airlock_crypto::KdfParams;
use airlock_store::testing::fresh_postgres_url;
use airlock_store::{
    Attestation, AttestationBasis, Backend, Home, IngestRequest, InitOptions, Passphrase, Scope,
    StoreError, parse_version_spec,
};
use airlock_types::{ActorId, Classification, DatasetName, Purpose, RequestId, Zone};
use sqlx::Row;

const PASS: &str = "correct horse battery staple";

async fn pg(label: &str) -> Option<String> {
    let url = fresh_postgres_url(label).await.unwrap();
    if url.is_none() {
        eprintln!(
            "skipping: AIRLOCK_TEST_POSTGRES is not set (scripts/test-postgres.sh starts a server)"
        );
    }
    url
}

fn ingest(dir: &std::path::Path, name: &str, zone: Zone, class: Classification) -> IngestRequest {
    let f = dir.join(format!("{name}.csv"));
    std::fs::write(&f, "mrn,age,dx\n123,40,E11.9\n456,71,I10\n").unwrap();
    IngestRequest {
        zone,
        classification: class,
        source_system: "test-ehr".into(),
        dataset: DatasetName::new(name).unwrap(),
        files: vec![f],
    }
}

#[tokio::test]
async fn deployment_on_postgres_with_row_level_security() {
    let Some(url) = pg("rls").await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let home_dir = tmp.path().join("home");
    let pass = Passphrase::new(PASS.into());
    let opts = InitOptions {
        name: "pg".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: Some(url.clone()),
    };
    let home = Home::init(&home_dir, &pass, &opts, ActorId::new("tester").unwrap())
        .await
        .unwrap();
    assert_eq!(home.db().backend(), Backend::Postgres);
    // The password never reaches the config file.
    let cfg = std::fs::read_to_string(home_dir.join("airlock.toml")).unwrap();
    assert!(cfg.contains("postgres://"), "{cfg}");
    assert!(
        !cfg.contains(":airlock_test@"),
        "password written to airlock.toml"
    );

    let clinical = home
        .ingest(
            &ingest(tmp.path(), "ehr", Zone::Clinical, Classification::Phi),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    let dev = home
        .import_attested(
            &ingest(
                tmp.path(),
                "synth",
                Zone::Development,
                Classification::Synthetic,
            ),
            &Attestation {
                basis: AttestationBasis::Synthetic,
                attested_by: ActorId::new("privacy-officer").unwrap(),
                reference: None,
            },
            &mut |_, _| {},
        )
        .await
        .unwrap();
    home.close().await.unwrap();

    // Reopen with the URL (credentials) given explicitly.
    let home = Home::open_with_database(
        &home_dir,
        &pass,
        ActorId::new("tester").unwrap(),
        Some(&url),
    )
    .await
    .unwrap();
    let all: Vec<String> = home
        .datasets()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(all, ["ehr", "synth"]);
    let files = home
        .read_version(
            &clinical,
            airlock_store::Access::Zone(Zone::Clinical),
            Some(Purpose::Treatment),
        )
        .await
        .unwrap();
    assert_eq!(files.len(), 1);

    // A handle scoped to development sees only development.
    let scientist = home.acting_as(
        ActorId::new("user:sci").unwrap(),
        RequestId::from_bytes([7; 16]),
        Scope::zones([Zone::Development, Zone::Staging]),
    );
    let seen: Vec<String> = scientist
        .datasets()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(seen, ["synth"]);
    let (name, ver) = parse_version_spec("ehr").unwrap();
    assert!(matches!(
        scientist.version(&name, ver).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(scientist.versions(&name).await.unwrap().is_empty());
    assert_eq!(
        scientist.version(&dev.dataset, None).await.unwrap().version,
        dev.version
    );

    // The database itself enforces it: raw SQL with no WHERE clause.
    let db = home.db();
    let mut tx = db.begin(&Scope::zones([Zone::Development])).await.unwrap();
    let names: Vec<String> = sqlx::query("SELECT name FROM datasets ORDER BY name")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.try_get::<String, _>("name").unwrap())
        .collect();
    assert_eq!(names, ["synth"]);
    let versions: i64 = sqlx::query("SELECT COUNT(*) AS n FROM dataset_versions")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(versions, 1);
    let clinical_objects: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM objects WHERE zone = 'clinical'")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    assert_eq!(
        clinical_objects, 0,
        "clinical wrapped keys visible to a development scope"
    );
    // Writing a clinical row from a development scope violates the policy's WITH CHECK.
    let write = sqlx::query(
        "INSERT INTO datasets (name, zone, classification, created_at, created_by) \
         VALUES ('smuggled', 'clinical', 'phi', 'now', 'x')",
    )
    .execute(&mut *tx)
    .await;
    assert!(
        write.is_err(),
        "RLS let a development scope write a clinical row"
    );
    drop(tx);
    // No scope at all sees nothing.
    let mut tx = db.begin(&Scope::none()).await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM datasets")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(n, 0);
    drop(tx);
    // The clinical scope sees the clinical dataset.
    let mut tx = db.begin(&Scope::zones([Zone::Clinical])).await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM datasets")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(n, 1);
    drop(tx);
    home.close().await.unwrap();

    // The ledger recorded the same story as on SQLite.
    airlock_ledger::verify_dir(
        &Home::ledger_dir_of(&home_dir).unwrap(),
        &Home::verifier_key_of(&home_dir).unwrap(),
        None,
    )
    .unwrap();
}

#[tokio::test]
async fn a_role_that_bypasses_row_level_security_is_refused() {
    let Some(url) = pg("super").await else { return };
    let Ok(sup) = std::env::var("AIRLOCK_TEST_POSTGRES_SUPER") else {
        eprintln!("skipping: AIRLOCK_TEST_POSTGRES_SUPER is not set");
        return;
    };
    // The same fresh database, reached as a superuser.
    let mut u: url::Url = sup.parse().unwrap();
    u.set_path(url::Url::parse(&url).unwrap().path());
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        name: "pg".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: Some(u.to_string()),
    };
    let err = Home::init(
        &tmp.path().join("home"),
        &Passphrase::new(PASS.into()),
        &opts,
        ActorId::new("tester").unwrap(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("BYPASSRLS"), "{msg}");
    assert!(
        !msg.contains("airlock_test_super@"),
        "credentials in the error: {msg}"
    );
}
