#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests fail by panicking and print their figures to the log"
)]
//! Issue 29 through the binary: a full Synthea CSV export (nineteen tables, derived from the
//! shared Synthea bundles by the engine's test helper, since no Synthea CSV export ships with the
//! shared data; skipped when it is absent) ingested into the clinical zone goes through the gate
//! as one data set: the leak check passes with zero hits, every key still joins, no input
//! identifier is left in any output file or any command's output, every date is a year, and no
//! row is lost. File mode (`airlock deid --in DIR`) passes too.

mod common;
#[path = "../../airlock-deid/tests/support/synthea_csv.rs"]
mod synthea_csv;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use synthea_csv::Csv;

const PASS: &str = "a synthea csv gate passphrase";

fn airlock(args: &[&str]) -> Output {
    common::run(args, &[("AIRLOCK_PASSPHRASE", PASS)])
}

fn bundles() -> Option<PathBuf> {
    let p = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/fhir/synthea"
    ));
    if p.is_dir() {
        Some(p.to_path_buf())
    } else {
        eprintln!("skipping: shared data not found at {}", p.display());
        None
    }
}

/// The tables of a de-identified output directory, by the table name in `part-NNNNN.TABLE.csv`.
fn read_parts(dir: &Path) -> BTreeMap<String, Csv> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if let Some(table) = name
            .strip_prefix("part-")
            .and_then(|n| n.split_once('.'))
            .and_then(|(_, rest)| rest.strip_suffix(".csv"))
        {
            out.insert(
                table.to_owned(),
                Csv::parse(&std::fs::read_to_string(&path).unwrap()),
            );
        }
    }
    out
}

fn read_tables(dir: &Path) -> BTreeMap<String, Csv> {
    synthea_csv::TABLES
        .iter()
        .map(|t| {
            let text = std::fs::read_to_string(dir.join(format!("{t}.csv"))).unwrap();
            ((*t).to_owned(), Csv::parse(&text))
        })
        .collect()
}

#[test]
fn synthea_csv_export_passes_the_gate_as_one_data_set() {
    let Some(bundles) = bundles() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("synthea-csv");
    let truth = synthea_csv::derive(&bundles, &src);
    let input = read_tables(&src);
    let home = tmp.path().join("home");
    let h = home.to_str().unwrap();
    let mut logs = String::new();
    logs += &common::ok(&airlock(&["init", "--home", h, "--name", "synthea-csv"]));
    logs += &common::ok(&airlock(&[
        "ingest",
        "--home",
        h,
        "--zone",
        "clinical",
        "--source-system",
        "synthea",
        "--dataset",
        "raw",
        src.to_str().unwrap(),
    ]));
    let gate = common::ok(&airlock(&[
        "deid",
        "--home",
        h,
        "--profile",
        "safe-harbor",
        "--dataset",
        "raw",
        "--out-dataset",
        "research",
    ]));
    assert!(gate.contains("leak check         PASSED"), "{gate}");
    assert!(gate.contains(", 0 hits)"), "{gate}");
    logs += &gate;
    let dev = tmp.path().join("dev");
    logs += &common::ok(&airlock(&[
        "export",
        "--home",
        h,
        "--dataset",
        "research",
        "--zone",
        "development",
        "--out",
        dev.to_str().unwrap(),
    ]));

    // The outputs are named by index and the table they were recognised as, never by input
    // names: `part-00013.patients.csv`.
    let mut output = BTreeMap::new();
    let mut everything = String::new();
    let mut report = None;
    for e in std::fs::read_dir(&dev).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        everything += &text;
        if name == "deid-report.json" {
            report = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
            continue;
        }
        let table = name
            .strip_prefix("part-")
            .and_then(|n| n.split_once('.'))
            .and_then(|(_, rest)| rest.strip_suffix(".csv"))
            .unwrap_or_else(|| panic!("unexpected output name `{name}`"));
        output.insert(table.to_owned(), Csv::parse(&text));
    }
    assert_eq!(output.len(), synthea_csv::TABLES.len());
    let report = report.expect("the gate stores its report");
    let run = &report[0];
    assert_eq!(run["leak_check"]["passed"], true);
    assert_eq!(run["leak_check"]["hits"].as_array().unwrap().len(), 0);
    for (t, n) in &truth.rows {
        assert_eq!(output[t].rows.len(), *n, "{t}: rows");
    }
    let links = synthea_csv::check_joins(&input, &output).unwrap_or_else(|e| panic!("{e}"));
    for (t, c) in &output {
        for r in &c.rows {
            assert!(
                !r.iter().any(|v| synthea_csv::finer_than_year(v)),
                "{t}: a date finer than a year"
            );
        }
    }
    let left = synthea_csv::identifiers_in(&truth, &everything);
    assert!(
        left.is_empty(),
        "identifiers in the outputs, of kinds {left:?}"
    );
    let left = synthea_csv::identifiers_in(&truth, &logs);
    assert!(
        left.is_empty(),
        "identifiers in command output, of kinds {left:?}"
    );
    println!(
        "AFTER (gate): {} tables, {} rows, {links} foreign keys still join, leak hits 0, {} \
         identifying values checked",
        output.len(),
        truth.rows.values().sum::<usize>(),
        run["leak_check"]["values_checked"]
    );

    // File mode over the same export: the same bar.
    std::fs::write(tmp.path().join("key"), [7u8; 32]).unwrap();
    let out = tmp.path().join("out");
    let o = common::ok(&airlock(&[
        "deid",
        "--profile",
        "safe-harbor",
        "--key-file",
        tmp.path().join("key").to_str().unwrap(),
        "--in",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(o.contains(", 0 hits)"), "{o}");
    // Named by position and table, as the gate names them (issue 29: input names may hold PHI).
    let files = read_parts(&out);
    assert_eq!(files.len(), synthea_csv::TABLES.len());
    synthea_csv::check_joins(&input, &files).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn file_mode_names_inputs_by_index_and_hash_only() {
    let Some(bundles) = bundles() else { return };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("key"), [7u8; 32]).unwrap();
    let out = tmp.path().join("out");
    let o = common::ok(&airlock(&[
        "deid",
        "--profile",
        "safe-harbor",
        "--key-file",
        tmp.path().join("key").to_str().unwrap(),
        "--in",
        bundles.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    // Synthea names its files `Given_Family_uuid.json`: no part of any input name is in an
    // output name, the report, the summary or the command's output.
    let mut parts: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&bundles).unwrap() {
        let name = e.unwrap().file_name().to_str().unwrap().to_owned();
        let stem = name.trim_end_matches(".json");
        parts.extend(stem.split('_').map(str::to_owned));
    }
    parts.sort();
    parts.dedup();
    assert!(parts.iter().any(|p| p == "Antonia30"));
    let mut names = Vec::new();
    for e in std::fs::read_dir(&out).unwrap() {
        names.push(e.unwrap().file_name().to_str().unwrap().to_owned());
    }
    names.sort();
    assert_eq!(names.len(), 12, "{names:?}");
    for n in &names {
        assert!(
            n.starts_with("part-000") && n.ends_with(".json") || n.starts_with("deid-"),
            "{n}"
        );
    }
    let report = std::fs::read_to_string(out.join("deid-report.json")).unwrap();
    let summary = std::fs::read_to_string(out.join("deid-summary.txt")).unwrap();
    for p in &parts {
        for (what, text) in [("report", &report), ("summary", &summary), ("output", &o)] {
            assert!(
                !text.contains(p.as_str()),
                "an input name's part in the {what}"
            );
        }
    }
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    for (i, f) in r["files"].as_array().unwrap().iter().enumerate() {
        let input = f["input"].as_str().unwrap();
        assert!(input.starts_with(&format!("files[{i}] sha256:")), "{input}");
        assert_eq!(input.len(), format!("files[{i}] sha256:").len() + 64);
    }
}
