//! Generates a cohort and writes everything: `gen [PATIENTS] [OUT_DIR] [SEED]`.
//!
//! `cargo run --release -p airlock-synth --example gen -- 1000 /tmp/x`
#![allow(
    clippy::print_stdout,
    reason = "an example binary: its output goes to the terminal"
)]

use std::path::PathBuf;
use std::time::Instant;

use airlock_synth::{GenOptions, generate, write_all};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let patients: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let out: PathBuf = args
        .next()
        .map_or_else(|| std::env::temp_dir().join("airlock-synth"), PathBuf::from);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(42);

    let t0 = Instant::now();
    let cohort = generate(&GenOptions::new(patients, seed));
    let t_gen = t0.elapsed();
    let t1 = Instant::now();
    let summary = write_all(&cohort, &out)?;
    let t_write = t1.elapsed();

    println!("patients      {}", summary.patients);
    println!("encounters    {}", summary.encounters);
    println!("notes         {}", summary.notes);
    println!("resources     {}", summary.resources);
    println!(
        "readmit_30d   {} ({:.1}%)",
        summary.readmissions_30d,
        100.0 * summary.readmissions_30d as f64 / summary.encounters.max(1) as f64
    );
    println!("files         {}", summary.files);
    println!("bytes         {}", summary.bytes);
    println!("generate      {:.3} s", t_gen.as_secs_f64());
    println!("write         {:.3} s", t_write.as_secs_f64());
    println!("total         {:.3} s", (t_gen + t_write).as_secs_f64());
    println!("out           {}", out.display());
    Ok(())
}
