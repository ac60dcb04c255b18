//! Known identifiers: the patient's own names, ids, phones, emails, address parts and dates
//! from structured data, searched for explicitly (as NLM Scrubber uses the record header).
//!
//! Every value is expanded into spelling variants, and all variants go into one aho-corasick
//! automaton (ASCII case-insensitive, leftmost-longest), compiled once per patient and kept in a
//! small per-thread cache; matches must sit on word boundaries. Phones and ids are also matched on their digits with any separators.
//! Variants:
//! * names: each part with and without a numeric suffix (`Carolee951`, `Carolee`), the full
//!   name, `Last, First`, `First Last`, `F. Last`, hyphen and apostrophe parts;
//! * ids: as written and with separators removed;
//! * phones: the digits in the usual layouts (`555-123-4567`, `(555) 123-4567`, `555.123.4567`,
//!   `5551234567`, `123-4567`);
//! * addresses: the full line, the line without its unit, street number + street name, and
//!   the zip code;
//! * dates (ISO `yyyy-mm-dd`): ISO, `m/d/yyyy`, `mm/dd/yyyy`, `m/d/yy`, `m-d-yyyy`,
//!   `Month d, yyyy`, `Mon d, yyyy`, `d Month yyyy`, `dd-Mon-yyyy`, `yyyymmdd`, `Month d`,
//!   `m/d`.

use std::cell::RefCell;
use std::rc::Rc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use crate::engine::{Candidate, Priority};
use crate::{KnownIdentifiers, PhiKind, Span};

/// English month names, January first; the date surrogates parse and write them too
/// (matching case-insensitively), so the crate has one table.
pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn strip_digits(s: &str) -> &str {
    s.trim_end_matches(|c: char| c.is_ascii_digit())
}

fn name_variants(name: &str, out: &mut Vec<(String, PhiKind)>) {
    let parts: Vec<&str> = name
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            !matches!(
                p.trim_end_matches('.').to_ascii_lowercase().as_str(),
                "mr" | "mrs" | "ms" | "dr" | "miss" | "jr" | "sr" | "ii" | "iii"
            )
        })
        .collect();
    let clean: Vec<&str> = parts
        .iter()
        .map(|p| strip_digits(p))
        .filter(|p| p.chars().count() >= 2)
        .collect();
    for p in parts.iter().chain(clean.iter()) {
        if p.chars().count() >= 2 {
            out.push(((*p).to_owned(), PhiKind::Name));
            for piece in p.split(['-', '\'']) {
                if piece.chars().count() >= 3 {
                    out.push((piece.to_owned(), PhiKind::Name));
                }
            }
        }
    }
    for set in [&parts, &clean] {
        if set.len() >= 2 {
            out.push((set.join(" "), PhiKind::Name));
            if let (Some(first), Some(last)) = (set.first(), set.last()) {
                out.push((format!("{last}, {first}"), PhiKind::Name));
                out.push((format!("{first} {last}"), PhiKind::Name));
                out.push((format!("{last} {first}"), PhiKind::Name));
                if let Some(initial) = first.chars().next() {
                    out.push((format!("{initial}. {last}"), PhiKind::Name));
                    out.push((format!("{initial} {last}"), PhiKind::Name));
                }
            }
        }
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn phone_variants(phone: &str, out: &mut Vec<(String, PhiKind)>) {
    let d = digits(phone);
    let d = if d.len() == 11 && d.starts_with('1') {
        d.get(1..).unwrap_or("").to_owned()
    } else {
        d
    };
    if d.len() == 10 {
        let (a, rest) = d.split_at(3);
        let (b, c) = rest.split_at(3);
        for v in [
            format!("{a}-{b}-{c}"),
            format!("({a}) {b}-{c}"),
            format!("({a}){b}-{c}"),
            format!("{a}.{b}.{c}"),
            format!("{a} {b} {c}"),
            format!("{a}/{b}-{c}"),
            d.clone(),
            format!("{b}-{c}"),
        ] {
            out.push((v, PhiKind::Phone));
        }
    } else if d.len() >= 7 {
        out.push((d, PhiKind::Phone));
    }
    if phone.trim().chars().count() >= 4 {
        out.push((phone.trim().to_owned(), PhiKind::Phone));
    }
}

fn date_variants(iso: &str, out: &mut Vec<(String, PhiKind)>) {
    let mut it = iso.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (it.next(), it.next(), it.next()) else {
        return;
    };
    let d = d.get(..2).unwrap_or(d);
    let (Ok(yi), Ok(mi), Ok(di)) = (y.parse::<u32>(), m.parse::<usize>(), d.parse::<u32>()) else {
        return;
    };
    let Some(month) = mi.checked_sub(1).and_then(|i| MONTHS.get(i)) else {
        return;
    };
    let mon = month.get(..3).unwrap_or(month);
    let yy = yi % 100;
    for v in [
        format!("{y}-{m}-{d}"),
        format!("{mi}/{di}/{yi}"),
        format!("{mi:02}/{di:02}/{yi}"),
        format!("{mi}/{di}/{yy:02}"),
        format!("{mi:02}/{di:02}/{yy:02}"),
        format!("{mi}-{di}-{yi}"),
        format!("{mi:02}-{di:02}-{yi}"),
        format!("{month} {di}, {yi}"),
        format!("{month} {di} {yi}"),
        format!("{mon} {di}, {yi}"),
        format!("{mon} {di} {yi}"),
        format!("{mon}. {di}, {yi}"),
        format!("{di} {month} {yi}"),
        format!("{di} {mon} {yi}"),
        format!("{di:02}-{mon}-{yi}"),
        format!("{di}-{mon}-{yi}"),
        format!("{y}{m}{d}"),
        format!("{y}/{m}/{d}"),
        format!("{month} {di}"),
        format!("{mon} {di}"),
        format!("{mi}/{di}"),
        format!("{mi:02}/{di:02}"),
    ] {
        out.push((v, PhiKind::Date));
    }
    for suffix in ["st", "nd", "rd", "th"] {
        out.push((format!("{month} {di}{suffix}, {yi}"), PhiKind::Date));
        out.push((format!("{month} {di}{suffix}"), PhiKind::Date));
    }
}

fn address_variants(addr: &str, out: &mut Vec<(String, PhiKind)>) {
    let a = addr.trim();
    if a.chars().count() >= 4 {
        out.push((a.to_owned(), PhiKind::Address));
    }
    let words: Vec<&str> = a.split_whitespace().collect();
    // Without a trailing unit ("Unit 61", "Apt 18").
    if let Some(pos) = words.iter().position(|w| {
        matches!(
            w.to_ascii_lowercase().trim_end_matches('.'),
            "unit" | "apt" | "suite" | "ste" | "#"
        )
    }) {
        let head = words.get(..pos).unwrap_or(&[]).join(" ");
        if head.chars().count() >= 4 {
            out.push((head, PhiKind::Address));
        }
    }
    // Street name words alone (but not the suffix or number).
    if words
        .first()
        .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
        && let Some(street) = words.get(1)
        && street.chars().count() >= 4
    {
        out.push(((*street).to_owned(), PhiKind::Address));
    }
    if words.len() == 1 && a.chars().all(|c| c.is_ascii_digit() || c == '-') && a.len() >= 5 {
        out.push((a.to_owned(), PhiKind::Zip));
    }
}

/// The spelling variants of a patient's known identifiers, compiled into one automaton.
struct Compiled {
    ac: AhoCorasick,
    kinds: Vec<PhiKind>,
}

/// How many patients' compiled identifiers each thread keeps (a document usually holds one
/// patient; a few cover interleaved records).
const CACHE_SIZE: usize = 4;

thread_local! {
    /// Recently compiled known identifiers, most recent last. Compiling the variants of one
    /// patient costs far more than searching a note, and callers pass the same patient's
    /// identifiers for every text of the record, so they are compiled once and reused while
    /// the identifiers stay equal.
    static CACHE: RefCell<Vec<(KnownIdentifiers, Rc<Compiled>)>> = const { RefCell::new(Vec::new()) };
}

fn same(a: &KnownIdentifiers, b: &KnownIdentifiers) -> bool {
    a.names == b.names
        && a.ids == b.ids
        && a.phones == b.phones
        && a.emails == b.emails
        && a.addresses == b.addresses
        && a.cities == b.cities
        && a.dates == b.dates
}

fn compile(known: &KnownIdentifiers) -> Option<Compiled> {
    let mut variants: Vec<(String, PhiKind)> = Vec::new();
    for n in &known.names {
        name_variants(n, &mut variants);
    }
    for id in &known.ids {
        let t = id.trim();
        if t.chars().count() >= 3 {
            variants.push((t.to_owned(), PhiKind::Id));
            let compact: String = t.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            if compact.len() >= 4 && compact != t {
                variants.push((compact, PhiKind::Id));
            }
        }
    }
    for p in &known.phones {
        phone_variants(p, &mut variants);
    }
    for e in &known.emails {
        if e.contains('@') {
            variants.push((e.trim().to_owned(), PhiKind::Email));
        }
    }
    for a in &known.addresses {
        address_variants(a, &mut variants);
    }
    for c in &known.cities {
        if c.trim().chars().count() >= 3 {
            variants.push((c.trim().to_owned(), PhiKind::City));
        }
    }
    for d in &known.dates {
        date_variants(d, &mut variants);
    }
    variants.retain(|(v, _)| !v.trim().is_empty());
    if variants.is_empty() {
        return None;
    }
    // A contiguous NFA: built in a fraction of a DFA's time (a compile happens for every
    // patient whose note is read, and interleaved records compile often), and a note is
    // searched once or twice, so the DFA's faster search never pays for its construction.
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(variants.iter().map(|(v, _)| v.as_str()))
        .ok()?;
    Some(Compiled {
        ac,
        kinds: variants.into_iter().map(|(_, k)| k).collect(),
    })
}

/// The compiled identifiers of `known`, from the thread's cache or compiled now.
fn compiled(known: &KnownIdentifiers) -> Option<Rc<Compiled>> {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(i) = cache.iter().position(|(k, _)| same(k, known)) {
            let entry = cache.remove(i);
            let c = entry.1.clone();
            cache.push(entry);
            return Some(c);
        }
        let c = Rc::new(compile(known)?);
        if cache.len() >= CACHE_SIZE {
            cache.remove(0);
        }
        cache.push((known.clone(), c.clone()));
        Some(c)
    })
}

/// Adds candidates for the known identifiers found in `text`.
pub(crate) fn recognize(known: &KnownIdentifiers, text: &str, out: &mut Vec<Candidate>) {
    let Some(compiled) = compiled(known) else {
        return;
    };
    let Compiled { ac, kinds } = &*compiled;
    for m in ac.find_iter(text) {
        let (s, e) = (m.start(), m.end());
        let before_ok = text
            .get(..s)
            .and_then(|b| b.chars().next_back())
            .is_none_or(|c| !c.is_alphanumeric());
        // A numeric suffix may follow a name variant without digits ("Carolee" in "Carolee951").
        let after = text.get(e..).and_then(|a| a.chars().next());
        let Some(kind) = kinds.get(m.pattern().as_usize()) else {
            continue;
        };
        let mut end = e;
        let after_ok = match after {
            None => true,
            Some(c) if !c.is_alphanumeric() => true,
            Some(c) if c.is_ascii_digit() && *kind == PhiKind::Name => {
                let rest = text.get(e..).unwrap_or("");
                let nd = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                end = e + nd;
                rest.get(nd..)
                    .and_then(|r| r.chars().next())
                    .is_none_or(|c| !c.is_alphanumeric())
            }
            _ => false,
        };
        if before_ok && after_ok {
            out.push(Candidate {
                span: Span {
                    start: s,
                    end,
                    kind: *kind,
                },
                priority: Priority::KNOWN,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, KnownIdentifiers};

    #[test]
    fn known_variants_found() {
        let known = KnownIdentifiers {
            names: vec!["Carolee951 Zzyzxq123".into()],
            phones: vec!["555-355-9196".into()],
            dates: vec!["1960-03-02".into()],
            addresses: vec!["858 Sawayn Parade Unit 61".into()],
            ..KnownIdentifiers::default()
        };
        let text = "CAROLEE ZZYZXQ (zzyzxq, carolee951) born March 2, 1960, tel 5553559196, 858 Sawayn Parade.";
        let out = Engine::builtin()
            .redact(text, Some(&known), crate::Mode::Tag, None)
            .text;
        for leaked in ["carolee", "zzyzxq", "1960", "555", "sawayn"] {
            assert!(
                !out.to_lowercase().contains(leaked),
                "{leaked} leaked: {out}"
            );
        }
    }
}
