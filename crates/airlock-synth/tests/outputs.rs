#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Output properties of the generator, through the public API only.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use airlock_synth::{
    CSV_COLUMNS, Cohort, GenOptions, IdentifierKind, generate, hl7_escape, write_all,
    write_fhir_bundles, write_hl7_adt,
};
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::Value;

const RESTRICTED_ZIP3: [&str; 17] = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893",
];

fn cohort(n: usize, seed: u64) -> Cohort {
    generate(&GenOptions::new(n, seed))
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let sa = write_all(&cohort(20, 7), a.path()).unwrap();
    let sb = write_all(&cohort(20, 7), b.path()).unwrap();
    write_all(&cohort(20, 8), c.path()).unwrap();
    assert_eq!(sa, sb);
    let (ta, tb, tc) = (tree(a.path()), tree(b.path()), tree(c.path()));
    assert_eq!(ta.len(), sa.files);
    assert_eq!(ta, tb, "same seed must give byte-identical output");
    for name in [
        "truth.jsonl",
        "cohort.csv",
        "notes.jsonl",
        "fhir/patient-000000.json",
    ] {
        assert_ne!(
            ta[Path::new(name)],
            tc[Path::new(name)],
            "{name} same across seeds"
        );
    }
    assert!(
        !tree(a.path())
            .keys()
            .any(|p| p.to_string_lossy().ends_with(".tmp"))
    );
}

#[test]
fn patient_does_not_depend_on_cohort_size() {
    let small = cohort(5, 3);
    let large = cohort(30, 3);
    assert_eq!(small.patients[..], large.patients[..5]);
}

fn walk_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    out.push(x.as_str().unwrap().to_owned());
                } else {
                    walk_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk_refs(x, out)),
        _ => {}
    }
}

#[test]
fn bundles_parse_and_every_reference_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let c = cohort(25, 11);
    let paths = write_fhir_bundles(&c, dir.path()).unwrap();
    assert_eq!(paths.len(), 25);
    let expected: BTreeSet<&str> = [
        "Patient",
        "Organization",
        "Practitioner",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "DocumentReference",
    ]
    .into();
    for (path, p) in paths.iter().zip(&c.patients) {
        let b: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "transaction");
        let entries = b["entry"].as_array().unwrap();
        let mut full = BTreeSet::new();
        let mut types = BTreeSet::new();
        let mut notes = Vec::new();
        for e in entries {
            let r = &e["resource"];
            let ty = r["resourceType"].as_str().unwrap();
            let url = e["fullUrl"].as_str().unwrap();
            assert_eq!(url, format!("urn:uuid:{}", r["id"].as_str().unwrap()));
            assert_eq!(e["request"]["method"], "POST");
            assert_eq!(e["request"]["url"], ty);
            assert!(full.insert(url.to_owned()), "duplicate fullUrl");
            types.insert(ty.to_owned());
            if ty == "DocumentReference" {
                let att = &r["content"][0]["attachment"];
                assert_eq!(att["contentType"], "text/plain");
                let text = base64::engine::general_purpose::STANDARD
                    .decode(att["data"].as_str().unwrap())
                    .unwrap();
                notes.push(String::from_utf8(text).unwrap());
            }
            if ty == "Patient" {
                let codes: BTreeSet<&str> = r["identifier"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["type"]["coding"][0]["code"].as_str().unwrap())
                    .collect();
                for code in ["MR", "SS", "DL", "PPN"] {
                    assert!(codes.contains(code), "missing identifier type {code}");
                }
                let ext: Vec<&str> = r["extension"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["url"].as_str().unwrap())
                    .collect();
                assert!(ext.iter().any(|u| u.ends_with("us-core-race")));
                assert!(ext.iter().any(|u| u.ends_with("us-core-ethnicity")));
                assert!(ext.iter().any(|u| u.ends_with("patient-birthPlace")));
                assert!(ext.iter().any(|u| u.ends_with("patient-mothersMaidenName")));
                assert_eq!(r["birthDate"], p.identity.birth_date.to_string());
            }
        }
        let mut refs = Vec::new();
        walk_refs(&b, &mut refs);
        assert!(!refs.is_empty());
        for r in &refs {
            assert!(full.contains(r), "dangling reference in {}", path.display());
        }
        let types: BTreeSet<&str> = types.iter().map(String::as_str).collect();
        assert!(types.is_subset(&expected), "{types:?}");
        for must in [
            "Patient",
            "Organization",
            "Practitioner",
            "Encounter",
            "Condition",
            "Observation",
        ] {
            assert!(types.contains(must), "no {must}");
        }
        let want: Vec<&str> = p
            .encounters
            .iter()
            .flat_map(|e| &e.notes)
            .map(|n| n.text.as_str())
            .collect();
        assert_eq!(notes, want, "DocumentReference text differs from the notes");
    }
}

#[test]
fn hl7_messages_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let c = cohort(20, 5);
    let paths = write_hl7_adt(&c, dir.path()).unwrap();
    let n_enc: usize = c.patients.iter().map(|p| p.encounters.len()).sum();
    assert_eq!(paths.len(), n_enc);
    let allowed: BTreeSet<&str> = ["MSH", "EVN", "PID", "NK1", "PV1", "DG1", "OBX", "NTE"].into();
    let encounters = c
        .patients
        .iter()
        .flat_map(|p| p.encounters.iter().map(move |e| (p, e)));
    for (path, (p, e)) in paths.iter().zip(encounters) {
        let msg = fs::read_to_string(path).unwrap();
        assert!(msg.starts_with("MSH|^~\\&|"));
        assert!(msg.ends_with('\r'));
        assert!(!msg.contains('\n'), "newline inside a message");
        let segs: Vec<&str> = msg.split('\r').filter(|s| !s.is_empty()).collect();
        let names: Vec<&str> = segs.iter().map(|s| &s[..3]).collect();
        assert_eq!(&names[..5], ["MSH", "EVN", "PID", "NK1", "PV1"]);
        for (s, name) in segs.iter().zip(&names) {
            assert!(allowed.contains(name), "unexpected segment {name}");
            assert_eq!(s.as_bytes()[3], b'|');
        }
        let msh: Vec<&str> = segs[0].split('|').collect();
        assert_eq!(msh[8], "ADT^A01^ADT_A01");
        assert_eq!(msh[11], "2.5.1");
        let pid: Vec<&str> = segs[2].split('|').collect();
        let id = &p.identity;
        assert!(pid[3].starts_with(&format!("{}^^^", id.mrn)));
        assert!(pid[5].starts_with(&format!(
            "{}^{}^",
            hl7_escape(&id.family),
            hl7_escape(&id.given)
        )));
        assert_eq!(pid[7], id.birth_date.format("%Y%m%d").to_string());
        assert!(pid[11].starts_with(&hl7_escape(&id.street)));
        assert!(pid[13].starts_with(&id.phone));
        assert_eq!(pid[19], id.ssn);
        let pv1: Vec<&str> = segs[4].split('|').collect();
        assert_eq!(pv1[19].split('^').next().unwrap(), e.visit_number);
        assert_eq!(pv1[44], e.admit.format("%Y%m%d%H%M%S").to_string());
        let dg1 = segs.iter().filter(|s| s.starts_with("DG1|")).count();
        assert_eq!(dg1, 1 + e.secondary.len());
        let obx = segs.iter().filter(|s| s.starts_with("OBX|")).count();
        assert_eq!(obx, e.observations.len());
        assert!(segs.iter().any(|s| s.starts_with("NTE|")));
    }
}

#[test]
fn write_all_layout_csv_truth_and_notes() {
    let dir = tempfile::tempdir().unwrap();
    let c = cohort(30, 21);
    let s = write_all(&c, dir.path()).unwrap();
    let n_enc: usize = c.patients.iter().map(|p| p.encounters.len()).sum();
    assert_eq!(s.patients, 30);
    assert_eq!(s.encounters, n_enc);
    for p in [
        "fhir",
        "ndjson",
        "hl7",
        "cohort.csv",
        "truth.jsonl",
        "notes.jsonl",
        "README.txt",
    ] {
        assert!(dir.path().join(p).exists(), "missing {p}");
    }

    // CSV: consistent columns, one row per stay, labels 0/1.
    let mut rdr = csv::Reader::from_path(dir.path().join("cohort.csv")).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, CSV_COLUMNS);
    let mut rows = 0;
    for r in rdr.records() {
        let r = r.unwrap();
        assert_eq!(r.len(), CSV_COLUMNS.len());
        assert!(matches!(&r[23], "0" | "1"));
        assert!(r[17].parse::<i64>().unwrap() >= 1);
        rows += 1;
    }
    assert_eq!(rows, n_enc);

    // Truth: one line per patient, identical to identifiers().
    let truth = fs::read_to_string(dir.path().join("truth.jsonl")).unwrap();
    let lines: Vec<Value> = truth
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 30);
    for (line, p) in lines.iter().zip(&c.patients) {
        assert_eq!(line["patient_id"], p.id.as_str());
        let got: Vec<(String, String)> = line["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap().to_owned(),
                    i["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = p
            .identifiers()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect();
        assert_eq!(got, want);
        assert!(bundle_mentions(
            dir.path(),
            &line["bundle"],
            &p.identity.mrn
        ));
    }

    // notes.jsonl: character offsets that pick out the annotated values.
    let notes = fs::read_to_string(dir.path().join("notes.jsonl")).unwrap();
    let mut count = 0;
    for l in notes.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let text: Vec<char> = v["text"].as_str().unwrap().chars().collect();
        for span in v["phi"].as_array().unwrap() {
            let (s, e) = (
                span["start"].as_u64().unwrap() as usize,
                span["end"].as_u64().unwrap() as usize,
            );
            assert!(s < e && e <= text.len());
            let value: String = text[s..e].iter().collect();
            assert_eq!(value.trim(), value, "span has surrounding whitespace");
        }
        count += 1;
    }
    assert_eq!(count, s.notes);

    // NDJSON: every line parses, Patient.ndjson has one line per patient.
    let pat = fs::read_to_string(dir.path().join("ndjson/Patient.ndjson")).unwrap();
    assert_eq!(pat.lines().count(), 30);
    for f in fs::read_dir(dir.path().join("ndjson")).unwrap() {
        for l in fs::read_to_string(f.unwrap().path()).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            let mut refs = Vec::new();
            walk_refs(&v, &mut refs);
            assert!(
                refs.iter()
                    .all(|r| !r.starts_with("urn:") && r.contains('/'))
            );
        }
    }
}

fn bundle_mentions(dir: &Path, name: &Value, needle: &str) -> bool {
    let text = fs::read_to_string(dir.join("fhir").join(name.as_str().unwrap())).unwrap();
    text.contains(needle)
}

#[test]
fn notes_mention_the_patient_and_spans_are_exact() {
    let c = cohort(40, 99);
    let mut kinds_seen = BTreeSet::new();
    for p in &c.patients {
        let id = &p.identity;
        for e in &p.encounters {
            assert!(!e.notes.is_empty());
            for n in &e.notes {
                let lower = n.text.to_lowercase();
                assert!(
                    lower.contains(&id.given.to_lowercase())
                        || lower.contains(&id.family.to_lowercase()),
                    "a note does not mention the patient (patient {})",
                    p.index
                );
                for s in &n.phi {
                    let v = &n.text[s.start..s.end];
                    assert!(!v.is_empty());
                    kinds_seen.insert(s.label);
                }
            }
        }
    }
    for k in [
        "NAME", "DATE", "PHONE", "MRN", "FACILITY", "CITY", "EMAIL", "ACCOUNT", "ADDRESS", "ZIP",
    ] {
        assert!(kinds_seen.contains(k), "no {k} span in 40 patients");
    }
}

#[test]
fn cohort_exercises_the_hard_cases() {
    // Generation only (no files): cheap even at a few hundred patients.
    let c = cohort(300, 1);
    let mut restricted = 0;
    let mut over_89 = 0;
    let mut odd_names = 0;
    let mut partial_dates = 0;
    let mut paren_phones = 0;
    let mut legacy_mrn = 0;
    let mut mrns = BTreeSet::new();
    let mut visits = BTreeSet::new();
    let (mut stays, mut readmits) = (0usize, 0usize);
    for p in &c.patients {
        let id = &p.identity;
        assert!(mrns.insert(id.mrn.clone()), "duplicate MRN");
        assert_eq!(id.mrn.len(), 7);
        assert!(id.zip.len() == 5 && id.zip.chars().all(|c| c.is_ascii_digit()));
        if RESTRICTED_ZIP3.contains(&&id.zip[..3]) {
            restricted += 1;
        }
        if [&id.given, &id.family]
            .iter()
            .any(|n| n.contains(['\'', '-']) || !n.is_ascii())
        {
            odd_names += 1;
        }
        let ssn: Vec<&str> = id.ssn.split('-').collect();
        assert_eq!(ssn.iter().map(|s| s.len()).collect::<Vec<_>>(), [3, 2, 4]);
        for (i, e) in p.encounters.iter().enumerate() {
            assert!(
                visits.insert(e.visit_number.clone()),
                "duplicate visit number"
            );
            assert!(e.discharge > e.admit);
            if p.age_on(e.admit.date()) >= 90 {
                over_89 += 1;
            }
            // The label is read off the timeline.
            let next = p.encounters.get(i + 1);
            let expect =
                next.is_some_and(|n| (n.admit.date() - e.discharge.date()).num_days() <= 30);
            assert_eq!(e.readmitted_30d, expect);
            if let Some(n) = next {
                assert!(n.admit > e.discharge);
            }
            stays += 1;
            readmits += usize::from(e.readmitted_30d);
            for n in &e.notes {
                if n.phi
                    .iter()
                    .any(|s| s.label == "DATE" && n.text[s.start..s.end].matches('/').count() == 1)
                {
                    partial_dates += 1;
                }
                if n.phi
                    .iter()
                    .any(|s| s.label == "PHONE" && n.text[s.start..s.end].starts_with('('))
                {
                    paren_phones += 1;
                }
                if n.text.contains("MRN: S-") {
                    legacy_mrn += 1;
                }
            }
        }
        let kinds: Vec<IdentifierKind> = p.identifiers().iter().map(|(k, _)| *k).collect();
        for k in [
            IdentifierKind::GivenName,
            IdentifierKind::FamilyName,
            IdentifierKind::Mrn,
            IdentifierKind::Ssn,
            IdentifierKind::Phone,
            IdentifierKind::Zip,
            IdentifierKind::BirthDate,
        ] {
            assert!(kinds.contains(&k));
        }
    }
    assert!(restricted > 0, "no restricted zip3");
    assert!(over_89 > 0, "no stay at age 90+");
    assert!(odd_names > 0, "no apostrophe, hyphen or accent");
    assert!(partial_dates > 0 && paren_phones > 0 && legacy_mrn > 0);
    let rate = readmits as f64 / stays as f64;
    assert!((0.05..0.35).contains(&rate), "readmission rate {rate}");
}

#[test]
fn debug_output_hides_identifiers() {
    let c = cohort(5, 2);
    for p in &c.patients {
        let dbg = format!("{p:?}");
        for (kind, value) in p.identifiers() {
            if matches!(
                kind,
                IdentifierKind::Mrn
                    | IdentifierKind::Ssn
                    | IdentifierKind::Phone
                    | IdentifierKind::Email
                    | IdentifierKind::Street
            ) {
                assert!(!dbg.contains(&value), "{} in Debug", kind.as_str());
            }
        }
    }
}

#[test]
fn options_are_read_leniently() {
    let mut o = GenOptions::new(3, 4);
    o.encounters_per_patient = 2..=2;
    o.notes_per_encounter = 1..=1;
    std::mem::swap(&mut o.start_date, &mut o.end_date);
    let c = generate(&o);
    for p in &c.patients {
        assert!(!p.encounters.is_empty());
        for e in &p.encounters {
            assert_eq!(e.notes.len(), 1);
        }
    }
    assert!(generate(&GenOptions::new(0, 1)).patients.is_empty());
}

/// A left-to-right HL7 unescaper (a reference for the property test).
fn hl7_unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let j = after.find('\\').expect("unterminated escape");
        out.push_str(match &after[..j] {
            "F" => "|",
            "S" => "^",
            "T" => "&",
            "R" => "~",
            "E" => "\\",
            ".br" => "\n",
            other => panic!("unknown escape {other}"),
        });
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

proptest! {
    #[test]
    fn hl7_escape_keeps_values_inside_their_field(s in "[a-zA-Z0-9 |^&~\\\\.'éñ-]{0,40}") {
        let e = hl7_escape(&s);
        prop_assert!(!e.contains(['|', '^', '&', '~', '\r', '\n']));
        prop_assert_eq!(hl7_unescape(&e), s);
    }

    #[test]
    fn generation_is_a_function_of_the_seed(seed in any::<u64>()) {
        let a = generate(&GenOptions::new(2, seed));
        let b = generate(&GenOptions::new(2, seed));
        prop_assert_eq!(a, b);
    }
}
