//! `airlock views` end to end (issue 26): file mode over a generated cohort, a view
//! materialised from a dataset in the zone it came from (lineage `derive`), a registered view
//! refused without column types, training from a FHIR version through a view, and bad input
//! named by position, never by value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr,
    reason = "tests fail by panicking, and say what they skip"
)]

mod common;

use common::{ok_in as ok, run_in as airlock, text};

#[test]
fn views_over_files_and_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &[
            "generate",
            "--patients",
            "30",
            "--out",
            "gen",
            "--seed",
            "3",
        ],
        d,
    );

    // File mode: CSV and NDJSON, owner-only files, one row per patient.
    let out = ok(
        &[
            "views",
            "run",
            "--view",
            "patient_demographics",
            "--in",
            "gen/fhir",
            "--out",
            "p.csv",
        ],
        d,
    );
    assert!(out.contains("30 rows"), "{out}");
    let csv = std::fs::read_to_string(d.join("p.csv")).unwrap();
    assert!(csv.starts_with("patient_id,gender,birth_date,"), "{csv}");
    assert_eq!(csv.lines().count(), 31);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("p.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    ok(
        &[
            "views",
            "run",
            "--view",
            "observations_long",
            "--in",
            "gen/fhir",
            "--out",
            "o.ndjson",
        ],
        d,
    );
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(d.join("o.ndjson"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        first["loinc"].is_string() && first["value"].is_number(),
        "{first}"
    );

    // Parquet, typed by the view's columns: pyarrow (the oracle) reads the same rows as JSON.
    for out in ["o.parquet", "o.json"] {
        ok(
            &[
                "views",
                "run",
                "--view",
                "observations_long",
                "--in",
                "gen/fhir",
                "--out",
                out,
            ],
            d,
        );
    }
    let parquet = std::fs::read(d.join("o.parquet")).unwrap();
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    pyarrow_reads_as_json(d, "o.parquet", "o.json");

    // Bad input: named by file and resource position, not quoted.
    std::fs::write(
        d.join("bad.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n{\"name\": \"Zebediah Quux\"}\n",
    )
    .unwrap();
    let o = airlock(
        &[
            "views",
            "run",
            "--view",
            "patient_demographics",
            "--in",
            "bad.ndjson",
            "--out",
            "b.csv",
        ],
        d,
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("resource 1") && t.contains("bad.ndjson"), "{t}");
    assert!(!t.contains("Zebediah"), "{t}");

    // Dataset mode: a view keeps the zone and classification of its source.
    ok(&["init", "--home", "h", "--name", "views"], d);
    ok(
        &[
            "ingest",
            "--home",
            "h",
            "--zone",
            "clinical",
            "--source-system",
            "ehr",
            "--dataset",
            "ehr",
            "gen/fhir",
        ],
        d,
    );
    ok(
        &[
            "deid",
            "--home",
            "h",
            "--profile",
            "safe-harbor",
            "--dataset",
            "ehr",
            "--out-dataset",
            "ehr-deid",
        ],
        d,
    );
    let out = ok(
        &[
            "views",
            "run",
            "--home",
            "h",
            "--dataset",
            "ehr-deid",
            "--view",
            "patient_demographics",
        ],
        d,
    );
    assert!(
        out.contains("ehr-deid-patient-demographics@1 in `development` as deidentified"),
        "{out}"
    );
    let out = ok(
        &[
            "views",
            "run",
            "--home",
            "h",
            "--dataset",
            "ehr",
            "--view",
            "encounters",
        ],
        d,
    );
    assert!(out.contains("in `clinical` as phi"), "{out}");
    let lineage = ok(
        &[
            "datasets",
            "lineage",
            "--home",
            "h",
            "ehr-deid-patient-demographics",
        ],
        d,
    );
    assert!(
        lineage.contains("gate=derive") && lineage.contains("parents=[ehr-deid@1]"),
        "{lineage}"
    );

    // A registered view must type its columns; a typed one runs by name.
    std::fs::write(
        d.join("untyped.json"),
        r#"{"name": "ages", "resource": "Patient", "select": [{"column": [{"name": "born", "path": "birthDate"}]}]}"#,
    )
    .unwrap();
    let o = airlock(
        &[
            "views",
            "add",
            "--home",
            "h",
            "--dataset",
            "ehr-deid",
            "--view",
            "untyped.json",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("column `born` has no `type`"),
        "{}",
        text(&o)
    );
    std::fs::write(
        d.join("typed.json"),
        r#"{"name": "ages", "resource": "Patient", "select": [{"column": [{"name": "born", "path": "birthDate", "type": "date"}, {"name": "sex", "path": "gender", "type": "code"}]}]}"#,
    )
    .unwrap();
    ok(
        &[
            "views",
            "add",
            "--home",
            "h",
            "--dataset",
            "ehr-deid",
            "--view",
            "typed.json",
        ],
        d,
    );
    let listed = ok(
        &["views", "list", "--home", "h", "--dataset", "ehr-deid"],
        d,
    );
    assert!(
        listed.contains("ages") && listed.contains("registered"),
        "{listed}"
    );
    let out = ok(
        &[
            "views",
            "run",
            "--home",
            "h",
            "--dataset",
            "ehr-deid",
            "--view",
            "ages",
        ],
        d,
    );
    assert!(out.contains("30 rows"), "{out}");

    // Training reads a FHIR version through a view; over identified data it is refused.
    let out = ok(
        &[
            "train",
            "--home",
            "h",
            "--actor",
            "dana",
            "--dataset",
            "ehr-deid",
            "--view",
            "encounters",
            "--target",
            "class",
            "--positive",
            "IMP",
            "--features",
            "type",
            "--out-model",
            "enc",
        ],
        d,
    );
    assert!(
        out.contains("trained logistic on ehr-deid-encounters@1"),
        "{out}"
    );
    // Validation (issue 19) on the training dataset means its held-out split; the report is
    // signed and written owner-only, whatever the verdict.
    let hash = out
        .split("registered enc version ")
        .nth(1)
        .and_then(|r| r.get(..12))
        .unwrap();
    // Through the same view over the same version: the table the model was trained on.
    let o = airlock(
        &[
            "models",
            "validate",
            &format!("enc@{hash}"),
            "--home",
            "h",
            "--dataset",
            "ehr-deid",
            "--view",
            "encounters",
            "--resamples",
            "200",
            "--out",
            "report.json",
        ],
        d,
    );
    let t = text(&o);
    assert!(t.contains("(its held-out split)"), "{t}");
    assert!(
        t.contains("training rows among the held-out rows: 0"),
        "{t}"
    );
    assert!(t.contains("membership inference (RMIA"), "{t}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["signature"].as_str().unwrap().len(), 128);
    assert!(
        report["metrics"]["auroc"]["interval"].is_array(),
        "{report}"
    );
    assert_eq!(o.status.success(), report["passed"] == true, "{t}");
    // A sensitive column the data lacks is named.
    let o = airlock(
        &[
            "models",
            "validate",
            &format!("enc@{hash}"),
            "--home",
            "h",
            "--dataset",
            "ehr-deid-encounters",
            "--sensitive",
            "no_such_column",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("no_such_column"), "{}", text(&o));
    // Batch scoring reads a FHIR version through a view too.
    let out = ok(
        &[
            "predict",
            "--home",
            "h",
            "--model",
            &format!("enc@{hash}"),
            "--dataset",
            "ehr-deid",
            "--view",
            "encounters",
            "--target",
            "class",
            "--positive",
            "IMP",
        ],
        d,
    );
    assert!(
        out.contains("view `encounters` over ehr-deid: ")
            && out.contains("-> ehr-deid-encounters@1")
            && out.contains("scored "),
        "{out}"
    );
    assert!(out.contains("AUROC"), "{out}");
    let o = airlock(
        &[
            "train",
            "--home",
            "h",
            "--actor",
            "dana",
            "--dataset",
            "ehr",
            "--view",
            "encounters",
            "--target",
            "class",
            "--positive",
            "IMP",
            "--features",
            "type",
            "--out-model",
            "enc2",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("refused by the zone rules"),
        "{}",
        text(&o)
    );
}

/// pyarrow (from `AIRLOCK_MONITOR_PYTHON`'s environment, see `.ci/run`) reads `parquet` to the
/// rows of `json` (the same view's JSON output), value for value, with each column's Parquet
/// type following the view's FHIR type. Skips with a message when pyarrow is absent, unless
/// `AIRLOCK_REQUIRE_PYARROW` is set.
fn pyarrow_reads_as_json(dir: &std::path::Path, parquet: &str, json: &str) {
    let python = std::env::var("AIRLOCK_MONITOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
want = json.load(open(sys.argv[2]))
got = t.to_pylist()
assert len(got) == len(want), (len(got), len(want))
for i, (g, w) in enumerate(zip(got, want)):
    assert list(g) == list(w), ("columns", i)
    for k in w:
        a, b = g[k], w[k]
        if isinstance(b, float) or isinstance(a, float):
            assert abs(a - b) <= 1e-12 * max(1.0, abs(b)), ("value", i, k)
        else:
            assert a == b, ("value", i, k)
print(json.dumps({f.name: str(f.type) for f in t.schema}))
"#;
    let o = std::process::Command::new(&python)
        .args(["-c", script, parquet, json])
        .current_dir(dir)
        .output();
    let o = match o {
        Ok(o) if o.status.success() => o,
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No module named 'pyarrow'") => {
            assert!(
                std::env::var_os("AIRLOCK_REQUIRE_PYARROW").is_none(),
                "pyarrow is required (AIRLOCK_REQUIRE_PYARROW) but {python} has none"
            );
            eprintln!("skipping the pyarrow check: {python} has no pyarrow");
            return;
        }
        Ok(o) => panic!(
            "pyarrow disagrees with the JSON rows: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var_os("AIRLOCK_REQUIRE_PYARROW").is_none(),
                "{python}: {e}"
            );
            eprintln!("skipping the pyarrow check: {python}: {e}");
            return;
        }
    };
    let types: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(types["value"], "double", "{types}");
    assert_eq!(types["loinc"], "string", "{types}");
}
