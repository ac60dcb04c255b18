#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! The quality bars on the shared data (skipped when `../shared/data` is absent): zero leaks
//! under safe-harbor on Synthea, HL7 samples and the readmission table; references still
//! resolve; each patient's date intervals preserved under expert-determination.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use airlock_deid::{Crosswalk, DeidKeys, Format, Profile, deid_bytes, deid_paths};
use serde_json::Value;

fn data_dir() -> Option<PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    if p.is_dir() {
        Some(p.to_path_buf())
    } else {
        eprintln!("skipping: shared data not found at {}", p.display());
        None
    }
}

fn key() -> DeidKeys {
    DeidKeys::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
}

fn profile(name: &str) -> Profile {
    Profile::builtin(name).unwrap().with_reference_year(2026)
}

fn walk_strings<'a>(v: &'a Value, key: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if let Value::String(s) = x {
                    out.push((k.clone(), s));
                } else {
                    walk_strings(x, k, out);
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                if let Value::String(s) = x {
                    out.push((key.to_owned(), s));
                } else {
                    walk_strings(x, key, out);
                }
            }
        }
        _ => {}
    }
}

fn targets_of(bundle: &Value, targets: &mut HashSet<String>) {
    for e in bundle["entry"].as_array().unwrap() {
        if let Some(fu) = e["fullUrl"].as_str() {
            targets.insert(fu.to_owned());
        }
        let r = &e["resource"];
        if let (Some(t), Some(id)) = (r["resourceType"].as_str(), r["id"].as_str()) {
            targets.insert(format!("{t}/{id}"));
        }
    }
}

/// Every `reference` in a bundle resolves to a fullUrl or `Type/id` among `targets`.
fn assert_references_resolve(bundle: &Value, targets: &HashSet<String>, name: &str) -> usize {
    let mut strings = Vec::new();
    walk_strings(bundle, "", &mut strings);
    let mut n = 0;
    for (k, s) in strings {
        if k == "reference" && !s.starts_with('#') {
            assert!(targets.contains(s), "{name}: dangling reference");
            n += 1;
        }
    }
    n
}

#[test]
fn synthea_safe_harbor_zero_leaks_and_links() {
    let Some(dir) = data_dir() else { return };
    let out = tempfile::tempdir().unwrap();
    let mut cw = Crosswalk::new();
    let report = deid_paths(
        &profile("safe-harbor"),
        &key(),
        &mut cw,
        &[dir.join("fhir/synthea")],
        out.path(),
    )
    .unwrap_or_else(|e| {
        if let airlock_deid::DeidError::LeakCheckFailed { report, .. } = &e {
            for h in report.leak_check.hits.iter().take(40) {
                eprintln!("leak: {} {} {} {}", h.file, h.record, h.path, h.kind);
            }
        }
        panic!("{e}")
    });
    println!("{}", report.summary());
    assert!(report.leak_check.passed);
    assert!(
        report.leak_check.values_checked > 100,
        "{}",
        report.leak_check.values_checked
    );
    assert!(report.quarantined.is_empty());
    assert!(cw.len() > 1000);
    let mut refs = 0;
    // Synthea's practitioner bundle refers to organisations of the hospital bundle: resolve
    // against every output bundle (pseudonyms are consistent across files).
    let outputs: Vec<(PathBuf, Value)> = std::fs::read_dir(out.path().join("synthea"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    let mut targets = HashSet::new();
    for (_, v) in &outputs {
        targets_of(v, &mut targets);
    }
    for (p, v) in &outputs {
        refs += assert_references_resolve(v, &targets, &p.display().to_string());
        // What a model needs is kept: race/ethnicity extensions, codes, values, sex.
        for e in v["entry"].as_array().unwrap() {
            let r = &e["resource"];
            if r["resourceType"] == "Patient" {
                let exts = r["extension"].as_array().unwrap();
                assert!(
                    exts.iter()
                        .any(|x| x["url"].as_str().unwrap().ends_with("us-core-race"))
                );
                assert!(r["gender"].is_string());
                for n in r["name"].as_array().into_iter().flatten() {
                    assert!(
                        n.get("family").is_none()
                            && n.get("given").is_none()
                            && n.get("prefix").is_none()
                    );
                }
                for t in r["telecom"].as_array().into_iter().flatten() {
                    assert!(t.get("value").is_none());
                }
                let bd = r["birthDate"].as_str().unwrap();
                assert_eq!(bd.len(), 4, "birth date reduced to the year");
                let addr = &r["address"][0];
                assert!(addr.get("city").is_none() && addr.get("line").is_none());
                assert!(addr.get("state").is_some());
            }
            if r["resourceType"] == "Observation" {
                if let Some(q) = r.get("valueQuantity") {
                    assert!(q["value"].is_number());
                }
                assert!(r["code"]["coding"][0]["code"].is_string());
            }
        }
    }
    assert!(refs > 1000, "{refs}");
}

#[test]
fn synthea_expert_intervals_preserved_and_stable() {
    let Some(dir) = data_dir() else { return };
    let p = profile("expert-determination");
    for entry in std::fs::read_dir(dir.join("fhir/synthea")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("hospital") || name.starts_with("practitioner") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let input: Value = serde_json::from_slice(&bytes).unwrap();
        let mut cw = Crosswalk::new();
        let (out, report) = deid_bytes(&p, &key(), &mut cw, Format::FhirJson, &bytes).unwrap();
        assert!(report.quarantined.is_empty());
        let output: Value = serde_json::from_slice(&out).unwrap();
        let mut targets = HashSet::new();
        targets_of(&output, &mut targets);
        assert_references_resolve(&output, &targets, &name);
        // Same date paths in input and output (entries are not reordered): one offset.
        let mut offsets = BTreeSet::new();
        let ins = input["entry"].as_array().unwrap();
        let outs = output["entry"].as_array().unwrap();
        assert_eq!(ins.len(), outs.len());
        for (a, b) in ins.iter().zip(outs) {
            for key in ["period", "billablePeriod"] {
                for edge in ["start", "end"] {
                    let (Some(x), Some(y)) = (
                        a["resource"][key][edge].as_str(),
                        b["resource"][key][edge].as_str(),
                    ) else {
                        continue;
                    };
                    let dx = chrono::DateTime::parse_from_rfc3339(x).unwrap();
                    let dy = chrono::DateTime::parse_from_rfc3339(y).unwrap();
                    offsets.insert((dy - dx).num_seconds());
                }
            }
            if let (Some(x), Some(y)) = (
                a["resource"]["birthDate"].as_str(),
                b["resource"]["birthDate"].as_str(),
            ) {
                let dx = chrono::NaiveDate::parse_from_str(x, "%Y-%m-%d").unwrap();
                let dy = chrono::NaiveDate::parse_from_str(y, "%Y-%m-%d").unwrap();
                offsets.insert((dy - dx).num_seconds());
            }
        }
        assert_eq!(
            offsets.len(),
            1,
            "{name}: one offset per patient, got {offsets:?}"
        );
        let off = *offsets.iter().next().unwrap();
        assert!(off != 0 && off.abs() <= 365 * 86400, "{off}");
        // Same key, same output (HMAC scheme): stable across runs.
        let mut cw2 = Crosswalk::new();
        let (out2, _) = deid_bytes(&p, &key(), &mut cw2, Format::FhirJson, &bytes).unwrap();
        assert_eq!(
            out, out2,
            "{name}: expert-determination output is deterministic for a key"
        );
    }
}

#[test]
fn hl7_samples_safe_harbor() {
    let Some(dir) = data_dir() else { return };
    let out = tempfile::tempdir().unwrap();
    let mut cw = Crosswalk::new();
    let res = deid_paths(
        &profile("safe-harbor"),
        &key(),
        &mut cw,
        &[dir.join("hl7v2")],
        out.path(),
    );
    let report = match res {
        Ok(r) => r,
        Err(airlock_deid::DeidError::LeakCheckFailed { report, .. }) => {
            for h in report.leak_check.hits.iter().take(60) {
                eprintln!("leak: {} {} {} {}", h.file, h.record, h.path, h.kind);
            }
            panic!("leaks: {}", report.leak_check.hits.len());
        }
        Err(e) => panic!("{e}"),
    };
    println!("{}", report.summary());
    assert!(report.leak_check.passed);
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let mut n = 0;
    for e in std::fs::read_dir(out.path().join("hl7v2")).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let s = airlock_formats::validate(Format::Hl7v2, &bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(s.records >= 1);
        let (_, msgs) = airlock_formats::hl7::parse_all(&bytes).unwrap();
        for m in msgs {
            if let Some(pid) = m.segment("PID") {
                assert!(pid.field(5).is_none_or(|f| f.is_empty()), "PID-5 cleared");
                if let Some(dob) = pid.field(7).filter(|f| !f.is_empty()) {
                    assert!(dob.first_value(&m.delimiters).len() <= 4, "PID-7 year only");
                }
            }
        }
        n += 1;
    }
    assert_eq!(n, 139);
}

fn unzip_readmission(dir: &Path, into: &Path) -> Option<PathBuf> {
    let zip = dir.join("tabular/diabetes130/dataset_diabetes.zip");
    let ok = std::process::Command::new("unzip")
        .args(["-o", "-q"])
        .arg(&zip)
        .arg("dataset_diabetes/diabetic_data.csv")
        .arg("-d")
        .arg(into)
        .status()
        .ok()?
        .success();
    if !ok {
        eprintln!("skipping: unzip failed");
        return None;
    }
    Some(into.join("dataset_diabetes/diabetic_data.csv"))
}

#[test]
fn readmission_csv_safe_harbor_and_risk() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(csv) = unzip_readmission(&dir, tmp.path()) else {
        return;
    };
    let out = tmp.path().join("out");
    let mut cw = Crosswalk::new();
    let report = deid_paths(
        &profile("safe-harbor"),
        &key(),
        &mut cw,
        std::slice::from_ref(&csv),
        &out,
    )
    .unwrap();
    println!("{}", report.summary());
    assert!(report.leak_check.passed);
    assert_eq!(report.records_out, 101_766);
    let text = std::fs::read_to_string(out.join("diabetic_data.csv")).unwrap();
    let first = text.lines().nth(1).unwrap();
    assert!(!first.starts_with("2278392,"), "encounter id pseudonymised");
    assert!(!text.contains("[90-100)"), "ages over 89 aggregated");
    // Risk on 8 quasi-identifiers of the source table.
    let qis: Vec<String> = [
        "race",
        "gender",
        "age",
        "admission_type_id",
        "discharge_disposition_id",
        "admission_source_id",
        "payer_code",
        "medical_specialty",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let r = airlock_deid::risk_report_csv(
        std::fs::File::open(&csv).unwrap(),
        &qis,
        Some("readmitted"),
        1.0,
    )
    .unwrap();
    println!("{}", r.summary());
    assert_eq!(r.records, 101_766);
    assert!(r.k >= 1 && r.classes > 100);
}

#[test]
fn readmission_csv_expert_k_anonymity_on_8_quasi_identifiers() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(csv) = unzip_readmission(&dir, tmp.path()) else {
        return;
    };
    let base = include_str!("../profiles/expert-determination.toml");
    let toml = base.replace(
        "quasi_identifiers = [\"race\", \"gender\", \"age\"]",
        "quasi_identifiers = [\"race\", \"gender\", \"age\", \"admission_type_id\", \"discharge_disposition_id\", \"admission_source_id\", \"payer_code\", \"medical_specialty\"]\nsensitive = \"readmitted\"",
    );
    let p = Profile::from_toml(&toml).unwrap().with_reference_year(2026);
    let out = tmp.path().join("out");
    let report = deid_paths(
        &p,
        &key(),
        &mut Crosswalk::new(),
        std::slice::from_ref(&csv),
        &out,
    )
    .unwrap();
    let (_, r) = &report.risk[0];
    println!("{}", r.summary());
    assert!(r.k >= 5, "k = {}", r.k);
    assert!(r.prosecutor_max <= 0.2);
    assert!(r.suppressed as f64 <= 0.05 * 101_766.0);
    assert_eq!(r.records + r.suppressed, 101_766);
}

#[test]
fn synthea_as_bulk_ndjson_safe_harbor() {
    // The Synthea bundles re-cut as a bulk export: one NDJSON file per resource type.
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bulk");
    std::fs::create_dir_all(&input).unwrap();
    let mut files: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir.join("fhir/synthea")).unwrap() {
        let v: Value = serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        for entry in v["entry"].as_array().unwrap() {
            let r = &entry["resource"];
            let t = r["resourceType"].as_str().unwrap().to_owned();
            let line = serde_json::to_string(r).unwrap();
            let f = files.entry(t).or_default();
            f.push_str(&line);
            f.push('\n');
        }
    }
    for (t, text) in &files {
        std::fs::write(input.join(format!("{t}.ndjson")), text).unwrap();
    }
    let out = tmp.path().join("out");
    let report = deid_paths(
        &profile("safe-harbor"),
        &key(),
        &mut Crosswalk::new(),
        std::slice::from_ref(&input),
        &out,
    )
    .unwrap();
    assert!(report.leak_check.passed);
    assert!(report.quarantined.is_empty());
    assert_eq!(report.records_out, 4688);
    // Every urn:uuid reference points at a resource id present in the output.
    let mut ids = HashSet::new();
    let mut refs = Vec::new();
    for t in files.keys() {
        for line in std::fs::read_to_string(out.join("bulk").join(format!("{t}.ndjson")))
            .unwrap()
            .lines()
        {
            let v: Value = serde_json::from_str(line).unwrap();
            ids.insert(v["id"].as_str().unwrap().to_owned());
            let mut strings = Vec::new();
            walk_strings(&v, "", &mut strings);
            let contained: HashSet<String> = v["contained"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect();
            for (k, s) in strings {
                if k != "reference" {
                    continue;
                }
                match s.strip_prefix('#') {
                    Some(local) => {
                        assert!(contained.contains(local), "dangling contained reference")
                    }
                    None => refs.push(s.to_owned()),
                }
            }
        }
    }
    assert!(refs.len() > 1000);
    for r in &refs {
        let id = r.strip_prefix("urn:uuid:").unwrap_or(r);
        assert!(
            ids.contains(id),
            "dangling reference after NDJSON de-identification"
        );
    }
}

#[test]
fn hl7_samples_expert_one_offset_per_message() {
    let Some(dir) = data_dir() else { return };
    let p = profile("expert-determination");
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s.get(..8)?, "%Y%m%d").ok();
    let mut checked = 0;
    for e in std::fs::read_dir(dir.join("hl7v2")).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (out, report) =
            deid_bytes(&p, &key(), &mut Crosswalk::new(), Format::Hl7v2, &bytes).unwrap();
        assert!(report.quarantined.is_empty());
        let (_, ins) = airlock_formats::hl7::parse_all(&bytes).unwrap();
        let (_, outs) = airlock_formats::hl7::parse_all(&out).unwrap();
        assert_eq!(ins.len(), outs.len());
        for (a, b) in ins.iter().zip(&outs) {
            let mut offsets = BTreeSet::new();
            for (seg, n) in [("MSH", 7), ("EVN", 2), ("PID", 7), ("PV1", 44), ("PV1", 45)] {
                let get = |m: &airlock_formats::hl7::Message| {
                    m.segment(seg)
                        .and_then(|s| s.field(n))
                        .map(|f| f.first_value(&m.delimiters))
                };
                if let (Some(x), Some(y)) = (get(a), get(b))
                    && let (Some(dx), Some(dy)) = (day(&x), day(&y))
                {
                    offsets.insert((dy - dx).num_days());
                }
            }
            assert!(
                offsets.len() <= 1,
                "{}: one offset per message, got {offsets:?}",
                path.display()
            );
            checked += offsets.len();
        }
    }
    assert!(checked > 50, "{checked}");
}
