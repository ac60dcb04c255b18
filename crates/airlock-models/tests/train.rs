#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Training through the public API on a synthetic table: reproducibility, round trips,
//! validation at prediction time, and the experiment record.

use airlock_models::{
    Experiment, FeatureKind, FeatureSpec, GbdtParams, LogisticParams, ModelKind, ModelsError,
    Params, Record, Table, TrainConfig, TrainedModel, Value, train,
};
use airlock_types::ContentHash;

/// A small readmission-shaped table with a known signal.
fn table(n: usize) -> Table {
    let mut state = 0x1234_5678_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let ages = ["[40-50)", "[50-60)", "[60-70)", "[70-80)"];
    let (mut age, mut stay, mut inpatient, mut adm, mut out) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let a = (next() * 4.0) as usize;
        let s = 1 + (next() * 14.0) as u32;
        let i = (next() * next() * 6.0) as u32;
        let t = 1 + (next() * 3.0) as u32;
        let z = -2.5 + 0.3 * a as f64 + 0.08 * f64::from(s) + 0.5 * f64::from(i)
            - if t == 2 { 0.7 } else { 0.0 };
        let p = 1.0 / (1.0 + (-z).exp());
        age.push(ages[a].to_owned());
        stay.push(s.to_string());
        inpatient.push(i.to_string());
        adm.push(t.to_string());
        out.push(if next() < p { "<30" } else { "NO" }.to_owned());
    }
    Table::from_columns(vec![
        ("age".into(), age),
        ("time_in_hospital".into(), stay),
        ("number_inpatient".into(), inpatient),
        ("admission_type_id".into(), adm),
        ("readmitted".into(), out),
    ])
    .unwrap()
}

fn config(params: Params, seed: u64) -> TrainConfig {
    TrainConfig {
        dataset_hash: ContentHash::from_bytes([7; 32]),
        target: "readmitted".into(),
        positive: "<30".into(),
        features: vec![
            "age".into(),
            "time_in_hospital".into(),
            "number_inpatient".into(),
            FeatureSpec::Categorical("admission_type_id".into()),
        ],
        params,
        seed,
        test_fraction: 0.25,
    }
}

fn kinds() -> [Params; 2] {
    [
        Params::Logistic(LogisticParams::default()),
        Params::Gbdt(GbdtParams {
            n_estimators: 20,
            ..GbdtParams::default()
        }),
    ]
}

#[test]
fn same_inputs_same_model_hash() {
    let t = table(3_000);
    for params in kinds() {
        let a = train(&t, &config(params.clone(), 42)).unwrap();
        let b = train(&t, &config(params.clone(), 42)).unwrap();
        assert_eq!(a.experiment.model_hash, b.experiment.model_hash);
        assert_eq!(a.model.to_bytes(), b.model.to_bytes());
        assert_eq!(a.split, b.split);
        let c = train(&t, &config(params, 43)).unwrap();
        assert_ne!(a.experiment.model_hash, c.experiment.model_hash);
        assert_ne!(a.split, c.split);
    }
}

#[test]
fn learns_the_signal_and_records_the_experiment() {
    let t = table(4_000);
    for params in kinds() {
        let kind = params.kind();
        let out = train(&t, &config(params, 1)).unwrap();
        let e = &out.experiment;
        assert_eq!(e.kind, kind);
        assert!(e.metrics.auroc > 0.65, "{kind:?} {}", e.metrics.auroc);
        assert!(e.metrics.auprc > e.metrics.prevalence);
        assert!(e.metrics.brier < 0.25);
        assert_eq!(e.metrics.calibration.len(), 10);
        let counted: u64 = e.metrics.calibration.iter().map(|b| b.count).sum();
        assert_eq!(counted, e.split.test_rows);
        assert_eq!(e.split.train_rows + e.split.test_rows, 4_000);
        assert_eq!(e.split.test_rows, out.split.test.len() as u64);
        assert!(e.code_version.starts_with("airlock-models "));
        assert_eq!(e.model_hash, out.model.hash());
        assert!(matches!(
            e.signature.features[3].kind,
            FeatureKind::Categorical { .. }
        ));
        assert!(matches!(
            e.signature.features[1].kind,
            FeatureKind::Numeric {
                min: 1.0,
                max: 14.0
            }
        ));
        // The record survives JSON, and unknown fields are refused.
        let json = serde_json::to_string(e).unwrap();
        let mut back: Experiment = serde_json::from_str(&json).unwrap();
        // The workspace's serde_json parses floats to within an ulp (no `float_roundtrip`), so
        // the measured floats are compared with a tolerance and everything else exactly.
        assert!((back.metrics.auroc - e.metrics.auroc).abs() < 1e-15);
        assert!((back.metrics.brier - e.metrics.brier).abs() < 1e-15);
        back.metrics = e.metrics.clone();
        back.training_seconds = e.training_seconds;
        assert_eq!(&back, e);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Experiment>(v).is_err());
    }
}

#[test]
fn bytes_round_trip_and_predict_validates() {
    let t = table(2_000);
    for params in kinds() {
        let out = train(&t, &config(params, 5)).unwrap();
        let bytes = out.model.to_bytes();
        let back = TrainedModel::from_bytes(&bytes).unwrap();
        assert_eq!(back, out.model);
        assert_eq!(back.hash(), out.model.hash());
        let mut rec: Record = [
            ("age", Value::Text("[70-80)".into())),
            ("time_in_hospital", Value::Number(9.0)),
            ("number_inpatient", Value::Number(2.0)),
            ("admission_type_id", Value::Number(1.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let p = back.predict(&rec).unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(p, out.model.predict(&rec).unwrap());
        rec.insert("time_in_hospital".into(), Value::Number(9_999.0));
        let err = back.predict(&rec).unwrap_err();
        assert!(
            matches!(err, ModelsError::OutOfRange { ref field, .. } if field == "time_in_hospital")
        );
        assert!(!err.to_string().contains("9999"));
        // Every truncation and a flipped magic are refused without panicking.
        for cut in (0..bytes.len()).step_by(7) {
            assert!(TrainedModel::from_bytes(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(TrainedModel::from_bytes(&bad).is_err());
        // Any single flipped byte either fails to decode or decodes to a different hash.
        for i in (8..bytes.len()).step_by(13) {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            if let Ok(m) = TrainedModel::from_bytes(&b) {
                assert_ne!(m.hash(), out.model.hash());
            }
        }
    }
}

#[test]
fn configuration_errors_name_columns() {
    let t = table(500);
    let mut c = config(Params::Logistic(LogisticParams::default()), 1);
    c.features.push("nope".into());
    assert_eq!(
        train(&t, &c).unwrap_err(),
        ModelsError::MissingColumn {
            column: "nope".into()
        }
    );
    let mut c = config(Params::Logistic(LogisticParams::default()), 1);
    c.features.push("readmitted".into());
    assert!(matches!(
        train(&t, &c).unwrap_err(),
        ModelsError::TargetAsFeature { .. }
    ));
    let mut c = config(Params::Logistic(LogisticParams::default()), 1);
    c.features = vec![FeatureSpec::Numeric("age".into())];
    assert_eq!(
        train(&t, &c).unwrap_err(),
        ModelsError::NotNumeric {
            column: "age".into(),
            row: 0
        }
    );
    let mut c = config(Params::Logistic(LogisticParams::default()), 1);
    c.positive = "never".into();
    assert!(matches!(
        train(&t, &c).unwrap_err(),
        ModelsError::SingleClass { .. }
    ));
    assert_eq!(ModelKind::Gbdt, config(kinds()[1].clone(), 1).params.kind());
}

mod properties {
    use std::sync::OnceLock;

    use airlock_models::{Signature, TrainOutcome};
    use proptest::prelude::*;

    use super::*;

    fn trained() -> &'static [TrainOutcome; 2] {
        static CELL: OnceLock<[TrainOutcome; 2]> = OnceLock::new();
        CELL.get_or_init(|| {
            let t = table(1_500);
            let [a, b] = kinds();
            [
                train(&t, &config(a, 3)).unwrap(),
                train(&t, &config(b, 3)).unwrap(),
            ]
        })
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<f64>().prop_map(Value::Number),
            (-5i32..20).prop_map(|v| Value::Number(f64::from(v))),
            "[a-z0-9\\[\\)\\-]{0,8}".prop_map(|s| Value::Text(format!("Zq{s}"))),
            Just(Value::Text("[70-80)".into())),
        ]
    }

    proptest! {
        /// Any record gives a probability or a refusal naming a field; never a panic, and the
        /// message never contains the text offered.
        #[test]
        fn predict_never_panics_or_echoes(
            fields in prop::collection::btree_map(
                prop_oneof![
                    Just("age".to_owned()),
                    Just("time_in_hospital".to_owned()),
                    Just("number_inpatient".to_owned()),
                    Just("admission_type_id".to_owned()),
                    "[a-z]{1,6}",
                ],
                value(),
                0..6,
            )
        ) {
            for o in trained() {
                match o.model.predict(&fields) {
                    Ok(p) => prop_assert!((0.0..=1.0).contains(&p)),
                    Err(e) => {
                        let msg = e.to_string();
                        prop_assert!(msg.contains('`'), "{}", msg);
                        // Offered texts carry a marker no message can contain.
                        prop_assert!(!msg.contains("Zq"), "{}", msg);
                    }
                }
            }
        }

        /// Arbitrary bytes, and arbitrary corruptions of real model bytes, decode or fail
        /// cleanly.
        #[test]
        fn from_bytes_never_panics(
            junk in prop::collection::vec(any::<u8>(), 0..256),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let _ = TrainedModel::from_bytes(&junk);
            for o in trained() {
                let original = o.model.to_bytes();
                let mut b = original.clone();
                for (i, x) in &flips {
                    let i = i.index(b.len());
                    b[i] ^= x | 1;
                }
                // Two flips of one byte may cancel out.
                if b == original {
                    continue;
                }
                if let Ok(m) = TrainedModel::from_bytes(&b) {
                    prop_assert_ne!(m.hash(), o.model.hash());
                }
            }
        }
    }

    #[test]
    fn foreign_signatures_are_checked() {
        let o = &trained()[0];
        let mut sig: Signature = o.model.signature().clone();
        if let FeatureKind::Categorical { categories } = &mut sig.features[0].kind {
            categories.reverse();
        }
        let err = TrainedModel::new(sig, o.model.model().clone()).unwrap_err();
        assert!(matches!(err, ModelsError::InvalidSignature { ref field, .. } if field == "age"));
    }
}
