//! The leak check: every identifying value the engine saw in the input (names, ids, phones,
//! emails, street lines, cities, exact dates, full zips) is searched for in the output with one
//! aho-corasick automaton (ASCII case-insensitive, whole words only: a hit must not be
//! preceded or followed by a letter or digit). Hits are reported by path, never by value.
//!
//! Under a date-shifting profile, a shifted date sometimes equals a true date of the input (of
//! another patient, or of another event of the same patient). Such a hit is counted apart, as a date-shift coincidence, only when the
//! output value is a whole structured date the shift wrote, and no more copies of that value
//! are in the output than the shift wrote (see `ShiftedDates` and `Findings`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};

use crate::hash::FastMap;
use crate::report::LeakHit;

/// The kind of an identifying value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeakKind {
    /// A name part.
    Name,
    /// An identifier (MRN, SSN, licence, account...).
    Id,
    /// A phone or fax number.
    Phone,
    /// An email.
    Email,
    /// A street line.
    Street,
    /// A city, county or district.
    City,
    /// A full date.
    Date,
    /// A full (5+ digit) zip code.
    Zip,
    /// A coordinate (latitude or longitude in decimal degrees).
    Geo,
}

impl LeakKind {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            LeakKind::Name => "name",
            LeakKind::Id => "id",
            LeakKind::Phone => "phone",
            LeakKind::Email => "email",
            LeakKind::Street => "street",
            LeakKind::City => "city",
            LeakKind::Date => "date",
            LeakKind::Zip => "zip",
            LeakKind::Geo => "geo",
        }
    }

    fn min_len(self) -> usize {
        match self {
            LeakKind::Name => 4,
            LeakKind::City => 4,
            LeakKind::Id | LeakKind::Phone => 5,
            LeakKind::Street | LeakKind::Email => 6,
            LeakKind::Date => 8,
            LeakKind::Zip => 5,
            // `47.7443942`: coordinates this short (`47.7`) locate nothing smaller than a state
            // and would match unrelated measurements.
            LeakKind::Geo => 7,
        }
    }
}

/// Identifying values collected from the input.
#[derive(Default)]
pub struct LeakSet {
    values: FastMap<String, LeakKind>,
    lower: crate::hash::FastSet<String>,
    version: u64,
    /// Every (trimmed) value offered to [`LeakSet::add`], with the kinds it was offered as:
    /// adding is idempotent, and a document offers the same dates and ids many times.
    offered: FastMap<String, u32>,
}

/// Titles and suffixes that are not names.
const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "dr", "prof", "jr", "sr", "md", "phd", "ii", "iii", "iv", "rn",
    "np", "do",
];

impl std::fmt::Debug for LeakSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakSet")
            .field("values", &self.values.len())
            .finish()
    }
}

/// US states, the District and the territories, lowercase: Safe Harbor permits them in the
/// output, and a place written as text ends with one (`columns.rs`).
pub(crate) const US_STATES: &[&str] = &[
    "alabama",
    "alaska",
    "arizona",
    "arkansas",
    "california",
    "colorado",
    "connecticut",
    "delaware",
    "florida",
    "georgia",
    "hawaii",
    "idaho",
    "illinois",
    "indiana",
    "iowa",
    "kansas",
    "kentucky",
    "louisiana",
    "maine",
    "maryland",
    "massachusetts",
    "michigan",
    "minnesota",
    "mississippi",
    "missouri",
    "montana",
    "nebraska",
    "nevada",
    "new hampshire",
    "new jersey",
    "new mexico",
    "new york",
    "north carolina",
    "north dakota",
    "ohio",
    "oklahoma",
    "oregon",
    "pennsylvania",
    "rhode island",
    "south carolina",
    "south dakota",
    "tennessee",
    "texas",
    "utah",
    "vermont",
    "virginia",
    "washington",
    "west virginia",
    "wisconsin",
    "wyoming",
    "district of columbia",
    "puerto rico",
    "guam",
    "american samoa",
    "virgin islands",
];

/// Values Safe Harbor permits in the output besides [`US_STATES`]: OMB race and ethnicity
/// categories, lowercase.
const PERMITTED_VOCABULARY: &[&str] = &[
    "white", "black", "asian", "hispanic", "latino", "native", "other", "unknown",
];

impl LeakSet {
    /// Records an identifying value (too-short values and bare numbers too short to be
    /// specific are skipped: they would match unrelated output).
    pub fn add(&mut self, kind: LeakKind, value: &str) {
        let v = value.trim();
        let bit = 1u32 << (kind as u32);
        match self.offered.get_mut(v) {
            Some(kinds) if *kinds & bit != 0 => return,
            Some(kinds) => *kinds |= bit,
            None => {
                self.offered.insert(v.to_owned(), bit);
            }
        }
        if v.chars().count() < kind.min_len() || !v.chars().any(char::is_alphanumeric) {
            return;
        }
        if kind == LeakKind::Zip && !v.chars().take(5).all(|c| c.is_ascii_digit()) {
            return;
        }
        if kind == LeakKind::Name
            && HONORIFICS.contains(&v.trim_end_matches('.').to_ascii_lowercase().as_str())
        {
            return;
        }
        // A name or city spelled exactly like a value Safe Harbor lets stay (a state, an OMB
        // race or ethnicity category) cannot be told apart from that kept value in the output:
        // "White" the surname and "White" the race, "Washington" the city and the state.
        // Free text is still scrubbed of such names by the text engine.
        if matches!(kind, LeakKind::Name | LeakKind::City) && {
            let lower = v.to_ascii_lowercase();
            PERMITTED_VOCABULARY.contains(&lower.as_str()) || US_STATES.contains(&lower.as_str())
        } {
            return;
        }
        // Most values (dates, ids) are ASCII without capitals and seen before: no allocation.
        let lower: std::borrow::Cow<'_, str> =
            if v.is_ascii() && !v.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Borrowed(v)
            } else {
                std::borrow::Cow::Owned(v.to_lowercase())
            };
        if !self.lower.contains(lower.as_ref()) {
            self.lower.insert(lower.into_owned());
            self.version += 1;
        }
        if !self.values.contains_key(v) {
            self.values.insert(v.to_owned(), kind);
        }
        // Phones: also their digit-only form (10 digits) to catch reformatting.
        if kind == LeakKind::Phone {
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 7 && digits != v {
                self.values.entry(digits).or_insert(kind);
            }
        }
    }

    /// Whether `value` (trimmed, case-insensitive) is exactly a collected identifying value.
    pub fn contains(&self, value: &str) -> bool {
        !self.lower.is_empty() && self.lower.contains(&value.trim().to_lowercase())
    }

    /// A counter that changes whenever a new value is added.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Builds the scanner.
    pub fn scanner(&self) -> Scanner {
        let mut pats: Vec<(String, LeakKind)> =
            self.values.iter().map(|(v, k)| (v.clone(), *k)).collect();
        pats.sort();
        let grams = Grams::new(pats.iter().map(|(v, _)| v.as_bytes()));
        Scanner {
            pats,
            grams,
            compiled: OnceLock::new(),
        }
    }
}

/// A compiled leak scanner.
///
/// Most texts it is asked about contain no identifying value at all (a clean run has none in
/// its whole output), so it first looks for the values with an exact four-byte-prefix index
/// (`Grams`), and builds its aho-corasick automaton (which decides whole words, case and
/// which value matched first) only for a text that holds one, once.
pub struct Scanner {
    /// The patterns (values) with their kinds, in automaton order.
    pats: Vec<(String, LeakKind)>,
    grams: Grams,
    compiled: OnceLock<Compiled>,
}

/// The automaton, built on first need.
struct Compiled {
    ac: Option<AhoCorasick>,
    /// Per pattern: set for names that are also words (they need a capital to count).
    exact: Vec<bool>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("patterns", &self.pats.len())
            .finish_non_exhaustive()
    }
}

impl Scanner {
    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            // A one-word name that is also an English word ("Bell", "Green") counts only when
            // it has a capital (a proper noun: "Bell", "BELL"), not as the word in running
            // text ("call bell").
            let text = airlock_text::Engine::builtin();
            let exact = self
                .pats
                .iter()
                .map(|(v, k)| {
                    *k == LeakKind::Name
                        && !v.contains(char::is_whitespace)
                        && text.is_dictionary_word(v)
                })
                .collect();
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                // Built at most once or twice per run or document: a contiguous NFA builds in a
                // fraction of the time of a DFA and searches almost as fast.
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .build(self.pats.iter().map(|(v, _)| v.as_str()))
                .ok();
            Compiled { ac, exact }
        })
    }

    /// Whether the match of `pattern` at `text[s..e]` counts.
    fn counts(c: &Compiled, pattern: usize, text: &str, s: usize, e: usize) -> bool {
        if c.exact.get(pattern).copied().unwrap_or(false) {
            // Written in lower case it is the word, not the name.
            text.get(s..e)
                .is_some_and(|m| m.chars().any(char::is_uppercase))
        } else {
            true
        }
    }

    fn kind(&self, pattern: usize) -> Option<LeakKind> {
        self.pats.get(pattern).map(|(_, k)| *k)
    }

    /// Replaces every whole-word identifying value in `text` by `[REDACTED]`;
    /// `None` when there is none.
    pub fn scrub(&self, text: &str) -> Option<String> {
        if !self.grams.occurs(text.as_bytes()) {
            return None;
        }
        let c = self.compiled();
        let ac = c.ac.as_ref()?;
        let bytes = text.as_bytes();
        let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for m in ac.find_overlapping_iter(text) {
            let before = m.start().checked_sub(1).and_then(|i| bytes.get(i));
            if word(before) || word(bytes.get(m.end())) {
                continue;
            }
            if !text.is_char_boundary(m.start()) || !text.is_char_boundary(m.end()) {
                continue;
            }
            if !Self::counts(c, m.pattern().as_usize(), text, m.start(), m.end()) {
                continue;
            }
            spans.push((m.start(), m.end()));
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in spans {
            if s < at {
                continue;
            }
            out.push_str(text.get(at..s).unwrap_or_default());
            // One neutral tag: a kind name ("STREET") could itself be a collected value.
            out.push_str("[REDACTED]");
            at = e;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Some(out)
    }

    /// The kind of the first whole-word identifying value found in `text`, if any.
    pub fn find(&self, text: &str) -> Option<LeakKind> {
        if !self.grams.occurs(text.as_bytes()) {
            return None;
        }
        let c = self.compiled();
        let ac = c.ac.as_ref()?;
        let bytes = text.as_bytes();
        for m in ac.find_overlapping_iter(text) {
            let before = m.start().checked_sub(1).and_then(|i| bytes.get(i));
            let after = bytes.get(m.end());
            let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
            if !word(before)
                && !word(after)
                && Self::counts(c, m.pattern().as_usize(), text, m.start(), m.end())
            {
                return self.kind(m.pattern().as_usize());
            }
        }
        None
    }
}

impl Scanner {
    /// Whether `text` holds a whole-word identifying value and every one it holds is of
    /// `kind` (a date-shift coincidence must be a date and nothing else).
    pub(crate) fn only_kind(&self, text: &str, kind: LeakKind) -> bool {
        if !self.grams.occurs(text.as_bytes()) {
            return false;
        }
        let c = self.compiled();
        let Some(ac) = c.ac.as_ref() else {
            return false;
        };
        let bytes = text.as_bytes();
        let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        let mut any = false;
        for m in ac.find_overlapping_iter(text) {
            let before = m.start().checked_sub(1).and_then(|i| bytes.get(i));
            if word(before)
                || word(bytes.get(m.end()))
                || !Self::counts(c, m.pattern().as_usize(), text, m.start(), m.end())
            {
                continue;
            }
            if self.kind(m.pattern().as_usize()) != Some(kind) {
                return false;
            }
            any = true;
        }
        any
    }
}

/// The values the date shift wrote as whole structured values (a FHIR date element, a CSV date
/// cell), with how many times each was written. A value is kept as a seeded 64-bit hash: a few
/// words per distinct date however large the run, and two different dates share a hash with
/// odds of about one in 2^64 per pair.
#[derive(Default)]
pub(crate) struct ShiftedDates {
    hasher: foldhash::fast::RandomState,
    written: FastMap<u64, u64>,
}

impl std::fmt::Debug for ShiftedDates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShiftedDates")
            .field("values", &self.written.len())
            .finish()
    }
}

impl ShiftedDates {
    fn key(&self, value: &str) -> u64 {
        self.hasher.hash_one(value)
    }

    /// The shift wrote `value` as a whole output value once more.
    pub(crate) fn wrote(&mut self, value: &str) {
        *self.written.entry(self.key(value)).or_insert(0) += 1;
    }

    fn times(&self, key: u64) -> u64 {
        self.written.get(&key).copied().unwrap_or(0)
    }
}

/// What the scan of the outputs found. A date hit on an output value the shift wrote is held
/// back until every output has been scanned: it is a coincidence only if the outputs hold that
/// value no more often than the shift wrote it, so a copy left unshifted anywhere (a kept
/// element, a value the shift never saw) keeps every hit on the value a hit.
pub(crate) struct Findings<'s> {
    /// Hits (paths only).
    pub hits: Vec<LeakHit>,
    /// Output values scanned.
    pub scanned: u64,
    /// CSV numbers equal to an identifying number by coincidence (see `table::scan_csv`).
    pub numeric_coincidences: u64,
    shifted: &'s ShiftedDates,
    /// Hits held back, by the hash of the output value.
    held: FastMap<u64, Vec<LeakHit>>,
}

impl<'s> Findings<'s> {
    pub(crate) fn new(shifted: &'s ShiftedDates) -> Findings<'s> {
        Findings {
            hits: Vec::new(),
            scanned: 0,
            numeric_coincidences: 0,
            shifted,
            held: FastMap::default(),
        }
    }

    /// The key to hold a hit of `kind` on the whole output value `value` under, when it may be
    /// a date-shift coincidence: a date, and nothing but dates, written by the shift.
    pub(crate) fn shift_candidate(
        &self,
        scanner: &Scanner,
        value: &str,
        kind: LeakKind,
    ) -> Option<u64> {
        if kind != LeakKind::Date || self.shifted.written.is_empty() {
            return None;
        }
        let key = self.shifted.key(value);
        (self.shifted.times(key) > 0 && scanner.only_kind(value, LeakKind::Date)).then_some(key)
    }

    /// Holds a hit found on a value [`Findings::shift_candidate`] named.
    pub(crate) fn hold(&mut self, key: u64, hit: LeakHit) {
        self.held.entry(key).or_default().push(hit);
    }

    /// Records a hit of `kind` on the whole output value `value`.
    pub(crate) fn hit(&mut self, scanner: &Scanner, value: &str, kind: LeakKind, hit: LeakHit) {
        match self.shift_candidate(scanner, value, kind) {
            Some(key) => self.hold(key, hit),
            None => self.hits.push(hit),
        }
    }

    /// Settles the held hits; returns the hits and the number of date-shift coincidences.
    pub(crate) fn settle(mut self) -> (Vec<LeakHit>, u64) {
        let mut coincidences = 0u64;
        let mut held: Vec<(u64, Vec<LeakHit>)> = self.held.drain().collect();
        // Hits in a stable order whatever the hash seed.
        let first = |hs: &[LeakHit]| {
            hs.first()
                .map(|h| (h.file.clone(), h.record, h.path.clone()))
        };
        held.sort_by_cached_key(|(_, hs)| first(hs));
        for (key, hs) in held {
            if hs.len() as u64 <= self.shifted.times(key) {
                coincidences += hs.len() as u64;
            } else {
                self.hits.extend(hs);
            }
        }
        (self.hits, coincidences)
    }
}

/// An exact index of the patterns by their first four bytes (ASCII case folded): it says
/// whether a text contains any pattern between non-word bytes (as the automaton, matching
/// ASCII case-insensitively, and its callers' boundary check would see it), without the
/// automaton. A text it clears holds no match; a text it does not clear goes to the
/// automaton.
struct Grams {
    /// A 2^16-bit filter of the prefixes.
    bits: Vec<u64>,
    /// Prefix → the patterns (folded) that start with it.
    by_prefix: HashMap<u32, Vec<Vec<u8>>>,
    /// Some pattern is shorter than four bytes: every text goes to the automaton.
    short: bool,
}

/// ASCII case folding, as the automaton does it.
fn fold(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

impl Grams {
    fn new<'a>(pats: impl Iterator<Item = &'a [u8]>) -> Grams {
        let mut g = Grams {
            bits: vec![0; 1024],
            by_prefix: HashMap::new(),
            short: false,
        };
        for p in pats {
            let folded: Vec<u8> = p.iter().copied().map(fold).collect();
            let (Some(&a), Some(&b), Some(&c), Some(&d)) =
                (folded.first(), folded.get(1), folded.get(2), folded.get(3))
            else {
                g.short = true;
                continue;
            };
            let key = u32::from_le_bytes([a, b, c, d]);
            let h = Self::slot(key);
            if let Some(w) = g.bits.get_mut(h / 64) {
                *w |= 1 << (h % 64);
            }
            g.by_prefix.entry(key).or_default().push(folded);
        }
        g
    }

    #[inline(always)]
    fn slot(key: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> 16) as usize
    }

    /// Whether some pattern occurs in `text` (ASCII case-insensitively) with no letter or digit
    /// right before or after it.
    fn occurs(&self, text: &[u8]) -> bool {
        if self.short {
            return true;
        }
        if self.by_prefix.is_empty() || text.len() < 4 {
            return false;
        }
        let mut key = 0u32;
        for (i, &b) in text.iter().enumerate() {
            key = (key >> 8) | (u32::from(fold(b)) << 24);
            if i < 3 {
                continue;
            }
            let h = Self::slot(key);
            if self
                .bits
                .get(h / 64)
                .is_some_and(|w| w & (1 << (h % 64)) != 0)
                && let Some(list) = self.by_prefix.get(&key)
            {
                let start = i - 3;
                let rest = text.get(start..).unwrap_or_default();
                // A match counts only between non-word bytes (as the automaton's callers
                // check): a value inside a longer token (digits in a hex surrogate) is none.
                let word = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
                if word(start.checked_sub(1).and_then(|j| text.get(j))) {
                    continue;
                }
                if list.iter().any(|p| {
                    rest.get(..p.len())
                        .is_some_and(|t| t.iter().zip(p).all(|(&x, &y)| fold(x) == y))
                        && !word(rest.get(p.len()))
                }) {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_case_insensitive() {
        let mut s = LeakSet::default();
        s.add(LeakKind::Name, "Anne");
        s.add(LeakKind::Id, "999-40-8244");
        s.add(LeakKind::Name, "J"); // too short
        s.add(LeakKind::Phone, "(555) 123-4567");
        let sc = s.scanner();
        assert_eq!(sc.find("Annex review"), None);
        assert_eq!(sc.find("seen by ANNE today"), Some(LeakKind::Name));
        assert_eq!(sc.find("ssn 999-40-8244."), Some(LeakKind::Id));
        assert_eq!(sc.find("call 5551234567"), Some(LeakKind::Phone));
        assert_eq!(sc.find("J"), None);
        assert_eq!(
            sc.scrub("anne and ANNE, annex").as_deref(),
            Some("[REDACTED] and [REDACTED], annex")
        );
    }

    #[test]
    fn permitted_vocabulary_is_not_a_leak_but_other_places_are() {
        let mut s = LeakSet::default();
        s.add(LeakKind::City, "Washington");
        s.add(LeakKind::Name, "White");
        s.add(LeakKind::City, "Springfield");
        let sc = s.scanner();
        assert_eq!(sc.find("Washington"), None);
        assert_eq!(sc.find("White"), None);
        assert_eq!(sc.find("lives in Springfield"), Some(LeakKind::City));
    }

    /// Whether the automaton finds a match with no letter or digit around it.
    fn whole_word_match(ac: &AhoCorasick, text: &str) -> bool {
        let b = text.as_bytes();
        let word = |x: Option<&u8>| x.is_some_and(u8::is_ascii_alphanumeric);
        ac.find_overlapping_iter(text).any(|m| {
            !word(m.start().checked_sub(1).and_then(|i| b.get(i))) && !word(b.get(m.end()))
        })
    }

    #[test]
    fn prefix_index_agrees_with_the_automaton() {
        let mut s = LeakSet::default();
        for v in [
            "Anne",
            "999-40-8244",
            "(555) 123-4567",
            "Müller",
            "O'Brien",
            "2020-01-02",
        ] {
            s.add(LeakKind::Name, v);
        }
        let sc = s.scanner();
        for text in [
            "",
            "ann",
            "anne",
            "ANNE.",
            "xanne",
            "Dr MÜLLER",
            "Dr Müller",
            "dr müller",
            "o'brien!",
            "4a2020-01-02",
            "x(555) 123-4567",
            "annex",
            "joanne",
            "anne2",
            "(555) 123-4567",
            "5551234567",
            "on 2020-01-02T10:00",
            "nothing here",
        ] {
            let quick = sc.grams.occurs(text.as_bytes());
            let c = sc.compiled();
            let full = whole_word_match(c.ac.as_ref().unwrap(), text);
            assert_eq!(quick, full, "{text:?}");
        }
        assert!(LeakSet::default().scanner().find("anything").is_none());
    }

    proptest::proptest! {
        #[test]
        fn prefix_index_never_misses_a_match(
            pats in proptest::collection::vec("[a-cA-C0-9 éÉ-]{1,7}", 1..6),
            text in "[a-cA-C0-9 éÉ-]{0,40}",
        ) {
            let grams = Grams::new(pats.iter().map(|p| p.as_bytes()));
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build(&pats)
                .unwrap();
            let full = whole_word_match(&ac, &text);
            let quick = grams.occurs(text.as_bytes());
            // Never a miss; exact when every pattern has four bytes or more.
            proptest::prop_assert!(quick || !full);
            if pats.iter().all(|p| p.len() >= 4) {
                proptest::prop_assert_eq!(quick, full);
            }
        }
    }

    fn hit(record: u64) -> LeakHit {
        LeakHit {
            file: "f".into(),
            record,
            path: "Encounter.period.start".into(),
            kind: "date".into(),
        }
    }

    #[test]
    fn a_shifted_date_is_a_coincidence_only_where_the_shift_wrote_it() {
        let mut s = LeakSet::default();
        s.add(LeakKind::Date, "2015-03-04");
        s.add(LeakKind::Date, "2016-01-01");
        let sc = s.scanner();
        let mut shifted = ShiftedDates::default();
        shifted.wrote("2015-03-04");
        shifted.wrote("2016-01-01");
        let mut f = Findings::new(&shifted);
        // The shift wrote 2015-03-04 once and it is in the output once: a coincidence.
        f.hit(&sc, "2015-03-04", LeakKind::Date, hit(0));
        // The shift wrote 2016-01-01 once, the output holds it twice: one copy is not the
        // shift's, so both count.
        f.hit(&sc, "2016-01-01", LeakKind::Date, hit(1));
        f.hit(&sc, "2016-01-01", LeakKind::Date, hit(2));
        // In text, or a date the shift never wrote: hits.
        f.hit(&sc, "seen on 2015-03-04", LeakKind::Date, hit(3));
        f.hit(&sc, "2016-01-01T00:00", LeakKind::Date, hit(4));
        let (hits, coincidences) = f.settle();
        assert_eq!(coincidences, 1);
        let mut records: Vec<u64> = hits.iter().map(|h| h.record).collect();
        records.sort_unstable();
        assert_eq!(records, [1, 2, 3, 4]);
        // A value that also holds another kind of identifying value is never a coincidence.
        let mut s = LeakSet::default();
        s.add(LeakKind::Date, "2015-03-04");
        s.add(LeakKind::Id, "A-77881");
        let sc = s.scanner();
        assert!(!sc.only_kind("A-77881 2015-03-04", LeakKind::Date));
        assert!(sc.only_kind("2015-03-04", LeakKind::Date));
        assert!(!sc.only_kind("2015-03-05", LeakKind::Date));
        shifted.wrote("A-77881 2015-03-04");
        let f = Findings::new(&shifted);
        assert_eq!(
            f.shift_candidate(&sc, "A-77881 2015-03-04", LeakKind::Date),
            None
        );
        assert!(
            f.shift_candidate(&sc, "2015-03-04", LeakKind::Date)
                .is_some()
        );
        assert_eq!(f.shift_candidate(&sc, "2015-03-04", LeakKind::Id), None);
    }

    #[test]
    fn names_that_are_words_count_only_as_written() {
        let mut s = LeakSet::default();
        s.add(LeakKind::Name, "Bell");
        s.add(LeakKind::Name, "Oyelaran");
        let sc = s.scanner();
        assert_eq!(sc.find("call bell within reach"), None);
        assert_eq!(sc.find("seen by Dr. Bell"), Some(LeakKind::Name));
        assert_eq!(sc.find("pt OYELARAN resting"), Some(LeakKind::Name));
    }
}
