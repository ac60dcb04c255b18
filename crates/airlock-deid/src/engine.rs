//! Run state shared by the format engines: the profile, the key, the crosswalk, patient
//! registry (MRN → known identifiers), change counters, leak values, quarantine, and the
//! keyed primitives every format uses the same way (so one patient is one patient across
//! FHIR, HL7 and CSV).

use airlock_text::{Engine as TextEngine, KnownIdentifiers, Mode, SurrogateContext};

use crate::codes::RareCodes;
use crate::crosswalk::Crosswalk;
use crate::hash::FastMap;
use crate::keys::DeidKeys;
use crate::leak::{LeakKind, LeakSet};
use crate::profile::{DatePolicy, Method, Profile, ProfileInner, PseudonymScheme, TextPolicy};
use crate::report::{Changes, Quarantined};
use crate::values;

/// Texts shorter than this (bytes) go to the text engine without the patient's known
/// identifiers (see [`Run::text_with`]).
const KNOWN_MIN_TEXT: usize = 64;

/// Texts at least this long (bytes) are remembered with their output for the rest of the run
/// (see [`TextMemo`]): all of them, as short texts repeat too.
const MEMO_MIN_TEXT: usize = 1;

/// At most this many texts are remembered; the memo is emptied when full (memory stays flat).
const MEMO_MAX_ENTRIES: usize = 4096;

/// At most this many pseudonymous resource ids are remembered (see [`Run::pseudo_id`]).
pub(crate) const IDS_MAX_ENTRIES: usize = 1 << 16;

/// Outputs of the text engine for long texts already seen in this run. The same note often
/// appears twice in a record (Synthea puts each one in a `DiagnosticReport` and a
/// `DocumentReference`), and the engine's output depends only on the text, the patient, the
/// mode, the scrub epoch and the known identifiers, all of which are part of the key or
/// checked on a hit.
#[derive(Default)]
struct TextMemo {
    map: FastMap<(Mode, Option<String>, String), MemoEntry>,
}

struct MemoEntry {
    epoch: u64,
    known: Option<KnownIdentifiers>,
    out: String,
}

/// Mutable state of one run.
pub(crate) struct Run<'a> {
    pub profile: &'a Profile,
    pub keys: &'a DeidKeys,
    pub crosswalk: &'a mut Crosswalk,
    pub changes: Changes,
    pub leaks: LeakSet,
    /// FHIR Patient resource id → MRN.
    pub patients: FastMap<String, String>,
    /// MRN → identifiers known from structured data (for the text engine).
    pub known: FastMap<String, KnownIdentifiers>,
    pub rare: Option<RareCodes>,
    pub warnings: Vec<String>,
    pub quarantined: Vec<Quarantined>,
    pub records_in: u64,
    pub records_out: u64,
    /// Known identifiers for the text engine overriding the patient's (an HL7 message's).
    pub override_known: Option<KnownIdentifiers>,
    /// Scanner over the identifying values collected so far, applied to free-text output.
    scrubber: Option<(u64, std::sync::Arc<crate::leak::Scanner>)>,
    scrub_epoch: u64,
    memo: TextMemo,
    /// Resource id → its pseudonymous id (each id is referenced many times in a document).
    ids: FastMap<String, String>,
    /// Reference → its pseudonymous form (see `fhir::pseudo_ref`), for the same reason.
    pub refs: FastMap<String, Option<String>>,
    /// Dates the date shift wrote as whole values (the leak check's coincidences).
    pub shifted: crate::leak::ShiftedDates,
    /// The quasi-identifiers of the FHIR and HL7 patients written (their risk report).
    pub patient_qis: crate::patients::PatientQis,
    /// CSV tables seen under `[k_anonymity]`, and those that were person tables.
    pub k_tables: KTables,
}

/// How many CSV tables a run under `[k_anonymity]` saw, and how many of them were person tables
/// (had the quasi-identifiers): none of many means k-anonymity was applied nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KTables {
    pub tables: u64,
    pub person: u64,
}

impl<'a> Run<'a> {
    pub fn new(profile: &'a Profile, keys: &'a DeidKeys, crosswalk: &'a mut Crosswalk) -> Run<'a> {
        Run {
            profile,
            keys,
            crosswalk,
            changes: Changes::default(),
            leaks: LeakSet::default(),
            patients: FastMap::default(),
            known: FastMap::default(),
            rare: None,
            warnings: Vec::new(),
            quarantined: Vec::new(),
            records_in: 0,
            records_out: 0,
            override_known: None,
            scrubber: None,
            scrub_epoch: 0,
            memo: TextMemo::default(),
            ids: FastMap::default(),
            refs: FastMap::default(),
            shifted: crate::leak::ShiftedDates::default(),
            patient_qis: crate::patients::PatientQis::default(),
            k_tables: KTables::default(),
        }
    }

    pub fn p(&self) -> &ProfileInner {
        self.profile.inner()
    }

    pub fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// The pseudonym of `value` in `namespace` under the profile's scheme: a random surrogate
    /// from the crosswalk, or a keyed HMAC (32 hex characters either way).
    pub fn pseudonym(&mut self, namespace: &str, value: &str) -> String {
        match self.p().pseudonyms {
            PseudonymScheme::Surrogate => self.crosswalk.surrogate(namespace, value),
            PseudonymScheme::Hmac => self.keys.pseudonym(namespace, value),
        }
    }

    /// A pseudonymous resource id, shaped as a UUID so `urn:uuid:` references stay valid.
    pub fn pseudo_id(&mut self, id: &str) -> String {
        // The pseudonym of a value never changes within a run (keyed, or recorded in the
        // crosswalk the first time), so it is computed once per id.
        if let Some(p) = self.ids.get(id) {
            return p.clone();
        }
        let h = self.pseudonym("id", id);
        let p = uuid_shape(&h);
        if self.ids.len() >= IDS_MAX_ENTRIES {
            self.ids.clear();
        }
        self.ids.insert(id.to_owned(), p.clone());
        p
    }

    /// The surrogate of a record key (a CSV key column): the pseudonym of `value` in
    /// `namespace`, written in the value's shape so a loader typed for the original still takes
    /// it. A UUID in namespace `id` gets exactly the FHIR path's pseudonymous resource id (Synthea
    /// writes the same UUIDs in both exports); other UUIDs a UUID; integers an integer (60 bits,
    /// at most 19 digits); DICOM-style UIDs a UUID-derived UID (`2.25.` and the 128-bit number);
    /// anything else 32 hex characters.
    pub fn key_surrogate(&mut self, namespace: &str, value: &str) -> String {
        let uuid = crate::columns::is_uuid(value);
        if namespace == "id" && uuid {
            return self.pseudo_id(value);
        }
        let h = self.pseudonym(namespace, value);
        if uuid {
            uuid_shape(&h)
        } else if value.bytes().all(|b| b.is_ascii_digit()) {
            h.get(..15)
                .and_then(|x| u64::from_str_radix(x, 16).ok())
                .map_or(h.clone(), |n| n.to_string())
        } else if crate::columns::is_uid(value) {
            u128::from_str_radix(&h, 16).map_or(h.clone(), |n| format!("2.25.{n}"))
        } else {
            h
        }
    }

    /// The patient's pseudonym (the MRN's), used as the text engine's patient key.
    pub fn patient_pseudonym(&mut self, mrn: &str) -> String {
        self.pseudonym("mrn", mrn)
    }

    /// The patient's date offset in days (the same in every format for the same MRN).
    pub fn date_offset(&self, mrn: Option<&str>) -> i64 {
        self.keys
            .date_offset(mrn.unwrap_or(""), self.p().date_shift_days)
    }

    /// Applies a date method to a date string; `None` = remove. Non-dates are returned
    /// unchanged.
    pub fn date(
        &mut self,
        value: &str,
        method: DateMethod,
        mrn: Option<&str>,
        birth: bool,
        ms_prefix: &str,
    ) -> Option<String> {
        if values::parse_date(value).is_none() {
            return Some(value.to_owned());
        }
        match method {
            DateMethod::Keep => Some(value.to_owned()),
            DateMethod::Redact => None,
            DateMethod::Year => {
                let (y, _capped) = values::year_only(value, birth, self.p().reference_year)?;
                Some(y)
            }
            DateMethod::Shift => {
                let off = self.date_offset(mrn);
                values::shift_date(value, off)
            }
            DateMethod::Microsoft => {
                let key = String::from_utf8_lossy(self.keys.expose_secret()).into_owned();
                let off = crate::keys::microsoft_date_offset(&key, ms_prefix);
                values::ms_shift_date(value, off)
            }
        }
    }

    /// The default date method of the profile.
    pub fn default_date_method(&self) -> DateMethod {
        match self.p().dates {
            DatePolicy::Year => DateMethod::Year,
            DatePolicy::Shift => DateMethod::Shift,
            DatePolicy::Keep => DateMethod::Keep,
            DatePolicy::Redact => DateMethod::Redact,
        }
    }

    /// Free text through the profile's text policy; `None` = remove.
    pub fn text(&mut self, text: &str, mrn: Option<&str>) -> Option<String> {
        let policy = self.p().free_text;
        self.text_with(text, mrn, policy)
    }

    pub fn text_with(
        &mut self,
        text: &str,
        mrn: Option<&str>,
        policy: TextPolicy,
    ) -> Option<String> {
        let mode = match policy {
            TextPolicy::Redact => return None,
            TextPolicy::Keep => return Some(text.to_owned()),
            TextPolicy::Tag => Mode::Tag,
            TextPolicy::Mask => Mode::Mask,
            TextPolicy::Surrogate => Mode::Surrogate,
        };
        if !text.chars().any(char::is_alphanumeric) {
            return Some(text.to_owned());
        }
        let engine = TextEngine::builtin();
        let patient = match (mode, mrn) {
            (Mode::Surrogate, Some(m)) => Some(self.patient_pseudonym(m)),
            (Mode::Surrogate, None) => Some(String::new()),
            _ => None,
        };
        let shift = if self.p().dates == DatePolicy::Shift {
            self.date_offset(mrn)
        } else {
            0
        };
        // For short strings the scrub below (every identifying value of the input, whole words)
        // covers the known identifiers, so only texts long enough to hold spelling variants
        // (notes) get them (airlock-text caches their compiled automaton per patient).
        let known = if text.len() >= KNOWN_MIN_TEXT {
            self.override_known
                .as_ref()
                .or_else(|| mrn.and_then(|m| self.known.get(m)))
        } else {
            None
        };
        let memo_key =
            (text.len() >= MEMO_MIN_TEXT).then(|| (mode, mrn.map(str::to_owned), text.to_owned()));
        if let Some(key) = &memo_key
            && let Some(hit) = self.memo.map.get(key)
            && hit.epoch == self.scrub_epoch
            && hit.known.as_ref() == known
        {
            return Some(hit.out.clone());
        }
        let ctx = patient.as_deref().map(|p| SurrogateContext {
            key: self.keys.expose_secret(),
            patient: p,
            date_shift_days: shift,
        });
        let out = engine.redact(text, known, mode, ctx.as_ref());
        let known = known.cloned();
        // Identifying values seen anywhere in the input (another patient's city in a
        // provider's name, a name repeated in an untyped field) are scrubbed too.
        let out = match self.scanner().scrub(&out.text) {
            Some(t) => t,
            None => out.text,
        };
        if let Some(key) = memo_key {
            if self.memo.map.len() >= MEMO_MAX_ENTRIES {
                self.memo.map.clear();
            }
            self.memo.map.insert(
                key,
                MemoEntry {
                    epoch: self.scrub_epoch,
                    known,
                    out: out.clone(),
                },
            );
        }
        Some(out)
    }

    /// Marks the identifying values collected so far as known to the scrubber (called after
    /// a pre-scan; values collected while transforming do not rebuild the automaton each time).
    pub fn refresh_scrub(&mut self) {
        self.scrub_epoch = self.leaks.version();
    }

    /// The scanner over the identifying values of the last pre-scan (rebuilt when they change).
    pub fn scanner(&mut self) -> std::sync::Arc<crate::leak::Scanner> {
        let version = self.scrub_epoch;
        if let Some((v, s)) = &self.scrubber
            && *v == version
        {
            return s.clone();
        }
        let s = std::sync::Arc::new(self.leaks.scanner());
        self.scrubber = Some((version, s.clone()));
        s
    }

    /// Applies a value method to a scalar string (FHIR leaf, HL7 leaf value, CSV cell).
    /// `None` = remove.
    pub fn scalar(&mut self, method: &Method, value: &str, ctx: &ScalarCtx<'_>) -> Option<String> {
        match method {
            Method::Redact => None,
            Method::Keep => Some(value.to_owned()),
            Method::Pseudonym => Some(self.pseudonym(ctx.namespace, value)),
            Method::CryptoHash => Some(self.keys.crypto_hash_hex(value)),
            Method::DateShift { microsoft } => {
                let m = if *microsoft {
                    DateMethod::Microsoft
                } else {
                    DateMethod::Shift
                };
                self.date(value, m, ctx.mrn, ctx.birth, ctx.resource_id)
            }
            Method::YearOnly => {
                self.date(value, DateMethod::Year, ctx.mrn, ctx.birth, ctx.resource_id)
            }
            Method::Zip3 => values::zip3(value, self.p().restricted),
            Method::AgeCap => Some(age_cap_str(value, self.p().age_cap)),
            Method::GeneralizeBins(w) => match value.trim().parse::<f64>() {
                Ok(v) => Some(values::bin(v, *w)),
                Err(_) => Some(value.to_owned()),
            },
            Method::GeneralizeCode(h) => {
                Some(crate::codes::generalize(value, *h, self.rare.as_ref()))
            }
            Method::Perturb {
                span,
                proportional,
                round_to,
            } => match value.trim().parse::<f64>() {
                Ok(v) => Some(
                    values::perturb(self.keys, ctx.namespace, v, *span, *proportional, *round_to)
                        .to_string(),
                ),
                Err(_) => Some(value.to_owned()),
            },
            Method::SubstituteFake(k) => Some(values::fake(self.keys, *k, value)),
            Method::SubstituteValue(v) => Some(v.clone()),
            Method::Text => self.text(value, ctx.mrn),
        }
    }

    pub fn leak(&mut self, kind: LeakKind, value: &str) {
        self.leaks.add(kind, value);
    }
}

/// Context for [`Run::scalar`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScalarCtx<'a> {
    pub namespace: &'a str,
    pub mrn: Option<&'a str>,
    pub birth: bool,
    pub resource_id: &'a str,
}

/// A date method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateMethod {
    Keep,
    Redact,
    Year,
    Shift,
    Microsoft,
}

/// Ages: numbers above the cap become `90+`-style (`cap + 1` followed by `+`); age bins such
/// as `[90-100)` whose lower bound exceeds the cap become `>89`-style `"90+"`.
pub(crate) fn age_cap_str(value: &str, cap: u32) -> String {
    let v = value.trim();
    let over = format!("{}+", cap + 1);
    if let Ok(n) = v.parse::<f64>() {
        return if values::age_cap(n, cap).is_none() {
            over
        } else {
            v.to_owned()
        };
    }
    // Bins like "[90-100)".
    let lower: String = v
        .trim_start_matches(['[', '('])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match lower.parse::<u32>() {
        Ok(l) if l > cap => over,
        _ => v.to_owned(),
    }
}

/// Formats 32 hex characters as a UUID (`8-4-4-4-12`).
pub(crate) fn uuid_shape(h: &str) -> String {
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or("0");
    let mut out = String::with_capacity(36);
    for (i, (a, b)) in [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        out.push_str(part(a, b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_reuses_output_only_while_known_identifiers_stay_the_same() {
        let profile = Profile::builtin("safe-harbor").unwrap();
        let keys = DeidKeys::new(vec![7; 32]).unwrap();
        let mut cw = Crosswalk::new();
        let mut run = Run::new(&profile, &keys, &mut cw);
        let note = format!(
            // `zorblat` in lower case and after no label or title: nothing marks it as a name
            // until the record's known identifiers do.
            "The zorblat dressing was changed today at the follow-up visit. {}",
            "Vital signs were stable and the plan is unchanged. ".repeat(6)
        );
        assert!(note.len() >= MEMO_MIN_TEXT);
        let first = run.text(&note, Some("m1")).unwrap();
        assert!(first.contains("zorblat"), "{first}");
        assert_eq!(run.text(&note, Some("m1")).unwrap(), first);
        run.known.insert(
            "m1".to_owned(),
            KnownIdentifiers {
                names: vec!["zorblat".to_owned()],
                ..KnownIdentifiers::default()
            },
        );
        let second = run.text(&note, Some("m1")).unwrap();
        assert!(!second.contains("zorblat"), "stale memo entry reused");
        assert_eq!(run.text(&note, Some("m1")).unwrap(), second);
    }

    #[test]
    fn ages() {
        assert_eq!(age_cap_str("95", 89), "90+");
        assert_eq!(age_cap_str("89", 89), "89");
        assert_eq!(age_cap_str("[90-100)", 89), "90+");
        assert_eq!(age_cap_str("[80-90)", 89), "[80-90)");
        assert_eq!(
            uuid_shape("0123456789abcdef0123456789abcdef"),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }
}
