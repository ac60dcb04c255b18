//! MST synthesis of the shared Diabetes 130-US readmission table (101,766 encounters, 15
//! declared columns): `cargo bench -p airlock-models --bench synth`.
//!
//! Prints, at ε 0.3, 1 and 3 (δ 1e-9, as smartnoise-synth's default): synthesis time (code,
//! measure, select, estimate, sample, decode) against one pass computing every two-way
//! marginal MST scores (the ratio), fidelity (mean 1 − TVD, one- and two-way), train on
//! synthetic / test on real AUROC of 30-day readmission, and the privacy figures.
//!
//! Side by side with SmartNoise: the run writes `spec.json` and the training rows
//! (`train.csv`, the 80% the synthesiser reads) to `$CARGO_TARGET_DIR/synth-bench/`; run
//! `bench/synth_smartnoise.py` on them (its docstring), then run this again with
//! `AIRLOCK_SYNTH_EXTERNAL=<that directory>` to score `smartnoise_eps{ε}.csv` with the same code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark that prints its figures"
)]

use std::path::PathBuf;
use std::time::Instant;

use airlock_models::Table;
use airlock_models::synth::report::{Inputs, SynthReport, report};
use airlock_models::synth::{ColumnKind, MstConfig, SynthColumn, decode, encode, mst};

const DELTA: f64 = 1e-9;

fn load() -> Option<Table> {
    let zip = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/tabular/diabetes130/dataset_diabetes.zip");
    let out = std::process::Command::new("unzip")
        .arg("-p")
        .arg(zip)
        .arg("dataset_diabetes/diabetic_data.csv")
        .output()
        .ok()?;
    (out.status.success() && !out.stdout.is_empty())
        .then(|| Table::read_csv(out.stdout.as_slice(), None).unwrap())
}

/// The declared columns: numeric bounds and bins from the data dictionary (Strack et al.
/// 2014), category domains from the same; nothing read from the rows.
fn columns() -> Vec<SynthColumn> {
    let num = |name: &str, lo: f64, hi: f64, bins: u32| SynthColumn {
        name: name.into(),
        kind: ColumnKind::Numeric { lo, hi, bins },
    };
    let cat = |name: &str, domain: &[&str]| SynthColumn {
        name: name.into(),
        kind: ColumnKind::Categorical {
            domain: domain.iter().map(|s| (*s).to_owned()).collect(),
        },
    };
    vec![
        num("time_in_hospital", 1.0, 14.0, 13),
        num("num_lab_procedures", 0.0, 132.0, 12),
        num("num_procedures", 0.0, 6.0, 6),
        num("num_medications", 0.0, 81.0, 9),
        num("number_outpatient", 0.0, 10.0, 10),
        num("number_emergency", 0.0, 10.0, 10),
        num("number_inpatient", 0.0, 10.0, 10),
        num("number_diagnoses", 1.0, 16.0, 15),
        cat(
            "age",
            &[
                "[0-10)", "[10-20)", "[20-30)", "[30-40)", "[40-50)", "[50-60)", "[60-70)",
                "[70-80)", "[80-90)", "[90-100)",
            ],
        ),
        cat("gender", &["Female", "Male", "Unknown/Invalid"]),
        cat("A1Cresult", &["None", "Norm", ">7", ">8"]),
        cat("insulin", &["No", "Down", "Steady", "Up"]),
        cat("change", &["No", "Ch"]),
        cat("diabetesMed", &["No", "Yes"]),
        cat("readmitted", &["NO", ">30", "<30"]),
    ]
}

fn rows(t: &Table, idx: &[usize], cols: &[SynthColumn]) -> Table {
    Table::from_columns(
        cols.iter()
            .map(|c| {
                let cells = t.column(&c.name).unwrap().cells();
                (
                    c.name.clone(),
                    idx.iter().map(|&r| cells[r].clone()).collect(),
                )
            })
            .collect(),
    )
    .unwrap()
}

fn write_csv(path: &std::path::Path, t: &Table) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(t.columns().iter().map(|c| c.name()))
        .unwrap();
    for r in 0..t.rows() {
        w.write_record(t.columns().iter().map(|c| c.cells()[r].as_str()))
            .unwrap();
    }
    w.flush().unwrap();
}

fn score(cols: &[SynthColumn], train: &Table, holdout: &Table, synthetic: &Table) -> SynthReport {
    report(&Inputs {
        columns: cols,
        train,
        holdout,
        synthetic,
        target: Some(("readmitted", "<30")),
        sample: 1_000,
        seed: 7,
    })
    .unwrap()
}

fn line(who: &str, eps: f64, secs: Option<f64>, r: &SynthReport) {
    let u = r.utility.as_ref().unwrap();
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    let p = &r.privacy;
    println!(
        "{who:<11} {eps:>4} {:>8} {:>7.4} {:>7.4} {:>9} {:>9} {:>8.3} {:>8.3} {:>6.1}% {:>6.1}% {:>7} {:>8.4}",
        secs.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
        1.0 - r.fidelity.mean_column,
        1.0 - r.fidelity.mean_pair,
        f(u.trained_on_synthetic.logistic),
        f(u.trained_on_synthetic.gbdt),
        p.dcr_synthetic_median,
        p.dcr_holdout_median,
        100.0 * p.exact_match_synthetic,
        100.0 * p.exact_match_holdout,
        f(p.distance_attack.auc),
        p.distance_attack.tpr_at_fpr_0_001
    );
}

fn main() {
    let Some(table) = load() else {
        println!("synth: shared data or unzip absent, skipped");
        return;
    };
    let cols = columns();
    // A seeded 80/20 split of the encounters.
    let n = table.rows();
    let mut idx: Vec<usize> = (0..n).collect();
    let mut s = 0x5EED_u64;
    for i in (1..n).rev() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        idx.swap(i, ((s >> 33) as usize) % (i + 1));
    }
    let cut = n * 4 / 5;
    let (mut tr, mut ho) = (idx[..cut].to_vec(), idx[cut..].to_vec());
    tr.sort_unstable();
    ho.sort_unstable();
    let (train, holdout) = (rows(&table, &tr, &cols), rows(&table, &ho, &cols));
    let out = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("synth-bench");
    std::fs::create_dir_all(&out).unwrap();
    write_csv(&out.join("train.csv"), &train);
    std::fs::write(
        out.join("spec.json"),
        serde_json::to_vec_pretty(&serde_json::json!({"delta": DELTA, "columns": cols})).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let data = encode(&train, &cols).unwrap();
    let d = cols.len();
    println!(
        "MST on the readmission table: {} training rows, {} held out, {d} columns ({} pairs); spec and training rows in {}",
        train.rows(),
        holdout.rows(),
        d * (d - 1) / 2,
        out.display()
    );

    // Baseline: one pass computing every two-way marginal MST scores.
    let mut base = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut cells = 0usize;
        for i in 0..d {
            for j in i + 1..d {
                cells += std::hint::black_box(data.histogram2(i, j)).len();
            }
        }
        std::hint::black_box(cells);
        base.push(t.elapsed().as_secs_f64());
    }
    base.sort_by(f64::total_cmp);
    let baseline = base[base.len() / 2];
    let real = score(&cols, &train, &holdout, &train);
    let u = real.utility.as_ref().unwrap();
    println!(
        "trained on real: AUROC logistic {:.3}, GBDT {:.3}; baseline (all two-way marginals, one pass) {:.1} ms",
        u.trained_on_real.logistic.unwrap_or(f64::NAN),
        u.trained_on_real.gbdt.unwrap_or(f64::NAN),
        1e3 * baseline
    );
    println!(
        "{:<11} {:>4} {:>8} {:>7} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8}",
        "who",
        "eps",
        "seconds",
        "TVD1",
        "TVD2",
        "TSTR-LR",
        "TSTR-GB",
        "DCR-syn",
        "DCR-hold",
        "copy",
        "copyH",
        "MIA-AUC",
        "TPR@.1%"
    );
    let external = std::env::var_os("AIRLOCK_SYNTH_EXTERNAL").map(PathBuf::from);
    for eps in [0.3, 1.0, 3.0] {
        let rho = airlock_dp::rho_for_epsilon(eps, DELTA).unwrap();
        let t = Instant::now();
        let data = encode(&train, &cols).unwrap();
        let fit = mst::fit(
            &data,
            &names,
            &MstConfig {
                rho,
                rows_per_unit: 1,
                iterations: 1_000,
            },
        )
        .unwrap();
        let synthetic = decode(&fit.sample(train.rows(), 1).unwrap(), &cols, 1).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let r = score(&cols, &train, &holdout, &synthetic);
        line("airlock", eps, Some(secs), &r);
        println!(
            "{:<11} {eps:>4} ratio to the baseline {:.0}x; rho {rho:.5} spent {:.5}",
            "",
            secs / baseline,
            fit.rho_spent
        );
        if let Some(dir) = &external {
            let file = dir.join(format!("smartnoise_eps{eps}.csv"));
            let Ok(bytes) = std::fs::read(&file) else {
                println!("{:<11} {eps:>4} {} absent", "smartnoise", file.display());
                continue;
            };
            let secs = std::fs::read(dir.join(format!("smartnoise_eps{eps}.csv.json")))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("seconds").and_then(serde_json::Value::as_f64));
            let theirs = Table::read_csv(bytes.as_slice(), None).unwrap();
            line(
                "smartnoise",
                eps,
                secs,
                &score(&cols, &train, &holdout, &theirs),
            );
        }
    }
}
