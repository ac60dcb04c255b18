#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]

use std::path::{Path, PathBuf};

use airlock_crypto::KdfParams;
use airlock_store::{
    Access, Home, IngestRequest, InitOptions, Lineage, NewFile, NewVersion, Passphrase, StoreError,
    Transform,
};
use airlock_types::{ActorId, Classification, DatasetName, Gate, Purpose, Zone};

const PASS: &str = "correct horse battery staple";

fn opts() -> InitOptions {
    InitOptions {
        name: "test".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: None,
    }
}

fn actor() -> ActorId {
    ActorId::new("tester").unwrap()
}

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/data is absent");
        None
    }
}

fn write_fixture(dir: &Path) -> Vec<PathBuf> {
    let fhir = dir.join("p1.json");
    std::fs::write(
        &fhir,
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"1","name":[{"family":"Quixotic","given":["Zelda"]}]}}]}"#,
    )
    .unwrap();
    let csv = dir.join("cohort.csv");
    std::fs::write(&csv, "mrn,name,age\n123,Zelda Quixotic,40\n").unwrap();
    let hl7 = dir.join("adt.hl7");
    std::fs::write(
        &hl7,
        "MSH|^~\\&|EHR|HOSP|AIR|AIR|20240101120000||ADT^A01|MSG1|P|2.5.1\rPID|1||123^^^HOSP^MR||Quixotic^Zelda||19840101|F\r",
    )
    .unwrap();
    vec![fhir, csv, hl7]
}

fn ingest_req(files: Vec<PathBuf>, zone: Zone, name: &str) -> IngestRequest {
    IngestRequest {
        zone,
        classification: Classification::Phi,
        source_system: "test-ehr".into(),
        dataset: DatasetName::new(name).unwrap(),
        files,
    }
}

#[tokio::test]
async fn init_open_ingest_export_and_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let home_dir = tmp.path().join("home");
    let pass = Passphrase::new(PASS.into());
    let home = Home::init(&home_dir, &pass, &opts(), actor())
        .await
        .unwrap();
    home.close().await.unwrap();
    assert!(matches!(
        Home::init(&home_dir, &pass, &opts(), actor()).await,
        Err(StoreError::HomeExists { .. })
    ));
    let wrong = Home::open(
        &home_dir,
        &Passphrase::new("not the passphrase".into()),
        actor(),
    )
    .await;
    assert!(wrong.unwrap_err().to_string().contains("wrong passphrase"));
    assert!(matches!(
        Home::open(&tmp.path().join("nope"), &pass, actor()).await,
        Err(StoreError::MissingHome { .. })
    ));

    let mut home = Home::open(&home_dir, &pass, actor()).await.unwrap();
    let files = write_fixture(tmp.path());
    let v1 = home
        .ingest(
            &ingest_req(files.clone(), Zone::Clinical, "raw"),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(v1.version.get(), 1);
    assert_eq!(v1.objects, 3);
    assert_eq!(v1.format, "mixed");
    // Versions are immutable and numbered; identical bytes are stored once.
    let v2 = home
        .ingest(
            &ingest_req(files.clone(), Zone::Clinical, "raw"),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(v2.version.get(), 2);
    assert_eq!(v2.manifest_hash, v1.manifest_hash);

    // No PHI in the metadata database (names live in the encrypted manifest).
    let db = std::fs::read(home_dir.join("metadata.db")).unwrap();
    let db_text = String::from_utf8_lossy(&db);
    assert!(!db_text.contains("Quixotic"));
    assert!(!db_text.contains("cohort.csv"));
    // Nor in the object store.
    for entry in walk(&home_dir.join("objects")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("Quixotic"));
    }

    let out = tmp.path().join("export");
    let purpose = Some(Purpose::Treatment);
    let written = home
        .export(&v1, Zone::Clinical, purpose, &out)
        .await
        .unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(
        std::fs::read(out.join("cohort.csv")).unwrap(),
        std::fs::read(&files[1]).unwrap()
    );
    // Identified data needs a purpose.
    assert!(home.export(&v1, Zone::Clinical, None, &out).await.is_err());

    let rot = home
        .rotate_keys(
            &Passphrase::new("a new passphrase here".into()),
            KdfParams::danger_fast_for_tests(),
        )
        .await
        .unwrap();
    assert!(rot.rewrapped >= 4);
    assert_ne!(rot.old_key_id, rot.new_key_id);
    home.close().await.unwrap();
    assert!(Home::open(&home_dir, &pass, actor()).await.is_err());
    let home = Home::open(
        &home_dir,
        &Passphrase::new("a new passphrase here".into()),
        actor(),
    )
    .await
    .unwrap();
    let out2 = tmp.path().join("export2");
    home.export(&v1, Zone::Clinical, purpose, &out2)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out2.join("p1.json")).unwrap(),
        std::fs::read(&files[0]).unwrap()
    );
    let ledger_dir = home.ledger_dir();
    let key = home.verifier_key();
    home.close().await.unwrap();
    let report = airlock_ledger::verify_dir(&ledger_dir, &key, None).unwrap();
    assert!(report.entries >= 6, "{report:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn zone_invariant_holds_on_every_path() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(PASS.into());
    let home = Home::init(&tmp.path().join("h"), &pass, &opts(), actor())
        .await
        .unwrap();
    let files = write_fixture(tmp.path());

    // Ingest: PHI can never be stored in development or staging.
    for z in [Zone::Development, Zone::Staging] {
        let err = home
            .ingest(&ingest_req(files.clone(), z, "bad"), &mut |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Zone(_)), "{err}");
    }
    let v = home
        .ingest(
            &ingest_req(files.clone(), Zone::Clinical, "raw"),
            &mut |_, _| {},
        )
        .await
        .unwrap();

    // Read / export: not from development or staging, nor from another zone without a gate.
    for z in [Zone::Development, Zone::Staging, Zone::Airlock] {
        assert!(
            home.read_version(&v, Access::Zone(z), Some(Purpose::Research))
                .await
                .is_err()
        );
        let out = tmp.path().join(format!("x-{z}"));
        assert!(
            home.export(&v, z, Some(Purpose::Research), &out)
                .await
                .is_err()
        );
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
        // Without a purpose, the zone's refusal is what the user is told: a purpose would
        // not change it (issue 29).
        let err = home.export(&v, z, None, &out).await.unwrap_err();
        assert!(matches!(err, StoreError::Zone(_)), "{err}");
    }
    // A gate may read it; a model-promotion gate may not.
    assert!(
        home.read_version(&v, Access::Gate(Gate::Deidentify), None)
            .await
            .is_ok()
    );
    assert!(
        home.read_version(&v, Access::Gate(Gate::PromoteModel), None)
            .await
            .is_err()
    );

    // Copy / gate writes: never PHI or a limited data set into development or staging.
    let lineage = |gate| Lineage {
        source_system: None,
        extracted_at: "2026-01-01T00:00:00Z".into(),
        triggered_by: actor(),
        parents: vec![v.reference()],
        gate,
        transform: Transform {
            name: "test".into(),
            config_hash: None,
            params: Default::default(),
        },
        airlock_version: "test".into(),
    };
    let nv = |zone, classification, gate| NewVersion {
        dataset: DatasetName::new("out").unwrap(),
        zone,
        classification,
        source: Some((Zone::Clinical, Classification::Phi)),
        files: vec![NewFile {
            name: "a.csv".into(),
            format: "csv".into(),
            records: 1,
            bytes: b"a\n1\n".to_vec(),
        }],
        lineage: lineage(gate),
    };
    for gate in [
        Gate::Ingest,
        Gate::Deidentify,
        Gate::DpRelease,
        Gate::Synthesize,
        Gate::PromoteModel,
    ] {
        for zone in [Zone::Development, Zone::Staging] {
            for c in [Classification::Phi, Classification::LimitedDataSet] {
                assert!(
                    home.write_version(nv(zone, c, gate)).await.is_err(),
                    "{gate} {zone} {c}"
                );
            }
        }
    }
    // The de-identification gate may write de-identified data to development.
    let out = home
        .write_version(nv(
            Zone::Development,
            Classification::Deidentified,
            Gate::Deidentify,
        ))
        .await
        .unwrap();
    let lin = home.lineage(&out.dataset, Some(out.version)).await.unwrap();
    assert_eq!(lin.len(), 2);
    assert_eq!(lin[1].reference(), v.reference());
    // Synthesize cannot produce "deidentified".
    assert!(
        home.write_version(nv(
            Zone::Development,
            Classification::Deidentified,
            Gate::Synthesize
        ))
        .await
        .is_err()
    );
    home.close().await.unwrap();
}

#[tokio::test]
async fn tampered_object_is_an_integrity_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(PASS.into());
    let home_dir = tmp.path().join("h");
    let home = Home::init(&home_dir, &pass, &opts(), actor())
        .await
        .unwrap();
    let files = write_fixture(tmp.path());
    let v = home
        .ingest(&ingest_req(files, Zone::Clinical, "raw"), &mut |_, _| {})
        .await
        .unwrap();
    let objects = walk(&home_dir.join("objects"));
    assert_eq!(objects.len(), 4);
    for obj in &objects {
        let orig = std::fs::read(obj).unwrap();
        for pos in [0, orig.len() / 2, orig.len() - 1] {
            let mut t = orig.clone();
            t[pos] ^= 0x40;
            std::fs::write(obj, &t).unwrap();
            let err = home
                .read_version(&v, Access::Zone(Zone::Clinical), Some(Purpose::Treatment))
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("object `clinical/phi/"), "{err}");
            assert!(!err.contains("Quixotic"));
        }
        std::fs::write(obj, &orig[..orig.len() / 2]).unwrap();
        assert!(
            home.read_version(&v, Access::Zone(Zone::Clinical), Some(Purpose::Treatment))
                .await
                .is_err()
        );
        std::fs::write(obj, &orig).unwrap();
    }
    assert!(
        home.read_version(&v, Access::Zone(Zone::Clinical), Some(Purpose::Treatment))
            .await
            .is_ok()
    );
    home.close().await.unwrap();
}

#[tokio::test]
async fn malformed_input_is_refused_naming_file_and_line_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(PASS.into());
    let home = Home::init(&tmp.path().join("h"), &pass, &opts(), actor())
        .await
        .unwrap();
    let mut files = write_fixture(tmp.path());
    let bad = tmp.path().join("ragged.csv");
    std::fs::write(&bad, "a,b\n1,2\n3\n").unwrap();
    files.push(bad);
    let err = home
        .ingest(&ingest_req(files, Zone::Clinical, "raw"), &mut |_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ragged.csv") && err.contains('3'), "{err}");
    assert!(home.datasets().await.unwrap().is_empty());
    home.close().await.unwrap();
}

#[tokio::test]
async fn ingests_the_shared_data() {
    let Some(shared) = shared() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(PASS.into());
    let home = Home::init(&tmp.path().join("h"), &pass, &opts(), actor())
        .await
        .unwrap();
    let list = |dir: &str, ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(shared.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        v.sort();
        v
    };
    let t = std::time::Instant::now();
    let fhir = home
        .ingest(
            &ingest_req(list("fhir/synthea", "json"), Zone::Clinical, "synthea"),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    println!(
        "ingested {} Synthea files ({} resources, {} bytes) in {:?}",
        fhir.objects,
        fhir.records,
        fhir.bytes,
        t.elapsed()
    );
    assert!(fhir.records > 3000);
    let hl7 = home
        .ingest(
            &ingest_req(list("hl7v2", "hl7"), Zone::Clinical, "hl7"),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(hl7.objects, 139);
    let zip = shared.join("tabular/diabetes130/dataset_diabetes.zip");
    let ok = std::process::Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(tmp.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        let csv = tmp.path().join("dataset_diabetes/diabetic_data.csv");
        let v = home
            .ingest(
                &ingest_req(vec![csv], Zone::Clinical, "readmissions"),
                &mut |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(v.records, 101_766);
    } else {
        eprintln!("skipping the readmission table: unzip unavailable");
    }
    home.close().await.unwrap();
}

#[tokio::test]
async fn an_erased_blob_no_longer_opens_and_key_rotation_passes_it_by() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = Passphrase::new(PASS.into());
    let home_dir = tmp.path().join("h");
    let mut home = Home::init(&home_dir, &pass, &opts(), actor())
        .await
        .unwrap();
    for (name, body) in [
        ("log/a", b"first batch".as_slice()),
        ("log/b", b"second batch"),
    ] {
        home.put_blob(name, Zone::Clinical, Classification::Phi, body)
            .await
            .unwrap();
    }
    // Two names for one object: erasing one name keeps the other's key.
    home.put_blob(
        "log/b-again",
        Zone::Clinical,
        Classification::Phi,
        b"second batch",
    )
    .await
    .unwrap();
    let objects_before = walk(&home_dir.join("objects")).len();

    let mut tx = home.db().begin(&airlock_store::Scope::all()).await.unwrap();
    let erased = home
        .erase_blobs(
            &mut tx,
            &[
                "log/a".to_string(),
                "log/b".to_string(),
                "log/none".to_string(),
            ],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(erased.len(), 1, "only log/a's object has no other name");
    home.remove_erased(&erased).await.unwrap();
    // Idempotent: the file is gone already.
    home.remove_erased(&erased).await.unwrap();
    assert_eq!(walk(&home_dir.join("objects")).len(), objects_before - 1);

    assert!(home.blob("log/a", Zone::Clinical).await.unwrap().is_none());
    assert!(home.blob("log/b", Zone::Clinical).await.unwrap().is_none());
    assert_eq!(
        home.blob("log/b-again", Zone::Clinical)
            .await
            .unwrap()
            .unwrap(),
        b"second batch"
    );
    // Key rotation re-wraps the live keys and passes the erased one by.
    home.rotate_keys(
        &Passphrase::new("a new passphrase here".into()),
        KdfParams::danger_fast_for_tests(),
    )
    .await
    .unwrap();
    // The same content written again gets a fresh key and opens.
    home.put_blob(
        "log/a2",
        Zone::Clinical,
        Classification::Phi,
        b"first batch",
    )
    .await
    .unwrap();
    assert_eq!(
        home.blob("log/a2", Zone::Clinical).await.unwrap().unwrap(),
        b"first batch"
    );
    home.close().await.unwrap();
}
