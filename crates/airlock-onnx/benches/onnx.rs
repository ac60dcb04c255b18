//! How long does one in-process ONNX prediction take, next to computing the same model natively?
//!
//! Exports scikit-learn's logistic regression and a 16-8 MLP with `tests/export_sklearn.py`
//! (needs python3, scikit-learn and skl2onnx; otherwise prints a skip message), then times
//! `OnnxModel::predict_proba` on one row of 12 features against the same logistic weights
//! computed natively (dot product and sigmoid in f64).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
)]

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use airlock_onnx::OnnxModel;
use criterion::Criterion;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_sklearn.py");
    let ok = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipping the ONNX bench: the scikit-learn export (python3, skl2onnx) failed");
        return;
    }
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let cases: serde_json::Value = serde_json::from_slice(&read("cases.json")).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let n = usize::try_from(cases["n_features"].as_u64().unwrap()).unwrap();
    let row = floats(&cases["rows"][0]);
    let coef = floats(&cases["logistic_coef"]);
    let intercept = cases["logistic_intercept"].as_f64().unwrap();
    let logistic = OnnxModel::load(&read("logistic.onnx"), n).unwrap();
    let mlp = OnnxModel::load(&read("mlp.onnx"), n).unwrap();

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("predict_one_row/tract_logistic", |b| {
        b.iter(|| logistic.predict_proba(black_box(&row)).unwrap());
    });
    c.bench_function("predict_one_row/native_logistic", |b| {
        b.iter(|| {
            let x = black_box(&row);
            let z = intercept + coef.iter().zip(x).map(|(w, v)| w * v).sum::<f64>();
            1.0 / (1.0 + (-z).exp())
        });
    });
    c.bench_function("predict_one_row/tract_mlp_16_8", |b| {
        b.iter(|| mlp.predict_proba(black_box(&row)).unwrap());
    });
    c.bench_function("load/tract_mlp_16_8", |b| {
        let bytes = read("mlp.onnx");
        b.iter(|| OnnxModel::load(black_box(&bytes), n).unwrap());
    });
    c.final_summary();
}
