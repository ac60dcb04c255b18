#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! Regression tests for the store's findings in the security review (issue 28), named after
//! the finding. Each failed before its fix.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use airlock_crypto::KdfParams;
use airlock_store::testing::{TestDatabase, fresh_postgres_database, fresh_postgres_url};
use airlock_store::{
    Access, Attestation, AttestationBasis, AttestationReference, DatabaseSetup, Home,
    IdentifierKind, IngestRequest, InitOptions, Lineage, NewFile, NewVersion, Passphrase, Scope,
    StoreError, Transform,
};
use airlock_types::{ActorId, Classification, DatasetName, Gate, Purpose, Zone};
use sqlx::{Connection as _, Row as _};

const PASS: &str = "correct horse battery staple";

fn opts(database_url: Option<String>) -> InitOptions {
    InitOptions {
        name: "security".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url,
    }
}

fn actor() -> ActorId {
    ActorId::new("tester").unwrap()
}

/// Every path under `dir` (not following links), directories included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every directory under (and including) `dir` is 0700 and every file 0600.
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let all = walk(dir);
    assert!(!all.is_empty());
    for p in all {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let want = if md.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(&p),
            want,
            "{} is {:o}, expected {want:o}",
            p.display(),
            mode(&p)
        );
    }
}

/// Runs this test binary's test `name` again in a child process under `umask`, so the umask,
/// which belongs to the whole process, never leaks into the tests running beside it. Returns
/// `true` in the child, which then does the work; the parent checks the child passed.
fn under_umask(name: &str, umask: &str) -> bool {
    const CHILD: &str = "AIRLOCK_SECURITY_TEST_CHILD";
    if std::env::var(CHILD).is_ok() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, umask)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "under umask {umask}:\n{text}");
    // A filter that matched nothing would pass vacuously.
    assert!(text.contains("1 passed"), "under umask {umask}:\n{text}");
    false
}

fn lineage() -> Lineage {
    Lineage {
        source_system: None,
        extracted_at: "2024-01-01T00:00:00Z".into(),
        triggered_by: actor(),
        parents: Vec::new(),
        gate: Gate::Deidentify,
        transform: Transform {
            name: "deidentify".into(),
            config_hash: None,
            params: Default::default(),
        },
        airlock_version: "test".into(),
    }
}

/// Many de-identification runs writing the same output at once, as concurrent runs of one
/// profile over one source do: every file and every manifest is deduplicated onto one object.
async fn concurrent_identical_puts(home: Home) {
    const WRITERS: usize = 24;
    let content: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("id,age,dx\n{i},40,E11.9\n{i}1,71,I10\n").into_bytes())
        .collect();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let home = home.clone();
        let files: Vec<NewFile> = content
            .iter()
            .enumerate()
            .map(|(i, b)| NewFile {
                name: format!("part-{i}.csv"),
                format: "csv".into(),
                records: 2,
                bytes: b.clone(),
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let nv = NewVersion {
                dataset: DatasetName::new(format!("run-{w}")).unwrap(),
                zone: Zone::Development,
                classification: Classification::Deidentified,
                source: Some((Zone::Clinical, Classification::Phi)),
                files,
                lineage: lineage(),
            };
            // Blobs take the same path: the same bytes under many names.
            home.put_blob(
                &format!("blob-{w}"),
                Zone::Development,
                Classification::Deidentified,
                b"the same blob from every writer",
            )
            .await?;
            home.write_version(nv).await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().unwrap());
    }
    // Every version deduplicated onto the same objects reads back, and verifies.
    let mut failures = Vec::new();
    for v in &versions {
        match home
            .read_version(v, Access::Zone(Zone::Development), None)
            .await
        {
            Ok(files) => {
                assert_eq!(files.len(), content.len());
                for (i, (_, bytes)) in files.iter().enumerate() {
                    assert_eq!(bytes, &content[i]);
                }
            }
            Err(e) => failures.push(format!("{}: {e}", v.reference())),
        }
    }
    for w in 0..WRITERS {
        match home.blob(&format!("blob-{w}"), Zone::Development).await {
            Ok(Some(b)) => assert_eq!(b, b"the same blob from every writer"),
            Ok(None) => failures.push(format!("blob-{w}: missing")),
            Err(e) => failures.push(format!("blob-{w}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} reads failed:\n{}",
        failures.len(),
        2 * WRITERS,
        failures.join("\n")
    );
    // All the versions share one manifest.
    assert!(
        versions
            .iter()
            .all(|v| v.manifest_hash == versions[0].manifest_hash)
    );
    home.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn finding_05_concurrent_identical_puts_leave_one_readable_object() {
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::init(
        &tmp.path().join("home"),
        &Passphrase::new(PASS.into()),
        &opts(None),
        actor(),
    )
    .await
    .unwrap();
    concurrent_identical_puts(home).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn finding_05_concurrent_identical_puts_leave_one_readable_object_on_postgres() {
    let Some(url) = fresh_postgres_url("finding05").await.unwrap() else {
        eprintln!(
            "skipping: AIRLOCK_TEST_POSTGRES is not set (scripts/test-postgres.sh starts a server)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::init(
        &tmp.path().join("home"),
        &Passphrase::new(PASS.into()),
        &opts(Some(url)),
        actor(),
    )
    .await
    .unwrap();
    concurrent_identical_puts(home).await;
}

fn fixture(dir: &Path) -> PathBuf {
    let csv = dir.join("cohort.csv");
    std::fs::write(&csv, "mrn,name,age\n123,Zelda Quixotic,40\n").unwrap();
    csv
}

async fn ingest(home: &Home, file: PathBuf) -> airlock_store::DatasetVersion {
    home.ingest(
        &IngestRequest {
            zone: Zone::Clinical,
            classification: Classification::Phi,
            source_system: "test-ehr".into(),
            dataset: DatasetName::new("ehr").unwrap(),
            files: vec![file],
        },
        &mut |_, _| {},
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn finding_11_home_files_are_private() {
    for umask in ["022", "000"] {
        if !under_umask("finding_11_home_files_are_private", umask) {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("home");
        let pass = Passphrase::new(PASS.into());
        let home = Home::init(&dir, &pass, &opts(None), actor()).await.unwrap();
        assert_private(&dir);
        // Objects, the metadata database and the ledger as they grow, and after a reopen.
        ingest(&home, fixture(tmp.path())).await;
        home.close().await.unwrap();
        assert_private(&dir);
        let home = Home::open(&dir, &pass, actor()).await.unwrap();
        home.close().await.unwrap();
        assert_private(&dir);
        for name in [
            "keyring.json",
            "airlock.toml",
            "metadata.db",
            "objects",
            "ledger",
        ] {
            assert!(dir.join(name).exists(), "{name}");
        }
        return;
    }
}

#[tokio::test]
async fn finding_11_export_is_private() {
    for umask in ["022", "000"] {
        if !under_umask("finding_11_export_is_private", umask) {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let pass = Passphrase::new(PASS.into());
        let home = Home::init(&tmp.path().join("home"), &pass, &opts(None), actor())
            .await
            .unwrap();
        let v = ingest(&home, fixture(tmp.path())).await;
        let out = tmp.path().join("export");
        let written = home
            .export(&v, Zone::Clinical, Some(Purpose::Treatment), &out)
            .await
            .unwrap();
        assert_eq!(written.len(), 1);
        assert_private(&out);

        // Decrypted PHI never lands in a directory other users can read.
        let open_dir = tmp.path().join("shared");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = home
            .export(&v, Zone::Clinical, Some(Purpose::Treatment), &open_dir)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("other users"), "{err}");
        assert_eq!(std::fs::read_dir(&open_dir).unwrap().count(), 0);
        home.close().await.unwrap();
        return;
    }
}

#[tokio::test]
async fn finding_11_failed_init_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(PASS.into());
    // Fails after the keyring and the ledger exist: the database URL names an unknown TLS
    // mode, which only the database driver checks.
    let bad_db = || {
        opts(Some(
            "postgres://airlock@127.0.0.1:5432/airlock?sslmode=bogus".into(),
        ))
    };

    // A home `init` creates is removed whole.
    let dir = tmp.path().join("new").join("home");
    assert!(Home::init(&dir, &pass, &bad_db(), actor()).await.is_err());
    assert!(!dir.exists(), "{:?}", walk(dir.parent().unwrap()));
    // So is one that fails earlier (a weak passphrase).
    let weak = Passphrase::new("short".into());
    assert!(Home::init(&dir, &weak, &opts(None), actor()).await.is_err());
    assert!(!dir.exists());

    // A directory that was there before is kept, and emptied of what `init` made.
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("notes.txt"), "mine").unwrap();
    assert!(
        Home::init(&existing, &pass, &bad_db(), actor())
            .await
            .is_err()
    );
    let left: Vec<_> = walk(&existing);
    assert_eq!(left, vec![existing.join("notes.txt")]);

    // And `init` works there afterwards.
    let home = Home::init(&existing, &pass, &opts(None), actor())
        .await
        .unwrap();
    home.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(existing.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Every ledger entry of the deployment, in order.
fn entries(home: &Home) -> Vec<airlock_ledger::Entry> {
    airlock_ledger::search::read_entries(&home.ledger_dir())
        .unwrap()
        .map(|r| r.unwrap().1)
        .collect()
}

async fn fresh(tmp: &Path) -> Home {
    Home::init(
        &tmp.join("home"),
        &Passphrase::new(PASS.into()),
        &opts(None),
        actor(),
    )
    .await
    .unwrap()
}

/// A CSV that looks de-identified by its header but holds names and SSNs.
fn identified_csv(dir: &Path) -> PathBuf {
    let csv = dir.join("extract.csv");
    std::fs::write(
        &csv,
        "id,age_band,dx,note\n1,40-49,E11,stable\n2,70-79,I10,Zelda Quixotic 123-45-6789\n",
    )
    .unwrap();
    csv
}

#[tokio::test]
async fn finding_12_plain_ingest_outside_clinical_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let home = fresh(tmp.path()).await;
    let csv = identified_csv(tmp.path());
    for (zone, class) in [
        (Zone::Development, Classification::Deidentified),
        (Zone::Staging, Classification::Synthetic),
        (Zone::Development, Classification::DpAggregate),
    ] {
        let r = home
            .ingest(
                &IngestRequest {
                    zone,
                    classification: class,
                    source_system: "partner".into(),
                    dataset: DatasetName::new("leak").unwrap(),
                    files: vec![csv.clone()],
                },
                &mut |_, _| {},
            )
            .await;
        assert!(r.is_err(), "{zone} {class}: stored without an attestation");
    }
    assert!(home.datasets().await.unwrap().is_empty());
    home.close().await.unwrap();
}

#[tokio::test]
async fn finding_14_ingest_entry_names_source_manifest_and_lineage_hash() {
    use sha2::Digest as _;
    let tmp = tempfile::tempdir().unwrap();
    let home = fresh(tmp.path()).await;
    let v = ingest(&home, fixture(tmp.path())).await;
    let lineage_hash = hex::encode(sha2::Sha256::digest(
        serde_json::to_vec(&v.lineage).unwrap(),
    ));
    let all = entries(&home);
    let e = all
        .iter()
        .find(|e| e.event == airlock_ledger::EventType::Ingest)
        .unwrap();
    assert_eq!(e.resources[0], "ehr@1");
    for want in [
        "source-system:test-ehr".to_string(),
        format!("manifest:{}", v.manifest_hash.to_hex()),
        format!("lineage:{lineage_hash}"),
    ] {
        assert!(
            e.resources.contains(&want),
            "{want} not in {:?}",
            e.resources
        );
    }
    // The version knows which entry recorded it, and the lineage checks out against it.
    assert_eq!(home.lineage(&v.dataset, None).await.unwrap().len(), 1);
    home.close().await.unwrap();
}

/// Edit a version's row behind the store's back: on PostgreSQL as the owner role, since the
/// serving role may not change a lineage record (finding 7).
async fn edit_version(home: &Home, owner: Option<&str>, sql: &str, value: Option<String>) {
    let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    let q = match value {
        Some(v) => q.bind(v),
        None => q,
    };
    match owner {
        None => {
            let mut tx = home.db().begin(&Scope::all()).await.unwrap();
            q.execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        Some(url) => {
            let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            // Row-level security binds the owner too (FORCE).
            sqlx::query("SELECT set_config('airlock.zones', 'clinical', true)")
                .execute(&mut *tx)
                .await
                .unwrap();
            q.execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
}

async fn lineage_edits_are_refused(home: Home, owner: Option<&str>, tmp: &Path) {
    let v = ingest(&home, fixture(tmp)).await;
    assert!(v.ledger_index.is_some());
    assert_eq!(home.lineage(&v.dataset, None).await.unwrap().len(), 1);
    let mut forged = v.lineage.clone();
    forged.source_system = Some("trusted-ehr".into());
    let forged = serde_json::to_string(&forged).unwrap();
    edit_version(
        &home,
        owner,
        "UPDATE dataset_versions SET lineage = $1 WHERE dataset = 'ehr' AND version = 1",
        Some(forged.clone()),
    )
    .await;
    let err = home.lineage(&v.dataset, None).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ehr@1"), "{msg}");
    assert!(msg.contains("lineage"), "{msg}");
    // Forgetting which entry recorded the version does not hide the edit: the entry is found
    // by reading the ledger.
    edit_version(
        &home,
        owner,
        "UPDATE dataset_versions SET ledger_index = NULL WHERE dataset = 'ehr'",
        None,
    )
    .await;
    let msg = home
        .lineage(&v.dataset, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ehr@1") && msg.contains("lineage"), "{msg}");
    // Nor does pointing at another entry.
    edit_version(
        &home,
        owner,
        "UPDATE dataset_versions SET ledger_index = 0 WHERE dataset = 'ehr'",
        None,
    )
    .await;
    let msg = home
        .lineage(&v.dataset, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ehr@1") && msg.contains("entry 0"), "{msg}");
    // The true record, found by reading the ledger, checks out again.
    edit_version(
        &home,
        owner,
        "UPDATE dataset_versions SET ledger_index = NULL WHERE dataset = 'ehr'",
        None,
    )
    .await;
    edit_version(
        &home,
        owner,
        "UPDATE dataset_versions SET lineage = $1 WHERE dataset = 'ehr' AND version = 1",
        Some(serde_json::to_string(&v.lineage).unwrap()),
    )
    .await;
    assert_eq!(home.lineage(&v.dataset, None).await.unwrap().len(), 1);
    // A changed manifest hash is caught too.
    edit_version(
        &home,
        owner,
        "UPDATE dataset_versions SET manifest_hash = $1 WHERE dataset = 'ehr'",
        Some("0".repeat(64)),
    )
    .await;
    let msg = home
        .lineage(&v.dataset, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ehr@1") && msg.contains("manifest"), "{msg}");
    home.close().await.unwrap();
}

#[tokio::test]
async fn finding_14_lineage_edited_in_the_database_is_refused_when_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let home = fresh(tmp.path()).await;
    lineage_edits_are_refused(home, None, tmp.path()).await;
}

#[tokio::test]
async fn finding_14_lineage_edited_in_the_database_is_refused_when_shown_on_postgres() {
    let Some(db) = migrated_postgres("finding14").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::init(
        &tmp.path().join("home"),
        &Passphrase::new(PASS.into()),
        &opts(Some(db.url.clone())),
        actor(),
    )
    .await
    .unwrap();
    lineage_edits_are_refused(home, Some(&db.owner_url), tmp.path()).await;
}

#[test]
fn finding_14_lineage_records_the_build() {
    // The package version, and the commit as semver build metadata when the build knew it:
    // always, in a git checkout.
    let v = airlock_store::AIRLOCK_VERSION;
    assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
    let in_checkout = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if in_checkout {
        let (_, commit) = v
            .split_once('+')
            .unwrap_or_else(|| panic!("no commit in {v}"));
        assert!(commit.len() >= 7, "{v}");
        assert!(
            commit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{v}"
        );
    }
}

#[tokio::test]
async fn finding_16_failed_ingest_leaves_a_ledger_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let home = fresh(tmp.path()).await;
    let good = fixture(tmp.path());
    let bad = tmp.path().join("Zelda-Quixotic.csv");
    std::fs::write(&bad, "mrn,name\n123,Zelda Quixotic,extra,cells\n").unwrap();
    let before = entries(&home).len();
    let r = home
        .ingest(
            &IngestRequest {
                zone: Zone::Clinical,
                classification: Classification::Phi,
                source_system: "test-ehr".into(),
                dataset: DatasetName::new("ehr").unwrap(),
                files: vec![good, bad],
            },
            &mut |_, _| {},
        )
        .await;
    assert!(r.is_err());
    let all = entries(&home);
    let new = &all[before..];
    let e = new
        .iter()
        .find(|e| {
            e.event == airlock_ledger::EventType::Ingest
                && e.outcome.result == airlock_ledger::OutcomeKind::Failure
        })
        .unwrap_or_else(|| panic!("no failure entry in {new:?}"));
    let reason = e.outcome.reason.clone().unwrap();
    assert!(reason.contains("files[1]"), "{reason}");
    let text = serde_json::to_string(e).unwrap();
    for secret in ["Zelda", "Quixotic", "123"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // A refusal by the zone rules before any file is read is recorded too.
    let before = all.len();
    let r = home
        .ingest(
            &IngestRequest {
                zone: Zone::Development,
                classification: Classification::Phi,
                source_system: "test-ehr".into(),
                dataset: DatasetName::new("bad").unwrap(),
                files: vec![fixture(tmp.path())],
            },
            &mut |_, _| {},
        )
        .await;
    assert!(r.is_err());
    assert!(
        entries(&home)[before..]
            .iter()
            .any(|e| e.outcome.result != airlock_ledger::OutcomeKind::Success),
        "a refused ingest left no entry"
    );
    home.close().await.unwrap();
}

#[tokio::test]
async fn finding_16_lineage_does_not_name_parents_outside_the_callers_zones() {
    let tmp = tempfile::tempdir().unwrap();
    let home = fresh(tmp.path()).await;
    let src = ingest(&home, fixture(tmp.path())).await;
    let mut lin = lineage();
    lin.parents = vec![src.reference()];
    let out = home
        .write_version(NewVersion {
            dataset: DatasetName::new("ehr-deid").unwrap(),
            zone: Zone::Development,
            classification: Classification::Deidentified,
            source: Some((Zone::Clinical, Classification::Phi)),
            files: vec![NewFile {
                name: "a.csv".into(),
                format: "csv".into(),
                records: 1,
                bytes: b"age_band\n40-49\n".to_vec(),
            }],
            lineage: lin,
        })
        .await
        .unwrap();
    let scientist = home.acting_as(
        ActorId::new("user:sci").unwrap(),
        home.request_id(),
        airlock_store::Scope::zones([Zone::Development, Zone::Staging]),
    );
    for shown in [
        scientist.lineage(&out.dataset, None).await.unwrap(),
        vec![scientist.version(&out.dataset, None).await.unwrap()],
    ] {
        assert_eq!(shown.len(), 1);
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains("\"ehr\""), "{text}");
        assert!(!text.contains("ehr@"), "{text}");
        assert_eq!(shown[0].lineage.parents.len(), 1);
        assert_eq!(
            shown[0].lineage.parents[0].dataset.as_str(),
            "(clinical source)"
        );
    }
    // Someone who may see the clinical zone sees the parent by name.
    let full = home.lineage(&out.dataset, None).await.unwrap();
    assert_eq!(full.len(), 2);
    assert_eq!(full[0].lineage.parents[0], src.reference());
    home.close().await.unwrap();
}

fn attestation(basis: AttestationBasis) -> Attestation {
    Attestation {
        basis,
        attested_by: ActorId::new("privacy-officer").unwrap(),
        reference: Some(AttestationReference::new("DUA-2024-017").unwrap()),
    }
}

fn dev_request(name: &str, files: Vec<PathBuf>) -> IngestRequest {
    IngestRequest {
        zone: Zone::Development,
        classification: Classification::Deidentified,
        source_system: "partner".into(),
        dataset: DatasetName::new(name).unwrap(),
        files,
    }
}

#[tokio::test]
async fn finding_12_attested_import_refuses_identifiers_naming_where_not_what() {
    let tmp = tempfile::tempdir().unwrap();
    let home = fresh(tmp.path()).await;
    let clean = tmp.path().join("clean.csv");
    std::fs::write(&clean, "age_band,sex,dx\n40-49,F,E11\n").unwrap();
    let hl7 = tmp.path().join("adt.hl7");
    std::fs::write(
        &hl7,
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|202401011200||ADT^A01|1|P|2.5\rPID|1||P-7f3a9c12^^^HOSP^MR||QUIXOTIC^ZELDA||1970|F\r",
    )
    .unwrap();
    let ndjson = tmp.path().join("Patient.ndjson");
    std::fs::write(
        &ndjson,
        "{\"resourceType\":\"Patient\",\"gender\":\"female\"}\n{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"http://hl7.org/fhir/sid/us-ssn\",\"value\":\"123-45-6789\"}]}\n",
    )
    .unwrap();
    let att = attestation(AttestationBasis::DataUseAgreement);
    let cases: [(PathBuf, &str, IdentifierKind); 3] = [
        (
            identified_csv(tmp.path()),
            "line 3, column 4",
            IdentifierKind::Ssn,
        ),
        (
            hl7,
            "message 0, line 2, `PID-5`",
            IdentifierKind::PersonName,
        ),
        (
            ndjson,
            "record 1 (line 2), `identifier[0].value`",
            IdentifierKind::Ssn,
        ),
    ];
    for (file, position, want) in cases {
        let before = entries(&home).len();
        let err = home
            .import_attested(
                &dev_request("leak", vec![clean.clone(), file]),
                &att,
                &mut |_, _| {},
            )
            .await
            .unwrap_err();
        let StoreError::Identifier {
            file: index,
            position: at,
            kind,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(
            (*index, at.to_string(), *kind),
            (1, position.to_string(), want)
        );
        let msg = err.to_string();
        assert!(
            msg.contains("`files[1]`") && msg.contains(want.as_str()),
            "{msg}"
        );
        // The refusal is in the ledger, with the attestation, and without the value.
        let new = entries(&home)[before..].to_vec();
        let failure = new
            .iter()
            .find(|e| e.outcome.result == airlock_ledger::OutcomeKind::Failure)
            .unwrap();
        let reason = failure.outcome.reason.clone().unwrap();
        assert!(
            reason.contains(position) && reason.contains("privacy-officer"),
            "{reason}"
        );
        let text = format!("{msg}{}", serde_json::to_string(&new).unwrap());
        for secret in ["Zelda", "ZELDA", "Quixotic", "QUIXOTIC", "6789"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    assert!(home.datasets().await.unwrap().is_empty());
    home.close().await.unwrap();
}

#[tokio::test]
async fn finding_12_attested_import_is_recorded_in_lineage_and_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let home = fresh(tmp.path()).await;
    let clean = tmp.path().join("clean.csv");
    std::fs::write(
        &clean,
        "encounter_id,patient_key,age_band,ethnicity,dx\n2278392,P-7f3a9c12,40-49,Not Hispanic or Latino,E11\n",
    )
    .unwrap();
    let att = attestation(AttestationBasis::ExpertDetermination);
    let v = home
        .import_attested(
            &dev_request("partner-extract", vec![clean]),
            &att,
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(v.zone, Zone::Development);
    assert_eq!(v.lineage.attestation(), Some(att.clone()));
    assert_eq!(v.lineage.transform.name, "attested-import");
    // As read back, and checked against the ledger.
    let shown = home.lineage(&v.dataset, None).await.unwrap();
    assert_eq!(shown[0].lineage.attestation(), Some(att));
    let e = entries(&home)
        .into_iter()
        .rfind(|e| e.event == airlock_ledger::EventType::Ingest)
        .unwrap();
    assert_eq!(e.outcome.result, airlock_ledger::OutcomeKind::Success);
    let reason = e.outcome.reason.unwrap();
    assert!(
        reason.contains(
            "attested by privacy-officer (expert-determination, reference `DUA-2024-017`)"
        ),
        "{reason}"
    );
    // An attestation cannot be forged into a lineage record by another path, nor can the
    // ingest gate write outside the clinical zone without one.
    let mut lin = v.lineage.clone();
    lin.gate = Gate::Deidentify;
    let nv = |lineage, gate_zone| NewVersion {
        dataset: DatasetName::new("forged").unwrap(),
        zone: gate_zone,
        classification: Classification::Deidentified,
        source: Some((Zone::Clinical, Classification::Phi)),
        files: Vec::new(),
        lineage,
    };
    assert!(matches!(
        home.write_version(nv(lin, Zone::Development)).await,
        Err(StoreError::Attestation { .. })
    ));
    let mut ingest_gate = lineage();
    ingest_gate.gate = Gate::Ingest;
    let mut direct = nv(ingest_gate, Zone::Development);
    direct.source = None;
    assert!(matches!(
        home.write_version(direct).await,
        Err(StoreError::Attestation { .. })
    ));
    // An attested import is for non-identified data outside the clinical zone.
    let csv = fixture(tmp.path());
    let mut req = dev_request("x", vec![csv.clone()]);
    req.zone = Zone::Clinical;
    assert!(
        home.import_attested(
            &req,
            &attestation(AttestationBasis::Synthetic),
            &mut |_, _| {}
        )
        .await
        .is_err()
    );
    req.zone = Zone::Airlock;
    req.classification = Classification::Phi;
    assert!(
        home.import_attested(
            &req,
            &attestation(AttestationBasis::Synthetic),
            &mut |_, _| {}
        )
        .await
        .is_err()
    );
    home.close().await.unwrap();
}

/// A new test database migrated by its owner role, or `None` (with a message) when no test
/// server is configured.
async fn migrated_postgres(label: &str) -> Option<TestDatabase> {
    let db = empty_postgres(label).await?;
    db.migrate().await.unwrap();
    Some(db)
}

/// A new, unmigrated test database, or `None` (with a message) when no test server is
/// configured.
async fn empty_postgres(label: &str) -> Option<TestDatabase> {
    let db = fresh_postgres_database(label).await.unwrap();
    if db.is_none() {
        eprintln!(
            "skipping: AIRLOCK_TEST_POSTGRES is not set (scripts/test-postgres.sh starts a server)"
        );
    }
    db
}

/// `url` with the query parameter `key` set to `value`.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut u: url::Url = url.parse().unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(key, value);
    u.to_string()
}

/// Finding 15: the connection to PostgreSQL is TLS, verified against the deployment's CA; a
/// server whose certificate another CA signed is refused, and the test server takes no
/// plaintext.
#[tokio::test]
async fn finding_15_postgres_connections_are_verified_tls() {
    let Some(db) = migrated_postgres("finding15").await else {
        return;
    };
    assert!(
        db.url.contains("sslmode=verify-full"),
        "the test server URL"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let pass = Passphrase::new(PASS.into());
    let home = Home::init(&dir, &pass, &opts(Some(db.url.clone())), actor())
        .await
        .unwrap();
    let mut tx = home.db().begin(&Scope::all()).await.unwrap();
    let ssl: i32 =
        sqlx::query_scalar("SELECT CAST(ssl AS INT) FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(ssl, 1, "the connection is not TLS");
    drop(tx);
    home.close().await.unwrap();

    // Another CA's certificate as the root: the server's certificate does not verify.
    let other_ca = tmp.path().join("other-ca.pem");
    std::fs::write(
        &other_ca,
        airlock_crypto::generate_tls_identity(&["localhost", "127.0.0.1"])
            .unwrap()
            .cert_pem,
    )
    .unwrap();
    let wrong = with_param(&db.url, "sslrootcert", other_ca.to_str().unwrap());
    let err = Home::open_with_database(&dir, &pass, actor(), Some(&wrong))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::Database(_)) && msg.contains("invalid peer certificate"),
        "{msg}"
    );
    assert!(
        !msg.contains(":airlock_test@"),
        "credentials in the error: {msg}"
    );

    // No TLS at all: the test server refuses it, so no test runs in plaintext.
    let plain = with_param(&db.url, "sslmode", "disable");
    assert!(
        Home::open_with_database(&dir, &pass, actor(), Some(&plain))
            .await
            .is_err(),
        "the test server accepted a plaintext connection"
    );
    // The right CA again works.
    let home = Home::open_with_database(&dir, &pass, actor(), Some(&db.url))
        .await
        .unwrap();
    home.close().await.unwrap();
}

/// Finding 15: a PostgreSQL server that is not on loopback is reached only with
/// `sslmode=verify-full`; anything less is refused before connecting, naming the override and
/// never the password.
#[tokio::test]
async fn finding_15_postgres_to_another_host_without_verified_tls_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(PASS.into());
    for url in [
        "postgres://airlock:s3cret-pw@db.example.org/airlock",
        "postgres://airlock:s3cret-pw@db.example.org/airlock?sslmode=disable",
        "postgres://airlock:s3cret-pw@db.example.org/airlock?sslmode=prefer",
        "postgres://airlock:s3cret-pw@db.example.org/airlock?sslmode=require",
        "postgresql://airlock:s3cret-pw@10.20.30.40:5432/airlock?sslmode=verify-ca",
        "postgres://airlock:s3cret-pw@[2001:db8::1]:5432/airlock?sslmode=require",
        // A `host` parameter overrides the URL's loopback host.
        "postgres://airlock:s3cret-pw@127.0.0.1/airlock?host=db.example.org",
    ] {
        let dir = tmp.path().join("home");
        let err = Home::init(&dir, &pass, &opts(Some(url.into())), actor())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::DatabaseTransport { .. }),
            "{url}: {msg}"
        );
        assert!(
            msg.contains("verify-full") && msg.contains("--danger-database-without-verified-tls"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "password in the error: {msg}");
        assert!(!dir.exists(), "a refused init left files");
        // The owner's URL is held to the same rule.
        let err = Home::init_with(
            &dir,
            &pass,
            &opts(Some(
                "postgres://airlock@127.0.0.1:1/airlock?sslmode=verify-full".into(),
            )),
            &DatabaseSetup::default().owner(url.into()),
            actor(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, StoreError::DatabaseTransport { .. }),
            "{url}: {err}"
        );
    }
}

/// Finding 7: the serving role owns nothing, so it cannot switch row-level security off, drop
/// or add a policy, or change a table; and every table with zone-bound or identity data is
/// under row-level security.
#[tokio::test]
async fn finding_07_the_serving_role_cannot_switch_row_level_security_off() {
    let Some(url) = fresh_postgres_url("finding07a").await.unwrap() else {
        eprintln!("skipping: AIRLOCK_TEST_POSTGRES is not set");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::init(
        &tmp.path().join("home"),
        &Passphrase::new(PASS.into()),
        &opts(Some(url)),
        actor(),
    )
    .await
    .unwrap();
    for sql in [
        "ALTER TABLE datasets DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE objects NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE principals DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE model_versions DISABLE ROW LEVEL SECURITY",
        "DROP POLICY datasets_by_zone ON datasets",
        "DROP POLICY blobs_by_zone ON blobs",
        "CREATE POLICY everything ON datasets USING (true)",
        "ALTER TABLE dataset_versions ADD COLUMN note TEXT",
        "DROP TABLE version_parents",
        "TRUNCATE model_transitions",
        "CREATE TABLE shadow (id TEXT)",
    ] {
        let mut tx = home.db().begin(&Scope::all()).await.unwrap();
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await;
        assert!(r.is_err(), "the serving role ran `{sql}`");
    }
    // Row-level security is on, and forced, on every table with zone-bound or identity data.
    let mut tx = home.db().begin(&Scope::all()).await.unwrap();
    let mut open = Vec::new();
    for table in [
        "objects",
        "datasets",
        "dataset_versions",
        "version_parents",
        "blobs",
        "break_glass",
        "deid_runs",
        "principals",
        "sessions",
        "api_tokens",
        "enrolments",
        "role_grants",
        "practitioner_links",
        "model_versions",
        "model_transitions",
        "model_approvals",
        "prediction_outcomes",
    ] {
        let on: i32 = sqlx::query_scalar(
            "SELECT CAST(relrowsecurity AND relforcerowsecurity AS INT) FROM pg_class \
             WHERE oid = to_regclass($1)",
        )
        .bind(table)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        if on == 0 {
            open.push(table);
        }
    }
    assert_eq!(
        open,
        Vec::<&str>::new(),
        "tables without row-level security"
    );
    drop(tx);
    home.close().await.unwrap();
}

/// Finding 7: the serving role may run only the statements the application runs: no rewriting
/// a lineage record or a model card, no deleting an append-only history or a principal.
#[tokio::test]
async fn finding_07_the_serving_role_runs_only_what_the_application_runs() {
    let Some(url) = fresh_postgres_url("finding07b").await.unwrap() else {
        eprintln!("skipping: AIRLOCK_TEST_POSTGRES is not set");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::init(
        &tmp.path().join("home"),
        &Passphrase::new(PASS.into()),
        &opts(Some(url)),
        actor(),
    )
    .await
    .unwrap();
    let v = ingest(&home, fixture(tmp.path())).await;
    for (scope, sql) in [
        (Scope::all(), "UPDATE dataset_versions SET lineage = '{}'"),
        (
            Scope::all(),
            "UPDATE dataset_versions SET manifest_hash = 'x'",
        ),
        (Scope::all(), "DELETE FROM dataset_versions"),
        (Scope::all(), "DELETE FROM objects"),
        (Scope::all(), "UPDATE model_versions SET card = 'x'"),
        (Scope::all(), "DELETE FROM model_transitions"),
        (Scope::all(), "UPDATE model_approvals SET actor = 'x'"),
        (Scope::identity(), "DELETE FROM principals"),
        (Scope::identity(), "UPDATE principals SET created_by = 'x'"),
        (Scope::identity(), "UPDATE role_grants SET granted_by = 'x'"),
        (Scope::all(), "DELETE FROM schema_migrations"),
    ] {
        let mut tx = home.db().begin(&scope).await.unwrap();
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await;
        assert!(r.is_err(), "the serving role ran `{sql}`");
    }
    // What the application does still works: the version reads back, with its ledger index.
    let back = home.version(&v.dataset, Some(v.version)).await.unwrap();
    assert_eq!(back.ledger_index, v.ledger_index);
    assert_eq!(home.lineage(&v.dataset, None).await.unwrap().len(), 1);
    home.close().await.unwrap();
}

/// Finding 7: identity rows are visible only to identity transactions, and model rows only to
/// transactions scoped to their zone, whatever the SQL asks.
#[tokio::test]
async fn finding_07_identity_and_model_rows_are_hidden_outside_their_setting() {
    let Some(url) = fresh_postgres_url("finding07c").await.unwrap() else {
        eprintln!("skipping: AIRLOCK_TEST_POSTGRES is not set");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::init(
        &tmp.path().join("home"),
        &Passphrase::new(PASS.into()),
        &opts(Some(url)),
        actor(),
    )
    .await
    .unwrap();
    let db = home.db();
    let count = |scope: Scope, table: &'static str| async move {
        let mut tx = db.begin(&scope).await.unwrap();
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        n
    };
    let now = chrono::Utc::now().to_rfc3339();

    // An identity transaction writes a principal, a session and a role grant.
    let mut tx = db.begin(&Scope::identity()).await.unwrap();
    for sql in [
        "INSERT INTO principals (id, kind, roles, password_hash, created_at, created_by) \
         VALUES ('u-dana', 'user', 'data-scientist', 'argon2-hash', $1, 'admin')",
        "INSERT INTO sessions (token_hash, principal, created_at, last_seen, expires_at) \
         VALUES ('session-digest', 'u-dana', $1, $1, $1)",
        "INSERT INTO role_grants (principal, role, granted_by, granted_at) \
         VALUES ('u-dana', 'clinician', 'admin', $1)",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    for table in ["principals", "sessions", "role_grants"] {
        assert_eq!(count(Scope::identity(), table).await, 1, "{table}");
        // A data transaction, even over every zone, sees no identity row.
        assert_eq!(count(Scope::all(), table).await, 0, "{table} seen by data");
        assert_eq!(count(Scope::zones([Zone::Clinical]), table).await, 0);
    }
    // Nor can it write one: a role grant, or a changed role.
    let mut tx = db.begin(&Scope::all()).await.unwrap();
    let grant = sqlx::query(
        "INSERT INTO role_grants (principal, role, granted_by, granted_at) \
         VALUES ('u-dana', 'security-admin', 'dana', 'now')",
    )
    .execute(&mut *tx)
    .await;
    assert!(grant.is_err(), "a data transaction granted a role");
    drop(tx);
    let mut tx = db.begin(&Scope::all()).await.unwrap();
    let changed = sqlx::query("UPDATE principals SET roles = 'security-admin'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0, "a data transaction changed a principal's roles");
    tx.commit().await.unwrap();

    // A clinical model version and its outcome are seen only from the clinical zone.
    let mut tx = db.begin(&Scope::all()).await.unwrap();
    sqlx::query(
        "INSERT INTO model_versions (hash, name, zone, classification, kind, state, trained_by, \
         registered_by, registered_at, ed25519, card) \
         VALUES ('h1', 'readmission', 'clinical', 'phi', 'logistic', 'registered', 'dana', \
         'dana', $1, 'sig', '{}')",
    )
    .bind(&now)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO prediction_outcomes (prediction, zone, label, posted_by, at) \
         VALUES (7, 'clinical', 1, 'u-dana', $1)",
    )
    .bind(&now)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for table in ["model_versions", "prediction_outcomes"] {
        assert_eq!(count(Scope::zones([Zone::Clinical]), table).await, 1);
        assert_eq!(
            count(Scope::zones([Zone::Development, Zone::Staging]), table).await,
            0,
            "{table} seen outside its zone"
        );
        assert_eq!(count(Scope::identity(), table).await, 0, "{table}");
    }
    let mut tx = db.begin(&Scope::zones([Zone::Development])).await.unwrap();
    let smuggled = sqlx::query(
        "INSERT INTO model_versions (hash, name, zone, classification, kind, state, trained_by, \
         registered_by, registered_at, ed25519, card) \
         VALUES ('h2', 'readmission', 'clinical', 'phi', 'logistic', 'registered', 'dana', \
         'dana', 'now', 'sig', '{}')",
    )
    .execute(&mut *tx)
    .await;
    assert!(
        smuggled.is_err(),
        "a development scope wrote a clinical model"
    );
    drop(tx);
    home.close().await.unwrap();
}

/// Finding 7: the serving role cannot migrate. A database nobody migrated is refused, not
/// migrated by the role that would then own it, and the serving role cannot stand in for the
/// owner.
#[tokio::test]
async fn finding_07_the_serving_role_cannot_migrate() {
    let Some(db) = empty_postgres("finding07d").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let pass = Passphrase::new(PASS.into());
    let err = Home::init(&dir, &pass, &opts(Some(db.url.clone())), actor())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaBehind { found: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--database-owner"), "{err}");
    let err = Home::init_with(
        &dir,
        &pass,
        &opts(Some(db.url.clone())),
        &DatabaseSetup::default().owner(db.url.clone()),
        actor(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::DatabaseRole { .. }), "{err}");
    // Nothing was created, and the serving role cannot create a table itself.
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    assert!(
        sqlx::query("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .is_err()
    );
    conn.close().await.unwrap();
}

/// Finding 7: `init` migrates as the owner, which keeps the tables and grants the serving role
/// its statements; a home opened as the owner (or any role that owns a table) is refused.
#[tokio::test]
async fn finding_07_a_home_opened_as_the_owner_is_refused() {
    let Some(db) = empty_postgres("finding07e").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let pass = Passphrase::new(PASS.into());
    let home = Home::init_with(
        &dir,
        &pass,
        &opts(Some(db.url.clone())),
        &DatabaseSetup::default().owner(db.owner_url.clone()),
        actor(),
    )
    .await
    .unwrap();
    let v = ingest(&home, fixture(tmp.path())).await;
    let mut tx = home.db().begin(&Scope::all()).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(*) AS tables, \
                COUNT(*) FILTER (WHERE pg_has_role(current_user, relowner, 'MEMBER')) AS mine \
         FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) AND relkind = 'r'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        row.try_get::<i64, _>("tables").unwrap(),
        i64::try_from(airlock_store::SERVING_GRANTS.len()).unwrap()
    );
    assert_eq!(row.try_get::<i64, _>("mine").unwrap(), 0);
    drop(tx);
    home.close().await.unwrap();
    // Migrating again does nothing and keeps the grants.
    assert_eq!(
        Home::migrate_database(&dir, &db.owner_url, Some(&db.url))
            .await
            .unwrap(),
        Vec::<i64>::new()
    );

    // The owner's URL to serve: refused, without its password in the message.
    let err = Home::open_with_database(&dir, &pass, actor(), Some(&db.owner_url))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::DatabaseRole { .. }), "{msg}");
    assert!(msg.contains("owns"), "{msg}");
    assert!(
        !msg.contains(":airlock_test_owner@"),
        "credentials in the error: {msg}"
    );
    let err = Home::init(
        &tmp.path().join("other"),
        &pass,
        &opts(Some(db.owner_url.clone())),
        actor(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::DatabaseRole { .. }), "{err}");

    // The serving role still serves it.
    let home = Home::open_with_database(&dir, &pass, actor(), Some(&db.url))
        .await
        .unwrap();
    assert_eq!(
        home.version(&v.dataset, None).await.unwrap().version,
        v.version
    );
    home.close().await.unwrap();
}
