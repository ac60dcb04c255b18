//! The embedded gazetteers and word lists (see `data/SOURCES.md` for where each comes from and
//! `scripts/text-dictionaries.py` for how they are regenerated).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::TextError;

/// A Census first name.
pub(crate) const FIRST: u16 = 1;
/// A Census surname.
pub(crate) const LAST: u16 = 1 << 1;
/// A U.S. city (single word).
pub(crate) const CITY: u16 = 1 << 2;
/// A U.S. county name (single word, without "County").
pub(crate) const COUNTY: u16 = 1 << 3;
/// Also an ordinary English word (Webster's 2nd lower-case and GCIDE).
pub(crate) const ENGLISH: u16 = 1 << 4;
/// A very common English word (curated): never a name or place without context.
pub(crate) const COMMON: u16 = 1 << 5;
/// A clinical abbreviation or eponym: never PHI on its own.
pub(crate) const SAFE: u16 = 1 << 6;
/// Follows an eponym ("reflex", "score", "disease").
pub(crate) const EPONYM_HEAD: u16 = 1 << 7;
/// Ends a facility name ("Hospital", "Clinic").
pub(crate) const FACILITY_HEAD: u16 = 1 << 8;
/// Among the 1,000 most frequent first names or surnames.
pub(crate) const TOP_NAME: u16 = 1 << 9;
/// Any other dictionary word (or an inflection of one): not a name by itself.
pub(crate) const WORD: u16 = 1 << 10;

const FIRST_NAMES: &str = include_str!("../data/first_names.txt");
const SURNAMES: &str = include_str!("../data/surnames.txt");
const CITIES: &str = include_str!("../data/cities.txt");
const COUNTIES: &str = include_str!("../data/counties.txt");
const ENGLISH_WORDS: &str = include_str!("../data/english_words.txt");
const WORDS: &str = include_str!("../data/words.txt");
const COMMON_WORDS: &str = include_str!("../data/common_words.txt");
const CLINICAL_SAFE: &str = include_str!("../data/clinical_safe.txt");
const EPONYM_HEADS: &str = include_str!("../data/eponym_heads.txt");
const FACILITY_HEADS: &str = include_str!("../data/facility_heads.txt");
const HOSPITALS: &str = include_str!("../data/hospitals.txt");
const PLACES: &str = include_str!("../data/places.txt");

/// What a multi-word phrase match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhraseKind {
    City,
    County,
    Hospital,
}

/// FNV-1a: the gazetteer keys are short, trusted, built-in words, so a fast non-keyed hash is
/// fine (the text only ever probes; it cannot insert).
#[derive(Default, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// The gazetteers, built once.
pub(crate) struct Dicts {
    words: FastMap<Box<str>, u16>,
    /// Multi-word places and hospitals (ASCII case-insensitive, leftmost-longest).
    pub(crate) phrases: AhoCorasick,
    pub(crate) phrase_kinds: Vec<PhraseKind>,
    /// The 1,000 most frequent first names (a word that is also a surname is faked as a
    /// first name when it is one of these).
    pub(crate) top_first: HashSet<&'static str>,
    /// Multi-word city names, lower-case.
    pub(crate) multi_cities: HashSet<Cow<'static, str>>,
    /// For surrogates: first names and surnames by frequency, cities.
    pub(crate) first_names: Vec<&'static str>,
    pub(crate) surnames: Vec<&'static str>,
    pub(crate) cities: Vec<&'static str>,
}

impl std::fmt::Debug for Dicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dicts")
            .field("words", &self.words.len())
            .field("phrases", &self.phrase_kinds.len())
            .finish()
    }
}

/// "coeur d alene" → "coeur d'alene": a one-letter word `d`, `o` or `l` inside a place name is
/// an elided article, written with an apostrophe.
fn apostrophe_spelling(place: &str) -> Option<String> {
    let words: Vec<&str> = place.split(' ').collect();
    let mut out = String::with_capacity(place.len());
    let mut changed = false;
    for (i, w) in words.iter().enumerate() {
        out.push_str(w);
        let elided = matches!(*w, "d" | "o" | "l") && i > 0 && i + 1 < words.len();
        if elided {
            out.push('\'');
            changed = true;
        } else if i + 1 < words.len() {
            out.push(' ');
        }
    }
    changed.then_some(out)
}

fn entries(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Dicts {
    pub(crate) fn build() -> Result<Dicts, TextError> {
        let mut words: FastMap<Box<str>, u16> =
            FastMap::with_capacity_and_hasher(80_000, Default::default());
        let mut add = |w: &str, flag: u16| {
            *words.entry(w.into()).or_insert(0) |= flag;
        };
        let first_names: Vec<&'static str> = entries(FIRST_NAMES).collect();
        let top_first: HashSet<&'static str> = first_names.iter().take(1000).copied().collect();
        let surnames: Vec<&'static str> = entries(SURNAMES).collect();
        for (i, w) in first_names.iter().enumerate() {
            add(w, if i < 1000 { FIRST | TOP_NAME } else { FIRST });
        }
        for (i, w) in surnames.iter().enumerate() {
            add(w, if i < 1000 { LAST | TOP_NAME } else { LAST });
        }
        let mut phrase_pats: Vec<Cow<'static, str>> = Vec::new();
        let mut phrase_kinds = Vec::new();
        let mut cities = Vec::new();
        let mut multi_cities = HashSet::new();
        for c in entries(CITIES) {
            cities.push(c);
            if c.contains(' ') {
                // The Census tables drop apostrophes ("coeur d alene", "land o lakes"): the
                // spelling with one is a pattern too.
                if let Some(with) = apostrophe_spelling(c) {
                    multi_cities.insert(Cow::Owned(with.clone()));
                    phrase_pats.push(Cow::Owned(with));
                    phrase_kinds.push(PhraseKind::City);
                }
                multi_cities.insert(Cow::Borrowed(c));
                phrase_pats.push(Cow::Borrowed(c));
                phrase_kinds.push(PhraseKind::City);
            } else {
                add(c, CITY);
            }
        }
        for c in entries(COUNTIES) {
            if c.contains(' ') {
                phrase_pats.push(Cow::Borrowed(c));
                phrase_kinds.push(PhraseKind::County);
            } else {
                add(c, COUNTY);
            }
        }
        for p in entries(PLACES) {
            phrase_pats.push(Cow::Borrowed(p));
            phrase_kinds.push(PhraseKind::City);
        }
        for h in entries(HOSPITALS) {
            phrase_pats.push(Cow::Borrowed(h));
            phrase_kinds.push(PhraseKind::Hospital);
        }
        for w in entries(ENGLISH_WORDS) {
            add(w, ENGLISH);
        }
        for w in entries(WORDS) {
            add(w, WORD);
        }
        for w in entries(COMMON_WORDS) {
            add(w, COMMON);
        }
        for w in entries(CLINICAL_SAFE) {
            add(w, SAFE);
        }
        for w in entries(EPONYM_HEADS) {
            add(w, EPONYM_HEAD);
        }
        for w in entries(FACILITY_HEADS) {
            add(w, FACILITY_HEAD);
        }
        let phrases = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(aho_corasick::StartKind::Anchored)
            .build(phrase_pats.iter().map(|p| p.as_bytes()))
            .map_err(|_| TextError::Pattern {
                name: "gazetteer phrases",
            })?;
        // Surrogates draw from the more frequent names only, so fakes look ordinary.
        let first_names = first_names.into_iter().take(2000).collect();
        let surnames = surnames.into_iter().take(5000).collect();
        Ok(Dicts {
            top_first,
            multi_cities,
            words,
            phrases,
            phrase_kinds,
            first_names,
            surnames,
            cities,
        })
    }

    /// Whether `word` (any case) is an inflection of a dictionary word ("weeks", "treated").
    pub(crate) fn is_inflected_word(&self, word: &str) -> bool {
        self.inflects_a_word(&word.to_ascii_lowercase())
    }

    /// Whether the lower-case `lower` is an inflection of a dictionary word: some suffix
    /// replaced by its stem's ending ("ies" → "y", "ing" → "e"...) gives a word of at least
    /// three letters before the ending. Stems are built in a stack buffer (no allocation: this
    /// runs for every word of every note that no list knows).
    fn inflects_a_word(&self, lower: &str) -> bool {
        const RULES: [(&str, &str); 8] = [
            ("ies", "y"),
            ("es", ""),
            ("s", ""),
            ("ed", ""),
            ("ed", "e"),
            ("ing", ""),
            ("ing", "e"),
            ("ly", ""),
        ];
        let mut buf = [0u8; 64];
        RULES.iter().any(|(suffix, repl)| {
            let Some(stem) = lower.strip_suffix(suffix) else {
                return false;
            };
            let len = stem.len() + repl.len();
            if stem.len() < 3 || len > buf.len() {
                return false;
            }
            let (head, rest) = buf.split_at_mut(stem.len());
            let Some(tail) = rest.get_mut(..repl.len()) else {
                return false;
            };
            head.copy_from_slice(stem.as_bytes());
            tail.copy_from_slice(repl.as_bytes());
            // `stem` ends on a char boundary of a str and `repl` is ASCII.
            std::str::from_utf8(buf.get(..len).unwrap_or_default()).is_ok_and(|w| {
                self.words
                    .get(w)
                    .is_some_and(|f| f & (WORD | ENGLISH | COMMON) != 0)
            })
        })
    }

    /// Flags of a lower-case word (0 when unknown).
    pub(crate) fn flags(&self, lower: &str) -> u16 {
        if let Some(f) = self.words.get(lower) {
            return *f;
        }
        // Inflections of dictionary words ("pleasures", "treated") are words too.
        if self.inflects_a_word(lower) {
            return WORD;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn elided_articles_get_their_apostrophe() {
        assert_eq!(
            super::apostrophe_spelling("coeur d alene").as_deref(),
            Some("coeur d'alene")
        );
        assert_eq!(
            super::apostrophe_spelling("land o lakes").as_deref(),
            Some("land o'lakes")
        );
        assert_eq!(super::apostrophe_spelling("new york"), None);
        let d = crate::engine::dicts().unwrap();
        assert!(d.multi_cities.contains("coeur d'alene"));
    }

    #[test]
    fn inflections_of_dictionary_words_are_words() {
        let d = crate::engine::dicts().unwrap();
        for w in [
            "treated",
            "pleasures",
            "studies",
            "weeks",
            "making",
            "briefly",
        ] {
            assert!(d.is_inflected_word(w), "{w}");
        }
        // Stems shorter than three letters, stems longer than the buffer, and non-words.
        for w in [
            "ies",
            "sing",
            "zorblats",
            "qwxzzing",
            &"a".repeat(80),
            "Ærøskøbinged",
        ] {
            assert!(!d.is_inflected_word(w), "{w}");
        }
    }
}
