//! Prints the spans found in each argument (development aid).
#![allow(
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "an example binary: it stops on bad input and prints its results"
)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--file") {
        // Timing of one large document (development aid).
        let text = std::fs::read_to_string(&args[1]).unwrap_or_default();
        let t = std::time::Instant::now();
        let n = airlock_text::Engine::builtin().find(&text, None).len();
        println!(
            "{} bytes, {n} spans, {:.3} s",
            text.len(),
            t.elapsed().as_secs_f64()
        );
        return;
    }
    for text in args {
        for s in airlock_text::Engine::builtin().find(&text, None) {
            println!("{:<10} {:?}", s.kind.name(), &text[s.start..s.end]);
        }
        let ctx = airlock_text::SurrogateContext {
            key: b"demo",
            patient: "p1",
            date_shift_days: 30,
        };
        let r = airlock_text::Engine::builtin().redact(
            &text,
            None,
            airlock_text::Mode::Surrogate,
            Some(&ctx),
        );
        println!("surrogate: {}", r.text);
        println!("--");
    }
}
