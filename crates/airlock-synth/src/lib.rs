//! A deterministic synthetic patient generator for demos, benchmarks and tests on machines
//! without real or shared data.
//!
//! [`generate`] builds a [`Cohort`] from [`GenOptions`]: patients with made-up but realistic
//! identifiers (names with apostrophes, hyphens and accents; SSNs; MRNs; phones; emails;
//! addresses with real zip codes, some in restricted 3-digit zip areas; ages of 90 and over),
//! hospital stays with SNOMED CT / ICD-10-CM diagnoses, LOINC vitals and labs, RxNorm
//! medication orders, templated free-text notes with gold PHI spans, and a 30-day readmission
//! label drawn from a logistic model of the patient's history.
//!
//! The writers turn a cohort into FHIR R4 transaction bundles ([`write_fhir_bundles`]), a FHIR
//! bulk NDJSON export ([`write_fhir_ndjson`]), a CSV with one row per stay ([`write_csv`]),
//! HL7 v2 `ADT^A01` messages ([`write_hl7_adt`]), the ground truth ([`write_truth`],
//! [`write_notes_jsonl`]), or everything at once ([`write_all`]).
//!
//! # Determinism
//! Same options, same bytes: all randomness comes from ChaCha20 seeded with
//! [`GenOptions::seed`], one stream per patient (so patient `i` does not depend on the cohort
//! size), UUIDs included; nothing reads the clock or iterates a hash map.
//!
//! # The data are identified
//! The values are synthetic, but they are shaped like PHI and exist to exercise the parts of
//! Airlock that handle PHI. `Debug` on [`Identity`] and [`Note`] is redacted, and errors name
//! files and patient positions, never values.

mod data;
mod fhir;
mod generate;
mod hl7;
mod model;
mod notes;
mod rng;
mod write;

use std::path::PathBuf;

pub use generate::generate;
pub use hl7::escape as hl7_escape;
pub use model::{
    Clinician, Cohort, Condition, Disposition, Encounter, EncounterClass, Ethnicity, Facility,
    GenOptions, IdentifierKind, Identity, Medication, Note, NoteKind, Observation,
    ObservationCategory, PhiSpan, Race, Relative, Sex, SynthPatient,
};
pub use write::{
    CSV_COLUMNS, GenSummary, bundle_file_name, write_all, write_csv, write_fhir_bundles,
    write_fhir_ndjson, write_hl7_adt, write_notes_jsonl, write_truth,
};

/// Errors from the writers. Messages name the file or the patient position, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// A file or directory could not be written.
    #[error("cannot write `{}`", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// JSON serialisation failed.
    #[error("cannot serialise {what} of patient {index}")]
    Json {
        /// What was being serialised.
        what: &'static str,
        /// Patient position in the cohort.
        index: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// CSV writing failed.
    #[error("cannot write CSV `{}`", path.display())]
    Csv {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: csv::Error,
    },
}
