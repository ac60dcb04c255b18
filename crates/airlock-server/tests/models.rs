#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! The model lifecycle and audited predictions over the API, on SQLite and PostgreSQL: the
//! policy decides every step, the approval quorum holds, a model reaches patients only through
//! silent mode and a canary, each prediction is in the ledger with everything an auditor needs
//! and no PHI, overrides link to their prediction, and the silent report compares versions.

#[macro_use]
mod common;

use airlock_authz::Role;
use airlock_ledger::{Display, EventType, patient_pseudonym};
use airlock_registry::{ModelName, Registry};
use airlock_types::ActorId;
use common::models::{TREAT, entry, predict, register, step};
use common::{Db, World, user_of};
use serde_json::json;

both!(lifecycle_over_the_api);
async fn lifecycle_over_the_api(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let v1 = register(&w, 1).await;
    let base = format!("/v1/models/risk/versions/{v1}");
    let reason = json!({"reason": "held-out AUROC reviewed", "dataset": "risk-holdout"});
    // Validation needs held-out data: without it, or on identified data, refused.
    let r = step(
        &w,
        Role::DataScientist,
        &format!("{base}/validate"),
        json!({"reason": "no data"}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = step(
        &w,
        Role::DataScientist,
        &format!("{base}/validate"),
        json!({"reason": "on PHI", "dataset": "ehr"}),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = step(
        &w,
        Role::DataScientist,
        &format!("{base}/validate"),
        json!({"reason": "by ward", "dataset": "risk-holdout", "sensitive": ["ward-Zebulon-7"]}),
    )
    .await;
    r.assert_refused("sensitive", "ward-Zebulon-7");
    // A clinician cannot validate; the data scientist can.
    assert_eq!(
        step(
            &w,
            Role::Clinician,
            &format!("{base}/validate"),
            reason.clone()
        )
        .await
        .status,
        403
    );
    let r = step(
        &w,
        Role::DataScientist,
        &format!("{base}/validate"),
        reason.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let report = &r.json()["report"];
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["dataset"], "risk-holdout@1");
    assert_eq!(report["signature"].as_str().unwrap().len(), 128);
    assert!(
        report["metrics"]["auroc"]["interval"].is_array(),
        "{report}"
    );
    assert_eq!(r.json()["transition"]["to"], "validated");
    // The committee sees the report with the version.
    let detail = w
        .as_role(Role::ClinicalReviewer, "GET", "/v1/models/risk", &[], None)
        .await;
    assert_eq!(detail.status, 200);
    let shown = &detail.json()["versions"][0]["validation_reports"][0];
    assert_eq!(shown["id"], report["id"]);
    assert_eq!(shown["passed"], true);
    // Nobody approves their own model (the policy's forbid, then the registry's rule).
    let approve = |role: &str| json!({"role": role, "reason": "card and metrics reviewed"});
    assert_eq!(
        step(
            &w,
            Role::DataScientist,
            &format!("{base}/approve"),
            approve("data-scientist")
        )
        .await
        .status,
        403
    );
    // A principal approves only under a role it holds.
    assert_eq!(
        step(
            &w,
            Role::ClinicalReviewer,
            &format!("{base}/approve"),
            approve("privacy-officer")
        )
        .await
        .status,
        403
    );
    let r = step(
        &w,
        Role::ClinicalReviewer,
        &format!("{base}/approve"),
        approve("clinical-reviewer"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["missing_roles"], json!(["privacy-officer"]));
    // Not approved yet: MLOps cannot deploy (policy: only approved states).
    let silent = json!({"state": "silent", "reason": "shadow"});
    assert_eq!(
        step(
            &w,
            Role::MlopsEngineer,
            &format!("{base}/deploy"),
            silent.clone()
        )
        .await
        .status,
        403
    );
    let r = step(
        &w,
        Role::PrivacyOfficer,
        &format!("{base}/approve"),
        approve("privacy-officer"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["transition"]["to"], "approved");
    // Approved cannot go straight to canary.
    let canary_all = json!({"state": "canary", "canary_percent": 100, "reason": "all patients"});
    assert_eq!(
        step(
            &w,
            Role::MlopsEngineer,
            &format!("{base}/deploy"),
            canary_all.clone()
        )
        .await
        .status,
        409
    );
    assert_eq!(
        step(
            &w,
            Role::MlopsEngineer,
            &format!("{base}/deploy"),
            silent.clone()
        )
        .await
        .status,
        200
    );
    // Silent only (issue 29: a first model starts silent beside the existing workflow): it
    // is scored and logged, and the answer says nothing is shown.
    let r = predict(&w, Role::Clinician, &w.mrn).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let p = r.json();
    assert_eq!(p["display"], "none");
    assert!(
        p.get("score").is_none() && p.get("version").is_none(),
        "{p}"
    );
    assert_eq!(p["silent_versions_logged"], 1);
    let e = entry(&w, p["prediction_id"].as_u64().unwrap());
    assert_eq!(e.event, EventType::Prediction);
    let logged = e.prediction.as_ref().unwrap();
    assert_eq!(logged.display, airlock_ledger::Display::Silent);
    assert_eq!(logged.version_hash.to_hex(), v1.as_str());
    assert_eq!(
        step(
            &w,
            Role::MlopsEngineer,
            &format!("{base}/deploy"),
            canary_all
        )
        .await
        .status,
        200
    );
    assert_eq!(
        step(
            &w,
            Role::MlopsEngineer,
            "/v1/models/risk/promote",
            json!({"reason": "canary held"})
        )
        .await
        .status,
        200
    );

    // Predictions: a clinician for treatment.
    let r = predict(&w, Role::Clinician, &w.mrn).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let p = r.json();
    assert_eq!(p["version"], v1.as_str());
    assert_eq!(p["state"], "production");
    assert_eq!(p["features"], json!(["x", "c"]));
    let score = p["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score));
    assert!((p["confidence"].as_f64().unwrap() - score.max(1.0 - score)).abs() < 1e-12);
    let id = p["prediction_id"].as_u64().unwrap();
    let e = entry(&w, id);
    assert_eq!(e.event, EventType::Prediction);
    assert_eq!(e.actor.as_str(), user_of(Role::Clinician));
    assert_eq!(e.purpose.map(|p| p.as_str()), Some("treatment"));
    let key = w.state.home().pseudonym_key().unwrap();
    assert_eq!(
        e.patient,
        Some(patient_pseudonym(key.expose_secret(), &w.mrn))
    );
    let pr = e.prediction.clone().unwrap();
    assert_eq!(pr.version_hash.to_hex(), v1);
    assert_eq!(pr.display, Display::Shown);
    assert_eq!(pr.features, vec!["x".to_string(), "c".to_string()]);
    assert!(e.outcome.reason.unwrap().contains("clinician-treatment"));
    let raw = String::from_utf8(w.state.home().ledger().entry_bytes(id).unwrap()).unwrap();
    assert!(!raw.contains(&w.mrn), "no MRN in the ledger");

    // Refusals: no purpose, the wrong role, a bad feature (named, value not echoed), a model
    // that is not deployed. Each leaves a ledger entry.
    let before = w.ledger_size();
    let no_purpose = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/models/risk/predict",
            &[],
            Some(json!({"patient_mrn": w.mrn, "features": {"x": 1, "c": "a"}})),
        )
        .await;
    assert_eq!(no_purpose.status, 403);
    assert_eq!(predict(&w, Role::DataScientist, &w.mrn).await.status, 403);
    let bad = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/models/risk/predict",
            TREAT,
            Some(json!({"patient_mrn": w.mrn, "features": {"x": 6.5, "c": "secret-category-77"}})),
        )
        .await;
    bad.assert_refused("`c`", "secret-category-77");
    let out_of_range = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/models/risk/predict",
            TREAT,
            Some(json!({"patient_mrn": w.mrn, "features": {"x": 1e9, "c": "a"}})),
        )
        .await;
    assert_eq!(out_of_range.status, 400);
    assert!(!String::from_utf8_lossy(&out_of_range.body).contains("1000000000"));
    let missing = w
        .as_role(
            Role::Clinician,
            "POST",
            "/v1/models/nope/predict",
            TREAT,
            Some(json!({"patient_mrn": w.mrn, "features": {}})),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert!(
        w.ledger_size() >= before + 5,
        "every refusal is in the ledger"
    );
    // The EHR service's token is scoped to patient records only.
    let svc = w
        .call(
            "POST",
            "/v1/models/risk/predict",
            Some(&w.service_token),
            TREAT,
            Some(json!({"patient_mrn": w.mrn, "features": {"x": 1, "c": "a"}})),
        )
        .await;
    assert_eq!(svc.status, 403);

    // A second version in silent mode scores every request; never shown.
    let v2 = register(&w, 2).await;
    let base2 = format!("/v1/models/risk/versions/{v2}");
    assert_eq!(
        step(
            &w,
            Role::DataScientist,
            &format!("{base2}/validate"),
            reason.clone()
        )
        .await
        .status,
        200
    );
    assert_eq!(
        step(
            &w,
            Role::ClinicalReviewer,
            &format!("{base2}/approve"),
            approve("clinical-reviewer")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        step(
            &w,
            Role::PrivacyOfficer,
            &format!("{base2}/approve"),
            approve("privacy-officer")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        step(&w, Role::MlopsEngineer, &format!("{base2}/deploy"), silent)
            .await
            .status,
        200
    );
    // The metrics listener counts the ledger's group commits and the entries they made durable: both of
    // a prediction's entries (shown and silent), as many as the ledger grew by.
    let metric = |text: &str, name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    let metrics = || async {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let req = axum::http::Request::builder()
            .uri("/metrics")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = airlock_server::metrics_app(w.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    };
    let (text, size) = (metrics().await, w.ledger_size());
    let (commits, entries) = (
        metric(&text, "airlock_ledger_commit_seconds_count"),
        metric(&text, "airlock_ledger_committed_entries_total"),
    );
    assert!(
        commits >= 1 && entries >= commits && entries <= size,
        "{commits} {entries} {size}"
    );
    let r = predict(&w, Role::Clinician, "MRN-A").await;
    let text = metrics().await;
    assert!(metric(&text, "airlock_ledger_commit_seconds_count") > commits);
    assert_eq!(
        metric(&text, "airlock_ledger_committed_entries_total") - entries,
        2
    );
    assert_eq!(w.ledger_size() - size, 2);
    assert!(!text.contains("MRN-A"));
    assert_eq!(r.json()["version"], v1.as_str());
    assert_eq!(r.json()["silent_versions_logged"], 1);
    let shown_id = r.json()["prediction_id"].as_u64().unwrap();
    let silent_entry = entry(&w, shown_id + 1);
    let sp = silent_entry.prediction.unwrap();
    assert_eq!(
        (sp.version_hash.to_hex(), sp.display),
        (v2.clone(), Display::Silent)
    );
    assert_eq!(silent_entry.request_id, entry(&w, shown_id).request_id);

    // Canary at 50%: each patient always sees the same version.
    let half = json!({"state": "canary", "canary_percent": 50, "reason": "half"});
    assert_eq!(
        step(&w, Role::MlopsEngineer, &format!("{base2}/deploy"), half)
            .await
            .status,
        200
    );
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..40 {
        let mrn = format!("MRN-{i}");
        let a = predict(&w, Role::Clinician, &mrn).await.json()["version"]
            .as_str()
            .unwrap()
            .to_string();
        let b = predict(&w, Role::Clinician, &mrn).await.json()["version"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(a, b, "patient {i} switched models mid-rollout");
        *seen.entry(a).or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        2,
        "both versions are shown during a 50% canary: {seen:?}"
    );
    // Roll back in one call: everyone sees v1 again.
    assert_eq!(
        step(
            &w,
            Role::MlopsEngineer,
            "/v1/models/risk/rollback",
            json!({"reason": "drift"})
        )
        .await
        .status,
        200
    );
    for i in 0..10 {
        assert_eq!(
            predict(&w, Role::Clinician, &format!("MRN-{i}"))
                .await
                .json()["version"],
            v1.as_str()
        );
    }

    // Override with a coded reason, linked to the prediction; outcomes; the report.
    let ov = w
        .as_role(
            Role::Clinician,
            "POST",
            &format!("/v1/predictions/{shown_id}/override"),
            TREAT,
            Some(json!({"reason": "clinical-judgement", "decision": "high-risk"})),
        )
        .await;
    assert_eq!(ov.status, 200, "{}", String::from_utf8_lossy(&ov.body));
    let oe = entry(&w, ov.json()["override_id"].as_u64().unwrap());
    assert_eq!(oe.event, EventType::Override);
    assert!(oe.resources.contains(&format!("prediction:{shown_id}")));
    assert_eq!(oe.patient, entry(&w, shown_id).patient);
    assert!(
        oe.prediction
            .unwrap()
            .override_reason
            .unwrap()
            .starts_with("clinical-judgement")
    );
    // A silent prediction cannot be overridden (nobody saw it); a data scientist cannot override.
    assert_eq!(
        w.as_role(
            Role::Clinician,
            "POST",
            &format!("/v1/predictions/{}/override", shown_id + 1),
            TREAT,
            Some(json!({"reason": "data-error", "decision": "low-risk"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        w.as_role(
            Role::DataScientist,
            "POST",
            &format!("/v1/predictions/{shown_id}/override"),
            TREAT,
            Some(json!({"reason": "data-error", "decision": "low-risk"}))
        )
        .await
        .status,
        403
    );
    for (i, label) in [(shown_id, true)] {
        let r = w
            .as_role(
                Role::Clinician,
                "POST",
                &format!("/v1/predictions/{i}/outcome"),
                TREAT,
                Some(json!({"label": label})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let rep = w
        .as_role(
            Role::MlopsEngineer,
            "GET",
            "/v1/models/risk/report",
            &[],
            None,
        )
        .await;
    assert_eq!(rep.status, 200, "{}", String::from_utf8_lossy(&rep.body));
    let rep = rep.json();
    assert_eq!(rep["report"]["overrides"], 1);
    let agreement = rep["report"]["agreement"].as_array().unwrap();
    let a2 = agreement
        .iter()
        .find(|a| a["version"] == v2.as_str())
        .unwrap();
    assert!(a2["requests"].as_u64().unwrap() >= 20, "{a2}");
    let versions = rep["report"]["versions"].as_array().unwrap();
    assert!(
        versions
            .iter()
            .all(|v| v["labelled"].as_u64().unwrap() >= 1)
    );
    assert!(
        !rep.to_string().contains("MRN-"),
        "the report holds no identifiers"
    );
    // The model's page: both versions, their approvals, the whole history.
    let page = w
        .as_role(Role::PrivacyOfficer, "GET", "/v1/models/risk", &[], None)
        .await
        .json();
    assert_eq!(page["versions"].as_array().map(Vec::len), Some(2), "{page}");
    assert_eq!(
        page["versions"][0]["approvals"].as_array().unwrap().len(),
        2
    );
    assert!(page["history"].as_array().unwrap().len() >= 12);
    // The list shows a clinician nothing (no read-model permission).
    let list = w
        .as_role(Role::Clinician, "GET", "/v1/models", &[], None)
        .await
        .json();
    assert_eq!(list["models"].as_array().unwrap().len(), 0);
}

both!(changes_made_elsewhere_reach_the_routing_table);
/// A version deployed behind this server's back (by another server or the CLI sharing the
/// database) starts taking predictions once a background check of the registry sees it: no
/// request waits for that check, and none is needed to trigger more than one.
async fn changes_made_elsewhere_reach_the_routing_table(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let v1 = register(&w, 1).await;
    // The server has loaded its (empty) routing table.
    assert_eq!(predict(&w, Role::Clinician, &w.mrn).await.status, 404);
    let home = w.state.home();
    let as_role = |role: Role| {
        Registry::new(&home.acting_as(
            ActorId::new(user_of(role)).unwrap(),
            home.request_id(),
            airlock_store::Scope::all(),
        ))
        .with_rollout(common::IMMEDIATE)
    };
    let name = ModelName::new("risk").unwrap();
    let r = step(
        &w,
        Role::DataScientist,
        &format!("/v1/models/risk/versions/{v1}/validate"),
        json!({"reason": "reviewed", "dataset": "risk-holdout"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for (role, as_str) in [
        (Role::ClinicalReviewer, "clinical-reviewer"),
        (Role::PrivacyOfficer, "privacy-officer"),
    ] {
        as_role(role)
            .approve(&name, &v1, as_str, "ok")
            .await
            .unwrap();
    }
    let ops = as_role(Role::MlopsEngineer);
    ops.deploy(&name, &v1, airlock_registry::State::Silent, None, "shadow")
        .await
        .unwrap();
    ops.deploy(
        &name,
        &v1,
        airlock_registry::State::Canary,
        Some(10_000),
        "all",
    )
    .await
    .unwrap();
    ops.promote(&name, "held", 0).await.unwrap();
    // Within a few reload intervals the server serves it.
    let start = std::time::Instant::now();
    loop {
        let r = predict(&w, Role::Clinician, &w.mrn).await;
        if r.status == 200 {
            assert_eq!(r.json()["version"], v1.as_str());
            break;
        }
        assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            start.elapsed() < 10 * airlock_service::models::RELOAD_INTERVAL,
            "the deployment made elsewhere never reached the server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

both!(change_control_plans_over_the_api);
// Issue 19 over the API: a change control plan proposed by the data scientist (not a
// clinician), approved by the quorum (not the proposer); an update under it that changes the
// features is refused and a retrain on a newer extract is approved by the plan; its canary is
// held to the plan's share; and the plan's rollback trigger takes the canary back to silent
// by itself once enough outcomes show its realised AUROC below the floor.
async fn change_control_plans_over_the_api(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let home = w.state.home();
    let tmp = tempfile::tempdir().unwrap();
    for seed in [1, 2] {
        let path = tmp.path().join(format!("train-{seed}.csv"));
        let table = airlock_models::testing::separable_table(400, seed).unwrap();
        std::fs::write(&path, airlock_models::testing::to_csv(&table)).unwrap();
        home.import_attested(
            &airlock_store::IngestRequest {
                zone: airlock_types::Zone::Development,
                classification: airlock_types::Classification::Synthetic,
                source_system: "test".into(),
                dataset: airlock_types::DatasetName::new("risk-train").unwrap(),
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
    let dana = home.acting_as(
        ActorId::new(user_of(Role::DataScientist)).unwrap(),
        home.request_id(),
        airlock_store::Scope::all(),
    );
    let reg = Registry::new(&dana).with_policy(common::validation_policy());
    let v1 = airlock_registry::train_on_dataset(
        &dana,
        &reg,
        &airlock_registry::TrainRequest {
            dataset: "risk-train@1".into(),
            file: None,
            target: "y".into(),
            positive: "yes".into(),
            features: vec![
                airlock_models::FeatureSpec::Numeric("x".into()),
                airlock_models::FeatureSpec::Categorical("c".into()),
            ],
            params: airlock_models::Params::Logistic(airlock_models::LogisticParams::default()),
            seed: 1,
            test_fraction: 0.25,
            name: ModelName::new("risk").unwrap(),
            intended_use: "API test model".into(),
            limitations: vec!["Synthetic data only".into()],
        },
    )
    .await
    .unwrap()
    .version
    .hash
    .to_hex();
    let base = format!("/v1/models/risk/versions/{v1}");
    let ok = |r: &common::Resp| assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    ok(&step(
        &w,
        Role::DataScientist,
        &format!("{base}/validate"),
        json!({"reason": "reviewed", "dataset": "risk-holdout"}),
    )
    .await);
    for (role, name) in [
        (Role::ClinicalReviewer, "clinical-reviewer"),
        (Role::PrivacyOfficer, "privacy-officer"),
    ] {
        ok(&step(
            &w,
            role,
            &format!("{base}/approve"),
            json!({"role": name, "reason": "ok"}),
        )
        .await);
    }
    for body in [
        json!({"state": "silent", "reason": "shadow"}),
        json!({"state": "canary", "canary_percent": 50, "reason": "canary"}),
    ] {
        ok(&step(&w, Role::MlopsEngineer, &format!("{base}/deploy"), body).await);
    }
    ok(&step(
        &w,
        Role::MlopsEngineer,
        "/v1/models/risk/promote",
        json!({"reason": "soaked"}),
    )
    .await);

    let plan = r#"plan = "risk-refresh"
model = "risk"
[[modification]]
kind = "retrain"
[verification]
max_auroc_drop = 0.1
[rollout]
min_silent_predictions = 0
max_canary_percent = 50
rollback_auroc_below = 0.9
rollback_min_outcomes = 10
"#;
    let propose = json!({"text": plan});
    assert_eq!(
        step(
            &w,
            Role::Clinician,
            "/v1/models/risk/plans",
            propose.clone()
        )
        .await
        .status,
        403
    );
    let r = step(&w, Role::DataScientist, "/v1/models/risk/plans", propose).await;
    ok(&r);
    assert_eq!(r.json()["state"], "proposed");
    let approve = |role: &str| json!({"role": role, "reason": "clauses reviewed"});
    assert_eq!(
        step(
            &w,
            Role::DataScientist,
            "/v1/models/risk/plans/risk-refresh/approve",
            approve("data-scientist")
        )
        .await
        .status,
        403
    );
    for (role, name) in [
        (Role::ClinicalReviewer, "clinical-reviewer"),
        (Role::PrivacyOfficer, "privacy-officer"),
    ] {
        ok(&step(
            &w,
            role,
            "/v1/models/risk/plans/risk-refresh/approve",
            approve(name),
        )
        .await);
    }
    let listed = w
        .as_role(
            Role::MlopsEngineer,
            "GET",
            "/v1/models/risk/plans",
            &[],
            None,
        )
        .await;
    ok(&listed);
    assert_eq!(listed.json()["plans"][0]["state"], "approved");

    let update = |features: Option<Vec<&str>>| {
        json!({
            "plan": "risk-refresh",
            "from": v1,
            "dataset": "risk-train@2",
            "validate_on": "risk-holdout",
            "features": features,
            "reason": "refresh",
        })
    };
    let r = step(
        &w,
        Role::DataScientist,
        "/v1/models/risk/update",
        update(Some(vec!["x"])),
    )
    .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("features"));
    let r = step(
        &w,
        Role::DataScientist,
        "/v1/models/risk/update",
        update(None),
    )
    .await;
    ok(&r);
    assert_eq!(r.json()["conforming"], true, "{}", r.json());
    assert_eq!(r.json()["version"]["state"], "approved");
    let v2 = r.json()["version"]["hash"].as_str().unwrap().to_owned();
    let base2 = format!("/v1/models/risk/versions/{v2}");
    ok(&step(
        &w,
        Role::MlopsEngineer,
        &format!("{base2}/deploy"),
        json!({"state": "silent", "reason": "shadow"}),
    )
    .await);
    let r = step(
        &w,
        Role::MlopsEngineer,
        &format!("{base2}/deploy"),
        json!({"state": "canary", "canary_percent": 60, "reason": "too wide"}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    ok(&step(
        &w,
        Role::MlopsEngineer,
        &format!("{base2}/deploy"),
        json!({"state": "canary", "canary_percent": 50, "reason": "within the plan"}),
    )
    .await);

    // Predictions with outcomes: identical features, so the canary's realised AUROC is 0.5,
    // under the plan's floor of 0.9; after ten of its predictions have outcomes it rolls back
    // by itself.
    let mut posted = 0;
    for i in 0..80 {
        let p = predict(&w, Role::Clinician, &format!("MRN-PLAN-{i:04}")).await;
        ok(&p);
        let id = p.json()["prediction_id"].as_u64().unwrap();
        let r = w
            .as_role(
                Role::Clinician,
                "POST",
                &format!("/v1/predictions/{id}/outcome"),
                TREAT,
                Some(json!({"label": i % 2 == 0})),
            )
            .await;
        ok(&r);
        if p.json()["version"] == v2.as_str() {
            posted += 1;
        }
    }
    // The canary scores every request (shown for its share, silent for the rest), so its
    // tenth outcome comes within the first requests and it was shown only a few times before
    // the trigger took it back.
    assert!((1..40).contains(&posted), "{posted}");
    let detail = w
        .as_role(Role::MlopsEngineer, "GET", "/v1/models/risk", &[], None)
        .await;
    let state = detail.json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == v2.as_str())
        .map(|v| v["state"].clone());
    assert_eq!(state, Some(json!("silent")), "{}", detail.json());
    let history = detail.json()["history"].to_string();
    assert!(
        history.contains("rollback trigger of change control plan risk-refresh@1"),
        "{history}"
    );
}

both!(monitoring_over_the_api);
// Issue 20 over the API: every prediction (silent and shown) is in the prediction log; the
// monitoring report finds the feature that drifted (and not the other), estimates performance
// from the scores, measures it on posted outcomes, counts the rows behind each figure, and
// holds no patient value; the offline drift route compares development datasets only.
async fn monitoring_over_the_api(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let v = common::models::silent_version(&w, 1).await;
    let post = |x: f64, c: &'static str| {
        let w = &w;
        async move {
            let r = w
                .as_role(
                    Role::Clinician,
                    "POST",
                    "/v1/models/risk/predict",
                    TREAT,
                    Some(json!({"patient_mrn": w.mrn, "features": {"x": x, "c": c}})),
                )
                .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()
        }
    };
    // Silent mode: x drawn from the top of its training range only (drift), c as trained.
    for i in 0..60 {
        let x = 6.0 + f64::from(i % 40) * 0.1;
        post(x, if i % 2 == 0 { "a" } else { "b" }).await;
    }
    let report = |q: &'static str, role: Role| {
        let w = &w;
        async move {
            w.as_role(
                role,
                "GET",
                &format!("/v1/models/risk/monitoring{q}"),
                &[],
                None,
            )
            .await
        }
    };
    let r = report("", Role::MlopsEngineer).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let ver = &body["versions"][0];
    assert_eq!(ver["version"], v.as_str());
    assert_eq!(
        (ver["silent"].as_u64(), ver["shown"].as_u64()),
        (Some(60), Some(0))
    );
    let drift = &ver["drift"];
    assert_eq!(drift["window"]["predictions"], 60);
    assert_eq!(drift["current"]["rows"], 60);
    let feature = |name: &str| {
        drift["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    // 400 reference rows: KS for x, z for the two-valued c (Evidently's rule).
    assert_eq!(feature("x")["method"], "ks");
    assert_eq!(feature("x")["drifted"], true, "{drift:#}");
    assert_eq!(feature("c")["method"], "z");
    assert_eq!(feature("c")["drifted"], false, "{drift:#}");
    assert!(feature("score")["p_value"].is_number());
    assert_eq!(drift["share_drifted"], 0.5);
    assert_eq!(drift["dataset_drift"], true);
    assert_eq!(ver["estimated"]["n"], 60);
    // CBPE leans on the validation's calibration, which the report names.
    assert!(ver["validation"]["report"].is_string(), "{ver:#}");
    assert!(ver["validation"]["ece"].is_number());
    assert_eq!(ver["estimated"]["threshold"], 0.5);
    assert_eq!(ver["realised"]["outcomes"], 0);
    assert!(!r.body.windows(w.mrn.len()).any(|s| s == w.mrn.as_bytes()));
    // The data scientist may not read a deployed model's monitoring; bad windows are refused.
    assert_eq!(report("", Role::DataScientist).await.status, 403);
    assert_eq!(report("?last=0", Role::MlopsEngineer).await.status, 400);
    assert_eq!(
        report("?threshold=2", Role::MlopsEngineer).await.status,
        400
    );
    // Canary for everyone: shown predictions, then outcomes, then realised performance.
    let r = step(
        &w,
        Role::MlopsEngineer,
        &format!("/v1/models/risk/versions/{v}/deploy"),
        json!({"state": "canary", "canary_percent": 100, "reason": "all patients"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for i in 0..10 {
        let x = 0.5 + f64::from(i);
        let p = post(x, "a").await;
        let id = p["prediction_id"].as_u64().unwrap();
        let r = w
            .as_role(
                Role::Clinician,
                "POST",
                &format!("/v1/predictions/{id}/outcome"),
                TREAT,
                Some(json!({"label": x >= 5.0})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = report("?last=10", Role::MlopsEngineer).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ver = &r.json()["versions"][0];
    assert_eq!(ver["shown"], 10);
    assert_eq!(ver["realised"]["outcomes"], 10);
    assert_eq!(ver["realised"]["positives"], 5);
    assert_eq!(ver["realised"]["auroc"], 1.0, "{ver:#}");
    // The log holds all 70 predictions.
    let r = report("?last=1000", Role::MlopsEngineer).await;
    assert_eq!(
        r.json()["versions"][0]["drift"]["window"]["predictions"],
        70
    );
    // Offline drift: development datasets only.
    let r = step(
        &w,
        Role::DataScientist,
        "/v1/monitoring/drift",
        json!({"reference": "risk-holdout", "current": "risk-holdout"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let d = r.json();
    assert_eq!(d["dataset_drift"], false);
    assert_eq!(d["reference"]["rows"], 400);
    assert_eq!(d["features"].as_array().unwrap().len(), 3);
    let r = step(
        &w,
        Role::DataScientist,
        "/v1/monitoring/drift",
        json!({"reference": "risk-holdout", "current": "ehr"}),
    )
    .await;
    assert!(matches!(r.status, 403 | 404 | 422), "{}", r.status);
    let r = step(
        &w,
        Role::DataScientist,
        "/v1/monitoring/drift",
        json!({"reference": "risk-holdout", "current": "risk-holdout", "features": ["nope"]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("nope"));
    // FHIR versions through a SQL-on-FHIR view (read, not materialised).
    let r = step(
        &w,
        Role::DataScientist,
        "/v1/monitoring/drift",
        json!({"reference": "ehr-deid", "current": "ehr-deid", "view": "patient_demographics", "features": ["gender"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let d = r.json();
    assert_eq!(d["dataset_drift"], false, "{d:#}");
    assert!(d["reference"]["rows"].as_u64().unwrap() > 0, "{d:#}");
    assert_eq!(d["features"][0]["name"], "gender");
    let r = step(
        &w,
        Role::DataScientist,
        "/v1/monitoring/drift",
        json!({"reference": "ehr-deid", "current": "ehr-deid", "view": "patient_demographics", "file": "x.csv"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));

    // Retention: a cut-off before the first prediction erases nothing; one after the last
    // erases the whole log (data keys destroyed, ciphertext deleted), as a ledger entry.
    let service = w.state.service();
    service.flush_prediction_log().await.unwrap();
    let clinical_files = || walk_files(&w.home_dir.join("objects/clinical"));
    let now = chrono::Utc::now();
    let none = service
        .expire_prediction_log_before(365, now - chrono::Duration::days(1))
        .await
        .unwrap();
    assert!(none.models.is_empty(), "{none:?}");
    let files = clinical_files();
    let size = w.ledger_size();
    let sweep = service
        .expire_prediction_log_before(365, now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(sweep.models.len(), 1, "{sweep:?}");
    let erased = &sweep.models[0];
    assert_eq!((erased.model.as_str(), erased.predictions), ("risk", 70));
    assert_eq!(clinical_files(), files - erased.batches as usize);
    assert_eq!(w.ledger_size(), size + 1);
    let e = entry(&w, erased.ledger_index);
    assert_eq!(e.event, EventType::Erasure);
    assert_eq!(e.resources, vec!["prediction-log:risk".to_string()]);
    // The report has nothing left to rest on; a second sweep finds nothing.
    let r = report("?last=1000", Role::MlopsEngineer).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["versions"],
        json!([]),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let again = service
        .expire_prediction_log_before(365, now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert!(again.models.is_empty());
    // New predictions are logged and reported again.
    post(1.0, "a").await;
    let r = report("?last=1000", Role::MlopsEngineer).await;
    assert_eq!(r.json()["versions"][0]["drift"]["window"]["predictions"], 1);
}

fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A webhook receiver on loopback: answers each POST with `status`, keeps what it received.
async fn receiver(
    status: u16,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                break;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = buf[end + 4..end + 4 + len].to_vec();
                            keep.lock().unwrap().push((head, body));
                            let reply = format!(
                                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = s.write_all(reply.as_bytes()).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, got)
}

both!(monitoring_alerts_over_the_api);
// Issue 20's alerts over the API: rules set by MLOps (versioned, hashed, in the ledger); no
// alert until `consecutive` windows breach (hysteresis), none repeated while firing; a fired
// alert is a ledger entry, a metric, an HMAC-signed webhook POST (a failing receiver is retried,
// then recorded as failed); a realised-AUROC rule rolls the canary back by itself.
async fn monitoring_alerts_over_the_api(db: Db) {
    let Some(w) = World::new(db).await else {
        return;
    };
    let v = common::models::silent_version(&w, 1).await;
    let r = step(
        &w,
        Role::MlopsEngineer,
        &format!("/v1/models/risk/versions/{v}/deploy"),
        json!({"state": "canary", "canary_percent": 100, "reason": "all patients"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Destinations: the security administrator registers them; nobody else may.
    let (ok_url, received) = receiver(200).await;
    let (bad_url, refused) = receiver(500).await;
    let hook = |name: &'static str, url: String, role: Role| {
        let w = &w;
        async move {
            step(
                w,
                role,
                "/v1/monitoring/webhooks",
                json!({"name": name, "url": url}),
            )
            .await
        }
    };
    assert_eq!(
        hook("ops", ok_url.clone(), Role::MlopsEngineer)
            .await
            .status,
        403
    );
    let r = hook("ops", ok_url, Role::SecurityAdmin).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let secret = hex::decode(r.json()["secret"].as_str().unwrap()).unwrap();
    assert_eq!(
        hook("broken", bad_url, Role::SecurityAdmin).await.status,
        200
    );
    assert_eq!(
        hook("far", "http://192.0.2.1/hook".into(), Role::SecurityAdmin)
            .await
            .status,
        400
    );
    // Rules: small windows for the test.
    let rules = r#"
[[rule]]
name = "drift"
measure = "share_drifted"
at_least = 0.5
window = 20
min_samples = 20
consecutive = 2

[[rule]]
name = "auc"
measure = "realised_auroc"
below = 0.6
window = 20
min_samples = 10
severity = "critical"
rollback_canary = true
"#;
    let set = json!({"toml": rules, "reason": "pilot thresholds"});
    assert_eq!(
        step(
            &w,
            Role::DataScientist,
            "/v1/models/risk/monitoring/rules",
            set.clone()
        )
        .await
        .status,
        403
    );
    let r = step(
        &w,
        Role::MlopsEngineer,
        "/v1/models/risk/monitoring/rules",
        set,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["version"], 1);
    let bad =
        json!({"toml": "[[rule]]\nname = \"x\"\nmeasure = \"share_drifted\"\n", "reason": "typo"});
    let r = step(
        &w,
        Role::MlopsEngineer,
        "/v1/models/risk/monitoring/rules",
        bad,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("rule `x`"));
    let mut ids = Vec::new();
    let predict_batch = |n: usize| {
        let w = &w;
        async move {
            let mut out = Vec::new();
            for i in 0..n {
                let x = 6.0 + (i % 40) as f64 * 0.1;
                let r = w
                    .as_role(
                        Role::Clinician,
                        "POST",
                        "/v1/models/risk/predict",
                        TREAT,
                        Some(json!({"patient_mrn": w.mrn, "features": {"x": x, "c": "a"}})),
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                out.push((
                    r.json()["prediction_id"].as_u64().unwrap(),
                    r.json()["score"].as_f64().unwrap(),
                ));
            }
            out
        }
    };
    let evaluate = || {
        let w = &w;
        async move {
            let r = step(
                w,
                Role::MlopsEngineer,
                "/v1/models/risk/monitoring/evaluate",
                json!({}),
            )
            .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()
        }
    };
    // One drifted window: not yet (two consecutive are required).
    ids.extend(predict_batch(20).await);
    let e = evaluate().await;
    assert!(e["fired"].as_array().unwrap().is_empty(), "{e:#}");
    // Two: the drift rule fires; the webhooks are called.
    ids.extend(predict_batch(20).await);
    let e = evaluate().await;
    let fired = e["fired"].as_array().unwrap();
    assert_eq!(fired.len(), 1, "{e:#}");
    assert_eq!(fired[0]["rule"], "drift");
    assert_eq!(fired[0]["samples"], 20);
    let alert_index = fired[0]["ledger_index"].as_u64().unwrap();
    let alert = entry(&w, alert_index);
    assert_eq!(alert.event, EventType::MonitoringAlert);
    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (head, body) = &got[0];
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&secret).unwrap();
        mac.update(body);
        let want = format!(
            "x-airlock-signature: sha256={}",
            hex::encode(mac.finalize().into_bytes())
        );
        assert!(head.contains(&want), "{head}");
        let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(sent["alert"]["rule"], "drift");
        assert!(!String::from_utf8_lossy(body).contains(&w.mrn));
    }
    // The failing receiver was tried four times, and the failure is in the ledger.
    assert_eq!(refused.lock().unwrap().len(), 4);
    let size = w.ledger_size();
    let failed = (alert_index..size)
        .map(|i| entry(&w, i))
        .find(|e| {
            e.event == EventType::MonitoringAlert
                && e.outcome.result == airlock_ledger::OutcomeKind::Failure
        })
        .expect("a failed delivery entry");
    assert!(
        failed
            .outcome
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("after 4 attempt(s)")
    );
    // Still breaching: nothing new.
    let e = evaluate().await;
    assert!(e["fired"].as_array().unwrap().is_empty(), "{e:#}");
    assert_eq!(received.lock().unwrap().len(), 1);
    // Outcomes against the scores on the latest window: realised AUROC falls below 0.6, the
    // critical rule fires and rolls the canary back by itself.
    let latest = &ids[ids.len() - 20..];
    let mut scores: Vec<f64> = latest.iter().map(|p| p.1).collect();
    scores.sort_by(f64::total_cmp);
    let median = scores[10];
    for &(id, score) in latest {
        let r = w
            .as_role(
                Role::Clinician,
                "POST",
                &format!("/v1/predictions/{id}/outcome"),
                TREAT,
                Some(json!({"label": score < median})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let e = evaluate().await;
    let fired = e["fired"].as_array().unwrap();
    assert_eq!(fired.len(), 1, "{e:#}");
    assert_eq!(fired[0]["rule"], "auc");
    assert_eq!(fired[0]["severity"], "critical");
    assert_eq!(e["rolled_back"][0], v.as_str());
    let m = w
        .as_role(Role::MlopsEngineer, "GET", "/v1/models/risk", &[], None)
        .await;
    let state = m.json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["version"] == v.as_str())
        .map(|x| x["state"].clone())
        .unwrap();
    assert_eq!(state, "silent", "{}", m.json());
    // The history and the metric.
    let r = w
        .as_role(
            Role::MlopsEngineer,
            "GET",
            "/v1/models/risk/monitoring/alerts",
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let list = r.json()["alerts"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|a| a["state"] == "firing"));
    let metrics = w.state.metrics().render();
    assert!(
        metrics.contains(
            "airlock_monitoring_alerts_total{model=\"risk\",rule=\"auc\",severity=\"critical\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("airlock_monitoring_alert_firing{model=\"risk\",rule=\"drift\"} 1"));
    // Destinations listed without secrets.
    let r = w
        .as_role(
            Role::SecurityAdmin,
            "GET",
            "/v1/monitoring/webhooks",
            &[],
            None,
        )
        .await;
    assert_eq!(r.json()["webhooks"].as_array().unwrap().len(), 2);
    assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
}
