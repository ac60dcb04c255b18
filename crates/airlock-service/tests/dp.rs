#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr,
    reason = "tests fail by panicking, and print the figures the closing note reports"
)]
//! Issue 21: DP questions through the service, on SQLite and on PostgreSQL. A data scientist
//! asks of identified data in the clinical zone; the privacy officer declares the metadata and
//! sets budgets; a refused question spends nothing; 64 concurrent questions against a budget
//! that admits 10 get exactly 10 answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_authz::{Principal, Role};
use airlock_crypto::KdfParams;
use airlock_service::dp::{BudgetBody, MetadataBody, QueryBody};
use airlock_service::synth::SynthBody;
use airlock_service::{
    Authenticated, Caller, IdentityPolicy, NoObserver, Service, ServiceError, Via,
};
use airlock_store::{Home, IngestRequest, InitOptions, Passphrase};
use airlock_types::{ActorId, Classification, DatasetName, RequestId, Zone};

async fn setup(url: Option<&str>) -> (tempfile::TempDir, Service) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        name: "dp".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: url.map(str::to_owned),
    };
    let pass = Passphrase::new("a dp test passphrase".into());
    let op = ActorId::new("operator").unwrap();
    let home = Home::init(&tmp.path().join("home"), &pass, &opts, op.clone())
        .await
        .unwrap();
    // 400 patients, 3 encounters each: age 20..80, length of stay 1..10 days, sex F/M.
    let mut csv = String::from("patient,age,sex,los,mrn\n");
    for p in 0..400 {
        for e in 0..3 {
            csv.push_str(&format!(
                "p{p},{},{},{},MRN{p:06}\n",
                20 + p % 60,
                if p % 2 == 0 { "F" } else { "M" },
                1 + (p + e) % 10
            ));
        }
    }
    let file = tmp.path().join("encounters.csv");
    std::fs::write(&file, csv).unwrap();
    home.ingest(
        &IngestRequest {
            zone: Zone::Clinical,
            classification: Classification::Phi,
            source_system: "ehr".into(),
            dataset: DatasetName::new("encounters").unwrap(),
            files: vec![file],
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let service = Service::new(
        home,
        airlock_authz::Authorizer::new().unwrap(),
        IdentityPolicy::default(),
        Arc::new(NoObserver),
    )
    .unwrap();
    let dana = ActorId::new("dana").unwrap();
    service
        .identities()
        .add_service(&op, &dana, &[Role::DataScientist])
        .await
        .unwrap();
    (tmp, service)
}

fn caller(service: &Service, id: &str, role: Role) -> Caller {
    service.caller(
        Authenticated {
            principal: Principal::user(ActorId::new(id).unwrap(), [role]),
            via: Via::Session,
            mfa: true,
        },
        RequestId::from_bytes(rand::random()),
        None,
        None,
    )
}

async fn prepare(service: &Service, analyst_epsilon: f64) {
    let po = caller(service, "pat-privacy", Role::PrivacyOfficer);
    po.set_dp_metadata(MetadataBody {
        dataset: "encounters".into(),
        unit: "patient".into(),
        max_rows_per_unit: 3,
        table_rows_per_unit: BTreeMap::new(),
        bounds: BTreeMap::from([("age".into(), [0.0, 100.0]), ("los".into(), [0.0, 30.0])]),
        domains: BTreeMap::from([("sex".into(), vec!["F".into(), "M".into()])]),
        bins: BTreeMap::new(),
    })
    .await
    .unwrap();
    po.set_dp_budget(BudgetBody {
        dataset: "encounters".into(),
        analyst: Some("dana".into()),
        epsilon: analyst_epsilon,
        delta: None,
    })
    .await
    .unwrap();
    po.set_dp_budget(BudgetBody {
        dataset: "encounters".into(),
        analyst: None,
        epsilon: 100.0,
        delta: None,
    })
    .await
    .unwrap();
}

fn ask(sql: &str, epsilon: f64) -> QueryBody {
    QueryBody {
        dataset: "encounters".into(),
        sql: sql.into(),
        epsilon,
        delta: None,
        save_as: None,
    }
}

#[tokio::test]
async fn a_scientist_asks_the_clinical_zone_and_a_refusal_spends_nothing() {
    let (_tmp, service) = setup(None).await;
    let dana = caller(&service, "dana", Role::DataScientist);
    // No metadata yet: refused, naming what is missing.
    let e = dana
        .dp_query(ask("SELECT COUNT(*) AS n FROM data", 1.0))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no DP metadata"), "{e}");
    prepare(&service, 3.0).await;
    let a = dana
        .dp_query(ask(
            "SELECT sex, COUNT(*) AS n, AVG(los) AS mean_los FROM data GROUP BY sex",
            1.0,
        ))
        .await
        .unwrap();
    assert_eq!(a.rows.len(), 2);
    let n: i64 = a.rows.iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert!((n - 1200).abs() < 100, "{n}");
    assert_eq!(a.mechanism, "discrete-laplace");
    assert!(a.accuracy["n"].as_f64().unwrap() > 0.0);
    assert!(
        (a.remaining.analyst_epsilon - 2.0).abs() < 1e-9,
        "{:?}",
        a.remaining
    );
    // Refusals spend nothing: bad SQL, unknown column, missing bound, non-finite epsilon,
    // a column with PHI outside the subset.
    for (body, field) in [
        (ask("SELECT mrn FROM data", 1.0), "refused"),
        (ask("SELECT SUM(nope) FROM data", 1.0), "unknown column"),
        (
            ask("SELECT SUM(patient) FROM data", 1.0),
            "no declared bounds",
        ),
        (ask("SELECT COUNT(*) FROM data", f64::NAN), "epsilon"),
        (ask("SELEC", 1.0), "does not parse"),
    ] {
        let e = dana.dp_query(body).await.unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
        assert!(!e.to_string().contains("MRN0"), "{e}");
    }
    let left = dana.dp_budgets(Some("encounters")).await.unwrap();
    let mine = left.budgets.iter().find(|b| b.analyst == "dana").unwrap();
    assert!((mine.remaining - 2.0).abs() < 1e-9, "{mine:?}");
    // A spent pure budget cannot be reset as a zCDP one (its spending is in epsilon).
    let po = caller(&service, "pat-privacy", Role::PrivacyOfficer);
    let e = po
        .set_dp_budget(BudgetBody {
            dataset: "encounters".into(),
            analyst: Some("dana".into()),
            epsilon: 3.0,
            delta: Some(1e-6),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::Conflict { .. }), "{e}");
    // A question with delta does not fit a pure budget.
    let mut gaussian = ask("SELECT COUNT(*) AS n FROM data", 0.5);
    gaussian.delta = Some(1e-7);
    let e = dana.dp_query(gaussian).await.unwrap_err();
    assert!(e.to_string().contains("pure epsilon-DP budget"), "{e}");
    // Spend the rest, then be refused by the budget, naming it and what is left.
    dana.dp_query(ask("SELECT COUNT(*) AS n FROM data", 2.0))
        .await
        .unwrap();
    let e = dana
        .dp_query(ask("SELECT COUNT(*) AS n FROM data", 2.5))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Refused { reason } if reason.contains("your budget") && reason.contains("left")),
        "{e}"
    );
    // The data scientist still cannot download the clinical data itself.
    assert!(dana.files("encounters", None).await.is_err());
    // Saved answers are dp-aggregate versions in development.
    po.set_dp_budget(BudgetBody {
        dataset: "encounters".into(),
        analyst: Some("dana".into()),
        epsilon: 10.0,
        delta: None,
    })
    .await
    .unwrap();
    let mut body = ask("SELECT sex, COUNT(*) AS n FROM data GROUP BY sex", 0.5);
    body.save_as = Some("encounters-by-sex".into());
    let saved = dana.dp_query(body).await.unwrap().saved.unwrap();
    assert!(saved.starts_with("encounters-by-sex@1"), "{saved}");
    let v = service
        .home()
        .version(&DatasetName::new("encounters-by-sex").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        (v.zone, v.classification),
        (Zone::Development, Classification::DpAggregate)
    );
}

async fn concurrent(url: Option<&str>) {
    let (_tmp, service) = setup(url).await;
    // A pure budget of epsilon 10 admits exactly ten questions at epsilon 1.
    prepare(&service, 10.0).await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let dana = caller(&service, "dana", Role::DataScientist);
        tasks.push(tokio::spawn(async move {
            dana.dp_query(ask("SELECT COUNT(*) AS n FROM data", 1.0))
                .await
        }));
    }
    let mut answered = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => answered += 1,
            Err(ServiceError::Refused { reason }) if reason.contains("budget") => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("64 concurrent questions: {answered} answered, {refused} refused by the budget");
    assert_eq!((answered, refused), (10, 54));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_questions_against_a_budget_for_ten_get_ten_answers_on_sqlite() {
    concurrent(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_questions_against_a_budget_for_ten_get_ten_answers_on_postgres() {
    let Some(url) = airlock_store::testing::fresh_postgres_url("dp")
        .await
        .unwrap()
    else {
        eprintln!(
            "skipping: AIRLOCK_TEST_POSTGRES is not set (scripts/test-postgres.sh starts a server)"
        );
        return;
    };
    concurrent(Some(&url)).await;
}

#[tokio::test]
async fn a_zcdp_budget_charges_rho_and_shows_epsilon_at_its_delta() {
    let (_tmp, service) = setup(None).await;
    prepare(&service, 1.0).await;
    let po = caller(&service, "pat-privacy", Role::PrivacyOfficer);
    let b = po
        .set_dp_budget(BudgetBody {
            dataset: "encounters".into(),
            analyst: Some("dana".into()),
            epsilon: 1.0,
            delta: Some(1e-6),
        })
        .await
        .unwrap();
    po.set_dp_budget(BudgetBody {
        dataset: "encounters".into(),
        analyst: None,
        epsilon: 50.0,
        delta: Some(1e-6),
    })
    .await
    .unwrap();
    let limit = airlock_dp::rho_for_epsilon(1.0, 1e-6).unwrap();
    assert!(
        (b.limit - limit).abs() < 1e-9 && (b.limit_epsilon - 1.0).abs() < 1e-6,
        "{b:?}"
    );
    let dana = caller(&service, "dana", Role::DataScientist);
    let mut q = ask("SELECT AVG(age) AS mean_age FROM data", 0.5);
    q.delta = Some(1e-7);
    let a = dana.dp_query(q).await.unwrap();
    assert_eq!(a.mechanism, "discrete-gaussian");
    let charged = airlock_dp::rho_for_epsilon(0.5, 1e-7).unwrap();
    let left = a.remaining.analyst.unwrap();
    assert!(
        (left.remaining - (limit - charged)).abs() < 1e-9,
        "{left:?}"
    );
    // A pure question against a zCDP budget costs its epsilon squared over two.
    let a = dana
        .dp_query(ask("SELECT COUNT(*) AS n FROM data", 0.05))
        .await
        .unwrap();
    let left2 = a.remaining.analyst.unwrap();
    assert!((left.remaining - left2.remaining - 0.05 * 0.05 / 2.0).abs() < 1e-9);
    let mean = a.rows[0]["n"].as_i64().unwrap();
    assert!((mean - 1200).abs() < 400, "{mean}");
}

fn synth(epsilon: f64, columns: Option<&[&str]>) -> SynthBody {
    SynthBody {
        dataset: "encounters".into(),
        epsilon,
        delta: 1e-6,
        table: None,
        columns: columns.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
        rows: None,
        target: Some("sex".into()),
        positive: Some("F".into()),
        out_dataset: "encounters-synthetic".into(),
        seed: Some(11),
    }
}

/// Issue 22: synthetic rows leave the clinical zone as a `synthetic` version in development,
/// charged to the zCDP budgets; identifiers, undeclared and unknown columns and bad ε are
/// refused before anything is spent.
#[tokio::test]
async fn synthetic_rows_are_a_charged_release_and_refusals_spend_nothing() {
    let (_tmp, service) = setup(None).await;
    prepare(&service, 1.0).await;
    let po = caller(&service, "pat-privacy", Role::PrivacyOfficer);
    // zCDP composes sublinearly: 2.5 admits one run at 2, not two.
    for (analyst, epsilon) in [(Some("dana"), 2.5), (None, 50.0)] {
        po.set_dp_budget(BudgetBody {
            dataset: "encounters".into(),
            analyst: analyst.map(str::to_owned),
            epsilon,
            delta: Some(1e-6),
        })
        .await
        .unwrap();
    }
    let dana = caller(&service, "dana", Role::DataScientist);
    let left = |s: &Service| {
        let po = caller(s, "pat-privacy", Role::PrivacyOfficer);
        async move {
            po.dp_budgets(Some("encounters"))
                .await
                .unwrap()
                .budgets
                .into_iter()
                .find(|b| b.analyst == "dana")
                .unwrap()
                .remaining
        }
    };
    let before = left(&service).await;
    let refusals = [
        (synth(1.0, Some(&["patient", "age"])), "privacy unit"),
        (
            synth(1.0, Some(&["mrn", "age"])),
            "no declared domain or bounds",
        ),
        (synth(1.0, Some(&["zzz"])), "not in table"),
        (synth(0.0, None), "epsilon"),
        (synth(f64::INFINITY, None), "epsilon"),
    ];
    for (body, why) in refusals {
        let e = dana.synthesize(body).await.unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    assert_eq!(left(&service).await, before, "a refusal spent budget");

    let r = dana.synthesize(synth(2.0, None)).await.unwrap();
    assert_eq!(
        r.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["age", "sex", "los"]
    );
    assert_eq!(r.charges.len(), 3 + 2 + 2, "{:?}", r.charges);
    assert!(r.rho_spent <= r.rho && r.rho_spent > 0.99 * r.rho);
    let charged = airlock_dp::rho_for_epsilon(2.0, 1e-6).unwrap();
    assert!((before - left(&service).await - charged).abs() < 1e-9);
    assert!(
        r.report.fidelity.mean_column > 0.8,
        "{:?}",
        r.report.fidelity
    );
    assert!(r.report.utility.is_some());
    assert!(r.rows > 500 && r.rows < 1500, "{}", r.rows);
    let v = service
        .home()
        .version(&DatasetName::new("encounters-synthetic").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        (v.zone, v.classification),
        (Zone::Development, Classification::Synthetic)
    );
    assert_eq!(
        v.lineage.transform.params.get("method").map(String::as_str),
        Some("mst")
    );
    // The budget is now too small for another run at the same epsilon.
    let e = dana.synthesize(synth(2.0, None)).await.unwrap_err();
    assert!(matches!(e, ServiceError::Refused { .. }), "{e}");
    eprintln!(
        "synth: {} rows, fidelity 1-way {:.3} 2-way {:.3}, rho {:.4} spent {:.4}",
        r.rows, r.report.fidelity.mean_column, r.report.fidelity.mean_pair, r.rho, r.rho_spent
    );
}

/// A de-identified table in development may be synthesised too (as a download the data
/// scientist could make anyway), charged like any release.
#[tokio::test]
async fn synthetic_rows_from_a_deidentified_table_in_development() {
    let (tmp, service) = setup(None).await;
    let mut csv = String::from("patient,age,sex\n");
    for p in 0..300 {
        csv.push_str(&format!(
            "p{p},{},{}\n",
            20 + p % 60,
            if p % 2 == 0 { "F" } else { "M" }
        ));
    }
    let file = tmp.path().join("deid.csv");
    std::fs::write(&file, csv).unwrap();
    service
        .home()
        .import_attested(
            &IngestRequest {
                zone: Zone::Development,
                classification: Classification::Deidentified,
                source_system: "ehr".into(),
                dataset: DatasetName::new("stays-deid").unwrap(),
                files: vec![file],
            },
            &airlock_store::Attestation {
                basis: airlock_store::AttestationBasis::Synthetic,
                attested_by: ActorId::new("pat-privacy").unwrap(),
                reference: None,
            },
            &mut |_, _| {},
        )
        .await
        .unwrap();
    let po = caller(&service, "pat-privacy", Role::PrivacyOfficer);
    po.set_dp_metadata(MetadataBody {
        dataset: "stays-deid".into(),
        unit: "patient".into(),
        max_rows_per_unit: 1,
        table_rows_per_unit: BTreeMap::new(),
        bounds: BTreeMap::from([("age".into(), [0.0, 100.0])]),
        domains: BTreeMap::from([("sex".into(), vec!["F".into(), "M".into()])]),
        bins: BTreeMap::from([("age".into(), 10)]),
    })
    .await
    .unwrap();
    for analyst in [Some("dana".to_owned()), None] {
        po.set_dp_budget(BudgetBody {
            dataset: "stays-deid".into(),
            analyst,
            epsilon: 5.0,
            delta: Some(1e-6),
        })
        .await
        .unwrap();
    }
    let dana = caller(&service, "dana", Role::DataScientist);
    let mut body = synth(1.0, None);
    body.dataset = "stays-deid".into();
    body.out_dataset = "stays-deid-synthetic".into();
    let r = dana.synthesize(body).await.unwrap();
    assert_eq!(r.columns.len(), 2);
    let v = service
        .home()
        .version(&DatasetName::new("stays-deid-synthetic").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        (v.zone, v.classification),
        (Zone::Development, Classification::Synthetic)
    );
}
