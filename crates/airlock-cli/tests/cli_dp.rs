//! `airlock dp` end to end (issue 21): the operator, acting as the privacy officer, declares a
//! clinical CSV dataset's DP metadata and budgets; acting as the data scientist, asks a
//! question (answer written owner-only), is refused by the budget, and is refused a form that
//! would release rows; the ledger names the operator on each principal's behalf.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod common;

use common::{ok_in as ok, run_in as airlock, text};

/// A deployment with a clinical CSV of 300 patients (one stay each) and two users: pat, a
/// privacy officer, and dana, a data scientist.
fn deployment(d: &std::path::Path) {
    let mut csv = String::from("patient,age,sex,mrn\n");
    for p in 0..300 {
        csv.push_str(&format!(
            "p{p},{},{},MRN{p:07}\n",
            20 + p % 60,
            if p % 3 == 0 { "F" } else { "M" }
        ));
    }
    std::fs::write(d.join("stays.csv"), &csv).unwrap();
    ok(&["init", "--home", "h", "--name", "dp"], d);
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
            "stays",
            "stays.csv",
        ],
        d,
    );
    for (who, role) in [("pat", "privacy-officer"), ("dana", "data-scientist")] {
        ok(&["users", "add", who, "--role", role, "--home", "h"], d);
    }
}

#[test]
fn dp_questions_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    deployment(d);
    let pat = ["--home", "h", "--actor", "pat"];
    let dana = ["--home", "h", "--actor", "dana"];
    let run = |who: &[&str], args: &[&str]| {
        let mut all = vec!["dp"];
        all.extend_from_slice(who);
        all.extend_from_slice(args);
        airlock(&all, d)
    };
    // The data scientist may not declare metadata.
    let o = run(
        &dana,
        &[
            "metadata",
            "set",
            "--dataset",
            "stays",
            "--unit",
            "patient",
            "--max-rows-per-unit",
            "1",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("forbidden"),
        "{}",
        text(&o)
    );
    let o = run(
        &pat,
        &[
            "metadata",
            "set",
            "--dataset",
            "stays",
            "--unit",
            "patient",
            "--max-rows-per-unit",
            "1",
            "--bounds",
            "age=0:120",
            "--domain",
            "sex=F|M",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    for args in [
        &[
            "budget",
            "set",
            "--dataset",
            "stays",
            "--analyst",
            "dana",
            "--epsilon",
            "1",
        ][..],
        &[
            "budget",
            "set",
            "--dataset",
            "stays",
            "--total",
            "--epsilon",
            "5",
        ][..],
    ] {
        let o = run(&pat, args);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = run(
        &dana,
        &[
            "query",
            "--dataset",
            "stays",
            "--epsilon",
            "0.8",
            "--out",
            "a.json",
            "--sql",
            "SELECT sex, COUNT(*) AS n, AVG(age) AS mean_age FROM data GROUP BY sex",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("a.json")).unwrap()).unwrap();
    assert_eq!(a["rows"].as_array().unwrap().len(), 2);
    let f = a["rows"][0]["n"].as_i64().unwrap();
    assert!((f - 100).abs() < 40, "{a}");
    assert!((a["remaining"]["analyst_epsilon"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("a.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Over budget, and a form that releases rows: refused, naming why, no value echoed.
    let o = run(
        &dana,
        &[
            "query",
            "--dataset",
            "stays",
            "--epsilon",
            "0.5",
            "--sql",
            "SELECT COUNT(*) FROM data",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("your budget"),
        "{}",
        text(&o)
    );
    let o = run(
        &dana,
        &[
            "query",
            "--dataset",
            "stays",
            "--epsilon",
            "0.1",
            "--sql",
            "SELECT mrn FROM data",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("refused"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("MRN0"));
    // The table of budgets, and the ledger naming the operator on dana's behalf.
    let shown = text(&run(&dana, &["budget", "show"]));
    assert!(shown.contains("dana") && shown.contains("pure"), "{shown}");
    let found = ok(
        &["audit", "search", "--home", "h", "--event", "dp_release"],
        d,
    );
    assert!(found.contains(":dana"), "{found}");
}

/// Issue 22 from the command line: `dp metadata set --bins`, a zCDP budget, `airlock synth`
/// (an identifier refused, then synthetic rows in development with the report written
/// owner-only), and the release in the ledger.
#[test]
fn synthetic_rows_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    deployment(d);
    let pat = ["--home", "h", "--actor", "pat"];
    for args in [
        &[
            "dp",
            "metadata",
            "set",
            "--dataset",
            "stays",
            "--unit",
            "patient",
            "--max-rows-per-unit",
            "1",
            "--bounds",
            "age=0:100",
            "--bins",
            "age=10",
            "--domain",
            "sex=F|M",
        ][..],
        &[
            "dp",
            "budget",
            "set",
            "--dataset",
            "stays",
            "--analyst",
            "dana",
            "--epsilon",
            "3",
            "--delta",
            "1e-6",
        ][..],
        &[
            "dp",
            "budget",
            "set",
            "--dataset",
            "stays",
            "--total",
            "--epsilon",
            "5",
            "--delta",
            "1e-6",
        ][..],
    ] {
        let mut all = args[..2].to_vec();
        all.extend_from_slice(&pat);
        all.extend_from_slice(&args[2..]);
        ok(&all, d);
    }
    let synth = |extra: &[&str]| {
        let mut all = vec![
            "synth",
            "--home",
            "h",
            "--actor",
            "dana",
            "--dataset",
            "stays",
            "--epsilon",
            "2",
            "--out-dataset",
            "stays-synthetic",
        ];
        all.extend_from_slice(extra);
        airlock(&all, d)
    };
    let o = synth(&["--columns", "mrn,age"]);
    assert!(
        !o.status.success() && text(&o).contains("no declared domain"),
        "{}",
        text(&o)
    );
    let o = synth(&["--columns", "patient,age"]);
    assert!(
        !o.status.success() && text(&o).contains("privacy unit"),
        "{}",
        text(&o)
    );
    let o = synth(&[
        "--target",
        "sex",
        "--positive",
        "F",
        "--seed",
        "3",
        "--out",
        "r.json",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("stays-synthetic@") && out.contains("fidelity"),
        "{out}"
    );
    assert!(!out.contains("MRN0"), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(r["columns"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["seed"], 3);
    assert!(
        r["report"]["fidelity"]["mean_column"].as_f64().unwrap() > 0.5,
        "{r}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("r.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let listed = ok(&["datasets", "list", "--home", "h"], d);
    assert!(
        listed.contains("stays-synthetic") && listed.contains("synthetic"),
        "{listed}"
    );
    let found = ok(
        &["audit", "search", "--home", "h", "--event", "dp_release"],
        d,
    );
    assert!(found.contains(":dana"), "{found}");
}
