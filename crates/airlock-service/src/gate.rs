//! The de-identification gate: a clinical dataset version in, a de-identified version in
//! development out, with lineage, an encrypted crosswalk kept in the clinical zone, and ledger
//! entries for the run. The CLI (`airlock deid --home`) and the API (`POST /v1/deid-runs`)
//! both run it.
//!
//! A version is de-identified as one data set ([`airlock_deid::deid_dataset`]): a record key
//! gets the same surrogate in every file, so the tables of a multi-table export (Synthea's CSV,
//! an OMOP extract) still join, and the leak check runs over the union of the outputs. Output
//! files are named by index (`part-00003.csv`), with the built-in table a CSV was recognised as
//! when there is one (`part-00003.patients.csv`: a name from the engine's closed list, never the
//! input's name, which may hold PHI).

use std::collections::BTreeMap;

use airlock_deid::{Crosswalk, DatasetFile, DeidError, DeidKeys, Format, OutputClass, Profile};
use airlock_ledger::{EventType, OutcomeKind};
use airlock_store::{
    Access, DatasetVersion, Home, Lineage, NewFile, NewVersion, StoreError, Transform,
    parse_version_spec,
};
use airlock_types::{Classification, ContentHash, DatasetName, Gate, Zone};

/// Why a gate run failed. Messages name files by index, paths and rules; never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The profile did not load or validate.
    #[error("de-identification profile: {0}")]
    Profile(#[from] DeidError),
    /// The store refused or failed (zone rules included).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused the output (leak check, unknown format...).
    #[error("de-identification gate refused: {reason}")]
    Refused {
        /// Why, by file index and path.
        reason: String,
    },
    /// The report could not be serialised.
    #[error("the de-identification report could not be written")]
    Report,
}

impl From<airlock_types::IdError> for GateError {
    fn from(e: airlock_types::IdError) -> Self {
        GateError::Store(StoreError::Id(e))
    }
}

impl From<airlock_ledger::EntryError> for GateError {
    fn from(e: airlock_ledger::EntryError) -> Self {
        GateError::Store(StoreError::Entry(e))
    }
}

/// What the gate produced.
#[derive(Debug)]
pub struct GateOutcome {
    /// The new version.
    pub version: DatasetVersion,
    /// Records quarantined.
    pub quarantined: usize,
    /// Human-readable summary of the merged report (no values).
    pub summary: String,
}

fn format_named(name: &str) -> Option<Format> {
    [
        Format::FhirJson,
        Format::FhirNdjson,
        Format::Hl7v2,
        Format::Csv,
    ]
    .into_iter()
    .find(|f| f.name() == name)
}

/// Run the gate inside an open home.
pub async fn run_gate(
    home: &Home,
    profile_spec: &str,
    dataset: &str,
    out_dataset: &DatasetName,
) -> Result<GateOutcome, GateError> {
    let profile = Profile::load(profile_spec)?;
    let (name, ver) = parse_version_spec(dataset)?;
    let input = home.version(&name, ver).await?;
    let files = home
        .read_version(&input, Access::Gate(Gate::Deidentify), None)
        .await?;
    let key = home.pseudonym_key()?;
    let keys = DeidKeys::new(key.expose_secret().to_vec())?;
    // The safe-harbor crosswalk re-identifies: it stays encrypted in the clinical zone.
    let cw_name = format!("crosswalk/{}", keys.key_id());
    let mut crosswalk = match home.blob(&cw_name, Zone::Clinical).await? {
        Some(b) => Crosswalk::from_bytes(&b)?,
        None => Crosswalk::new(),
    };
    let (out_zone, out_class) = match profile.classification() {
        OutputClass::Deidentified => (Zone::Development, Classification::Deidentified),
        OutputClass::LimitedDataSet => (Zone::Clinical, Classification::LimitedDataSet),
    };
    let mut inputs = Vec::with_capacity(files.len());
    let mut failure: Option<String> = None;
    for (i, (f, bytes)) in files.iter().enumerate() {
        let Some(format) = format_named(&f.format) else {
            failure = Some(format!("file {i} has an unknown format `{}`", f.format));
            break;
        };
        inputs.push(DatasetFile { format, bytes });
    }
    let mut out_files = Vec::with_capacity(files.len() + 1);
    let mut reports = Vec::new();
    if failure.is_none() {
        match airlock_deid::deid_dataset(&profile, &keys, &mut crosswalk, &inputs) {
            Ok((outputs, report)) => {
                for (i, (o, input)) in outputs.into_iter().zip(&inputs).enumerate() {
                    let table = o
                        .table
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(|t| format!(".{t}"))
                        .unwrap_or_default();
                    out_files.push(NewFile {
                        name: format!("part-{i:05}{table}.{}", input.format.extension()),
                        format: input.format.name().to_owned(),
                        records: o.records,
                        bytes: o.bytes,
                    });
                }
                reports.push(report);
            }
            Err(DeidError::LeakCheckFailed { report, .. }) => {
                let mut in_files: Vec<&str> = report
                    .leak_check
                    .hits
                    .iter()
                    .map(|h| h.file.as_str())
                    .collect();
                in_files.sort_unstable();
                in_files.dedup();
                failure = Some(format!(
                    "the leak check found identifying values in the output ({} hits in {}): {}",
                    report.leak_check.hits.len(),
                    in_files.join(", "),
                    report.leak_advice().unwrap_or_default()
                ));
            }
            Err(e) => failure = Some(e.to_string()),
        }
    }
    let profile_hash: Option<ContentHash> = profile.hash().parse().ok();
    let base_entry = |outcome| {
        home.entry(EventType::DeidRun, Zone::Airlock, outcome)
            .with_resource(input.reference().to_string())
    };
    if let Some(reason) = failure {
        home.audit(
            base_entry(OutcomeKind::Failure)
                .with_reason(format!("profile {}: {reason}", profile.name())),
        )
        .await?;
        return Err(GateError::Refused { reason });
    }
    let quarantined: usize = reports.iter().map(|r| r.quarantined.len()).sum();
    let summary = reports
        .iter()
        .map(|r| r.summary())
        .collect::<Vec<_>>()
        .join("\n");
    let report_json = serde_json::to_vec_pretty(&reports).map_err(|_| GateError::Report)?;
    out_files.push(NewFile {
        name: "deid-report.json".into(),
        format: "report".into(),
        records: 0,
        bytes: report_json,
    });
    home.put_blob(
        &cw_name,
        Zone::Clinical,
        Classification::Phi,
        &crosswalk.to_bytes(),
    )
    .await?;
    let mut params = BTreeMap::new();
    params.insert("profile".to_string(), profile.name().to_string());
    params.insert("key_id".to_string(), keys.key_id().to_string());
    params.insert(
        "engine_version".to_string(),
        reports
            .first()
            .map(|r| r.engine_version.clone())
            .unwrap_or_default(),
    );
    params.insert("quarantined".to_string(), quarantined.to_string());
    let nv = NewVersion {
        dataset: out_dataset.clone(),
        zone: out_zone,
        classification: out_class,
        source: Some((input.zone, input.classification)),
        files: out_files,
        lineage: Lineage {
            source_system: input.lineage.source_system.clone(),
            extracted_at: chrono::Utc::now().to_rfc3339(),
            triggered_by: home.actor().clone(),
            parents: vec![input.reference()],
            gate: Gate::Deidentify,
            transform: Transform {
                name: "deidentify".into(),
                config_hash: profile_hash,
                params,
            },
            airlock_version: airlock_store::AIRLOCK_VERSION.into(),
        },
    };
    let version = home.write_version(nv).await?;
    home.audit(
        base_entry(OutcomeKind::Success)
            .with_resource(version.reference().to_string())
            .with_reason(format!(
                "profile {} ({}); leak check passed; {quarantined} records quarantined",
                profile.name(),
                profile.hash().get(..12).unwrap_or("")
            )),
    )
    .await?;
    Ok(GateOutcome {
        version,
        quarantined,
        summary,
    })
}
