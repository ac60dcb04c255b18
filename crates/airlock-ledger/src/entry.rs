//! Ledger entries: one versioned, canonical JSON object per event.
//!
//! Canonical means: the fields in the order declared below, optional fields omitted when
//! absent (never `null`), no insignificant whitespace, times as UTC RFC 3339 with exactly six
//! fractional digits and `Z`. [`Entry::parse`] accepts only that form: it rejects unknown
//! fields and re-serialises the value to check that it gets back the same bytes, so one event
//! has exactly one encoding and one leaf hash.
//!
//! No raw PHI goes in: a patient is named only by a [`PatientPseudonym`], the keyed HMAC of the
//! MRN ([`patient_pseudonym`]); free-text fields are short, single-line and documented as
//! PHI-free. Error messages from this module name fields and positions, never values.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

use airlock_types::{ActorId, ContentHash, Purpose, RequestId, Zone};

/// Longest free-text field (reasons, descriptions), in bytes.
const MAX_TEXT: usize = 1024;
/// Longest short identifier field (resources, model ids, feature names), in bytes.
const MAX_NAME: usize = 256;
/// Most items in a list field.
const MAX_ITEMS: usize = 1024;

/// An entry that is malformed, not canonical or fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not valid JSON for the schema (position only; the value is never echoed).
    #[error("entry is not valid: {category} error at line {line}, column {column}")]
    Json {
        /// `syntax`, `data` (schema mismatch), `eof` or `io`.
        category: &'static str,
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        column: usize,
    },
    /// Valid, but not the canonical encoding of its value.
    #[error("entry is not in canonical form")]
    NonCanonical,
    /// A field fails validation.
    #[error("entry field `{field}` is invalid: {reason}")]
    Field {
        /// The field path.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The encoded entry is larger than an entry bundle can hold.
    #[error("entry is {len} bytes; the limit is 65535")]
    TooLarge {
        /// Encoded length.
        len: usize,
    },
}

impl EntryError {
    fn from_json(e: &serde_json::Error) -> Self {
        let category = match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        };
        EntryError::Json {
            category,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// The entry schema version; only `1` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaVersion;

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        if v == 1 {
            Ok(SchemaVersion)
        } else {
            Err(serde::de::Error::custom("unsupported entry version"))
        }
    }
}

/// A UTC instant with microsecond precision, written `2026-01-02T03:04:05.000006Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Wrap a time, truncating it to whole microseconds.
    pub fn new(t: DateTime<Utc>) -> Self {
        let micros = t.timestamp_micros();
        Timestamp(DateTime::from_timestamp_micros(micros).unwrap_or(t))
    }

    /// The current time.
    pub fn now() -> Self {
        Timestamp::new(Utc::now())
    }

    /// The time.
    pub fn get(&self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp::new(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&s)
            .map_err(|_| serde::de::Error::custom("time is not RFC 3339"))?;
        Ok(Timestamp(t.with_timezone(&Utc)))
    }
}

impl schemars::JsonSchema for SchemaVersion {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("SchemaVersion")
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"const": 1})
    }
}

impl schemars::JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Timestamp")
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventType {
    /// A user or service signed in.
    Login,
    /// Data was read.
    Access,
    /// A query ran.
    Query,
    /// Data left the system (an export file, a download).
    Export,
    /// Data was disclosed to a recipient outside the covered entity.
    Disclosure,
    /// A de-identification run.
    DeidRun,
    /// An access-policy decision (allowed or denied).
    PolicyDecision,
    /// Emergency access began.
    BreakGlassStart,
    /// Emergency access ended.
    BreakGlassStop,
    /// A key was rotated.
    KeyRotation,
    /// A model was registered.
    ModelRegister,
    /// A model was approved.
    ModelApprove,
    /// A model was deployed.
    ModelDeploy,
    /// A model made a prediction.
    Prediction,
    /// A human overrode a prediction.
    Override,
    /// The observed outcome (label) of a prediction was posted back.
    Outcome,
    /// Configuration changed.
    ConfigChange,
    /// Data was ingested.
    Ingest,
    /// A dataset was created.
    DatasetCreate,
    /// A check of the deployment's own records failed (identity rows that fail their seals):
    /// what incident response starts from.
    SecurityAlert,
    /// An expert signed a determination for a release (45 CFR 164.514(b)(1)).
    ExpertDetermination,
    /// A differentially private answer left the zone of its source (the DP release gate),
    /// or was refused by its budget.
    DpRelease,
    /// A monitoring rule fired or resolved on a deployed model, or its notification was
    /// delivered or failed.
    MonitoringAlert,
    /// Data was erased for good at the end of its retention period (its data keys destroyed).
    Erasure,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 24] = [
        EventType::Login,
        EventType::Access,
        EventType::Query,
        EventType::Export,
        EventType::Disclosure,
        EventType::DeidRun,
        EventType::PolicyDecision,
        EventType::BreakGlassStart,
        EventType::BreakGlassStop,
        EventType::KeyRotation,
        EventType::ModelRegister,
        EventType::ModelApprove,
        EventType::ModelDeploy,
        EventType::Prediction,
        EventType::Override,
        EventType::Outcome,
        EventType::ConfigChange,
        EventType::Ingest,
        EventType::DatasetCreate,
        EventType::SecurityAlert,
        EventType::ExpertDetermination,
        EventType::DpRelease,
        EventType::MonitoringAlert,
        EventType::Erasure,
    ];

    /// The name written in entries (`break_glass_start`...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Login => "login",
            EventType::Access => "access",
            EventType::Query => "query",
            EventType::Export => "export",
            EventType::Disclosure => "disclosure",
            EventType::DeidRun => "deid_run",
            EventType::PolicyDecision => "policy_decision",
            EventType::BreakGlassStart => "break_glass_start",
            EventType::BreakGlassStop => "break_glass_stop",
            EventType::KeyRotation => "key_rotation",
            EventType::ModelRegister => "model_register",
            EventType::ModelApprove => "model_approve",
            EventType::ModelDeploy => "model_deploy",
            EventType::Prediction => "prediction",
            EventType::Override => "override",
            EventType::Outcome => "outcome",
            EventType::ConfigChange => "config_change",
            EventType::Ingest => "ingest",
            EventType::DatasetCreate => "dataset_create",
            EventType::SecurityAlert => "security_alert",
            EventType::ExpertDetermination => "expert_determination",
            EventType::DpRelease => "dp_release",
            EventType::MonitoringAlert => "monitoring_alert",
            EventType::Erasure => "erasure",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or(EntryError::Field {
                field: "event",
                reason: "unknown event type",
            })
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// A decision that allowed the action.
    Allowed,
    /// A decision that denied the action.
    Denied,
    /// The action completed.
    Success,
    /// The action failed.
    Failure,
}

/// The outcome and, optionally, its reason (no PHI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// Allowed, denied, success or failure.
    pub result: OutcomeKind,
    /// Why (a policy rule, an error class). Must not contain PHI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A keyed pseudonym for a patient: lowercase hex of HMAC-SHA256(deployment key, MRN).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct PatientPseudonym(String);

impl PatientPseudonym {
    /// Validate 64 lowercase hex digits.
    pub fn new(s: impl Into<String>) -> Result<Self, EntryError> {
        let s = s.into();
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(PatientPseudonym(s))
        } else {
            Err(EntryError::Field {
                field: "patient",
                reason: "expected 64 lowercase hex digits",
            })
        }
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PatientPseudonym {
    type Error = EntryError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PatientPseudonym::new(s)
    }
}

impl From<PatientPseudonym> for String {
    fn from(p: PatientPseudonym) -> String {
        p.0
    }
}

impl fmt::Display for PatientPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The pseudonym for `mrn` under the deployment key: HMAC-SHA256, lowercase hex. Callers
/// writing entries and callers searching by MRN both use this, so they meet.
pub fn patient_pseudonym(key: &[u8], mrn: &str) -> PatientPseudonym {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return PatientPseudonym(String::new()),
    };
    mac.update(mrn.as_bytes());
    PatientPseudonym(hex::encode(mac.finalize().into_bytes()))
}

/// Whether a prediction was shown to a clinician or logged silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Display {
    /// Shown to a user.
    Shown,
    /// Recorded only (shadow mode).
    Silent,
}

/// What a model predicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PredictionRecord")]
pub struct Prediction {
    /// The model id.
    pub model: String,
    /// The hash of the model version's artifact.
    pub version_hash: ContentHash,
    /// Names of the features used.
    pub features: Vec<String>,
    /// SHA-256 of the canonical feature values (the values themselves stay out).
    pub features_hash: ContentHash,
    /// The output (a label or a score written as text).
    pub output: String,
    /// Confidence in `[0, 1]`, if the model gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Shown or silent.
    pub display: Display,
    /// Why a human overrode it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
}

/// Who received data and what (for the accounting of disclosures, 45 CFR 164.528).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisclosureInfo {
    /// The recipient (an organisation or person, by name or id).
    pub recipient: String,
    /// A brief description of what was disclosed.
    pub description: String,
}

/// One ledger entry. Build with [`Entry::new`] and the `with_*` methods.
/// An entry already validated and in canonical form: only [`Entry::encode`] makes one, so the
/// ledger can append it without encoding or checking it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(Vec<u8>);

impl Encoded {
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Schema version, always 1.
    pub v: SchemaVersion,
    /// When (UTC).
    pub time: Timestamp,
    /// Who: a user or service id.
    pub actor: ActorId,
    /// What.
    pub event: EventType,
    /// Where.
    pub zone: Zone,
    /// Why, when the event concerns data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// The request that caused it.
    pub request_id: RequestId,
    /// Resources touched: dataset versions, model versions, config names.
    pub resources: Vec<String>,
    /// The patient concerned, by pseudonym.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientPseudonym>,
    /// How it ended.
    pub outcome: Outcome,
    /// For exports and disclosures: to whom and what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<DisclosureInfo>,
    /// For predictions and overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
}

fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), EntryError> {
    if s.is_empty() {
        return Err(EntryError::Field {
            field,
            reason: "empty",
        });
    }
    if s.len() > max {
        return Err(EntryError::Field {
            field,
            reason: "too long",
        });
    }
    if s.chars().any(char::is_control) {
        return Err(EntryError::Field {
            field,
            reason: "control character",
        });
    }
    Ok(())
}

fn check_list(field: &'static str, items: &[String]) -> Result<(), EntryError> {
    if items.len() > MAX_ITEMS {
        return Err(EntryError::Field {
            field,
            reason: "too many items",
        });
    }
    items
        .iter()
        .try_for_each(|s| check_text(field, s, MAX_NAME))
}

impl Entry {
    /// An entry with the required fields; optional ones are empty.
    pub fn new(
        time: Timestamp,
        actor: ActorId,
        event: EventType,
        zone: Zone,
        request_id: RequestId,
        outcome: OutcomeKind,
    ) -> Self {
        Entry {
            v: SchemaVersion,
            time,
            actor,
            event,
            zone,
            purpose: None,
            request_id,
            resources: Vec::new(),
            patient: None,
            outcome: Outcome {
                result: outcome,
                reason: None,
            },
            disclosure: None,
            prediction: None,
        }
    }

    /// Set the purpose of use.
    pub fn with_purpose(mut self, purpose: Purpose) -> Self {
        self.purpose = Some(purpose);
        self
    }

    /// Add a resource (a dataset or model version, as text).
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// Set the patient pseudonym.
    pub fn with_patient(mut self, patient: PatientPseudonym) -> Self {
        self.patient = Some(patient);
        self
    }

    /// Set the outcome's reason (no PHI).
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.outcome.reason = Some(reason.into());
        self
    }

    /// Set the disclosure recipient and description.
    pub fn with_disclosure(mut self, info: DisclosureInfo) -> Self {
        self.disclosure = Some(info);
        self
    }

    /// Set the prediction details.
    pub fn with_prediction(mut self, prediction: Prediction) -> Self {
        self.prediction = Some(prediction);
        self
    }

    /// Check every field's bounds.
    pub fn validate(&self) -> Result<(), EntryError> {
        let rid = self.request_id.as_str();
        if rid.len() != 32
            || !rid
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(EntryError::Field {
                field: "request_id",
                reason: "expected 32 lowercase hex digits",
            });
        }
        // ActorId and PatientPseudonym validate themselves on construction and parsing; the
        // pseudonym is re-checked because `patient_pseudonym` builds it directly.
        if let Some(p) = &self.patient {
            PatientPseudonym::new(p.as_str())?;
        }
        check_list("resources", &self.resources)?;
        if let Some(r) = &self.outcome.reason {
            check_text("outcome.reason", r, MAX_TEXT)?;
        }
        if let Some(d) = &self.disclosure {
            check_text("disclosure.recipient", &d.recipient, MAX_NAME)?;
            check_text("disclosure.description", &d.description, MAX_TEXT)?;
        }
        if let Some(p) = &self.prediction {
            check_text("prediction.model", &p.model, MAX_NAME)?;
            check_list("prediction.features", &p.features)?;
            check_text("prediction.output", &p.output, MAX_TEXT)?;
            if let Some(c) = p.confidence
                && !(0.0..=1.0).contains(&c)
            {
                return Err(EntryError::Field {
                    field: "prediction.confidence",
                    reason: "must be within [0, 1]",
                });
            }
            if let Some(r) = &p.override_reason {
                check_text("prediction.override_reason", r, MAX_TEXT)?;
            }
        }
        Ok(())
    }

    /// The canonical JSON encoding (validated).
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        let bytes = serde_json::to_vec(self).map_err(|e| EntryError::from_json(&e))?;
        if bytes.len() > crate::wal::MAX_ENTRY {
            return Err(EntryError::TooLarge { len: bytes.len() });
        }
        Ok(bytes)
    }

    /// Validate and encode once, for a writer that appends later (see
    /// [`crate::Ledger::append_encoded`]).
    pub fn encode(&self) -> Result<Encoded, EntryError> {
        self.to_canonical_json().map(Encoded)
    }

    /// Parse an entry strictly: schema, bounds, and canonical form.
    pub fn parse(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > crate::wal::MAX_ENTRY {
            return Err(EntryError::TooLarge { len: bytes.len() });
        }
        let e: Entry = serde_json::from_slice(bytes).map_err(|e| EntryError::from_json(&e))?;
        let again = e.to_canonical_json()?;
        if again != bytes {
            return Err(EntryError::NonCanonical);
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn sample() -> Entry {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z").unwrap();
        Entry::new(
            Timestamp::new(t.with_timezone(&Utc)),
            ActorId::new("dr.alice").unwrap(),
            EventType::Prediction,
            Zone::Clinical,
            RequestId::from_bytes([0xab; 16]),
            OutcomeKind::Success,
        )
        .with_purpose(Purpose::Treatment)
        .with_resource("model:sepsis@3")
        .with_patient(patient_pseudonym(b"k", "MRN-1"))
        .with_prediction(Prediction {
            model: "sepsis".into(),
            version_hash: ContentHash::from_bytes([1; 32]),
            features: vec!["hr".into(), "lactate".into()],
            features_hash: ContentHash::from_bytes([2; 32]),
            output: "high".into(),
            confidence: Some(0.875),
            display: Display::Shown,
            override_reason: None,
        })
    }

    #[test]
    fn canonical_round_trip() {
        let e = sample();
        let j = e.to_canonical_json().unwrap();
        let s = std::str::from_utf8(&j).unwrap();
        assert!(s.starts_with(r#"{"v":1,"time":"2026-01-02T03:04:05.123456Z","actor":"dr.alice","event":"prediction","zone":"clinical","purpose":"treatment","request_id":"abab"#), "{s}");
        assert_eq!(Entry::parse(&j).unwrap(), e);
    }

    #[test]
    fn strictness() {
        let j = String::from_utf8(sample().to_canonical_json().unwrap()).unwrap();
        let cases = [
            j.replacen("{", "{ ", 1),
            j.replacen(r#""v":1"#, r#""v":2"#, 1),
            j.replacen(r#""zone":"clinical""#, r#""zone":"clinical","extra":1"#, 1),
            j.replacen(".123456Z", ".123456+00:00", 1),
            j.replacen(".123456Z", "Z", 1),
            j.replacen(r#""confidence":0.875"#, r#""confidence":1.5"#, 1),
            j.replacen(r#""confidence":0.875"#, r#""confidence":0.8750"#, 1),
            j.replacen(r#""purpose":"treatment","#, r#""purpose":null,"#, 1),
            format!("{j}\n"),
        ];
        for c in cases {
            assert!(Entry::parse(c.as_bytes()).is_err(), "{c}");
        }
    }

    #[test]
    fn errors_do_not_echo_values() {
        let j = String::from_utf8(sample().to_canonical_json().unwrap()).unwrap();
        let bad = j.replacen(r#""event":"prediction""#, r#""event":"SECRET-MRN-123""#, 1);
        let err = Entry::parse(bad.as_bytes()).unwrap_err().to_string();
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn pseudonym_is_hmac_sha256() {
        // RFC 4231 test case 2.
        let p = patient_pseudonym(b"Jefe", "what do ya want for nothing?");
        assert_eq!(
            p.as_str(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Entry::parse(&bytes);
        }

        #[test]
        fn parser_accepts_only_canonical_mutations(pos in 0usize..400, byte in any::<u8>()) {
            let j = sample().to_canonical_json().unwrap();
            let mut m = j.clone();
            let p = pos % m.len();
            m[p] = byte;
            if let Ok(e) = Entry::parse(&m) {
                prop_assert_eq!(e.to_canonical_json().unwrap(), m);
            }
        }

        /// Every confidence a model can produce round-trips through the canonical form (the
        /// JSON parser must read floats exactly, or a prediction entry would fail `parse` and
        /// the ledger would not verify).
        #[test]
        fn prediction_confidence_round_trips(c in 0.0f64..=1.0) {
            let mut e = sample();
            if let Some(p) = e.prediction.as_mut() {
                p.confidence = Some(c);
            } else {
                prop_assert!(false, "the sample carries a prediction");
            }
            let j = e.to_canonical_json().unwrap();
            prop_assert_eq!(Entry::parse(&j).unwrap(), e);
        }
    }
}
