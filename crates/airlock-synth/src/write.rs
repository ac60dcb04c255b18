//! Writers: FHIR bundles and NDJSON, CSV, HL7 v2, ground truth and the annotated notes.
//!
//! Every file is written to a temporary name in its directory and renamed into place, so a
//! crash never leaves a half-written file under the final name. Files are not fsynced one by one:
//! the output is regenerable from the seed, and a few thousand fsyncs would dominate the run.
//! File names carry the patient's position in the cohort, never an identifier.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::SynthError;
use crate::fhir::{self, RefStyle};
use crate::hl7;
use crate::model::{Cohort, SynthPatient};

/// What [`write_all`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct GenSummary {
    /// Patients.
    pub patients: usize,
    /// Hospital stays (= CSV rows = HL7 messages).
    pub encounters: usize,
    /// Notes.
    pub notes: usize,
    /// FHIR resources in the bundles.
    pub resources: usize,
    /// Stays labelled as followed by a 30-day readmission.
    pub readmissions_30d: usize,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    let tmp = tmp_name(path);
    fs::write(&tmp, bytes).map_err(|source| SynthError::Io {
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, path).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn create_dir(dir: &Path) -> Result<(), SynthError> {
    fs::create_dir_all(dir).map_err(|source| SynthError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn to_json(v: &Value, what: &'static str, index: usize) -> Result<Vec<u8>, SynthError> {
    serde_json::to_vec(v).map_err(|source| SynthError::Json {
        what,
        index,
        source,
    })
}

/// The bundle file name of a patient: `patient-000042.json`.
pub fn bundle_file_name(p: &SynthPatient) -> String {
    format!("patient-{:06}.json", p.index)
}

/// Writes one FHIR R4 transaction bundle per patient into `dir` (created if missing) and
/// returns the paths in cohort order. Files are compact JSON named `patient-NNNNNN.json`.
pub fn write_fhir_bundles(cohort: &Cohort, dir: &Path) -> Result<Vec<PathBuf>, SynthError> {
    create_dir(dir)?;
    let mut paths = Vec::with_capacity(cohort.patients.len());
    for p in &cohort.patients {
        let path = dir.join(bundle_file_name(p));
        let bytes = to_json(&fhir::bundle(p), "bundle", p.index)?;
        write_atomic(&path, &bytes)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes the cohort as a FHIR bulk export into `dir`: one `<ResourceType>.ndjson` file per
/// resource type present (Patient, Organization, Practitioner, Encounter, Condition,
/// Observation, MedicationRequest, DocumentReference), one resource per line, with relative
/// `Type/id` references. An Organization shared by several patients appears once. Returns the
/// paths, sorted by name.
pub fn write_fhir_ndjson(cohort: &Cohort, dir: &Path) -> Result<Vec<PathBuf>, SynthError> {
    create_dir(dir)?;
    let mut files: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut seen_orgs = std::collections::BTreeSet::new();
    for p in &cohort.patients {
        for r in fhir::resources(p, RefStyle::Relative) {
            let ty = fhir::type_of(&r).to_owned();
            if ty == "Organization" && !seen_orgs.insert(p.facility.id.clone()) {
                continue;
            }
            let mut line = to_json(&r, "ndjson resource", p.index)?;
            line.push(b'\n');
            files.entry(ty).or_default().extend_from_slice(&line);
        }
    }
    let mut paths = Vec::with_capacity(files.len());
    for (ty, bytes) in files {
        let path = dir.join(format!("{ty}.ndjson"));
        write_atomic(&path, &bytes)?;
        paths.push(path);
    }
    Ok(paths)
}

/// The CSV header of [`write_csv`].
pub const CSV_COLUMNS: [&str; 25] = [
    "mrn",
    "given",
    "family",
    "ssn",
    "birth_date",
    "age",
    "sex",
    "race",
    "ethnicity",
    "street",
    "city",
    "state",
    "zip",
    "phone",
    "email",
    "admit_date",
    "discharge_date",
    "length_of_stay",
    "primary_icd10",
    "secondary_icd10",
    "num_medications",
    "num_lab_procedures",
    "prior_admissions_12mo",
    "readmitted_30d",
    "note",
];

/// Writes one CSV row per hospital stay to `path` (columns: [`CSV_COLUMNS`]). Dates are
/// `YYYY-MM-DD`; `readmitted_30d` is `0` or `1`; `note` is the stay's first note.
pub fn write_csv(cohort: &Cohort, path: &Path) -> Result<(), SynthError> {
    let mut buf = Vec::with_capacity(cohort.patients.len() * 3 * 1024);
    {
        let mut w = csv::Writer::from_writer(&mut buf);
        let csv_err = |source| SynthError::Csv {
            path: path.to_path_buf(),
            source,
        };
        w.write_record(CSV_COLUMNS).map_err(csv_err)?;
        for p in &cohort.patients {
            let id = &p.identity;
            for e in &p.encounters {
                let row = [
                    id.mrn.clone(),
                    id.given.clone(),
                    id.family.clone(),
                    id.ssn.clone(),
                    id.birth_date.format("%Y-%m-%d").to_string(),
                    p.age_on(e.admit.date()).to_string(),
                    p.sex.code().to_owned(),
                    p.race.display().to_owned(),
                    p.ethnicity.display().to_owned(),
                    id.street.clone(),
                    id.city.clone(),
                    id.state.to_owned(),
                    id.zip.clone(),
                    id.phone.clone(),
                    id.email.clone(),
                    e.admit.format("%Y-%m-%d").to_string(),
                    e.discharge.format("%Y-%m-%d").to_string(),
                    e.length_of_stay().to_string(),
                    e.primary.icd10.to_owned(),
                    e.secondary
                        .first()
                        .map(|c| c.icd10.to_owned())
                        .unwrap_or_default(),
                    e.medications.len().to_string(),
                    e.num_lab_procedures().to_string(),
                    e.prior_admissions_12mo.to_string(),
                    u8::from(e.readmitted_30d).to_string(),
                    e.notes.first().map(|n| n.text.clone()).unwrap_or_default(),
                ];
                w.write_record(&row).map_err(csv_err)?;
            }
        }
        w.flush().map_err(|source| SynthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    write_atomic(path, &buf)
}

/// Writes one `ADT^A01` message per hospital stay into `dir`, one message per file named
/// `patient-NNNNNN-EE.hl7` (patient position, stay number from 01). Returns the paths.
pub fn write_hl7_adt(cohort: &Cohort, dir: &Path) -> Result<Vec<PathBuf>, SynthError> {
    create_dir(dir)?;
    let mut paths = Vec::new();
    for p in &cohort.patients {
        for (i, e) in p.encounters.iter().enumerate() {
            let path = dir.join(format!("patient-{:06}-{:02}.hl7", p.index, i + 1));
            write_atomic(&path, hl7::adt_a01(p, i, e).as_bytes())?;
            paths.push(path);
        }
    }
    Ok(paths)
}

/// One line of `truth.jsonl`.
#[derive(Serialize)]
struct TruthLine<'a> {
    patient_index: usize,
    patient_id: &'a str,
    bundle: String,
    identifiers: Vec<TruthId>,
}

#[derive(Serialize)]
struct TruthId {
    kind: &'static str,
    value: String,
}

/// Writes `truth.jsonl`: one line per patient, `{"patient_index", "patient_id", "bundle",
/// "identifiers": [{"kind", "value"}]}` with every identifier of [`SynthPatient::identifiers`].
///
/// This file is **identified (synthetic) data**: it exists so that leak tests can check that
/// none of these values survives de-identification. Treat it like PHI anyway (keep it out of
/// de-identified outputs and development zones).
pub fn write_truth(cohort: &Cohort, path: &Path) -> Result<(), SynthError> {
    let mut buf = Vec::new();
    for p in &cohort.patients {
        let line = TruthLine {
            patient_index: p.index,
            patient_id: &p.id,
            bundle: bundle_file_name(p),
            identifiers: p
                .identifiers()
                .into_iter()
                .map(|(k, value)| TruthId {
                    kind: k.as_str(),
                    value,
                })
                .collect(),
        };
        serde_json::to_writer(&mut buf, &line).map_err(|source| SynthError::Json {
            what: "truth line",
            index: p.index,
            source,
        })?;
        buf.push(b'\n');
    }
    write_atomic(path, &buf)
}

/// One line of `notes.jsonl`, the shape `airlock deid eval --format jsonl` reads.
#[derive(Serialize)]
struct NoteLine<'a> {
    patient_index: usize,
    encounter: usize,
    note_id: &'a str,
    kind: crate::model::NoteKind,
    text: &'a str,
    phi: Vec<NoteSpan>,
}

#[derive(Serialize)]
struct NoteSpan {
    start: usize,
    end: usize,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Writes `notes.jsonl`: one line per note, `{"patient_index", "encounter", "note_id", "kind",
/// "text", "phi": [{"start", "end", "type"}]}`, with **character** (Unicode scalar) offsets:
/// a gold-annotated corpus for the text de-identification evaluator. Identified synthetic data.
pub fn write_notes_jsonl(cohort: &Cohort, path: &Path) -> Result<(), SynthError> {
    let mut out = BufWriter::new(Vec::new());
    for p in &cohort.patients {
        for (ei, e) in p.encounters.iter().enumerate() {
            for n in &e.notes {
                let char_at = |byte: usize| n.text.get(..byte).map_or(0, |s| s.chars().count());
                let line = NoteLine {
                    patient_index: p.index,
                    encounter: ei,
                    note_id: &n.id,
                    kind: n.kind,
                    text: &n.text,
                    phi: n
                        .phi
                        .iter()
                        .map(|s| NoteSpan {
                            start: char_at(s.start),
                            end: char_at(s.end),
                            kind: s.label,
                        })
                        .collect(),
                };
                serde_json::to_writer(&mut out, &line).map_err(|source| SynthError::Json {
                    what: "note line",
                    index: p.index,
                    source,
                })?;
                out.write_all(b"\n").map_err(|source| SynthError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
        }
    }
    let buf = out.into_inner().map_err(|e| SynthError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    write_atomic(path, &buf)
}

const README: &str = "\
This directory was written by airlock-synth. Everything in it is SYNTHETIC but IDENTIFIED:
names, addresses, SSNs, MRNs, phone numbers and dates are made up, shaped like real PHI, and
meant to be handled as if they were real.

fhir/        one FHIR R4 transaction Bundle per patient (patient-NNNNNN.json)
ndjson/      the same resources as a FHIR bulk export (<ResourceType>.ndjson)
hl7/         one HL7 v2.5.1 ADT^A01 message per hospital stay (patient-NNNNNN-EE.hl7)
cohort.csv   one row per hospital stay, with a 30-day readmission label and the first note
truth.jsonl  every patient's identifiers, for leak tests
notes.jsonl  every note with gold PHI spans (character offsets), for the text evaluator
";

/// Writes everything into `dir` (created if missing): `fhir/`, `ndjson/`, `hl7/`,
/// `cohort.csv`, `truth.jsonl`, `notes.jsonl` and a `README.txt` saying the data are synthetic
/// but identified.
pub fn write_all(cohort: &Cohort, dir: &Path) -> Result<GenSummary, SynthError> {
    create_dir(dir)?;
    let bundles = write_fhir_bundles(cohort, &dir.join("fhir"))?;
    let ndjson = write_fhir_ndjson(cohort, &dir.join("ndjson"))?;
    let hl7 = write_hl7_adt(cohort, &dir.join("hl7"))?;
    let csv_path = dir.join("cohort.csv");
    write_csv(cohort, &csv_path)?;
    let truth = dir.join("truth.jsonl");
    write_truth(cohort, &truth)?;
    let notes = dir.join("notes.jsonl");
    write_notes_jsonl(cohort, &notes)?;
    let readme = dir.join("README.txt");
    write_atomic(&readme, README.as_bytes())?;

    let all: Vec<&PathBuf> = bundles
        .iter()
        .chain(&ndjson)
        .chain(&hl7)
        .chain([&csv_path, &truth, &notes, &readme])
        .collect();
    let mut bytes = 0u64;
    for p in &all {
        bytes += fs::metadata(p)
            .map_err(|source| SynthError::Io {
                path: (*p).clone(),
                source,
            })?
            .len();
    }
    let encounters = cohort.patients.iter().map(|p| p.encounters.len()).sum();
    Ok(GenSummary {
        patients: cohort.patients.len(),
        encounters,
        notes: cohort
            .patients
            .iter()
            .flat_map(|p| &p.encounters)
            .map(|e| e.notes.len())
            .sum(),
        resources: cohort.patients.iter().map(fhir::resource_count).sum(),
        readmissions_30d: cohort
            .patients
            .iter()
            .flat_map(|p| &p.encounters)
            .filter(|e| e.readmitted_30d)
            .count(),
        files: all.len(),
        bytes,
    })
}
