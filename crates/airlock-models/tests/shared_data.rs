#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! The reference task on the shared readmission table (a 30,000-row slice, to keep debug test
//! runs short; the example trains on all of it). Skips when the shared data is absent.

use std::path::Path;

use airlock_models::{FeatureSpec, GbdtParams, LogisticParams, Params, Table, TrainConfig, train};
use airlock_types::ContentHash;

fn readmission_table() -> Option<Table> {
    let shared = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    let zip = shared.join("tabular/diabetes130/dataset_diabetes.zip");
    if !zip.is_file() {
        eprintln!("skipping: shared data not found at {}", zip.display());
        return None;
    }
    let tmp = std::env::temp_dir().join(format!("airlock-models-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let status = std::process::Command::new("unzip")
        .args(["-o", "-q"])
        .arg(&zip)
        .arg("dataset_diabetes/diabetic_data.csv")
        .arg("-d")
        .arg(&tmp)
        .status();
    let Ok(status) = status else {
        eprintln!("skipping: unzip unavailable");
        return None;
    };
    assert!(status.success());
    let bytes = std::fs::read(tmp.join("dataset_diabetes/diabetic_data.csv")).unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
    // First 30,000 data rows.
    let end = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(30_000)
        .map_or(bytes.len(), |(i, _)| i + 1);
    let cols = [
        "age",
        "A1Cresult",
        "insulin",
        "change",
        "diabetesMed",
        "admission_type_id",
        "discharge_disposition_id",
        "time_in_hospital",
        "num_medications",
        "number_emergency",
        "number_inpatient",
        "number_diagnoses",
        "readmitted",
    ];
    Some(Table::read_csv(&bytes[..end], Some(&cols)).unwrap())
}

#[test]
fn readmission_models_beat_chance_and_reproduce() {
    let Some(table) = readmission_table() else {
        return;
    };
    assert_eq!(table.rows(), 30_000);
    let features = vec![
        FeatureSpec::from("age"),
        FeatureSpec::from("A1Cresult"),
        FeatureSpec::from("insulin"),
        FeatureSpec::from("change"),
        FeatureSpec::from("diabetesMed"),
        FeatureSpec::Categorical("admission_type_id".into()),
        FeatureSpec::Categorical("discharge_disposition_id".into()),
        FeatureSpec::from("time_in_hospital"),
        FeatureSpec::from("num_medications"),
        FeatureSpec::from("number_emergency"),
        FeatureSpec::from("number_inpatient"),
        FeatureSpec::from("number_diagnoses"),
    ];
    let params = [
        Params::Logistic(LogisticParams::default()),
        Params::Gbdt(GbdtParams {
            n_estimators: 25,
            ..GbdtParams::default()
        }),
    ];
    for p in params {
        let config = TrainConfig {
            dataset_hash: ContentHash::from_bytes([0; 32]),
            target: "readmitted".into(),
            positive: "<30".into(),
            features: features.clone(),
            params: p,
            seed: 11,
            test_fraction: 0.2,
        };
        let a = train(&table, &config).unwrap();
        let m = &a.experiment.metrics;
        eprintln!(
            "{:?}: auroc {:.4} auprc {:.4} brier {:.4}",
            a.experiment.kind, m.auroc, m.auprc, m.brier
        );
        // Published models on this task reach about 0.65-0.70; chance is 0.5.
        assert!(m.auroc > 0.6, "{}", m.auroc);
        assert!(m.auprc > m.prevalence);
        let b = train(&table, &config).unwrap();
        assert_eq!(a.experiment.model_hash, b.experiment.model_hash);
    }
}
