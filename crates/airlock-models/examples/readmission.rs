#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example binary: it stops on bad input and prints its results"
)]
//! The reference task: 30-day readmission (`readmitted == "<30"`) on the shared Diabetes 130-US
//! hospitals table, with logistic regression and gradient-boosted trees on the same seeded split.
//!
//! ```text
//! cargo run --release -p airlock-models --example readmission [OUT_DIR]
//! python3 bench/models_baseline.py OUT_DIR    # runs this example itself, then scikit-learn
//! ```
//!
//! Writes to OUT_DIR (default: a folder in the system temp dir): `split.csv` (row index into
//! `diabetic_data.csv`, `train` or `test`), `train.csv` and `test.csv` (the feature columns and
//! the label; the test file also carries both models' predictions), `signature.json` and one
//! `experiment_<kind>.json` per model.

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_models::{
    FeatureSpec, GbdtParams, LogisticParams, Params, Table, TrainConfig, TrainOutcome, train,
};
use airlock_types::ContentHash;
use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

const NUMERIC: &[&str] = &airlock_models::reference::READMISSION_NUMERIC;
const CATEGORICAL: &[&str] = &airlock_models::reference::READMISSION_CATEGORICAL;
const SEED: u64 = 20_261_129;

fn main() -> anyhow::Result<()> {
    let shared = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    let zip = shared.join("tabular/diabetes130/dataset_diabetes.zip");
    if !zip.is_file() {
        eprintln!("skipping: shared data not found at {}", zip.display());
        return Ok(());
    }
    let out: PathBuf = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join("airlock-models-readmission"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out)?;
    let status = Command::new("unzip")
        .args(["-o", "-q"])
        .arg(&zip)
        .arg("dataset_diabetes/diabetic_data.csv")
        .arg("-d")
        .arg(&out)
        .status()
        .context("running unzip")?;
    if !status.success() {
        bail!("unzip failed");
    }
    let csv_path = out.join("dataset_diabetes/diabetic_data.csv");
    let bytes = std::fs::read(&csv_path)?;
    let dataset_hash = ContentHash::from_bytes(Sha256::digest(&bytes).into());

    let mut columns: Vec<&str> = CATEGORICAL.iter().chain(NUMERIC).copied().collect();
    columns.push("readmitted");
    let t0 = std::time::Instant::now();
    let table = Table::read_csv(bytes.as_slice(), Some(&columns))?;
    println!(
        "read {} rows x {} columns in {:.2}s (dataset {})",
        table.rows(),
        columns.len(),
        t0.elapsed().as_secs_f64(),
        dataset_hash.short()
    );

    let features: Vec<FeatureSpec> = airlock_models::reference::readmission_features();
    let config = |params| TrainConfig {
        dataset_hash,
        target: "readmitted".into(),
        positive: "<30".into(),
        features: features.clone(),
        params,
        seed: SEED,
        test_fraction: 0.2,
    };
    let runs: Vec<(&str, TrainOutcome)> = vec![
        (
            "logistic",
            train(&table, &config(Params::Logistic(LogisticParams::default())))?,
        ),
        (
            "gbdt",
            train(&table, &config(Params::Gbdt(GbdtParams::default())))?,
        ),
    ];

    println!(
        "\n{:<10} {:>8} {:>8} {:>8} {:>9} {:>10}  model hash",
        "model", "AUROC", "AUPRC", "Brier", "log loss", "train (s)"
    );
    for (name, o) in &runs {
        let m = &o.experiment.metrics;
        println!(
            "{:<10} {:>8.4} {:>8.4} {:>8.4} {:>9.4} {:>10.2}  {}",
            name,
            m.auroc,
            m.auprc,
            m.brier,
            m.log_loss,
            o.experiment.training_seconds,
            o.experiment.model_hash.short()
        );
    }
    let e = &runs[0].1.experiment;
    println!(
        "\nsplit: {} train ({} positive), {} test ({} positive), seed {SEED}",
        e.split.train_rows, e.split.train_positives, e.split.test_rows, e.split.test_positives
    );
    println!("calibration (gbdt): bin, count, mean predicted, observed");
    for b in &runs[1].1.experiment.metrics.calibration {
        if let (Some(p), Some(o)) = (b.mean_predicted, b.observed) {
            println!(
                "  [{:.1}, {:.1})  {:>6}  {p:.3}  {o:.3}",
                b.lower, b.upper, b.count
            );
        }
    }

    // The exact split and data, for the scikit-learn baseline.
    let split = &runs[0].1.split;
    assert_eq!(split, &runs[1].1.split, "both kinds share the split");
    let mut w = csv::Writer::from_path(out.join("split.csv"))?;
    w.write_record(["row", "split"])?;
    let mut all: Vec<(usize, &str)> = split.train.iter().map(|&r| (r, "train")).collect();
    all.extend(split.test.iter().map(|&r| (r, "test")));
    all.sort_unstable();
    for (r, s) in all {
        w.write_record([r.to_string().as_str(), s])?;
    }
    w.flush()?;
    let feature_names: Vec<&str> = features.iter().map(FeatureSpec::name).collect();
    for (part, rows) in [("train", &split.train), ("test", &split.test)] {
        let mut w = csv::Writer::from_path(out.join(format!("{part}.csv")))?;
        let mut header: Vec<String> = feature_names.iter().map(|s| (*s).to_owned()).collect();
        header.push("label".into());
        if part == "test" {
            header.extend(runs.iter().map(|(n, _)| format!("p_{n}")));
        }
        w.write_record(&header)?;
        for &r in rows.iter() {
            let mut rec: Vec<String> = feature_names
                .iter()
                .map(|f| table.column(f).map(|c| c.cells()[r].clone()))
                .collect::<Result<_, _>>()?;
            let y = table.column("readmitted")?.cells()[r] == "<30";
            rec.push(u8::from(y).to_string());
            if part == "test" {
                for (_, o) in &runs {
                    // Through the validating path that serving will use.
                    let p = o.model.predict(&record(&table, &feature_names, o, r))?;
                    rec.push(format!("{p:.17e}"));
                }
            }
            w.write_record(&rec)?;
        }
        w.flush()?;
    }
    std::fs::write(
        out.join("signature.json"),
        serde_json::to_vec_pretty(runs[0].1.model.signature())?,
    )?;
    for (name, o) in &runs {
        std::fs::write(
            out.join(format!("experiment_{name}.json")),
            serde_json::to_vec_pretty(&o.experiment)?,
        )?;
    }
    std::fs::remove_dir_all(out.join("dataset_diabetes"))?;
    println!(
        "\nwrote split.csv, train.csv, test.csv, signature.json, experiment_*.json to {}",
        out.display()
    );
    Ok(())
}

/// A table row as a prediction request (exercises the validating path that serving will use).
fn record(
    table: &Table,
    features: &[&str],
    o: &TrainOutcome,
    row: usize,
) -> airlock_models::Record {
    features
        .iter()
        .zip(&o.model.signature().features)
        .map(|(name, f)| {
            let cell = table.column(name).unwrap().cells()[row].clone();
            let v = match f.kind {
                airlock_models::FeatureKind::Numeric { .. } => {
                    airlock_models::Value::Number(cell.parse().unwrap())
                }
                _ => airlock_models::Value::Text(cell),
            };
            ((*name).to_owned(), v)
        })
        .collect()
}
