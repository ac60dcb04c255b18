//! Quality bars on the shared corpora (skipped with a message when `shared/data` is absent).
//!
//! Bars (issue 5): token recall >= 0.99 overall and >= 0.97 in every category present, token
//! precision >= 0.90, at most 10% of PHI-free entries altered. The 0.97 category bar holds
//! both for the evaluator's [`Group`]s (name, location, date, phone, email, id, ip, ...) and for
//! every label of the corpus (ASQ-PHI's `UNIQUE_IDENTIFIER`, `MEDICAL_RECORD_NUMBER`, ...). On
//! the Synthea notes: none of the patient's own names, birth date or address left in the
//! output.
//!
//! Bars of issue 29, on notes written the way real notes are: the synthetic generator's notes
//! (`airlock-synth`, always available) and the Synthea notes, scored by the engine alone (no
//! known identifiers) with the same scorer: token recall >= 0.99 overall and >= 0.97 in every
//! category. See `corpora/mod.rs` for how each corpus and its gold standard are built.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]

use std::path::PathBuf;

use airlock_text::eval::{self, CorpusFormat, Report};
use airlock_text::{Engine, KnownIdentifiers, Mode};
use base64::Engine as _;

mod corpora;

fn data_dir() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipping: shared data not found at {}", p.display());
        None
    }
}

#[test]
fn asq_phi_meets_the_bars() {
    let Some(dir) = data_dir() else { return };
    let data = std::fs::read_to_string(dir.join("notes/asq-phi-dev.txt")).unwrap();
    let corpus = eval::load_corpus(&data, CorpusFormat::Asq).unwrap();
    let report = eval::evaluate(Engine::builtin(), &corpus);
    println!("{}", eval::render_table(&report));
    assert!(
        report.tokens.recall >= 0.99,
        "token recall {:.4} < 0.99",
        report.tokens.recall
    );
    assert!(
        report.tokens.precision >= 0.90,
        "token precision {:.4} < 0.90",
        report.tokens.precision
    );
    for g in &report.by_group {
        if g.tokens.tp + g.tokens.fn_ > 0 {
            assert!(
                g.tokens.recall >= 0.97,
                "{:?} token recall {:.4} < 0.97",
                g.group,
                g.tokens.recall
            );
        }
    }
    assert!(!report.by_label.is_empty());
    for l in report.by_label.iter().filter(|l| l.gold_tokens > 0) {
        assert!(
            l.token_recall >= 0.97,
            "{} token recall {:.4} < 0.97",
            l.label,
            l.token_recall
        );
    }
    assert!(report.phi_free_entries > 0);
    assert!(
        report.phi_free_altered_rate <= 0.10,
        "{:.1}% of PHI-free entries altered",
        report.phi_free_altered_rate * 100.0
    );
}

/// Token recall at least `overall` over all tokens and at least `each` in every group and every
/// corpus label with gold tokens.
fn assert_recall(report: &Report, overall: f64, each: f64) {
    assert!(
        report.tokens.recall >= overall,
        "token recall {:.4} < {overall}",
        report.tokens.recall
    );
    for g in &report.by_group {
        if g.tokens.tp + g.tokens.fn_ > 0 {
            assert!(
                g.tokens.recall >= each,
                "{:?} token recall {:.4} < {each}",
                g.group,
                g.tokens.recall
            );
        }
    }
    for l in report.by_label.iter().filter(|l| l.gold_tokens > 0) {
        assert!(
            l.token_recall >= each,
            "{} token recall {:.4} < {each}",
            l.label,
            l.token_recall
        );
    }
}

#[test]
fn generator_notes_meet_the_bars() {
    // Seed 42 is the cohort the rules of issue 29 were developed on; seed 31337 was only
    // measured. Precision here counts titles ("Mr.", "Dr.") inside name spans, which the
    // generator leaves out of its gold spans, as false positives.
    for seed in [42, 31337] {
        let corpus = corpora::generator(100, seed);
        let report = eval::evaluate(Engine::builtin(), &corpus);
        println!("seed {seed}\n{}", eval::render_table(&report));
        assert!(report.entries > 400, "only {} notes", report.entries);
        assert_recall(&report, 0.99, 0.97);
        assert!(
            report.tokens.precision >= 0.90,
            "token precision {:.4} < 0.90",
            report.tokens.precision
        );
    }
}

#[test]
fn synthea_notes_meet_the_bars() {
    // The gold standard is the patient's own name, birth date and address only: the visit
    // date heading each note is PHI the engine finds but the gold does not list, so precision
    // is printed, not checked.
    let Some(dir) = data_dir() else { return };
    let corpus = corpora::synthea(&dir.join("fhir/synthea")).unwrap();
    let report = eval::evaluate(Engine::builtin(), &corpus);
    println!("{}", eval::render_table(&report));
    assert!(report.entries > 300, "only {} notes", report.entries);
    assert!(
        report.tokens.tp > 300,
        "only {} gold tokens",
        report.tokens.tp
    );
    assert_recall(&report, 0.99, 0.97);
}

#[test]
fn presidio_synth_report() {
    // General (non-clinical) PII with many non-Safe-Harbor labels: reported, with floors well
    // below the clinical bars (see the crate report for the figures).
    let Some(dir) = data_dir() else { return };
    let data = std::fs::read_to_string(dir.join("notes/presidio-synth-v2.json")).unwrap();
    let corpus = eval::load_corpus(&data, CorpusFormat::Presidio).unwrap();
    let report = eval::evaluate(Engine::builtin(), &corpus);
    println!("{}", eval::render_table(&report));
    assert!(
        report.tokens.precision >= 0.90,
        "token precision {:.4}",
        report.tokens.precision
    );
    assert!(
        report.tokens.recall >= 0.75,
        "token recall {:.4}",
        report.tokens.recall
    );
}

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

#[test]
fn synthea_notes_leak_no_own_identifiers() {
    let Some(dir) = data_dir() else { return };
    let mut notes = 0usize;
    for entry in std::fs::read_dir(dir.join("fhir/synthea")).unwrap() {
        let path = entry.unwrap().path();
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let Some(entries) = bundle["entry"].as_array() else {
            continue;
        };
        let Some(patient) = entries
            .iter()
            .map(|e| &e["resource"])
            .find(|r| r["resourceType"] == "Patient")
        else {
            continue;
        };
        let mut known = KnownIdentifiers::default();
        let mut name_parts: Vec<String> = Vec::new();
        for n in patient["name"].as_array().into_iter().flatten() {
            let mut full = Vec::new();
            for g in n["given"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str())
            {
                full.push(g.to_owned());
                name_parts.push(g.to_owned());
            }
            if let Some(f) = n["family"].as_str() {
                full.push(f.to_owned());
                name_parts.push(f.to_owned());
            }
            known.names.push(full.join(" "));
        }
        let birth = patient["birthDate"].as_str().unwrap_or("").to_owned();
        known.dates.push(birth.clone());
        let mut addr_parts: Vec<String> = Vec::new();
        for a in patient["address"].as_array().into_iter().flatten() {
            for l in a["line"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
            {
                known.addresses.push(l.to_owned());
                addr_parts.push(l.to_owned());
            }
            if let Some(c) = a["city"].as_str() {
                known.cities.push(c.to_owned());
                addr_parts.push(c.to_owned());
            }
            if let Some(z) = a["postalCode"].as_str() {
                known.addresses.push(z.to_owned());
                addr_parts.push(z.to_owned());
            }
        }
        for t in patient["telecom"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["value"].as_str())
        {
            known.phones.push(t.to_owned());
        }
        // Forbidden strings: each name part with and without its digits, the birth date in
        // ISO and US layouts, each address line and city.
        let mut forbidden: Vec<String> = Vec::new();
        for p in &name_parts {
            forbidden.push(p.to_lowercase());
            let stripped = p.trim_end_matches(|c: char| c.is_ascii_digit());
            if stripped.chars().count() >= 3 {
                forbidden.push(stripped.to_lowercase());
            }
        }
        if let [y, m, d] = birth.split('-').collect::<Vec<_>>()[..] {
            forbidden.push(birth.clone());
            let (mi, di): (u32, u32) = (m.parse().unwrap(), d.parse().unwrap());
            forbidden.push(format!("{mi}/{di}/{y}"));
            forbidden.push(format!("{m}/{d}/{y}"));
        }
        forbidden.extend(addr_parts.iter().map(|a| a.to_lowercase()));
        for r in entries
            .iter()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] == "DocumentReference")
        {
            for c in r["content"].as_array().into_iter().flatten() {
                let Some(b64) = str_at(c, &["attachment", "data"]) else {
                    continue;
                };
                let text = String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
                .unwrap();
                notes += 1;
                let out = Engine::builtin()
                    .redact(&text, Some(&known), Mode::Tag, None)
                    .text
                    .to_lowercase();
                for f in &forbidden {
                    // Word-bounded search so "Redmond" is not found inside another word.
                    let leaked = out.match_indices(f.as_str()).any(|(i, m)| {
                        let before = out[..i]
                            .chars()
                            .next_back()
                            .is_none_or(|c| !c.is_alphanumeric());
                        let after = out[i + m.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| !c.is_alphanumeric());
                        before && after
                    });
                    assert!(
                        !leaked,
                        "a patient identifier survived in a note of {}",
                        path.display()
                    );
                }
            }
        }
    }
    println!("checked {notes} Synthea notes");
    assert!(notes > 0);
}
