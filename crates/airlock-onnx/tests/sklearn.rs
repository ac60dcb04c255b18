#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! scikit-learn as the oracle: models exported by `export_sklearn.py` (skl2onnx) must predict what
//! scikit-learn predicts, and what tract cannot run must be refused by name.
//!
//! The export needs python3 with numpy, scikit-learn and skl2onnx. Without them these tests print
//! a skip message and pass, unless `AIRLOCK_REQUIRE_ONNX=1` (CI), where they fail.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use airlock_models::{Model, ModelKind};
use airlock_onnx::{OnnxError, OnnxModel};
use anyhow::{Context, Result, bail};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// The agreement asked of tract (float32) against scikit-learn (float64).
const TOLERANCE: f64 = 1e-5;

struct Export {
    n: usize,
    rows: Vec<Vec<f64>>,
    logistic_proba: Vec<f64>,
    mlp_proba: Vec<f64>,
    labels: Vec<bool>,
    files: Vec<(String, Vec<u8>)>,
}

impl Export {
    fn file(&self, name: &str) -> &[u8] {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
            .unwrap_or_else(|| panic!("{name} was not exported"))
    }
}

/// Run the export once per test binary; `None` means skip.
fn export() -> Option<&'static Export> {
    static EXPORT: OnceLock<Option<Export>> = OnceLock::new();
    EXPORT
        .get_or_init(|| match run_export() {
            Ok(e) => Some(e),
            Err(e) if std::env::var("AIRLOCK_REQUIRE_ONNX").as_deref() == Ok("1") => {
                panic!("AIRLOCK_REQUIRE_ONNX=1 but the scikit-learn export failed: {e:#}")
            }
            Err(e) => {
                eprintln!("skipping the scikit-learn ONNX tests: {e:#}");
                None
            }
        })
        .as_ref()
}

fn run_export() -> Result<Export> {
    let dir = tempfile::tempdir()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_sklearn.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .output()
        .context("python3 is not available")?;
    match out.status.code() {
        Some(0) => {}
        // The script's "a package is missing": a skip, not a bug.
        Some(3) => bail!("{}", String::from_utf8_lossy(&out.stderr).trim()),
        _ => panic!(
            "export_sklearn.py failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cases.json"))?)?;
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "onnx") {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            files.push((name, std::fs::read(&path)?));
        }
    }
    Ok(Export {
        n: usize::try_from(cases["n_features"].as_u64().expect("n_features"))?,
        rows: cases["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(floats)
            .collect(),
        logistic_proba: floats(&cases["logistic"]),
        mlp_proba: floats(&cases["mlp"]),
        labels: cases["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|v| v.as_u64() == Some(1))
            .collect(),
        files,
    })
}

fn max_abs_diff(model: &OnnxModel, rows: &[Vec<f64>], expected: &[f64]) -> f64 {
    assert_eq!(rows.len(), expected.len());
    assert_eq!(rows.len(), 200);
    rows.iter()
        .zip(expected)
        .map(|(row, want)| {
            let got = model.predict_proba(row).expect("prediction");
            (got - want).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn logistic_mlp_and_a_hand_built_sigmoid_agree_with_scikit_learn() {
    let Some(e) = export() else { return };
    for (file, expected) in [
        ("logistic.onnx", &e.logistic_proba),
        ("mlp.onnx", &e.mlp_proba),
        // MatMul, Add, Sigmoid on the logistic weights: one [N, 1] output.
        ("sigmoid.onnx", &e.logistic_proba),
    ] {
        let model = OnnxModel::load(e.file(file), e.n).expect(file);
        let diff = max_abs_diff(&model, &e.rows, expected);
        println!("{file}: max |tract - scikit-learn| over 200 rows = {diff:.3e}");
        assert!(diff < TOLERANCE, "{file}: max abs diff {diff:e}");
        // The batch path gives the same numbers.
        let batch = model.predict_batch(&e.rows).expect("batch");
        for (row, p) in e.rows.iter().zip(&batch) {
            assert_eq!(model.predict_proba(row).expect("row"), *p);
        }
    }
    // The predictions are not all alike (the oracle is not vacuous).
    let spread = e
        .logistic_proba
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
    assert!(spread.0 < 0.1 && spread.1 > 0.9, "{spread:?}");
}

#[test]
fn the_scaler_pipeline_is_refused_naming_scaler() {
    let Some(e) = export() else { return };
    let err = OnnxModel::load(e.file("scaler_logistic.onnx"), e.n).unwrap_err();
    let OnnxError::UnsupportedOperator { ops } = &err else {
        panic!("expected an unsupported operator, got {err:?}")
    };
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].op_type, "Scaler");
    assert_eq!(ops[0].domain, "ai.onnx.ml");
    let msg = err.to_string();
    assert!(
        msg.starts_with("ONNX operator `Scaler` (domain ai.onnx.ml"),
        "{msg}"
    );
    assert!(msg.contains("train in Airlock"), "{msg}");
    println!("scaler pipeline: {msg}");
}

#[test]
fn zipmap_multiclass_raw_scores_and_external_data_are_refused() {
    let Some(e) = export() else { return };

    let err = OnnxModel::load(e.file("logistic_zipmap.onnx"), e.n).unwrap_err();
    assert!(
        matches!(&err, OnnxError::UnsupportedOperator { ops } if ops[0].op_type == "ZipMap"),
        "{err:?}"
    );
    assert!(err.to_string().contains("zipmap disabled"), "{err}");

    let err = OnnxModel::load(e.file("multiclass.onnx"), e.n).unwrap_err();
    assert!(
        matches!(&err, OnnxError::OutputShape { output, .. } if output == "probabilities"),
        "{err:?}"
    );

    let err = OnnxModel::load(e.file("external.onnx"), e.n).unwrap_err();
    assert_eq!(
        err,
        OnnxError::ExternalData {
            tensor: "w".to_owned()
        }
    );

    // A score is not a probability: loads (the shape is right) but refuses scores outside [0, 1].
    let raw = OnnxModel::load(e.file("raw_score.onnx"), e.n).expect("raw score model");
    let mut refused = 0;
    for (row, p) in e.rows.iter().zip(&e.logistic_proba) {
        match raw.predict_proba(row) {
            Ok(score) => assert!((0.0..=1.0).contains(&score)),
            Err(OnnxError::NotProbability { rule, .. }) => {
                assert_eq!(rule, "outside [0, 1]");
                // Logit outside [0, 1] means p < 0.5 or p > sigmoid(1).
                assert!(*p < 0.5 || *p > 0.73, "{p}");
                refused += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(refused > 100, "{refused}");
}

#[test]
fn wrong_widths_and_bad_inputs_are_refused_without_values() {
    let Some(e) = export() else { return };
    let bytes = e.file("logistic.onnx");
    assert_eq!(
        OnnxModel::load(bytes, e.n - 1).unwrap_err(),
        OnnxError::DeclaredWidth {
            input: "input".to_owned(),
            expected: e.n - 1,
            declared: e.n
        }
    );
    assert_eq!(OnnxModel::load(bytes, 0).unwrap_err(), OnnxError::ZeroWidth);

    let model = OnnxModel::load(bytes, e.n).expect("load");
    assert_eq!(model.n_inputs(), e.n);
    for width in [0, e.n - 1, e.n + 1] {
        let x = vec![0.5; width];
        assert_eq!(
            model.predict_proba(&x).unwrap_err(),
            OnnxError::Dimension {
                expected: e.n,
                found: width
            }
        );
    }
    let mut x = vec![123.456_789; e.n];
    x[3] = f64::NAN;
    let err = model.predict_proba(&x).unwrap_err();
    assert_eq!(err, OnnxError::NonFiniteInput { index: 3 });
    // Too large for float32: infinite once rounded to the model's precision.
    x[3] = 1e300;
    let err = model.predict_proba(&x).unwrap_err();
    assert_eq!(err, OnnxError::NonFiniteInput { index: 3 });
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("123.4") && !text.contains("1e300"), "{text}");
    }
}

#[test]
fn identity_bytes_and_the_model_trait() {
    let Some(e) = export() else { return };
    let bytes = e.file("mlp.onnx");
    let model = OnnxModel::load(bytes, e.n).expect("load");
    assert_eq!(model.bytes(), bytes);
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    assert_eq!(model.sha256().to_string().len(), 64);
    assert_eq!(
        model.sha256(),
        airlock_types_hash(digest),
        "sha256 names the original file"
    );
    assert_eq!(model.output_name(), "probabilities");

    assert_eq!(Model::kind(&model), ModelKind::Onnx);
    assert_eq!(Model::n_inputs(&model), e.n);
    let canonical = Model::to_bytes(&model);
    let back = <OnnxModel as Model>::from_bytes(&canonical).expect("round trip");
    assert_eq!(back, model);
    assert_eq!(Model::to_bytes(&back), canonical);
    for row in e.rows.iter().take(20) {
        assert_eq!(
            Model::predict_proba(&back, row).expect("trait"),
            model.predict_proba(row).expect("inherent")
        );
    }
    assert!(matches!(
        Model::predict_proba(&model, &[1.0]),
        Err(airlock_models::ModelsError::Dimension { expected, found: 1 }) if expected == e.n
    ));
    assert!(<OnnxModel as Model>::from_bytes(bytes).is_err());

    // Shared between threads, as a server does.
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&model);
    std::thread::scope(|s| {
        for chunk in e.rows.chunks(50) {
            let model = &model;
            s.spawn(move || {
                for row in chunk {
                    model.predict_proba(row).expect("threaded prediction");
                }
            });
        }
    });
}

fn airlock_types_hash(digest: [u8; 32]) -> airlock_types::ContentHash {
    airlock_types::ContentHash::from_bytes(digest)
}

#[test]
fn every_truncation_of_an_exported_model_is_an_error_or_a_valid_model_never_a_panic() {
    let Some(e) = export() else { return };
    for name in ["logistic.onnx", "mlp.onnx"] {
        let bytes = e.file(name);
        let mut loaded = 0;
        for cut in 0..bytes.len() {
            // A protobuf cut at a field boundary is still a message; it must then be checked
            // like any other file, and whatever loads must still answer with a probability.
            if let Ok(m) = OnnxModel::load(&bytes[..cut], e.n) {
                loaded += 1;
                let _ = m.predict_proba(&e.rows[0]);
            }
        }
        println!("{name}: {loaded} of {} truncations load", bytes.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048), n in 1usize..32) {
        prop_assert!(OnnxModel::load(&bytes, n).is_err());
    }

    #[test]
    fn corrupted_exports_never_unwind_out(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let Some(e) = export() else { return Ok(()) };
        for name in ["logistic.onnx", "mlp.onnx", "sigmoid.onnx"] {
            let mut bytes = e.file(name).to_vec();
            for (at, v) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= v | 1;
            }
            // A panic inside tract is contained as `OnnxError::Panicked`; reaching here at all
            // is the property.
            if let Ok(m) = OnnxModel::load(&bytes, e.n) {
                let _ = m.predict_proba(&e.rows[0]);
            }
        }
    }
}

/// The whole path for a model trained elsewhere: import (measured by Airlock on a de-identified
/// dataset version), sign, approve, deploy, serve through the registry's routing, and predict
/// what scikit-learn predicts; what tract cannot run is refused at import.
#[tokio::test]
async fn an_imported_scikit_learn_model_is_registered_deployed_and_served() {
    use airlock_models::{Feature, FeatureKind, Signature};
    use airlock_registry::{ArtifactKind, ImportRequest, ModelName, Registry, State};
    use airlock_types::{ActorId, Classification, Zone};
    let Some(e) = export() else { return };
    let dir = tempfile::tempdir().unwrap();
    let home = airlock_store::Home::init(
        &dir.path().join("home"),
        &airlock_store::Passphrase::new("onnx test passphrase".into()),
        &airlock_store::InitOptions {
            name: "onnx".into(),
            kdf: airlock_crypto::KdfParams::danger_fast_for_tests(),
            database_url: None,
        },
        ActorId::new("operator").unwrap(),
    )
    .await
    .unwrap();
    let names: Vec<String> = (0..e.n).map(|i| format!("f{i}")).collect();
    let mut csv = names.join(",") + ",y\n";
    for (row, label) in e.rows.iter().zip(&e.labels) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        csv.push_str(&format!("{},{}\n", cells.join(","), u8::from(*label)));
    }
    let path = dir.path().join("holdout.csv");
    std::fs::write(&path, csv).unwrap();
    home.import_attested(
        &airlock_store::IngestRequest {
            zone: Zone::Development,
            classification: Classification::Deidentified,
            source_system: "test".into(),
            dataset: airlock_types::DatasetName::new("holdout").unwrap(),
            files: vec![path],
        },
        &airlock_store::Attestation {
            basis: airlock_store::AttestationBasis::Synthetic,
            attested_by: airlock_types::ActorId::new("privacy-officer").unwrap(),
            reference: None,
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let signature = Signature {
        features: names
            .iter()
            .map(|n| Feature {
                name: n.clone(),
                kind: FeatureKind::Numeric {
                    min: -1e6,
                    max: 1e6,
                },
            })
            .collect(),
    };
    let as_actor = |a: &str| {
        Registry::new(&home.acting_as(
            ActorId::new(a).unwrap(),
            home.request_id(),
            airlock_store::Scope::all(),
        ))
        .with_onnx(std::sync::Arc::new(airlock_onnx::TractRuntime))
        // A canary to every patient, promoted at once: the rollout rules are tested elsewhere.
        .with_rollout(airlock_store::RolloutConfig {
            max_canary_percent: 100.0,
            min_canary_minutes: 0,
            min_canary_predictions: 0,
            min_silent_minutes: 0,
            min_silent_predictions: 0,
        })
        // An imported model's training data is not here, so no attack can run: this
        // deployment's policy leaves memorisation to the committee (the default one would refuse).
        .with_policy(airlock_models::Policy {
            max_membership_tpr_at_fpr_0_001: None,
            ..airlock_models::Policy::default()
        })
    };
    let request = |file: &str| ImportRequest {
        kind: ArtifactKind::Onnx,
        artifact: e.file(file).to_vec(),
        signature: signature.clone(),
        dataset: "holdout".into(),
        file: None,
        target: "y".into(),
        positive: "1".into(),
        name: ModelName::new("imported").unwrap(),
        intended_use: "test".into(),
        limitations: vec!["synthetic".into()],
        trained_by: ActorId::new("external-team").unwrap(),
    };
    let importer = home.acting_as(
        ActorId::new("mo").unwrap(),
        home.request_id(),
        airlock_store::Scope::all(),
    );
    // What tract cannot run is refused at import, by operator name.
    let err = airlock_registry::import_model(
        &importer,
        &as_actor("mo"),
        &request("scaler_logistic.onnx"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("Scaler"), "{err}");
    let r = airlock_registry::import_model(&importer, &as_actor("mo"), &request("logistic.onnx"))
        .await
        .unwrap();
    assert_eq!(r.version.card.family, "onnx");
    assert_eq!(r.version.card.trained_by.as_str(), "external-team");
    assert!(
        r.version.card.metrics.auroc > 0.7,
        "{}",
        r.version.card.metrics.auroc
    );
    let name = ModelName::new("imported").unwrap();
    let h = r.version.hash.to_hex();
    // `validated` only by a passing report: the held-out rows it was measured on at import.
    assert!(as_actor("mo").validate(&name, &h, "ok").await.is_err());
    let mut columns: Vec<&str> = names.iter().map(String::as_str).collect();
    columns.push("y");
    let (hv, held) = airlock_registry::training::read_table(&importer, "holdout", None, &columns)
        .await
        .unwrap();
    let (report, transition) = as_actor("mo")
        .validate_on(
            &name,
            &h,
            airlock_registry::validation::ValidationData {
                dataset: hv.reference().to_string(),
                dataset_hash: hv.manifest_hash,
                table: &held,
                training: None,
                sensitive: vec![],
                target: Some(("y".into(), "1".into())),
                threshold: 0.5,
                resamples: 200,
                held_out_split: false,
            },
            "ok",
        )
        .await
        .unwrap();
    assert!(report.body.passed, "{:?}", report.body.reasons);
    assert!(!report.body.training_overlap.checked);
    assert!(report.body.report.membership_inference.is_none());
    assert!(transition.is_some());
    as_actor("rita")
        .approve(&name, &h, "clinical-reviewer", "ok")
        .await
        .unwrap();
    as_actor("pat")
        .approve(&name, &h, "privacy-officer", "ok")
        .await
        .unwrap();
    as_actor("mo")
        .deploy(&name, &h, State::Silent, None, "shadow")
        .await
        .unwrap();
    as_actor("mo")
        .deploy(&name, &h, State::Canary, Some(10_000), "all")
        .await
        .unwrap();
    as_actor("mo").promote(&name, "go", 0).await.unwrap();
    // Without an ONNX runtime the version cannot load (and says why).
    let (bare, errors) = Registry::new(&home).deployment(None).await.unwrap();
    assert!(bare.routes("imported").is_none());
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("no ONNX runtime"))
    );
    let (dep, errors) = as_actor("mo").deployment(None).await.unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let routes = dep.routes("imported").unwrap();
    let key = home.pseudonym_key().unwrap();
    let mut worst = 0.0f64;
    for (i, (row, want)) in e.rows.iter().zip(&e.logistic_proba).enumerate() {
        let patient = airlock_ledger::patient_pseudonym(key.expose_secret(), &format!("P{i}"));
        let m = routes.shown_for(key.expose_secret(), &patient).unwrap();
        let rec: airlock_models::Record = names
            .iter()
            .zip(row)
            .map(|(n, v)| (n.clone(), airlock_models::Value::Number(*v)))
            .collect();
        worst = worst.max((m.score(&rec).unwrap() - want).abs());
    }
    println!("served ONNX logistic vs scikit-learn: max |diff| {worst:e}");
    assert!(worst < TOLERANCE, "{worst}");
}
