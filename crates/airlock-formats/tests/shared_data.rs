#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Parses, validates and round-trips the shared sample data (skipped when absent).

use std::path::{Path, PathBuf};

use airlock_formats::{Format, hl7, sniff, strip_bom, validate};

fn data_dir() -> Option<PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    if p.is_dir() {
        Some(p.to_path_buf())
    } else {
        eprintln!("skipping: shared data not found at {}", p.display());
        None
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// The documented normalisation: BOM dropped, every separator replaced by the first one, blank
/// lines dropped, final separator kept iff present.
fn normalise(bytes: &[u8]) -> String {
    let text = std::str::from_utf8(strip_bom(bytes)).unwrap();
    let file = hl7::split(bytes).unwrap();
    let t = file.terminator.as_str();
    let trailing = text.ends_with(['\r', '\n']);
    let segs: Vec<&str> = text
        .split("\r\n")
        .flat_map(|s| s.split(['\r', '\n']))
        .filter(|s| !s.trim().is_empty())
        .collect();
    let mut out = segs.join(t);
    if trailing {
        out.push_str(t);
    }
    out
}

#[test]
fn hl7_samples_round_trip_and_validate() {
    let Some(dir) = data_dir() else { return };
    let dir = dir.join("hl7v2");
    let mut n = 0;
    for path in files(&dir) {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(sniff(&path, &bytes), Some(Format::Hl7v2));
        let summary =
            validate(Format::Hl7v2, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(summary.records >= 1);
        let (file, msgs) = hl7::parse_all(&bytes).unwrap();
        let out = hl7::serialize_file(&msgs, file.terminator, file.trailing_terminator);
        assert_eq!(out, normalise(&bytes), "{}", path.display());
        // Re-parse of the output gives the same model.
        let (_, again) = hl7::parse_all(out.as_bytes()).unwrap();
        assert_eq!(again, msgs);
        n += 1;
    }
    assert!(n > 100, "expected the 139 samples, found {n}");
}

#[test]
fn synthea_and_golden_fhir_validate() {
    let Some(dir) = data_dir() else { return };
    let mut resources = 0;
    for path in files(&dir.join("fhir/synthea")) {
        let bytes = std::fs::read(&path).unwrap();
        let s = validate(Format::FhirJson, &bytes).unwrap();
        assert!(s.resource_types.len() > 1 || s.records >= 1);
        resources += s.records;
    }
    assert!(resources > 3000, "{resources}");
    for path in files(&dir.join("fhir/anonymizer-golden/TestResources")) {
        let bytes = std::fs::read(&path).unwrap();
        // Some golden inputs are deliberately odd (empty resources); they must not panic.
        let _ = validate(Format::FhirJson, &bytes);
    }
}

#[test]
fn readmission_csv_validates() {
    let Some(dir) = data_dir() else { return };
    let zip = dir.join("tabular/diabetes130/dataset_diabetes.zip");
    let tmp = std::env::temp_dir().join(format!("airlock-formats-csv-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let status = std::process::Command::new("unzip")
        .args(["-o", "-q"])
        .arg(&zip)
        .arg("dataset_diabetes/diabetic_data.csv")
        .arg("-d")
        .arg(&tmp)
        .status();
    let Ok(status) = status else {
        eprintln!("skipping: unzip unavailable");
        return;
    };
    assert!(status.success());
    let bytes = std::fs::read(tmp.join("dataset_diabetes/diabetic_data.csv")).unwrap();
    let s = validate(Format::Csv, &bytes).unwrap();
    assert_eq!(s.records, 101_766);
    assert_eq!(s.columns.len(), 50);
    std::fs::remove_dir_all(&tmp).unwrap();
}
