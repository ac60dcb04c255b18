//! The incident rules' full scan of a large ledger against the ledger's own verification of
//! the same ledger, in one run. `AIRLOCK_BENCH_ENTRIES` (default 1,000,000) entries of a
//! hospital's month: 300 staff reading their own 200 patients each in working hours (111 entries
//! a day), logins with the odd typo, two exports a day, and one insider's browsing burst at the
//! end (so the rules do find something).
//! Run: `cargo bench -p airlock-incidents --bench scan`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark"
)]

use std::time::Instant;

use airlock_incidents::detect::{Context, Rules, scan};
use airlock_ledger::{Entry, EventType, Ledger, OutcomeKind, Timestamp, patient_pseudonym};
use airlock_types::{ActorId, RequestId, Zone};
use chrono::{Duration, TimeZone, Utc};
use ed25519_dalek::SigningKey;

fn entry(i: u64, start: chrono::DateTime<Utc>) -> Entry {
    let actor = i % 300;
    // The actor's own sequence: 111 entries a working day, 08:00-17:00, a month of days.
    let s = i / 300;
    let day = s / 111;
    let minute = (s % 111) * 540 / 111;
    let at =
        start + Duration::days(day as i64) + Duration::hours(8) + Duration::minutes(minute as i64);
    let mut rid = [0u8; 16];
    rid[..8].copy_from_slice(&i.to_be_bytes());
    let (event, outcome) = if s % 997 == 5 {
        (EventType::Login, OutcomeKind::Failure)
    } else {
        match s % 50 {
            0 => (EventType::Login, OutcomeKind::Success),
            2 => (EventType::Export, OutcomeKind::Success),
            _ => (EventType::Access, OutcomeKind::Success),
        }
    };
    let mut e = Entry::new(
        Timestamp::new(at),
        ActorId::new(format!("staff{actor}")).unwrap(),
        event,
        Zone::Clinical,
        RequestId::from_bytes(rid),
        outcome,
    );
    if event == EventType::Access {
        e = e
            .with_resource("patient-record:clinical")
            .with_patient(patient_pseudonym(
                b"bench-key",
                &format!("MRN{}", actor * 200 + s % 200),
            ));
    }
    e
}

fn main() {
    let n: u64 = std::env::var("AIRLOCK_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let ledger = Ledger::open(
        dir.path(),
        "airlock.bench/incidents",
        SigningKey::from_bytes(&[5; 32]),
    )
    .unwrap();
    let mut i = 0u64;
    while i < n {
        let k = (n - i).min(10_000);
        let mut batch: Vec<Entry> = (i..i + k).map(|j| entry(j, start)).collect();
        if i + k >= n {
            // One insider: 400 distinct patients in half an hour on the last day.
            let last = start + Duration::days(29) + Duration::hours(10);
            for p in 0..400u64 {
                batch.push(
                    Entry::new(
                        Timestamp::new(last + Duration::seconds(p as i64 * 4)),
                        ActorId::new("staff7").unwrap(),
                        EventType::Access,
                        Zone::Clinical,
                        RequestId::from_bytes([9; 16]),
                        OutcomeKind::Success,
                    )
                    .with_resource("patient-record:clinical")
                    .with_patient(patient_pseudonym(b"bench-key", &format!("OTHER{p}"))),
                );
            }
        }
        ledger.append_many(&batch).unwrap();
        i += k;
    }
    ledger.checkpoint().unwrap();
    let vk = ledger.verifier_key();
    drop(ledger);

    let t = Instant::now();
    let report = airlock_ledger::verify_dir(dir.path(), &vk, None).unwrap();
    let verify_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let entries: Vec<(u64, Entry)> = airlock_ledger::read_entries(dir.path())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let read_s = t.elapsed().as_secs_f64();

    let rules = Rules::defaults();
    let ctx = Context {
        now: Some(start + Duration::days(31)),
        roles: (0..300)
            .map(|a| (format!("staff{a}"), vec!["clinician".to_owned()]))
            .collect(),
        verified: Some(Ok(())),
    };
    let t = Instant::now();
    let findings = scan(&entries, &rules, &ctx);
    let scan_s = t.elapsed().as_secs_f64();
    let m = entries.len() as f64;

    println!(
        "airlock-incidents scan benchmark: {} entries",
        report.entries
    );
    println!(
        "{:<52} {:>9.3} s   1.00 (base)",
        "verify_dir (the ledger's own verification)", verify_s
    );
    println!(
        "{:<52} {:>9.3} s  {:>5.2}x",
        "read and parse every entry",
        read_s,
        read_s / verify_s
    );
    println!(
        "{:<52} {:>9.3} s  {:>5.2}x",
        "scan: every rule over the parsed entries",
        scan_s,
        scan_s / verify_s
    );
    println!(
        "{:<52} {:>9.3} s  {:>5.2}x",
        "read + scan",
        read_s + scan_s,
        (read_s + scan_s) / verify_s
    );
    println!("{:<52} {:>9.2} µs", "scan per entry", scan_s / m * 1e6);
    println!("findings: {}", findings.len());
    for f in findings.iter().take(5) {
        println!("  {} {} {}: {}", f.rule, f.actor, f.count, f.summary);
    }
}
