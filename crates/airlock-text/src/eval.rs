//! The evaluator behind `airlock deid eval`: loads an annotated corpus, runs the engine (or reads
//! another system's predictions) and scores it.
//!
//! # Corpora
//! * `asq`: ASQ-PHI blocks, `===QUERY===` / text / `===PHI_TAGS===` / one JSON object per line
//!   `{"identifier_type", "value"}`. Values carry no offsets, so each value is mapped to **all**
//!   its occurrences in the text (exact, case-sensitive, non-overlapping, left to right); a
//!   value that never occurs is counted in [`Report::unmatched_gold_values`] and not scored.
//!   Blocks with no tags are the PHI-free hard negatives.
//! * `presidio`: a JSON list of `{full_text, spans: [{entity_type, start_position,
//!   end_position}]}` with character offsets. `ORGANIZATION`, `TITLE` and `NRP` are not Safe
//!   Harbor identifiers and are **ignored** (their tokens count neither way). Everything else is
//!   scored as labelled, even where Safe Harbor would keep the value (countries in `GPE`, bare
//!   years in `DATE_TIME`, ages under 90 in `AGE`), so those rows read low by design.
//! * `jsonl`: lines `{"text", "phi": [{"start", "end", "type"}]}` with character offsets, the
//!   same shape `airlock deid text` writes.
//!
//! # Token-level scoring
//! * **Tokens** are maximal runs of Unicode alphanumeric characters; punctuation and spaces are
//!   not tokens (so `(555) 123-4567` has three tokens and `Dr.` is the token `Dr`).
//! * A token is **gold PHI** when at least one of its characters lies inside a scored gold span;
//!   it is **ignored** when it lies only in ignored spans. A token is **predicted PHI** when at
//!   least one of its characters lies inside a predicted span. The rule is the same on both
//!   sides.
//! * Recall, precision and F1 are over tokens, **type-agnostic** (a gold SSN token covered by a
//!   span typed MRN is recalled: the identifier is gone either way).
//! * **Category recall** attributes each gold token to the label of the first gold span that
//!   covers it (the corpus's own label, [`Report::by_label`]), and to that label's group
//!   ([`Group`], [`Report::by_group`]). **Category precision** attributes each predicted token to
//!   the group of the first predicted span that covers it; it is a true positive when the token
//!   is gold PHI of any category.
//!
//! # Entity-level scoring
//! A gold entity (one occurrence) is recalled when every one of its tokens is predicted PHI. A
//! predicted span is correct when at least one of its tokens is gold PHI; a predicted span whose
//! tokens are all ignored is not counted.
//!
//! # PHI-free entries
//! For corpora with entries that have no gold span at all, [`Report::phi_free_altered_rate`] is
//! the share of them in which the system found anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{Engine, PhiKind, TextError};

/// Corpus formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorpusFormat {
    /// ASQ-PHI blocks.
    Asq,
    /// presidio-research JSON list.
    Presidio,
    /// JSONL with character-offset spans.
    Jsonl,
}

impl CorpusFormat {
    /// Parses `asq`, `presidio` or `jsonl`.
    pub fn from_name(s: &str) -> Option<CorpusFormat> {
        match s {
            "asq" => Some(CorpusFormat::Asq),
            "presidio" => Some(CorpusFormat::Presidio),
            "jsonl" => Some(CorpusFormat::Jsonl),
            _ => None,
        }
    }
}

/// Coarse categories that both gold labels and engine kinds map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Group {
    /// Person names.
    Name,
    /// Addresses, cities, zips, facilities, other places.
    Location,
    /// Dates and times.
    Date,
    /// Ages.
    Age,
    /// Phone and fax numbers.
    Phone,
    /// Emails.
    Email,
    /// SSNs, record, plan, account, licence, vehicle, device and other numbers.
    Id,
    /// URLs and domains.
    Url,
    /// IP addresses.
    Ip,
    /// Anything else.
    Other,
}

impl Group {
    /// The group an engine kind reports under.
    pub fn of_kind(k: PhiKind) -> Group {
        match k {
            PhiKind::Name => Group::Name,
            PhiKind::Date => Group::Date,
            PhiKind::Age => Group::Age,
            PhiKind::Phone | PhiKind::Fax => Group::Phone,
            PhiKind::Email => Group::Email,
            PhiKind::Url => Group::Url,
            PhiKind::Ip => Group::Ip,
            PhiKind::Address
            | PhiKind::City
            | PhiKind::County
            | PhiKind::State
            | PhiKind::Zip
            | PhiKind::Facility
            | PhiKind::Location => Group::Location,
            _ => Group::Id,
        }
    }

    /// The group of a corpus label; `None` for labels that are not Safe Harbor identifiers
    /// (ignored).
    pub fn of_label(label: &str) -> Option<Group> {
        let l = label.to_ascii_uppercase();
        if let Some(k) = PhiKind::from_name(&l) {
            return Some(Group::of_kind(k));
        }
        Some(match l.as_str() {
            "ORGANIZATION" | "TITLE" | "NRP" => return None,
            "PERSON" | "PER" => Group::Name,
            "GEOGRAPHIC_LOCATION"
            | "STREET_ADDRESS"
            | "GPE"
            | "ZIP_CODE"
            | "LOC"
            | "FAC"
            | "HOSPITAL" => Group::Location,
            "DATE_TIME" => Group::Date,
            "PHONE_NUMBER" | "FAX_NUMBER" => Group::Phone,
            "EMAIL_ADDRESS" => Group::Email,
            "DOMAIN_NAME" => Group::Url,
            "IP_ADDRESS" => Group::Ip,
            "SOCIAL_SECURITY_NUMBER"
            | "US_SSN"
            | "MEDICAL_RECORD_NUMBER"
            | "HEALTH_PLAN_BENEFICIARY_NUMBER"
            | "ACCOUNT_NUMBER"
            | "UNIQUE_IDENTIFIER"
            | "LICENSE_NUMBER"
            | "CERTIFICATE_LICENSE_NUMBER"
            | "CREDIT_CARD"
            | "IBAN_CODE"
            | "US_DRIVER_LICENSE"
            | "US_PASSPORT"
            | "US_BANK_NUMBER"
            | "MEDICAL_LICENSE"
            | "VEHICLE_IDENTIFIER"
            | "DEVICE_IDENTIFIER" => Group::Id,
            _ => Group::Other,
        })
    }
}

/// One gold span: byte offsets into the entry's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldSpan {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// The corpus's label.
    pub label: String,
    /// Its group; `None` when ignored.
    pub group: Option<Group>,
}

/// One annotated text.
#[derive(Clone)]
pub struct Entry {
    /// The text.
    pub text: String,
    /// Gold spans.
    pub gold: Vec<GoldSpan>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("text_len", &self.text.len())
            .field("gold", &self.gold.len())
            .finish()
    }
}

/// A loaded corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Its format.
    pub format: CorpusFormat,
    /// Entries in file order.
    pub entries: Vec<Entry>,
    /// Gold values that never occur in their text (ASQ only).
    pub unmatched_gold_values: usize,
}

/// Token-level or entity-level counts and rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scores {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    pub fn_: usize,
    /// tp / (tp + fn).
    pub recall: f64,
    /// tp / (tp + fp).
    pub precision: f64,
    /// Harmonic mean.
    pub f1: f64,
}

impl Scores {
    fn from_counts(tp: usize, fp: usize, fn_: usize) -> Scores {
        Scores::from_split(tp, tp, fp, fn_)
    }

    /// Recall from (`tp_r`, `fn_`) and precision from (`tp_p`, `fp`), which differ when recall
    /// and precision are attributed to different categories.
    fn from_split(tp_r: usize, tp_p: usize, fp: usize, fn_: usize) -> Scores {
        let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        let recall = ratio(tp_r, tp_r + fn_);
        let precision = ratio(tp_p, tp_p + fp);
        let f1 = if recall + precision == 0.0 {
            0.0
        } else {
            2.0 * recall * precision / (recall + precision)
        };
        Scores {
            tp: tp_r,
            fp,
            fn_,
            recall,
            precision,
            f1,
        }
    }
}

/// Recall of one corpus label.
#[derive(Debug, Clone, Serialize)]
pub struct LabelRow {
    /// The corpus label.
    pub label: String,
    /// Gold tokens with this label.
    pub gold_tokens: usize,
    /// Of those, predicted PHI.
    pub recalled_tokens: usize,
    /// Token recall.
    pub token_recall: f64,
    /// Gold entities with this label.
    pub entities: usize,
    /// Entity recall.
    pub entity_recall: f64,
}

/// Scores of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    /// The group.
    pub group: Group,
    /// Token scores (recall by gold group, precision by predicted group).
    pub tokens: Scores,
}

/// The evaluation report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Which system produced the predictions.
    pub system: String,
    /// Corpus format.
    pub format: CorpusFormat,
    /// Entries scored.
    pub entries: usize,
    /// Bytes of text.
    pub text_bytes: usize,
    /// Token-level scores, all categories.
    pub tokens: Scores,
    /// Entity-level scores, all categories.
    pub entities: Scores,
    /// Per group.
    pub by_group: Vec<GroupRow>,
    /// Per corpus label (recall).
    pub by_label: Vec<LabelRow>,
    /// Entries without any gold span.
    pub phi_free_entries: usize,
    /// Of those, entries the system altered.
    pub phi_free_altered: usize,
    /// `phi_free_altered / phi_free_entries` (0 when there are none).
    pub phi_free_altered_rate: f64,
    /// Gold values that never occur in their text.
    pub unmatched_gold_values: usize,
}

/// Loads a corpus from its text.
pub fn load_corpus(data: &str, format: CorpusFormat) -> Result<Corpus, TextError> {
    match format {
        CorpusFormat::Asq => load_asq(data),
        CorpusFormat::Presidio => load_presidio(data),
        CorpusFormat::Jsonl => load_jsonl(data),
    }
}

fn load_asq(data: &str) -> Result<Corpus, TextError> {
    #[derive(Deserialize)]
    struct Tag {
        identifier_type: String,
        value: String,
    }
    let mut entries = Vec::new();
    let mut unmatched = 0;
    for (i, block) in data.split("===QUERY===").skip(1).enumerate() {
        let Some((query, tags)) = block.split_once("===PHI_TAGS===") else {
            return Err(TextError::Corpus {
                format: "asq",
                entry: i + 1,
                reason: "block without `===PHI_TAGS===`",
            });
        };
        let text = query.trim_matches(|c| c == '\n' || c == '\r').to_owned();
        let mut gold = Vec::new();
        for line in tags.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let tag: Tag = serde_json::from_str(line).map_err(|_| TextError::Corpus {
                format: "asq",
                entry: i + 1,
                reason: "tag line is not `{identifier_type, value}`",
            })?;
            if tag.value.is_empty() {
                continue;
            }
            let mut found = false;
            for (pos, v) in text.match_indices(tag.value.as_str()) {
                found = true;
                gold.push(GoldSpan {
                    start: pos,
                    end: pos + v.len(),
                    group: Group::of_label(&tag.identifier_type),
                    label: tag.identifier_type.clone(),
                });
            }
            if !found {
                unmatched += 1;
            }
        }
        entries.push(Entry { text, gold });
    }
    Ok(Corpus {
        format: CorpusFormat::Asq,
        entries,
        unmatched_gold_values: unmatched,
    })
}

/// Byte offset of a character offset (clamped to the text).
fn byte_of_char(text: &str, ch: usize) -> usize {
    text.char_indices().nth(ch).map_or(text.len(), |(b, _)| b)
}

fn load_presidio(data: &str) -> Result<Corpus, TextError> {
    #[derive(Deserialize)]
    struct PSpan {
        entity_type: String,
        start_position: usize,
        end_position: usize,
    }
    #[derive(Deserialize)]
    struct PEntry {
        full_text: String,
        #[serde(default)]
        spans: Vec<PSpan>,
    }
    let list: Vec<PEntry> = serde_json::from_str(data).map_err(|_| TextError::Corpus {
        format: "presidio",
        entry: 0,
        reason: "not a JSON list of `{full_text, spans}`",
    })?;
    let entries = list
        .into_iter()
        .map(|e| {
            let gold = e
                .spans
                .iter()
                .map(|s| GoldSpan {
                    start: byte_of_char(&e.full_text, s.start_position),
                    end: byte_of_char(&e.full_text, s.end_position),
                    group: Group::of_label(&s.entity_type),
                    label: s.entity_type.clone(),
                })
                .collect();
            Entry {
                text: e.full_text,
                gold,
            }
        })
        .collect();
    Ok(Corpus {
        format: CorpusFormat::Presidio,
        entries,
        unmatched_gold_values: 0,
    })
}

#[derive(Deserialize)]
struct JSpan {
    start: usize,
    end: usize,
    #[serde(rename = "type", default)]
    kind: String,
}

fn load_jsonl(data: &str) -> Result<Corpus, TextError> {
    #[derive(Deserialize)]
    struct JEntry {
        text: String,
        #[serde(default)]
        phi: Vec<JSpan>,
    }
    let mut entries = Vec::new();
    for (i, line) in data
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let e: JEntry = serde_json::from_str(line).map_err(|_| TextError::Corpus {
            format: "jsonl",
            entry: i + 1,
            reason: "line is not `{text, phi}`",
        })?;
        let gold = e
            .phi
            .iter()
            .map(|s| GoldSpan {
                start: byte_of_char(&e.text, s.start),
                end: byte_of_char(&e.text, s.end),
                group: Group::of_label(&s.kind),
                label: if s.kind.is_empty() {
                    "PHI".to_owned()
                } else {
                    s.kind.clone()
                },
            })
            .collect();
        entries.push(Entry { text: e.text, gold });
    }
    Ok(Corpus {
        format: CorpusFormat::Jsonl,
        entries,
        unmatched_gold_values: 0,
    })
}

/// Predicted spans of one entry: byte offsets and group.
pub type Prediction = Vec<(usize, usize, Group)>;

/// Runs the engine over the corpus and scores it.
pub fn evaluate(engine: &Engine, corpus: &Corpus) -> Report {
    let preds: Vec<Prediction> = corpus
        .entries
        .iter()
        .map(|e| {
            engine
                .find(&e.text, None)
                .into_iter()
                .map(|s| (s.start, s.end, Group::of_kind(s.kind)))
                .collect()
        })
        .collect();
    score(corpus, &preds, "airlock")
}

/// Loads another system's predictions: JSONL, one line per corpus entry in order, each
/// `{"phi": [{"start", "end", "type"}]}` with character offsets (extra fields ignored).
pub fn load_predictions(corpus: &Corpus, data: &str) -> Result<Vec<Prediction>, TextError> {
    #[derive(Deserialize)]
    struct PLine {
        #[serde(default)]
        phi: Vec<JSpan>,
    }
    let lines: Vec<&str> = data.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != corpus.entries.len() {
        return Err(TextError::Corpus {
            format: "predictions",
            entry: lines.len(),
            reason: "line count differs from the corpus entry count",
        });
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, (line, entry)) in lines.iter().zip(&corpus.entries).enumerate() {
        let p: PLine = serde_json::from_str(line).map_err(|_| TextError::Corpus {
            format: "predictions",
            entry: i + 1,
            reason: "line is not `{phi: [...]}`",
        })?;
        out.push(
            p.phi
                .iter()
                .map(|s| {
                    (
                        byte_of_char(&entry.text, s.start),
                        byte_of_char(&entry.text, s.end),
                        Group::of_label(&s.kind).unwrap_or(Group::Other),
                    )
                })
                .collect(),
        );
    }
    Ok(out)
}

/// Token byte ranges: maximal runs of alphanumeric characters.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push((s, i));
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

fn overlaps(a: (usize, usize), s: usize, e: usize) -> bool {
    a.0 < e && s < a.1
}

/// Scores predictions against the corpus (see the module doc for the definitions).
pub fn score(corpus: &Corpus, predictions: &[Prediction], system: &str) -> Report {
    #[derive(Default)]
    struct Acc {
        gold: usize,
        recalled: usize,
        ents: usize,
        ents_recalled: usize,
    }
    let mut by_label: BTreeMap<String, Acc> = BTreeMap::new();
    let mut g_recall: BTreeMap<Group, (usize, usize)> = BTreeMap::new(); // (tp, fn)
    let mut g_prec: BTreeMap<Group, (usize, usize)> = BTreeMap::new(); // (tp, fp)
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    let (mut etp_r, mut efn, mut etp_p, mut efp) = (0, 0, 0, 0);
    let (mut free, mut free_altered, mut bytes) = (0, 0, 0);
    let empty = Vec::new();
    for (idx, entry) in corpus.entries.iter().enumerate() {
        let pred = predictions.get(idx).unwrap_or(&empty);
        bytes += entry.text.len();
        if entry.gold.is_empty() {
            free += 1;
            if !pred.is_empty() {
                free_altered += 1;
            }
        }
        let toks = tokens(&entry.text);
        // Per token: gold label (first scored span), ignored flag, predicted group.
        let mut gold_of: Vec<Option<&GoldSpan>> = Vec::with_capacity(toks.len());
        let mut ignored: Vec<bool> = Vec::with_capacity(toks.len());
        let mut pred_of: Vec<Option<Group>> = Vec::with_capacity(toks.len());
        for &t in &toks {
            gold_of.push(
                entry
                    .gold
                    .iter()
                    .find(|g| g.group.is_some() && overlaps(t, g.start, g.end)),
            );
            ignored.push(
                entry
                    .gold
                    .iter()
                    .any(|g| g.group.is_none() && overlaps(t, g.start, g.end)),
            );
            pred_of.push(pred.iter().find(|p| overlaps(t, p.0, p.1)).map(|p| p.2));
        }
        for (k, _) in toks.iter().enumerate() {
            let g = gold_of.get(k).copied().flatten();
            let p = pred_of.get(k).copied().flatten();
            let ign = ignored.get(k).copied().unwrap_or(false);
            match (g, p) {
                (Some(g), p) => {
                    let acc = by_label.entry(g.label.clone()).or_default();
                    acc.gold += 1;
                    let grp = g.group.unwrap_or(Group::Other);
                    let r = g_recall.entry(grp).or_default();
                    if let Some(pg) = p {
                        acc.recalled += 1;
                        tp += 1;
                        r.0 += 1;
                        g_prec.entry(pg).or_default().0 += 1;
                    } else {
                        fn_ += 1;
                        r.1 += 1;
                    }
                }
                (None, Some(pg)) if !ign => {
                    fp += 1;
                    g_prec.entry(pg).or_default().1 += 1;
                }
                _ => {}
            }
        }
        // Entities.
        for g in entry.gold.iter().filter(|g| g.group.is_some()) {
            let ks: Vec<usize> = toks
                .iter()
                .enumerate()
                .filter(|(_, t)| overlaps(**t, g.start, g.end))
                .map(|(k, _)| k)
                .collect();
            if ks.is_empty() {
                continue;
            }
            let acc = by_label.entry(g.label.clone()).or_default();
            acc.ents += 1;
            if ks
                .iter()
                .all(|k| pred_of.get(*k).copied().flatten().is_some())
            {
                acc.ents_recalled += 1;
                etp_r += 1;
            } else {
                efn += 1;
            }
        }
        for p in pred {
            let ks: Vec<usize> = toks
                .iter()
                .enumerate()
                .filter(|(_, t)| overlaps(**t, p.0, p.1))
                .map(|(k, _)| k)
                .collect();
            if ks.is_empty() {
                continue;
            }
            if ks
                .iter()
                .any(|k| gold_of.get(*k).copied().flatten().is_some())
            {
                etp_p += 1;
            } else if !ks.iter().all(|k| ignored.get(*k).copied().unwrap_or(false)) {
                efp += 1;
            }
        }
    }
    let mut groups: Vec<Group> = g_recall.keys().chain(g_prec.keys()).copied().collect();
    groups.sort();
    groups.dedup();
    let by_group = groups
        .into_iter()
        .map(|g| {
            let (rtp, rfn) = g_recall.get(&g).copied().unwrap_or((0, 0));
            let (ptp, pfp) = g_prec.get(&g).copied().unwrap_or((0, 0));
            GroupRow {
                group: g,
                tokens: Scores::from_split(rtp, ptp, pfp, rfn),
            }
        })
        .collect();
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let by_label = by_label
        .into_iter()
        .map(|(label, a)| LabelRow {
            label,
            gold_tokens: a.gold,
            recalled_tokens: a.recalled,
            token_recall: ratio(a.recalled, a.gold),
            entities: a.ents,
            entity_recall: ratio(a.ents_recalled, a.ents),
        })
        .collect();
    Report {
        system: system.to_owned(),
        format: corpus.format,
        entries: corpus.entries.len(),
        text_bytes: bytes,
        tokens: Scores::from_counts(tp, fp, fn_),
        entities: Scores::from_split(etp_r, etp_p, efp, efn),
        by_group,
        by_label,
        phi_free_entries: free,
        phi_free_altered: free_altered,
        phi_free_altered_rate: if free == 0 {
            0.0
        } else {
            free_altered as f64 / free as f64
        },
        unmatched_gold_values: corpus.unmatched_gold_values,
    }
}

/// Renders a report as a plain-text table.
/// Engine-only throughput over a corpus (no scoring).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    /// Seconds per pass over the corpus.
    pub seconds: f64,
    /// Entries per second.
    pub notes_per_s: f64,
    /// Megabytes (10^6) of text per second.
    pub mb_per_s: f64,
    /// Spans found per pass.
    pub spans: usize,
}

/// Runs `Engine::find` over the whole corpus, repeated for at least a second (three passes at
/// least), on the calling thread.
pub fn throughput(engine: &Engine, corpus: &Corpus) -> Throughput {
    engine.find("warm up", None);
    let bytes: usize = corpus.entries.iter().map(|e| e.text.len()).sum();
    let started = std::time::Instant::now();
    let mut passes = 0u32;
    let mut spans = 0usize;
    while passes < 3 || started.elapsed().as_secs_f64() < 1.0 {
        for e in &corpus.entries {
            spans += engine.find(&e.text, None).len();
        }
        passes += 1;
    }
    let secs = (started.elapsed().as_secs_f64() / f64::from(passes)).max(1e-9);
    Throughput {
        seconds: secs,
        notes_per_s: corpus.entries.len() as f64 / secs,
        mb_per_s: bytes as f64 / secs / 1e6,
        spans: spans / passes.max(1) as usize,
    }
}

/// A plain-text table of a report.
pub fn render_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "system: {}   corpus format: {:?}   entries: {}   text: {} bytes",
        r.system, r.format, r.entries, r.text_bytes
    );
    let _ = writeln!(
        s,
        "{:<34} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "category (group)", "recall", "precision", "f1", "tp", "fp", "fn"
    );
    let row = |s: &mut String, name: &str, x: &Scores| {
        let _ = writeln!(
            s,
            "{:<34} {:>9.4} {:>9.4} {:>9.4} {:>8} {:>8} {:>8}",
            name, x.recall, x.precision, x.f1, x.tp, x.fp, x.fn_
        );
    };
    for g in &r.by_group {
        row(&mut s, &format!("{:?}", g.group).to_uppercase(), &g.tokens);
    }
    row(&mut s, "ALL (tokens)", &r.tokens);
    row(&mut s, "ALL (entities)", &r.entities);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<34} {:>11} {:>12} {:>9} {:>13}",
        "corpus label", "gold tokens", "token recall", "entities", "entity recall"
    );
    for l in &r.by_label {
        let _ = writeln!(
            s,
            "{:<34} {:>11} {:>12.4} {:>9} {:>13.4}",
            l.label, l.gold_tokens, l.token_recall, l.entities, l.entity_recall
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "PHI-free entries altered: {} of {} ({:.1}%)   gold values not found in text: {}",
        r.phi_free_altered,
        r.phi_free_entries,
        r.phi_free_altered_rate * 100.0,
        r.unmatched_gold_values
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asq_maps_all_occurrences_and_scores_tokens() {
        let data = "===QUERY===\nJohn Smith saw John at 3/14.\n===PHI_TAGS===\n{\"identifier_type\": \"NAME\", \"value\": \"John\"}\n\n===QUERY===\nNo PHI here.\n===PHI_TAGS===\n\n";
        let c = load_corpus(data, CorpusFormat::Asq).unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[0].gold.len(), 2);
        // Predict "John Smith" only: tokens John (tp), Smith (fp), John#2 (fn).
        let preds = vec![vec![(0, 10, Group::Name)], vec![]];
        let r = score(&c, &preds, "t");
        assert_eq!((r.tokens.tp, r.tokens.fp, r.tokens.fn_), (1, 1, 1));
        assert_eq!(r.phi_free_entries, 1);
        assert_eq!(r.phi_free_altered, 0);
        assert!(render_table(&r).contains("NAME"));
    }

    #[test]
    fn presidio_ignores_non_safe_harbor_labels() {
        let data = r#"[{"full_text": "Anna works at Acme", "spans": [{"entity_type": "PERSON", "start_position": 0, "end_position": 4}, {"entity_type": "ORGANIZATION", "start_position": 14, "end_position": 18}]}]"#;
        let c = load_corpus(data, CorpusFormat::Presidio).unwrap();
        let r = score(
            &c,
            &[vec![(0, 4, Group::Name), (14, 18, Group::Location)]],
            "t",
        );
        assert_eq!((r.tokens.tp, r.tokens.fp, r.tokens.fn_), (1, 0, 0));
    }
}
