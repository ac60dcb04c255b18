//! Pattern recognisers: compiled `regex` patterns (finite automata, linear time in the input,
//! no look-around or back-references) for the identifiers that have a shape.
//!
//! Word boundaries are ASCII (`(?-u:\b)`) so the lazy DFA never has to fall back to the slower
//! engines on non-ASCII input. Checks a regex cannot express (octet ranges aside: month/day
//! ranges, digit counts, a following unit) are done in code after the match.

use regex::{Regex, RegexBuilder};
use regex_automata::meta;

use crate::engine::{Candidate, Priority, Recognizer};
use crate::{PhiKind, Span, TextError};

const MONTH: &str = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";

/// Units after which a number is a measurement, not an identifier or date.
const UNITS: &[&str] = &[
    "mg", "mcg", "g", "kg", "ml", "l", "dl", "unit", "units", "iu", "cells", "copies", "mmhg",
    "mm", "cm", "tab", "tabs", "tablet", "tablets", "cap", "caps", "dose", "doses", "strength",
    "puffs", "drops", "cup", "cups", "lbs", "lb", "oz", "ng", "pg", "meq", "mmol", "k", "ul",
    "bpm", "times", "of", "x", "hours", "hrs", "days", "weeks", "minutes", "min", "ft",
];

/// Label words that announce an identifier, and the kind they give it.
const LABELS: &[(&str, PhiKind)] = &[
    ("mrn", PhiKind::Mrn),
    ("medical record", PhiKind::Mrn),
    ("med rec", PhiKind::Mrn),
    ("chart", PhiKind::Mrn),
    ("record", PhiKind::Mrn),
    ("acct", PhiKind::Account),
    ("account", PhiKind::Account),
    ("a/c", PhiKind::Account),
    ("billing", PhiKind::Account),
    ("invoice", PhiKind::Account),
    ("card", PhiKind::Account),
    ("iban", PhiKind::Account),
    ("policy", PhiKind::HealthPlan),
    ("member", PhiKind::HealthPlan),
    ("subscriber", PhiKind::HealthPlan),
    ("group", PhiKind::HealthPlan),
    ("insurance", PhiKind::HealthPlan),
    ("health plan", PhiKind::HealthPlan),
    ("plan", PhiKind::HealthPlan),
    ("medicare", PhiKind::HealthPlan),
    ("medicaid", PhiKind::HealthPlan),
    ("hmo", PhiKind::HealthPlan),
    ("ppo", PhiKind::HealthPlan),
    ("beneficiary", PhiKind::HealthPlan),
    ("license", PhiKind::License),
    ("licence", PhiKind::License),
    ("lic", PhiKind::License),
    ("dea", PhiKind::License),
    ("npi", PhiKind::License),
    ("certificate", PhiKind::License),
    ("cert", PhiKind::License),
    ("passport", PhiKind::License),
    ("vin", PhiKind::Vehicle),
    ("plate", PhiKind::Vehicle),
    ("vehicle", PhiKind::Vehicle),
    ("serial", PhiKind::Device),
    ("s/n", PhiKind::Device),
    ("device", PhiKind::Device),
    ("udi", PhiKind::Device),
    ("imei", PhiKind::Device),
    ("zip", PhiKind::Zip),
    ("ssn", PhiKind::Ssn),
    ("social security", PhiKind::Ssn),
];

/// The regex alternation for [`LABELS`] plus generic id labels.
fn label_regex() -> String {
    let mut alts: Vec<String> = LABELS
        .iter()
        .map(|(l, _)| regex::escape(l).replace(' ', r"\s+"))
        .collect();
    for generic in [
        r"patient\s+id",
        r"pt\s+id",
        r"id",
        r"identifier",
        r"case",
        r"claim",
        r"ref(?:erence)?",
        r"encounter",
        r"visit",
        r"accession",
        r"specimen",
        r"requisition",
        r"ticket",
        r"badge",
        r"employee",
        // Research and registry identifiers: the word alone ("study 2021", "site 3") is not a
        // label, so these need an id/number word of their own.
        r"(?:site|study|subject|participant|trial|enrol?lment|registry)\s+(?:id|number|num|no\.?|nbr|#)",
        r"tracking",
        r"confirmation",
        r"fin",
        r"csn",
        r"har",
    ] {
        alts.push(generic.to_owned());
    }
    // Longest first so "medical record" wins over "record".
    alts.sort_by_key(|a| std::cmp::Reverse(a.len()));
    format!(
        r"(?i)(?-u:\b)(?P<head>(?P<label>{})(?:\s*(?:number|num|no\.?|nbr|code|#|id)){{0,2}})\s*(?:is|was|=)?\s*[:#=]?\s*#?\s*(?P<val>[A-Za-z0-9](?:[A-Za-z0-9]|[-/.][A-Za-z0-9])*)",
        alts.join("|")
    )
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Email,
    Url,
    Domain,
    Ipv4,
    Ipv6,
    Ssn,
    Phone,
    Phone7,
    DateMonthFirst,
    DateDayFirst,
    DateDashed,
    DateMonthYear,
    DateIso,
    DateNumeric,
    DatePartial,
    DateThe,
    Time,
    DateRelative,
    AgeYears,
    AgeAged,
    Labelled,
    Shaped,
    Address,
    StreetName,
    PoBox,
    CityState,
    County,
    Vin,
    PhoneIntl,
    AddressUnit,
    AddressNumbered,
    StreetIntl,
}

/// Whether `rule` runs faster without the regex engine's literal prefilter.
///
/// The month words (`jan`, `mar`, `dec`...) and the relative-date words (`last`, `next`,
/// `this`...) are case-insensitive prefixes of very common words ("decreased", "summary",
/// "marked", "this"): the prefilter stops on each and restarts the automaton, several times
/// slower on clinical notes than one pass of the lazy DFA over the whole text (measured on the
/// ASQ-PHI and presidio corpora: 3.9 ms against 0.7 ms a pass for each month rule). Turning the
/// prefilter off changes how the automaton is driven, never what it matches (the unit test
/// `fast_paths_match_the_reference` checks this on the shared corpora).
fn prefilter_free(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::DateMonthFirst | Rule::DateMonthYear | Rule::DateRelative
    )
}

/// Whether `rule` is first checked, with the other such rules, by one [`regex::RegexSet`]
/// scan of the text, and run only where that scan says it matches somewhere.
///
/// These rules match in few notes (each in under a tenth of the notes of the shared corpora),
/// so one combined pass (2.7 ms a pass over the corpora) replaces most of their separate
/// passes (11 ms together). A set reports a pattern exactly when the pattern alone matches
/// somewhere, so skipping the others changes nothing. The set is compiled without Unicode, so
/// only rules whose pattern compiles that way can join (all of these do; `new` fails, and the
/// unit tests with it, otherwise). The frequent rules (month-first dates, labelled and shaped
/// ids, international phones, addresses and address units) and the Unicode ones run directly.
fn in_rare_set(rule: Rule) -> bool {
    !matches!(
        rule,
        Rule::Url
            | Rule::Domain
            | Rule::StreetIntl
            | Rule::AddressNumbered
            | Rule::DateMonthFirst
            | Rule::Labelled
            | Rule::Shaped
            | Rule::PhoneIntl
            | Rule::AddressUnit
            | Rule::Address
            | Rule::StreetName
    )
}

/// One compiled rule: its pattern and, for the rules [`prefilter_free`] names, the same
/// pattern compiled without the literal prefilter (the one the recogniser runs).
#[derive(Debug)]
struct Compiled {
    rule: Rule,
    re: Regex,
    plain: Option<meta::Regex>,
    /// The rule's index in [`PatternRecognizer::rare`], for the rules [`in_rare_set`] names.
    rare_index: Option<usize>,
}

impl Compiled {
    /// Calls `f` with the start and end of each match, left to right, non-overlapping (the
    /// matches of `Regex::find_iter`). `reference` runs the prefiltered regex even where a
    /// prefilter-free twin exists (tests compare the two).
    fn each_match(&self, text: &str, reference: bool, mut f: impl FnMut(usize, usize)) {
        match &self.plain {
            Some(plain) if !reference => {
                for m in plain.find_iter(text) {
                    f(m.start(), m.end());
                }
            }
            _ => {
                for m in self.re.find_iter(text) {
                    f(m.start(), m.end());
                }
            }
        }
    }
}

/// The pattern recogniser (see the module doc).
#[derive(Debug)]
pub struct PatternRecognizer {
    rules: Vec<Compiled>,
    /// The patterns of the rules [`in_rare_set`] names, as one set.
    rare: regex::RegexSet,
    street_words: aho_corasick::AhoCorasick,
}

impl PatternRecognizer {
    /// Compiles the patterns.
    pub fn new() -> Result<PatternRecognizer, TextError> {
        let b = r"(?-u:\b)";
        let m = MONTH;
        let ord = r"\d{1,2}(?:st|nd|rd|th)?";
        let year = r"(?:\d{4}|'\d{2})";
        let states = "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR";
        let street = r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|ter|circle|cir|parkway|pkwy|highway|hwy|route|rte|trail|trl|square|sq|alley|loop|path|pathway|parade|byway|camp|extension|ext|park|crossing|xing|run|row|walk|pike|plaza|plz|freeway|fwy|expressway|expy|turnpike|tpke|junction|jct|point|pt|ridge|heights|hts|hollow|manor|gardens|grove|landing|station|village|center|ctr|mall|green|meadows?|brook|creek|hill|hills|view|vista|estates?)";
        let unit = r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|rm|room|bldg|building|floor|fl|#)\.?\s*#?\s*[A-Za-z0-9-]+)?";
        let specs: Vec<(Rule, String)> = vec![
            (
                Rule::Email,
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}".into(),
            ),
            (
                Rule::Url,
                r#"(?i)(?:https?://|ftp://|www\.)[^\s<>"'()\[\]{}]+"#.into(),
            ),
            (
                Rule::Domain,
                format!(
                    r"(?i){b}[a-z0-9][a-z0-9\-]*(?:\.[a-z0-9\-]+)*\.(?:com|org|net|edu|gov|io|info|biz|us|co|uk|ca|de|fr|au|health|med|mil|me|app|ai|ly|xyz|site|online|care|clinic|hospital){b}(?:/[^\s<>\x22']*)?"
                ),
            ),
            (
                Rule::Ipv4,
                format!(
                    r"{b}(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){{3}}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d){b}"
                ),
            ),
            (
                Rule::Ipv6,
                format!(
                    r"(?i){b}(?:(?:[0-9a-f]{{1,4}}:){{7}}[0-9a-f]{{1,4}}|(?:[0-9a-f]{{1,4}}:){{1,6}}:(?:[0-9a-f]{{1,4}}(?::[0-9a-f]{{1,4}}){{0,5}})?){b}"
                ),
            ),
            (
                Rule::Ssn,
                format!(
                    r"{b}(?:\d{{3}}-\d{{2}}-\d{{4}}|\d{{3}} \d{{2}} \d{{4}}|\d{{3}}\.\d{{2}}\.\d{{4}}){b}"
                ),
            ),
            (
                Rule::Phone,
                format!(
                    r"(?:\+?1[\-.\s]?)?(?:\(\d{{3}}\)\s?|{b}\d{{3}}[\-.\s/])\d{{3}}[\-.\s]\d{{4}}{b}(?:\s?(?i:x|ext\.?)\s?\d{{1,5}}{b})?"
                ),
            ),
            (Rule::Phone7, format!(r"{b}\d{{3}}-\d{{4}}{b}")),
            (
                Rule::DateMonthFirst,
                format!(r"(?i){b}{m}\.?\s+{ord}{b}(?:,?\s*(?:of\s+)?{year}{b})?"),
            ),
            (
                Rule::DateDayFirst,
                format!(r"(?i){b}{ord}(?:\s+of)?\s+{m}{b}\.?(?:,?\s*{year}{b})?"),
            ),
            (
                Rule::DateDashed,
                format!(r"(?i){b}\d{{1,2}}[\-/ ]{m}[\-/ ](?:\d{{4}}|\d{{2}}){b}"),
            ),
            (
                Rule::DateMonthYear,
                format!(r"(?i){b}{m}\.?,?\s+(?:of\s+)?(?:\d{{4}}|'\d{{2}}){b}"),
            ),
            (
                Rule::DateIso,
                format!(
                    r"{b}\d{{4}}[\-/.]\d{{1,2}}[\-/.]\d{{1,2}}(?:[T ]\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:Z|[+\-]\d{{2}}:?\d{{2}})?)?{b}"
                ),
            ),
            (
                Rule::DateNumeric,
                format!(
                    r"{b}(?:\d{{1,2}}/\d{{1,2}}/(?:\d{{4}}|\d{{2}})|\d{{1,2}}-\d{{1,2}}-(?:\d{{4}}|\d{{2}})|\d{{1,2}}\.\d{{1,2}}\.\d{{4}}){b}"
                ),
            ),
            (Rule::DatePartial, format!(r"{b}\d{{1,2}}/\d{{1,2}}{b}")),
            (
                Rule::DateThe,
                format!(r"(?i){b}the\s+(?P<d>\d{{1,2}}(?:st|nd|rd|th)){b}"),
            ),
            (
                Rule::Time,
                format!(
                    r"(?i){b}(?:\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:\s*[ap]\.?m\.?)?|\d{{1,2}}\s*[ap]\.?m\.?){b}"
                ),
            ),
            (
                Rule::DateRelative,
                format!(
                    r"(?i){b}(?:last|next|this|early|late|mid|past)[\s\-]+(?:january|february|march|april|may|june|july|august|september|october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday){b}"
                ),
            ),
            (
                Rule::AgeYears,
                format!(r"(?i){b}(?P<a>9\d|1[0-4]\d)\s*(?:-\s*)?(?:years?|yrs?|y/?o|yo|y\.o\.){b}"),
            ),
            (
                Rule::AgeAged,
                format!(r"(?i){b}(?:aged?|age\s+of|ages)\s*:?\s*(?P<a>9\d|1[0-4]\d){b}"),
            ),
            (Rule::Labelled, label_regex()),
            (
                Rule::Shaped,
                format!(r"#?{b}(?:[A-Za-z0-9]+-)*[A-Za-z0-9]*\d[A-Za-z0-9]*(?:-[A-Za-z0-9]+)*{b}"),
            ),
            (
                Rule::Address,
                format!(
                    r"{b}\d{{1,6}}[A-Za-z]?(?:\s+\d{{1,6}})?\s+(?:[NSEW]\.?\s+)?(?:(?:[A-Z][A-Za-z'.\-]*|\d+(?:st|nd|rd|th))\s+){{1,4}}{street}{b}\.?{unit}(?:,\s*[A-Z][A-Za-z]+(?:\s+[A-Z][A-Za-z]+){{0,2}})?(?:,?\s*(?:{states}){b})?(?:\s+\d{{5}}(?:-\d{{4}})?{b})?"
                ),
            ),
            (
                Rule::StreetName,
                format!(
                    r"{b}(?:[A-Z][a-z]+(?:\s[A-Z][a-z]+)?|\d{{1,3}}(?:st|nd|rd|th))\s+(?i:street|avenue|boulevard|road|lane|parkway|terrace){b}"
                ),
            ),
            (Rule::PoBox, format!(r"(?i){b}p\.?\s?o\.?\s*box\s+\d+{b}")),
            (
                Rule::CityState,
                format!(
                    r"{b}(?P<c>[A-Z][a-z]+(?:\s[A-Z][a-z]+){{0,2}}),\s*(?:{states}){b}(?:\s+(?P<z>\d{{5}}(?:-\d{{4}})?){b})?"
                ),
            ),
            (
                Rule::County,
                format!(r"{b}[A-Z][a-z]+(?:\s[A-Z][a-z]+)?\s+(?:County|Parish|Borough){b}"),
            ),
            (Rule::Vin, format!(r"{b}[A-HJ-NPR-Z0-9]{{17}}{b}")),
            (
                Rule::PhoneIntl,
                format!(r"(?:\+\d{{1,3}}[ .\-]?|{b})(?:\(\d{{1,4}}\)[ .\-]?)?\d{{2,4}}(?:[ .\-]\d{{2,4}}){{2,5}}{b}(?:\s?(?i:x|ext\.?)\s?\d{{1,5}}{b})?"),
            ),
            (
                Rule::AddressUnit,
                format!(r"(?i){b}(?:(?:apt|apartment|suite|ste|unit|room|rm|bldg|building|p\.?\s?o\.?\s*box|postbox|box|psc|cmr)\.?\s*#?\s*\d+[a-z]?|(?:apo|fpo|dpo)\s+(?:aa|ae|ap)(?:\s+\d{{5}})?){b}"),
            ),
            (
                Rule::StreetIntl,
                r"(?:^|[^\p{L}\p{N}])(?P<a>(?:\d{1,6}\s+)?(?:(?:Rua|Via|Avenida|Av\.|Calle|Carrer|Rue|ul\.|Piazza|Plaza|Praça|Largo)\s+(?:\p{L}[\p{L}'\-]*\s+){0,4}|\p{Lu}\p{L}*(?:strasse|straße|gasse|weg|vej|veien|vegen|vägen|gata|gatan|laan|straat|plein|gade|katu|tie)\s+)\d{1,5}[A-Za-z]?)(?:$|[^\p{L}\p{N}])".to_owned(),
            ),
            (
                Rule::AddressNumbered,
                r"(?:^|[^\p{L}\p{N}])(?P<a>\d{1,6}\s+(?:\p{Lu}[\p{L}'\-]+\s+){1,4}\d{1,5}[A-Za-z]?)(?:$|[^\p{L}\p{N}])".to_owned(),
            ),
        ];
        let mut rules = Vec::with_capacity(specs.len());
        let mut rare_patterns: Vec<String> = Vec::new();
        for (rule, pat) in specs {
            // ASCII classes and case folding where the pattern allows it (much smaller
            // automata); patterns with negated classes need Unicode mode to stay UTF-8 safe.
            let build = |unicode: bool| {
                RegexBuilder::new(&pat)
                    .unicode(unicode)
                    .size_limit(32 << 20)
                    .dfa_size_limit(16 << 20)
                    .build()
            };
            let (re, unicode) = build(false)
                .map(|re| (re, false))
                .or_else(|_| build(true).map(|re| (re, true)))
                .map_err(|_| TextError::Pattern {
                    name: rule_name(rule),
                })?;
            // The same configuration `RegexBuilder` gives `meta`, less the prefilter.
            let plain = if prefilter_free(rule) {
                let built = meta::Regex::builder()
                    .configure(
                        meta::Config::new()
                            .match_kind(regex_automata::MatchKind::LeftmostFirst)
                            .utf8_empty(true)
                            .nfa_size_limit(Some(32 << 20))
                            .hybrid_cache_capacity(16 << 20)
                            .auto_prefilter(false),
                    )
                    .syntax(
                        regex_automata::util::syntax::Config::new()
                            .unicode(unicode)
                            .utf8(true),
                    )
                    .build(&pat)
                    .map_err(|_| TextError::Pattern {
                        name: rule_name(rule),
                    })?;
                Some(built)
            } else {
                None
            };
            let rare_index = in_rare_set(rule).then(|| {
                rare_patterns.push(pat.clone());
                rare_patterns.len() - 1
            });
            rules.push(Compiled {
                rule,
                re,
                plain,
                rare_index,
            });
        }
        let street_words = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build([
                "street",
                "avenue",
                "boulevard",
                "road",
                "lane",
                "parkway",
                "terrace",
            ])
            .map_err(|_| TextError::Pattern {
                name: "street words",
            })?;
        let rare = regex::RegexSetBuilder::new(&rare_patterns)
            .unicode(false)
            .size_limit(32 << 20)
            .dfa_size_limit(16 << 20)
            .build()
            .map_err(|_| TextError::Pattern {
                name: "rare pattern set",
            })?;
        Ok(PatternRecognizer {
            rules,
            rare,
            street_words,
        })
    }
}

fn rule_name(r: Rule) -> &'static str {
    match r {
        Rule::Email => "email",
        Rule::Url => "url",
        Rule::Domain => "domain",
        Rule::Ipv4 => "ipv4",
        Rule::Ipv6 => "ipv6",
        Rule::Ssn => "ssn",
        Rule::Phone => "phone",
        Rule::Phone7 => "phone7",
        Rule::DateMonthFirst => "date month first",
        Rule::DateDayFirst => "date day first",
        Rule::DateDashed => "date dashed",
        Rule::DateMonthYear => "date month year",
        Rule::DateIso => "date iso",
        Rule::DateNumeric => "date numeric",
        Rule::DatePartial => "date partial",
        Rule::DateThe => "date the nth",
        Rule::Time => "time",
        Rule::DateRelative => "date relative",
        Rule::AgeYears => "age years",
        Rule::AgeAged => "age aged",
        Rule::Labelled => "labelled id",
        Rule::Shaped => "shaped id",
        Rule::Address => "address",
        Rule::StreetName => "street name",
        Rule::PoBox => "po box",
        Rule::CityState => "city state",
        Rule::County => "county",
        Rule::Vin => "vin",
        Rule::PhoneIntl => "international phone",
        Rule::AddressUnit => "address unit",
        Rule::AddressNumbered => "numbered street",
        Rule::StreetIntl => "international street",
    }
}

fn push(out: &mut Vec<Candidate>, start: usize, end: usize, kind: PhiKind, priority: Priority) {
    out.push(Candidate {
        span: Span { start, end, kind },
        priority,
    });
}

/// The word right after `end` (lower-cased ASCII letters), skipping spaces.
fn next_word(text: &str, end: usize) -> String {
    let rest = text.get(end..).unwrap_or("");
    let rest = rest.trim_start_matches([' ', '\t']);
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '/')
        .take(12)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The word right before `start` (lower-cased), skipping spaces and colons.
fn prev_word(text: &str, start: usize) -> String {
    let before = text.get(..start).unwrap_or("");
    let before = before.trim_end_matches([' ', '\t', ':']);
    let w: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphabetic())
        .take(12)
        .collect();
    w.chars().rev().map(|c| c.to_ascii_lowercase()).collect()
}

fn followed_by_unit(text: &str, end: usize) -> bool {
    let rest = text.get(end..).unwrap_or("");
    if rest.starts_with('%') || rest.starts_with("/") {
        return true;
    }
    let w = next_word(text, end);
    !w.is_empty() && UNITS.contains(&w.as_str())
}

fn fax_context(text: &str, start: usize) -> bool {
    let from = start.saturating_sub(24);
    let mut from = from;
    while from > 0 && !text.is_char_boundary(from) {
        from -= 1;
    }
    text.get(from..start)
        .is_some_and(|s| s.to_ascii_lowercase().contains("fax"))
}

fn month_day_ok(m: &str, d: &str) -> bool {
    let (Ok(m), Ok(d)) = (m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// A bare "ID" or "identifier" label: it does not say what it identifies (the word before it,
/// often one the patterns do not know, as in "insurer ID" or "Health ID", does), so it is
/// not taken into the span.
fn is_bare_id(label: &str) -> bool {
    label.eq_ignore_ascii_case("id") || label.eq_ignore_ascii_case("identifier")
}

fn label_kind(label: &str) -> PhiKind {
    let l: String = label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    LABELS
        .iter()
        .find(|(name, _)| l == *name)
        .map_or(PhiKind::Id, |(_, k)| *k)
}

impl Recognizer for PatternRecognizer {
    fn name(&self) -> &'static str {
        "patterns"
    }

    fn recognize(&self, text: &str, out: &mut Vec<Candidate>) {
        self.recognize_with(text, out, false);
    }
}

impl PatternRecognizer {
    /// The recogniser. `reference` runs every rule that passes the byte checks through its
    /// prefiltered regex, without the rare-set check: the behaviour the fast paths (the
    /// prefilter-free regexes and the rare set) must reproduce exactly.
    fn recognize_with(&self, text: &str, out: &mut Vec<Candidate>, reference: bool) {
        // Cheap prefilters: most rules need a digit, some an `@`, `.` or `:`.
        let bytes = text.as_bytes();
        let has_digit = bytes.iter().any(u8::is_ascii_digit);
        let has_at = bytes.contains(&b'@');
        let has_dot = bytes.contains(&b'.');
        let has_colon = bytes.contains(&b':');
        // ", XX" (a state code after a comma).
        let has_comma_code = bytes.windows(4).any(|w| {
            w.first() == Some(&b',')
                && w.get(1) == Some(&b' ')
                && w.get(2).is_some_and(u8::is_ascii_uppercase)
                && w.get(3).is_some_and(u8::is_ascii_uppercase)
        });
        let has_county = ["County", "Parish", "Borough"]
            .iter()
            .any(|w| text.contains(w));
        let has_street = self.street_words.is_match(text);
        // Which of the rare rules match anywhere (all of them for the reference run).
        let rare = (!reference).then(|| self.rare.matches(text));
        for compiled in &self.rules {
            let (rule, re) = (&compiled.rule, &compiled.re);
            let needed = match rule {
                Rule::Email => has_at,
                Rule::Url | Rule::Domain => has_dot,
                Rule::Ipv6 => has_colon,
                Rule::AddressUnit => true,
                Rule::DateRelative => true,
                Rule::CityState => has_comma_code,
                Rule::County => has_county,
                Rule::StreetName => has_street,
                _ => has_digit,
            };
            let rare_hit = match (compiled.rare_index, &rare) {
                (Some(i), Some(set)) => set.matched(i),
                _ => true,
            };
            if !needed || !rare_hit {
                continue;
            }
            match rule {
                Rule::Email => {
                    for m in re.find_iter(text) {
                        push(out, m.start(), m.end(), PhiKind::Email, Priority::NETWORK);
                    }
                }
                Rule::Url | Rule::Domain => {
                    for m in re.find_iter(text) {
                        let s = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?']);
                        push(
                            out,
                            m.start(),
                            m.start() + s.len(),
                            PhiKind::Url,
                            Priority::NETWORK,
                        );
                    }
                }
                Rule::Ipv4 | Rule::Ipv6 => {
                    for m in re.find_iter(text) {
                        push(out, m.start(), m.end(), PhiKind::Ip, Priority::NETWORK);
                    }
                }
                Rule::Ssn => {
                    // Every SSN-shaped number, "invalid-looking" or sample ones included.
                    for m in re.find_iter(text) {
                        push(out, m.start(), m.end(), PhiKind::Ssn, Priority::SSN);
                    }
                }
                Rule::Phone => {
                    for m in re.find_iter(text) {
                        let kind = if fax_context(text, m.start()) {
                            PhiKind::Fax
                        } else {
                            PhiKind::Phone
                        };
                        push(out, m.start(), m.end(), kind, Priority::PHONE);
                    }
                }
                Rule::Phone7 => {
                    for m in re.find_iter(text) {
                        let before = text.get(..m.start()).unwrap_or("");
                        if before.ends_with('-')
                            || before.ends_with('/')
                            || followed_by_unit(text, m.end())
                        {
                            continue;
                        }
                        let kind = if fax_context(text, m.start()) {
                            PhiKind::Fax
                        } else {
                            PhiKind::Phone
                        };
                        push(out, m.start(), m.end(), kind, Priority::SHAPED_ID);
                    }
                }
                Rule::DateMonthFirst
                | Rule::DateDayFirst
                | Rule::DateDashed
                | Rule::DateMonthYear
                | Rule::DateIso
                | Rule::DateNumeric
                | Rule::Time => {
                    compiled.each_match(text, reference, |start, end| {
                        let s = text.get(start..end).unwrap_or("");
                        if matches!(rule, Rule::DateMonthFirst | Rule::DateDayFirst)
                            && !month_word_ok(s)
                        {
                            return;
                        }
                        if matches!(rule, Rule::Time) && !time_ok(text, start, end) {
                            return;
                        }
                        push(out, start, end, PhiKind::Date, Priority::DATE);
                    });
                }
                Rule::DatePartial => {
                    for m in re.find_iter(text) {
                        let s = m.as_str();
                        let Some((a, b)) = s.split_once('/') else {
                            continue;
                        };
                        let before = text.get(..m.start()).unwrap_or("");
                        let after = text.get(m.end()..).unwrap_or("");
                        // A period after it ends a sentence ("discharged on 5/11."); only a
                        // digit after the period makes it a decimal ("1/2.5").
                        let decimal_after = after.starts_with('.')
                            && after.as_bytes().get(1).is_some_and(u8::is_ascii_digit);
                        if !month_day_ok(a, b)
                            || before.ends_with(['/', '.', '-', '+'])
                            || after.starts_with(['/', '+'])
                            || decimal_after
                            || followed_by_unit(text, m.end())
                            || matches!(
                                prev_word(text, m.start()).as_str(),
                                "strength"
                                    | "motor"
                                    | "power"
                                    | "bp"
                                    | "pressure"
                                    | "ratio"
                                    | "grade"
                                    | "score"
                                    | "pain"
                                    | "scale"
                                    | "is"
                                    | "of"
                                    | "rated"
                            )
                        {
                            continue;
                        }
                        push(out, m.start(), m.end(), PhiKind::Date, Priority::DATE);
                    }
                }
                Rule::DateThe => {
                    for c in re.captures_iter(text) {
                        let Some(d) = c.name("d") else { continue };
                        let next = next_word(text, d.end());
                        // "the 14th" is a date when no noun follows ("the 4th ventricle" is not).
                        if !next.is_empty()
                            && !matches!(
                                next.as_str(),
                                "of" | "at" | "and" | "or" | "to" | "through" | "until" | "when"
                            )
                        {
                            continue;
                        }
                        let day: String = d
                            .as_str()
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect();
                        if day.parse::<u32>().is_ok_and(|v| (1..=31).contains(&v)) {
                            push(out, d.start(), d.end(), PhiKind::Date, Priority::DATE);
                        }
                    }
                }
                Rule::AgeYears | Rule::AgeAged => {
                    for c in re.captures_iter(text) {
                        if let Some(a) = c.name("a") {
                            push(out, a.start(), a.end(), PhiKind::Age, Priority::AGE);
                        }
                    }
                }
                Rule::Labelled => {
                    for c in re.captures_iter(text) {
                        let (Some(label), Some(val)) = (c.name("label"), c.name("val")) else {
                            continue;
                        };
                        let v = val.as_str();
                        let digits = v.bytes().filter(u8::is_ascii_digit).count();
                        if digits == 0 || v.len() < 3 || (digits < 3 && v.len() < 5) {
                            continue;
                        }
                        // "Telephone encounter 08/17/2020", "visit 2021-11-10": a date after
                        // a generic label is the date of the encounter, not its number (the
                        // date rules take it; the label alone would be left as an identifier).
                        if looks_like_date(v) && label_kind(label.as_str()) == PhiKind::Id {
                            continue;
                        }
                        let kind = label_kind(label.as_str());
                        // A generic identifier label ("Patient ID:", "Site ID", "case #",
                        // "reference number") is part of the identifier: the span covers it,
                        // as long as only punctuation separates it from the value (a verb, as
                        // in "the case number is", stays). Labels that name a Safe Harbor
                        // category (MRN, SSN, account, health plan, licence...) stay outside
                        // the span, as before.
                        let start = match c.name("head") {
                            Some(head)
                                if kind == PhiKind::Id
                                    && !is_bare_id(label.as_str())
                                    && text.get(head.end()..val.start()).is_some_and(|g| {
                                        !g.bytes().any(|b| b.is_ascii_alphabetic())
                                    }) =>
                            {
                                label.start()
                            }
                            _ => val.start(),
                        };
                        push(out, start, val.end(), kind, Priority::LABELLED_ID);
                        if start < val.start()
                            && let Some(head) = c.name("head")
                        {
                            // The label on its own too, for when a stronger shape (an
                            // SSN-shaped value) takes the value: the label still goes.
                            // Otherwise the whole span above contains it and it adds nothing.
                            push(out, start, head.end(), kind, Priority::LABELLED_ID);
                        }
                    }
                }
                Rule::Shaped => {
                    for m in re.find_iter(text) {
                        let s = m.as_str();
                        let hash = s.starts_with('#');
                        let digits = s.bytes().filter(u8::is_ascii_digit).count();
                        let letters = s.bytes().filter(u8::is_ascii_alphabetic).count();
                        let ok = digits >= 5
                            || (digits >= 4
                                && letters >= 1
                                && !s.contains('-')
                                && s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic))
                            || (digits >= 4 && letters >= 1 && s.contains('-'))
                            || (hash && digits >= 3);
                        if !ok
                            || followed_by_unit(text, m.end())
                            || text.get(m.end()..).is_some_and(|r| {
                                r.starts_with(['.', ','])
                                    && r.get(1..2)
                                        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
                            })
                        {
                            continue;
                        }
                        let before = text.get(..m.start()).unwrap_or("");
                        if before.ends_with(['.', ','])
                            && before.len() >= 2
                            && before
                                .as_bytes()
                                .get(before.len() - 2)
                                .is_some_and(u8::is_ascii_digit)
                        {
                            continue; // decimal or thousands group
                        }
                        let start = if hash { m.start() + 1 } else { m.start() };
                        push(out, start, m.end(), PhiKind::Id, Priority::SHAPED_ID);
                    }
                }
                Rule::DateRelative => {
                    compiled.each_match(text, reference, |start, end| {
                        let last = text
                            .get(start..end)
                            .unwrap_or("")
                            .rsplit([' ', '-', '\t', '\n'])
                            .next()
                            .unwrap_or("");
                        // Lower-case "may"/"march" are verbs.
                        if last == "may" || last == "march" {
                            return;
                        }
                        push(out, start, end, PhiKind::Date, Priority::DATE);
                    });
                }
                Rule::Address | Rule::StreetName | Rule::PoBox => {
                    for m in re.find_iter(text) {
                        let s = m.as_str().trim_end_matches([',', ' ']);
                        push(
                            out,
                            m.start(),
                            m.start() + s.len(),
                            PhiKind::Address,
                            Priority::ADDRESS,
                        );
                    }
                }
                Rule::CityState => {
                    for c in re.captures_iter(text) {
                        if let Some(city) = c.name("c") {
                            push(
                                out,
                                city.start(),
                                city.end(),
                                PhiKind::City,
                                Priority::PLACE,
                            );
                        }
                        if let Some(z) = c.name("z") {
                            push(out, z.start(), z.end(), PhiKind::Zip, Priority::PLACE);
                        }
                    }
                }
                Rule::County => {
                    for m in re.find_iter(text) {
                        push(out, m.start(), m.end(), PhiKind::County, Priority::PLACE);
                    }
                }
                Rule::PhoneIntl => {
                    for m in re.find_iter(text) {
                        let s = m.as_str();
                        let digits = s.bytes().filter(u8::is_ascii_digit).count();
                        let marked = s.starts_with('+') || s.contains('(');
                        if !(8..=15).contains(&digits)
                            || (!marked && digits < 9)
                            || followed_by_unit(text, m.end())
                        {
                            continue;
                        }
                        let kind = if fax_context(text, m.start()) {
                            PhiKind::Fax
                        } else {
                            PhiKind::Phone
                        };
                        push(out, m.start(), m.end(), kind, Priority::SHAPED_ID);
                    }
                }
                Rule::AddressUnit => {
                    for m in re.find_iter(text) {
                        push(out, m.start(), m.end(), PhiKind::Address, Priority::ADDRESS);
                    }
                }
                Rule::StreetIntl => {
                    for c in re.captures_iter(text) {
                        if let Some(a) = c.name("a") {
                            push(out, a.start(), a.end(), PhiKind::Address, Priority::ADDRESS);
                        }
                    }
                }
                Rule::AddressNumbered => {
                    for c in re.captures_iter(text) {
                        // Function words do not occur in street names ("5 Musicians Of The 70s").
                        if let Some(a) = c.name("a")
                            && !followed_by_unit(text, a.end())
                            && !a.as_str().split_whitespace().any(|w| {
                                [
                                    "of", "the", "and", "for", "to", "in", "on", "at", "by",
                                    "with", "from", "a", "an",
                                ]
                                .iter()
                                .any(|f| w.eq_ignore_ascii_case(f))
                            })
                        {
                            push(out, a.start(), a.end(), PhiKind::Address, Priority::ADDRESS);
                        }
                    }
                }
                Rule::Vin => {
                    for m in re.find_iter(text) {
                        let s = m.as_str();
                        if s.bytes().any(|b| b.is_ascii_digit())
                            && s.bytes().any(|b| b.is_ascii_alphabetic())
                        {
                            push(
                                out,
                                m.start(),
                                m.end(),
                                PhiKind::Vehicle,
                                Priority::LABELLED_ID,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Month words match case-insensitively (notes are often lower-case), but a lower-case "may"
/// or "march" is usually a verb: it is a month only with an ordinal suffix or a year.
fn month_word_ok(s: &str) -> bool {
    let first = s
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    if first == "may" || first == "march" || first == "mar" {
        let digits = s.bytes().filter(u8::is_ascii_digit).count();
        let lower = s.to_ascii_lowercase();
        return digits >= 4
            || s.contains('\'')
            || ["st", "nd", "rd", "th"]
                .iter()
                .any(|suf| lower.trim_end().ends_with(suf));
    }
    true
}

/// Whether `v` is a numeric date: `m/d/yy[yy]`, `m-d-yyyy` or `yyyy-mm-dd`, with month and
/// day in range.
fn looks_like_date(v: &str) -> bool {
    let parts: Vec<&str> = v.split(['/', '-']).collect();
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match parts[..] {
        [y, m, d] if y.len() == 4 && all_digits(y) => month_day_ok(m, d),
        [m, d, y] if all_digits(y) && matches!(y.len(), 2 | 4) => month_day_ok(m, d),
        _ => false,
    }
}

fn time_ok(text: &str, start: usize, end: usize) -> bool {
    let s = text.get(start..end).unwrap_or("");
    if s.contains(':') {
        let Some((h, rest)) = s.split_once(':') else {
            return false;
        };
        let m: String = rest.chars().take(2).collect();
        return h.trim().parse::<u32>().is_ok_and(|h| h < 24)
            && m.parse::<u32>().is_ok_and(|m| m < 60);
    }
    // "3 pm": hour 1-12.
    let h: String = s.chars().take_while(char::is_ascii_digit).collect();
    h.parse::<u32>().is_ok_and(|h| (1..=12).contains(&h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, PhiKind)> {
        let r = PatternRecognizer::new().unwrap();
        let mut out = Vec::new();
        r.recognize(text, &mut out);
        let spans = crate::engine::resolve(text, out);
        spans
            .iter()
            .map(|s| (text[s.start..s.end].to_owned(), s.kind))
            .collect()
    }

    #[test]
    fn patterns_compile() {
        PatternRecognizer::new().unwrap();
    }

    /// Deterministic generated text around the fast paths' words: month and relative-date
    /// words in every case, ordinals, years, separators, non-ASCII letters, and pieces of the
    /// rare rules' shapes (emails, phones, IPs, dates, ages, PO boxes, counties, VINs).
    fn generated(n: usize) -> Vec<String> {
        const TOKENS: &[&str] = &[
            "jan",
            "Jan",
            "JANUARY",
            "feb",
            "February",
            "mar",
            "March",
            "march",
            "MAR",
            "apr",
            "April",
            "may",
            "May",
            "MAY",
            "jun",
            "June",
            "jul",
            "July",
            "aug",
            "August",
            "sep",
            "Sept",
            "September",
            "oct",
            "October",
            "nov",
            "November",
            "dec",
            "December",
            "decreased",
            "summary",
            "marked",
            "primary",
            "octreotide",
            "last",
            "next",
            "this",
            "early",
            "late",
            "mid",
            "past",
            "Monday",
            "friday",
            "of",
            "the",
            "3",
            "14",
            "14th",
            "1st",
            "22nd",
            "3rd",
            "31",
            "2021",
            "1999",
            "'23",
            "'9",
            "12345",
            ".",
            ",",
            ", ",
            " ",
            "  ",
            "\t",
            "\n",
            "-",
            "/",
            ":",
            "é",
            "Ünter",
            "straße",
            "中",
            "x",
            "_",
            "a1",
            "5mar",
            "mar5",
            "MRN",
            "pm",
            "a.b@x.com",
            "@",
            "123-45-6789",
            "555-1234",
            "(555) ",
            "192.168.1.1",
            "fe80::1",
            "::",
            "2021-03-04",
            "12/31/2020",
            "3/14",
            "10:30",
            "am",
            "aged",
            "years",
            "yo",
            "92",
            "po box",
            "P.O. Box",
            "County",
            "Springfield, IL",
            " 62704",
            "1HGCM82633A004352",
            "apt",
            "#",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|_| {
                let len = 1 + next() % 24;
                let mut s = String::new();
                for _ in 0..len {
                    let t = TOKENS[(next() % TOKENS.len() as u64) as usize];
                    s.push_str(t);
                    if next() % 3 == 0 {
                        s.push(' ');
                    }
                }
                s
            })
            .collect()
    }

    fn shared_corpus() -> Option<Vec<String>> {
        let dir = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/notes"
        ));
        let mut texts = Vec::new();
        for (file, fmt) in [
            ("asq-phi-dev.txt", crate::eval::CorpusFormat::Asq),
            (
                "presidio-synth-v2.json",
                crate::eval::CorpusFormat::Presidio,
            ),
        ] {
            let data = std::fs::read_to_string(dir.join(file)).ok()?;
            let corpus = crate::eval::load_corpus(&data, fmt).unwrap();
            texts.extend(corpus.entries.into_iter().map(|e| e.text));
        }
        Some(texts)
    }

    #[test]
    fn fast_paths_match_the_reference() {
        let r = PatternRecognizer::new().unwrap();
        let mut texts = generated(20_000);
        match shared_corpus() {
            Some(c) => {
                assert!(c.len() > 1000, "corpus notes: {}", c.len());
                texts.extend(c);
            }
            None => println!("shared corpora absent: comparing on generated text only"),
        }
        let mut plain_rules = 0;
        let mut matches = 0;
        let mut rare_seen = vec![false; r.rare.len()];
        for text in &texts {
            // Every prefilter-free rule: the same matches as its prefiltered regex.
            for c in r.rules.iter().filter(|c| c.plain.is_some()) {
                let mut fast = Vec::new();
                c.each_match(text, false, |s, e| fast.push((s, e)));
                let reference: Vec<(usize, usize)> =
                    c.re.find_iter(text).map(|m| (m.start(), m.end())).collect();
                matches += reference.len();
                assert_eq!(fast, reference, "{} on {text:?}", rule_name(c.rule));
            }
            // Every rare-set rule: reported by the set exactly when it matches somewhere.
            let set = r.rare.matches(text);
            for i in set.iter() {
                if let Some(seen) = rare_seen.get_mut(i) {
                    *seen = true;
                }
            }
            for c in &r.rules {
                if let Some(i) = c.rare_index {
                    assert_eq!(
                        set.matched(i),
                        c.re.is_match(text),
                        "{} on {text:?}",
                        rule_name(c.rule)
                    );
                }
            }
            // And the whole recogniser: the same candidates (span, label, priority, order).
            let mut fast = Vec::new();
            r.recognize_with(text, &mut fast, false);
            let mut reference = Vec::new();
            r.recognize_with(text, &mut reference, true);
            assert_eq!(fast, reference, "on {text:?}");
        }
        plain_rules += r.rules.iter().filter(|c| c.plain.is_some()).count();
        assert_eq!(plain_rules, 3);
        assert_eq!(r.rare.len(), 21);
        let seen = rare_seen.iter().filter(|s| **s).count();
        println!("rare rules seen matching: {seen} of 21");
        assert!(seen >= 15, "rare rules exercised: {seen}");
        assert!(matches > 1000, "too few matches exercised: {matches}");
    }

    #[test]
    fn dates() {
        for d in [
            "3/14",
            "14-Mar-2019",
            "March 14th",
            "March 5th, 2021",
            "2023-04-25",
            "09/21/2024",
            "04/23/24",
            "Jan 1st '23",
            "Nov 5 2021",
            "14 March 2019",
            "March 2021",
        ] {
            let text = format!("seen on {d} today");
            let k = kinds(&text);
            assert_eq!(k, vec![(d.to_owned(), PhiKind::Date)], "{d}");
        }
        assert_eq!(
            kinds("on the 14th."),
            vec![("14th".to_owned(), PhiKind::Date)]
        );
        assert!(kinds("the 4th ventricle").is_empty());
        assert!(kinds("strength 5/5 bilaterally").is_empty());
        // A partial date ends a sentence; a decimal after a slash is a dose.
        assert_eq!(
            kinds("Discharged to home on 5/11. Take 1/2.5 tablets"),
            vec![("5/11".to_owned(), PhiKind::Date)]
        );
    }

    #[test]
    fn a_date_after_a_generic_label_is_a_date() {
        // "encounter" labels an identifier, but not when a date follows it.
        assert_eq!(
            kinds("Telephone encounter 08/17/2020. Visit 2021-11-10, encounter 12345678"),
            vec![
                ("08/17/2020".to_owned(), PhiKind::Date),
                ("2021-11-10".to_owned(), PhiKind::Date),
                ("encounter 12345678".to_owned(), PhiKind::Id),
            ]
        );
    }

    #[test]
    fn ssn_invalid_looking_kept() {
        for s in ["123-45-6789", "987-65-4321", "000-00-0000", "999-99-9999"] {
            assert_eq!(
                kinds(&format!("SSN {s}")),
                vec![(s.to_owned(), PhiKind::Ssn)]
            );
        }
    }

    #[test]
    fn ids_and_phones() {
        assert_eq!(
            kinds("MRN: S-987654"),
            vec![("S-987654".to_owned(), PhiKind::Mrn)]
        );
        assert_eq!(
            kinds("plan HMO-234567 ok"),
            vec![("HMO-234567".to_owned(), PhiKind::HealthPlan)]
        );
        assert_eq!(
            kinds("id XYZ-987654 ok"),
            vec![("XYZ-987654".to_owned(), PhiKind::Id)]
        );
        assert_eq!(
            kinds("call (555) 123-4567"),
            vec![("(555) 123-4567".to_owned(), PhiKind::Phone)]
        );
        assert_eq!(
            kinds("fax: 555-123-4567"),
            vec![("555-123-4567".to_owned(), PhiKind::Fax)]
        );
        assert!(kinds("COVID-19 and SGLT2 and HbA1c 7.5 in 2021, 150 mg").is_empty());
    }

    #[test]
    fn generic_id_labels_join_the_span() {
        let id = |t: &str| vec![(t.to_owned(), PhiKind::Id)];
        assert_eq!(
            kinds("seen (Patient ID: QX7731)."),
            id("Patient ID: QX7731")
        );
        assert_eq!(kinds("pt id #LM-40213 today"), id("pt id #LM-40213"));
        assert_eq!(kinds("under Site ID 40412"), id("Site ID 40412"));
        assert_eq!(kinds("Study No. 2019-114"), id("Study No. 2019-114"));
        assert_eq!(
            kinds("participant number: P-3318"),
            id("participant number: P-3318")
        );
        assert_eq!(kinds("see case #TR-55120 notes"), id("case #TR-55120"));
        assert_eq!(kinds("encounter # 77120934"), id("encounter # 77120934"));
        // A verb between label and value stays, and so does a bare "ID".
        assert_eq!(kinds("the case number is 5521907"), id("5521907"));
        assert_eq!(kinds("insurer ID: 4410923"), id("4410923"));
        // Labels naming a Safe Harbor category keep the value-only span.
        assert_eq!(
            kinds("MRN: 4410923"),
            vec![("4410923".to_owned(), PhiKind::Mrn)]
        );
        assert_eq!(
            kinds("member ID: W-441092"),
            vec![("W-441092".to_owned(), PhiKind::HealthPlan)]
        );
        // A stronger shape keeps the value; the label still goes.
        assert_eq!(
            kinds("patient ID: 123-45-6789"),
            vec![
                ("patient ID".to_owned(), PhiKind::Id),
                ("123-45-6789".to_owned(), PhiKind::Ssn)
            ]
        );
        // The word alone is no label.
        assert!(kinds("in study 2 and site 3").is_empty());
        assert!(kinds("in this case 3 patients").is_empty());
    }

    #[test]
    fn ages_over_89_only() {
        assert_eq!(
            kinds("a 92-year-old man"),
            vec![("92".to_owned(), PhiKind::Age)]
        );
        assert!(kinds("a 72-year-old man").is_empty());
    }

    #[test]
    fn network() {
        assert_eq!(
            kinds("mail a.b@example.com now"),
            vec![("a.b@example.com".to_owned(), PhiKind::Email)]
        );
        assert_eq!(
            kinds("see https://x.org/a."),
            vec![("https://x.org/a".to_owned(), PhiKind::Url)]
        );
        assert_eq!(
            kinds("ip 192.168.1.1"),
            vec![("192.168.1.1".to_owned(), PhiKind::Ip)]
        );
    }

    #[test]
    fn address() {
        let k = kinds("lives at 123 Main St., Springfield, IL 62704 now");
        assert_eq!(
            k,
            vec![(
                "123 Main St., Springfield, IL 62704".to_owned(),
                PhiKind::Address
            )]
        );
    }
}
