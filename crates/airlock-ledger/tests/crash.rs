//! Crash safety: a child process appends in a loop and prints each acknowledged index; the
//! parent kills it with SIGKILL at random moments, reopens, and checks that every
//! acknowledged entry is present at its index and that the whole log verifies.
//!
//! The child is this test binary itself, re-run with `AIRLOCK_LEDGER_CRASH_DIR` set. In odd
//! rounds it also preallocates WAL space from a background thread.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use airlock_ledger::{Entry, EventType, Ledger, OutcomeKind, Timestamp, read_entries, verify_dir};
use airlock_types::{ActorId, RequestId, Zone};
use ed25519_dalek::SigningKey;
use rand::Rng;

const ORIGIN: &str = "airlock.test/crash";
const ENV: &str = "AIRLOCK_LEDGER_CRASH_DIR";
const ROUNDS: u32 = 20;
const WRITERS: u64 = 4;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5u8; 32])
}

fn entry(round: u32, writer: u64, seq: u64) -> Entry {
    let mut rid = [0u8; 16];
    rid[..4].copy_from_slice(&round.to_be_bytes());
    rid[4..8].copy_from_slice(&(writer as u32).to_be_bytes());
    rid[8..].copy_from_slice(&seq.to_be_bytes());
    Entry::new(
        Timestamp::now(),
        ActorId::new(format!("writer{writer}")).unwrap(),
        EventType::Access,
        Zone::Clinical,
        RequestId::from_bytes(rid),
        OutcomeKind::Success,
    )
    .with_resource("dataset:crash@1")
}

/// The child: append forever from several threads, printing `ACK <index> <request id>`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV) else { return };
    let round: u32 = std::env::var("AIRLOCK_LEDGER_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let ledger = Arc::new(Ledger::open(Path::new(&dir), ORIGIN, key()).unwrap());
    // Odd rounds keep zeros written ahead of the end, as the server does, so kills also land
    // mid-extension and recovery meets records followed by zeros.
    if round % 2 == 1 {
        let ledger = ledger.clone();
        std::thread::spawn(move || {
            loop {
                ledger.preallocate().unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                for seq in 0.. {
                    let e = entry(round, w, seq);
                    let index = ledger.append(&e).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {index} {}", e.request_id).unwrap();
                    out.flush().unwrap();
                    if seq % 97 == 0 {
                        ledger.checkpoint().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_entry() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    // On disk (not a tmpfs /tmp, which has no O_DIRECT and so no preallocation).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV, dir.path())
            .env("AIRLOCK_LEDGER_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    let mut p = l.strip_prefix("ACK ")?.split(' ');
                    Some((p.next()?.parse::<u64>().ok()?, p.next()?.to_owned()))
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = reader.join().unwrap();
        acked.extend(got);

        // Recover and check every acknowledgement so far.
        let ledger = Ledger::open(dir.path(), ORIGIN, key()).unwrap();
        let size = ledger.size().unwrap();
        let vk = ledger.verifier_key();
        drop(ledger);
        let entries: Vec<Entry> = read_entries(dir.path())
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(entries.len() as u64, size);
        for (index, rid) in &acked {
            let e = entries.get(*index as usize).unwrap_or_else(|| {
                panic!("round {round}: acknowledged index {index} missing (size {size})")
            });
            assert_eq!(
                &e.request_id.to_string(),
                rid,
                "round {round}: index {index}"
            );
        }
        let report = verify_dir(dir.path(), &vk, None).unwrap();
        assert_eq!(report.checkpoint.size, size);
    }
    assert!(
        acked.len() > ROUNDS as usize,
        "children acknowledged too little to test anything"
    );
    println!("{} acknowledged entries over {ROUNDS} kills", acked.len());
}
