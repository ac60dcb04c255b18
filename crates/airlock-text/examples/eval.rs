//! Scores the engine (or another system's predictions) on an annotated corpus.
//!
//! ```text
//! cargo run --release -p airlock-text --example eval -- CORPUS FORMAT [--predictions FILE --system NAME] [--json]
//! ```
//! FORMAT is `asq`, `presidio` or `jsonl`, or one of two built corpora: `synth`, where CORPUS is
//! `PATIENTS:SEED` and the notes of an `airlock-synth` cohort are scored against the generator's
//! gold spans, and `synthea`, where CORPUS is a folder of Synthea bundles and the notes are
//! scored against the patient's own name, birth date and address (see `tests/corpora`). With
//! `--predictions`, FILE is JSONL, one line per corpus entry, `{"phi": [{"start", "end",
//! "type"}]}` in character offsets. Without it the engine runs, and its throughput is printed
//! too.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::indexing_slicing,
    reason = "an example binary: it stops on bad input and prints its results"
)]

use std::time::Instant;

use airlock_text::eval::{self, CorpusFormat};
use anyhow::{Context, bail};

#[path = "../tests/corpora/mod.rs"]
mod corpora;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(fmt)) = (args.first(), args.get(1)) else {
        bail!(
            "usage: eval CORPUS asq|presidio|jsonl|synth|synthea [--predictions FILE --system NAME] [--json]"
        );
    };
    let corpus = match fmt.as_str() {
        "synth" => {
            let (n, seed) = path
                .split_once(':')
                .context("synth corpus must be PATIENTS:SEED")?;
            corpora::generator(n.parse()?, seed.parse()?)
        }
        "synthea" => corpora::synthea(std::path::Path::new(path))?,
        _ => {
            let format = CorpusFormat::from_name(fmt)
                .context("format must be asq, presidio, jsonl, synth or synthea")?;
            let data = std::fs::read_to_string(path).context("reading the corpus")?;
            eval::load_corpus(&data, format)?
        }
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let report = if let Some(pred_path) = flag("--predictions") {
        let preds = std::fs::read_to_string(pred_path).context("reading predictions")?;
        let preds = eval::load_predictions(&corpus, &preds)?;
        eval::score(
            &corpus,
            &preds,
            flag("--system").map_or("predictions", String::as_str),
        )
    } else {
        let engine = airlock_text::Engine::builtin();
        let t = Instant::now();
        let report = eval::evaluate(engine, &corpus);
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "airlock: {} entries, {} bytes in {:.3} s: {:.2} MB/s, {:.0} notes/s (one core, includes scoring)",
            corpus.entries.len(),
            report.text_bytes,
            secs,
            report.text_bytes as f64 / secs / 1e6,
            corpus.entries.len() as f64 / secs
        );
        report
    };
    if args.iter().any(|a| a == "--throughput") {
        // Engine only (no scoring), whole corpus repeated for at least one second.
        let t = eval::throughput(airlock_text::Engine::builtin(), &corpus);
        println!("{}", serde_json::to_string(&t)?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--misses") {
        // Development aid on synthetic corpora: show missed gold values and false alarms.
        let engine = airlock_text::Engine::builtin();
        for e in &corpus.entries {
            let spans = engine.find(&e.text, None);
            for g in e.gold.iter().filter(|g| g.group.is_some()) {
                // Every alphanumeric character of the gold value inside some span.
                let covered = e.text[g.start..g.end]
                    .char_indices()
                    .filter(|(_, c)| c.is_alphanumeric())
                    .all(|(i, _)| {
                        spans
                            .iter()
                            .any(|s| s.start <= g.start + i && g.start + i < s.end)
                    });
                if !covered {
                    println!(
                        "MISS {:<12} {:?}   <<{}>>",
                        g.label,
                        &e.text[g.start..g.end],
                        window(&e.text, g.start, g.end)
                    );
                }
            }
            for s in &spans {
                if !e.gold.iter().any(|g| g.start < s.end && s.start < g.end) {
                    println!(
                        "FA   {:<12} {:?}   <<{}>>",
                        s.kind,
                        &e.text[s.start..s.end],
                        window(&e.text, s.start, s.end)
                    );
                }
            }
        }
        return Ok(());
    }
    if args.iter().any(|a| a == "--json") {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", eval::render_table(&report));
    }
    Ok(())
}

/// The text around a span (about 60 bytes each side, on character boundaries), on one line.
fn window(text: &str, start: usize, end: usize) -> String {
    let mut a = start.saturating_sub(60);
    while !text.is_char_boundary(a) {
        a -= 1;
    }
    let mut b = (end + 60).min(text.len());
    while !text.is_char_boundary(b) {
        b += 1;
    }
    text[a..b].replace('\n', " ")
}
