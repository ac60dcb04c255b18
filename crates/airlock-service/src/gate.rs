//! The de-identification gate: a clinical dataset version in, a de-identified version in
//! development out, with lineage, an encrypted crosswalk kept in the clinical zone, and ledger
//! entries for the run. The CLI (`airlock deid --home`) and the API (`POST /v1/deid-runs`)
//! both run it.

use std::collections::BTreeMap;

use airlock_deid::{Crosswalk, DeidError, DeidKeys, Format, OutputClass, Profile};
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
    let mut out_files = Vec::with_capacity(files.len());
    let mut reports = Vec::new();
    let mut failure: Option<String> = None;
    for (i, (f, bytes)) in files.iter().enumerate() {
        let Some(format) = format_named(&f.format) else {
            failure = Some(format!("file {i} has an unknown format `{}`", f.format));
            break;
        };
        match airlock_deid::deid_bytes(&profile, &keys, &mut crosswalk, format, bytes) {
            Ok((out, report)) => {
                out_files.push(NewFile {
                    name: format!("part-{i:05}.{}", format.extension()),
                    format: f.format.clone(),
                    records: report.records_out,
                    bytes: out,
                });
                reports.push(report);
            }
            Err(DeidError::LeakCheckFailed { report, .. }) => {
                failure = Some(format!(
                    "the leak check found identifying values in the output of file {i} ({} hits, by path: {})",
                    report.leak_check.hits.len(),
                    report
                        .leak_check
                        .hits
                        .iter()
                        .take(5)
                        .map(|h| h.path.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                break;
            }
            Err(e) => {
                failure = Some(format!("file {i}: {e}"));
                break;
            }
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
