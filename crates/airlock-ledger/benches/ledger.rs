//! Ledger throughput next to this machine's raw baselines, measured in the same run.
//!
//! `cargo bench -p airlock-ledger --bench ledger`
//!
//! Environment: `AIRLOCK_BENCH_ENTRIES` (entries for the verification run, default 1,000,000),
//! `AIRLOCK_BENCH_SECS` (seconds per append run, default 2), `AIRLOCK_BENCH_DIR` (where to put
//! the files, default the system temp dir).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlock_ledger::{
    Entry, EventType, Ledger, OutcomeKind, Timestamp, leaf_hash, patient_pseudonym, verify_dir,
};
use airlock_types::{ActorId, Purpose, RequestId, Zone};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "airlock.bench/ledger";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn entry(i: u64) -> Entry {
    let mut rid = [0u8; 16];
    rid[..8].copy_from_slice(&i.to_be_bytes());
    Entry::new(
        Timestamp::now(),
        ActorId::new(format!("user{}", i % 97)).unwrap(),
        EventType::Access,
        Zone::Clinical,
        RequestId::from_bytes(rid),
        OutcomeKind::Allowed,
    )
    .with_purpose(Purpose::Treatment)
    .with_resource(format!("dataset:encounters@{}", i % 13))
    .with_patient(patient_pseudonym(
        b"bench-key",
        &format!("MRN{}", i % 10_007),
    ))
    .with_reason("policy rule clinical-read")
}

/// Appends of `size`-byte records, each followed by fdatasync (or fsync).
fn raw_sync_rate(dir: &Path, secs: f64, full: bool) -> f64 {
    let path = dir.join(if full { "raw-fsync" } else { "raw-fdatasync" });
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let rec = vec![b'x'; 300];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        f.write_all(&rec).unwrap();
        if full {
            f.sync_all().unwrap();
        } else {
            f.sync_data().unwrap();
        }
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One append run: durable appends per second, the mean batch size, and the latency of one
/// append (p50, p99, in ms).
struct AppendRun {
    rate: f64,
    batch: f64,
    p50: f64,
    p99: f64,
}

impl AppendRun {
    /// One row of the table: rate, ratio to raw fdatasync, latency.
    fn row(&self, label: &str, fdatasync: f64) -> String {
        format!(
            "{:<44} {:>12.0}/s {:>11.2}x   append p50 {:.3} ms, p99 {:.3} ms",
            format!("{label} (batch {:.1})", self.batch),
            self.rate,
            self.rate / fdatasync,
            self.p50,
            self.p99,
        )
    }
}

/// Durable appends with `threads` concurrent writers; with `preallocate`, a background thread
/// keeps zeros ahead of the WAL's end ([`Ledger::preallocate`]), as the server does.
fn append_rate(dir: &Path, threads: u64, secs: f64, preallocate: bool) -> AppendRun {
    let d = dir.join(format!("append-{threads}-{preallocate}"));
    let ledger = Arc::new(Ledger::open(&d, ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let pre = preallocate.then(|| {
        ledger.preallocate().unwrap();
        let (ledger, stop) = (ledger.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                ledger.preallocate().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });
    let start = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (ledger, stop, count) = (ledger.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut i = t << 32;
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    ledger.append(&entry(i)).unwrap();
                    lat.push(t0.elapsed());
                    count.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Duration> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    if let Some(p) = pre {
        p.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = ledger.stats().unwrap();
    let n = count.load(Ordering::Relaxed);
    lat.sort();
    let q = |f: f64| lat[((lat.len() as f64 * f) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    AppendRun {
        rate: n as f64 / elapsed,
        batch: stats.appended as f64 / stats.commits.max(1) as f64,
        p50: q(0.50),
        p99: q(0.99),
    }
}

fn main() {
    let entries: u64 = env_or("AIRLOCK_BENCH_ENTRIES", 1_000_000);
    let secs: f64 = env_or("AIRLOCK_BENCH_SECS", 2.0);
    let base = std::env::var("AIRLOCK_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let tmp = tempfile::tempdir_in(base).unwrap();
    let dir = tmp.path();

    println!("airlock-ledger benchmark (entries for verify: {entries}, {secs} s per append run)");
    println!();
    let fdatasync = raw_sync_rate(dir, secs, false);
    let fsync = raw_sync_rate(dir, secs, true);
    println!("{:<44} {:>14} {:>12}", "measure", "value", "ratio");
    println!(
        "{:<44} {:>12.0}/s {:>12}",
        "raw fdatasync of 300-byte appends", fdatasync, "1.00 (base)"
    );
    println!(
        "{:<44} {:>12.0}/s {:>11.2}x",
        "raw fsync of 300-byte appends",
        fsync,
        fsync / fdatasync
    );
    for threads in [1u64, 8, 64] {
        let r = append_rate(dir, threads, secs, false);
        let label = format!("durable appends, {threads} writers");
        println!("{}", r.row(&label, fdatasync));
        if threads <= 8 {
            // The same with zeros kept ahead of the end: the fsync writes data only.
            let p = append_rate(dir, threads, secs, true);
            let row = p.row("  same, WAL preallocated", fdatasync);
            println!("{row} ({:.2}x the rate without)", p.rate / r.rate);
        }
    }

    // Build a ledger of `entries` entries in bulk batches, then verify it.
    let vdir = dir.join("verify");
    let ledger = Ledger::open(&vdir, ORIGIN, SigningKey::from_bytes(&[4; 32])).unwrap();
    let build = Instant::now();
    let mut i = 0u64;
    while i < entries {
        let n = (entries - i).min(10_000);
        let batch: Vec<Entry> = (i..i + n).map(entry).collect();
        ledger.append_many(&batch).unwrap();
        i += n;
    }
    ledger.checkpoint().unwrap();
    let build_s = build.elapsed().as_secs_f64();
    let vk = ledger.verifier_key();
    drop(ledger);

    let raw = airlock_ledger::wal::read_all(&vdir.join("wal")).unwrap();
    let bytes: usize = raw.iter().map(Vec::len).sum();
    let start = Instant::now();
    let mut acc = 0u8;
    for e in &raw {
        acc ^= leaf_hash(e)[0];
    }
    let sha_s = start.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    drop(raw);

    let start = Instant::now();
    let report = verify_dir(&vdir, &vk, None).unwrap();
    let verify_s = start.elapsed().as_secs_f64();
    assert_eq!(report.entries, entries);

    let mb = bytes as f64 / 1e6;
    println!(
        "{:<44} {:>12.0}/s {:>12}",
        format!("bulk append_many ({entries} entries, {build_s:.2} s)"),
        entries as f64 / build_s,
        ""
    );
    println!(
        "{:<44} {:>11.0}MB/s {:>12}",
        format!("raw SHA-256 leaf hashing, 1 core ({mb:.0} MB)"),
        mb / sha_s,
        "1.00 (base)"
    );
    println!(
        "{:<44} {:>12.3} s {:>11.2}x",
        format!("verify_dir of {entries} entries"),
        verify_s,
        verify_s / sha_s
    );
    println!(
        "{:<44} {:>12.3} s",
        "  (raw SHA-256 time for the same bytes)", sha_s
    );
    println!(
        "{:<44} {:>11.0}MB/s",
        "  verify throughput over entry bytes",
        mb / verify_s
    );
}
