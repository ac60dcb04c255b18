#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! The model commands through the binary: train on a de-identified version (PHI refused),
//! list, show, verify, batch-score, and the ledger still verifies.

mod common;

use std::process::{Command, Output};

use common::ok;

const PASS: &str = "a models end to end passphrase";

fn airlock(args: &[&str]) -> Output {
    common::run(
        args,
        &[
            ("AIRLOCK_PASSPHRASE", PASS),
            ("AIRLOCK_ACTOR", "dana-scientist"),
        ],
    )
}

#[test]
fn train_list_verify_and_batch_score_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let h = home.to_str().unwrap();
    ok(&airlock(&["init", "--home", h, "--name", "models-e2e"]));
    let csv =
        airlock_models::testing::to_csv(&airlock_models::testing::separable_table(600, 7).unwrap());
    let file = tmp.path().join("cohort.csv");
    std::fs::write(&file, csv).unwrap();
    let f = file.to_str().unwrap();
    for (zone, class, name) in [
        ("development", "deidentified", "cohort"),
        ("clinical", "phi", "cohort-phi"),
    ] {
        let mut args = vec![
            "ingest",
            "--home",
            h,
            "--zone",
            zone,
            "--classification",
            class,
            "--source-system",
            "test",
            "--dataset",
            name,
        ];
        // Outside the clinical zone an ingest is an attested import (generated data here).
        if zone != "clinical" {
            args.extend(["--attest-basis", "synthetic"]);
        }
        args.push(f);
        ok(&airlock(&args));
    }
    let train = |dataset: &str| {
        airlock(&[
            "train",
            "--home",
            h,
            "--dataset",
            dataset,
            "--target",
            "y",
            "--positive",
            "yes",
            "--features",
            "x,c",
            "--out-model",
            "risk",
        ])
    };
    let refused = train("cohort-phi");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("zone"), "{err}");
    let out = ok(&train("cohort@1"));
    assert!(out.contains("held-out: AUROC"), "{out}");
    let hash = out
        .split("registered risk version ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert_eq!(hash.len(), 64);
    // The same data, features and seed give the same model: a duplicate.
    assert!(!train("cohort@1").status.success());

    let list = ok(&airlock(&["models", "--home", h, "list"]));
    assert!(
        list.contains("risk") && list.contains("registered") && list.contains("dana-scientist"),
        "{list}"
    );
    let show: serde_json::Value =
        serde_json::from_slice(&airlock(&["models", "--home", h, "show", "risk"]).stdout).unwrap();
    assert_eq!(show["versions"].as_array().unwrap().len(), 1);
    assert_eq!(
        show["versions"][0]["version"]["card"]["training_data"]["dataset"],
        "cohort@1"
    );
    assert_eq!(show["history"].as_array().unwrap().len(), 1);
    let v = ok(&airlock(&[
        "models",
        "--home",
        h,
        "verify",
        "risk",
        "--version",
        &hash[..8],
    ]));
    assert!(v.contains("verified"), "{v}");
    let at = ok(&airlock(&[
        "models",
        "--home",
        h,
        "at",
        "risk",
        &chrono_now(),
    ]));
    assert!(at.contains("no version"), "{at}");

    let scores = tmp.path().join("scores.csv");
    let p = ok(&airlock(&[
        "predict",
        "--home",
        h,
        "--model",
        &format!("risk@{}", &hash[..8]),
        "--dataset",
        "cohort",
        "--target",
        "y",
        "--positive",
        "yes",
        "--out",
        scores.to_str().unwrap(),
    ]));
    assert!(p.contains("scored 600 rows") && p.contains("AUROC"), "{p}");
    assert_eq!(
        std::fs::read_to_string(&scores).unwrap().lines().count(),
        601
    );
    // Batch scoring of PHI outside the clinical zone: refused.
    assert!(
        !airlock(&[
            "predict",
            "--home",
            h,
            "--model",
            &format!("risk@{}", &hash[..8]),
            "--dataset",
            "cohort-phi",
        ])
        .status
        .success()
    );
    ok(&airlock(&["audit", "verify", "--home", h]));
}

fn chrono_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
