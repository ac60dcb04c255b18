#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Multi-table CSV exports de-identified as one data set (issue 29): a Synthea CSV export
//! (derived from the shared Synthea bundles, see `support/synthea_csv.rs`; skipped when the
//! shared data is absent) passes Safe Harbor with zero leaks, every key still joins, no input
//! identifier is left anywhere, every date is a year and no row is lost; the same through the
//! gate's API; keys agree with the FHIR export's ids; columns no mapping names are recognised by
//! content; OMOP CDM tables keep their integer keys joined.

#[path = "support/synthea_csv.rs"]
mod synthea_csv;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use airlock_deid::{
    Crosswalk, DatasetFile, DeidError, DeidKeys, Format, Profile, RunReport, deid_bytes,
    deid_dataset, deid_paths,
};
use synthea_csv::{Csv, Truth, finer_than_year};

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

/// Every join of the input holds in the output, row for row.
fn assert_joins(input: &BTreeMap<String, Csv>, output: &BTreeMap<String, Csv>) -> usize {
    synthea_csv::check_joins(input, output).unwrap_or_else(|e| panic!("{e}"))
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

/// The checks the issue sets, on one de-identified export.
fn assert_deidentified(
    truth: &Truth,
    input: &BTreeMap<String, Csv>,
    output: &BTreeMap<String, Csv>,
    report: &RunReport,
) {
    assert!(report.leak_check.passed, "{:?}", report.leak_check.hits);
    assert!(report.leak_check.hits.is_empty());
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    // Rows preserved, table by table.
    for (t, n) in &truth.rows {
        assert_eq!(output[t].rows.len(), *n, "{t}: rows");
    }
    let links = assert_joins(input, output);
    assert!(links > 5000, "{links} links");
    // No input identifier anywhere in the output.
    let all: String = output
        .values()
        .flat_map(|c| c.header.iter().chain(c.rows.iter().flatten()))
        .map(|v| format!("{v}\n"))
        .collect();
    let left = synthea_csv::identifiers_in(truth, &all);
    assert!(
        left.is_empty(),
        "identifiers left in the output, of kinds {left:?}"
    );
    // Every date, in every table, is a year at most.
    for (t, c) in output {
        for (j, r) in c.rows.iter().enumerate() {
            for (i, v) in r.iter().enumerate() {
                assert!(
                    !finer_than_year(v),
                    "{t}.{} row {j}: a date finer than a year",
                    c.header[i]
                );
            }
        }
    }
    // The columns Safe Harbor removes are gone.
    let patients = &output["patients"];
    for gone in [
        "SSN",
        "DRIVERS",
        "PASSPORT",
        "PREFIX",
        "FIRST",
        "MIDDLE",
        "LAST",
        "SUFFIX",
        "MAIDEN",
        "BIRTHPLACE",
        "ADDRESS",
        "LAT",
        "LON",
    ] {
        assert!(patients.col(gone).is_none(), "patients.{gone} kept");
    }
    for zip in patients.values("ZIP") {
        assert_eq!(zip.len(), 3, "zip3");
    }
    for t in ["patients", "organizations", "providers"] {
        for v in output[t].values("CITY") {
            assert!(v.is_empty(), "{t}.CITY kept");
        }
    }
}

fn derived_export(into: &Path) -> Option<(PathBuf, Truth)> {
    let data = data_dir()?;
    let dir = into.join("synthea-csv");
    let truth = synthea_csv::derive(&data.join("fhir/synthea"), &dir);
    Some((dir, truth))
}

#[test]
fn synthea_csv_export_is_one_data_set_in_file_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir, truth)) = derived_export(tmp.path()) else {
        return;
    };
    assert_eq!(truth.rows.len(), 19);
    let input = read_tables(&dir);
    let out = tmp.path().join("out");
    let mut cw = Crosswalk::new();
    let report = deid_paths(
        &profile("safe-harbor"),
        &key(),
        &mut cw,
        std::slice::from_ref(&dir),
        &out,
    )
    .unwrap_or_else(|e| {
        if let DeidError::LeakCheckFailed { report, .. } = &e {
            for h in &report.leak_check.hits {
                eprintln!("leak: {} {} {} {}", h.file, h.record, h.path, h.kind);
            }
        }
        panic!("{e}")
    });
    println!("{}", report.summary());
    let output = read_tables(&out.join("synthea-csv"));
    assert_deidentified(&truth, &input, &output, &report);
    // Every file was recognised as its Synthea table, from its header.
    for f in &report.files {
        let name = Path::new(&f.input).file_stem().unwrap().to_str().unwrap();
        assert_eq!(f.table.as_deref(), Some(format!("synthea/{name}").as_str()));
    }
    println!(
        "AFTER (file mode): {} files, {} rows, leak hits {}, identifying values checked {}",
        report.files.len(),
        report.records_out,
        report.leak_check.hits.len(),
        report.leak_check.values_checked
    );
}

#[test]
fn synthea_csv_export_through_the_gate_api_with_fhir_consistent_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir, truth)) = derived_export(tmp.path()) else {
        return;
    };
    let data = data_dir().unwrap();
    let input = read_tables(&dir);
    let bytes: Vec<Vec<u8>> = synthea_csv::TABLES
        .iter()
        .map(|t| std::fs::read(dir.join(format!("{t}.csv"))).unwrap())
        .collect();
    let files: Vec<DatasetFile<'_>> = bytes
        .iter()
        .map(|b| DatasetFile {
            format: Format::Csv,
            bytes: b,
        })
        .collect();
    let p = profile("safe-harbor");
    let mut cw = Crosswalk::new();
    let (outputs, report) = deid_dataset(&p, &key(), &mut cw, &files).unwrap();
    let output: BTreeMap<String, Csv> = synthea_csv::TABLES
        .iter()
        .zip(&outputs)
        .map(|(t, o)| {
            assert_eq!(o.table.as_deref(), Some(format!("synthea/{t}").as_str()));
            (
                (*t).to_owned(),
                Csv::parse(std::str::from_utf8(&o.bytes).unwrap()),
            )
        })
        .collect();
    assert_deidentified(&truth, &input, &output, &report);
    // Files are named by index only.
    assert!(report.files.iter().all(|f| f.input.starts_with("files[")));
    // One patient is one patient across formats: the patient's FHIR bundle, through the same
    // crosswalk, gets the Patient.id surrogate the CSV gave patients.Id.
    let bundle = std::fs::read_dir(data.join("fhir/synthea"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Antonia30")
        })
        .unwrap();
    let (fhir_out, _) = deid_bytes(
        &p,
        &key(),
        &mut cw,
        Format::FhirJson,
        &std::fs::read(bundle).unwrap(),
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&fhir_out).unwrap();
    let patient_id = doc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(
        output["patients"].values("Id").contains(&patient_id),
        "the FHIR Patient.id surrogate is not the CSV's"
    );
    // A second run with the saved crosswalk gives every key the same surrogate.
    let (again, _) = deid_dataset(&p, &key(), &mut cw, &files).unwrap();
    let again = Csv::parse(std::str::from_utf8(&again[1].bytes).unwrap());
    assert_eq!(again.values("Id"), output["encounters"].values("Id"));
}

#[test]
fn synthea_csv_expert_determination_shifts_each_patient_alike_in_every_table() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir, _)) = derived_export(tmp.path()) else {
        return;
    };
    let input = read_tables(&dir);
    let out = tmp.path().join("out");
    let report = deid_paths(
        &profile("expert-determination"),
        &key(),
        &mut Crosswalk::new(),
        std::slice::from_ref(&dir),
        &out,
    )
    .unwrap();
    let output = read_tables(&out.join("synthea-csv"));
    assert_joins(&input, &output);
    let day = |v: &str| {
        chrono::NaiveDate::parse_from_str(&v[..10], "%Y-%m-%d")
            .unwrap()
            .signed_duration_since(chrono::NaiveDate::default())
            .num_days()
    };
    // Each patient's offset, from their first encounter; every encounter and condition START
    // and every death date of that patient moved by the same number of days.
    let mut offset: HashMap<String, i64> = HashMap::new();
    let (ei, eo) = (&input["encounters"], &output["encounters"]);
    for (a, b) in ei.rows.iter().zip(&eo.rows) {
        let o = day(&b[eo.col("START").unwrap()]) - day(&a[ei.col("START").unwrap()]);
        assert_ne!(o, 0);
        let first = *offset
            .entry(b[eo.col("PATIENT").unwrap()].clone())
            .or_insert(o);
        assert_eq!(o, first, "one offset per patient");
    }
    let (ci, co) = (&input["conditions"], &output["conditions"]);
    for (a, b) in ci.rows.iter().zip(&co.rows) {
        let o = day(&b[co.col("START").unwrap()]) - day(&a[ci.col("START").unwrap()]);
        assert_eq!(Some(&o), offset.get(&b[co.col("PATIENT").unwrap()]));
    }
    let (pi, po) = (&input["patients"], &output["patients"]);
    let mut deaths = 0;
    for (a, b) in pi.rows.iter().zip(&po.rows) {
        let (x, y) = (
            &a[pi.col("DEATHDATE").unwrap()],
            &b[po.col("DEATHDATE").unwrap()],
        );
        if x.is_empty() {
            continue;
        }
        assert_eq!(
            Some(&(day(y) - day(x))),
            offset.get(&b[po.col("Id").unwrap()])
        );
        deaths += 1;
    }
    println!("{deaths} death dates checked");
    // The profile's k-anonymity applies to the table of people (and to no other table):
    // `age` is found as the birth year of BIRTHDATE, `gender` and `race` by name, and eight
    // patients reach k = 5 only with their quasi-identifiers generalised.
    assert_eq!(report.risk.len(), 1, "{:?}", report.risk);
    let (table, r) = &report.risk[0];
    assert!(table.ends_with("patients.csv"), "{table}");
    println!("{}", r.summary());
    assert_eq!(r.records + r.suppressed, 8);
    assert!(r.k >= 5 || r.records == 0, "k = {}", r.k);
    assert!(r.generalisation["age"] > 0);
    for v in po.values("BIRTHDATE") {
        assert!(v.len() < 10, "a generalised birth date kept its day");
    }
    assert!(report.files.iter().all(|f| f.table.is_some()));
}

#[test]
fn columns_no_mapping_names_are_recognised_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir, truth)) = derived_export(tmp.path()) else {
        return;
    };
    let licences: Vec<String> = truth
        .identifiers
        .iter()
        .filter(|(k, _)| k == "licence")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(licences.len(), 8);
    // An extra column in a known table, under a name no rule, mapping or heuristic knows; and
    // passport numbers where the mapping expects an income.
    let patients = Csv::parse(&std::fs::read_to_string(dir.join("patients.csv")).unwrap());
    let drivers = patients.col("DRIVERS").unwrap();
    let passport = patients.col("PASSPORT").unwrap();
    let income = patients.col("INCOME").unwrap();
    let mut text = format!("{},X_DOC_7\n", patients.header.join(","));
    for r in &patients.rows {
        let mut r = r.clone();
        r.push(r[drivers].clone());
        r[income] = r[passport].clone();
        synthea_csv::write_row(&mut text, &r);
    }
    // A table no mapping knows: a key, a licence, coordinates, a street, a place, a date.
    let mut extra = String::from("ref,doc,y,x,where,born_in,seen,score\n");
    for (i, r) in patients.rows.iter().enumerate() {
        synthea_csv::write_row(
            &mut extra,
            &[
                r[patients.col("Id").unwrap()].clone(),
                licences[i % licences.len()].clone(),
                r[patients.col("LAT").unwrap()].clone(),
                r[patients.col("LON").unwrap()].clone(),
                r[patients.col("ADDRESS").unwrap()].clone(),
                r[patients.col("BIRTHPLACE").unwrap()].clone(),
                "2019-02-17".to_owned(),
                format!("{}", 10 + i),
            ],
        );
    }
    let files = [
        DatasetFile {
            format: Format::Csv,
            bytes: text.as_bytes(),
        },
        DatasetFile {
            format: Format::Csv,
            bytes: extra.as_bytes(),
        },
    ];
    let (outputs, report) = deid_dataset(
        &profile("safe-harbor"),
        &key(),
        &mut Crosswalk::new(),
        &files,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = Csv::parse(std::str::from_utf8(&outputs[0].bytes).unwrap());
    let x = Csv::parse(std::str::from_utf8(&outputs[1].bytes).unwrap());
    assert!(p.col("X_DOC_7").is_none(), "{:?}", p.header);
    assert!(p.col("INCOME").is_none(), "{:?}", p.header);
    assert_eq!(outputs[0].table.as_deref(), Some("synthea/patients"));
    assert_eq!(x.header, ["ref", "seen", "score"]);
    assert_eq!(outputs[1].table, None);
    // The key was recognised as one and joins the patients' surrogates.
    let ids = p.values("Id");
    for v in x.values("ref") {
        assert!(ids.contains(&v));
    }
    assert!(x.values("seen").iter().all(|v| v == "2019"));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&outputs[0].bytes),
        String::from_utf8_lossy(&outputs[1].bytes)
    );
    for (kind, v) in &truth.identifiers {
        if kind == "licence" || kind == "passport" {
            assert!(!all.contains(v.as_str()), "a {kind} number is left");
        }
    }
    // Warnings name the columns and what they hold, never a value.
    let w = report.warnings.join("\n");
    for needle in [
        "`X_DOC_7` has no rule and holds licence or passport numbers",
        "`INCOME` (synthea/patients) holds licence or passport numbers: removed",
        "`doc` has no rule and holds licence or passport numbers",
        "`ref` has no rule and holds record keys",
        "`y` has no rule and holds coordinates",
        "`where` has no rule and holds street addresses",
        "`born_in` has no rule and holds place names",
    ] {
        assert!(w.contains(needle), "{needle}\n{w}");
    }
    for l in &licences {
        assert!(!w.contains(l.as_str()));
    }
}

#[test]
fn omop_tables_keep_integer_keys_joined_and_follow_safe_harbor() {
    let person = "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,race_concept_id,ethnicity_concept_id,location_id,provider_id,care_site_id,person_source_value,gender_source_value,gender_source_concept_id,race_source_value,race_source_concept_id,ethnicity_source_value,ethnicity_source_concept_id\n\
1,8507,1930,4,12,1930-04-12 00:00:00,8527,38003564,10,,,MRN-00123456,M,0,white,0,nonhispanic,0\n\
2,8532,1988,11,3,1988-11-03 00:00:00,8516,38003564,11,,,MRN-00654321,F,0,black,0,nonhispanic,0\n";
    let visits = "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,visit_end_date,visit_end_datetime,visit_type_concept_id,provider_id,care_site_id,visit_source_value,visit_source_concept_id,admitted_from_concept_id,admitted_from_source_value,discharged_to_concept_id,discharged_to_source_value,preceding_visit_occurrence_id\n\
100,1,9202,2019-02-17,2019-02-17 05:07:38,2019-02-17,2019-02-17 05:37:38,44818517,,,OP,0,0,,0,,\n\
101,2,9201,2020-06-01,2020-06-01 10:00:00,2020-06-04,2020-06-04 12:00:00,44818517,,,IP,0,0,,0,,100\n";
    let conditions = "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_start_datetime,condition_end_date,condition_end_datetime,condition_type_concept_id,condition_status_concept_id,stop_reason,provider_id,visit_occurrence_id,visit_detail_id,condition_source_value,condition_source_concept_id,condition_status_source_value\n\
1000,1,320128,2019-02-17,2019-02-17 05:07:38,,,32020,0,,,100,,59621000,0,\n\
1001,2,201826,2020-06-01,2020-06-01 10:00:00,,,32020,0,,,101,,44054006,0,\n";
    let location = "location_id,address_1,address_2,city,state,zip,county,location_source_value,country_concept_id,country_source_value,latitude,longitude\n\
10,858 Sawayn Parade Unit 61,,Redmond,WA,98053,King,858 Sawayn Parade Unit 61 Redmond WA,42046186,US,47.744394225282534,-122.26585022525728\n\
11,913 Haag Park,,Bellevue,WA,98008,King,913 Haag Park Bellevue WA,42046186,US,47.74830870572449,-122.21726495728906\n";
    let files: Vec<DatasetFile<'_>> = [person, visits, conditions, location]
        .iter()
        .map(|t| DatasetFile {
            format: Format::Csv,
            bytes: t.as_bytes(),
        })
        .collect();
    let (out, report) = deid_dataset(
        &profile("safe-harbor"),
        &key(),
        &mut Crosswalk::new(),
        &files,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tables: Vec<Option<&str>> = out.iter().map(|o| o.table.as_deref()).collect();
    assert_eq!(
        tables,
        [
            Some("omop-cdm/person"),
            Some("omop-cdm/visit_occurrence"),
            Some("omop-cdm/condition_occurrence"),
            Some("omop-cdm/location")
        ]
    );
    let t: Vec<Csv> = out
        .iter()
        .map(|o| Csv::parse(std::str::from_utf8(&o.bytes).unwrap()))
        .collect();
    let (p, v, c, l) = (&t[0], &t[1], &t[2], &t[3]);
    // Integer keys stay integers, and join.
    let persons = p.values("person_id");
    assert!(
        persons
            .iter()
            .all(|x| x.parse::<u64>().is_ok() && x != "1" && x != "2")
    );
    assert_eq!(v.values("person_id"), persons);
    assert_eq!(c.values("person_id"), persons);
    assert_eq!(
        c.values("visit_occurrence_id"),
        v.values("visit_occurrence_id")
    );
    assert_eq!(
        v.values("preceding_visit_occurrence_id")[1],
        v.values("visit_occurrence_id")[0]
    );
    assert_eq!(p.values("location_id"), l.values("location_id"));
    // Safe Harbor: a birth year over 89 aggregated, month, day and time gone, dates a year.
    assert_eq!(p.values("year_of_birth"), ["1936", "1988"]);
    assert!(p.col("month_of_birth").is_none() && p.col("day_of_birth").is_none());
    assert_eq!(p.values("birth_datetime"), ["1936", "1988"]);
    assert_eq!(v.values("visit_start_datetime"), ["2019", "2020"]);
    assert!(
        !p.values("person_source_value")
            .iter()
            .any(|x| x.contains("MRN"))
    );
    for gone in [
        "address_1",
        "location_source_value",
        "latitude",
        "longitude",
    ] {
        assert!(l.col(gone).is_none(), "{gone}");
    }
    assert_eq!(l.values("zip"), ["980", "980"]);
    assert_eq!(l.values("city"), ["", ""]);
    assert!(report.leak_check.passed);
}

#[test]
fn synthea_csv_limited_data_set_keeps_dates_and_towns_and_removes_direct_identifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dir, _)) = derived_export(tmp.path()) else {
        return;
    };
    let input = read_tables(&dir);
    let out = tmp.path().join("out");
    let report = deid_paths(
        &profile("limited-data-set"),
        &key(),
        &mut Crosswalk::new(),
        std::slice::from_ref(&dir),
        &out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.leak_check.passed);
    let output = read_tables(&out.join("synthea-csv"));
    assert_joins(&input, &output);
    let (pi, po) = (&input["patients"], &output["patients"]);
    // 164.514(e)(2): dates, town or city, state and zip may stay; the rest goes.
    for kept in ["BIRTHDATE", "CITY", "ZIP", "BIRTHPLACE"] {
        assert_eq!(po.values(kept), pi.values(kept), "{kept}");
    }
    for gone in [
        "SSN", "DRIVERS", "PASSPORT", "FIRST", "LAST", "ADDRESS", "LAT", "LON",
    ] {
        assert!(po.col(gone).is_none(), "{gone}");
    }
}
