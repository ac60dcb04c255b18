#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: it panics to fail and prints the per-file counts to its log"
)]
//! The SQL-on-FHIR v2 conformance suite (`../shared/data/sql-on-fhir/tests`, skipped with a
//! message when absent; `AIRLOCK_SOF_TESTS=DIR` reads another copy), read as it is, so newer
//! test files can be dropped in.
//!
//! Each test's view is loaded with the specification's defaults and run over the file's
//! resources. `expect`: the rows must equal the expected rows as a multiset (the suite's
//! runners compare order-insensitively; numbers compare by value, as in JavaScript);
//! `expectColumns`: the column names in order; `expectCount`: the number of rows;
//! `expectError`: loading or running must fail. Prints passed/total per file and asserts that
//! every test passes. With `AIRLOCK_SOF_REPORT=FILE`, writes the suite's report format
//! (`{"<file>": {"tests": [{"name": ..., "result": {"passed": ...}}]}}`, as the reference
//! runner `sof-js` writes it for the published test report). `AIRLOCK_SOF_VERBOSE=1` prints
//! the error each `expectError` test got.

use std::path::{Path, PathBuf};

use airlock_views::{View, ViewError, run};
use serde_json::{Map, Value, json};

fn suite_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AIRLOCK_SOF_TESTS") {
        return Some(PathBuf::from(dir));
    }
    let p = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/sql-on-fhir/tests"
    ));
    if p.is_dir() {
        Some(p.to_path_buf())
    } else {
        eprintln!(
            "skipping: SQL-on-FHIR test suite not found at {}",
            p.display()
        );
        None
    }
}

/// A JSON value in a form where equal values print equally: object keys sorted, numbers as
/// `f64` (the suite is written for JavaScript, where `5` and `5.0` are one number).
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", json!(k), canonical(&o[k.as_str()])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Number(n) => format!("{:?}", n.as_f64().unwrap()),
        other => other.to_string(),
    }
}

enum Outcome {
    Pass,
    Fail(String),
}

fn evaluate(
    view: &Value,
    resources: &[Value],
) -> Result<(View, Vec<Map<String, Value>>), ViewError> {
    let view = View::from_json(view)?;
    let rows = run(&view, resources)?;
    let rows = rows.into_iter().map(|r| view.row_object(r)).collect();
    Ok((view, rows))
}

fn run_test(test: &Value, resources: &[Value]) -> Outcome {
    let result = evaluate(&test["view"], resources);
    if test.get("expectError").and_then(Value::as_bool) == Some(true) {
        return match result {
            Err(e) => {
                if std::env::var_os("AIRLOCK_SOF_VERBOSE").is_some() {
                    println!("  expected error: {e}");
                }
                Outcome::Pass
            }
            Ok(_) => Outcome::Fail("expected an error, got rows".into()),
        };
    }
    let (view, rows) = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("error: {e}")),
    };
    if let Some(columns) = test.get("expectColumns").and_then(Value::as_array) {
        let got: Vec<&str> = view.columns().iter().map(|c| c.name()).collect();
        let want: Vec<&str> = columns.iter().filter_map(Value::as_str).collect();
        if got != want {
            return Outcome::Fail(format!("columns {got:?}, expected {want:?}"));
        }
    }
    if let Some(count) = test.get("expectCount").and_then(Value::as_u64)
        && rows.len() as u64 != count
    {
        return Outcome::Fail(format!("{} rows, expected {count}", rows.len()));
    }
    if let Some(expect) = test.get("expect").and_then(Value::as_array) {
        let mut got: Vec<String> = rows
            .iter()
            .map(|r| canonical(&Value::Object(r.clone())))
            .collect();
        let mut want: Vec<String> = expect.iter().map(canonical).collect();
        got.sort();
        want.sort();
        if got != want {
            return Outcome::Fail(format!("rows\n  got:      {got:?}\n  expected: {want:?}"));
        }
    }
    Outcome::Pass
}

#[test]
fn sql_on_fhir_suite() {
    let Some(dir) = suite_dir() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", dir.display());

    let mut report = Map::new();
    let mut failures = Vec::new();
    let (mut passed_all, mut total_all) = (0, 0);
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let suite: Value = serde_json::from_slice(&std::fs::read(file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let resources = suite["resources"].as_array().cloned().unwrap_or_default();
        let mut tests = Vec::new();
        let mut passed = 0;
        let cases = suite["tests"].as_array().cloned().unwrap_or_default();
        for test in &cases {
            let title = test["title"].as_str().unwrap_or("(untitled)");
            let ok = match run_test(test, &resources) {
                Outcome::Pass => true,
                Outcome::Fail(why) => {
                    failures.push(format!("{name} / {title}: {why}"));
                    false
                }
            };
            passed += usize::from(ok);
            tests.push(json!({"name": title, "result": {"passed": ok}}));
        }
        println!("{name}: {passed}/{}", cases.len());
        passed_all += passed;
        total_all += cases.len();
        report.insert(name, json!({"tests": tests}));
    }
    println!("total: {passed_all}/{total_all}");

    if let Some(path) = std::env::var_os("AIRLOCK_SOF_REPORT") {
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&Value::Object(report)).unwrap(),
        )
        .unwrap_or_else(|e| panic!("writing the report to {}: {e}", Path::new(&path).display()));
    }
    assert!(
        failures.is_empty(),
        "failing tests:\n{}",
        failures.join("\n")
    );
}
