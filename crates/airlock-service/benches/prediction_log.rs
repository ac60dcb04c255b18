//! What logging a prediction for monitoring adds to it: `cargo bench -p airlock-service --bench
//! prediction_log`.
//!
//! On a fresh deployment (SQLite, local files) and a logistic model, each prediction does what
//! `predict` always does after the policy decision: score the record and append its ledger
//! entry durably (one group commit, fsync). Run A does that N times; run B does the same plus
//! the prediction log (the values as text, queued; every 256 the background writer serialises,
//! encrypts and writes a batch as a blob with its index row, off the request's path but on the
//! same CPUs and disk). Prints both per-prediction times, the share the log adds, and the floor:
//! a bare `fdatasync` of a small file on the same disk in the same run (the ledger append is
//! bound by it on this VM).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark that prints its figures"
)]

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_authz::Authorizer;
use airlock_ledger::{Entry, EventType, OutcomeKind, Timestamp};
use airlock_models::{FeatureSpec, LogisticParams, Params, Record, TrainConfig, Value, train};
use airlock_registry::ModelName;
use airlock_registry::monitoring::LoggedPrediction;
use airlock_service::{IdentityPolicy, NoObserver, Service};
use airlock_store::{Home, InitOptions, Passphrase};
use airlock_types::{ActorId, ContentHash, RequestId, Zone};

const N: usize = 1000;

async fn run(service: &Service, with_log: bool, model: &airlock_models::TrainedModel) -> Duration {
    let name = ModelName::new("bench").unwrap();
    let features = vec!["x".to_string(), "c".to_string()];
    let actor = ActorId::new("clinician").unwrap();
    let t = Instant::now();
    for i in 0..N {
        let mut record = Record::new();
        record.insert("x".into(), Value::Number(1.0 + (i % 8) as f64));
        record.insert(
            "c".into(),
            Value::Text(if i % 2 == 0 { "a" } else { "b" }.into()),
        );
        let score = model.predict(&record).unwrap();
        let entry = Entry::new(
            Timestamp::now(),
            actor.clone(),
            EventType::Prediction,
            Zone::Clinical,
            RequestId::from_bytes(rand::random()),
            OutcomeKind::Success,
        );
        let index = service.append(vec![entry]).await.unwrap();
        if with_log {
            let row = LoggedPrediction {
                index,
                request: index,
                version: "00".repeat(32),
                shown: true,
                at: chrono::Utc::now().to_rfc3339(),
                score,
                values: airlock_service::monitoring::logged_values(&features, &record),
            };
            service.log_rows(vec![(name.clone(), row)]).await.unwrap();
        }
    }
    if with_log {
        service.flush_prediction_log().await.unwrap();
    }
    t.elapsed()
}

fn fsync_floor(dir: &std::path::Path) -> Duration {
    let path = dir.join("floor");
    let mut f = std::fs::File::create(&path).unwrap();
    let t = Instant::now();
    for _ in 0..200 {
        f.write_all(b"0123456789abcdef").unwrap();
        f.sync_data().unwrap();
    }
    t.elapsed() / 200
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::init(
            &tmp.path().join("home"),
            &Passphrase::new("bench passphrase".into()),
            &InitOptions {
                name: "logbench".into(),
                kdf: airlock_crypto::KdfParams::danger_fast_for_tests(),
                database_url: None,
            },
            ActorId::new("operator").unwrap(),
        )
        .await
        .unwrap();
        let service = Service::new(
            home,
            Authorizer::new().unwrap(),
            IdentityPolicy::default(),
            Arc::new(NoObserver),
        )
        .unwrap();
        let table = airlock_models::testing::separable_table(400, 1).unwrap();
        let model = train(
            &table,
            &TrainConfig {
                dataset_hash: ContentHash::from_bytes([1; 32]),
                target: "y".into(),
                positive: "yes".into(),
                features: vec![FeatureSpec::Numeric("x".into()), FeatureSpec::Categorical("c".into())],
                params: Params::Logistic(LogisticParams::default()),
                seed: 1,
                test_fraction: 0.25,
            },
        )
        .unwrap()
        .model;
        // Warm up, then alternate the two runs twice each (the disk's stalls come and go).
        run(&service, false, &model).await;
        let mut without = Vec::new();
        let mut with = Vec::new();
        for _ in 0..2 {
            without.push(run(&service, false, &model).await);
            with.push(run(&service, true, &model).await);
        }
        let floor = fsync_floor(tmp.path());
        let per = |d: &[Duration]| d.iter().sum::<Duration>() / (d.len() * N) as u32;
        let (a, b) = (per(&without), per(&with));
        println!("{N} predictions per run, two runs each (score + durable ledger append):");
        println!("  without the prediction log: {a:.2?} per prediction");
        println!("  with the prediction log:    {b:.2?} per prediction");
        println!(
            "  the log adds {:.2?} per prediction ({:+.1}%); floor: one bare fdatasync here takes {floor:.2?}",
            b.saturating_sub(a),
            (b.as_secs_f64() / a.as_secs_f64() - 1.0) * 100.0
        );
    });
}
