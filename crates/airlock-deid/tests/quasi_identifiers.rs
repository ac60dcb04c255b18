#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Quasi-identifiers on hand-made fixtures: the residual risk of FHIR and HL7 patients under
//! every profile (one record per patient, across files and messages); a profile's
//! `[k_anonymity]` names found through their aliases; a table of people missing one is an
//! error naming it, a table with none is no table of people, and a data set with no table of
//! people at all is an error.

use airlock_deid::{
    Crosswalk, DatasetFile, DeidError, DeidKeys, Format, Profile, RiskReport, RunReport,
    deid_bytes, deid_dataset, deid_paths,
};
use serde_json::json;

fn key() -> DeidKeys {
    DeidKeys::new(vec![3; 32]).unwrap()
}

fn builtin(name: &str) -> Profile {
    Profile::builtin(name).unwrap().with_reference_year(2026)
}

/// A profile with `[k_anonymity]` on these quasi-identifiers.
fn with_k(k: u32, qis: &str, extra: &str) -> Profile {
    Profile::from_toml(&format!(
        "name='k'\npseudonyms='hmac'\ndates='year'\nfree_text='tag'\nzip='zip3'\n\
         [k_anonymity]\nk={k}\nquasi_identifiers=[{qis}]\n{extra}max_suppression=0.5\n"
    ))
    .unwrap()
    .with_reference_year(2026)
}

fn risk<'a>(report: &'a RunReport, label: &str) -> &'a RiskReport {
    report
        .risk
        .iter()
        .find(|(l, _)| l == label)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no risk report `{label}`: {:?}", report.risk))
}

fn patient(
    id: &str,
    mrn: &str,
    birth: &str,
    gender: &str,
    zip: &str,
    race: &str,
) -> serde_json::Value {
    json!({
        "resourceType": "Patient", "id": id,
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": mrn}],
        "name": [{"family": "Zorblatt", "given": ["Quentin"]}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "MA", "postalCode": zip}],
        "extension": [{
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [{"url": "ombCategory", "valueCoding": {"code": "2106-3", "display": race}}]
        }, {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
            "extension": [{"url": "ombCategory", "valueCoding": {"code": "2186-5", "display": "Not Hispanic or Latino"}}]
        }]
    })
}

fn bundle(patients: &[serde_json::Value]) -> Vec<u8> {
    let entry: Vec<serde_json::Value> = patients
        .iter()
        .map(|p| json!({"fullUrl": format!("urn:uuid:{}", p["id"].as_str().unwrap()), "resource": p}))
        .collect();
    serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "collection", "entry": entry}))
        .unwrap()
}

const A: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const B: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const C: &str = "cccccccc-0000-0000-0000-000000000003";

#[test]
fn fhir_patients_risk_under_every_profile_one_record_per_patient() {
    let a = patient(A, "MRN-1", "1970-05-02", "female", "02138", "White");
    let b = patient(B, "MRN-2", "1970-08-09", "female", "02139", "White");
    let c = patient(C, "MRN-3", "1988-01-01", "male", "98053", "Asian");
    // A in two bundles, B in a bundle, C in NDJSON: three patients.
    let first = bundle(&[a.clone(), b.clone()]);
    let second = bundle(std::slice::from_ref(&a));
    let ndjson = format!("{}\n", serde_json::to_string(&c).unwrap()).into_bytes();
    for name in ["safe-harbor", "expert-determination", "limited-data-set"] {
        let files = [
            DatasetFile {
                format: Format::FhirJson,
                bytes: &first,
            },
            DatasetFile {
                format: Format::FhirJson,
                bytes: &second,
            },
            DatasetFile {
                format: Format::FhirNdjson,
                bytes: &ndjson,
            },
        ];
        let (_, report) = deid_dataset(&builtin(name), &key(), &mut Crosswalk::new(), &files)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = risk(&report, "fhir:Patient");
        assert_eq!(r.records, 3, "{name}");
        assert_eq!(
            r.quasi_identifiers,
            ["birth_year", "sex", "zip3", "race", "ethnicity"]
        );
        if name == "safe-harbor" || name == "limited-data-set" {
            // A and B share 1970, female, 021, White: one class of two, C alone.
            assert_eq!((r.classes, r.k), (2, 1), "{name}");
            assert!((r.sample_unique_share - 1.0 / 3.0).abs() < 1e-9, "{name}");
        }
        assert!(
            report
                .summary()
                .contains("residual risk: fhir:Patient  3 patients")
        );
    }
    // One buffer: a single Patient resource.
    let (_, report) = deid_bytes(
        &builtin("safe-harbor"),
        &key(),
        &mut Crosswalk::new(),
        Format::FhirJson,
        &serde_json::to_vec(&a).unwrap(),
    )
    .unwrap();
    assert_eq!(risk(&report, "fhir:Patient").records, 1);
}

#[test]
fn hl7_patients_risk_counts_each_mrn_once() {
    let msg = |id: &str, mrn: &str, dob: &str, sex: &str| {
        format!(
            "MSH|^~\\&|APP|FAC|||20200501100000||ADT^A01|{id}|P|2.5\rPID|1||{mrn}^^^HOSP^MR||Zorblatt^Quentin||{dob}|{sex}||2106-3^White|1 Main St^^Springfield^MA^02138|||||||||||N^Not Hispanic\r"
        )
    };
    let text = [
        msg("M1", "MRN-1", "19700502", "F"),
        msg("M2", "MRN-1", "19700502", "F"),
        msg("M3", "MRN-2", "19880101", "M"),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adt.hl7"), &text).unwrap();
    let out = dir.path().join("out");
    let report = deid_paths(
        &builtin("safe-harbor"),
        &key(),
        &mut Crosswalk::new(),
        &[dir.path().join("adt.hl7")],
        &out,
    )
    .unwrap();
    let r = risk(&report, "hl7:PID");
    assert_eq!((r.records, r.classes, r.k), (2, 2, 1));
    let summary = std::fs::read_to_string(out.join("deid-summary.txt")).unwrap();
    assert!(
        summary.contains("residual risk: hl7:PID  2 patients"),
        "{summary}"
    );
    // Counts and names only.
    for v in ["MRN-1", "Zorblatt", "19700502", "02138"] {
        assert!(!summary.contains(v));
    }
}

/// A Synthea-shaped table of people (header names as Synthea writes them) and a visits table.
fn people_csv() -> String {
    let mut s = String::from("Id,BIRTHDATE,GENDER,RACE,ETHNICITY,ZIP,score\n");
    for i in 0..40 {
        let g = if i % 2 == 0 { "F" } else { "M" };
        let r = if i % 3 == 0 { "white" } else { "black" };
        s.push_str(&format!(
            "p{i:03},19{:02}-0{}-1{},{g},{r},nonhispanic,0{}1{:02},{i}\n",
            50 + i % 4,
            1 + i % 9,
            i % 10,
            i % 3,
            i % 7
        ));
    }
    s
}

fn visits_csv() -> String {
    let mut s = String::from("patient,visit_date,code\n");
    for i in 0..40 {
        s.push_str(&format!("p{i:03},2020-01-0{},E11\n", 1 + i % 9));
    }
    s
}

#[test]
fn quasi_identifiers_are_found_through_their_aliases() {
    let p = with_k(
        2,
        "'sex', 'birth_year', 'zip', 'race', 'ethnicity'",
        "sensitive='Score'\n",
    );
    let people = people_csv();
    let visits = visits_csv();
    let files = [
        DatasetFile {
            format: Format::Csv,
            bytes: people.as_bytes(),
        },
        DatasetFile {
            format: Format::Csv,
            bytes: visits.as_bytes(),
        },
    ];
    let (outputs, report) = deid_dataset(&p, &key(), &mut Crosswalk::new(), &files).unwrap();
    // Only the table of people is measured; the visits table has none of the names.
    assert_eq!(report.risk.len(), 1, "{:?}", report.risk);
    let r = risk(&report, "files[0]");
    assert_eq!(
        r.sources,
        ["GENDER", "BIRTHDATE, year", "ZIP", "RACE", "ETHNICITY"]
    );
    assert!(r.k >= 2, "k = {}", r.k);
    assert_eq!(r.records + r.suppressed, 40);
    assert!(r.l_diversity.is_some());
    println!("{}", r.summary());
    assert!(r.summary().contains("birth_year (BIRTHDATE, year)"));
    assert_eq!(outputs.len(), 2);
    // `age` stands for the birth year when the table has no age and the profile no birth year.
    let p = with_k(1, "'gender', 'age', 'race'", "");
    let (_, report) = deid_bytes(
        &p,
        &key(),
        &mut Crosswalk::new(),
        Format::Csv,
        people.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        risk(&report, "<buffer>").sources,
        ["GENDER", "BIRTHDATE, year", "RACE"]
    );
}

#[test]
fn a_table_of_people_without_a_quasi_identifier_is_an_error_naming_it() {
    // GENDER and RACE are there, no ethnicity column: a table of people missing one.
    let p = with_k(2, "'gender', 'race', 'ethnicity'", "");
    let csv = "Id,GENDER,RACE,score\np1,F,white,3\np2,M,black,4\n";
    let e = deid_bytes(
        &p,
        &key(),
        &mut Crosswalk::new(),
        Format::Csv,
        csv.as_bytes(),
    )
    .unwrap_err();
    match &e {
        DeidError::QuasiIdentifiersMissing { table, missing } => {
            assert_eq!(table, "<buffer>");
            assert_eq!(missing, &["ethnicity".to_owned()]);
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("`ethnicity`"), "{msg}");
    for v in ["p1", "white", "black"] {
        assert!(!msg.contains(v), "{msg}");
    }
    // The sensitive attribute too.
    let p = with_k(1, "'gender', 'race'", "sensitive='outcome'\n");
    match deid_bytes(
        &p,
        &key(),
        &mut Crosswalk::new(),
        Format::Csv,
        csv.as_bytes(),
    ) {
        Err(DeidError::QuasiIdentifiersMissing { missing, .. }) => {
            assert_eq!(missing, ["outcome"]);
        }
        other => panic!("{:?}", other.map(|(_, r)| r.risk)),
    }
    // In a data set, by its position, and before any output.
    let p = with_k(2, "'gender', 'race', 'ethnicity'", "");
    let visits = visits_csv();
    let files = [
        DatasetFile {
            format: Format::Csv,
            bytes: visits.as_bytes(),
        },
        DatasetFile {
            format: Format::Csv,
            bytes: csv.as_bytes(),
        },
    ];
    match deid_dataset(&p, &key(), &mut Crosswalk::new(), &files) {
        Err(DeidError::QuasiIdentifiersMissing { table, .. }) => assert_eq!(table, "files[1]"),
        other => panic!("{:?}", other.map(|(_, r)| r.risk)),
    }
}

#[test]
fn a_data_set_with_no_table_of_people_is_an_error_unless_fhir_or_hl7_describes_them() {
    let p = with_k(2, "'gender', 'race', 'age'", "");
    let visits = visits_csv();
    let csv_only = [DatasetFile {
        format: Format::Csv,
        bytes: visits.as_bytes(),
    }];
    let e = deid_dataset(&p, &key(), &mut Crosswalk::new(), &csv_only).unwrap_err();
    assert!(
        matches!(&e, DeidError::NoPersonTable { quasi_identifiers } if quasi_identifiers.len() == 3),
        "{e}"
    );
    assert!(e.to_string().contains("`gender`, `race`, `age`"), "{e}");
    // With the patients in FHIR, the visits table is just not a table of people.
    let fhir = bundle(&[patient(
        A,
        "MRN-1",
        "1970-05-02",
        "female",
        "02138",
        "White",
    )]);
    let mixed = [
        csv_only[0],
        DatasetFile {
            format: Format::FhirJson,
            bytes: &fhir,
        },
    ];
    let (_, report) = deid_dataset(&p, &key(), &mut Crosswalk::new(), &mixed).unwrap();
    assert_eq!(report.risk.len(), 1);
    assert_eq!(risk(&report, "fhir:Patient").records, 1);
    // Without `[k_anonymity]`, no table needs anything.
    let (_, report) = deid_dataset(
        &builtin("safe-harbor"),
        &key(),
        &mut Crosswalk::new(),
        &csv_only,
    )
    .unwrap();
    assert!(report.risk.is_empty());
}
