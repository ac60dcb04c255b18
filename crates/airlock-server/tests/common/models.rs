//! Models for the API suites: a version registered by the data scientist, lifecycle steps and
//! predictions over the API.

use airlock_authz::Role;
use airlock_ledger::Entry;
use airlock_models::{FeatureSpec, LogisticParams, Params, Table, TrainConfig, train};
use airlock_registry::{ModelCard, ModelName, Package, Registry, TrainingData};
use airlock_types::{ActorId, Classification, ContentHash, Zone};
use serde_json::json;

use super::{Resp, World, user_of};

fn table(seed: u64) -> Table {
    airlock_models::testing::separable_table(400, seed).unwrap()
}

/// Register a version trained by the data scientist; returns its hash.
pub async fn register(w: &World, seed: u64) -> String {
    let outcome = train(
        &table(seed),
        &TrainConfig {
            dataset_hash: ContentHash::from_bytes([1; 32]),
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
    let dana = ActorId::new(user_of(Role::DataScientist)).unwrap();
    let card = ModelCard::for_trained(
        &outcome,
        TrainingData {
            dataset: "synth-dev@1".into(),
            dataset_hash: ContentHash::from_bytes([1; 32]),
            zone: Zone::Development,
            classification: Classification::Synthetic,
            rows: 400,
        },
        dana.clone(),
        "API test model",
        vec!["Synthetic data only".into()],
    );
    let home = w.state.home();
    let reg = Registry::new(&home.acting_as(dana, home.request_id(), airlock_store::Scope::all()));
    let v = reg
        .register(
            &ModelName::new("risk").unwrap(),
            &Package::from_trained(&outcome.model),
            &card,
        )
        .await
        .unwrap();
    // The monitoring reference training keeps (`train_on_dataset` saves one the same way).
    let t = table(seed);
    let scores = outcome.model.predict_table(&t).unwrap();
    let reference = airlock_models::monitor::Reference::build(
        "synth-dev@1".into(),
        &t,
        outcome.model.signature(),
        scores,
    )
    .unwrap();
    reg.save_reference(&v, &reference).await.unwrap();
    v.hash.to_hex()
}

pub async fn step(w: &World, role: Role, path: &str, body: serde_json::Value) -> Resp {
    w.as_role(role, "POST", path, &[], Some(body)).await
}

pub fn entry(w: &World, index: u64) -> Entry {
    Entry::parse(&w.state.home().ledger().entry_bytes(index).unwrap()).unwrap()
}

pub const TREAT: &[(&str, &str)] = &[("x-purpose-of-use", "treatment")];

pub async fn predict(w: &World, role: Role, mrn: &str) -> Resp {
    w.as_role(
        role,
        "POST",
        "/v1/models/risk/predict",
        TREAT,
        Some(json!({"patient_mrn": mrn, "features": {"x": 6.5, "c": "a"}})),
    )
    .await
}

/// Register, validate and approve a version of `risk` and deploy it silent; returns its hash.
pub async fn silent_version(w: &World, seed: u64) -> String {
    let v = register(w, seed).await;
    let base = format!("/v1/models/risk/versions/{v}");
    let r = step(
        w,
        Role::DataScientist,
        &format!("{base}/validate"),
        json!({"reason": "reviewed", "dataset": "risk-holdout"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for role in ["clinical-reviewer", "privacy-officer"] {
        let who = if role == "clinical-reviewer" {
            Role::ClinicalReviewer
        } else {
            Role::PrivacyOfficer
        };
        let r = step(
            w,
            who,
            &format!("{base}/approve"),
            json!({"role": role, "reason": "reviewed"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = step(
        w,
        Role::MlopsEngineer,
        &format!("{base}/deploy"),
        json!({"state": "silent", "reason": "shadow"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    v
}
