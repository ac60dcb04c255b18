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
use airlock_store::testing::fresh_postgres_url;
use airlock_store::{
    Access, Home, IngestRequest, InitOptions, Lineage, NewFile, NewVersion, Passphrase, Transform,
};
use airlock_types::{ActorId, Classification, DatasetName, Gate, Purpose, Zone};

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
