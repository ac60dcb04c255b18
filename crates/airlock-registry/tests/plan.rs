#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests fail by panicking"
)]
//! Change control plans (issue 19) against a real deployment: a plan is proposed, refused to
//! its proposer's approval and to updates until the quorum approves it; an update that
//! changes what the plan keeps, reads another dataset or the same data is refused before
//! anything trains; a conforming retrain on a newer version of the dataset is approved by the
//! plan (its hash in the ledger); a plan whose clauses it breaks names them and approves
//! nothing.

use airlock_crypto::KdfParams;
use airlock_models::{FeatureSpec, LogisticParams, Params};
use airlock_registry::plan::{PLAN_APPROVAL_ROLE, UpdateRequest, update_under_plan};
use airlock_registry::validation::{ValidateRequest, validate_dataset};
use airlock_registry::{ModelName, Registry, RegistryError, State, TrainRequest, train_on_dataset};
use airlock_store::{Home, InitOptions, Passphrase, Scope};
use airlock_types::{ActorId, Classification, DatasetName, Zone};

async fn home(dir: &std::path::Path) -> Home {
    Home::init(
        &dir.join("home"),
        &Passphrase::new("plan test passphrase".into()),
        &InitOptions {
            name: "plan-test".into(),
            kdf: KdfParams::danger_fast_for_tests(),
            database_url: None,
        },
        ActorId::new("operator").unwrap(),
    )
    .await
    .unwrap()
}

/// A de-identified table of the reference task imported into development (a new version of
/// `name` each time).
async fn import(home: &Home, dir: &std::path::Path, name: &str, seed: u64) {
    let table = airlock_models::testing::separable_table(600, seed).unwrap();
    let path = dir.join(format!("{name}-{seed}.csv"));
    std::fs::write(&path, airlock_models::testing::to_csv(&table)).unwrap();
    home.import_attested(
        &airlock_store::IngestRequest {
            zone: Zone::Development,
            classification: Classification::Deidentified,
            source_system: "test".into(),
            dataset: DatasetName::new(name).unwrap(),
            files: vec![path],
        },
        &airlock_store::Attestation {
            basis: airlock_store::AttestationBasis::Synthetic,
            attested_by: ActorId::new("privacy-officer").unwrap(),
            reference: None,
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
}

fn actor(home: &Home, who: &str) -> (Home, Registry) {
    let h = home.acting_as(ActorId::new(who).unwrap(), home.request_id(), Scope::all());
    let policy = airlock_models::Policy {
        // 600-row tables: the attack's TPR at 0.1% FPR moves in steps of one member in 450.
        max_membership_tpr_at_fpr_0_001: Some(0.05),
        ..airlock_models::Policy::default()
    };
    let reg = Registry::new(&h).with_policy(policy);
    (h, reg)
}

fn plan_text(version_note: &str, max_ece: f64) -> String {
    format!(
        r#"# {version_note}
plan = "retrain-yearly"
model = "readmit"

[[modification]]
kind = "retrain"

[verification]
sensitive = ["c"]
max_auroc_drop = 0.05
max_ece = {max_ece}
max_equalized_odds_increase = 0.25
max_membership_tpr = 0.05

[rollout]
min_silent_predictions = 50
max_canary_percent = 20
"#
    )
}

fn update(from: &str, dataset: &str) -> UpdateRequest {
    UpdateRequest {
        plan: "retrain-yearly".into(),
        model: ModelName::new("readmit").unwrap(),
        from: from.into(),
        dataset: dataset.into(),
        validate_on: "holdout".into(),
        features: None,
        family: None,
        target: None,
    }
}

#[tokio::test]
async fn updates_under_an_approved_plan() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path()).await;
    import(&home, dir.path(), "cohort", 5).await;
    import(&home, dir.path(), "holdout", 10_005).await;
    let (dana_home, dana) = actor(&home, "dana");
    let name = ModelName::new("readmit").unwrap();
    let first = train_on_dataset(
        &dana_home,
        &dana,
        &TrainRequest {
            dataset: "cohort@1".into(),
            file: None,
            target: "y".into(),
            positive: "yes".into(),
            features: vec![
                FeatureSpec::Numeric("x".into()),
                FeatureSpec::Categorical("c".into()),
            ],
            params: Params::Logistic(LogisticParams::default()),
            seed: 9,
            test_fraction: 0.25,
            name: name.clone(),
            intended_use: "test".into(),
            limitations: vec!["synthetic".into()],
        },
    )
    .await
    .unwrap();
    let h1 = first.version.hash.to_hex();
    let validate = ValidateRequest {
        dataset: "holdout".into(),
        file: None,
        sensitive: vec!["c".into()],
        threshold: None,
        resamples: Some(200),
    };
    let (report, _) = validate_dataset(&dana_home, &dana, &name, &h1, &validate, "reviewed")
        .await
        .unwrap();
    assert!(report.body.passed, "{:?}", report.body.reasons);
    for (who, role) in [("rita", "clinical-reviewer"), ("pat", "privacy-officer")] {
        actor(&home, who)
            .1
            .approve(&name, &h1, role, "reviewed")
            .await
            .unwrap();
    }

    // A plan that does not parse names the problem; a proposed plan governs nothing yet.
    let e = dana
        .propose_plan(&plan_text("v1", 0.2).replace("max_ece", "max_eec"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not parse"), "{e}");
    let p = dana.propose_plan(&plan_text("v1", 0.2)).await.unwrap();
    assert_eq!((p.state.as_str(), p.version), ("proposed", 1));
    assert_eq!(p.missing_roles.len(), 2);
    let e = update_under_plan(&dana_home, &dana, &update(&h1, "cohort"), "refresh")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("proposed"), "{e}");
    let e = dana
        .approve_plan("retrain-yearly", "clinical-reviewer", "mine")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("proposed"), "{e}");
    actor(&home, "rita")
        .1
        .approve_plan("retrain-yearly", "clinical-reviewer", "clauses reviewed")
        .await
        .unwrap();
    let e = actor(&home, "rita")
        .1
        .approve_plan("retrain-yearly", "privacy-officer", "again")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("one person approves once"), "{e}");
    let p = actor(&home, "pat")
        .1
        .approve_plan("retrain-yearly", "privacy-officer", "clauses reviewed")
        .await
        .unwrap();
    assert_eq!(p.state, "approved");

    // Refused before anything trains: what the plan keeps, another dataset, the same data.
    let before = dana.versions(&name).await.unwrap().len();
    let mut changed = update(&h1, "cohort");
    changed.features = Some(vec!["x".into()]);
    let mut family = update(&h1, "cohort");
    family.family = Some("gbdt".into());
    for (req, why) in [
        (changed, "features"),
        (family, "family"),
        (update(&h1, "holdout"), "newer version of cohort"),
        (update(&h1, "cohort@1"), "needs newer data"),
    ] {
        let e = update_under_plan(&dana_home, &dana, &req, "refresh")
            .await
            .unwrap_err();
        assert!(
            matches!(e, RegistryError::Plan { .. }) && e.to_string().contains(why),
            "{e}"
        );
    }
    assert_eq!(dana.versions(&name).await.unwrap().len(), before);

    // A newer extract: conforming, approved by the plan, its hash in the ledger.
    import(&home, dir.path(), "cohort", 6).await;
    let out = update_under_plan(&dana_home, &dana, &update(&h1, "cohort"), "yearly refresh")
        .await
        .unwrap();
    assert!(out.conforming, "{:?}", out.clauses);
    assert!(out.clauses.len() >= 5, "{:?}", out.clauses);
    assert_eq!(out.version.state, State::Approved);
    let approvals = dana.approvals(&out.version.hash).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].role, PLAN_APPROVAL_ROLE);
    assert!(approvals[0].reason.contains(&out.plan_hash[..12]));
    assert_eq!(
        dana.approving_plan(&out.version.hash)
            .await
            .unwrap()
            .map(|p| p.document.rollout.max_canary_percent),
        Some(20.0)
    );
    // The replaced version keeps its state; its report on the same data is kept.
    assert_eq!(dana.get(&name, &h1).await.unwrap().state, State::Approved);
    assert_eq!(
        out.replaced_report.body.dataset_hash,
        out.report.body.dataset_hash
    );

    // A stricter plan version (ECE at most 1e-6): the clause is named, nothing approved.
    let p2 = dana
        .propose_plan(&plan_text("v2", 0.000_001))
        .await
        .unwrap();
    assert_eq!(p2.version, 2);
    for (who, role) in [("rita", "clinical-reviewer"), ("pat", "privacy-officer")] {
        actor(&home, who)
            .1
            .approve_plan("retrain-yearly@2", role, "stricter")
            .await
            .unwrap();
    }
    import(&home, dir.path(), "cohort", 7).await;
    let out = update_under_plan(&dana_home, &dana, &update(&h1, "cohort"), "another refresh")
        .await
        .unwrap();
    assert!(!out.conforming);
    let broken: Vec<&str> = out
        .clauses
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.clause.as_str())
        .collect();
    assert_eq!(broken, ["verification.max_ece"], "{:?}", out.clauses);
    assert_eq!(out.version.state, State::Validated);
    assert!(dana.approvals(&out.version.hash).await.unwrap().is_empty());
    let ledger = airlock_ledger::read_entries(&home.ledger_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|(_, e)| {
            e.outcome
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("change control plan"))
        })
        .count();
    assert!(ledger >= 7, "{ledger}");
}
