//! Generation and writing speed, against a raw-write baseline measured in the same run.
//!
//! `cargo bench -p airlock-synth --bench synth [-- PATIENTS]`
//!
//! Baseline: the bytes `write_all` produced, read back and written again with plain `fs::write`
//! into the same number of files. The ratio says how much of `write_all` is the file system
//! and how much is building and serialising the records.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock_synth::{GenOptions, generate, write_all};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        last = Some(v);
    }
    (best, last.unwrap())
}

fn main() {
    let patients: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let root = tempfile::tempdir().unwrap();
    let opts = GenOptions::new(patients, 42);

    let (t_gen, cohort) = best_of(3, || generate(&opts));
    let mut run = 0;
    let (t_write, summary) = best_of(3, || {
        run += 1;
        write_all(&cohort, &root.path().join(format!("out{run}"))).unwrap()
    });

    let mut paths = Vec::new();
    files(&root.path().join("out1"), &mut paths);
    let blobs: Vec<Vec<u8>> = paths.iter().map(|p| fs::read(p).unwrap()).collect();
    let mut raw_run = 0;
    let (t_raw, ()) = best_of(3, || {
        raw_run += 1;
        let dir = root.path().join(format!("raw{raw_run}"));
        fs::create_dir_all(&dir).unwrap();
        for (i, b) in blobs.iter().enumerate() {
            fs::write(dir.join(format!("{i}")), b).unwrap();
        }
    });

    let mb = summary.bytes as f64 / 1e6;
    println!(
        "airlock-synth, {patients} patients ({} stays, {} notes, {} resources, {} files, {mb:.1} MB)",
        summary.encounters, summary.notes, summary.resources, summary.files
    );
    println!(
        "{:<28} {:>10} {:>12} {:>10}",
        "stage", "seconds", "patients/s", "vs raw"
    );
    let row = |name: &str, d: Duration| {
        println!(
            "{:<28} {:>10.3} {:>12.0} {:>10.2}",
            name,
            d.as_secs_f64(),
            patients as f64 / d.as_secs_f64(),
            d.as_secs_f64() / t_raw.as_secs_f64()
        );
    };
    row("generate (in memory)", t_gen);
    row("write_all", t_write);
    row("generate + write_all", t_gen + t_write);
    row("baseline: raw fs::write", t_raw);
}
