//! De-identification of structured clinical data: FHIR R4 (JSON Bundles and resources,
//! NDJSON), HL7 v2 and CSV, driven by declarative profiles, with a leak check on every run and
//! a re-identification risk report.
//!
//! # Design
//! * [`Profile`]: a TOML rule file (built in: `safe-harbor`, `expert-determination`,
//!   `limited-data-set`), validated when loaded; see [`profile`] for the format and the FHIR
//!   path language.
//! * One patient is one patient across formats: the patient key is the MRN (FHIR
//!   `Patient.identifier` of type `MR`, HL7 `PID-3`, the CSV column marked `patient_key`). Its
//!   pseudonym (namespace `mrn`) and its date offset (`HMAC(key, "date-shift" || MRN)` mapped
//!   to ±`date_shift_days`, never 0) are the same wherever it appears.
//! * Pseudonyms follow DOMAIN.md: under `safe-harbor` identifiers become **random surrogates**
//!   recorded in a [`Crosswalk`] the caller persists encrypted in the clinical zone (45 CFR
//!   164.514(c): a re-identification code must not be derived from the individual's
//!   information); keyed HMAC-SHA256 pseudonyms and per-patient date shifting belong to
//!   `expert-determination`. The run report says which scheme was used.
//! * Free text (FHIR strings no rule covers, narratives, text attachments, HL7 `NTE`/`OBX`
//!   text) goes through the `airlock-text` engine with the patient's known identifiers.
//! * Every run ends with a leak check ([`leak`]): every identifying value seen in the input is
//!   searched for in the output; under a `fail` policy (every built-in profile) any hit fails
//!   the run. A shifted date that lands on a true date of the input is counted apart, as a
//!   coincidence, where the shift wrote it (see [`leak`]).
//! * Every run reports the residual re-identification risk of the FHIR and HL7 patients it
//!   wrote (`patients`), and of the CSV tables of people under `[k_anonymity]` (`table`).
//! * Malformed records (broken JSON line, unparsable HL7 message, ragged CSV row, Bundle entry
//!   without `resourceType`) are quarantined (reported by position, not written) and the run
//!   continues. So is an HL7 message over `airlock_formats::hl7::MAX_MESSAGE_BYTES` (1 MiB).
//! * HL7 v2 files are de-identified one message at a time (parse, transform, write, drop), so
//!   memory follows the largest message, not the file.
//! * The engine is pure: no async runtime, no database. [`deid_paths`] (file mode) reads and
//!   writes files, streaming NDJSON and CSV; [`deid_dataset`] works on the buffers of one data
//!   set (gate mode); [`deid_bytes`] on one buffer.
//! * A run is one data set, whatever its files: every file is pre-scanned before any is
//!   transformed, a record key gets the same surrogate in every file, and the leak check runs
//!   over the union of the outputs. CSV tables of a known export (Synthea's CSV, the OMOP CDM)
//!   are recognised by their header and handled by a built-in mapping (`data/csv-mappings`):
//!   keys become surrogates of the same shape, so `encounters.PATIENT` still joins
//!   `patients.Id`; columns no mapping or rule names are recognised by name and by content
//!   (licence and passport numbers, UUID keys, coordinates, addresses, places, dates).
//! * FHIR JSON and NDJSON are read through a flat token tape (no tree of values): the walk
//!   makes the tree walk's decisions in the same order and writes the output as it goes, the
//!   same bytes `serde_json` would write for the tree walk's result. Documents the tape leaves
//!   aside (a duplicate key, an escaped key, deep nesting) and profiles with rare-code
//!   generalisation take the `serde_json::Value` tree walk, which stays the reference.

mod codes;
mod columns;
mod crosswalk;
mod engine;
mod error;
mod fhir;
pub mod fhir_types;
mod hash;
mod hl7;
mod keys;
pub mod leak;
mod mapping;
mod notes;
mod patients;
pub mod profile;
mod report;
pub mod risk;
mod table;
mod tape;
pub mod values;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub use airlock_formats::Format;
pub use codes::{SNOMED_RARE, parent as code_parent};
pub use crosswalk::Crosswalk;
pub use error::DeidError;
pub use keys::{DeidKeys, microsoft_date_offset};
pub use profile::{BUILTIN_PROFILES, Basis, OutputClass, Profile, PseudonymScheme};
pub use report::{FileReport, LeakCheck, LeakHit, Quarantined, RunReport};
pub use risk::RiskReport;

use crate::engine::Run;
use crate::fhir::RuleIndex;
use crate::profile::{LeakPolicy, Method};

/// The engine version recorded in reports and lineage.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The report file name written by [`deid_paths`].
pub const REPORT_FILE: &str = "deid-report.json";
/// The summary file name written by [`deid_paths`].
pub const SUMMARY_FILE: &str = "deid-summary.txt";

/// De-identifies one buffer (gate mode). Returns the output bytes and the report. Under a
/// profile whose leak policy is `fail`, a leak returns [`DeidError::LeakCheckFailed`] (with
/// the report, never the output).
pub fn deid_bytes(
    profile: &Profile,
    keys: &DeidKeys,
    crosswalk: &mut Crosswalk,
    format: Format,
    bytes: &[u8],
) -> Result<(Vec<u8>, RunReport), DeidError> {
    deid_bytes_with(profile, keys, crosswalk, format, bytes, Walker::Tape)
}

/// Which FHIR walk to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walker {
    /// The token tape where it applies (see `fhir::stream`), the tree elsewhere.
    Tape,
    /// The `serde_json::Value` tree only (the reference the tape walk is tested against).
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "only the tests walk the tree, to check the tape walk against it"
        )
    )]
    Tree,
}

pub(crate) fn deid_bytes_with(
    profile: &Profile,
    keys: &DeidKeys,
    crosswalk: &mut Crosswalk,
    format: Format,
    bytes: &[u8],
    walker: Walker,
) -> Result<(Vec<u8>, RunReport), DeidError> {
    let mut run = Run::new(profile, keys, crosswalk);
    let index = RuleIndex::new(profile.fhir_rules());
    let label = "<buffer>";
    // The fast path reads FHIR JSON through a token tape (see `fhir::stream`); documents it
    // leaves aside, and profiles with rare-code generalisation, take the tree walk.
    let fast = match format {
        Format::FhirJson if walker == Walker::Tape => {
            fast_tape(profile, airlock_formats::strip_bom(bytes))
        }
        _ => None,
    };
    // A FHIR JSON document is parsed once, for the rare-code count and the transform.
    let mut parsed = match format {
        Format::FhirJson if fast.is_none() => Some(airlock_formats::fhir::parse_json(bytes)),
        _ => None,
    };
    if profile.inner().rare_codes.is_some() {
        let mut rare = codes::RareCodes::new(
            profile
                .inner()
                .rare_codes
                .as_ref()
                .map_or(0, |r| r.min_patients),
        );
        let pre = parsed.as_ref().and_then(|p| p.as_ref().ok());
        observe_codes(&mut run, &mut rare, format, bytes, pre);
        run.rare = Some(rare);
    }
    match format {
        Format::Hl7v2 => hl7::collect_file(&mut run, bytes),
        Format::FhirNdjson => {
            prescan_ndjson(&mut run, airlock_formats::strip_bom(bytes), walker);
        }
        _ => {}
    }
    let mut risk = Vec::new();
    let mut doc = None;
    let mut collected = fhir::stream::Collected::default();
    // Whether `collected` holds every output string the leak check reads.
    let mut quick = fast.is_some();
    let out = match format {
        Format::FhirJson if fast.is_some() => {
            let mut out = Vec::with_capacity(bytes.len());
            if let Some(tape) = &fast {
                fhir::stream::deid_document(
                    &mut run,
                    &index,
                    tape,
                    label,
                    1,
                    &mut out,
                    &mut collected,
                );
            }
            out
        }
        Format::FhirJson => {
            doc = match parsed.take() {
                Some(p) => deid_fhir_parsed(&mut run, &index, label, p),
                None => deid_fhir_value(&mut run, &index, label, bytes),
            };
            doc.as_ref()
                .map(|d| serde_json::to_vec(d).unwrap_or_default())
                .unwrap_or_default()
        }
        Format::FhirNdjson => {
            let mut out = Vec::with_capacity(bytes.len());
            deid_ndjson(
                &mut run,
                &index,
                label,
                airlock_formats::strip_bom(bytes),
                &mut out,
                Some(&mut collected),
                walker,
            )
            .map_err(|e| DeidError::io(Path::new(label), &e))?;
            quick = walker == Walker::Tape;
            out
        }
        Format::Hl7v2 => {
            let mut out = Vec::with_capacity(bytes.len());
            deid_hl7(&mut run, label, bytes, &mut out)
                .map_err(|e| DeidError::io(Path::new(label), &e))?;
            out
        }
        Format::Csv => {
            let input = airlock_formats::strip_bom(bytes);
            prescan_csv(&mut run, label, input)?;
            check_person_tables(&run, false)?;
            let mut out = Vec::new();
            csv_with_k(&mut run, label, || Ok(input), &mut out, &mut risk)?;
            out
        }
        Format::Notes => {
            notes::prescan(&mut run, bytes);
            notes::deid(&mut run, label, bytes)
        }
    };
    let mut report = base_report(&run, profile, keys);
    report.risk = risk;
    let scanner = run.leaks.scanner();
    let mut findings = leak::Findings::new(&run.shifted);
    match &doc {
        // Scan the output tree already in memory rather than re-parsing it.
        Some(d) => fhir::scan_output(&scanner, d, label, 0, &mut findings),
        None => {
            // The fast path gathered the output strings as it wrote them; the full scan runs
            // only when one of them holds an identifying value (to report it by path).
            let checked = if quick {
                fhir::stream::check_collected(&scanner, &out, &collected)
            } else {
                None
            };
            match checked {
                Some(n) => findings.scanned += n,
                None => scan_output(&scanner, format, &out, label, &mut findings),
            }
        }
    }
    finish_report(&mut report, &run, findings);
    if profile.leak_policy() == LeakPolicy::Fail && !report.leak_check.passed {
        return Err(DeidError::LeakCheckFailed {
            hits: report.leak_check.hits.len(),
            report: Box::new(report),
        });
    }
    Ok((out, report))
}

/// De-identifies files and directories (recursed) into `out_dir` (file mode). Writes the
/// de-identified files (same relative names), `out_dir/deid-report.json` and
/// `out_dir/deid-summary.txt`, and returns the report.
///
/// NDJSON and CSV are streamed. Files whose format cannot be determined are skipped with a
/// warning. On a leak under a `fail` profile, the output files holding a hit are deleted, the
/// report is still written, and [`DeidError::LeakCheckFailed`] is returned.
pub fn deid_paths(
    profile: &Profile,
    keys: &DeidKeys,
    crosswalk: &mut Crosswalk,
    inputs: &[PathBuf],
    out_dir: &Path,
) -> Result<RunReport, DeidError> {
    deid_paths_with(
        profile,
        keys,
        crosswalk,
        inputs,
        out_dir,
        PathOptions::default(),
    )
}

/// Options of [`deid_paths_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PathOptions {
    /// Write outputs as `part-00000.json` (`part-00003.patients.csv` for a CSV recognised as a
    /// built-in mapping's table) directly under `out_dir`, and name inputs in the report and its
    /// warnings by index and content hash (`files[3] sha256:...`): input file names may hold
    /// PHI (Synthea's FHIR files are `Given_Family_uuid.json`).
    pub neutral_names: bool,
}

/// [`deid_paths`] with options.
pub fn deid_paths_with(
    profile: &Profile,
    keys: &DeidKeys,
    crosswalk: &mut Crosswalk,
    inputs: &[PathBuf],
    out_dir: &Path,
    options: PathOptions,
) -> Result<RunReport, DeidError> {
    std::fs::create_dir_all(out_dir).map_err(|e| DeidError::io(out_dir, &e))?;
    let out_canon = out_dir
        .canonicalize()
        .map_err(|e| DeidError::io(out_dir, &e))?;
    let mut jobs: Vec<(PathBuf, PathBuf, Format)> = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| DeidError::io(input, &e))?;
        if meta.is_dir() {
            let base = input.file_name().map(PathBuf::from).unwrap_or_default();
            let mut files = Vec::new();
            collect_files(input, &out_canon, &mut files)?;
            files.sort();
            for f in files {
                let rel = f
                    .strip_prefix(input)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| f.clone());
                match detect(&f)? {
                    Some(fmt) => jobs.push((f, out_dir.join(&base).join(rel), fmt)),
                    None => skipped.push(f),
                }
            }
        } else {
            let name = input.file_name().map(PathBuf::from).unwrap_or_default();
            match detect(input)? {
                Some(fmt) => jobs.push((input.clone(), out_dir.join(name), fmt)),
                None => skipped.push(input.clone()),
            }
        }
    }
    // Patients first, so references in other NDJSON files find their MRN.
    jobs.sort_by_key(|(p, _, _)| {
        !p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("Patient"))
    });
    let mut run = Run::new(profile, keys, crosswalk);
    for (k, s) in skipped.iter().enumerate() {
        let name = if options.neutral_names {
            format!("skipped[{k}] sha256:{}", file_sha256(s)?)
        } else {
            s.display().to_string()
        };
        run.warn(format!("{name}: format not recognised, skipped"));
    }
    let mut labels = Vec::with_capacity(jobs.len());
    for (i, (input, _, _)) in jobs.iter().enumerate() {
        labels.push(if options.neutral_names {
            format!("files[{i}] sha256:{}", file_sha256(input)?)
        } else {
            input.display().to_string()
        });
    }
    let index = RuleIndex::new(profile.fhir_rules());
    if let Some(rc) = &profile.inner().rare_codes {
        let mut rare = codes::RareCodes::new(rc.min_patients);
        for (input, _, fmt) in &jobs {
            let bytes = std::fs::read(input).map_err(|e| DeidError::io(input, &e))?;
            observe_codes(&mut run, &mut rare, *fmt, &bytes, None);
        }
        run.rare = Some(rare);
    }
    // Pre-pass: identifying values of every patient (FHIR Patients, HL7 messages, CSV
    // identifier columns), so the free-text scrub knows them wherever they appear.
    let mut tables = vec![None; jobs.len()];
    for (i, (input, _, fmt)) in jobs.iter().enumerate() {
        match fmt {
            Format::Hl7v2 => {
                let bytes = std::fs::read(input).map_err(|e| DeidError::io(input, &e))?;
                hl7::collect_file(&mut run, &bytes);
            }
            Format::FhirJson => {
                let bytes = std::fs::read(input).map_err(|e| DeidError::io(input, &e))?;
                if let Some(tape) = fast_tape(profile, airlock_formats::strip_bom(&bytes)) {
                    fhir::stream::prescan(&mut run, &tape, 0);
                } else if let Ok(doc) = airlock_formats::fhir::parse_json(&bytes) {
                    fhir::prescan(&mut run, &doc);
                }
            }
            Format::FhirNdjson => {
                let f = File::open(input).map_err(|e| DeidError::io(input, &e))?;
                prescan_ndjson(&mut run, BufReader::new(f), Walker::Tape);
            }
            Format::Csv => {
                let f = File::open(input).map_err(|e| DeidError::io(input, &e))?;
                let label = labels.get(i).cloned().unwrap_or_default();
                let t = prescan_csv(&mut run, &label, BomSkip::new(BufReader::new(f)))?;
                if let Some(slot) = tables.get_mut(i) {
                    *slot = t;
                }
            }
            Format::Notes => {
                let bytes = std::fs::read(input).map_err(|e| DeidError::io(input, &e))?;
                notes::prescan(&mut run, airlock_formats::strip_bom(&bytes));
            }
        }
    }
    check_person_tables(&run, jobs.iter().any(|(_, _, f)| describes_patients(*f)))?;
    if options.neutral_names {
        for (i, (_, output, fmt)) in jobs.iter_mut().enumerate() {
            let table = tables
                .get(i)
                .and_then(Option::as_deref)
                .and_then(|t| t.rsplit('/').next())
                .map(|t| format!(".{t}"))
                .unwrap_or_default();
            *output = out_dir.join(format!("part-{i:05}{table}.{}", fmt.extension()));
        }
    }
    let mut files = Vec::new();
    let mut risk = Vec::new();
    for (i, (input, output, fmt)) in jobs.iter().enumerate() {
        if let Some(parent) = output.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DeidError::io(parent, &e))?;
        }
        let label = labels.get(i).cloned().unwrap_or_default();
        let q_before = run.quarantined.len();
        let r_before = run.records_in;
        let mut table = None;
        match fmt {
            Format::FhirJson => {
                let bytes = std::fs::read(input).map_err(|e| DeidError::io(input, &e))?;
                let out = deid_fhir_json(&mut run, &index, &label, &bytes);
                std::fs::write(output, out).map_err(|e| DeidError::io(output, &e))?;
            }
            Format::Hl7v2 => {
                let bytes = std::fs::read(input).map_err(|e| DeidError::io(input, &e))?;
                let o = File::create(output).map_err(|e| DeidError::io(output, &e))?;
                let mut w = BufWriter::new(o);
                deid_hl7(&mut run, &label, &bytes, &mut w)
                    .map_err(|e| DeidError::io(output, &e))?;
                w.flush().map_err(|e| DeidError::io(output, &e))?;
            }
            Format::FhirNdjson => {
                let f = File::open(input).map_err(|e| DeidError::io(input, &e))?;
                let o = File::create(output).map_err(|e| DeidError::io(output, &e))?;
                let mut w = BufWriter::new(o);
                deid_ndjson(
                    &mut run,
                    &index,
                    &label,
                    BufReader::new(f),
                    &mut w,
                    None,
                    Walker::Tape,
                )
                .map_err(|e| DeidError::io(input, &e))?;
                w.flush().map_err(|e| DeidError::io(output, &e))?;
            }
            Format::Csv => {
                let o = File::create(output).map_err(|e| DeidError::io(output, &e))?;
                let mut w = BufWriter::new(o);
                let open = || -> Result<Box<dyn Read>, DeidError> {
                    let f = File::open(input).map_err(|e| DeidError::io(input, &e))?;
                    Ok(Box::new(BomSkip::new(BufReader::new(f))))
                };
                table = csv_with_k(&mut run, &label, open, &mut w, &mut risk)?;
                w.flush().map_err(|e| DeidError::io(output, &e))?;
            }
            Format::Notes => {
                let bytes = std::fs::read(input).map_err(|e| DeidError::io(input, &e))?;
                let out = notes::deid(&mut run, &label, &bytes);
                std::fs::write(output, out).map_err(|e| DeidError::io(output, &e))?;
            }
        }
        files.push(FileReport {
            input: label,
            output: output.display().to_string(),
            format: fmt.name().to_owned(),
            records: run.records_in - r_before,
            quarantined: (run.quarantined.len() - q_before) as u64,
            table,
        });
    }
    let mut report = base_report(&run, profile, keys);
    report.files = files;
    report.risk = risk;
    // Leak check over the written outputs.
    let scanner = run.leaks.scanner();
    let mut findings = leak::Findings::new(&run.shifted);
    for (_, output, fmt) in &jobs {
        let label = output.display().to_string();
        match fmt {
            Format::FhirNdjson | Format::Csv => {
                let f = File::open(output).map_err(|e| DeidError::io(output, &e))?;
                if *fmt == Format::Csv {
                    table::scan_csv(&scanner, BufReader::new(f), &label, &mut findings);
                } else {
                    scan_ndjson(&scanner, BufReader::new(f), &label, &mut findings);
                }
            }
            _ => {
                let bytes = std::fs::read(output).map_err(|e| DeidError::io(output, &e))?;
                scan_output(&scanner, *fmt, &bytes, &label, &mut findings);
            }
        }
    }
    finish_report(&mut report, &run, findings);
    let fail = profile.leak_policy() == LeakPolicy::Fail && !report.leak_check.passed;
    if fail {
        let mut bad: Vec<&str> = report
            .leak_check
            .hits
            .iter()
            .map(|h| h.file.as_str())
            .collect();
        bad.sort_unstable();
        bad.dedup();
        for f in &bad {
            let _ = std::fs::remove_file(f);
        }
        report.warnings.push(format!(
            "leak check failed: {} output file(s) with hits were deleted",
            bad.len()
        ));
    }
    let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
    let rp = out_dir.join(REPORT_FILE);
    std::fs::write(&rp, json).map_err(|e| DeidError::io(&rp, &e))?;
    let sp = out_dir.join(SUMMARY_FILE);
    std::fs::write(&sp, report.summary()).map_err(|e| DeidError::io(&sp, &e))?;
    if fail {
        return Err(DeidError::LeakCheckFailed {
            hits: report.leak_check.hits.len(),
            report: Box::new(report),
        });
    }
    Ok(report)
}

/// One file of a data set de-identified as a whole by [`deid_dataset`].
#[derive(Debug, Clone, Copy)]
pub struct DatasetFile<'a> {
    /// Its format.
    pub format: Format,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// One output of [`deid_dataset`], in the order of the inputs.
#[derive(Debug, Clone)]
pub struct DatasetOutput {
    /// The de-identified bytes.
    pub bytes: Vec<u8>,
    /// Records written.
    pub records: u64,
    /// The built-in mapping table a CSV file was recognised as (`synthea/patients`), from its
    /// header alone: a name from the mappings' closed list, never one from the input.
    pub table: Option<String>,
}

/// De-identifies the files of one data set together (gate mode): one run, so a record key gets
/// the same surrogate in every file (a Synthea or OMOP export's tables still join), every
/// identifying value of every file is known to the free-text engine of every other, and the
/// leak check runs over the union of the outputs. Files are named in the report by index
/// (`files[3]`), never by a name. Under a profile whose leak policy is `fail`, a leak anywhere
/// returns [`DeidError::LeakCheckFailed`] (with the report, never the output).
pub fn deid_dataset(
    profile: &Profile,
    keys: &DeidKeys,
    crosswalk: &mut Crosswalk,
    files: &[DatasetFile<'_>],
) -> Result<(Vec<DatasetOutput>, RunReport), DeidError> {
    let (outputs, report) = deid_dataset_assessed(profile, keys, crosswalk, files)?;
    if profile.leak_policy() == LeakPolicy::Fail && !report.leak_check.passed {
        return Err(DeidError::LeakCheckFailed {
            hits: report.leak_check.hits.len(),
            report: Box::new(report),
        });
    }
    Ok((outputs, report))
}

/// [`deid_dataset`] without the profile's leak policy: a failed leak check is in the report,
/// and the caller decides (the gate refuses it unless an expert's determination covers it).
pub fn deid_dataset_assessed(
    profile: &Profile,
    keys: &DeidKeys,
    crosswalk: &mut Crosswalk,
    files: &[DatasetFile<'_>],
) -> Result<(Vec<DatasetOutput>, RunReport), DeidError> {
    let mut run = Run::new(profile, keys, crosswalk);
    let index = RuleIndex::new(profile.fhir_rules());
    let label = |i: usize| format!("files[{i}]");
    if let Some(rc) = &profile.inner().rare_codes {
        let mut rare = codes::RareCodes::new(rc.min_patients);
        for f in files {
            observe_codes(&mut run, &mut rare, f.format, f.bytes, None);
        }
        run.rare = Some(rare);
    }
    // Pre-pass, as in file mode: every patient's identifying values (FHIR Patients, HL7
    // messages, CSV identifier columns) before any file is transformed.
    for (i, f) in files.iter().enumerate() {
        let bytes = airlock_formats::strip_bom(f.bytes);
        match f.format {
            Format::Hl7v2 => hl7::collect_file(&mut run, f.bytes),
            Format::FhirJson => {
                if let Some(tape) = fast_tape(profile, bytes) {
                    fhir::stream::prescan(&mut run, &tape, 0);
                } else if let Ok(doc) = airlock_formats::fhir::parse_json(f.bytes) {
                    fhir::prescan(&mut run, &doc);
                }
            }
            Format::FhirNdjson => prescan_ndjson(&mut run, bytes, Walker::Tape),
            Format::Csv => {
                prescan_csv(&mut run, &label(i), bytes)?;
            }
            Format::Notes => notes::prescan(&mut run, bytes),
        }
    }
    check_person_tables(&run, files.iter().any(|f| describes_patients(f.format)))?;
    let mut outputs = Vec::with_capacity(files.len());
    let mut reports = Vec::with_capacity(files.len());
    let mut risk = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = label(i);
        let q_before = run.quarantined.len();
        let r_before = run.records_in;
        let o_before = run.records_out;
        let bytes = airlock_formats::strip_bom(f.bytes);
        let mut table = None;
        let out = match f.format {
            Format::FhirJson => deid_fhir_json(&mut run, &index, &name, f.bytes),
            Format::FhirNdjson => {
                let mut out = Vec::with_capacity(bytes.len());
                deid_ndjson(&mut run, &index, &name, bytes, &mut out, None, Walker::Tape)
                    .map_err(|e| DeidError::io(Path::new(&name), &e))?;
                out
            }
            Format::Hl7v2 => {
                let mut out = Vec::with_capacity(bytes.len());
                deid_hl7(&mut run, &name, f.bytes, &mut out)
                    .map_err(|e| DeidError::io(Path::new(&name), &e))?;
                out
            }
            Format::Csv => {
                let mut out = Vec::with_capacity(bytes.len());
                table = csv_with_k(&mut run, &name, || Ok(bytes), &mut out, &mut risk)?;
                out
            }
            Format::Notes => notes::deid(&mut run, &name, bytes),
        };
        reports.push(FileReport {
            input: name.clone(),
            output: name,
            format: f.format.name().to_owned(),
            records: run.records_in - r_before,
            quarantined: (run.quarantined.len() - q_before) as u64,
            table: table.clone(),
        });
        outputs.push(DatasetOutput {
            bytes: out,
            records: run.records_out - o_before,
            table,
        });
    }
    let mut report = base_report(&run, profile, keys);
    report.files = reports;
    report.risk = risk;
    // The leak check over the union of the outputs: a value identifying in one file is a leak
    // in any other.
    let scanner = run.leaks.scanner();
    let mut findings = leak::Findings::new(&run.shifted);
    for (i, (f, o)) in files.iter().zip(&outputs).enumerate() {
        scan_output(&scanner, f.format, &o.bytes, &label(i), &mut findings);
    }
    finish_report(&mut report, &run, findings);
    Ok((outputs, report))
}

/// The CSV pre-pass of one table (see `table::prescan_csv`), then the free-text scrubber is
/// told of the values it recorded. Under `[k_anonymity]`, a table of people without every
/// quasi-identifier is an error here, before any output is written.
fn prescan_csv<R: Read>(
    run: &mut Run<'_>,
    label: &str,
    input: R,
) -> Result<Option<String>, DeidError> {
    let (table, fit) =
        table::prescan_csv(run, label, input).map_err(|source| DeidError::Format {
            path: PathBuf::from(label),
            source,
        })?;
    run.refresh_scrub();
    if let Some(fit) = fit {
        run.k_tables.tables += 1;
        match fit {
            table::QiFit::Apply { .. } => run.k_tables.person += 1,
            table::QiFit::Skip => {}
            table::QiFit::Missing(missing) => {
                return Err(DeidError::QuasiIdentifiersMissing {
                    table: label.to_owned(),
                    missing,
                });
            }
        }
    }
    Ok(table)
}

/// After the pre-pass: under `[k_anonymity]`, a data set whose CSV tables hold no table of
/// people is an error (the profile's names match nothing, or the person table was left out),
/// unless FHIR or HL7 files (`patients_elsewhere`) describe the patients, whose risk is
/// reported from them.
fn check_person_tables(run: &Run<'_>, patients_elsewhere: bool) -> Result<(), DeidError> {
    match run.profile.k_anonymity() {
        Some(k) if run.k_tables.tables > 0 && run.k_tables.person == 0 && !patients_elsewhere => {
            Err(DeidError::NoPersonTable {
                quasi_identifiers: k.quasi_identifiers.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Whether a format describes patients outside CSV tables (FHIR Patients, HL7 `PID`).
fn describes_patients(format: Format) -> bool {
    !matches!(format, Format::Csv)
}

/// The SHA-256 of a file's content (hex), to name an input without its name.
fn file_sha256(path: &Path) -> Result<String, DeidError> {
    use sha2::Digest;
    let mut f = File::open(path).map_err(|e| DeidError::io(path, &e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| DeidError::io(path, &e))?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(h.finalize()))
}

/// The re-identification risk of a CSV table on `quasi_identifiers` (columns, matched
/// case-insensitively or through their aliases, as a profile's `[k_anonymity]` names are),
/// with l-diversity on `sensitive` and journalist risk for a data set that is
/// `sampling_fraction` of its population.
pub fn risk_report_csv<R: Read>(
    reader: R,
    quasi_identifiers: &[String],
    sensitive: Option<&str>,
    sampling_fraction: f64,
) -> Result<RiskReport, DeidError> {
    table::risk_from_csv(reader, quasi_identifiers, sensitive, sampling_fraction).map_err(
        |source| DeidError::Format {
            path: PathBuf::from("<csv>"),
            source,
        },
    )
}

fn detect(path: &Path) -> Result<Option<Format>, DeidError> {
    let mut head = [0u8; 4096];
    let mut f = File::open(path).map_err(|e| DeidError::io(path, &e))?;
    let n = f.read(&mut head).map_err(|e| DeidError::io(path, &e))?;
    Ok(airlock_formats::sniff(
        path,
        head.get(..n).unwrap_or_default(),
    ))
}

fn collect_files(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) -> Result<(), DeidError> {
    for e in std::fs::read_dir(dir).map_err(|e| DeidError::io(dir, &e))? {
        let e = e.map_err(|e| DeidError::io(dir, &e))?;
        let p = e.path();
        if p.canonicalize().is_ok_and(|c| c.starts_with(skip)) {
            continue;
        }
        let ft = e.file_type().map_err(|e| DeidError::io(&p, &e))?;
        if ft.is_dir() {
            collect_files(&p, skip, out)?;
        } else if ft.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

fn base_report(run: &Run<'_>, profile: &Profile, keys: &DeidKeys) -> RunReport {
    let zl = profile.restricted_zip3();
    RunReport {
        profile: profile.name().to_owned(),
        profile_hash: profile.hash().to_owned(),
        key_id: keys.key_id().to_owned(),
        engine_version: ENGINE_VERSION.to_owned(),
        classification: match profile.classification() {
            OutputClass::Deidentified => "deidentified",
            OutputClass::LimitedDataSet => "limited-data-set",
        }
        .to_owned(),
        pseudonym_scheme: match profile.pseudonyms() {
            PseudonymScheme::Surrogate => "random surrogates with an encrypted crosswalk (Safe Harbor, 45 CFR 164.514(c): not derived from the individual's information)".to_owned(),
            PseudonymScheme::Hmac => "keyed HMAC-SHA256 pseudonyms and per-patient keyed date shifting (expert determination / limited data set; derived from identifiers, so not a Safe Harbor re-identification code)".to_owned(),
        },
        restricted_zip3: format!("{} (census vintage {}; {})", zl.name, zl.vintage, zl.source),
        records_in: run.records_in,
        records_out: run.records_out,
        quarantined: run.quarantined.clone(),
        warnings: run.warnings.clone(),
        crosswalk_added: run.crosswalk.added(),
        ..RunReport::default()
    }
}

fn finish_report(report: &mut RunReport, run: &Run<'_>, findings: leak::Findings<'_>) {
    let scanned = findings.scanned;
    let numeric_coincidences = findings.numeric_coincidences;
    let (hits, date_shift_coincidences) = findings.settle();
    run.changes.merge_into(&mut report.changes);
    report.quarantined = run.quarantined.clone();
    report.warnings = run.warnings.clone();
    report.crosswalk_added = run.crosswalk.added();
    report.records_in = run.records_in;
    report.records_out = run.records_out;
    report.leak_check = LeakCheck {
        values_checked: run.leaks.len() as u64,
        output_values_scanned: scanned,
        passed: hits.is_empty(),
        hits,
        numeric_coincidences,
        date_shift_coincidences,
    };
    // The residual risk of the FHIR and HL7 patients written, whatever the profile.
    let sampling = run
        .profile
        .k_anonymity()
        .map_or(1.0, |k| k.sampling_fraction);
    report.risk.extend(run.patient_qis.reports(sampling));
}

/// The tape of a FHIR JSON document for the fast path, when the profile and the document
/// allow it (no rare-code generalisation; the document parses as a tape and is a resource).
fn fast_tape<'a>(profile: &Profile, bytes: &'a [u8]) -> Option<tape::Tape<'a>> {
    if profile.inner().rare_codes.is_some() {
        return None;
    }
    let tape = tape::Tape::parse(bytes)?;
    fhir::stream::check_resource(&tape, 0).ok()?;
    Some(tape)
}

fn deid_fhir_json(run: &mut Run<'_>, index: &RuleIndex, label: &str, bytes: &[u8]) -> Vec<u8> {
    if let Some(tape) = fast_tape(run.profile, airlock_formats::strip_bom(bytes)) {
        let mut out = Vec::with_capacity(bytes.len());
        // File mode scans the written files once every file is done.
        let mut collected = fhir::stream::Collected::default();
        fhir::stream::deid_document(run, index, &tape, label, 1, &mut out, &mut collected);
        return out;
    }
    deid_fhir_value(run, index, label, bytes)
        .map(|doc| serde_json::to_vec(&doc).unwrap_or_default())
        .unwrap_or_default()
}

fn deid_fhir_value(
    run: &mut Run<'_>,
    index: &RuleIndex,
    label: &str,
    bytes: &[u8],
) -> Option<serde_json::Value> {
    deid_fhir_parsed(run, index, label, airlock_formats::fhir::parse_json(bytes))
}

fn deid_fhir_parsed(
    run: &mut Run<'_>,
    index: &RuleIndex,
    label: &str,
    parsed: Result<serde_json::Value, airlock_formats::FormatError>,
) -> Option<serde_json::Value> {
    let mut doc = match parsed {
        Ok(v) => v,
        Err(e) => {
            quarantine(run, label, 0, 0, "document", &e.to_string());
            return None;
        }
    };
    if let Err(reason) = fhir::check_resource(&doc) {
        quarantine(run, label, 0, 1, "document", reason);
        return None;
    }
    fhir::deid_document(run, index, &mut doc, label, 1);
    Some(doc)
}

fn quarantine(run: &mut Run<'_>, file: &str, record: u64, line: u64, path: &str, reason: &str) {
    run.records_in += 1;
    run.quarantined.push(Quarantined {
        file: file.to_owned(),
        record,
        line,
        path: path.to_owned(),
        reason: reason.to_owned(),
    });
}

/// Patients (and practitioners, relatives, persons) of an NDJSON stream (one resource per line)
/// for the pre-scan.
fn prescan_ndjson<R: std::io::BufRead>(run: &mut Run<'_>, input: R, walker: Walker) {
    let mut lines = airlock_formats::fhir::NdjsonLines::new(input);
    while let Some(item) = lines.next_line() {
        let Ok(raw) = item else {
            continue;
        };
        // A line whose bytes name no pre-scanned type and hold no escape cannot be one.
        if walker == Walker::Tape && !may_name_patient(raw.bytes) {
            continue;
        }
        if walker == Walker::Tape
            && let Some(tape) = tape::Tape::parse(raw.bytes)
        {
            if tape
                .get_str(0, "resourceType")
                .is_some_and(|t| fhir::prescanned(&t))
            {
                fhir::stream::prescan(run, &tape, 0);
            }
        } else if let Ok(doc) = airlock_formats::fhir::parse_line(raw.bytes, raw.line)
            && doc
                .get("resourceType")
                .and_then(serde_json::Value::as_str)
                .is_some_and(fhir::prescanned)
        {
            fhir::prescan(run, &doc);
        }
    }
}

/// Whether `bytes` may hold the JSON string of a type the pre-scan reads (`Patient`,
/// `Practitioner`, `Person`, `RelatedPerson`): the word itself, or an escape.
fn may_name_patient(bytes: &[u8]) -> bool {
    if bytes.contains(&b'\\') {
        return true;
    }
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'P') {
        let tail = rest.get(i..).unwrap_or_default();
        if tail.starts_with(b"Patient")
            || tail.starts_with(b"Practitioner")
            || tail.starts_with(b"Person")
        {
            return true;
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    false
}

/// NDJSON, line by line (memory stays flat): each line through the tape walk where it applies,
/// else through the tree. `collected`: gathers the leak check's strings (offsets into
/// everything written to `output`), marked incomplete when a line took the tree.
fn deid_ndjson<R: std::io::BufRead, W: Write>(
    run: &mut Run<'_>,
    index: &RuleIndex,
    label: &str,
    input: R,
    output: &mut W,
    mut collected: Option<&mut fhir::stream::Collected>,
    walker: Walker,
) -> std::io::Result<()> {
    let fast = walker == Walker::Tape && run.profile.inner().rare_codes.is_none();
    let mut lines = airlock_formats::fhir::NdjsonLines::new(input);
    let mut buf = Vec::new();
    let mut scratch = fhir::stream::Collected::default();
    let mut written = 0usize;
    while let Some(item) = lines.next_line() {
        let raw = match item {
            Ok(r) => r,
            Err(e) => {
                quarantine(run, label, 0, 0, "stream", &e.to_string());
                break;
            }
        };
        buf.clear();
        let tape = if fast {
            tape::Tape::parse(raw.bytes).filter(|t| fhir::stream::check_resource(t, 0).is_ok())
        } else {
            None
        };
        if let Some(tape) = tape {
            let c = match collected.as_deref_mut() {
                Some(c) => {
                    c.set_base(written);
                    c
                }
                None => &mut scratch,
            };
            fhir::stream::deid_document(run, index, &tape, label, raw.line, &mut buf, c);
            scratch.clear();
        } else {
            if let Some(c) = collected.as_deref_mut() {
                c.set_incomplete();
            }
            let mut v = match airlock_formats::fhir::parse_line(raw.bytes, raw.line) {
                Ok(v) => v,
                Err(e) => {
                    quarantine(run, label, raw.record, raw.line, "line", &e.to_string());
                    continue;
                }
            };
            if let Err(reason) = fhir::check_resource(&v) {
                quarantine(run, label, raw.record, raw.line, "line", reason);
                continue;
            }
            fhir::deid_document(run, index, &mut v, label, raw.line);
            serde_json::to_writer(&mut buf, &v).map_err(std::io::Error::other)?;
        }
        buf.push(b'\n');
        output.write_all(&buf)?;
        written += buf.len();
    }
    Ok(())
}

/// HL7 v2, one message at a time (parse, de-identify, write, drop), so memory follows the
/// largest message rather than the file; a message over the size limit is quarantined like
/// any other that does not parse. Output uses the standard segment separator `\r`, with one
/// after every message.
fn deid_hl7<W: Write>(
    run: &mut Run<'_>,
    label: &str,
    bytes: &[u8],
    out: &mut W,
) -> std::io::Result<()> {
    let messages = match airlock_formats::hl7::messages(bytes) {
        Ok(m) => m,
        Err(e) => {
            quarantine(run, label, 0, 0, "file", &e.to_string());
            return Ok(());
        }
    };
    let mut buf = String::new();
    for raw in messages {
        run.records_in += 1;
        match raw.parse() {
            Ok(mut m) => {
                hl7::deid_message(run, &mut m);
                run.records_out += 1;
                buf.clear();
                m.serialize_into(airlock_formats::hl7::Terminator::Cr, &mut buf);
                buf.push('\r');
                out.write_all(buf.as_bytes())?;
            }
            Err(e) => {
                run.quarantined.push(Quarantined {
                    file: label.to_owned(),
                    record: raw.index,
                    line: raw.line,
                    path: "message".to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// CSV with optional k-anonymity: pass 1 reads the quasi-identifiers of a table of people,
/// pass 2 writes; the risk is then measured on the output.
fn csv_with_k<R: Read, W: Write>(
    run: &mut Run<'_>,
    label: &str,
    open: impl Fn() -> Result<R, DeidError>,
    out: &mut W,
    risk: &mut Vec<(String, RiskReport)>,
) -> Result<Option<String>, DeidError> {
    let kcfg = run.profile.k_anonymity().cloned();
    let mut kplan = None;
    if let Some(k) = &kcfg {
        match table::qi_rows(run, label, open()?, k) {
            table::QiRows::Apply {
                qis,
                sensitive,
                rows,
            } => {
                let plan = risk::plan_k_anonymity(&rows, u64::from(k.k), k.max_suppression);
                kplan = Some((qis, sensitive, plan));
            }
            table::QiRows::Skip => {}
            table::QiRows::Missing(missing) => {
                return Err(DeidError::QuasiIdentifiersMissing {
                    table: label.to_owned(),
                    missing,
                });
            }
        }
    }
    let opts = table::TableOpts {
        kplan: kplan.as_ref().map(|(q, _, p)| (q.as_slice(), p)),
    };
    let mut buf = Vec::new();
    let target: &mut dyn Write = if kplan.is_some() { &mut buf } else { out };
    let (table, _, headers) =
        table::deid_csv(run, label, open()?, &mut *target, &opts).map_err(|source| {
            DeidError::Format {
                path: PathBuf::from(label),
                source,
            }
        })?;
    if let (Some(k), Some((qis, sensitive, plan))) = (&kcfg, &kplan) {
        let mut r = table::risk_of_output(buf.as_slice(), &headers, qis, *sensitive, k).map_err(
            |source| DeidError::Format {
                path: PathBuf::from(label),
                source,
            },
        )?;
        r.suppressed = plan.suppress.len() as u64;
        r.generalisation = k
            .quasi_identifiers
            .iter()
            .cloned()
            .zip(plan.levels.iter().copied())
            .collect();
        risk.push((label.to_owned(), r));
        out.write_all(&buf)
            .map_err(|e| DeidError::io(Path::new(label), &e))?;
    }
    Ok(table)
}

fn scan_output(
    scanner: &leak::Scanner,
    format: Format,
    bytes: &[u8],
    label: &str,
    findings: &mut leak::Findings<'_>,
) {
    match format {
        Format::FhirJson => {
            if !fhir::stream::scan_output(scanner, bytes, label, 0, findings)
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
            {
                fhir::scan_output(scanner, &v, label, 0, findings);
            }
        }
        Format::FhirNdjson => scan_ndjson(scanner, bytes, label, findings),
        Format::Hl7v2 => {
            if let Ok(messages) = airlock_formats::hl7::messages(bytes) {
                // The output is ours and every message of it must be scanned: no size limit.
                for raw in messages.max_message_bytes(usize::MAX) {
                    if let Ok(m) = raw.parse() {
                        hl7::scan_message(scanner, &m, label, raw.index, findings);
                    }
                }
            }
        }
        Format::Csv => table::scan_csv(scanner, bytes, label, findings),
        Format::Notes => notes::scan_output(scanner, bytes, label, findings),
    }
}

fn scan_ndjson<R: std::io::BufRead>(
    scanner: &leak::Scanner,
    input: R,
    label: &str,
    findings: &mut leak::Findings<'_>,
) {
    let mut lines = airlock_formats::fhir::NdjsonLines::new(input);
    while let Some(item) = lines.next_line() {
        let Ok(raw) = item else {
            continue;
        };
        if !fhir::stream::scan_output(scanner, raw.bytes, label, raw.record, findings)
            && let Ok(v) = airlock_formats::fhir::parse_line(raw.bytes, raw.line)
        {
            fhir::scan_output(scanner, &v, label, raw.record, findings);
        }
    }
}

/// Rare-code pre-pass: which patients have which codes.
/// `parsed`: the FHIR JSON document of `bytes`, when the caller has parsed it already.
fn observe_codes(
    run: &mut Run<'_>,
    rare: &mut codes::RareCodes,
    format: Format,
    bytes: &[u8],
    parsed: Option<&serde_json::Value>,
) {
    fn walk(v: &serde_json::Value, mrn: &str, rare: &mut codes::RareCodes) {
        match v {
            serde_json::Value::Object(o) => {
                if let (Some(s), Some(c)) = (
                    o.get("system").and_then(|s| s.as_str()),
                    o.get("code").and_then(|c| c.as_str()),
                ) && let Some(h) = codes::hierarchy_of_system(s)
                {
                    rare.observe(h, c, mrn);
                }
                for x in o.values() {
                    walk(x, mrn, rare);
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    walk(x, mrn, rare);
                }
            }
            _ => {}
        }
    }
    let mut fhir_doc = |run: &mut Run<'_>, doc: &serde_json::Value| {
        fhir::prescan(run, doc);
        for (_, r) in airlock_formats::fhir::resources(doc) {
            let mrn = fhir::resource_patient(run, r).unwrap_or_default();
            walk(r, &mrn, rare);
        }
    };
    match format {
        Format::FhirJson => match parsed {
            Some(doc) => fhir_doc(run, doc),
            None => {
                if let Ok(doc) = airlock_formats::fhir::parse_json(bytes) {
                    fhir_doc(run, &doc);
                }
            }
        },
        Format::FhirNdjson => {
            for rec in airlock_formats::fhir::NdjsonReader::new(airlock_formats::strip_bom(bytes))
                .flatten()
            {
                if let Ok(doc) = rec.value {
                    fhir_doc(run, &doc);
                }
            }
        }
        Format::Hl7v2 => {
            // One message at a time; messages that do not parse are quarantined by the main
            // pass and their codes are not counted.
            if let Ok(messages) = airlock_formats::hl7::messages(bytes) {
                for m in messages.filter_map(|raw| raw.parse().ok()) {
                    let mrn = hl7::message_mrn(&m).unwrap_or_default();
                    let d = m.delimiters;
                    for s in m.segments.iter().filter(|s| s.id == "DG1") {
                        if let Some(rep) = s.field(3).and_then(|f| f.repetitions.first()) {
                            let code = rep.component(1).map(|c| c.value(&d)).unwrap_or_default();
                            let sys = rep
                                .component(3)
                                .map(|c| c.value(&d).to_ascii_uppercase())
                                .unwrap_or_default();
                            let h = match sys.as_str() {
                                "I10" | "ICD10" | "I10C" | "ICD10CM" => {
                                    Some(profile::Hierarchy::Icd10)
                                }
                                "I9" | "I9C" | "ICD9" | "ICD9CM" => Some(profile::Hierarchy::Icd9),
                                "SCT" | "SNM" | "SNOMED" => Some(profile::Hierarchy::Snomed),
                                _ => None,
                            };
                            if let Some(h) = h {
                                rare.observe(h, &code, &mrn);
                            }
                        }
                    }
                }
            }
        }
        // Notes carry no coded values.
        Format::Notes => {}
        Format::Csv => {
            let rules = run.profile.csv_rules().to_vec();
            let mut rdr = airlock_formats::tabular::reader_from_bytes(bytes);
            let Ok(headers) = rdr.headers().cloned() else {
                return;
            };
            let find = |c: &str| {
                headers
                    .iter()
                    .position(|h| h.trim().eq_ignore_ascii_case(c))
            };
            let patient = rules
                .iter()
                .filter(|r| r.patient_key)
                .find_map(|r| find(&r.column));
            let cols: Vec<(usize, profile::Hierarchy)> = rules
                .iter()
                .filter_map(|r| match r.method {
                    Method::GeneralizeCode(h) => find(&r.column).map(|i| (i, h)),
                    _ => None,
                })
                .collect();
            if cols.is_empty() {
                return;
            }
            let mut rec = csv::StringRecord::new();
            let mut row = 0u64;
            while let Ok(true) = rdr.read_record(&mut rec) {
                let mrn = patient
                    .and_then(|i| rec.get(i))
                    .map_or_else(|| format!("row{row}"), str::to_owned);
                for (i, h) in &cols {
                    if let Some(c) = rec.get(*i) {
                        rare.observe(*h, c, &mrn);
                    }
                }
                row += 1;
            }
        }
    }
}

/// A reader that skips a leading UTF-8 BOM.
struct BomSkip<R> {
    inner: R,
    checked: bool,
}

impl<R: std::io::BufRead> BomSkip<R> {
    fn new(inner: R) -> Self {
        BomSkip {
            inner,
            checked: false,
        }
    }
}

impl<R: std::io::BufRead> Read for BomSkip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            let head = self.inner.fill_buf()?;
            if head.starts_with(airlock_formats::UTF8_BOM) {
                self.inner.consume(3);
            }
        }
        self.inner.read(buf)
    }
}
