//! Reading, searching and exporting entries: JSONL, FHIR R4 AuditEvent, and the accounting of
//! disclosures (45 CFR 164.528).

use std::io;
use std::path::Path;

use chrono::{DateTime, Months, Utc};
use serde_json::{Value, json};

use airlock_types::{ActorId, Purpose};

use crate::entry::{Entry, EventType, OutcomeKind, PatientPseudonym};
use crate::ledger::{LedgerError, WAL_FILE};
use crate::wal;

/// Read every durable entry of the ledger in `dir` (from its write-ahead log, without
/// modifying it), parsing each strictly. Yields `(index, entry)`; an invalid entry yields an
/// error naming its index.
pub fn read_entries(
    dir: &Path,
) -> Result<impl Iterator<Item = Result<(u64, Entry), LedgerError>>, LedgerError> {
    let path = dir.join(WAL_FILE);
    let raw = wal::read_all(&path).map_err(|source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(raw.into_iter().enumerate().map(|(i, b)| {
        let index = i as u64;
        Entry::parse(&b)
            .map(|e| (index, e))
            .map_err(|source| LedgerError::EntryAt { index, source })
    }))
}

/// Where an incremental reader of a ledger's WAL has got to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tail {
    /// Byte offset just past the last complete record read (0: not started).
    pub offset: u64,
    /// The index of the next entry.
    pub next: u64,
}

/// The entries appended since `tail`, parsed strictly, advancing `tail`. Only complete
/// records whose check bytes match are returned; a record still being written is left for the
/// next call. For readers that keep an index of a live ledger (the server's audit search).
pub fn read_new_entries(dir: &Path, tail: &mut Tail) -> Result<Vec<(u64, Entry)>, LedgerError> {
    use std::io::{Read, Seek, SeekFrom};
    let path = dir.join(WAL_FILE);
    let io_err = |source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io_err)?;
    let start = if tail.offset == 0 {
        wal::MAGIC.len() as u64
    } else {
        tail.offset
    };
    if file.metadata().map_err(io_err)?.len() <= start {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    // The reader expects the header first: give it one, then the bytes from `start`.
    let mut reader =
        wal::Reader::new(std::io::Cursor::new(wal::MAGIC.to_vec()).chain(file)).map_err(io_err)?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut offset = start;
    while let Some(check) = reader.next_into(&mut buf).map_err(io_err)? {
        if crate::merkle::leaf_hash(&buf).get(..4) != Some(&check[..]) {
            break;
        }
        let index = tail.next;
        let entry = Entry::parse(&buf).map_err(|source| LedgerError::EntryAt { index, source })?;
        out.push((index, entry));
        offset += 8 + buf.len() as u64;
        tail.next += 1;
    }
    tail.offset = offset;
    Ok(out)
}

/// A search: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this actor.
    pub actor: Option<ActorId>,
    /// Only this patient (hash the MRN with [`crate::patient_pseudonym`] first).
    pub patient: Option<PatientPseudonym>,
    /// Only these event types (empty: all).
    pub events: Vec<EventType>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Strictly before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    /// Whether `entry` matches.
    pub fn matches(&self, entry: &Entry) -> bool {
        self.actor.as_ref().is_none_or(|a| &entry.actor == a)
            && self
                .patient
                .as_ref()
                .is_none_or(|p| entry.patient.as_ref() == Some(p))
            && (self.events.is_empty() || self.events.contains(&entry.event))
            && self.since.is_none_or(|t| entry.time.get() >= t)
            && self.until.is_none_or(|t| entry.time.get() < t)
    }
}

/// Entries of the ledger in `dir` matching `filter`, with their indices.
pub fn search(dir: &Path, filter: &Filter) -> Result<Vec<(u64, Entry)>, LedgerError> {
    let mut out = Vec::new();
    for item in read_entries(dir)? {
        let (i, e) = item?;
        if filter.matches(&e) {
            out.push((i, e));
        }
    }
    Ok(out)
}

/// Write entries as JSON Lines: each line the entry's canonical JSON.
pub fn write_jsonl<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    out: &mut impl io::Write,
) -> Result<(), LedgerError> {
    let werr = |source| LedgerError::Io {
        path: "jsonl output".into(),
        source,
    };
    for e in entries {
        out.write_all(&e.to_canonical_json()?).map_err(werr)?;
        out.write_all(b"\n").map_err(werr)?;
    }
    Ok(())
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const PURPOSE_OF_USE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const PSEUDONYM_SYSTEM: &str = "urn:airlock:patient-pseudonym";

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// FHIR `type` and `subtype` codings for an event.
fn event_codes(event: EventType) -> (Value, Vec<Value>, &'static str) {
    let app = || coding(DCM, "110100", "Application Activity");
    let sub = |code: &str| vec![coding(AUDIT_EVENT_TYPE, code, code)];
    let custom =
        |code: &str| vec![json!({ "system": "urn:airlock:event", "code": code, "display": code })];
    match event {
        EventType::Login => (
            coding(DCM, "110114", "User Authentication"),
            vec![coding(DCM, "110122", "Login")],
            "E",
        ),
        EventType::Access => (coding(DCM, "110110", "Patient Record"), sub("read"), "R"),
        EventType::Query => (coding(DCM, "110112", "Query"), sub("search"), "E"),
        EventType::Export | EventType::Disclosure => {
            (coding(DCM, "110106", "Export"), custom(event.as_str()), "R")
        }
        EventType::Ingest => (coding(DCM, "110107", "Import"), custom("ingest"), "C"),
        EventType::BreakGlassStart => (
            coding(DCM, "110113", "Security Alert"),
            vec![coding(DCM, "110127", "Emergency Override Started")],
            "E",
        ),
        EventType::BreakGlassStop => (
            coding(DCM, "110113", "Security Alert"),
            vec![coding(DCM, "110138", "Emergency Override Stopped")],
            "E",
        ),
        EventType::KeyRotation => (
            coding(DCM, "110113", "Security Alert"),
            custom("key_rotation"),
            "U",
        ),
        EventType::PolicyDecision => (
            coding(DCM, "110113", "Security Alert"),
            custom("policy_decision"),
            "E",
        ),
        EventType::DatasetCreate => (app(), custom("dataset_create"), "C"),
        other => (app(), custom(other.as_str()), "E"),
    }
}

/// A FHIR R4 AuditEvent for entry `index` (IHE BALP style). Break-glass uses DICOM 110113 with
/// subtype 110127 (started) or 110138 (stopped); the emergency purpose is `ETREAT`.
pub fn to_fhir_audit_event(index: u64, entry: &Entry) -> Value {
    let (ty, subtype, action) = event_codes(entry.event);
    let outcome = match entry.outcome.result {
        OutcomeKind::Allowed | OutcomeKind::Success => "0",
        OutcomeKind::Denied => "4",
        OutcomeKind::Failure => "8",
    };
    // Break-glass is emergency access whatever purpose the caller recorded.
    let purpose = match entry.event {
        EventType::BreakGlassStart | EventType::BreakGlassStop => Some(Purpose::Emergency),
        _ => entry.purpose,
    };
    let mut ev = json!({
        "resourceType": "AuditEvent",
        "id": format!("ledger-{index}"),
        "type": ty,
        "subtype": subtype,
        "action": action,
        "recorded": entry.time.to_string(),
        "outcome": outcome,
        "agent": [{
            "who": { "identifier": { "value": entry.actor.as_str() } },
            "requestor": true,
        }],
        "source": {
            "site": entry.zone.as_str(),
            "observer": { "display": "airlock" },
            "type": [coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")],
        },
    });
    let Some(obj) = ev.as_object_mut() else {
        return ev;
    };
    if let Some(r) = &entry.outcome.reason {
        obj.insert("outcomeDesc".into(), json!(r));
    }
    if let Some(p) = purpose {
        obj.insert(
            "purposeOfEvent".into(),
            json!([{ "coding": [coding(PURPOSE_OF_USE, p.hl7_code(), p.as_str())] }]),
        );
    }
    let mut entities = Vec::new();
    if let Some(p) = &entry.patient {
        entities.push(json!({
            "what": { "identifier": { "system": PSEUDONYM_SYSTEM, "value": p.as_str() } },
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
            "role": coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"),
        }));
    }
    for r in &entry.resources {
        entities.push(json!({
            "what": { "identifier": { "value": r } },
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
        }));
    }
    if let Some(d) = &entry.disclosure {
        entities.push(json!({
            "name": d.recipient,
            "description": d.description,
            "role": coding("http://terminology.hl7.org/CodeSystem/object-role", "3", "Report"),
        }));
    }
    if let Some(p) = &entry.prediction {
        let mut detail = vec![
            json!({ "type": "model", "valueString": p.model }),
            json!({ "type": "version_hash", "valueString": p.version_hash.to_hex() }),
            json!({ "type": "features", "valueString": p.features.join(",") }),
            json!({ "type": "features_hash", "valueString": p.features_hash.to_hex() }),
            json!({ "type": "output", "valueString": p.output }),
            json!({ "type": "display", "valueString": match p.display {
                crate::entry::Display::Shown => "shown",
                crate::entry::Display::Silent => "silent",
            } }),
        ];
        if let Some(c) = p.confidence {
            detail.push(json!({ "type": "confidence", "valueString": c.to_string() }));
        }
        if let Some(o) = &p.override_reason {
            detail.push(json!({ "type": "override_reason", "valueString": o }));
        }
        entities.push(json!({
            "what": { "identifier": { "value": p.model } },
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
            "detail": detail,
        }));
    }
    if !entities.is_empty() {
        obj.insert("entity".into(), Value::Array(entities));
    }
    obj.insert(
        "extension".into(),
        json!([{
            "url": "urn:airlock:request-id",
            "valueString": entry.request_id.as_str(),
        }]),
    );
    ev
}

/// One line of an accounting of disclosures (45 CFR 164.528(b)(2)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureRecord {
    /// Ledger index of the event.
    pub index: u64,
    /// Date of the disclosure.
    pub date: DateTime<Utc>,
    /// Who received it.
    pub recipient: String,
    /// What was disclosed.
    pub description: String,
    /// The purpose (the HL7 code and name), or a statement that none was recorded.
    pub purpose: String,
}

/// The accounting of disclosures for `patient` as of `now`: successful or allowed `export`
/// and `disclosure` events about the patient in the six years before `now`, oldest first.
///
/// Disclosures for treatment, payment and health care operations are excluded, as
/// 164.528(a)(1)(i) allows. An event without a recorded recipient names the acting
/// user or service as recipient.
pub fn disclosures<'a>(
    entries: impl IntoIterator<Item = (u64, &'a Entry)>,
    patient: &PatientPseudonym,
    now: DateTime<Utc>,
) -> Vec<DisclosureRecord> {
    let from = now
        .checked_sub_months(Months::new(72))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut out: Vec<DisclosureRecord> = entries
        .into_iter()
        .filter(|(_, e)| {
            matches!(e.event, EventType::Export | EventType::Disclosure)
                && e.patient.as_ref() == Some(patient)
                && matches!(
                    e.outcome.result,
                    OutcomeKind::Success | OutcomeKind::Allowed
                )
                && !matches!(
                    e.purpose,
                    Some(Purpose::Treatment | Purpose::Payment | Purpose::Operations)
                )
                && e.time.get() >= from
                && e.time.get() <= now
        })
        .map(|(index, e)| DisclosureRecord {
            index,
            date: e.time.get(),
            recipient: e
                .disclosure
                .as_ref()
                .map_or_else(|| e.actor.to_string(), |d| d.recipient.clone()),
            description: e.disclosure.as_ref().map_or_else(
                || {
                    if e.resources.is_empty() {
                        "unspecified".to_owned()
                    } else {
                        e.resources.join(", ")
                    }
                },
                |d| d.description.clone(),
            ),
            purpose: e.purpose.map_or_else(
                || "not recorded".to_owned(),
                |p| format!("{} ({})", p.as_str(), p.hl7_code()),
            ),
        })
        .collect();
    out.sort_by_key(|d| (d.date, d.index));
    out
}
