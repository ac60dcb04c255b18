//! Free-text de-identification: finds the HIPAA Safe Harbor identifiers in clinical text and
//! replaces them with tags, masks or consistent surrogates.
//!
//! # Design
//! The engine is a set of [`Recognizer`]s that each propose candidate spans, followed by one
//! conflict-resolution pass:
//!
//! * **patterns** ([`rules`]): compiled `regex` patterns (linear time, no look-around) for dates,
//!   times, ages over 89, phones and faxes, SSN-shaped numbers (never dropped for looking like a
//!   sample), emails, URLs, IPs, labelled identifiers (`MRN: S-987654`, `HMO-234567`), shaped
//!   identifiers, street addresses and zip codes;
//! * **gazetteer** ([`names`]): one pass over the words of the text with the embedded Census name
//!   lists, the U.S. city and county tables and the facility words, plus an aho-corasick
//!   automaton for multi-word places and hospitals; context rules (titles, "seen by", initials,
//!   "Last, First", upper-case `FAMILY, GIVEN` headers, kinship words, "admitted to", "lives
//!   in") decide ambiguous words, a name or facility found once is found again elsewhere in the
//!   same text, an English-word list and a clinical safe-list keep precision, eponym rules
//!   ("Chaddock reflex") keep named tests out;
//! * **known identifiers** ([`known`]): the patient's own names, ids, phones, address and birth
//!   date from structured data, searched in many spellings;
//! * any extra recogniser a caller adds (a statistical NER model, later).
//!
//! Conflicts are resolved by [`Priority`]: a higher-priority candidate wins an overlap, ties go
//! to the longer span, then to the earlier one; a losing candidate is trimmed to its parts that
//! do not overlap (so coverage is never lost), not dropped.
//!
//! Spans are byte offsets on character boundaries; [`char_offsets`] converts them to Unicode
//! scalar offsets (Python `str` indices) for the JSONL interface ([`jsonl`]). The evaluator is in
//! [`eval`].

mod dict;
mod engine;
pub mod eval;
pub mod jsonl;
pub mod known;
pub mod names;
pub mod rules;
mod surrogate;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use engine::{Candidate, Engine, Priority, Recognizer};
pub use jsonl::{Summary, process_jsonl, redact_plain};

/// A Safe Harbor identifier category found in text.
///
/// Serialised as upper-snake tag names (`"NAME"`, `"HEALTH_PLAN"`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PhiKind {
    /// A person's name (patient, relative, clinician).
    Name,
    /// Any element of a date other than the year alone, and times.
    Date,
    /// An age over 89.
    Age,
    /// A telephone number.
    Phone,
    /// A fax number.
    Fax,
    /// An email address.
    Email,
    /// A social security number or any SSN-shaped number.
    Ssn,
    /// A medical record number.
    Mrn,
    /// A health plan beneficiary number.
    HealthPlan,
    /// An account number.
    Account,
    /// A certificate or licence number.
    License,
    /// A vehicle identifier or licence plate.
    Vehicle,
    /// A device identifier or serial number.
    Device,
    /// A URL or domain name.
    Url,
    /// An IP address.
    Ip,
    /// A street address.
    Address,
    /// A city.
    City,
    /// A county.
    County,
    /// A state (kept by Safe Harbor; only tagged inside an address).
    State,
    /// A zip code.
    Zip,
    /// A hospital, clinic or other facility.
    Facility,
    /// Another geographic subdivision smaller than a state.
    Location,
    /// Any other unique identifying number or code.
    Id,
}

impl PhiKind {
    /// All kinds, in declaration order.
    pub const ALL: [PhiKind; 23] = [
        PhiKind::Name,
        PhiKind::Date,
        PhiKind::Age,
        PhiKind::Phone,
        PhiKind::Fax,
        PhiKind::Email,
        PhiKind::Ssn,
        PhiKind::Mrn,
        PhiKind::HealthPlan,
        PhiKind::Account,
        PhiKind::License,
        PhiKind::Vehicle,
        PhiKind::Device,
        PhiKind::Url,
        PhiKind::Ip,
        PhiKind::Address,
        PhiKind::City,
        PhiKind::County,
        PhiKind::State,
        PhiKind::Zip,
        PhiKind::Facility,
        PhiKind::Location,
        PhiKind::Id,
    ];

    /// The upper-snake name, as serialised: `"NAME"`, `"HEALTH_PLAN"`.
    pub fn name(self) -> &'static str {
        match self {
            PhiKind::Name => "NAME",
            PhiKind::Date => "DATE",
            PhiKind::Age => "AGE",
            PhiKind::Phone => "PHONE",
            PhiKind::Fax => "FAX",
            PhiKind::Email => "EMAIL",
            PhiKind::Ssn => "SSN",
            PhiKind::Mrn => "MRN",
            PhiKind::HealthPlan => "HEALTH_PLAN",
            PhiKind::Account => "ACCOUNT",
            PhiKind::License => "LICENSE",
            PhiKind::Vehicle => "VEHICLE",
            PhiKind::Device => "DEVICE",
            PhiKind::Url => "URL",
            PhiKind::Ip => "IP",
            PhiKind::Address => "ADDRESS",
            PhiKind::City => "CITY",
            PhiKind::County => "COUNTY",
            PhiKind::State => "STATE",
            PhiKind::Zip => "ZIP",
            PhiKind::Facility => "FACILITY",
            PhiKind::Location => "LOCATION",
            PhiKind::Id => "ID",
        }
    }

    /// The tag written in [`Mode::Tag`]: `"[NAME]"`.
    pub fn as_tag(self) -> &'static str {
        match self {
            PhiKind::Name => "[NAME]",
            PhiKind::Date => "[DATE]",
            PhiKind::Age => "[AGE]",
            PhiKind::Phone => "[PHONE]",
            PhiKind::Fax => "[FAX]",
            PhiKind::Email => "[EMAIL]",
            PhiKind::Ssn => "[SSN]",
            PhiKind::Mrn => "[MRN]",
            PhiKind::HealthPlan => "[HEALTH_PLAN]",
            PhiKind::Account => "[ACCOUNT]",
            PhiKind::License => "[LICENSE]",
            PhiKind::Vehicle => "[VEHICLE]",
            PhiKind::Device => "[DEVICE]",
            PhiKind::Url => "[URL]",
            PhiKind::Ip => "[IP]",
            PhiKind::Address => "[ADDRESS]",
            PhiKind::City => "[CITY]",
            PhiKind::County => "[COUNTY]",
            PhiKind::State => "[STATE]",
            PhiKind::Zip => "[ZIP]",
            PhiKind::Facility => "[FACILITY]",
            PhiKind::Location => "[LOCATION]",
            PhiKind::Id => "[ID]",
        }
    }

    /// Parses an upper-snake name (`"HEALTH_PLAN"`); `None` when unknown.
    pub fn from_name(name: &str) -> Option<PhiKind> {
        PhiKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for PhiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A found identifier: byte offsets into the original text (always on character boundaries,
/// end exclusive). Spans returned by the engine are sorted and never overlap.
///
/// `Debug` shows offsets and kind only, never text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// Start byte offset (inclusive).
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// The category.
    pub kind: PhiKind,
}

/// Identifiers already known from the record's structured data (a FHIR `Patient`, an HL7 PID),
/// searched for explicitly in every spelling variant.
///
/// `Debug` prints only how many values each field holds.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct KnownIdentifiers {
    /// Names as written in the record ("Carolee951 Smith", "Smith, John"), given and family
    /// parts may also be passed separately.
    pub names: Vec<String>,
    /// Record numbers and other identifiers (MRN, SSN, insurance numbers).
    pub ids: Vec<String>,
    /// Phone or fax numbers in any formatting.
    pub phones: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Address lines ("858 Sawayn Parade Unit 61"), zip codes may be included.
    pub addresses: Vec<String>,
    /// Cities (and other place names) of the patient.
    pub cities: Vec<String>,
    /// Dates, ISO `yyyy-mm-dd` (birth date...).
    pub dates: Vec<String>,
}

impl fmt::Debug for KnownIdentifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownIdentifiers")
            .field("names", &self.names.len())
            .field("ids", &self.ids.len())
            .field("phones", &self.phones.len())
            .field("emails", &self.emails.len())
            .field("addresses", &self.addresses.len())
            .field("cities", &self.cities.len())
            .field("dates", &self.dates.len())
            .finish()
    }
}

/// How found identifiers are written in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replace each span by its category tag, `[NAME]`.
    #[default]
    Tag,
    /// Replace every character of the span by `*` (the character count is kept, so the
    /// output has the same length in characters as the input; letters, digits and punctuation
    /// alike are masked so no format leaks).
    Mask,
    /// Replace each span by a consistent realistic fake (needs a [`SurrogateContext`]; without
    /// one it falls back to [`Mode::Tag`]).
    Surrogate,
}

/// Keys surrogate generation: the same `(key, patient, value)` always gives the same fake.
pub struct SurrogateContext<'a> {
    /// HMAC key (secret).
    pub key: &'a [u8],
    /// An opaque, already-pseudonymised patient key.
    pub patient: &'a str,
    /// Days added to every date (the patient's structured-data shift).
    pub date_shift_days: i64,
}

impl fmt::Debug for SurrogateContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurrogateContext").finish_non_exhaustive()
    }
}

/// The result of [`Engine::redact`]: output text and the spans found in the input.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The de-identified text.
    pub text: String,
    /// Spans found in the original text (byte offsets).
    pub spans: Vec<Span>,
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The output text is de-identified, but keep Debug uniform: counts only.
        f.debug_struct("Redacted")
            .field("text_len", &self.text.len())
            .field("spans", &self.spans)
            .finish()
    }
}

/// Errors of this crate. Messages name positions, never text.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A JSONL input line is not a JSON object with a string `text` field.
    #[error("line {line}: {reason}")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong (no input text).
        reason: &'static str,
    },
    /// Reading or writing failed.
    #[error("i/o error at line {line}: {source}")]
    Io {
        /// 1-based line number (0 when not line-related).
        line: usize,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A corpus file could not be parsed.
    #[error("corpus `{format}` entry {entry}: {reason}")]
    Corpus {
        /// Corpus format name.
        format: &'static str,
        /// 1-based entry (block, list item or line) number.
        entry: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An internal pattern failed to compile (a bug).
    #[error("internal pattern `{name}` failed to build")]
    Pattern {
        /// Which pattern.
        name: &'static str,
    },
}

/// Converts byte-offset spans to Unicode-scalar offsets (Python `str` indices), end exclusive.
///
/// Spans must be sorted by start (as the engine returns them); offsets not on a character
/// boundary are counted up to the boundary before them.
pub fn char_offsets(text: &str, spans: &[Span]) -> Vec<(usize, usize, PhiKind)> {
    // One forward walk over the text: spans are sorted, so positions are monotone except for
    // ends inside earlier spans, which a fallback count handles.
    let mut out = Vec::with_capacity(spans.len());
    let mut byte = 0usize;
    let mut chars = 0usize;
    let mut iter = text.char_indices().peekable();
    let mut to_char = |target: usize, byte: &mut usize, chars: &mut usize| -> usize {
        if target < *byte {
            return text.get(..target).map_or(0, |s| s.chars().count());
        }
        while let Some(&(i, c)) = iter.peek() {
            if i + c.len_utf8() > target {
                break;
            }
            *chars += 1;
            *byte = i + c.len_utf8();
            iter.next();
        }
        *chars
    };
    for s in spans {
        let a = to_char(s.start, &mut byte, &mut chars);
        let b = to_char(s.end, &mut byte, &mut chars);
        out.push((a, b, s.kind));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for k in PhiKind::ALL {
            assert_eq!(PhiKind::from_name(k.name()), Some(k));
            assert_eq!(k.as_tag(), format!("[{}]", k.name()));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
        }
    }

    #[test]
    fn char_offsets_count_scalars() {
        let text = "é John ü Smith";
        let start = text.find("John").unwrap();
        let s2 = text.find("Smith").unwrap();
        let spans = [
            Span {
                start,
                end: start + 4,
                kind: PhiKind::Name,
            },
            Span {
                start: s2,
                end: s2 + 5,
                kind: PhiKind::Name,
            },
        ];
        assert_eq!(
            char_offsets(text, &spans),
            vec![(2, 6, PhiKind::Name), (9, 14, PhiKind::Name)]
        );
    }
}
