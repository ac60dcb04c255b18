//! The gazetteer recogniser: person names, facilities and places, found in one pass over the
//! words of the text plus one aho-corasick pass for multi-word places and hospitals.
//!
//! # Rules, in order
//! 1. **Words** are runs of letters and digits, with an apostrophe inside a word kept
//!    (`O'Reilly`, looked up as `oreilly` too, the Census spelling); a possessive `'s` is split
//!    off. A Synthea-style numeric suffix (`Carolee951`) is ignored for lookup.
//! 2. A word is a **name word** when it is a Census first name or surname and not on the
//!    clinical safe-list. It is **ambiguous** when it is also a very common English word (curated
//!    list) or an English dictionary word that is not among the 1,000 most frequent names.
//! 3. **Seeds**: a capitalised unambiguous name word; a capitalised name word next to an initial
//!    (`Will S.`, `J. Smith`); any word after a title (`Dr.`, `Mr`, `Mrs`, `Ms`, `Prof`...),
//!    the title included; a name-like word after a context phrase ("seen by", "spoke with",
//!    "pt", "name is"). Lower-case words become names only through a title, a context phrase,
//!    or the clause-start rule below. In an all-capitals text, capitalised means upper-case.
//!    Seeds written the way real notes write names:
//!    * after a **kinship word** ("daughter", "husband", "son", "caregiver"...), a capitalised
//!      name word, common or not, or a word in no list ("her daughter, Aaliyah Ward");
//!    * an **upper-case `FAMILY, GIVEN`** pair in mixed-case text ("Patient: WARD, LARRY",
//!      "ST. CLAIR, WEI"), see `upper_name_pair`;
//!    * the **subject of an age** ("Frank, 57 year-old", "Aaliyah is a 38yo woman");
//!    * a lower-case first name that is no English word where a **clause starts** ("S: dylan
//!      reports"), and after "pt" or "called" ("Pt thanh", "Called josé");
//!    * a capitalised word with a **numeric suffix** (`Carolee951`, Synthea's names).
//! 4. **Extension**: a seed grows over adjacent capitalised name words (ambiguous ones too),
//!    initials, capitalised words of no ordinary-word list (foreign surnames, places used as
//!    surnames), name particles ("Van der Berg"), a hyphenated lower-case part ("Hye-jin"), and
//!    across a comma for `Last, First`.
//! 5. **Facilities**: capitalised words ending in a facility word (`Hospital`, `Clinic`,
//!    `Medical Center`, `Med Ctr`), `St./Saint X's`, known hospital names from the gazetteer,
//!    a capitalised place followed by a lower-case "clinic"/"hospital", and a capitalised run
//!    after a verb of going ("presented to the Summit Pointe ED", "admitted to AUMC") that is
//!    not a service or unit.
//! 6. **Eponyms**: a name chain followed (possibly after `'s` and up to three capitalised words)
//!    by a word such as "reflex", "score", "disease", "study" is dropped ("Chaddock reflex",
//!    "Framingham Heart Study"), unless a title seeded it.
//! 7. **Propagation**: a word of a name found anywhere in the text is a name wherever else it
//!    occurs, unless that occurrence is an ordinary word in its spelling ("Patient: WARD, LARRY"
//!    ... "larry is a 61 y/o man", but not "the ward"); a facility found anywhere, or its short
//!    form without the facility words ("Riverbend" of "Riverbend University Hospital"), is a
//!    facility wherever else it occurs.
//! 8. **Places**: capitalised single-word U.S. cities that are not ambiguous, ambiguous ones
//!    after "in/at/from/near/to" or "lives in", and multi-word cities and counties from the
//!    aho-corasick pass when each word is capitalised ("Truth or Consequences" and "Coeur
//!    d'Alene" allowed).

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
    "neighbor",
    "neighbour",
    "cousin",
    "grandmother",
    "grandfather",
    "fiance",
    "fiancee",
    "boyfriend",
    "girlfriend",
    "stepson",
    "stepdaughter",
    "roommate",
];

/// Kinship and care words: a capitalised word right after one is the relative's name ("her
/// daughter Aaliyah", "husband, Rajesh Walker", "son Frank") even when the word is also a
/// common English word or in no name list, because nothing else is written there in running
/// text. Family-history lists ("Mother: Diabetes") put a colon there, which this rule does not
/// accept, and an ordinary word, which it never takes.
const KIN: &[&str] = &[
    "husband",
    "wife",
    "son",
    "daughter",
    "mother",
    "father",
    "brother",
    "sister",
    "friend",
    "mom",
    "dad",
    "grandson",
    "granddaughter",
    "grandmother",
    "grandfather",
    "spouse",
    "partner",
    "guardian",
    "caregiver",
    "niece",
    "nephew",
    "aunt",
    "uncle",
    "neighbor",
    "neighbour",
    "cousin",
    "fiance",
    "fiancee",
    "boyfriend",
    "girlfriend",
    "stepson",
    "stepdaughter",
    "roommate",
];

/// Verbs after which "to/from/at (the) X" names where a patient went.
const MOVE_VERBS: &[&str] = &[
    "admitted",
    "readmitted",
    "presented",
    "transferred",
    "transfer",
    "discharged",
    "brought",
    "arrived",
    "seen",
    "evaluated",
    "treated",
    "transported",
];

/// Hospital services and units: where "admitted to" or "transferred to" leads without naming
/// a facility. Not on the clinical safe-list, because facility names contain them ("Denver
/// Neurology Clinic").
const SERVICES: &[&str] = &[
    "medicine",
    "surgery",
    "cardiology",
    "oncology",
    "neurology",
    "nephrology",
    "pulmonology",
    "pulmonary",
    "gastroenterology",
    "hematology",
    "urology",
    "dermatology",
    "rheumatology",
    "endocrinology",
    "psychiatry",
    "pediatrics",
    "orthopedics",
    "radiology",
    "ophthalmology",
    "otolaryngology",
    "obstetrics",
    "gynecology",
    "telemetry",
    "stepdown",
    "rehab",
    "hospice",
    "icu",
    "micu",
    "sicu",
    "cvicu",
    "nicu",
    "picu",
    "ccu",
    "pacu",
    "tcu",
    "snf",
    "ltac",
    "ltach",
    "irf",
    "ltc",
    "alf",
    "hdu",
    "ama",
    "home",
    "imu",
    "bmt",
    "or",
    "er",
    "ed",
    "osh",
    "imc",
    "sar",
    "aru",
    "hhc",
    "vna",
];

/// Labels of a name field in a note header ("Patient: WARD, LARRY", "Name: ...").
const NAME_LABELS: &[&str] = &["patient", "name", "pt"];

/// Lower-case particles inside family names ("ST. CLAIR", "VAN DER BERG", "DE LA CRUZ").
const PARTICLES: &[&str] = &[
    "st", "saint", "van", "von", "der", "den", "de", "del", "della", "la", "le", "mc", "mac", "di",
    "da", "du", "dos", "das", "bin", "ben", "al", "el", "ter", "ten",
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
const R_KIN: u8 = 1 << 7;

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
    /// A capitalised word with a numeric suffix of one to three digits ("Carolee951"), as
    /// Synthea and other generators write names.
    suffixed: bool,
}

impl Tok {
    fn name_word(&self) -> bool {
        self.flags & (FIRST | LAST) != 0 && self.flags & SAFE == 0
    }
    fn ambiguous(&self) -> bool {
        self.flags & COMMON != 0 || (self.flags & ENGLISH != 0 && self.flags & TOP_NAME == 0)
    }
    /// In no list of ordinary words: a name, a place or a word no list knows.
    fn proper(&self) -> bool {
        self.flags & (ENGLISH | COMMON | SAFE | EPONYM_HEAD | FACILITY_HEAD | dict::WORD) == 0
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
            (KIN, R_KIN),
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
                // The longest role word is "granddaughter".
                let role = if lower.len() <= 16 {
                    self.roles.get(lower.as_str()).copied().unwrap_or(0)
                } else {
                    0
                };
                let mut flags = self.dicts.flags(&lower);
                // The Census lists write "O'Brien" as "obrien": an apostrophe name is a name
                // of the lists without it ("o'brien" is also a county, which is no name).
                // Contractions ("I'm", "don't") are not names: the part after the apostrophe
                // must be a word of its own.
                if let Some(at) = lower.bytes().position(|b| b == b'\'')
                    && lower.len() - at > 3
                {
                    let bare: String = lower.chars().filter(|c| *c != '\'').collect();
                    flags |= self.dicts.flags(&bare) & (FIRST | LAST | TOP_NAME);
                }
                (flags, role)
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
            let suffixed = shape == Shape::Cap
                && (1..=3).contains(&(core.len() - letters.len()))
                && letters.chars().count() >= 3
                // "Carolee951", "O'Reilly797"; not "SpO2".
                && letters
                    .chars()
                    .zip(letters.chars().skip(1))
                    .all(|(p, c)| c.is_lowercase() || c == '\'' || p == '\'');
            toks.push(Tok {
                role,
                start,
                end,
                full_end,
                shape,
                flags,
                possessive,
                suffixed,
            });
        }
        toks
    }
}

impl NameRecognizer {
    /// The last token of a facility run that starts at token `i` after a verb of going
    /// ("presented to the", "admitted to", "transferred from", "left"), or `None`.
    fn moved_to_facility(
        &self,
        text: &str,
        toks: &[Tok],
        facility: &[bool],
        i: usize,
    ) -> Option<usize> {
        let t = toks.get(i)?;
        if !matches!(t.shape, Shape::Cap | Shape::Upper) || facility.get(i).copied().unwrap_or(true)
        {
            return None;
        }
        // The words before: [verb] (to|from|at) [the] X, or "left" X, single spaces.
        let before = |k: usize| -> Option<&Tok> {
            let p = toks.get(k.checked_sub(1)?)?;
            let q = toks.get(k)?;
            (text.get(p.full_end..q.start) == Some(" ") && p.shape == Shape::Lower).then_some(p)
        };
        let mut k = i;
        let mut p = before(k)?;
        // Cheap test first: this runs for every capitalised word.
        if p.role & R_PLACE_TRIGGER == 0 && !lower_eq(text, p, &["the", "left"]) {
            return None;
        }
        if lower_eq(text, p, &["the"]) {
            k -= 1;
            p = before(k)?;
        }
        let left = lower_eq(text, p, &["left"]) && k == i;
        let moved = if lower_eq(text, p, &["to", "from", "at"]) {
            before(k - 1).is_some_and(|v| lower_eq(text, v, MOVE_VERBS))
        } else {
            left
        };
        if !moved {
            return None;
        }
        // The capitalised run, joined by spaces, hyphens, "&" or "of".
        let word_ok = |t: &Tok| {
            matches!(t.shape, Shape::Cap | Shape::Upper)
                && t.flags & SAFE == 0
                && t.role & (R_TITLE | R_TRIGGER | R_LOWER_FACILITY) == 0
                && !lower_eq(text, t, SERVICES)
        };
        if !word_ok(t) {
            return None;
        }
        let mut e = i;
        while e < i + 6 {
            let (Some(a), Some(b)) = (toks.get(e), toks.get(e + 1)) else {
                break;
            };
            let gap = text.get(a.full_end..b.start).unwrap_or("x");
            if matches!(gap, " " | "-" | " & ") && word_ok(b) && !a.possessive {
                e += 1;
            } else if gap == " "
                && lower_eq(text, b, &["of"])
                && toks
                    .get(e + 2)
                    .is_some_and(|c| word_ok(c) && c.shape == Shape::Cap)
            {
                e += 2;
            } else {
                break;
            }
        }
        let last = toks.get(e)?;
        let rest = text.get(last.full_end..).unwrap_or("");
        let emergency = [" ED", " ER", " Emergency"].iter().any(|w| {
            rest.strip_prefix(w)
                .is_some_and(|r| r.chars().next().is_none_or(|c| !c.is_alphanumeric()))
        });
        let named = (i..=e).any(|k| {
            toks.get(k).is_some_and(|t| {
                let w = text.get(t.start..t.end).unwrap_or("");
                let service = ["ology", "iatry", "ics", "CU"]
                    .iter()
                    .any(|s| w.ends_with(s));
                let proper = t.flags & COMMON == 0 && (t.proper() || t.name_word());
                // An acronym in no list ("AUMC", "UCSF"); units end in "U" ("MICU", "PCU").
                let acronym = t.shape == Shape::Upper && t.unknown() && w.len() >= 3;
                !service && ((t.shape == Shape::Cap && proper) || acronym)
            })
        });
        // "Mercy General": a run of two words or more ending in a word that ends hospital
        // names only after a name.
        let soft = e > i && last.role & (R_SOFT_HEAD | R_FACILITY_TAIL) != 0;
        if left {
            // "left" is also a side ("left MCA stroke", "left Achilles tendon"): as a verb it
            // ends its clause or goes on with when or where ("left Riverbend on 3/4").
            let ends = rest.is_empty()
                || rest.starts_with(['.', ',', ';'])
                || [" on ", " at ", " in ", " yesterday", " today", " this "]
                    .iter()
                    .any(|w| rest.starts_with(w));
            let all_upper = (i..=e).all(|k| toks.get(k).is_some_and(|t| t.shape == Shape::Upper));
            if !ends || all_upper {
                return None;
            }
        }
        (named || emergency || soft).then_some(e)
    }

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

/// Words that may be the subject of an age without being a name.
const PRONOUNS: &[&str] = &[
    "he",
    "she",
    "they",
    "this",
    "that",
    "who",
    "which",
    "it",
    "child",
    "man",
    "woman",
    "baby",
    "infant",
    "gentleman",
    "lady",
    "male",
    "female",
    "boy",
    "girl",
    "veteran",
    "resident",
];

/// Whether `rest` (the text after a word) starts with an age: `, 57 year-old`, ` is a 38yo`,
/// ` was an 81 y/o`, `, 3 month-old`.
fn age_follows(rest: &str) -> bool {
    // Cheap test first: this runs for most words.
    match rest.as_bytes() {
        [b',', b' ', d, ..] if d.is_ascii_digit() => {}
        [b' ', b'i' | b'w', ..] => {}
        _ => return false,
    }
    let Some(r) = [", ", " is a ", " is an ", " was a ", " was an "]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
    else {
        return false;
    };
    let digits = r.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=3).contains(&digits) {
        return false;
    }
    let unit = r.get(digits..).unwrap_or("").trim_start_matches([' ', '-']);
    let starts = |u: &str| {
        unit.as_bytes()
            .get(..u.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(u.as_bytes()))
    };
    // Years are ages as written ("57 year-old", "38yo", "81 y/o"). Months, weeks and days need
    // "old" ("3 month-old"): "Vancomycin, 7 days" is a course, not an age.
    let year = ["year", "yr", "y/o", "y.o"].iter().any(|u| starts(u))
        || (starts("yo")
            && unit
                .as_bytes()
                .get(2)
                .is_none_or(|c| !c.is_ascii_alphabetic()));
    let young = ["month", "week", "day"].iter().any(|u| {
        starts(u)
            && unit
                .get(u.len()..)
                .map(|rest| rest.strip_prefix('s').unwrap_or(rest))
                .is_some_and(|rest| rest.starts_with("-old") || rest.starts_with(" old"))
    });
    year || young
}

/// Whether token `t` starts a clause: the text's first word, or after a line break, a
/// sentence end, or a field label's colon ("S: ", "HPI: "), but not after a bullet.
fn clause_start(text: &str, prev: Option<&Tok>, t: &Tok) -> bool {
    let gap = match prev {
        Some(p) => text.get(p.full_end..t.start).unwrap_or("x"),
        None => text.get(..t.start).unwrap_or("x"),
    };
    if prev.is_none() {
        return gap.chars().all(char::is_whitespace);
    }
    // A bulleted line ("- camila 28 day pack") is a list item, often a drug, not a clause.
    gap.contains('\n')
        && gap
            .chars()
            .all(|c| c.is_whitespace() || matches!(c, '.' | ':'))
        || matches!(gap, ": " | ". " | ".  " | ":  " | "! " | "? ")
}

/// A token's letters, lower-cased, without a numeric suffix: the key under which a name
/// found once is recognised again.
fn word_key(text: &str, t: &Tok) -> String {
    text.get(t.start..t.end)
        .unwrap_or("")
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_lowercase()
}

/// The tokens of an upper-case `FAMILY, GIVEN` name whose comma follows token `i` ("WARD,
/// LARRY", "ST. CLAIR, WEI", "WALKER, ANA-MARÍA"), or `None`. Only for mixed-case text, where
/// upper case marks a field printed by a system rather than a shouted word.
///
/// Both parts must be name words or words of no ordinary-word list (most foreign names), the
/// family name possibly after particles ("ST.", "VAN DER"). The given name must be a Census
/// first name unless the family name is a Census surname or a header label ("Patient:",
/// "Name:", "Pt") comes first ("ALVAREZ, AALIYAH"); when both parts are also ordinary words
/// ("STONE, JACK"), only the label makes them a name. Clinical abbreviations in lists ("CT,
/// MRI", "HEENT, NECK") are on the safe-list or are ordinary words.
fn upper_name_pair(text: &str, toks: &[Tok], i: usize) -> Option<std::ops::RangeInclusive<usize>> {
    let a = toks.get(i)?;
    let b = toks.get(i + 1)?;
    let upper_name =
        |t: &Tok| t.shape == Shape::Upper && t.flags & SAFE == 0 && (t.name_word() || t.proper());
    if a.possessive || text.get(a.end..b.start) != Some(", ") || !upper_name(a) || !upper_name(b) {
        return None;
    }
    // Left over particles and further family-name words ("ST. CLAIR", "GARCIA LOPEZ").
    let mut s = i;
    while s > 0 {
        let (Some(p), Some(q)) = (toks.get(s - 1), toks.get(s)) else {
            break;
        };
        let particle = p.shape == Shape::Upper && lower_eq(text, p, PARTICLES);
        if tight(text, p, q) && (particle || upper_name(p)) && p.role & R_TITLE == 0 {
            s -= 1;
        } else {
            break;
        }
    }
    let labelled = s > 0
        && toks.get(s - 1).is_some_and(|l| {
            lower_eq(text, l, NAME_LABELS)
                && matches!(
                    text.get(l.end..toks.get(s).map_or(0, |t| t.start)),
                    Some(": " | " ")
                )
        });
    // A given name in no list ("AALIYAH") needs a known family name or the label.
    let given_ok = b.flags & FIRST != 0 || a.flags & LAST != 0 || labelled;
    if !given_ok || (a.ambiguous() && b.ambiguous() && !labelled) {
        return None;
    }
    // Right over further given names and initials ("JOHN PAUL", "JOHN A.", "ANA-MARÍA").
    let mut e = i + 1;
    while let (Some(p), Some(q)) = (toks.get(e), toks.get(e + 1)) {
        let joined = tight(text, p, q) || text.get(p.end..q.start) == Some("-");
        if joined
            && (q.shape == Shape::Initial
                || (q.shape == Shape::Upper
                    && q.flags & SAFE == 0
                    && (q.name_word() || q.proper())))
        {
            e += 1;
        } else {
            break;
        }
    }
    Some(s..=e)
}

impl Recognizer for NameRecognizer {
    fn name(&self) -> &'static str {
        "gazetteer"
    }

    fn recognize(&self, text: &str, out: &mut Vec<Candidate>) {
        let first_out = out.len();
        // Short forms of facilities found here ("Riverbend" of "Riverbend University
        // Hospital"), byte ranges, for the propagation at the end.
        let mut short: Vec<(usize, usize)> = Vec::new();
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
                // "sister" is a title ("Sister Mary") and a kinship word ("his sister, Mary").
                if t.role & R_TRIGGER == 0 {
                    continue;
                }
            }
            // Context phrases.
            if t.role & R_TRIGGER != 0
                && let Some(nx) = next
            {
                let gap = text.get(t.end..nx.start).unwrap_or("x");
                let gap_ok = matches!(gap, " " | ": " | ", " | " - ");
                // After a kinship word in running text ("daughter Aaliyah", "husband, Frank")
                // a capitalised name word or a word in no list is the relative's name; an
                // ordinary word there ("Mother: Diabetes") is not.
                let kin = t.role & R_KIN != 0
                    && matches!(t.shape, Shape::Lower | Shape::Cap)
                    && matches!(gap, " " | ", ")
                    && (nx.name_word() || nx.unknown());
                // "Pt Aaliyah resting", "pt thanh": after "pt" a word in no list, or a rarer
                // first name that is no English word, is the patient's name.
                let pt = gap == " " && lower_eq(text, t, &["pt", "patient"]);
                // "Called josé at": a lower-case word in no list after a calling word.
                let called = gap == " " && lower_eq(text, t, &["called", "named", "name", "dear"]);
                let ok = match nx.shape {
                    Shape::Cap => {
                        (nx.name_word() && nx.flags & COMMON == 0)
                            || (nx.unknown() && (t.role & R_STRONG_TRIGGER != 0 || pt))
                            || kin
                    }
                    Shape::Lower => {
                        (nx.name_word() && !nx.ambiguous() && nx.flags & TOP_NAME != 0)
                            || (pt
                                && nx.name_word()
                                && !nx.ambiguous()
                                && nx.flags & dict::WORD == 0)
                            || (called && nx.unknown())
                    }
                    Shape::Upper => (nx.name_word() && !nx.ambiguous()) || kin,
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
            // "Frank, 57 year-old, was admitted", "Aaliyah is a 38yo woman": the subject of an
            // age is a person, so a name word or a word in no list there is a name, even a
            // common one. Pronouns and role words ("She is a", "Patient, 45 y/o") are not.
            // Upper-case words there are more often acronyms ("AML, 31yo"): only names count.
            if age_follows(text.get(t.full_end..).unwrap_or(""))
                && (matches!(t.shape, Shape::Cap | Shape::Lower) && (t.name_word() || t.proper())
                    || t.shape == Shape::Upper && t.name_word())
                && t.role == 0
                && t.flags & SAFE == 0
                && !t.possessive
                && !lower_eq(text, t, PRONOUNS)
                && let Some(s) = name.get_mut(i)
            {
                *s = (*s).max(1);
            }
            // "S: dylan reports", "HPI: wei had": a lower-case first name that is no English
            // word, where a clause starts (a sentence does not start with a lower-case word
            // unless the writer lower-cased everything, names included).
            if t.shape == Shape::Lower
                && t.flags & FIRST != 0
                && t.name_word()
                && !t.ambiguous()
                && t.flags & dict::WORD == 0
                && clause_start(text, prev, t)
                && let Some(s) = name.get_mut(i)
            {
                *s = (*s).max(1);
            }
            // "Carolee951", "Ruelas156": generated names carry a numeric suffix. The word must
            // be a first name, or a surname or word of no ordinary-word list, so that clinical
            // words written without their space ("Day3", "Stage4", "Type2", "Bay3") stay;
            // gas symbols have an upper-case letter inside ("SpO2") or are on the safe-list
            // ("Spo2"); a measurement is followed by its unit.
            let measured = || {
                let rest = text.get(t.full_end..).unwrap_or("");
                rest.starts_with('%')
                    || (rest.starts_with(['/', '.', ',', ':'])
                        && rest.as_bytes().get(1).is_some_and(u8::is_ascii_digit))
            };
            if t.suffixed
                && t.flags & (SAFE | EPONYM_HEAD) == 0
                && (t.flags & FIRST != 0 || t.proper())
                && !measured()
                && let Some(s) = name.get_mut(i)
            {
                *s = (*s).max(1);
            }
            // "WARD, LARRY": an upper-case family name, a comma and an upper-case given name
            // in mixed-case text is how registration systems print a name into a note.
            if !upper_doc
                && t.shape == Shape::Upper
                && let Some(range) = upper_name_pair(text, &toks, i)
            {
                for k in range {
                    if let Some(s) = name.get_mut(k) {
                        *s = (*s).max(1);
                    }
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
                        // A word of no ordinary-word list (a name, a place, an unknown word):
                        // "Kevin Whitehorse" is a name though Whitehorse is a city.
                        && (t.name_word() || t.proper())
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
                // "Hye-jin": a lower-case part joined by a hyphen that is no ordinary word.
                let hyphen_part = text.get(a.end..b.start) == Some("-")
                    && !a.possessive
                    && b.shape == Shape::Lower
                    && b.flags & (ENGLISH | COMMON | SAFE | dict::WORD) == 0;
                // "Jack Van der Berg", "Maria de la Cruz": particles, in any case, inside a
                // name that goes on with a capitalised name word.
                let mut p = j + 1;
                while p < j + 4
                    && toks.get(p).is_some_and(|t| {
                        t.end - t.start <= 5 && !t.possessive && lower_eq(text, t, PARTICLES)
                    })
                    && toks
                        .get(p - 1)
                        .zip(toks.get(p))
                        .is_some_and(|(x, y)| text.get(x.end..y.start) == Some(" "))
                {
                    p += 1;
                }
                if p > j + 1
                    && toks.get(p - 1).zip(toks.get(p)).is_some_and(|(x, y)| {
                        text.get(x.end..y.start) == Some(" ")
                            && y.shape == Shape::Cap
                            && extendable(y)
                    })
                {
                    for k in j + 1..=p {
                        if let Some(s) = name.get_mut(k) {
                            *s = 1;
                        }
                    }
                    j = p;
                    continue;
                }
                if name.get(j + 1).copied().unwrap_or(0) == 0
                    && ((tight(text, a, b) && extendable(b)) || hyphen_part)
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
                // "Our Lady of Lourdes": "Our" starts the name here, not a sentence.
                let our_lady = lower_eq(text, a, &["our"]) && lower_eq(text, b, &["lady"]);
                let word_ok = (capish(a) || a.shape == Shape::Upper)
                    && (!lower_eq(text, a, FACILITY_STOP) || our_lady)
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
                short_forms(text, &toks, s, e, &mut short);
            }
            i = e + 1;
        }

        // Facilities named by where a patient went: "presented to the Summit Pointe ED",
        // "admitted to Harborview Heights on", "left Riverbend on". Hospitals are often called
        // by a short name with no facility word; after these verbs a capitalised run is one
        // when it holds a word that is no ordinary word (a name, a place, a word in no list)
        // or the emergency department follows. Services and units ("admitted to Cardiology",
        // "transferred to MICU") are not ([`SERVICES`]).
        let mut i = 0;
        while i < n {
            let Some(e) = self.moved_to_facility(text, &toks, &facility, i) else {
                i += 1;
                continue;
            };
            for k in i..=e {
                if let Some(f) = facility.get_mut(k) {
                    *f = true;
                }
                if let Some(nm) = name.get_mut(k) {
                    *nm = 0;
                }
            }
            if let (Some(a), Some(b)) = (toks.get(i), toks.get(e)) {
                out.push(Candidate {
                    span: Span {
                        start: a.start,
                        end: b.end,
                        kind: PhiKind::Facility,
                    },
                    priority: Priority::FACILITY,
                });
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

        // Propagation: a name found once names the same person elsewhere in the text, often
        // written as no rule above would take it ("Patient: WARD, LARRY" ... "larry is a 61
        // y/o man", "Name: Kevin Whitehorse" ... "Pt KEVIN"). Only words that are not
        // ordinary words in that spelling spread: a capitalised occurrence must not be a very
        // common word, a lower-case one no English word at all. Initials, two-letter words
        // and context words ("I'm", "Sister") do not spread.
        let mut names_here: Vec<String> = Vec::new();
        for (k, t) in toks.iter().enumerate() {
            if name.get(k).copied().unwrap_or(0) == 0
                || t.shape == Shape::Initial
                || t.flags & SAFE != 0
                || t.role != 0
            {
                continue;
            }
            let key = word_key(text, t);
            if key.chars().count() >= 3 && !names_here.contains(&key) {
                names_here.push(key);
            }
        }
        if !names_here.is_empty() {
            let shortest = names_here.iter().map(String::len).min().unwrap_or(0);
            let longest = names_here.iter().map(String::len).max().unwrap_or(0);
            for (k, t) in toks.iter().enumerate() {
                // Cheap test first: a key's length (a numeric suffix may add three digits).
                let len = t.end - t.start;
                if len < shortest || len > longest + 3 {
                    continue;
                }
                let spread = match t.shape {
                    Shape::Cap | Shape::Upper => {
                        t.flags & COMMON == 0 && (!upper_doc || !t.ambiguous())
                    }
                    Shape::Lower => !t.ambiguous() && t.flags & dict::WORD == 0,
                    Shape::Initial | Shape::Other => false,
                };
                if !spread
                    || t.flags & SAFE != 0
                    || t.role != 0
                    || name.get(k).copied().unwrap_or(0) != 0
                    || facility.get(k).copied().unwrap_or(false)
                    || title_tok.get(k).copied().unwrap_or(false)
                {
                    continue;
                }
                let w = text
                    .get(t.start..t.end)
                    .unwrap_or("")
                    .trim_end_matches(|c: char| c.is_ascii_digit());
                let known = names_here.iter().any(|key| {
                    // Lower-casing keeps the byte length of nearly all letters; a name
                    // where it does not is only missed here, never wrongly taken.
                    key.len() == w.len() && w.chars().flat_map(char::to_lowercase).eq(key.chars())
                });
                if known && let Some(s) = name.get_mut(k) {
                    *s = 1;
                }
            }
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
                    || matches!(w, "and" | "of" | "or")
                    // "Coeur d'Alene".
                    || w.starts_with("d'")
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

        spread_facilities(text, out, first_out, &short);
    }
}

/// The short form of the facility `s..=e` without its facility words ("Riverbend" of
/// "Riverbend University Hospital", "Mercy General" of "Mercy General Hospital"), as a byte
/// range, when it is specific enough to stand alone: two words or more, or one word that is
/// no ordinary word.
fn short_forms(text: &str, toks: &[Tok], s: usize, e: usize, out: &mut Vec<(usize, usize)>) {
    let is_tail = |t: &Tok| {
        t.flags & FACILITY_HEAD != 0
            || t.role & (R_FACILITY_TAIL | R_LOWER_FACILITY | R_SOFT_HEAD) != 0
            || lower_eq(text, t, &["of", "and", "st", "saint"])
    };
    let Some(a) = toks.get(s) else { return };
    if is_tail(a) {
        return;
    }
    // Each shorter form: "Lakeside Regional Medical Center" gives "Lakeside Regional" and
    // "Lakeside".
    let mut pe = e;
    while pe > s && toks.get(pe).is_some_and(is_tail) {
        pe -= 1;
        let Some(b) = toks.get(pe) else { return };
        if b.flags & FACILITY_HEAD != 0 || lower_eq(text, b, &["of", "and", "st", "saint"]) {
            continue;
        }
        let specific = pe > s
            || (a.flags & (SAFE | COMMON) == 0
                && !a.possessive
                && (a.proper() || a.name_word() || a.flags & dict::CITY != 0));
        if specific {
            out.push((a.start, b.end));
        }
    }
}

/// Facility propagation: every facility found in the text (and its short form) is a facility
/// wherever else it occurs, whole words only ("Summit Pointe" in a header line, found because
/// the note says "presented to the Summit Pointe ED").
fn spread_facilities(
    text: &str,
    out: &mut Vec<Candidate>,
    first_out: usize,
    short_forms: &[(usize, usize)],
) {
    let mut names: Vec<&str> = Vec::new();
    let found = out
        .get(first_out..)
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.span.kind == PhiKind::Facility)
        .map(|c| (c.span.start, c.span.end));
    for (s, e) in found.chain(short_forms.iter().copied()) {
        if let Some(w) = text.get(s..e)
            && w.len() >= 3
            && !names.contains(&w)
        {
            names.push(w);
        }
    }
    for w in names {
        for (pos, m) in text.match_indices(w) {
            let end = pos + m.len();
            let before = text
                .get(..pos)
                .and_then(|b| b.chars().next_back())
                .is_none_or(|c| !c.is_alphanumeric());
            let after = text
                .get(end..)
                .and_then(|a| a.chars().next())
                .is_none_or(|c| !c.is_alphanumeric());
            if before && after {
                out.push(Candidate {
                    span: Span {
                        start: pos,
                        end,
                        kind: PhiKind::Facility,
                    },
                    priority: Priority::FACILITY,
                });
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

    fn names(text: &str) -> Vec<String> {
        found(text)
            .into_iter()
            .filter(|(_, k)| *k == PhiKind::Name)
            .map(|(s, _)| s)
            .collect()
    }

    #[test]
    fn upper_case_family_given_headers() {
        assert_eq!(
            names("Patient: WARD, LARRY    MRN: 3592107    DOB: 06/24/1961"),
            ["WARD, LARRY"]
        );
        assert_eq!(
            names("HPI: ST. CLAIR, WEI is a 88 y/o man. Pt OYELARAN, KYLE resting."),
            ["ST. CLAIR, WEI", "OYELARAN, KYLE"]
        );
        // Both parts ordinary words: only after a header label.
        assert_eq!(names("Patient: STONE, JACK    DOB"), ["STONE, JACK"]);
        assert!(names("Findings: STONE, JACK was not used").is_empty());
        // Abbreviation lists are not names.
        assert!(found("Labs: CT, MRI and CBC, BMP were normal. HEENT, NECK: normal.").is_empty());
    }

    #[test]
    fn relatives_after_kinship_words() {
        assert_eq!(
            names(
                "He lives with his daughter, Aaliyah Ward. Emergency contact: husband Frank, 555."
            ),
            ["Aaliyah Ward", "Frank"]
        );
        assert_eq!(
            names("Visited by his daughter, Hye-jin yesterday; brother Jack Van der Berg called."),
            ["Hye-jin", "Jack Van der Berg"]
        );
        // Family-history lists put a condition after the relative.
        assert!(found("Mother: Diabetes. Father: Deceased. Brother: Healthy.").is_empty());
    }

    #[test]
    fn generated_names_with_numeric_suffixes() {
        assert_eq!(
            names("Carolee951 is a 34 year-old. Sunny31 and O'Reilly797 came."),
            ["Carolee951", "Sunny31", "O'Reilly797"]
        );
        assert!(found("SpO2 98% on RA, Spo2 97%, FiO2 40%, Covid19 negative").is_empty());
        assert!(found("Day3 of abx, Stage4 CKD, Type2 DM, Week2, Level2, Bay3").is_empty());
    }

    #[test]
    fn a_name_found_once_is_found_again() {
        assert_eq!(
            names("Name: Kevin Whitehorse\nHPI: kevin is stable. Seen with KEVIN today."),
            ["Kevin Whitehorse", "kevin", "KEVIN"]
        );
        // A common word does not spread to its lower-case uses.
        assert_eq!(
            names("Patient: WARD, LARRY\nBack on the ward."),
            ["WARD, LARRY"]
        );
        // Context words do not spread, though "I'm" joins the name it introduces.
        let n = names("I'm Naomi Ryan, and i'm 31.");
        assert!(n.iter().all(|s| s.contains("Naomi")), "{n:?}");
    }

    #[test]
    fn names_by_position_and_age() {
        assert_eq!(
            names("HOSPITAL COURSE: Frank, 57 year-old, was admitted. Aaliyah is a 38yo woman."),
            ["Frank", "Aaliyah"]
        );
        assert_eq!(
            names("S: dylan reports feeling better. Pt thanh resting. Called josé at home."),
            ["dylan", "thanh", "josé"]
        );
        assert_eq!(names("Aaliyah, 3 month-old girl"), ["Aaliyah"]);
        // Pronouns, acronyms, courses of a drug and bulleted drugs are not.
        assert!(
            names("Vancomycin, 7 days. Zosyn, 3 days. Augmentin is a 10 day course.").is_empty()
        );
        assert!(
            names("She is a 45 year-old woman. AML, 31yo female.\n- camila 28 day pack").is_empty()
        );
    }

    #[test]
    fn facilities_where_patients_went() {
        assert_eq!(
            found("HISTORY\nSummit Pointe\nwho presented to the Summit Pointe ED on 3/4."),
            vec![
                ("Summit Pointe".into(), PhiKind::Facility),
                ("Summit Pointe".into(), PhiKind::Facility),
                ("3/4".into(), PhiKind::Date),
            ]
        );
        assert_eq!(
            found("was admitted to Mercy General on 6/11; left Riverbend on 7/1 for AUMC"),
            vec![
                ("Mercy General".into(), PhiKind::Facility),
                ("6/11".into(), PhiKind::Date),
                ("Riverbend".into(), PhiKind::Facility),
                ("7/1".into(), PhiKind::Date),
            ]
        );
        assert_eq!(
            found("Our Lady of Lourdes Medical Center\nRiverbend University Hospital; Riverbend"),
            vec![
                (
                    "Our Lady of Lourdes Medical Center".into(),
                    PhiKind::Facility
                ),
                ("Riverbend University Hospital".into(), PhiKind::Facility),
                ("Riverbend".into(), PhiKind::Facility),
            ]
        );
        // Services and units are where patients go too, but no facility; "left" is a side.
        assert!(found("admitted to Cardiology, transferred to MICU, left AMA").is_empty());
        assert!(
            found("a left MCA stroke and left Achilles tendon rupture")
                .iter()
                .all(|(_, k)| *k != PhiKind::Facility)
        );
    }

    #[test]
    fn places_with_lower_case_words() {
        assert_eq!(
            found("She lives in Truth or Consequences and Coeur d'Alene."),
            vec![
                ("Truth or Consequences".into(), PhiKind::City),
                ("Coeur d'Alene".into(), PhiKind::City)
            ]
        );
    }
}
