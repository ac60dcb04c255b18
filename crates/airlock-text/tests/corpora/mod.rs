//! Corpora that are built rather than read: the synthetic generator's notes (gold spans from
//! the generator itself) and the Synthea notes (gold values from the note's own bundle).
//! Shared by the quality tests and the `eval` example (`#[path]`-included there), so the
//! figures in BENCHMARKS.md and the bars in the tests come from the same corpus.

use std::path::Path;

use airlock_text::eval::{Corpus, CorpusFormat, Entry, GoldSpan, Group};
use anyhow::Context;
use base64::Engine as _;

/// Every note of a generated cohort, scored against the generator's gold spans (byte offsets,
/// labels such as `NAME`, `DATE`, `MRN`).
pub fn generator(patients: usize, seed: u64) -> Corpus {
    let cohort = airlock_synth::generate(&airlock_synth::GenOptions::new(patients, seed));
    let mut entries = Vec::new();
    for p in &cohort.patients {
        for e in &p.encounters {
            for n in &e.notes {
                let gold = n
                    .phi
                    .iter()
                    .map(|s| GoldSpan {
                        start: s.start,
                        end: s.end,
                        label: s.label.to_owned(),
                        group: Group::of_label(s.label),
                    })
                    .collect();
                entries.push(Entry {
                    text: n.text.clone(),
                    gold,
                });
            }
        }
    }
    Corpus {
        format: CorpusFormat::Jsonl,
        entries,
        unmatched_gold_values: 0,
    }
}

/// The plain-text `DocumentReference` notes of every Synthea patient bundle in `dir`, with the
/// patient's own names (as written, with and without Synthea's numeric suffix), birth date
/// (ISO and U.S. layouts), address lines, city and zip code as gold values, each mapped to all
/// of its word-bounded occurrences in the note. Other PHI in the notes (the visit date heading
/// each note) is not in this gold standard, so precision here reads low by construction.
pub fn synthea(dir: &Path) -> anyhow::Result<Corpus> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut entries = Vec::new();
    let mut unmatched = 0usize;
    for path in paths {
        let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        let resources: Vec<&serde_json::Value> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .collect();
        let Some(patient) = resources.iter().find(|r| r["resourceType"] == "Patient") else {
            continue;
        };
        let values = gold_values(patient);
        for r in resources
            .iter()
            .filter(|r| r["resourceType"] == "DocumentReference")
        {
            for c in r["content"].as_array().into_iter().flatten() {
                let Some(b64) = c["attachment"]["data"].as_str() else {
                    continue;
                };
                let text =
                    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64)?)?;
                let mut gold = Vec::new();
                for (value, label) in &values {
                    for (start, _) in word_bounded(&text, value) {
                        gold.push(GoldSpan {
                            start,
                            end: start + value.len(),
                            label: (*label).to_owned(),
                            group: Group::of_label(label),
                        });
                    }
                }
                if gold.is_empty() {
                    unmatched += 1;
                }
                entries.push(Entry { text, gold });
            }
        }
    }
    Ok(Corpus {
        format: CorpusFormat::Jsonl,
        entries,
        unmatched_gold_values: unmatched,
    })
}

/// The patient's own identifiers with their labels.
fn gold_values(patient: &serde_json::Value) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut push = |v: &str, label: &'static str| {
        if !v.is_empty() && !out.iter().any(|(x, _)| x == v) {
            out.push((v.to_owned(), label));
        }
    };
    for n in patient["name"].as_array().into_iter().flatten() {
        let given = n["given"].as_array().into_iter().flatten();
        let family = n["family"].as_str().into_iter();
        for part in given.filter_map(|g| g.as_str()).chain(family) {
            push(part, "NAME");
            let stripped = part.trim_end_matches(|c: char| c.is_ascii_digit());
            if stripped.chars().count() >= 2 {
                push(stripped, "NAME");
            }
        }
    }
    if let Some(birth) = patient["birthDate"].as_str() {
        push(birth, "DATE");
        let parts: Vec<&str> = birth.split('-').collect();
        if let [y, m, d] = parts[..] {
            let (mi, di) = (m.trim_start_matches('0'), d.trim_start_matches('0'));
            push(&format!("{m}/{d}/{y}"), "DATE");
            push(&format!("{mi}/{di}/{y}"), "DATE");
        }
    }
    for a in patient["address"].as_array().into_iter().flatten() {
        for l in a["line"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str())
        {
            push(l, "ADDRESS");
        }
        if let Some(c) = a["city"].as_str() {
            push(c, "CITY");
        }
        if let Some(z) = a["postalCode"].as_str() {
            push(z, "ZIP");
        }
    }
    out
}

/// Occurrences of `needle` not inside a longer word ("Paris" is not found in "Paris331").
fn word_bounded<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    text.match_indices(needle).filter(move |(i, m)| {
        let before = text[..*i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after = text[i + m.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}
