//! The gazetteer recogniser: person names, facilities and places, found in one pass over the
//! words of the text plus one aho-corasick pass for multi-word places and hospitals.
//!
//! # Rules, in order
//! 1. **Words** are runs of letters and digits, with an apostrophe inside a word kept
//!    (`O'Reilly`); a possessive `'s` is split off. A Synthea-style numeric suffix
//!    (`Carolee951`) is ignored for lookup.
//! 2. A word is a **name word** when it is a Census first name or surname and not on the
//!    clinical safe-list. It is **ambiguous** when it is also a very common English word (curated
//!    list) or an English dictionary word that is not among the 1,000 most frequent names.
//! 3. **Seeds**: a capitalised unambiguous name word; a capitalised name word next to an initial
//!    (`Will S.`, `J. Smith`); any word after a title (`Dr.`, `Mr`, `Mrs`, `Ms`, `Prof`...),
//!    the title included; a name-like word after a context phrase ("seen by", "spoke with",
//!    "pt", "name is", relatives). Lower-case words become names only through a title or a
//!    context phrase. In an all-capitals text, capitalised means upper-case.
//! 4. **Extension**: a seed grows over adjacent capitalised name words (ambiguous ones too),
//!    initials and capitalised words that are in no dictionary (foreign surnames), and across a
//!    comma for `Last, First`.
//! 5. **Eponyms**: a name chain followed (possibly after `'s` and up to three capitalised words)
//!    by a word such as "reflex", "score", "disease", "study" is dropped ("Chaddock reflex",
//!    "Framingham Heart Study"), unless a title seeded it.
//! 6. **Facilities**: capitalised words ending in a facility word (`Hospital`, `Clinic`,
//!    `Medical Center`, `Med Ctr`), `St./Saint X's`, known hospital names from the gazetteer,
//!    and a capitalised place followed by a lower-case "clinic"/"hospital".
//! 7. **Places**: capitalised single-word U.S. cities that are not ambiguous, ambiguous ones
//!    after "in/at/from/near/to" or "lives in", and multi-word cities and counties from the
//!    aho-corasick pass when each word is capitalised.

use crate::dict::{
    self, COMMON, Dicts, ENGLISH, EPONYM_HEAD, FACILITY_HEAD, FIRST, LAST, PhraseKind, SAFE,
    TOP_NAME,
};
use crate::engine::{Candidate, Priority, Recognizer};
use crate::{PhiKind, Span};

/// Words that introduce a name (lower-case, without the final period).
const TITLES: &[&str] = &[
    "dr",
    "doctor",
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "prof",
    "professor",
    "sr",
    "jr",
    "nurse",
    "rev",
    "sister",
    "mister",
    "madam",
    "dra",
    "md",
];

/// Words after which a name-like word is a name.
const TRIGGERS: &[&str] = &[
    "by",
    "with",
    "pt",
    "patient",
    "name",
    "named",
    "husband",
    "wife",
    "son",
    "daughter",
    "mother",
    "father",
    "brother",
    "sister",
    "friend",
    "contact",
    "attending",
    "resident",
    "cc",
    "per",
    "signed",
    "dictated",
    "dear",
    "mom",
    "dad",
    "grandson",
    "granddaughter",
    "spouse",
    "partner",
    "guardian",
    "caregiver",
    "niece",
    "nephew",
    "aunt",
    "uncle",
    "is",
    "called",
    "i'm",
    "am",
];

/// Context words strong enough that an unknown capitalised word after them is a name
/// ("my name is Bojka", "I'm Maciej").
const STRONG_TRIGGERS: &[&str] = &[
    "name", "named", "called", "i'm", "im", "dear", "signed", "dictated", "cc", "is",
];

/// Words after which a place-like word is a place.
const PLACE_TRIGGERS: &[&str] = &["in", "at", "from", "near", "to", "of", "around", "outside"];

/// Lower-case words that, after a capitalised place, make it a facility.
const LOWER_FACILITY: &[&str] = &[
    "clinic", "hospital", "facility", "office", "practice", "center", "centre", "er", "ed",
    "campus", "hospice",
];

/// Capitalised words that end a facility name only after a place or name ("Chicago General",
/// "Georgetown Med").
const SOFT_HEADS: &[&str] = &["general", "med", "memorial", "regional", "community"];

/// Words that may continue a facility name to the right ("Health Care", "Medical Group").
const FACILITY_TAIL: &[&str] = &[
    "general",
    "memorial",
    "regional",
    "community",
    "university",
    "children",
    "county",
    "care",
    "group",
    "home",
    "er",
    "ed",
    "system",
    "systems",
    "network",
    "campus",
    "associates",
    "partners",
    "ctr",
    "hosp",
];

/// Left-extension stop words for facility names.
const FACILITY_STOP: &[&str] = &[
    "the", "a", "an", "our", "this", "your", "their", "his", "her", "at", "to", "in", "from",
    "and", "or", "was", "is",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Cap,
    Upper,
    Lower,
    Initial,
    Other,
}

const R_TITLE: u8 = 1;
const R_TRIGGER: u8 = 1 << 1;
const R_STRONG_TRIGGER: u8 = 1 << 2;
const R_PLACE_TRIGGER: u8 = 1 << 3;
const R_LOWER_FACILITY: u8 = 1 << 4;
const R_SOFT_HEAD: u8 = 1 << 5;
const R_FACILITY_TAIL: u8 = 1 << 6;

#[derive(Debug, Clone, Copy)]
struct Tok {
    /// Context roles (`R_*`) of the word.
    role: u8,
    start: usize,
    /// End without a possessive `'s`.
    end: usize,
    /// End including the possessive.
    full_end: usize,
    shape: Shape,
    flags: u16,
    possessive: bool,
}

impl Tok {
    fn name_word(&self) -> bool {
        self.flags & (FIRST | LAST) != 0 && self.flags & SAFE == 0
    }
    fn ambiguous(&self) -> bool {
        self.flags & COMMON != 0 || (self.flags & ENGLISH != 0 && self.flags & TOP_NAME == 0)
    }
    fn unknown(&self) -> bool {
        self.flags
            & (ENGLISH
                | COMMON
                | SAFE
                | EPONYM_HEAD
                | FACILITY_HEAD
                | dict::CITY
                | dict::COUNTY
                | dict::WORD)
            == 0
    }
}

/// The gazetteer recogniser (see the module doc).
#[derive(Debug)]
pub struct NameRecognizer {
    dicts: &'static Dicts,
    roles: crate::dict::FastMap<&'static str, u8>,
}

impl NameRecognizer {
    pub(crate) fn new(dicts: &'static Dicts) -> NameRecognizer {
        let mut roles = crate::dict::FastMap::default();
        for (list, role) in [
            (TITLES, R_TITLE),
            (TRIGGERS, R_TRIGGER),
            (STRONG_TRIGGERS, R_STRONG_TRIGGER),
            (PLACE_TRIGGERS, R_PLACE_TRIGGER),
            (LOWER_FACILITY, R_LOWER_FACILITY),
            (SOFT_HEADS, R_SOFT_HEAD),
            (FACILITY_TAIL, R_FACILITY_TAIL),
        ] {
            for w in list {
                *roles.entry(*w).or_insert(0) |= role;
            }
        }
        NameRecognizer { dicts, roles }
    }

    fn tokens(&self, text: &str, upper_doc: bool) -> Vec<Tok> {
        let mut toks = Vec::with_capacity(text.len() / 5);
        let mut lower = String::with_capacity(32);
        let mut it = text.char_indices().peekable();
        while let Some((start, c)) = it.next() {
            if !c.is_alphanumeric() {
                continue;
            }
            let mut end = start + c.len_utf8();
            while let Some(&(i, c2)) = it.peek() {
                let joins = c2.is_alphanumeric()
                    || ((c2 == '\'' || c2 == '\u{2019}')
                        && text
                            .get(i + c2.len_utf8()..)
                            .and_then(|r| r.chars().next())
                            .is_some_and(char::is_alphabetic));
                if joins {
                    end = i + c2.len_utf8();
                    it.next();
                } else {
                    break;
                }
            }
            let full_end = end;
            let word = text.get(start..end).unwrap_or("");
            // Split a possessive 's off.
            let (core, possessive) = match word
                .strip_suffix("'s")
                .or_else(|| word.strip_suffix("\u{2019}s"))
                .or_else(|| word.strip_suffix("'S"))
            {
                Some(core) if !core.is_empty() => (core, true),
                _ => (word, false),
            };
            let end = start + core.len();
            // Lookup key: lower-case, trailing digits dropped (Synthea "Carolee951").
            let letters = core.trim_end_matches(|c: char| c.is_ascii_digit());
            lower.clear();
            for ch in letters.chars() {
                if ch.is_ascii() {
                    lower.push(ch.to_ascii_lowercase());
                } else if ch == '\u{2019}' {
                    lower.push('\'');
                } else {
                    lower.extend(ch.to_lowercase());
                }
            }
            let alpha_core = !letters.is_empty()
                && letters
                    .chars()
                    .all(|c| c.is_alphabetic() || c == '\'' || c == '\u{2019}');
            let (flags, role) = if alpha_core {
                let role = if lower.len() <= 12 {
                    self.roles.get(lower.as_str()).copied().unwrap_or(0)
                } else {
                    0
                };
                (self.dicts.flags(&lower), role)
            } else {
                (0, 0)
            };
            let mut chars = letters.chars();
            let first = chars.next();
            let shape = if !alpha_core {
                Shape::Other
            } else if letters.chars().count() == 1
                && first.is_some_and(char::is_uppercase)
                // The pronoun "I" is an initial only when a period follows.
                && (letters != "I" || text.get(end..end + 1) == Some("."))
            {
                Shape::Initial
            } else if letters.chars().all(|c| !c.is_lowercase()) {
                if upper_doc { Shape::Cap } else { Shape::Upper }
            } else if first.is_some_and(char::is_uppercase) {
                Shape::Cap
            } else {
                Shape::Lower
            };
            toks.push(Tok {
                role,
                start,
                end,
                full_end,
                shape,
                flags,
                possessive,
            });
        }
        toks
    }
}

impl NameRecognizer {
    /// Whether tokens `i..=j` spell a U.S. city and the context says place: a place word
    /// before ("in", "from") or a state code after (", CA").
    fn is_city_chain(&self, text: &str, toks: &[Tok], i: usize, j: usize) -> bool {
        let (Some(a), Some(b)) = (toks.get(i), toks.get(j)) else {
            return false;
        };
        let is_city = if i == j {
            a.flags & dict::CITY != 0
        } else {
            text.get(a.start..b.end)
                .is_some_and(|s| self.dicts.multi_cities.contains(s.to_lowercase().as_str()))
        };
        if !is_city {
            return false;
        }
        let prev_place = i > 0
            && toks.get(i - 1).is_some_and(|p| {
                p.role & R_PLACE_TRIGGER != 0 && text.get(p.end..a.start) == Some(" ")
            });
        let after_facility = i > 0
            && toks.get(i - 1).is_some_and(|p| {
                (p.flags & FACILITY_HEAD != 0 || p.role & R_FACILITY_TAIL != 0)
                    && matches!(text.get(p.full_end..a.start), Some(", " | " "))
            });
        let rest = text.get(b.end..).unwrap_or("");
        let state_after = rest
            .strip_prefix(", ")
            .and_then(|r| r.get(..2))
            .is_some_and(|c| c.len() == 2 && c.bytes().all(|x| x.is_ascii_uppercase()))
            && rest
                .get(4..)
                .and_then(|r| r.chars().next())
                .is_none_or(|c| !c.is_alphanumeric());
        prev_place || state_after || after_facility
    }
}

/// The separator text between two tokens is "tight": spaces only, or an initial's period.
fn tight(text: &str, a: &Tok, b: &Tok) -> bool {
    if a.possessive {
        return false;
    }
    let gap = text.get(a.end..b.start).unwrap_or("x");
    if gap.is_empty() || gap.len() > 3 {
        return false;
    }
    let g = gap.trim_start_matches('.');
    (g.chars().all(|c| c == ' ' || c == '-') && !g.is_empty())
        || (gap == "." && a.shape == Shape::Initial)
}

fn lower_eq(text: &str, t: &Tok, words: &[&str]) -> bool {
    let w = text.get(t.start..t.end).unwrap_or("");
    words.iter().any(|x| w.eq_ignore_ascii_case(x))
}

impl Recognizer for NameRecognizer {
    fn name(&self) -> &'static str {
        "gazetteer"
    }

    fn recognize(&self, text: &str, out: &mut Vec<Candidate>) {
        let (mut up, mut low) = (0usize, 0usize);
        for c in text.chars() {
            if c.is_uppercase() {
                up += 1;
            } else if c.is_lowercase() {
                low += 1;
            }
        }
        let upper_doc = up > 20 && up * 10 > (up + low) * 7;
        let mostly_non_ascii = text.bytes().filter(|b| !b.is_ascii()).count() * 5 > text.len();
        let toks = self.tokens(text, upper_doc);
        let n = toks.len();
        // 0 = none, 1 = name, 2 = name seeded by a title (not dropped as an eponym).
        let mut name = vec![0u8; n];
        let mut title_tok = vec![false; n];
        let capish = |t: &Tok| matches!(t.shape, Shape::Cap | Shape::Initial);

        // Seeds.
        for (i, t) in toks.iter().enumerate() {
            let next = toks.get(i + 1);
            let prev = if i > 0 { toks.get(i - 1) } else { None };
            // Titles.
            if t.role & R_TITLE != 0 && matches!(t.shape, Shape::Cap | Shape::Lower | Shape::Upper)
            {
                if let Some(nx) = next {
                    let gap = text.get(t.end..nx.start).unwrap_or("x");
                    let gap_ok = matches!(gap, " " | ". " | "." | "  " | ".  ");
                    let looks = capish(nx)
                        || nx.shape == Shape::Upper
                        || (nx.shape == Shape::Lower && nx.name_word() && nx.flags & COMMON == 0);
                    if gap_ok && looks && nx.flags & SAFE == 0 && nx.role & R_TITLE == 0 {
                        // "MD" after a name ("Smith, MD") is a degree, not a title.
                        let is_degree = lower_eq(text, t, &["md"]);
                        if !is_degree {
                            if let Some(tt) = title_tok.get_mut(i) {
                                *tt = true;
                            }
                            if let Some(s) = name.get_mut(i + 1) {
                                *s = 2;
                            }
                        }
                    }
                }
                continue;
            }
            // Context phrases.
            if t.role & R_TRIGGER != 0
                && let Some(nx) = next
            {
                let gap = text.get(t.end..nx.start).unwrap_or("x");
                let gap_ok = matches!(gap, " " | ": " | ", " | " - ");
                let ok = match nx.shape {
                    Shape::Cap => {
                        (nx.name_word() && nx.flags & COMMON == 0)
                            || (nx.unknown() && t.role & R_STRONG_TRIGGER != 0)
                    }
                    Shape::Lower => nx.name_word() && !nx.ambiguous() && nx.flags & TOP_NAME != 0,
                    Shape::Upper => nx.name_word() && !nx.ambiguous(),
                    _ => false,
                };
                if gap_ok
                    && ok
                    && nx.flags & SAFE == 0
                    && let Some(s) = name.get_mut(i + 1)
                {
                    *s = (*s).max(1);
                }
            }
            // A capitalised word with non-ASCII letters in no dictionary, in otherwise ASCII
            // text, is most often a foreign name ("Møller", "Žilih").
            if !mostly_non_ascii
                && matches!(t.shape, Shape::Cap | Shape::Upper)
                && t.flags == 0
                && text
                    .get(t.start..t.end)
                    .is_some_and(|w| !w.is_ascii() && w.chars().count() >= 3)
                && let Some(s) = name.get_mut(i)
            {
                *s = (*s).max(1);
            }
            // "Faina D. Yefremova": a capitalised word, an initial with its period and another
            // capitalised word, none of them an ordinary word, is a name whatever the lists say.
            const PLAIN: u16 = ENGLISH | COMMON | SAFE | EPONYM_HEAD | FACILITY_HEAD | dict::WORD;
            if t.shape == Shape::Cap
                && t.flags & PLAIN == 0
                && let (Some(a), Some(b)) = (toks.get(i + 1), toks.get(i + 2))
                && a.shape == Shape::Initial
                && tight(text, t, a)
                && text.get(a.end..a.end + 1) == Some(".")
                && tight(text, a, b)
                && b.shape == Shape::Cap
                && b.flags & PLAIN == 0
            {
                for k in i..=i + 2 {
                    if let Some(s) = name.get_mut(k) {
                        *s = (*s).max(1);
                    }
                }
            }
            // A lower-case pair of a frequent first name and a surname, neither an ordinary
            // word ("naomi ryan").
            if t.shape == Shape::Lower
                && t.flags & FIRST != 0
                && t.flags & TOP_NAME != 0
                && !t.ambiguous()
                && t.flags & SAFE == 0
                && let Some(nx) = next
                && nx.shape == Shape::Lower
                && nx.flags & LAST != 0
                && !nx.ambiguous()
                && nx.flags & (SAFE | dict::WORD) == 0
                && text.get(t.end..nx.start) == Some(" ")
            {
                for k in [i, i + 1] {
                    if let Some(s) = name.get_mut(k) {
                        *s = (*s).max(1);
                    }
                }
            }
            // Two capitalised words in a row that are in no list at all ("Petr Kloz").
            if t.shape == Shape::Cap
                && t.flags == 0
                && let Some(nx) = next
                && nx.shape == Shape::Cap
                && nx.flags == 0
                && tight(text, t, nx)
                && text.get(t.end..nx.start) == Some(" ")
                && text
                    .get(t.start..t.end)
                    .is_some_and(|w| w.chars().all(char::is_alphabetic))
                && text
                    .get(nx.start..nx.end)
                    .is_some_and(|w| w.chars().all(char::is_alphabetic))
            {
                for k in [i, i + 1] {
                    if let Some(s) = name.get_mut(k) {
                        *s = (*s).max(1);
                    }
                }
            }
            if t.shape == Shape::Cap && t.name_word() {
                let near_initial = next.is_some_and(|nx| {
                    nx.shape == Shape::Initial
                        && tight(text, t, nx)
                        && text.get(nx.end..nx.end + 1) == Some(".")
                }) || prev
                    .is_some_and(|p| p.shape == Shape::Initial && tight(text, p, t));
                // In all-capitals text every word looks capitalised: a lone seed must not be an
                // inflected dictionary word either ("WEEKS").
                let caps_ok = !upper_doc
                    || !self
                        .dicts
                        .is_inflected_word(text.get(t.start..t.end).unwrap_or(""));
                if ((!t.ambiguous() && caps_ok) || near_initial)
                    && let Some(s) = name.get_mut(i)
                {
                    *s = (*s).max(1);
                }
            }
        }

        // Extension to the right and left over name-like words.
        let extendable = |t: &Tok| -> bool {
            match t.shape {
                Shape::Initial => true,
                Shape::Cap => {
                    t.flags & (SAFE | EPONYM_HEAD | FACILITY_HEAD) == 0
                        && (t.name_word() || t.unknown())
                        // All-capitals text: "DR SMITH ON" must not swallow "ON".
                        && (!upper_doc || !t.ambiguous())
                }
                _ => false,
            }
        };
        for i in 0..n {
            if name.get(i).copied().unwrap_or(0) == 0 {
                continue;
            }
            let mut j = i;
            while let (Some(a), Some(b)) = (toks.get(j), toks.get(j + 1)) {
                if name.get(j + 1).copied().unwrap_or(0) == 0 && tight(text, a, b) && extendable(b)
                {
                    if let Some(s) = name.get_mut(j + 1) {
                        *s = 1;
                    }
                    j += 1;
                } else {
                    break;
                }
            }
            // "Last, First".
            if let (Some(a), Some(b)) = (toks.get(i), toks.get(i + 1))
                && a.flags & LAST != 0
                && !a.possessive
                && text.get(a.end..b.start) == Some(", ")
                && b.shape == Shape::Cap
                && b.flags & FIRST != 0
                && b.flags & SAFE == 0
                && let Some(s) = name.get_mut(i + 1)
            {
                *s = (*s).max(1);
            }
        }
        for i in (1..n).rev() {
            if name.get(i).copied().unwrap_or(0) == 0 {
                continue;
            }
            let mut j = i;
            while j > 0 {
                let (Some(a), Some(b)) = (toks.get(j - 1), toks.get(j)) else {
                    break;
                };
                if name.get(j - 1).copied().unwrap_or(0) == 0
                    && !title_tok.get(j - 1).copied().unwrap_or(false)
                    && tight(text, a, b)
                    && extendable(a)
                    && (a.name_word() || a.shape == Shape::Initial || a.flags == 0)
                {
                    if let Some(s) = name.get_mut(j - 1) {
                        *s = 1;
                    }
                    j -= 1;
                } else {
                    break;
                }
            }
        }

        // Facilities.
        let mut facility = vec![false; n];
        let mut i = 0;
        while i < n {
            let Some(t) = toks.get(i) else { break };
            let is_head = t.flags & FACILITY_HEAD != 0 && capish(t);
            let saint = lower_eq(text, t, &["st", "saint", "ste"])
                && t.shape == Shape::Cap
                && toks.get(i + 1).is_some_and(|nx| {
                    nx.shape == Shape::Cap
                        && text
                            .get(t.end..nx.start)
                            .is_some_and(|g| g == ". " || g == " ")
                        && !lower_eq(text, nx, &["wort"])
                });
            let place_before = i > 0
                && toks.get(i - 1).is_some_and(|p| {
                    (p.shape == Shape::Cap || p.shape == Shape::Upper)
                        && p.flags & (SAFE | COMMON) == 0
                        && text.get(p.full_end..t.start) == Some(" ")
                        && (p.flags & (dict::CITY | FIRST | LAST) != 0 || p.unknown())
                });
            let lower_head =
                t.shape == Shape::Lower && t.role & R_LOWER_FACILITY != 0 && place_before;
            let soft_head = capish(t) && t.role & R_SOFT_HEAD != 0 && place_before;
            let is_head = is_head || soft_head;
            if !(is_head || saint || lower_head) {
                i += 1;
                continue;
            }
            // Left extension over capitalised words.
            let mut s = i;
            while s > 0 {
                let (Some(a), Some(b)) = (toks.get(s - 1), toks.get(s)) else {
                    break;
                };
                let gap = text.get(a.full_end..b.start).unwrap_or("x");
                let gap_ok = matches!(gap, " " | "-" | ". " | " & " | "");
                let word_ok = (capish(a) || a.shape == Shape::Upper)
                    && !lower_eq(text, a, FACILITY_STOP)
                    && a.flags & SAFE == 0;
                let of_ok = lower_eq(text, a, &["of", "and"])
                    && s >= 2
                    && toks.get(s - 2).is_some_and(capish);
                if gap_ok && (word_ok || of_ok) {
                    s -= 1;
                } else {
                    break;
                }
            }
            // Right extension over facility words (and the saint's name).
            let mut e = i;
            if saint {
                e = i + 1;
            }
            while let (Some(a), Some(b)) = (toks.get(e), toks.get(e + 1)) {
                let gap = text.get(a.full_end..b.start).unwrap_or("x");
                let cap_tail = matches!(gap, " " | "-" | " & " | " and ")
                    && (capish(b) || b.shape == Shape::Upper)
                    && (b.flags & FACILITY_HEAD != 0 || b.role & R_FACILITY_TAIL != 0);
                let lower_tail =
                    gap == " " && b.shape == Shape::Lower && b.role & R_LOWER_FACILITY != 0;
                if cap_tail || lower_tail {
                    e += 1;
                } else if gap == " "
                    && lower_eq(text, b, &["of"])
                    && toks
                        .get(e + 2)
                        .is_some_and(|c| c.shape == Shape::Cap && c.flags & COMMON == 0)
                {
                    e += 2;
                } else {
                    break;
                }
            }
            // A head word alone ("Hospital course") is not a facility.
            let has_name_part = saint
                || lower_head
                || (s..=e).any(|k| toks.get(k).is_some_and(|t| t.flags & FACILITY_HEAD == 0));
            if has_name_part {
                for k in s..=e {
                    if let Some(f) = facility.get_mut(k) {
                        *f = true;
                    }
                    if let Some(nm) = name.get_mut(k) {
                        *nm = 0;
                    }
                }
                if let (Some(a), Some(b)) = (toks.get(s), toks.get(e)) {
                    out.push(Candidate {
                        span: Span {
                            start: a.start,
                            end: b.full_end.max(b.end),
                            kind: PhiKind::Facility,
                        },
                        priority: Priority::FACILITY,
                    });
                }
            }
            i = e + 1;
        }

        // Eponyms: drop name chains followed by an eponym head.
        let mut i = 0;
        while i < n {
            if name.get(i).copied().unwrap_or(0) == 0 {
                i += 1;
                continue;
            }
            let mut j = i;
            while name.get(j + 1).copied().unwrap_or(0) != 0
                && toks.get(j).is_some_and(|a| !a.possessive)
            {
                j += 1;
            }
            let titled = (i..=j).any(|k| name.get(k) == Some(&2));
            let mut eponym = false;
            for k in (j + 1)..(j + 5).min(n + 1) {
                let Some(t) = toks.get(k) else { break };
                if t.flags & EPONYM_HEAD != 0 {
                    eponym = true;
                    break;
                }
                if !(t.shape == Shape::Cap || t.shape == Shape::Upper) {
                    break;
                }
            }
            if eponym && !titled {
                for k in i..=j {
                    if let Some(s) = name.get_mut(k) {
                        *s = 0;
                    }
                }
            }
            i = j + 1;
        }

        // Emit name chains (title included).
        let mut i = 0;
        while i < n {
            if name.get(i).copied().unwrap_or(0) == 0 {
                i += 1;
                continue;
            }
            let mut j = i;
            while name.get(j + 1).copied().unwrap_or(0) != 0
                && toks.get(j).zip(toks.get(j + 1)).is_some_and(|(a, b)| {
                    tight(text, a, b) || text.get(a.end..b.start) == Some(", ")
                })
            {
                j += 1;
            }
            let start_tok = if i > 0 && title_tok.get(i - 1).copied().unwrap_or(false) {
                i - 1
            } else {
                i
            };
            let titled = start_tok != i;
            // A chain that is a city, after "in/from/at" or before a state code, is a city.
            let kind = if !titled && self.is_city_chain(text, &toks, i, j) {
                PhiKind::City
            } else {
                PhiKind::Name
            };
            if let (Some(a), Some(b)) = (toks.get(start_tok), toks.get(j)) {
                out.push(Candidate {
                    span: Span {
                        start: a.start,
                        end: b.end,
                        kind,
                    },
                    priority: Priority::NAME,
                });
            }
            i = j + 1;
        }

        // Single-word places.
        for (i, t) in toks.iter().enumerate() {
            // "lives in boston": after a residence phrase a city is a city in any case.
            if t.flags & dict::CITY != 0
                && t.flags & (COMMON | SAFE) == 0
                && i >= 2
                && toks
                    .get(i - 1)
                    .is_some_and(|p| p.role & R_PLACE_TRIGGER != 0)
                && toks.get(i - 2).is_some_and(|p| {
                    lower_eq(
                        text,
                        p,
                        &[
                            "lives", "living", "resides", "residing", "born", "moved", "lived",
                            "resident",
                        ],
                    )
                })
            {
                out.push(Candidate {
                    span: Span {
                        start: t.start,
                        end: t.end,
                        kind: PhiKind::City,
                    },
                    priority: Priority::PLACE,
                });
                continue;
            }
            if t.flags & dict::CITY == 0
                || t.flags & SAFE != 0
                || name.get(i).copied().unwrap_or(0) != 0
                || facility.get(i).copied().unwrap_or(false)
            {
                continue;
            }
            if !(t.shape == Shape::Cap) {
                continue;
            }
            let prev_trigger = i > 0
                && toks.get(i - 1).is_some_and(|p| {
                    (p.role & R_PLACE_TRIGGER != 0 && text.get(p.end..t.start) == Some(" "))
                        || ((p.flags & FACILITY_HEAD != 0 || p.role & R_FACILITY_TAIL != 0)
                            && matches!(text.get(p.full_end..t.start), Some(" " | ", ")))
                });
            let ok = if t.ambiguous() || t.flags & EPONYM_HEAD != 0 {
                prev_trigger && t.flags & COMMON == 0
            } else {
                true
            };
            // An eponym ("Framingham Heart Study") is not a place either.
            let eponym = (i + 1..(i + 4).min(n)).find_map(|k| {
                let tk = toks.get(k)?;
                if tk.flags & EPONYM_HEAD != 0 {
                    Some(true)
                } else if tk.shape == Shape::Cap {
                    None
                } else {
                    Some(false)
                }
            }) == Some(true);
            if ok && !eponym {
                out.push(Candidate {
                    span: Span {
                        start: t.start,
                        end: t.end,
                        kind: PhiKind::City,
                    },
                    priority: Priority::PLACE,
                });
            }
        }

        // Multi-word places and hospitals.
        // Anchored at capitalised words only: a place or hospital name starts with a capital
        // (or is an upper-case short form), so the automaton never scans lower-case prose.
        let mut covered_to = 0usize;
        for t in &toks {
            if t.start < covered_to
                || !matches!(t.shape, Shape::Cap | Shape::Upper | Shape::Initial)
            {
                continue;
            }
            let input = aho_corasick::Input::new(text)
                .range(t.start..)
                .anchored(aho_corasick::Anchored::Yes);
            let Ok(Some(m)) = self.dicts.phrases.try_find(input) else {
                continue;
            };
            let (s, e) = (m.start(), m.end());
            let before_ok = text
                .get(..s)
                .and_then(|b| b.chars().next_back())
                .is_none_or(|c| !c.is_alphanumeric());
            let after_ok = text
                .get(e..)
                .and_then(|a| a.chars().next())
                .is_none_or(|c| !c.is_alphanumeric());
            if !before_ok || !after_ok {
                continue;
            }
            covered_to = e;
            let phrase = text.get(s..e).unwrap_or("");
            let kind = self.dicts.phrase_kinds.get(m.pattern().as_usize()).copied();
            let all_cap = phrase.split([' ', '-']).filter(|w| !w.is_empty()).all(|w| {
                w.chars()
                    .next()
                    .is_some_and(|c| c.is_uppercase() || !c.is_alphabetic())
                    || matches!(w, "and" | "of")
            });
            match kind {
                Some(PhraseKind::Hospital) => {
                    let upper_ok = phrase.chars().any(char::is_uppercase);
                    if upper_ok {
                        out.push(Candidate {
                            span: Span {
                                start: s,
                                end: e,
                                kind: PhiKind::Facility,
                            },
                            priority: Priority::FACILITY,
                        });
                    }
                }
                Some(PhraseKind::City) if all_cap => {
                    out.push(Candidate {
                        span: Span {
                            start: s,
                            end: e,
                            kind: PhiKind::City,
                        },
                        priority: Priority::PLACE,
                    });
                }
                Some(PhraseKind::County) if all_cap => {
                    out.push(Candidate {
                        span: Span {
                            start: s,
                            end: e,
                            kind: PhiKind::County,
                        },
                        priority: Priority::PLACE,
                    });
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, PhiKind};

    fn found(text: &str) -> Vec<(String, PhiKind)> {
        let e = Engine::builtin();
        e.find(text, None)
            .iter()
            .map(|s| (text[s.start..s.end].to_owned(), s.kind))
            .collect()
    }

    #[test]
    fn names_with_titles_initials_and_pairs() {
        assert_eq!(
            found("seen by Dr. Adams today"),
            vec![("Dr. Adams".into(), PhiKind::Name)]
        );
        assert_eq!(
            found("a case, Mary Johnson, was"),
            vec![("Mary Johnson".into(), PhiKind::Name)]
        );
        assert_eq!(
            found("patient Will S. returned"),
            vec![("Will S".into(), PhiKind::Name)]
        );
        assert_eq!(
            found("Smith, John was admitted"),
            vec![("Smith, John".into(), PhiKind::Name)]
        );
        assert_eq!(
            found("dr smith called"),
            vec![("dr smith".into(), PhiKind::Name)]
        );
    }

    #[test]
    fn all_capitals_and_lower_case_notes() {
        let caps = "PATIENT SEEN BY DR SMITH ON 03/14/2019. SMITH, JOHN IS A 92 YO MALE FROM BOSTON, MA. \
                    FOLLOW UP WITH CARDIOLOGY IN 2 WEEKS. BP 120/80, O2 SAT 98% ON RA.";
        let f = found(caps);
        let names: Vec<&str> = f
            .iter()
            .filter(|(_, k)| *k == PhiKind::Name)
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(names, ["DR SMITH", "SMITH, JOHN"]);
        assert!(
            f.iter()
                .any(|(s, k)| s == "BOSTON, MA" && *k == PhiKind::City)
        );
        let lower = found("pt seen by dr. smith today, spoke with wife mary. lives in boston.");
        assert_eq!(
            lower,
            vec![
                ("dr. smith".into(), PhiKind::Name),
                ("mary".into(), PhiKind::Name),
                ("boston".into(), PhiKind::City)
            ]
        );
    }

    #[test]
    fn common_words_and_eponyms_are_not_names() {
        assert!(found("Will the patient need O2 today? Mark the chart.").is_empty());
        assert!(found("a positive Chaddock reflex and a Wells score of 3").is_empty());
        assert!(found("as in the Framingham Heart Study").is_empty());
        assert!(found("history of Alzheimer's and Lou Gehrig's disease").is_empty());
    }

    #[test]
    fn facilities_and_places() {
        assert_eq!(
            found("admitted to St. Luke's Hospital on"),
            vec![("St. Luke's Hospital".into(), PhiKind::Facility)]
        );
        assert_eq!(
            found("seen at UCLA Medical Center"),
            vec![("UCLA Medical Center".into(), PhiKind::Facility)]
        );
        assert_eq!(
            found("she lives in Boston now"),
            vec![("Boston".into(), PhiKind::City)]
        );
        assert_eq!(
            found("visited our New York clinic"),
            vec![("New York clinic".into(), PhiKind::Facility)]
        );
    }
}
