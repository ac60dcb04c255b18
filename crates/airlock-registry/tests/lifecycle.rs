#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! The registry against a real deployment (SQLite metadata, encrypted object store, ledger):
//! lifecycle rules, the approval quorum, per-patient canary routing, rollback, verification of
//! tampered artifacts, and the ledger trail of every step.

use airlock_crypto::KdfParams;
use airlock_ledger::{EventType, OutcomeKind, patient_pseudonym};
use airlock_models::{
    FeatureSpec, LogisticParams, Params, Record, Table, TrainConfig, Value, train,
};
use airlock_registry::validation::ValidationData;
use airlock_registry::{
    ModelCard, ModelName, Package, Registry, RegistryError, State, TrainingData,
};
use airlock_store::{Home, InitOptions, Passphrase};
use airlock_types::{ActorId, Classification, ContentHash, Zone};

fn table(seed: u64) -> Table {
    airlock_models::testing::separable_table(400, seed).unwrap()
}

fn trained(seed: u64, trainer: &str) -> (Package, ModelCard) {
    let outcome = train(
        &table(seed),
        &TrainConfig {
            dataset_hash: ContentHash::from_bytes([7; 32]),
            target: "y".into(),
            positive: "yes".into(),
            features: vec![
                FeatureSpec::Numeric("x".into()),
                FeatureSpec::Categorical("c".into()),
            ],
            params: Params::Logistic(LogisticParams::default()),
            seed,
            test_fraction: 0.25,
        },
    )
    .unwrap();
    let card = ModelCard::for_trained(
        &outcome,
        TrainingData {
            dataset: "cohort@1".into(),
            dataset_hash: ContentHash::from_bytes([7; 32]),
            zone: Zone::Development,
            classification: Classification::Deidentified,
            rows: 400,
        },
        ActorId::new(trainer).unwrap(),
        "Test model for the registry's lifecycle",
        vec!["Synthetic data only".into()],
    );
    (Package::from_trained(&outcome.model), card)
}

/// Validate a version trained by `trained(seed, ..)` on fresh rows of the same task, with its
/// training table at hand (the training-row check and the attack run); it must pass.
async fn validated(reg: &Registry, name: &ModelName, h: &str, seed: u64) {
    let held = table(seed + 10_000);
    let training = table(seed);
    let (report, t) = reg
        .validate_on(
            name,
            h,
            ValidationData {
                dataset: "holdout@1".into(),
                dataset_hash: ContentHash::from_bytes([8; 32]),
                table: &held,
                training: Some(&training),
                sensitive: vec![],
                target: None,
                threshold: 0.5,
                resamples: 200,
                held_out_split: false,
            },
            "held-out metrics reviewed",
        )
        .await
        .unwrap();
    assert!(report.body.passed, "{:?}", report.body.reasons);
    assert!(report.body.training_overlap.checked);
    assert!(report.body.report.membership_inference.is_some());
    assert!(t.is_some());
    // The training data itself is refused.
    assert!(matches!(
        reg.validate_on(
            name,
            h,
            ValidationData {
                dataset: "cohort@1".into(),
                dataset_hash: ContentHash::from_bytes([7; 32]),
                table: &training,
                training: Some(&training),
                sensitive: vec![],
                target: None,
                threshold: 0.5,
                resamples: 200,
                held_out_split: false,
            },
            "again",
        )
        .await,
        Err(RegistryError::Data { .. })
    ));
}

async fn home(dir: &std::path::Path) -> Home {
    Home::init(
        dir,
        &Passphrase::new("registry test passphrase".into()),
        &InitOptions {
            name: "registry-test".into(),
            kdf: KdfParams::danger_fast_for_tests(),
            database_url: None,
        },
        ActorId::new("operator").unwrap(),
    )
    .await
    .unwrap()
}

/// Rollout rules that let a test take a canary to every patient and promote it at once (the
/// deployment's defaults are tested in `default_rollout_rules_cap_the_canary_and_ask_for_soak`).
const IMMEDIATE: airlock_store::RolloutConfig = airlock_store::RolloutConfig {
    max_canary_percent: 100.0,
    min_canary_minutes: 0,
    min_canary_predictions: 0,
    min_silent_minutes: 0,
    min_silent_predictions: 0,
};

fn as_actor(home: &Home, actor: &str) -> Registry {
    Registry::new(&home.acting_as(
        ActorId::new(actor).unwrap(),
        home.request_id(),
        airlock_store::Scope::all(),
    ))
    .with_rollout(IMMEDIATE)
    .with_policy(small_data_policy())
}

/// The default policy, with the attack's ceiling at 5%: on these 400-row tables the attack's
/// TPR at 0.1% FPR moves in steps of one member in 300 (0.33%), so chance alone can reach the
/// default 1%.
fn small_data_policy() -> airlock_models::Policy {
    airlock_models::Policy {
        max_membership_tpr_at_fpr_0_001: Some(0.05),
        ..airlock_models::Policy::default()
    }
}

fn record(x: f64, c: &str) -> Record {
    Record::from([
        ("x".to_string(), Value::Number(x)),
        ("c".to_string(), Value::Text(c.into())),
    ])
}

/// Register, validate and approve a version; returns its hash.
async fn approved(home: &Home, name: &ModelName, seed: u64) -> ContentHash {
    let (pkg, card) = trained(seed, "dana");
    let v = as_actor(home, "dana")
        .register(name, &pkg, &card)
        .await
        .unwrap();
    let h = v.hash.to_hex();
    validated(&as_actor(home, "dana"), name, &h, seed).await;
    as_actor(home, "rita")
        .approve(name, &h, "clinical-reviewer", "ok")
        .await
        .unwrap();
    let out = as_actor(home, "pat")
        .approve(name, &h, "privacy-officer", "ok")
        .await
        .unwrap();
    assert_eq!(out.transition.map(|t| t.to), Some(State::Approved));
    v.hash
}

#[tokio::test]
async fn lifecycle_quorum_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path()).await;
    let name = ModelName::new("readmission").unwrap();
    let (pkg, card) = trained(1, "dana");
    let dana = as_actor(&home, "dana");
    let v = dana.register(&name, &pkg, &card).await.unwrap();
    assert_eq!(v.state, State::Registered);
    assert_eq!(v.hash, pkg.hash());
    assert_eq!(v.zone, Zone::Development);
    let h = v.hash.to_hex();

    // The same artifact twice: refused.
    assert!(matches!(
        dana.register(&name, &pkg, &card).await,
        Err(RegistryError::Duplicate { .. })
    ));
    // Trained on PHI, or "in" the clinical zone: refused by the zone rules.
    let mut phi = card.clone();
    phi.training_data.classification = Classification::Phi;
    let (pkg2, _) = trained(2, "dana");
    assert!(matches!(
        dana.register(&name, &pkg2, &phi).await,
        Err(RegistryError::Zone(_))
    ));
    let mut clinical = card.clone();
    clinical.training_data.zone = Zone::Clinical;
    assert!(matches!(
        dana.register(&name, &pkg2, &clinical).await,
        Err(RegistryError::Zone(_))
    ));
    // A card without limitations: refused.
    let mut thin = card.clone();
    thin.limitations.clear();
    assert!(dana.register(&name, &pkg2, &thin).await.is_err());

    // Approval before validation, skipping steps: refused.
    let rita = as_actor(&home, "rita");
    assert!(matches!(
        rita.approve(&name, &h, "clinical-reviewer", "x").await,
        Err(RegistryError::Approval { .. })
    ));
    assert!(matches!(
        dana.deploy(&name, &h, State::Silent, None, "x").await,
        Err(RegistryError::Transition { .. })
    ));
    // `validated` only through a passing report: the plain step is refused without one.
    assert!(matches!(
        dana.validate(&name, &h, "checked").await,
        Err(RegistryError::Transition { .. })
    ));
    validated(&dana, &name, &h, 1).await;
    // The trainer cannot approve; nobody fills two roles; an unknown role does not count.
    assert!(matches!(
        dana.approve(&name, &h, "clinical-reviewer", "mine").await,
        Err(RegistryError::Approval { .. })
    ));
    let first = rita
        .approve(&name, &h, "clinical-reviewer", "reviewed card")
        .await
        .unwrap();
    assert_eq!(first.missing_roles, vec!["privacy-officer".to_string()]);
    assert!(first.transition.is_none());
    assert!(matches!(
        rita.approve(&name, &h, "privacy-officer", "me again").await,
        Err(RegistryError::Approval { .. })
    ));
    assert!(matches!(
        as_actor(&home, "pat")
            .approve(&name, &h, "auditor", "x")
            .await,
        Err(RegistryError::Approval { .. })
    ));
    assert_eq!(registry_state(&home, &name, &h).await, State::Validated);
    let second = as_actor(&home, "pat")
        .approve(&name, &h, "privacy-officer", "privacy review")
        .await
        .unwrap();
    assert_eq!(second.transition.map(|t| t.to), Some(State::Approved));

    // Approved cannot jump to canary or production.
    let ops = as_actor(&home, "mo");
    for to in [State::Canary, State::Production] {
        assert!(
            ops.deploy(&name, &h, to, Some(100), "skip").await.is_err(),
            "{to}"
        );
    }
    ops.deploy(&name, &h, State::Silent, None, "shadow first")
        .await
        .unwrap();
    let v = Registry::new(&home).get(&name, &h).await.unwrap();
    assert_eq!(
        v.zone,
        Zone::Clinical,
        "deployment promotes the artifact into the clinical zone"
    );
    assert!(
        ops.deploy(&name, &h, State::Canary, Some(0), "no share")
            .await
            .is_err()
    );
    assert!(
        ops.deploy(&name, &h, State::Canary, Some(10_001), "too much")
            .await
            .is_err()
    );
    ops.deploy(&name, &h, State::Canary, Some(10_000), "everyone")
        .await
        .unwrap();
    ops.promote(&name, "first production", 0).await.unwrap();
    assert_eq!(registry_state(&home, &name, &h).await, State::Production);

    // The history has every step, each with its ledger entry.
    let hist = Registry::new(&home).history(&name).await.unwrap();
    let steps: Vec<(State, State)> = hist.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        steps,
        vec![
            (State::Registered, State::Registered),
            (State::Registered, State::Validated),
            (State::Validated, State::Approved),
            (State::Approved, State::Silent),
            (State::Silent, State::Canary),
            (State::Canary, State::Production),
        ]
    );
    for t in &hist {
        let e = airlock_ledger::Entry::parse(&home.ledger().entry_bytes(t.ledger_index).unwrap())
            .unwrap();
        assert!(e.resources.iter().any(|r| r.contains(&h)), "{t:?}");
        assert!(matches!(
            e.event,
            EventType::ModelRegister | EventType::ModelApprove | EventType::ModelDeploy
        ));
    }
    let approvals = Registry::new(&home).approvals(&v.hash).await.unwrap();
    assert_eq!(approvals.len(), 2);
    // "Which model was in production at that time?"
    let before = chrono::DateTime::parse_from_rfc3339(&hist[0].at)
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert!(
        Registry::new(&home)
            .deployed_at(&name, before)
            .await
            .unwrap()
            .is_empty()
    );
    let now = Registry::new(&home)
        .deployed_at(&name, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(now.get(&h), Some(&State::Production));
}

async fn registry_state(home: &Home, name: &ModelName, h: &str) -> State {
    Registry::new(home).get(name, h).await.unwrap().state
}

#[tokio::test]
async fn canary_is_deterministic_per_patient_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path()).await;
    let name = ModelName::new("sepsis").unwrap();
    let ops = as_actor(&home, "mo");
    let v1 = approved(&home, &name, 11).await.to_hex();
    ops.deploy(&name, &v1, State::Silent, None, "shadow")
        .await
        .unwrap();
    ops.deploy(&name, &v1, State::Canary, Some(10_000), "all")
        .await
        .unwrap();
    ops.promote(&name, "go", 0).await.unwrap();
    let v2 = approved(&home, &name, 12).await.to_hex();
    // Only one canary at a time.
    ops.deploy(&name, &v2, State::Silent, None, "shadow")
        .await
        .unwrap();
    ops.deploy(&name, &v2, State::Canary, Some(2_500), "a quarter")
        .await
        .unwrap();
    let v3 = approved(&home, &name, 13).await.to_hex();
    ops.deploy(&name, &v3, State::Silent, None, "shadow")
        .await
        .unwrap();
    assert!(
        ops.deploy(&name, &v3, State::Canary, Some(100), "second canary")
            .await
            .is_err()
    );

    let key = home.pseudonym_key().unwrap();
    let (dep, errors) = Registry::new(&home).deployment(None).await.unwrap();
    assert!(errors.is_empty());
    let routes = dep.routes("sepsis").unwrap();
    let patients: Vec<_> = (0..4000)
        .map(|i| patient_pseudonym(key.expose_secret(), &format!("MRN{i:06}")))
        .collect();
    let shown: Vec<String> = patients
        .iter()
        .map(|p| {
            routes
                .shown_for(key.expose_secret(), p)
                .unwrap()
                .version
                .hash
                .to_hex()
        })
        .collect();
    let canary = shown.iter().filter(|h| **h == v2).count();
    // 25% of 4,000 = 1,000; binomial sd ~27: allow 5 sd.
    assert!((865..=1135).contains(&canary), "canary share {canary}/4000");
    // Deterministic: the same patient, the same version, on a reloaded table too.
    let (dep2, _) = Registry::new(&home).deployment(Some(&dep)).await.unwrap();
    for (p, h) in patients.iter().zip(&shown).take(500) {
        assert_eq!(
            &dep2
                .routes("sepsis")
                .unwrap()
                .shown_for(key.expose_secret(), p)
                .unwrap()
                .version
                .hash
                .to_hex(),
            h
        );
    }
    // Every request is scored by every deployed version, one shown.
    let (scored, failures) = airlock_registry::serving::score_all(
        routes,
        key.expose_secret(),
        &patients[0],
        &record(6.0, "a"),
    )
    .unwrap();
    assert_eq!(failures, 0);
    assert_eq!(scored.len(), 3);
    assert_eq!(
        scored
            .iter()
            .filter(|(_, s)| s.display == airlock_ledger::Display::Shown)
            .count(),
        1
    );
    // A record the signature refuses fails the request, naming the field, never the value.
    let err = airlock_registry::serving::score_all(
        routes,
        key.expose_secret(),
        &patients[0],
        &record(6.0, "zebra-9321"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains('c') && !err.contains("zebra-9321"), "{err}");

    // Roll back: the canary goes back to silent, every patient sees v1.
    ops.rollback(&name, "calibration drift").await.unwrap();
    let (dep3, _) = Registry::new(&home).deployment(Some(&dep2)).await.unwrap();
    assert!(dep3.generation() > dep.generation());
    let r3 = dep3.routes("sepsis").unwrap();
    assert!(patients.iter().all(|p| {
        r3.shown_for(key.expose_secret(), p)
            .unwrap()
            .version
            .hash
            .to_hex()
            == v1
    }));
    // Canary again, then promote: v1 stands by in silent mode in the same step.
    ops.deploy(&name, &v2, State::Canary, Some(5_000), "again")
        .await
        .unwrap();
    let t = ops.promote(&name, "canary held", 0).await.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(registry_state(&home, &name, &v1).await, State::Silent);
    assert_eq!(registry_state(&home, &name, &v2).await, State::Production);
    // Production rolls back in one call (issue 29): v1 is production again, v2 stands by.
    let t = ops
        .rollback(&name, "post-release regression")
        .await
        .unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(registry_state(&home, &name, &v1).await, State::Production);
    assert_eq!(registry_state(&home, &name, &v2).await, State::Silent);
    // Once the standby retires there is nothing to roll back to, and the refusal says why.
    ops.deploy(&name, &v2, State::Retired, None, "withdrawn")
        .await
        .unwrap();
    let err = ops.rollback(&name, "again").await.unwrap_err().to_string();
    assert!(err.contains("retired"), "{err}");
    assert!(
        ops.deploy(&name, &v2, State::Silent, None, "revive")
            .await
            .is_err(),
        "retired is final"
    );
}

#[tokio::test]
async fn tampered_versions_are_refused_and_the_refusal_is_in_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path()).await;
    let name = ModelName::new("los").unwrap();
    let ops = as_actor(&home, "mo");
    let a = approved(&home, &name, 21).await.to_hex();
    let b = approved(&home, &name, 22).await.to_hex();
    ops.deploy(&name, &a, State::Silent, None, "shadow")
        .await
        .unwrap();
    ops.deploy(&name, &b, State::Silent, None, "shadow")
        .await
        .unwrap();
    let (dep, errors) = Registry::new(&home).deployment(None).await.unwrap();
    assert!(errors.is_empty());
    assert_eq!(dep.routes("los").unwrap().silent.len(), 2);

    // 1. Someone edits the model card in the database (say, to change who trained it).
    let db = home.db();
    let mut tx = db.begin(&airlock_store::Scope::all()).await.unwrap();
    sqlx::query(
        "UPDATE model_versions SET card = REPLACE(card, '\"dana\"', '\"eve\"') WHERE hash = $1",
    )
    .bind(&a)
    .execute(&mut *tx)
    .await
    .unwrap();
    // 2. Someone points b's artifact at a's bytes.
    sqlx::query("UPDATE blobs SET hash = (SELECT hash FROM blobs WHERE name = $1) WHERE name = $2")
        .bind(format!("model/clinical/{a}"))
        .bind(format!("model/clinical/{b}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let before = home.ledger().size().unwrap();
    let (dep, errors) = Registry::new(&home).deployment(None).await.unwrap();
    assert!(dep.routes("los").is_none(), "neither version may serve");
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert!(matches!(e, RegistryError::Tampered { .. }), "{e}");
    }
    let after = home.ledger().size().unwrap();
    let refusals: Vec<_> = (before..after)
        .map(|i| airlock_ledger::Entry::parse(&home.ledger().entry_bytes(i).unwrap()).unwrap())
        .filter(|e| e.event == EventType::ModelDeploy && e.outcome.result == OutcomeKind::Failure)
        .collect();
    assert_eq!(refusals.len(), 2);
    let reasons: Vec<String> = refusals
        .iter()
        .filter_map(|e| e.outcome.reason.clone())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("signature")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("SHA-256")), "{reasons:?}");
}

#[tokio::test]
async fn trains_on_deidentified_versions_only_and_scores_in_batch() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path()).await;
    let csv = airlock_models::testing::to_csv(&table(5));
    let path = dir.path().join("cohort.csv");
    std::fs::write(&path, csv).unwrap();
    for (name, zone, class) in [
        (
            "cohort-deid",
            Zone::Development,
            Classification::Deidentified,
        ),
        ("cohort-phi", Zone::Clinical, Classification::Phi),
    ] {
        let req = airlock_store::IngestRequest {
            zone,
            classification: class,
            source_system: "test".into(),
            dataset: airlock_types::DatasetName::new(name).unwrap(),
            files: vec![path.clone()],
        };
        // Outside the clinical zone an ingest is an attested import.
        let attestation = airlock_store::Attestation {
            basis: airlock_store::AttestationBasis::Synthetic,
            attested_by: ActorId::new("privacy-officer").unwrap(),
            reference: None,
        };
        if zone == Zone::Clinical {
            home.ingest(&req, &mut |_, _| {}).await
        } else {
            home.import_attested(&req, &attestation, &mut |_, _| {})
                .await
        }
        .unwrap();
    }
    let dana = home.acting_as(
        ActorId::new("dana").unwrap(),
        home.request_id(),
        airlock_store::Scope::all(),
    );
    let reg = Registry::new(&dana);
    let req = |dataset: &str| airlock_registry::TrainRequest {
        dataset: dataset.into(),
        file: None,
        target: "y".into(),
        positive: "yes".into(),
        features: vec![FeatureSpec::Auto("x".into()), FeatureSpec::Auto("c".into())],
        params: Params::Logistic(LogisticParams::default()),
        seed: 9,
        test_fraction: 0.25,
        name: ModelName::new("trained").unwrap(),
        intended_use: "test".into(),
        limitations: vec!["synthetic".into()],
    };
    // PHI: refused by the zone rules, and the refusal is in the ledger.
    let before = home.ledger().size().unwrap();
    let err = airlock_registry::train_on_dataset(&dana, &reg, &req("cohort-phi"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Store(airlock_store::StoreError::Zone(_))
        ),
        "{err}"
    );
    let denied = (before..home.ledger().size().unwrap())
        .map(|i| airlock_ledger::Entry::parse(&home.ledger().entry_bytes(i).unwrap()).unwrap())
        .any(|e| {
            e.outcome.result == OutcomeKind::Denied
                && e.resources.iter().any(|r| r.starts_with("cohort-phi"))
        });
    assert!(denied);
    // De-identified: trained, registered with its lineage, reproducible.
    let a = airlock_registry::train_on_dataset(&dana, &reg, &req("cohort-deid@1"))
        .await
        .unwrap();
    assert_eq!(a.version.state, State::Registered);
    assert_eq!(a.version.card.trained_by.as_str(), "dana");
    assert_eq!(a.version.card.training_data.dataset, "cohort-deid@1");
    assert_eq!(a.version.classification, Classification::Deidentified);
    assert!(
        a.experiment.metrics.auroc > 0.8,
        "{}",
        a.experiment.metrics.auroc
    );
    // The same inputs give the same model: registering it again is a duplicate.
    let again = airlock_registry::train_on_dataset(&dana, &reg, &req("cohort-deid@1"))
        .await
        .unwrap_err();
    assert!(matches!(again, RegistryError::Duplicate { .. }), "{again}");
    // Batch scoring in development, with metrics.
    let s = airlock_registry::score_dataset(
        &dana,
        &reg,
        &a.version,
        "cohort-deid",
        None,
        Some(("y", "yes")),
    )
    .await
    .unwrap();
    assert_eq!(s.rows, 400);
    assert!(s.metrics.unwrap().auroc > 0.8);
    let phi =
        airlock_registry::score_dataset(&dana, &reg, &a.version, "cohort-phi", None, None).await;
    assert!(
        phi.is_err(),
        "no batch scoring of PHI outside the clinical zone"
    );
}

/// Lifecycle steps that race (two approvers at the same moment; a promote and a rollback of
/// the same canary; steps of two models at once) end in a state the history explains: the
/// quorum completes, one of the racing steps is refused, and every transition has its own
/// sequence number.
#[tokio::test]
async fn racing_lifecycle_steps_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    racing_steps(home(dir.path()).await).await;
}

/// The same on PostgreSQL, where the advisory lock takes part.
#[tokio::test]
async fn racing_lifecycle_steps_are_serialised_on_postgres() {
    let Some(url) = airlock_store::testing::fresh_postgres_url("registry")
        .await
        .unwrap()
    else {
        eprintln!("skipping the PostgreSQL run: AIRLOCK_TEST_POSTGRES is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = Home::init(
        dir.path(),
        &Passphrase::new("registry test passphrase".into()),
        &InitOptions {
            name: "registry-test".into(),
            kdf: KdfParams::danger_fast_for_tests(),
            database_url: Some(url),
        },
        ActorId::new("operator").unwrap(),
    )
    .await
    .unwrap();
    racing_steps(home).await;
}

async fn racing_steps(home: Home) {
    let name = ModelName::new("readmission").unwrap();
    for round in 0..3u64 {
        let (pkg, card) = trained(100 + round, "dana");
        let v = as_actor(&home, "dana")
            .register(&name, &pkg, &card)
            .await
            .unwrap();
        let h = v.hash.to_hex();
        validated(&as_actor(&home, "dana"), &name, &h, 100 + round).await;
        let (rita, pat) = (as_actor(&home, "rita"), as_actor(&home, "pat"));
        let (a, b) = tokio::join!(
            rita.approve(&name, &h, "clinical-reviewer", "ok"),
            pat.approve(&name, &h, "privacy-officer", "ok"),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        // Exactly one of the two completes the quorum.
        assert_eq!(
            usize::from(a.transition.is_some()) + usize::from(b.transition.is_some()),
            1,
            "round {round}"
        );
        let after = as_actor(&home, "mo").get(&name, &h).await.unwrap();
        assert_eq!(after.state, State::Approved, "round {round}");
    }
    // A canary promoted and rolled back at the same moment: serialised. Either the rollback
    // comes first (the canary goes back to silent; the promotion finds no canary), or the
    // promotion does and the rollback then takes production back to the version before it.
    let reg = as_actor(&home, "mo");
    let versions = reg.versions(&name).await.unwrap();
    let (first, second) = (versions[0].hash.to_hex(), versions[1].hash.to_hex());
    for h in [&first, &second] {
        reg.deploy(&name, h, State::Silent, None, "shadow")
            .await
            .unwrap();
    }
    reg.deploy(&name, &first, State::Canary, Some(5_000), "half")
        .await
        .unwrap();
    reg.promote(&name, "go", 0).await.unwrap();
    reg.deploy(&name, &second, State::Canary, Some(5_000), "half")
        .await
        .unwrap();
    let (mo, lee) = (as_actor(&home, "mo"), as_actor(&home, "lee"));
    let (p, r) = tokio::join!(mo.promote(&name, "go", 0), lee.rollback(&name, "stop"));
    match (&p, &r) {
        (Ok(_), Ok(t)) => assert!(
            t.iter()
                .any(|t| t.from == State::Production && t.to == State::Silent),
            "rollback after the promotion did not move production: {t:?}"
        ),
        (Err(_), Ok(t)) => assert!(t.iter().all(|t| t.from == State::Canary)),
        _ => panic!("promote {p:?} rollback {r:?}"),
    }
    let states: Vec<State> = reg
        .versions(&name)
        .await
        .unwrap()
        .iter()
        .map(|v| v.state)
        .collect();
    assert!(states.iter().filter(|s| **s == State::Production).count() == 1);
    assert!(!states.contains(&State::Canary));
    // Sequence numbers are unique and the history replays to the same states.
    let history = reg.history(&name).await.unwrap();
    let mut seqs: Vec<i64> = history.iter().map(|t| t.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), history.len());
}

/// Issue 28, finding 2: with the deployment's rollout rules (`airlock.toml`'s defaults), a
/// canary reaches at most half the patients and is promoted only after its soak; the promote
/// transition names the soak it had.
#[tokio::test]
async fn default_rollout_rules_cap_the_canary_and_ask_for_soak() {
    let tmp = tempfile::tempdir().unwrap();
    let home = home(&tmp.path().join("h")).await;
    let name = ModelName::new("risk").unwrap();
    let h = approved(&home, &name, 3).await.to_hex();
    let mo = Registry::new(&home.acting_as(
        ActorId::new("mo").unwrap(),
        home.request_id(),
        airlock_store::Scope::all(),
    ));
    assert_eq!(mo.rollout(), airlock_store::RolloutConfig::default());
    mo.deploy(&name, &h, State::Silent, None, "shadow")
        .await
        .unwrap();
    let too_much = mo
        .deploy(&name, &h, State::Canary, Some(5_001), "most patients")
        .await
        .unwrap_err()
        .to_string();
    assert!(too_much.contains("at most 50%"), "{too_much}");
    // Silent mode's exit criterion (issue 29): a day and 100 silent predictions by default.
    let early_canary = mo
        .deploy(&name, &h, State::Canary, Some(5_000), "half")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        early_canary.contains("silent for 0 min with 0 silent predictions")
            && early_canary.contains("at least 1440 min and 100"),
        "{early_canary}"
    );
    let mo = mo.with_rollout(airlock_store::RolloutConfig {
        min_silent_minutes: 0,
        min_silent_predictions: 0,
        ..Default::default()
    });
    mo.deploy(&name, &h, State::Canary, Some(5_000), "half")
        .await
        .unwrap();
    let early = mo
        .promote(&name, "now", 1_000)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        early.contains("soaked 0 min with 1000 shown predictions"),
        "{early}"
    );
    assert_eq!(registry_state(&home, &name, &h).await, State::Canary);
    // Production is reached by promoting the canary, never by a deploy.
    assert!(
        mo.deploy(&name, &h, State::Production, None, "skip the soak")
            .await
            .is_err()
    );
    // With the soak met (no minimum time here), the transition records it.
    let soaked = mo.with_rollout(airlock_store::RolloutConfig {
        min_canary_minutes: 0,
        min_silent_minutes: 0,
        min_silent_predictions: 0,
        ..Default::default()
    });
    assert!(soaked.promote(&name, "held", 99).await.is_err());
    let t = soaked.promote(&name, "held", 100).await.unwrap();
    let last = t.last().unwrap();
    assert_eq!(last.to, State::Production);
    assert!(
        last.reason
            .contains("canary soaked 0 min with 100 shown predictions"),
        "{}",
        last.reason
    );
}
