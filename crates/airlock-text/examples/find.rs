//! Prints the spans found in each argument (development aid).
#![allow(clippy::print_stdout, clippy::indexing_slicing)]

fn main() {
    for text in std::env::args().skip(1) {
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
