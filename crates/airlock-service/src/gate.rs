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
        Format::Notes,
    ]
    .into_iter()
    .find(|f| f.name() == name)
}

/// What the engine made of a source version, before anything is released.
pub struct Assessed {
    /// The de-identified files, in input order.
    pub outputs: Vec<airlock_deid::DatasetOutput>,
    /// The run's report (leak check and risk included).
    pub report: airlock_deid::RunReport,
    crosswalk: Crosswalk,
    crosswalk_name: String,
    key_id: String,
    formats: Vec<Format>,
}

// By hand: the outputs and the crosswalk hold data; a debug print shows counts only.
impl std::fmt::Debug for Assessed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assessed")
            .field("outputs", &self.outputs.len())
            .field("leak_check_passed", &self.report.leak_check.passed)
            .finish_non_exhaustive()
    }
}

/// Run the engine over `input` without releasing anything: the gate's first half, and what an
/// expert's determination is computed from. A leak-check failure is in the report, not an
/// error: whether it may be released is the caller's decision.
pub async fn assess(
    home: &Home,
    profile: &Profile,
    input: &DatasetVersion,
) -> Result<Assessed, GateError> {
    let files = home
        .read_version(input, Access::Gate(Gate::Deidentify), None)
        .await?;
    let key = home.pseudonym_key()?;
    let keys = DeidKeys::new(key.expose_secret().to_vec())?;
    // The safe-harbor crosswalk re-identifies: it stays encrypted in the clinical zone.
    let crosswalk_name = format!("crosswalk/{}", keys.key_id());
    let mut crosswalk = match home.blob(&crosswalk_name, Zone::Clinical).await? {
        Some(b) => Crosswalk::from_bytes(&b)?,
        None => Crosswalk::new(),
    };
    let mut inputs = Vec::with_capacity(files.len());
    for (i, (f, bytes)) in files.iter().enumerate() {
        let Some(format) = format_named(&f.format) else {
            return Err(GateError::Refused {
                reason: format!("file {i} has an unknown format `{}`", f.format),
            });
        };
        inputs.push(DatasetFile { format, bytes });
    }
    let (outputs, report) =
        airlock_deid::deid_dataset_assessed(profile, &keys, &mut crosswalk, &inputs).map_err(
            |e| GateError::Refused {
                reason: e.to_string(),
            },
        )?;
    Ok(Assessed {
        outputs,
        report,
        crosswalk,
        crosswalk_name,
        key_id: keys.key_id().to_string(),
        formats: inputs.iter().map(|i| i.format).collect(),
    })
}

/// Why the leak check refuses a release: where, by file and path, and what to do.
fn leak_refusal(report: &airlock_deid::RunReport) -> String {
    let mut in_files: Vec<&str> = report
        .leak_check
        .hits
        .iter()
        .map(|h| h.file.as_str())
        .collect();
    in_files.sort_unstable();
    in_files.dedup();
    format!(
        "the leak check found identifying values in the output ({} hits in {}): {}",
        report.leak_check.hits.len(),
        in_files.join(", "),
        report.leak_advice().unwrap_or_default()
    )
}

/// Run the gate inside an open home.
///
/// Whatever the profile's `leak_check` says (`warn` is for file mode's trials), a release
/// whose leak check failed is refused, except under an expert-determination profile with a
/// signed determination that covers exactly these findings; and a release under such a
/// profile always needs one.
pub async fn run_gate(
    home: &Home,
    profile_spec: &str,
    dataset: &str,
    out_dataset: &DatasetName,
) -> Result<GateOutcome, GateError> {
    let profile = Profile::load(profile_spec)?;
    let (name, ver) = parse_version_spec(dataset)?;
    let input = home.version(&name, ver).await?;
    let (out_zone, out_class) = match profile.classification() {
        OutputClass::Deidentified => (Zone::Development, Classification::Deidentified),
        OutputClass::LimitedDataSet => (Zone::Clinical, Classification::LimitedDataSet),
    };
    let mut failure: Option<String> = None;
    let mut determination = None;
    let mut assessed = None;
    match assess(home, &profile, &input).await {
        Err(GateError::Refused { reason }) => failure = Some(reason),
        Err(e) => return Err(e),
        Ok(a) => {
            let leaked = !a.report.leak_check.passed;
            if profile.requires_expert_determination() {
                let findings = crate::determinations::Findings::of(&a.report);
                let candidates = crate::determinations::stored(home, &input).await?;
                match crate::determinations::covering(
                    &candidates,
                    &input.manifest_hash.to_hex(),
                    profile.hash(),
                    &findings,
                    chrono::Utc::now().date_naive(),
                    |m, sig| home.verify_artifact(m, sig),
                ) {
                    Ok(d) => determination = Some(d.clone()),
                    Err(why) => {
                        failure = Some(format!(
                            "profile `{}` releases only under an expert's signed determination, \
                             and {why}. A person with the deid-expert role reviews these \
                             findings and signs one (POST /v1/expert-determinations): {}",
                            profile.name(),
                            findings.summary()
                        ));
                    }
                }
            } else if leaked {
                failure = Some(leak_refusal(&a.report));
            }
            assessed = Some(a);
        }
    }
    let profile_hash: Option<ContentHash> = profile.hash().parse().ok();
    let base_entry = |outcome| {
        home.entry(EventType::DeidRun, Zone::Airlock, outcome)
            .with_resource(input.reference().to_string())
    };
    let (Some(assessed), None) = (assessed, &failure) else {
        let reason = failure.unwrap_or_default();
        home.audit(
            base_entry(OutcomeKind::Failure)
                .with_reason(format!("profile {}: {reason}", profile.name())),
        )
        .await?;
        return Err(GateError::Refused { reason });
    };
    let Assessed {
        outputs,
        report,
        crosswalk,
        crosswalk_name: cw_name,
        key_id,
        formats,
    } = assessed;
    let mut out_files = Vec::with_capacity(outputs.len() + 2);
    for (i, (o, format)) in outputs.into_iter().zip(&formats).enumerate() {
        let table = o
            .table
            .as_deref()
            .and_then(|t| t.rsplit('/').next())
            .map(|t| format!(".{t}"))
            .unwrap_or_default();
        out_files.push(NewFile {
            name: format!("part-{i:05}{table}.{}", format.extension()),
            format: format.name().to_owned(),
            records: o.records,
            bytes: o.bytes,
        });
    }
    let leak_line = if report.leak_check.passed {
        "leak check passed".to_owned()
    } else {
        format!(
            "leak check: {} hit(s) accepted by the determination",
            report.leak_check.hits.len()
        )
    };
    let reports = vec![report];
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
    if let Some(d) = &determination {
        // The determination travels with the release it allows.
        out_files.push(NewFile {
            name: "expert-determination.json".into(),
            format: "determination".into(),
            records: 0,
            bytes: serde_json::to_vec_pretty(d).map_err(|_| GateError::Report)?,
        });
    }
    home.put_blob(
        &cw_name,
        Zone::Clinical,
        Classification::Phi,
        &crosswalk.to_bytes(),
    )
    .await?;
    let mut params = BTreeMap::new();
    params.insert("profile".to_string(), profile.name().to_string());
    params.insert("key_id".to_string(), key_id);
    if let Some(d) = &determination {
        params.insert("expert_determination".to_string(), d.id.clone());
        params.insert("expert".to_string(), d.signed.expert.clone());
    }
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
                "profile {} ({}); {leak_line}; {quarantined} records quarantined{}",
                profile.name(),
                profile.hash().get(..12).unwrap_or(""),
                determination
                    .as_ref()
                    .map(|d| format!(
                        "; under expert determination {} by {} until {}",
                        d.id, d.signed.expert, d.signed.conditions.expires
                    ))
                    .unwrap_or_default()
            )),
    )
    .await?;
    Ok(GateOutcome {
        version,
        quarantined,
        summary,
    })
}
