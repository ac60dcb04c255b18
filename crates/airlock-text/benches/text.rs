//! Throughput of the engine in tag mode on the shared corpora, against baselines measured in
//! the same run over the same texts: `str::to_lowercase` and a plain byte scan.
//!
//! Run: `cargo bench -p airlock-text --bench text`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use airlock_text::eval::{self, CorpusFormat};
use airlock_text::{Engine, Mode};

fn texts() -> (Vec<String>, &'static str) {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/notes"
    ));
    let mut out = Vec::new();
    for (file, fmt) in [
        ("asq-phi-dev.txt", CorpusFormat::Asq),
        ("presidio-synth-v2.json", CorpusFormat::Presidio),
    ] {
        if let Ok(data) = std::fs::read_to_string(dir.join(file)) {
            out.extend(
                eval::load_corpus(&data, fmt)
                    .unwrap()
                    .entries
                    .into_iter()
                    .map(|e| e.text),
            );
        }
    }
    if out.is_empty() {
        let note = "Pt John Smith (MRN: S-987654) seen by Dr. Adams at St. Luke's Hospital on 3/14/2021. \
                    Lives at 123 Main St., Springfield, IL 62704. Call (555) 123-4567. BP 120/80, O2 98% RA, \
                    started lisinopril 10 mg daily; follow up in 2 weeks with cardiology.";
        out = (0..2000).map(|i| format!("{note} Visit {i}.")).collect();
        return (out, "synthetic notes (shared data absent)");
    }
    (out, "ASQ-PHI dev + presidio synth")
}

/// Runs `f` over all texts repeatedly for at least `min`, returns seconds per pass.
fn measure(texts: &[String], min: Duration, mut f: impl FnMut(&str) -> usize) -> f64 {
    let mut passes = 0u32;
    let start = Instant::now();
    let mut sink = 0usize;
    while start.elapsed() < min || passes < 3 {
        for t in texts {
            sink = sink.wrapping_add(f(t));
        }
        passes += 1;
    }
    black_box(sink);
    start.elapsed().as_secs_f64() / f64::from(passes)
}

fn main() {
    let (texts, what) = texts();
    let bytes: usize = texts.iter().map(String::len).sum();
    let engine = Engine::builtin();
    engine.find("warm up", None);
    let min = Duration::from_secs(2);
    let tag = measure(&texts, min, |t| {
        engine.redact(t, None, Mode::Tag, None).text.len()
    });
    let find = measure(&texts, min, |t| engine.find(t, None).len());
    let lower = measure(&texts, min, |t| t.to_lowercase().len());
    let scan = measure(&texts, min, |t| {
        t.bytes().filter(|b| b.is_ascii_digit()).count()
    });
    let mbs = |secs: f64| bytes as f64 / secs / 1e6;
    let notes = |secs: f64| texts.len() as f64 / secs;
    println!(
        "corpus: {what}: {} texts, {} bytes (one core)",
        texts.len(),
        bytes
    );
    println!(
        "{:<34} {:>10} {:>12} {:>14}",
        "pass", "MB/s", "notes/s", "engine ratio"
    );
    println!(
        "{:<34} {:>10.2} {:>12.0} {:>14}",
        "airlock redact (tag mode)",
        mbs(tag),
        notes(tag),
        "1.00"
    );
    println!(
        "{:<34} {:>10.2} {:>12.0} {:>14.2}",
        "airlock find (spans only)",
        mbs(find),
        notes(find),
        tag / find
    );
    println!(
        "{:<34} {:>10.2} {:>12.0} {:>14.2}",
        "baseline: str::to_lowercase",
        mbs(lower),
        notes(lower),
        tag / lower
    );
    println!(
        "{:<34} {:>10.2} {:>12.0} {:>14.2}",
        "baseline: byte scan (digits)",
        mbs(scan),
        notes(scan),
        tag / scan
    );
    println!("(engine ratio = how many times faster the pass is than tag-mode redaction)");
}
