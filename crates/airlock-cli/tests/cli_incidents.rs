//! `airlock incidents deadlines` end to end (issue 24): the stand-alone calculator's JSON shape,
//! owner-readable output, the letter draft, and bad input named without a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod common;

use common::{ok_in as ok, run_in as airlock, text};

#[test]
fn deadlines_stand_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(
        &[
            "incidents",
            "deadlines",
            "--discovered",
            "2026-11-20",
            "--affected",
            "CA=501,NY=500,TX=3",
            "--today",
            "2026-12-07",
            "--out",
            "d.json",
            "--letter",
            "letter.md",
        ],
        d,
    );
    assert!(out.contains("1004 individual(s) in 3 state(s)"), "{out}");
    assert!(out.contains("media (CA)"), "{out}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("d.json")).unwrap()).unwrap();
    let deadlines = v["deadlines"].as_array().unwrap();
    let notices: Vec<(&str, Option<&str>, &str, &str)> = deadlines
        .iter()
        .map(|x| {
            (
                x["notice"].as_str().unwrap(),
                x["state"].as_str(),
                x["due"].as_str().unwrap(),
                x["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        notices,
        vec![
            ("individuals", None, "2027-01-19", "45 CFR 164.404(b)"),
            ("media", Some("CA"), "2027-01-19", "45 CFR 164.406(b)"),
            ("secretary", None, "2027-01-19", "45 CFR 164.408(b)"),
        ]
    );
    assert_eq!(deadlines[0]["days_left"], 43);
    let letter = std::fs::read_to_string(d.join("letter.md")).unwrap();
    assert!(letter.contains("no later than 2027-01-19"), "{letter}");

    // Fewer than 500: the Secretary's annual log; a business associate's own term.
    let out = ok(
        &[
            "incidents",
            "deadlines",
            "--discovered",
            "2023-06-01",
            "--affected",
            "MA=12",
            "--business-associate-days",
            "10",
            "--today",
            "2023-06-01",
        ],
        d,
    );
    assert!(out.contains("the covered entity   by 2023-06-11"), "{out}");
    assert!(out.contains("the Secretary        by 2024-02-29"), "{out}");

    for (args, want) in [
        (
            vec!["--discovered", "2026-13-01", "--affected", "CA=1"],
            "--discovered",
        ),
        (
            vec!["--discovered", "2026-01-01", "--affected", "CA=1,NY"],
            "affected item 1",
        ),
        (
            vec![
                "--discovered",
                "2026-01-01",
                "--affected",
                "CA=1",
                "--business-associate-days",
                "90",
            ],
            "may shorten the 60 days",
        ),
    ] {
        let mut full = vec!["incidents", "deadlines"];
        full.extend(args);
        let o = airlock(&full, d);
        assert!(!o.status.success());
        assert!(text(&o).contains(want), "{}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
}
