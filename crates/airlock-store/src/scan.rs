//! The scan of an attested import: is there a direct identifier anywhere in this file?
//!
//! Two checks:
//!
//! * the `airlock-text` recognisers over every text value (CSV cells and headers, FHIR string
//!   values and `text/*` attachments, HL7 v2 components). What they find by shape or label
//!   (SSNs, phone and fax numbers, emails, labelled record, plan, account, licence, vehicle
//!   and device numbers) refuses wherever it is; a name refuses in free text (five words or
//!   more) or when it spans two words or more (`Zelda Quixotic`), not as a lone word in a
//!   short value, where the recognisers cannot tell a surname from an ethnicity or a town
//!   ("Latino", "Washington"); a street needs two words, an IP address free text. URLs do not
//!   refuse: in these formats nearly all are code systems and profiles. Codes, their displays,
//!   the ids of things and an address's town, state and country are not scanned (FHIR
//!   `Coding`, `CodeableConcept.text`, ids, URIs and references, `Address` places; HL7 coded
//!   elements' text);
//! * the places the formats reserve for identifiers, which a recogniser cannot judge from the
//!   value alone (`SMITH^JOHN` in `PID-5`, a bare nine-digit SSN in an `ssn` column): FHIR
//!   `HumanName`, `ContactPoint` and `Address.line`; HL7 `PID`, `NK1`, `GT1` and `IN1` name,
//!   street, phone and SSN fields; CSV columns named for a person's name, SSN, phone, email
//!   or street. These are the places the `safe-harbor` profile empties, so its output passes.
//!
//! `airlock-deid`'s leak check is not used: it looks in de-identified output for the values
//! it removed from the input, and an import has no input to compare with.
//!
//! Only direct identifiers refuse an import. Dates, ages, towns, zip codes, facilities and
//! bare codes or numbers (record ids, pseudonyms) are quasi-identifiers or not identifying at
//! all, and an expert determination may keep them; the attestation answers for those.
//!
//! A finding names the position and the kind of identifier, never the value. Repeated short
//! values (categorical cells) are judged once.

use std::collections::HashSet;
use std::fmt;

use airlock_formats::Format;
use airlock_formats::hl7::Component;
use airlock_text::{Engine, PhiKind};
use serde_json::Value;

/// The kinds of direct identifier that refuse an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentifierKind {
    /// A person's name.
    PersonName,
    /// A social security number.
    Ssn,
    /// A telephone number.
    Phone,
    /// A fax number.
    Fax,
    /// An email address.
    Email,
    /// A street address.
    StreetAddress,
    /// A labelled medical record number.
    MedicalRecordNumber,
    /// A health plan beneficiary number.
    HealthPlanNumber,
    /// An account number.
    AccountNumber,
    /// A certificate or licence number.
    LicenceNumber,
    /// A vehicle identifier or plate.
    VehicleIdentifier,
    /// A device identifier or serial number.
    DeviceIdentifier,
    /// A person's URL (a FHIR `ContactPoint` of system `url`).
    Url,
    /// An IP address.
    IpAddress,
}

impl IdentifierKind {
    /// The kind as written in errors and ledger entries.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::PersonName => "person name",
            IdentifierKind::Ssn => "ssn",
            IdentifierKind::Phone => "phone number",
            IdentifierKind::Fax => "fax number",
            IdentifierKind::Email => "email address",
            IdentifierKind::StreetAddress => "street address",
            IdentifierKind::MedicalRecordNumber => "medical record number",
            IdentifierKind::HealthPlanNumber => "health plan number",
            IdentifierKind::AccountNumber => "account number",
            IdentifierKind::LicenceNumber => "licence number",
            IdentifierKind::VehicleIdentifier => "vehicle identifier",
            IdentifierKind::DeviceIdentifier => "device identifier",
            IdentifierKind::Url => "url",
            IdentifierKind::IpAddress => "ip address",
        }
    }

    /// The kinds of text finding that refuse an import (see the module docs for the others).
    fn of_text(kind: PhiKind) -> Option<IdentifierKind> {
        Some(match kind {
            PhiKind::Name => IdentifierKind::PersonName,
            PhiKind::Ssn => IdentifierKind::Ssn,
            PhiKind::Phone => IdentifierKind::Phone,
            PhiKind::Fax => IdentifierKind::Fax,
            PhiKind::Email => IdentifierKind::Email,
            PhiKind::Address => IdentifierKind::StreetAddress,
            PhiKind::Mrn => IdentifierKind::MedicalRecordNumber,
            PhiKind::HealthPlan => IdentifierKind::HealthPlanNumber,
            PhiKind::Account => IdentifierKind::AccountNumber,
            PhiKind::License => IdentifierKind::LicenceNumber,
            PhiKind::Vehicle => IdentifierKind::VehicleIdentifier,
            PhiKind::Device => IdentifierKind::DeviceIdentifier,
            PhiKind::Ip => IdentifierKind::IpAddress,
            _ => return None,
        })
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a file a finding is: positions and element names, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataPosition {
    /// A CSV cell (the header is line 1).
    Csv {
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
    },
    /// A value in a FHIR resource.
    Fhir {
        /// 0-based record: the Bundle entry, or the NDJSON record.
        record: u64,
        /// 1-based line (NDJSON; 1 for a JSON document).
        line: u64,
        /// The element, `name[0].family` (keys not shaped like FHIR element names are shown
        /// as `?`).
        path: String,
    },
    /// A field of an HL7 v2 message.
    Hl7 {
        /// 0-based message in the file.
        message: u64,
        /// 1-based line of the segment.
        line: u64,
        /// The segment id (letters and digits only).
        segment: String,
        /// 1-based field number.
        field: usize,
    },
    /// A field of a note (JSON Lines notes; a plain text note is line 1, field `text`).
    Note {
        /// 1-based line.
        line: u64,
        /// The field (keys not shaped like plain names are shown as `?`).
        field: String,
    },
}

impl fmt::Display for DataPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataPosition::Csv { line, column } => write!(f, "line {line}, column {column}"),
            DataPosition::Fhir { record, line, path } => {
                write!(f, "record {record} (line {line}), `{path}`")
            }
            DataPosition::Hl7 {
                message,
                line,
                segment,
                field,
            } => write!(f, "message {message}, line {line}, `{segment}-{field}`"),
            DataPosition::Note { line, field } => write!(f, "note at line {line}, `{field}`"),
        }
    }
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A direct identifier.
    Identifier {
        position: DataPosition,
        kind: IdentifierKind,
    },
    /// The file could not be read for scanning (validation should have refused it first).
    Unreadable { reason: String },
}

/// A value with this many words or more is free text, where a lone word the recognisers take
/// for a name, or an IP address, counts. In a shorter value (a category, a facility, an OID)
/// only a name of two words or more does: alone, "Latino", "Lourdes" or "Washington" say too
/// little. A street always needs two words.
const FREE_TEXT_WORDS: usize = 5;

/// Cached verdicts for values up to this long; longer text rarely repeats.
const CACHE_VALUE_MAX: usize = 256;
/// At most this many cached values (about 100 MB at worst).
const CACHE_ENTRIES_MAX: usize = 1 << 19;

/// Placeholder texts that stand for a removed value.
const PLACEHOLDERS: &[&str] = &[
    "na", "n/a", "null", "none", "unknown", "redacted", "removed", "masked", "withheld",
];

struct Scanner {
    engine: &'static Engine,
    /// Values already found clean.
    clean: HashSet<String>,
}

impl Scanner {
    fn new() -> Self {
        Scanner {
            engine: Engine::builtin(),
            clean: HashSet::new(),
        }
    }

    /// The first refused kind the recognisers find in `text`.
    fn text(&mut self, text: &str) -> Option<IdentifierKind> {
        if !text.chars().any(char::is_alphanumeric) {
            return None;
        }
        let short = text.len() <= CACHE_VALUE_MAX;
        if short && self.clean.contains(text) {
            return None;
        }
        let free_text = words(text) >= FREE_TEXT_WORDS;
        let mixed_case = text.chars().any(char::is_lowercase);
        let found = self.engine.find(text, None).iter().find_map(|span| {
            let kind = IdentifierKind::of_text(span.kind)?;
            let found = text.get(span.start..span.end)?;
            let spanned = words(found);
            let mid_word = text
                .get(..span.start)
                .and_then(|before| before.chars().last())
                .is_some_and(char::is_alphanumeric);
            let counts = match kind {
                // A street has a number and a name at least ("Room01" is not one).
                IdentifierKind::StreetAddress => spanned >= 2,
                // In text without lower case (codes' descriptions, categories) the recognisers'
                // context rules take runs of capitals for names; demographic words are not
                // names.
                IdentifierKind::PersonName => {
                    mixed_case && !demographic(found) && (free_text || spanned >= 2)
                }
                IdentifierKind::IpAddress => free_text,
                // A label must stand alone: `dea` opening a hexadecimal pseudonym is not a DEA
                // number's label.
                IdentifierKind::MedicalRecordNumber
                | IdentifierKind::HealthPlanNumber
                | IdentifierKind::AccountNumber
                | IdentifierKind::LicenceNumber
                | IdentifierKind::VehicleIdentifier
                | IdentifierKind::DeviceIdentifier => !mid_word,
                _ => true,
            };
            counts.then_some(kind)
        });
        if found.is_none() && short && self.clean.len() < CACHE_ENTRIES_MAX {
            self.clean.insert(text.to_owned());
        }
        found
    }
}

/// Race and ethnicity words (OMB categories and common detail) that the recognisers can take
/// for names ("Puerto Rican").
const DEMOGRAPHIC_WORDS: &[&str] = &[
    "african",
    "alaska",
    "american",
    "asian",
    "black",
    "caucasian",
    "chinese",
    "cuban",
    "dominican",
    "filipino",
    "hawaiian",
    "hispanic",
    "indian",
    "islander",
    "japanese",
    "korean",
    "latina",
    "latino",
    "latinx",
    "mexican",
    "native",
    "other",
    "pacific",
    "puerto",
    "rican",
    "salvadoran",
    "vietnamese",
    "white",
];

/// Whether every word of `text` is a race or ethnicity word.
fn demographic(text: &str) -> bool {
    let mut any = false;
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        if !DEMOGRAPHIC_WORDS.contains(&w.to_lowercase().as_str()) {
            return false;
        }
        any = true;
    }
    any
}

/// Words (whitespace-separated tokens with a letter) in `text`.
fn words(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count()
}

/// Whether a value in a place reserved for `kind` is a value rather than empty or a
/// placeholder (`[REDACTED]`, `***-**-****`).
fn filled(kind: IdentifierKind, value: &str) -> bool {
    let bare = value
        .trim()
        .trim_matches(|c: char| matches!(c, '[' | ']' | '<' | '>' | '(' | ')' | '*'));
    if PLACEHOLDERS.contains(&bare.to_ascii_lowercase().as_str()) {
        return false;
    }
    match kind {
        IdentifierKind::Ssn | IdentifierKind::Phone | IdentifierKind::Fax => {
            bare.chars().filter(char::is_ascii_digit).count() >= 4
        }
        _ => bare.chars().filter(|c| c.is_alphanumeric()).count() >= 2,
    }
}

/// Scan one file of a validated format.
pub(crate) fn scan(format: Format, bytes: &[u8]) -> Result<(), Refusal> {
    let mut s = Scanner::new();
    let bytes = airlock_formats::strip_bom(bytes);
    match format {
        Format::Csv => scan_csv(&mut s, bytes),
        Format::FhirJson => {
            let doc = airlock_formats::fhir::parse_json(bytes).map_err(unreadable)?;
            for (record, resource) in airlock_formats::fhir::resources(&doc) {
                scan_resource(&mut s, resource, record as u64, 1)?;
            }
            Ok(())
        }
        Format::FhirNdjson => {
            for item in airlock_formats::fhir::NdjsonReader::new(bytes) {
                let rec = item.map_err(unreadable)?;
                let value = rec.value.map_err(unreadable)?;
                scan_resource(&mut s, &value, rec.record, rec.line)?;
            }
            Ok(())
        }
        Format::Hl7v2 => scan_hl7(&mut s, bytes),
        Format::Notes => scan_notes(&mut s, bytes),
    }
}

fn scan_notes(s: &mut Scanner, bytes: &[u8]) -> Result<(), Refusal> {
    let refuse = |line: u64, field: &str, kind| Refusal::Identifier {
        position: DataPosition::Note {
            line,
            field: if field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                field.to_owned()
            } else {
                "?".to_owned()
            },
        },
        kind,
    };
    if !airlock_formats::notes::is_jsonl(bytes) {
        let text = std::str::from_utf8(bytes).map_err(unreadable)?;
        return match s.text(text) {
            Some(kind) => Err(refuse(1, "text", kind)),
            None => Ok(()),
        };
    }
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line).map_err(unreadable)?;
        for (field, value) in v.as_object().into_iter().flatten() {
            if let Some(text) = value.as_str()
                && let Some(kind) = s.text(text)
            {
                return Err(refuse(i as u64 + 1, field, kind));
            }
        }
    }
    Ok(())
}

fn unreadable(e: impl fmt::Display) -> Refusal {
    Refusal::Unreadable {
        reason: e.to_string(),
    }
}

/// The kind of identifier a CSV column holds by its name, for the names that say so.
/// The direct identifier a CSV column's name says it holds (a name, SSN, phone, fax, email or
/// street address column), by its normalised header.
pub fn column_kind(header: &str) -> Option<IdentifierKind> {
    let norm: String = header
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let norm = norm.trim_matches('_');
    Some(match norm {
        "first_name" | "firstname" | "given" | "given_name" | "forename" | "last_name"
        | "lastname" | "family" | "surname" | "family_name" | "full_name" | "fullname"
        | "middle_name" | "maiden_name" | "patient_name" | "person_name" => {
            IdentifierKind::PersonName
        }
        "ssn" | "social_security_number" | "social_security" | "ssn_number" => IdentifierKind::Ssn,
        "phone" | "phone_number" | "telephone" | "home_phone" | "work_phone" | "mobile"
        | "mobile_phone" | "cell_phone" => IdentifierKind::Phone,
        "fax" | "fax_number" => IdentifierKind::Fax,
        "email" | "email_address" | "e_mail" => IdentifierKind::Email,
        "street" | "street_address" | "address" | "address_line" | "address_line_1"
        | "address_line1" | "address1" | "home_address" => IdentifierKind::StreetAddress,
        _ => return None,
    })
}

fn scan_csv(s: &mut Scanner, bytes: &[u8]) -> Result<(), Refusal> {
    let mut reader = airlock_formats::tabular::reader(bytes);
    let headers = reader.headers().map_err(unreadable)?.clone();
    let mut kinds = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        if let Some(kind) = s.text(h) {
            return Err(Refusal::Identifier {
                position: DataPosition::Csv {
                    line: 1,
                    column: i + 1,
                },
                kind,
            });
        }
        kinds.push(column_kind(h));
    }
    for row in reader.records() {
        let row = row.map_err(unreadable)?;
        let line = row
            .position()
            .map_or(0, airlock_formats::tabular::csv::Position::line);
        for (i, cell) in row.iter().enumerate() {
            let reserved = kinds.get(i).copied().flatten().filter(|k| filled(*k, cell));
            if let Some(kind) = reserved.or_else(|| s.text(cell)) {
                return Err(Refusal::Identifier {
                    position: DataPosition::Csv {
                        line,
                        column: i + 1,
                    },
                    kind,
                });
            }
        }
    }
    Ok(())
}

/// One step of a path into a FHIR resource.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `name[0].family`. Keys are shown only when shaped like FHIR element names (`_birthDate`
/// included); anything else in a key is data and is shown as `?`.
fn render_path(path: &[Step<'_>]) -> String {
    let element = |k: &str| {
        let name = k.strip_prefix('_').unwrap_or(k);
        name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric())
    };
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if element(k) { k } else { "?" });
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(resource)");
    }
    out
}

struct FhirWalk<'s> {
    scanner: &'s mut Scanner,
    record: u64,
    line: u64,
}

impl FhirWalk<'_> {
    fn refuse(&self, path: &[Step<'_>], kind: IdentifierKind) -> Refusal {
        Refusal::Identifier {
            position: DataPosition::Fhir {
                record: self.record,
                line: self.line,
                path: render_path(path),
            },
            kind,
        }
    }

    /// The kind of identifier a FHIR datatype holds by its shape: a `HumanName` (`family`,
    /// `given`), a `ContactPoint` (`system` and `value`), an `Address` (`line`). Returns the
    /// member that holds it.
    fn reserved(obj: &serde_json::Map<String, Value>) -> Option<(&str, &Value, IdentifierKind)> {
        for key in ["family", "given"] {
            if let Some(v) = obj.get(key) {
                return Some((key, v, IdentifierKind::PersonName));
            }
        }
        if let (Some(system), Some(v)) =
            (obj.get("system").and_then(Value::as_str), obj.get("value"))
        {
            let kind = match system {
                "phone" | "pager" | "sms" => IdentifierKind::Phone,
                "fax" => IdentifierKind::Fax,
                "email" => IdentifierKind::Email,
                "url" => IdentifierKind::Url,
                _ => return None,
            };
            return Some(("value", v, kind));
        }
        obj.get("line")
            .map(|v| ("line", v, IdentifierKind::StreetAddress))
    }

    /// Whether a reserved member holds a value (a string, or an array of strings).
    fn holds(kind: IdentifierKind, v: &Value) -> bool {
        match v {
            Value::String(s) => filled(kind, s),
            Value::Array(items) => items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| filled(kind, s))),
            _ => false,
        }
    }

    fn walk<'v>(&mut self, v: &'v Value, path: &mut Vec<Step<'v>>) -> Result<(), Refusal> {
        match v {
            Value::String(text) => match self.scanner.text(text) {
                Some(kind) => Err(self.refuse(path, kind)),
                None => Ok(()),
            },
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    self.walk(item, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Object(obj) => {
                if let Some((key, member, kind)) = Self::reserved(obj)
                    && Self::holds(kind, member)
                {
                    path.push(Step::Key(key));
                    return Err(self.refuse(path, kind));
                }
                let coding = obj.contains_key("code");
                let concept = obj.contains_key("coding");
                let address = ADDRESS_PLACE_KEYS.iter().any(|k| obj.contains_key(*k));
                if let Some(text) = text_attachment(obj) {
                    path.push(Step::Key("data"));
                    if let Some(kind) = self.scanner.text(&text) {
                        return Err(self.refuse(path, kind));
                    }
                    path.pop();
                }
                for (k, member) in obj {
                    // Codes, their displays and the identifiers of things are vocabulary.
                    let vocabulary = URI_KEYS.contains(&k.as_str())
                        || (coding && CODING_KEYS.contains(&k.as_str()))
                        || (concept && k == "text")
                        || (address && ADDRESS_PLACE_KEYS.contains(&k.as_str()));
                    if vocabulary && member.is_string() {
                        continue;
                    }
                    path.push(Step::Key(k));
                    self.walk(member, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        }
    }
}

/// String members that name things rather than describe a person: ids, URIs, references.
const URI_KEYS: &[&str] = &[
    "id",
    "resourceType",
    "system",
    "url",
    "fullUrl",
    "reference",
    "profile",
];
/// String members of a `Coding` or `Quantity` (an object with a `code`): the code, its system
/// and its display text.
const CODING_KEYS: &[&str] = &["code", "display", "system", "version", "unit"];

/// String members of an `Address` that name places (quasi-identifiers, and Safe Harbor keeps
/// the state): the recognisers take many a place for a name.
const ADDRESS_PLACE_KEYS: &[&str] = &["city", "district", "state", "postalCode", "country"];

/// The text of an `Attachment` with a `text/*` content type and inline `data` (clinical
/// notes travel this way, base64-encoded).
fn text_attachment(obj: &serde_json::Map<String, Value>) -> Option<String> {
    use base64::Engine as _;
    let content_type = obj.get("contentType")?.as_str()?;
    if !content_type.trim_start().starts_with("text/") {
        return None;
    }
    let data = obj.get("data")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn scan_resource(s: &mut Scanner, resource: &Value, record: u64, line: u64) -> Result<(), Refusal> {
    let mut walk = FhirWalk {
        scanner: s,
        record,
        line,
    };
    walk.walk(resource, &mut Vec::new())
}

/// HL7 v2 fields that hold identifiers by definition: `(segment, field, components, kind)`;
/// no components means the whole field. Of an address (XAD) only the street lines count: the
/// state and a three-digit zip are what Safe Harbor keeps.
const HL7_RESERVED: &[(&str, usize, &[usize], IdentifierKind)] = &[
    ("PID", 5, &[1, 2, 3], IdentifierKind::PersonName),
    ("PID", 6, &[1, 2, 3], IdentifierKind::PersonName),
    ("PID", 9, &[1, 2, 3], IdentifierKind::PersonName),
    ("PID", 11, &[1, 2], IdentifierKind::StreetAddress),
    ("PID", 13, &[], IdentifierKind::Phone),
    ("PID", 14, &[], IdentifierKind::Phone),
    ("PID", 19, &[], IdentifierKind::Ssn),
    ("PID", 20, &[1], IdentifierKind::LicenceNumber),
    ("NK1", 2, &[1, 2, 3], IdentifierKind::PersonName),
    ("NK1", 4, &[1, 2], IdentifierKind::StreetAddress),
    ("NK1", 5, &[], IdentifierKind::Phone),
    ("NK1", 6, &[], IdentifierKind::Phone),
    ("GT1", 3, &[1, 2, 3], IdentifierKind::PersonName),
    ("GT1", 5, &[1, 2], IdentifierKind::StreetAddress),
    ("GT1", 6, &[], IdentifierKind::Phone),
    ("GT1", 7, &[], IdentifierKind::Phone),
    ("GT1", 12, &[], IdentifierKind::Ssn),
    ("IN1", 16, &[1, 2, 3], IdentifierKind::PersonName),
    ("IN1", 19, &[1, 2], IdentifierKind::StreetAddress),
];

/// Whether a component looks like a coding system's id (`LN`, `I10`, `HL70189`, `CDCREC`): its
/// repetition is then a coded element whose text is a code's display.
fn coding_system(c: Option<&Component>) -> bool {
    c.map(|c| c.subcomponents.concat()).is_some_and(|s| {
        (1..=20).contains(&s.len())
            && s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    })
}

fn scan_hl7(s: &mut Scanner, bytes: &[u8]) -> Result<(), Refusal> {
    let file = airlock_formats::hl7::split(bytes).map_err(unreadable)?;
    for raw in &file.messages {
        let msg = raw.parse().map_err(unreadable)?;
        let d = &msg.delimiters;
        for (si, seg) in msg.segments.iter().enumerate() {
            let line = raw.lines.get(si).map_or(raw.first_line(), |(l, _)| *l);
            let refuse = |field: usize, kind| Refusal::Identifier {
                position: DataPosition::Hl7 {
                    message: raw.index,
                    line,
                    segment: seg
                        .id
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .take(3)
                        .collect(),
                    field,
                },
                kind,
            };
            // MSH-1 and MSH-2 are the delimiters themselves.
            let skip = if seg.is_header() { 2 } else { 0 };
            for (fi, field) in seg.fields.iter().enumerate().skip(skip) {
                let number = fi + 1;
                if let Some((_, _, comps, kind)) = HL7_RESERVED
                    .iter()
                    .find(|(id, n, _, _)| *id == seg.id && *n == number)
                {
                    let filled_here = field.repetitions.iter().any(|r| {
                        r.components.iter().enumerate().any(|(ci, c)| {
                            (comps.is_empty() || comps.contains(&(ci + 1)))
                                && c.subcomponents
                                    .iter()
                                    .any(|sc| filled(*kind, &d.decode(sc)))
                        })
                    });
                    if filled_here {
                        return Err(refuse(number, *kind));
                    }
                }
                for rep in &field.repetitions {
                    let coded = rep.components.first().is_some_and(|c| !c.is_empty())
                        && coding_system(rep.components.get(2));
                    for (ci, c) in rep.components.iter().enumerate() {
                        // A coded element's text and alternate text are its code's display.
                        if coded && matches!(ci + 1, 2 | 5) {
                            continue;
                        }
                        for sc in &c.subcomponents {
                            if let Some(kind) = s.text(&d.decode(sc)) {
                                return Err(refuse(number, kind));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(format: Format, text: &str) -> Option<(String, IdentifierKind)> {
        match scan(format, text.as_bytes()) {
            Ok(()) => None,
            Err(Refusal::Identifier { position, kind }) => Some((position.to_string(), kind)),
            Err(Refusal::Unreadable { reason }) => panic!("unreadable: {reason}"),
        }
    }

    #[test]
    fn csv_cells_and_identifier_columns() {
        assert_eq!(
            kind(Format::Csv, "age_band,sex,dx\n40-49,F,E11\n70-79,M,I10\n"),
            None
        );
        // Record ids and pseudonyms are not direct identifiers.
        assert_eq!(
            kind(Format::Csv, "encounter_id,mrn\n2278392,P-7f3a9c12\n"),
            None
        );
        assert_eq!(
            kind(Format::Csv, "id,note\n1,ok\n2,SSN 123-45-6789\n"),
            Some(("line 3, column 2".into(), IdentifierKind::Ssn))
        );
        assert_eq!(
            kind(Format::Csv, "id,note\n1,seen by Dr. Zelda Quixotic\n"),
            Some(("line 2, column 2".into(), IdentifierKind::PersonName))
        );
        // A bare nine-digit number is only an SSN in a column that says so.
        assert_eq!(kind(Format::Csv, "id,x\n1,123456789\n"), None);
        assert_eq!(
            kind(Format::Csv, "id,SSN\n1,123456789\n"),
            Some(("line 2, column 2".into(), IdentifierKind::Ssn))
        );
        // A lone word in a short value is not enough for a name; two are.
        assert_eq!(
            kind(
                Format::Csv,
                "ethnicity,city,drg\nNot Hispanic or Latino,Washington,x\nPuerto Rican,Lourdes,\
                 CARDIAC VALVE & OTH MAJ CARDIOTHORACIC PROC W CARD CATH W CC\n"
            ),
            None
        );
        // Nor is a label inside a pseudonym.
        assert_eq!(
            kind(Format::Csv, "id\ndeaebae0d35623fc40fb15a88d9d226c\n"),
            None
        );
        assert_eq!(
            kind(Format::Csv, "id,pt\n1,John Smith\n"),
            Some(("line 2, column 2".into(), IdentifierKind::PersonName))
        );
        assert_eq!(
            kind(Format::Csv, "mrn,given,family\n1,Ralph,Rogers\n"),
            Some(("line 2, column 2".into(), IdentifierKind::PersonName))
        );
        // Emptied identifier columns pass.
        assert_eq!(
            kind(
                Format::Csv,
                "id,ssn,last_name\n1,,[REDACTED]\n2,***-**-****,\n"
            ),
            None
        );
    }

    #[test]
    fn fhir_datatypes_and_strings() {
        let patient = r#"{"resourceType":"Patient","name":[{"use":"official","family":"EVERYWOMAN","given":["EVE"]}]}"#;
        assert_eq!(
            kind(Format::FhirJson, patient),
            Some((
                "record 0 (line 1), `name[0].family`".into(),
                IdentifierKind::PersonName
            ))
        );
        // What the safe-harbor profile leaves of a patient passes.
        let deid = r#"{"resourceType":"Patient","name":[{"use":"official"}],"telecom":[{"system":"phone","use":"home"}],"gender":"female","birthDate":"1970","address":[{"state":"MA","postalCode":"021"}]}"#;
        assert_eq!(kind(Format::FhirJson, deid), None);
        let ndjson = "{\"resourceType\":\"Observation\",\"status\":\"final\"}\n{\"resourceType\":\"Patient\",\"telecom\":[{\"system\":\"email\",\"value\":\"eve@example.org\"}]}\n";
        assert_eq!(
            kind(Format::FhirNdjson, ndjson),
            Some((
                "record 1 (line 2), `telecom[0].value`".into(),
                IdentifierKind::Email
            ))
        );
        // Codes and their displays are vocabulary.
        let coded = r#"{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"2947-0","display":"Sodium [Moles/volume] in Blood by Nurse Smith"}],"text":"Sodium [Moles/volume] in Blood by Nurse Smith"}}"#;
        assert_eq!(kind(Format::FhirJson, coded), None);
        // A clinical note in a text attachment.
        let note = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "Call 555-123-4567 with results.",
        );
        let doc = format!(
            r#"{{"resourceType":"DocumentReference","content":[{{"attachment":{{"contentType":"text/plain","data":"{note}"}}}}]}}"#
        );
        assert_eq!(
            kind(Format::FhirJson, &doc),
            Some((
                "record 0 (line 1), `content[0].attachment.data`".into(),
                IdentifierKind::Phone
            ))
        );
    }

    #[test]
    fn hl7_fields() {
        let msg = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|202401011200||ADT^A01|1|P|2.5\rPID|1||12345^^^HOSP^MR||EVERYWOMAN^EVE^E||19700101|F\r";
        assert_eq!(
            kind(Format::Hl7v2, msg),
            Some((
                "message 0, line 2, `PID-5`".into(),
                IdentifierKind::PersonName
            ))
        );
        // What the safe-harbor profile leaves: surrogate ids, the state and zip3, codes.
        let clean = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|202401011200||ADT^A01|1|P|2.5\rPID|1||P-7f3a9c12^^^Lourdes^MR||||1970|F||2106-3^White^CDCREC|^^^RI^029^USA^H|||||S||||||N^Not Hispanic or Latino^HL70189\r";
        assert_eq!(kind(Format::Hl7v2, clean), None);
    }

    #[test]
    fn positions_never_carry_values() {
        let r = kind(Format::Csv, "id,note\n1,Zelda Quixotic 123-45-6789\n");
        let (pos, _) = r.unwrap();
        assert!(!pos.contains("Zelda") && !pos.contains("6789"), "{pos}");
        let weird_key = r#"{"resourceType":"Basic","extension":[{"ZeldaQuixotic":"seen by Dr. Zelda Quixotic"}]}"#;
        let (pos, _) = kind(Format::FhirJson, weird_key).unwrap();
        assert_eq!(pos, "record 0 (line 1), `extension[0].?`");
    }
}
