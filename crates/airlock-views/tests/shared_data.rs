#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: it panics to fail and prints what it skips"
)]
//! Views of the kind Airlock ships (demographics, encounters, conditions, observations long and
//! wide, medication requests) over the shared Synthea bundles (skipped with a message when
//! `../shared/data` is absent): every resource of the view's type gives its row, nothing fails,
//! and `urn:uuid` references join to patient keys.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use airlock_views::{View, ViewError, read_resources, run_each};
use serde_json::{Value, json};

fn synthea_dir() -> Option<PathBuf> {
    let p = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/fhir/synthea"
    ));
    if p.is_dir() {
        Some(p.to_path_buf())
    } else {
        eprintln!(
            "skipping: shared Synthea bundles not found at {}",
            p.display()
        );
        None
    }
}

fn bundles(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// Rows of `view` over all bundles, as JSON objects, and the number of resources of its type.
fn run_view(view: &Value, texts: &[String]) -> (Vec<serde_json::Map<String, Value>>, usize) {
    let view = View::from_json(view).unwrap();
    let mut rows = Vec::new();
    let mut matched = 0;
    for text in texts {
        let summary = run_each(&view, read_resources(text), |row| {
            rows.push(view.row_object(row));
            Ok::<(), ViewError>(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", view.name().unwrap_or("view")));
        matched += summary.matched;
    }
    (rows, matched)
}

#[test]
fn ml_views_over_synthea() {
    let Some(dir) = synthea_dir() else { return };
    let texts = bundles(&dir);

    let (patients, n) = run_view(
        &json!({"name": "patient_demographics", "resource": "Patient", "select": [{"column": [
            {"name": "patient_id", "path": "getResourceKey()", "type": "id"},
            {"name": "gender", "path": "gender", "type": "code"},
            {"name": "birth_date", "path": "birthDate", "type": "date"},
            {"name": "deceased", "path": "deceased.exists() and deceased != false", "type": "boolean"},
            {"name": "race", "path": "extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension('ombCategory').value.ofType(Coding).code.first()", "type": "code"},
            {"name": "ethnicity", "path": "extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity').extension('ombCategory').value.ofType(Coding).code.first()", "type": "code"},
            {"name": "marital_status", "path": "maritalStatus.coding.code.first()", "type": "code"},
            {"name": "state", "path": "address.first().state", "type": "string"}]}]}),
        &texts,
    );
    assert_eq!(patients.len(), n);
    assert_eq!(n, 8);
    assert!(
        patients
            .iter()
            .all(|p| p["race"].is_string() && p["gender"].is_string())
    );
    let keys: HashSet<String> = patients
        .iter()
        .map(|p| p["patient_id"].as_str().unwrap().to_owned())
        .collect();

    let (encounters, n) = run_view(
        &json!({"name": "encounters", "resource": "Encounter", "select": [{"column": [
            {"name": "encounter_id", "path": "getResourceKey()", "type": "id"},
            {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"},
            {"name": "class", "path": "class.code", "type": "code"},
            {"name": "type", "path": "type.first().coding.first().code", "type": "code"},
            {"name": "start", "path": "period.start", "type": "dateTime"},
            {"name": "end", "path": "period.end", "type": "dateTime"},
            {"name": "same_day", "path": "period.end.toString().substring(0, 10) = period.start.toString().substring(0, 10)", "type": "boolean"}]}]}),
        &texts,
    );
    assert_eq!(encounters.len(), n);
    assert!(n > 400);
    assert!(
        encounters
            .iter()
            .all(|e| keys.contains(e["patient_id"].as_str().unwrap()))
    );

    let (conditions, n) = run_view(
        &json!({"name": "conditions", "resource": "Condition", "select": [{"column": [
            {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"},
            {"name": "encounter_id", "path": "encounter.getReferenceKey(Encounter)", "type": "id"},
            {"name": "code", "path": "code.coding.where(system = 'http://snomed.info/sct').code.first()", "type": "code"},
            {"name": "onset", "path": "onset.ofType(dateTime)", "type": "dateTime"},
            {"name": "active", "path": "clinicalStatus.coding.exists(code = 'active')", "type": "boolean"}]}]}),
        &texts,
    );
    assert_eq!(conditions.len(), n);
    assert!(
        conditions
            .iter()
            .all(|c| c["code"].is_string() && c["onset"].is_string())
    );

    // Long: one row per observation value, panels unrolled through `component`.
    let (long, n) = run_view(
        &json!({"name": "observations_long", "resource": "Observation",
            "where": [{"path": "status = 'final'"}],
            "select": [
                {"column": [
                    {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                    {"name": "effective", "path": "effective.ofType(dateTime)", "type": "dateTime"},
                    {"name": "category", "path": "category.coding.code.first()", "type": "code"}]},
                {"unionAll": [
                    {"column": [
                        {"name": "loinc", "path": "code.coding.where(system = 'http://loinc.org').code.first()", "type": "code"},
                        {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                        {"name": "unit", "path": "value.ofType(Quantity).code", "type": "code"}]},
                    {"forEach": "component", "column": [
                        {"name": "loinc", "path": "code.coding.where(system = 'http://loinc.org').code.first()", "type": "code"},
                        {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                        {"name": "unit", "path": "value.ofType(Quantity).code", "type": "code"}]}]}]}),
        &texts,
    );
    assert!(long.len() >= n && n > 1000);
    assert!(
        long.iter()
            .all(|o| keys.contains(o["patient_id"].as_str().unwrap()))
    );
    assert!(long.iter().filter(|o| o["value"].is_number()).count() > 1000);

    // Wide: blood pressure, one row per panel.
    let (bp, _) = run_view(
        &json!({"name": "blood_pressure", "resource": "Observation",
            "constant": [{"name": "systolic", "valueCode": "8480-6"}, {"name": "diastolic", "valueCode": "8462-4"}],
            "where": [{"path": "code.coding.exists(system = 'http://loinc.org' and code = '85354-9')"}],
            "select": [{"column": [
                {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                {"name": "systolic", "path": "component.where(code.coding.exists(code = %systolic)).value.ofType(Quantity).value.first()", "type": "decimal"},
                {"name": "diastolic", "path": "component.where(code.coding.exists(code = %diastolic)).value.ofType(Quantity).value.first()", "type": "decimal"}]}]}),
        &texts,
    );
    assert!(!bp.is_empty());
    assert!(
        bp.iter()
            .all(|r| r["systolic"].as_f64().unwrap() > r["diastolic"].as_f64().unwrap())
    );

    let (meds, n) = run_view(
        &json!({"name": "medication_requests", "resource": "MedicationRequest", "select": [{"column": [
            {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"},
            {"name": "rxnorm", "path": "medication.ofType(CodeableConcept).coding.code.first()", "type": "code"},
            {"name": "authored", "path": "authoredOn", "type": "dateTime"},
            {"name": "status", "path": "status", "type": "code"}]}]}),
        &texts,
    );
    assert_eq!(meds.len(), n);
    assert!(meds.iter().all(|m| m["rxnorm"].is_string()));
}
