//! The engine: runs the recognisers and resolves overlapping candidates.

use std::sync::OnceLock;

use crate::dict::Dicts;
use crate::names::NameRecognizer;
use crate::rules::PatternRecognizer;
use crate::{KnownIdentifiers, Mode, PhiKind, Redacted, Span, SurrogateContext, TextError, known};

/// How strongly a candidate claims its text. On overlap the higher priority wins; see the
/// table of the built-in levels on the associated constants (highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// The patient's own identifiers from structured data.
    pub const KNOWN: Priority = Priority(100);
    /// Emails, URLs and IP addresses (self-delimiting, unmistakable).
    pub const NETWORK: Priority = Priority(90);
    /// SSN-shaped numbers.
    pub const SSN: Priority = Priority(85);
    /// Phone and fax numbers.
    pub const PHONE: Priority = Priority(80);
    /// Dates and times.
    pub const DATE: Priority = Priority(75);
    /// Identifiers announced by a label (`MRN:`, `Insurance #`).
    pub const LABELLED_ID: Priority = Priority(70);
    /// Street addresses.
    pub const ADDRESS: Priority = Priority(65);
    /// Ages over 89.
    pub const AGE: Priority = Priority(60);
    /// Identifiers recognised by shape alone (`HMO-234567`, long digit runs).
    pub const SHAPED_ID: Priority = Priority(50);
    /// Hospital and facility names.
    pub const FACILITY: Priority = Priority(45);
    /// Person names.
    pub const NAME: Priority = Priority(40);
    /// Cities, counties, zips and other places.
    pub const PLACE: Priority = Priority(35);
    /// A statistical model's guess (below every rule).
    pub const MODEL: Priority = Priority(20);
}

/// A span a recogniser proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The proposed span (byte offsets on character boundaries).
    pub span: Span,
    /// How strongly it is claimed.
    pub priority: Priority,
}

/// Something that finds identifiers in text: the built-in pattern and gazetteer recognisers,
/// or later a statistical NER model (an ONNX token classifier, say) added with
/// [`Engine::with_recognizer`]. Implementations must not panic and must return spans on
/// character boundaries within `text`; the engine discards any that are not.
pub trait Recognizer: Send + Sync + std::fmt::Debug {
    /// A short name for reports.
    fn name(&self) -> &'static str;
    /// Appends candidates found in `text` to `out`.
    fn recognize(&self, text: &str, out: &mut Vec<Candidate>);
}

/// The de-identification engine: built once, shared (`Send + Sync`).
#[derive(Debug)]
pub struct Engine {
    pub(crate) dicts: &'static Dicts,
    patterns: PatternRecognizer,
    names: NameRecognizer,
    extra: Vec<Box<dyn Recognizer>>,
}

static DICTS: OnceLock<Result<Dicts, String>> = OnceLock::new();
static BUILTIN: OnceLock<Engine> = OnceLock::new();

pub(crate) fn dicts() -> Result<&'static Dicts, TextError> {
    match DICTS.get_or_init(|| Dicts::build().map_err(|e| e.to_string())) {
        Ok(d) => Ok(d),
        Err(_) => Err(TextError::Pattern { name: "gazetteer" }),
    }
}

impl Engine {
    /// Whether `word` (any case) is an English dictionary word or an inflection of one ("bell",
    /// "green", "treated"). Callers use it to tell a surname that is also a word ("Bell") from
    /// the word in running text ("call bell").
    pub fn is_dictionary_word(&self, word: &str) -> bool {
        let lower = word.to_lowercase();
        self.dicts.flags(&lower) & (crate::dict::WORD | crate::dict::ENGLISH | crate::dict::COMMON)
            != 0
    }

    /// Builds an engine with the built-in recognisers and dictionaries.
    pub fn new() -> Result<Engine, TextError> {
        let dicts = dicts()?;
        Ok(Engine {
            dicts,
            patterns: PatternRecognizer::new()?,
            names: NameRecognizer::new(dicts),
            extra: Vec::new(),
        })
    }

    /// The shared built-in engine, built on first use.
    ///
    /// The built-in patterns and lists are compiled into the binary and covered by tests, so
    /// building them cannot fail at run time short of a bug.
    #[expect(
        clippy::panic,
        reason = "built-in patterns are constants checked by tests"
    )]
    pub fn builtin() -> &'static Engine {
        BUILTIN.get_or_init(|| match Engine::new() {
            Ok(e) => e,
            // INVARIANT: the embedded patterns and lists compile (unit-tested).
            Err(e) => panic!("airlock-text built-in engine failed to build: {e}"),
        })
    }

    /// Adds a recogniser (a statistical model, say) whose candidates join the built-in ones.
    pub fn with_recognizer(mut self, r: Box<dyn Recognizer>) -> Engine {
        self.extra.push(r);
        self
    }

    /// Finds identifiers: byte spans, sorted, non-overlapping, on character boundaries.
    pub fn find(&self, text: &str, known: Option<&KnownIdentifiers>) -> Vec<Span> {
        let mut cands = Vec::new();
        self.patterns.recognize(text, &mut cands);
        self.names.recognize(text, &mut cands);
        if let Some(k) = known {
            known::recognize(k, text, &mut cands);
        }
        for r in &self.extra {
            r.recognize(text, &mut cands);
        }
        merge_places(text, resolve(text, cands))
    }

    /// Finds identifiers and rewrites them in the chosen mode. `Surrogate` without a context
    /// falls back to `Tag`.
    pub fn redact(
        &self,
        text: &str,
        known: Option<&KnownIdentifiers>,
        mode: Mode,
        ctx: Option<&SurrogateContext<'_>>,
    ) -> Redacted {
        let spans = self.find(text, known);
        let out = crate::surrogate::render(self.dicts, text, &spans, mode, ctx);
        Redacted { text: out, spans }
    }
}

/// Resolves overlapping candidates: highest priority first, then longest, then earliest; a
/// candidate overlapping already accepted spans keeps its non-overlapping parts that contain a
/// letter or digit.
pub(crate) fn resolve(text: &str, mut cands: Vec<Candidate>) -> Vec<Span> {
    cands.retain(|c| {
        c.span.start < c.span.end
            && c.span.end <= text.len()
            && text.is_char_boundary(c.span.start)
            && text.is_char_boundary(c.span.end)
    });
    cands.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then((b.span.end - b.span.start).cmp(&(a.span.end - a.span.start)))
            .then(a.span.start.cmp(&b.span.start))
    });
    // Accepted spans by start; they never overlap (a B-tree keeps this linearithmic on
    // documents with tens of thousands of spans).
    let mut accepted: std::collections::BTreeMap<usize, Span> = std::collections::BTreeMap::new();
    let mut pending: Vec<Span> = Vec::new();
    for c in cands {
        pending.clear();
        pending.push(c.span);
        while let Some(s) = pending.pop() {
            // The last accepted span starting before `s` ends is the only one that can overlap
            // the right end of `s`; the left piece is checked again on its own.
            match accepted.range(..s.end).next_back().map(|(_, a)| *a) {
                Some(a) if a.end > s.start => {
                    if s.start < a.start {
                        push_piece(text, &mut pending, s.start, a.start, s.kind);
                    }
                    if a.end < s.end {
                        push_piece(text, &mut pending, a.end, s.end, s.kind);
                    }
                }
                _ => {
                    accepted.insert(s.start, s);
                }
            }
        }
    }
    accepted.into_values().collect()
}

/// Two-letter U.S. state and territory codes.
const STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "PR",
];

fn is_place(k: PhiKind) -> bool {
    matches!(
        k,
        PhiKind::Facility | PhiKind::City | PhiKind::Address | PhiKind::County | PhiKind::Location
    )
}

/// Joins a place with the city that locates it ("St. Joseph's Hospital in Phoenix",
/// "Valley Clinic, New York") and takes a following state code into the place ("Sunnyvale, CA"):
/// the unit is one location. The result stays sorted and non-overlapping.
fn merge_places(text: &str, spans: Vec<Span>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        if let Some(last) = out.last_mut() {
            let gap = text.get(last.end..s.start).unwrap_or("x");
            // An address continues over line breaks and commas into its unit, city and zip.
            let address_run = last.kind == PhiKind::Address
                && matches!(
                    s.kind,
                    PhiKind::Address | PhiKind::City | PhiKind::Zip | PhiKind::Id | PhiKind::Name
                )
                && gap.len() <= 6
                && gap.chars().all(|c| c.is_whitespace() || c == ',');
            if address_run
                || (is_place(last.kind)
                    && matches!(s.kind, PhiKind::City | PhiKind::Zip)
                    && matches!(gap, " in " | ", " | " " | ", in "))
            {
                last.end = s.end;
                continue;
            }
        }
        out.push(s);
    }
    let n = out.len();
    for i in 0..n {
        let next_start = out.get(i + 1).map_or(text.len(), |s| s.start);
        let Some(s) = out.get_mut(i) else { continue };
        if !is_place(s.kind) {
            continue;
        }
        let rest = text.get(s.end..next_start).unwrap_or("");
        let Some(after) = rest.strip_prefix(", ").or_else(|| rest.strip_prefix(' ')) else {
            continue;
        };
        let code = after.get(..2).unwrap_or("");
        let boundary = after
            .get(2..)
            .and_then(|r| r.chars().next())
            .is_none_or(|c| !c.is_alphanumeric());
        if boundary && STATES.contains(&code) {
            s.end += rest.len() - after.len() + 2;
        }
    }
    out
}

fn push_piece(text: &str, pending: &mut Vec<Span>, start: usize, end: usize, kind: PhiKind) {
    let Some(piece) = text.get(start..end) else {
        return;
    };
    // Trim separators so a piece is a clean word run.
    let lead = piece.len()
        - piece
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .len();
    let trail = piece.len() - piece.trim_end_matches(|c: char| !c.is_alphanumeric()).len();
    let (s, e) = (start + lead, end.saturating_sub(trail));
    // A leftover of a number-shaped identifier without any digit is not an identifier.
    let numeric = !matches!(
        kind,
        PhiKind::Name
            | PhiKind::City
            | PhiKind::County
            | PhiKind::State
            | PhiKind::Facility
            | PhiKind::Location
            | PhiKind::Address
            | PhiKind::Date
            | PhiKind::Email
            | PhiKind::Url
    );
    if numeric
        && !text
            .get(s..e)
            .is_some_and(|p| p.bytes().any(|b| b.is_ascii_digit()))
    {
        return;
    }
    if s < e {
        pending.push(Span {
            start: s,
            end: e,
            kind,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(start: usize, end: usize, kind: PhiKind, p: Priority) -> Candidate {
        Candidate {
            span: Span { start, end, kind },
            priority: p,
        }
    }

    #[test]
    fn higher_priority_wins_and_loser_is_trimmed() {
        let text = "aaaa bbbb cccc dddd";
        let spans = resolve(
            text,
            vec![
                c(0, 14, PhiKind::Name, Priority::NAME),
                c(5, 9, PhiKind::Date, Priority::DATE),
            ],
        );
        assert_eq!(
            spans,
            vec![
                Span {
                    start: 0,
                    end: 4,
                    kind: PhiKind::Name
                },
                Span {
                    start: 5,
                    end: 9,
                    kind: PhiKind::Date
                },
                Span {
                    start: 10,
                    end: 14,
                    kind: PhiKind::Name
                },
            ]
        );
    }

    #[test]
    fn builtin_builds() {
        let e = Engine::builtin();
        assert!(e.find("", None).is_empty());
    }
}
