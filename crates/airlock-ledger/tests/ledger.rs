//! End-to-end: append, checkpoint, proofs, proof files, tampering, recovery, search, export.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test"
)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use airlock_ledger::tiles::{bundle_path, tile_path};
use airlock_ledger::*;
use airlock_types::{ActorId, Purpose, RequestId, Zone};
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "airlock.test/ledger";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn entry(i: u64) -> Entry {
    let mut rid = [0u8; 16];
    rid[..8].copy_from_slice(&i.to_be_bytes());
    let event = EventType::ALL[(i % EventType::ALL.len() as u64) as usize];
    let mut e = Entry::new(
        Timestamp::new(t0() + Duration::seconds(i as i64)),
        ActorId::new(format!("user{}", i % 5)).unwrap(),
        event,
        Zone::Clinical,
        RequestId::from_bytes(rid),
        OutcomeKind::Success,
    )
    .with_purpose(Purpose::Research)
    .with_resource(format!("dataset:cohort@{}", i % 3));
    if i.is_multiple_of(2) {
        e = e.with_patient(patient_pseudonym(b"deploy-key", &format!("MRN{}", i % 7)));
    }
    e
}

fn filled(dir: &Path, n: u64) -> Ledger {
    let l = Ledger::open(dir, ORIGIN, key()).unwrap();
    for i in 0..n {
        assert_eq!(l.append(&entry(i)).unwrap(), i);
    }
    l.checkpoint().unwrap();
    l
}

#[test]
fn append_checkpoint_verify_reopen() {
    let d = tempfile::tempdir().unwrap();
    let l = filled(d.path(), 600);
    let vk = l.verifier_key();
    let old = l.checkpoint().unwrap();
    assert_eq!(old.checkpoint.size, 600);
    let r = verify_dir(d.path(), &vk, None).unwrap();
    assert_eq!(r.entries, 600);
    assert_eq!(r.wal_entries, Some(600));
    assert!(d.path().join("tile/0/001").exists());
    assert!(d.path().join("tile/0/002.p/88").exists());
    assert!(d.path().join("tile/1/000.p/2").exists());
    assert!(d.path().join("tile/entries/002.p/88").exists());
    drop(l);

    let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
    assert_eq!(l.size().unwrap(), 600);
    for i in 600..1000 {
        assert_eq!(l.append(&entry(i)).unwrap(), i);
    }
    let new = l.checkpoint().unwrap();
    let r = verify_dir(d.path(), &vk, Some(&old.text)).unwrap();
    assert_eq!(r.consistent_with, Some(600));
    assert_eq!(r.checkpoint, new.checkpoint);
    // Consistency proofs from the live ledger verify too.
    let p = l.prove_consistency(600, 1000).unwrap();
    verify_consistency(600, 1000, &p, &old.checkpoint.root, &new.checkpoint.root).unwrap();
    // A second open in the same process is refused while the first holds the lock.
    assert!(matches!(
        Ledger::open(d.path(), ORIGIN, key()),
        Err(LedgerError::Locked { .. })
    ));
}

#[test]
fn entries_beyond_the_checkpoint_still_verify() {
    let d = tempfile::tempdir().unwrap();
    let l = filled(d.path(), 300);
    let vk = l.verifier_key();
    // 300 more appended, full tiles published by the committer, no new checkpoint.
    for i in 300..600 {
        l.append(&entry(i)).unwrap();
    }
    let r = verify_dir(d.path(), &vk, None).unwrap();
    assert_eq!(r.checkpoint.size, 300);
    assert!(r.entries >= 512);
}

#[test]
fn concurrent_appends_get_distinct_indices() {
    let d = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::open(d.path(), ORIGIN, key()).unwrap());
    let mut hs = Vec::new();
    for t in 0..8u64 {
        let l = l.clone();
        hs.push(std::thread::spawn(move || {
            (0..100)
                .map(|i| (l.append(&entry(t * 1000 + i)).unwrap(), t * 1000 + i))
                .collect::<Vec<_>>()
        }));
    }
    let mut got: Vec<(u64, u64)> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    got.sort();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..800).collect::<Vec<_>>()
    );
    l.checkpoint().unwrap();
    let all: Vec<_> = read_entries(d.path())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (index, id) in got {
        assert_eq!(all[index as usize].1, entry(id));
    }
    verify_dir(d.path(), &l.verifier_key(), None).unwrap();
}

#[test]
fn proof_files_verify_and_reject_tampering() {
    let d = tempfile::tempdir().unwrap();
    let l = filled(d.path(), 300);
    let vk = l.verifier_key();
    for index in [0u64, 1, 255, 256, 299] {
        let pf = l.proof_file(index).unwrap();
        let v = verify_proof_file(&pf, &vk).unwrap();
        assert_eq!(v.index, index);
        assert_eq!(v.entry, entry(index));
        assert_eq!(v.checkpoint.size, 300);
    }
    let pf = l.proof_file(37).unwrap();
    let lines: Vec<&str> = pf.split_inclusive('\n').collect();
    let mut bad: Vec<(String, String)> = vec![
        ("junk before".into(), format!("x{pf}")),
        ("junk line before".into(), format!("junk\n{pf}")),
        ("junk after".into(), format!("{pf}junk")),
        ("junk line after".into(), format!("{pf}junk\n")),
        ("blank after".into(), format!("{pf}\n")),
        ("index + 1".into(), pf.replace("index 37\n", "index 38\n")),
        ("index - 1".into(), pf.replace("index 37\n", "index 36\n")),
        (
            "leading zero".into(),
            pf.replace("index 37\n", "index 037\n"),
        ),
        ("size doubled".into(), pf.replace("\n300\n", "\n600\n")),
        ("size halved".into(), pf.replace("\n300\n", "\n150\n")),
        ("wrong leaf".into(), {
            let other = l.proof_file(38).unwrap();
            let extra38 = other.lines().nth(1).unwrap().to_owned();
            pf.replace(lines[1].trim_end(), &extra38)
        }),
        ("wrong root".into(), {
            let cp = l.latest_checkpoint().unwrap().unwrap();
            let root = base64_of(&cp.checkpoint.root);
            pf.replace(&root, &base64_of(&[7u8; 32]))
        }),
        ("wrong key".into(), pf.clone()),
    ];
    // Flip one bit in every character of every line (header, extra, index, hashes,
    // checkpoint, signature).
    let bytes = pf.as_bytes();
    for pos in 0..bytes.len() {
        if !bytes[pos].is_ascii() {
            continue;
        }
        for bit in [0u8, 3, 5] {
            let mut b = bytes.to_vec();
            b[pos] ^= 1 << bit;
            if let Ok(s) = String::from_utf8(b) {
                bad.push((format!("bit {bit} at byte {pos}"), s));
            }
        }
    }
    // Drop or insert a hash line.
    let hash_lines: Vec<usize> = (3..lines.len()).take_while(|&i| lines[i] != "\n").collect();
    assert!(!hash_lines.is_empty());
    for &i in &hash_lines {
        let mut dropped = lines.clone();
        dropped.remove(i);
        bad.push((format!("drop hash {i}"), dropped.concat()));
        let mut inserted = lines.clone();
        inserted.insert(i, "q80LoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
        bad.push((format!("insert hash {i}"), inserted.concat()));
        let mut dup = lines.clone();
        dup.insert(i, lines[i]);
        bad.push((format!("duplicate hash {i}"), dup.concat()));
    }
    let other_key = Verifier::new(ORIGIN, SigningKey::from_bytes(&[1u8; 32]).verifying_key())
        .unwrap()
        .to_string();
    for (desc, text) in bad {
        let key = if desc == "wrong key" { &other_key } else { &vk };
        assert!(
            verify_proof_file(&text, key).is_err(),
            "accepted after {desc}"
        );
    }
}

fn base64_of(h: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// Each tampering makes `verify_dir` fail and name the place.
#[test]
fn tampering_is_detected_and_located() {
    type Tamper = (&'static str, fn(&Path), &'static str);
    let cases: Vec<Tamper> = vec![
        (
            "entry byte",
            |d| flip_in_bundle(d, &bundle_path(1, 256), 10),
            "entry 266",
        ),
        (
            "tile byte",
            |d| flip(d, &tile_path(0, 1, 256), 40),
            "tile `tile/0/001`",
        ),
        (
            "level-1 tile byte",
            |d| flip(d, &tile_path(1, 0, 2), 33),
            "tile `tile/1/000.p/2`",
        ),
        (
            "checkpoint byte",
            |d| flip(d, "checkpoint", 2),
            "checkpoint",
        ),
        (
            "delete entry",
            |d| {
                edit_bundle(d, &bundle_path(0, 256), |es| {
                    es.remove(5);
                })
            },
            "entry 5",
        ),
        (
            "reorder entries",
            |d| edit_bundle(d, &bundle_path(0, 256), |es| es.swap(3, 4)),
            "entry 3",
        ),
        (
            "truncate wal",
            |d| {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("wal"))
                    .unwrap();
                let len = f.metadata().unwrap().len();
                f.set_len(len - 500).unwrap();
            },
            "write-ahead log ends at index",
        ),
        (
            "delete last bundle",
            |d| fs::remove_file(d.join(bundle_path(2, 88))).unwrap(),
            "tile/entries/002.p/88",
        ),
        (
            "delete tile",
            |d| fs::remove_file(d.join(tile_path(0, 0, 256))).unwrap(),
            "tile/0/000",
        ),
        (
            "rewrite wal entry",
            |d| {
                let mut b = fs::read(d.join("wal")).unwrap();
                let n = b.len();
                b[n - 30] ^= 1;
                fs::write(d.join("wal"), b).unwrap();
            },
            "entry 599",
        ),
    ];
    for (name, tamper, expect) in cases {
        let d = tempfile::tempdir().unwrap();
        let vk = {
            let l = filled(d.path(), 600);
            l.verifier_key()
        };
        verify_dir(d.path(), &vk, None).unwrap();
        tamper(d.path());
        let err = verify_dir(d.path(), &vk, None).expect_err(name).to_string();
        assert!(
            err.contains(expect),
            "{name}: error `{err}` does not name `{expect}`"
        );
    }
}

fn flip(d: &Path, path: &str, at: usize) {
    let p = d.join(path);
    let mut b = fs::read(&p).unwrap();
    b[at] ^= 0x01;
    fs::write(&p, b).unwrap();
}

fn flip_in_bundle(d: &Path, path: &str, entry_index: usize) {
    edit_bundle(d, path, |es| {
        let e = &mut es[entry_index];
        let pos = e.iter().position(|&c| c == b'u').unwrap();
        e[pos] = b'v';
    });
}

fn edit_bundle(d: &Path, path: &str, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let p = d.join(path);
    let raw = fs::read(&p).unwrap();
    let mut es: Vec<Vec<u8>> = tiles::decode_bundle(&raw)
        .unwrap()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    f(&mut es);
    fs::write(
        &p,
        tiles::encode_bundle(es.iter().map(Vec::as_slice)).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_rewritten_history_fails_consistency() {
    let d1 = tempfile::tempdir().unwrap();
    let old = {
        let l = filled(d1.path(), 100);
        l.checkpoint().unwrap()
    };
    // A forked log with the same key: same first 50, then different.
    let d2 = tempfile::tempdir().unwrap();
    let l2 = Ledger::open(d2.path(), ORIGIN, key()).unwrap();
    for i in 0..200 {
        l2.append(&entry(if i == 50 { 9999 } else { i })).unwrap();
    }
    l2.checkpoint().unwrap();
    let err = verify_dir(d2.path(), &l2.verifier_key(), Some(&old.text)).unwrap_err();
    assert!(err.to_string().contains("history rewritten"), "{err}");
}

#[test]
fn torn_tails_are_cut_and_acknowledged_entries_kept() {
    let d = tempfile::tempdir().unwrap();
    drop(filled(d.path(), 10));
    let wal = d.path().join("wal");
    let good = fs::read(&wal).unwrap();
    let last_len = entry(9).to_canonical_json().unwrap().len() + 8;
    // Losing an entry the checkpoint covers is an error, never a silent cut.
    for cut in 1..last_len {
        fs::write(&wal, &good[..good.len() - cut]).unwrap();
        assert!(matches!(
            Ledger::open(d.path(), ORIGIN, key()),
            Err(LedgerError::WalBehindCheckpoint {
                wal: 9,
                checkpoint: 10
            })
        ));
    }
    // A torn append after the checkpoint (the start of a record, then zeros) is cut off.
    // Anything else there is damage and refuses to open (`tests/security.rs`, finding 4).
    let mut torn_record = Vec::new();
    let e = entry(10).to_canonical_json().unwrap();
    airlock_ledger::wal::encode_record(&e, &leaf_hash(&e), &mut torn_record);
    let junks: Vec<Vec<u8>> = vec![
        vec![0],
        vec![0, 0, 0, 0, 0, 0, 0, 0],
        b"\x00\x00\x00\x05{bc".to_vec(),
        b"\x00\x00\x00\x02{}\x00\x00\x00\x00".to_vec(),
        torn_record[..torn_record.len() - 1].to_vec(),
        torn_record[..5].to_vec(),
    ];
    for junk in junks {
        let d = tempfile::tempdir().unwrap();
        let vk = {
            let l = filled(d.path(), 10);
            l.verifier_key()
        };
        let wal = d.path().join("wal");
        let mut b = fs::read(&wal).unwrap();
        b.extend_from_slice(&junk);
        fs::write(&wal, &b).unwrap();
        let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
        assert_eq!(l.size().unwrap(), 10);
        // Zeros after the last non-zero byte are not part of the torn append; a tail of
        // zeros alone is preallocated space, kept.
        let torn = junk.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        assert_eq!(l.recovery().torn_bytes, torn as u64);
        let kept = if torn == 0 { junk.len() } else { 0 };
        assert_eq!(l.recovery().preallocated_bytes, kept as u64);
        assert_eq!(l.append(&entry(10)).unwrap(), 10);
        l.checkpoint().unwrap();
        drop(l);
        verify_dir(d.path(), &vk, None).unwrap();
    }
}

#[test]
fn preallocated_space_is_overwritten_and_survives_reopening() {
    // On disk, not a tmpfs /tmp without O_DIRECT.
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let l = Arc::new(Ledger::open(d.path(), ORIGIN, key()).unwrap());
    let vk = l.verifier_key();
    let first = l.preallocate().unwrap();
    let wal = d.path().join("wal");
    let direct = first > 0;
    if direct {
        assert!(fs::metadata(&wal).unwrap().len() >= 1 << 20);
    }
    // Four appenders and a preallocating thread: 8,000 entries (about 2 MB), past several
    // extensions.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pre = {
        let (l, stop) = (l.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut added = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                added += l.preallocate().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            added
        })
    };
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                for k in 0..40u64 {
                    let batch: Vec<Entry> =
                        (0..50).map(|j| entry(t * 10_000 + k * 50 + j)).collect();
                    l.append_many(&batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let added = pre.join().unwrap();
    assert_eq!(l.size().unwrap(), 8000);
    l.checkpoint().unwrap();
    let l = Arc::try_unwrap(l).unwrap();
    drop(l);
    assert_eq!(wal::read_all(&wal).unwrap().len(), 8000);
    let mut tail = Tail::default();
    assert_eq!(read_new_entries(d.path(), &mut tail).unwrap().len(), 8000);
    assert!(read_new_entries(d.path(), &mut tail).unwrap().is_empty());
    let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
    let r = l.recovery();
    assert_eq!((r.entries, r.torn_bytes), (8000, 0));
    if direct {
        assert!(added > 0 && r.preallocated_bytes > 0, "{added} {r:?}");
    }
    // Appends after reopening go over the zeros, and the log still verifies.
    assert_eq!(l.append(&entry(99_999)).unwrap(), 8000);
    assert_eq!(l.recovery().preallocated_bytes, r.preallocated_bytes);
    l.checkpoint().unwrap();
    drop(l);
    let report = verify_dir(d.path(), &vk, None).unwrap();
    assert_eq!(report.checkpoint.size, 8001);
    assert_eq!(report.wal_entries, Some(8001));
}

#[test]
fn a_foreign_or_tampered_wal_is_refused() {
    let d = tempfile::tempdir().unwrap();
    drop(filled(d.path(), 20));
    let wal = d.path().join("wal");
    let mut b = fs::read(&wal).unwrap();
    // Change entry 3 and fix up its check bytes: the WAL is self-consistent but no longer
    // hashes to the signed checkpoint.
    let mut pos = 12usize;
    for _ in 0..3 {
        let len = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4 + len + 4;
    }
    let len = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
    let body = pos + 4;
    let i = b[body..body + len].iter().position(|&c| c == b'u').unwrap();
    b[body + i] = b'v';
    let lh = leaf_hash(&b[body..body + len]);
    b[body + len..body + len + 4].copy_from_slice(&lh[..4]);
    fs::write(&wal, &b).unwrap();
    assert!(matches!(
        Ledger::open(d.path(), ORIGIN, key()),
        Err(LedgerError::WalMismatch { size: 20 })
    ));
    fs::write(&wal, b"not a wal at all, definitely").unwrap();
    assert!(matches!(
        Ledger::open(d.path(), ORIGIN, key()),
        Err(LedgerError::NotAWal { .. })
    ));
}

#[test]
fn search_export_fhir_disclosures() {
    let d = tempfile::tempdir().unwrap();
    let l = filled(d.path(), 40);
    let p = patient_pseudonym(b"deploy-key", "MRN2");
    let disclose = Entry::new(
        Timestamp::new(t0() + Duration::days(1)),
        ActorId::new("svc.exporter").unwrap(),
        EventType::Disclosure,
        Zone::Airlock,
        RequestId::from_bytes([9; 16]),
        OutcomeKind::Success,
    )
    .with_purpose(Purpose::PublicHealth)
    .with_patient(p.clone())
    .with_disclosure(DisclosureInfo {
        recipient: "State registry".into(),
        description: "lab results 2026-02".into(),
    });
    let idx = l.append(&disclose).unwrap();
    let bg = Entry::new(
        Timestamp::new(t0()),
        ActorId::new("dr.bob").unwrap(),
        EventType::BreakGlassStart,
        Zone::Clinical,
        RequestId::from_bytes([8; 16]),
        OutcomeKind::Allowed,
    );
    l.append(&bg).unwrap();

    let f = Filter {
        patient: Some(p.clone()),
        ..Filter::default()
    };
    let hits = search(d.path(), &f).unwrap();
    assert!(hits.iter().all(|(_, e)| e.patient.as_ref() == Some(&p)));
    assert!(hits.iter().any(|(i, _)| *i == idx));
    let f = Filter {
        actor: Some(ActorId::new("user1").unwrap()),
        since: Some(t0() + Duration::seconds(10)),
        until: Some(t0() + Duration::seconds(20)),
        ..Filter::default()
    };
    let hits = search(d.path(), &f).unwrap();
    assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![11, 16]);

    let all: Vec<(u64, Entry)> = read_entries(d.path())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut out = Vec::new();
    write_jsonl(all.iter().map(|(_, e)| e), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), all.len());
    for line in text.lines() {
        Entry::parse(line.as_bytes()).unwrap();
    }

    let fhir = to_fhir_audit_event(41, &bg);
    assert_eq!(fhir["resourceType"], "AuditEvent");
    assert_eq!(fhir["type"]["code"], "110113");
    assert_eq!(fhir["subtype"][0]["code"], "110127");
    assert_eq!(fhir["purposeOfEvent"][0]["coding"][0]["code"], "ETREAT");
    let stop = Entry {
        event: EventType::BreakGlassStop,
        ..bg.clone()
    };
    assert_eq!(
        to_fhir_audit_event(1, &stop)["subtype"][0]["code"],
        "110138"
    );
    let fd = to_fhir_audit_event(idx, &disclose);
    assert_eq!(fd["entity"][0]["what"]["identifier"]["value"], p.as_str());

    let acc = disclosures(
        all.iter().map(|(i, e)| (*i, e)),
        &p,
        t0() + Duration::days(30),
    );
    assert_eq!(
        acc.len(),
        1,
        "research exports in the fixture have no disclosure event type"
    );
    assert_eq!(acc[0].recipient, "State registry");
    assert_eq!(acc[0].purpose, "public-health (PUBHLTH)");
    // Older than six years: gone.
    let acc = disclosures(
        all.iter().map(|(i, e)| (*i, e)),
        &p,
        t0() + Duration::days(6 * 366 + 2),
    );
    assert!(acc.is_empty());
}

#[test]
fn ledger_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ledger>();
}

#[test]
fn deferred_publishing_leaves_tiles_to_the_publisher() {
    let d = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::open(d.path(), ORIGIN, key()).unwrap());
    l.defer_publishing(true);
    for i in 0..300 {
        l.append(&entry(i)).unwrap();
    }
    // The committer wrote the WAL only.
    assert!(!d.path().join(tile_path(0, 0, 256)).exists());
    l.publish().unwrap();
    assert!(d.path().join(tile_path(0, 0, 256)).exists());
    assert!(d.path().join(bundle_path(0, 256)).exists());
    // A publisher racing eight appending threads: every full tile and bundle is written once,
    // from the entries in order, and the result verifies.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (l, stop) = (l.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                l.publish().unwrap();
                rounds += 1;
            }
            rounds
        })
    };
    let writers: Vec<_> = (0..8u64)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    l.append(&entry(10_000 + t * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert!(publisher.join().unwrap() > 0);
    l.publish().unwrap();
    let size = l.size().unwrap();
    assert_eq!(size, 1900);
    for t in 0..size / 256 {
        assert!(d.path().join(bundle_path(t, 256)).exists(), "bundle {t}");
        assert!(d.path().join(tile_path(0, t, 256)).exists(), "tile {t}");
    }
    // The checkpoint publishes the rest (partial tiles) and everything verifies, bundles
    // included: each holds the entries of its indices.
    let cp = l.checkpoint().unwrap();
    assert_eq!(cp.checkpoint.size, 1900);
    let r = verify_dir(d.path(), &l.verifier_key(), None).unwrap();
    assert_eq!(r.entries, 1900);
}

#[test]
fn a_publisher_that_falls_behind_is_helped_by_the_committer() {
    // Deferred publishing with no publisher running (as when it is starved of CPU): the
    // entries wait in memory up to MAX_DEFERRED, then the committing thread writes them.
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
    l.defer_publishing(true);
    let batch = |from: u64| (from..from + 256).map(entry).collect::<Vec<_>>();
    let mut n = 0;
    while n + 256 <= MAX_DEFERRED {
        l.append_many(&batch(n)).unwrap();
        n += 256;
    }
    assert_eq!(l.unpublished(), MAX_DEFERRED);
    assert!(!d.path().join(tile_path(0, 0, 256)).exists());
    l.append(&entry(n)).unwrap();
    assert_eq!(
        l.unpublished(),
        1,
        "the committer published every full tile"
    );
    let last = MAX_DEFERRED / 256 - 1;
    assert!(d.path().join(tile_path(0, last, 256)).exists());
    assert!(d.path().join(bundle_path(last, 256)).exists());
    l.checkpoint().unwrap();
    let r = verify_dir(d.path(), &l.verifier_key(), None).unwrap();
    assert_eq!(r.entries, MAX_DEFERRED + 1);
}

#[test]
fn paced_publishing_writes_the_same_files_and_starts_their_writeback() {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
    l.defer_publishing(true);
    l.append_many(&(0..600).map(entry).collect::<Vec<_>>())
        .unwrap();
    let started = std::time::Instant::now();
    l.publish_paced(std::time::Duration::from_millis(5))
        .unwrap();
    // Two tiles and two bundles, a pause after each.
    assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    for t in 0..2 {
        assert!(d.path().join(tile_path(0, t, 256)).exists(), "tile {t}");
        assert!(d.path().join(bundle_path(t, 256)).exists(), "bundle {t}");
    }
    assert_eq!(l.unpublished(), 600 - 512);
    l.checkpoint().unwrap();
    assert_eq!(
        verify_dir(d.path(), &l.verifier_key(), None)
            .unwrap()
            .entries,
        600
    );
    // The hint itself: fine on a file written earlier, an error for a missing one.
    let store = FsStore::new(d.path());
    store.write_behind(&bundle_path(0, 256)).unwrap();
    assert!(store.write_behind("tile/0/999").is_err());
}

#[test]
fn the_tile_tree_is_placed_away_from_the_wal() {
    use rustix::fs::{IFlags, ioctl_getflags};
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("ledger");
    let l = Ledger::open(&dir, ORIGIN, key()).unwrap();
    l.append_many(&(0..256).map(entry).collect::<Vec<_>>())
        .unwrap();
    assert!(dir.join(tile_path(0, 0, 256)).exists());
    match ioctl_getflags(fs::File::open(&dir).unwrap()) {
        // ext2/3/4: the ledger directory asks for its subdirectories (the tile tree) to be
        // placed as top-level ones, away from the WAL's inode.
        Ok(flags) => assert!(flags.contains(IFlags::TOPDIR), "{flags:?}"),
        Err(e) => eprintln!("skipping: this file system has no inode flags ({e})"),
    }
}

#[test]
fn superseded_partial_tiles_are_removed() {
    let d = tempfile::tempdir().unwrap();
    let l = filled(d.path(), 300);
    let old = l.checkpoint().unwrap();
    assert!(d.path().join("tile/0/001.p/44").exists());
    assert!(d.path().join("tile/entries/001.p/44").exists());
    for i in 300..520 {
        l.append(&entry(i)).unwrap();
    }
    l.checkpoint().unwrap();
    assert!(!d.path().join("tile/0/001.p/44").exists());
    assert!(!d.path().join("tile/entries/001.p/44").exists());
    assert!(d.path().join("tile/0/002.p/8").exists());
    // Level 1 is still partial: the old partial there stays until tile/1/000 is full.
    assert!(d.path().join("tile/1/000.p/1").exists());
    verify_dir(d.path(), &l.verifier_key(), Some(&old.text)).unwrap();
}

#[test]
fn incremental_reader_sees_each_entry_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path(), ORIGIN, key()).unwrap();
    let mut tail = airlock_ledger::Tail::default();
    assert!(
        airlock_ledger::read_new_entries(dir.path(), &mut tail)
            .unwrap()
            .is_empty()
    );
    for i in 0..5 {
        l.append(&entry(i)).unwrap();
    }
    let first = airlock_ledger::read_new_entries(dir.path(), &mut tail).unwrap();
    assert_eq!(first.len(), 5);
    assert!(
        airlock_ledger::read_new_entries(dir.path(), &mut tail)
            .unwrap()
            .is_empty()
    );
    for i in 5..12 {
        l.append(&entry(i)).unwrap();
    }
    let second = airlock_ledger::read_new_entries(dir.path(), &mut tail).unwrap();
    assert_eq!(second.len(), 7);
    let all: Vec<(u64, airlock_ledger::Entry)> = airlock_ledger::read_entries(dir.path())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let inc: Vec<(u64, airlock_ledger::Entry)> = first.into_iter().chain(second).collect();
    assert_eq!(inc, all);
    assert_eq!(tail.next, 12);
}
