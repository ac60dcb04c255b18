//! Security regressions, named after the findings of issue 28 ("security hardening").
//!
//! Finding 4: a flipped byte in the WAL's unsigned tail (entries a kill or crash left without a
//! signed checkpoint) made recovery cut off every later entry and sign over the rest, so
//! acknowledged PHI lookups vanished from a log that then verified. Only a torn final record
//! may be repaired; anything else refuses to open, names the offset and keeps the bytes.
//!
//! Finding 6: a flipped bit in a partial tile or bundle of an earlier size (`tile/0/000.p/1`,
//! `tile/entries/000.p/2`) passed `verify_dir`, which read only the latest ones, while a client
//! holding that earlier checkpoint may fetch exactly those files (C2SP tlog-tiles: a log must
//! keep serving them until the full tile exists). Every tile and bundle file present is now
//! checked against the tree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test"
)]

use std::fs;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use airlock_ledger::wal::Defect;
use airlock_ledger::*;
use airlock_types::{ActorId, Purpose, RequestId, Zone};
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "airlock.test/security";
/// As in the finding: 125 acknowledged lookups, the last 65 unsigned.
const TOTAL: u64 = 125;
const SIGNED: u64 = 60;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A PHI lookup, as the server logs one (fixed times, so every run has the same bytes).
fn lookup(i: u64) -> Entry {
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut rid = [0u8; 16];
    rid[..8].copy_from_slice(&i.to_be_bytes());
    Entry::new(
        Timestamp::new(t0 + Duration::seconds(i as i64)),
        ActorId::new(format!("clinician{}", i % 3)).unwrap(),
        EventType::Access,
        Zone::Clinical,
        RequestId::from_bytes(rid),
        OutcomeKind::Success,
    )
    .with_purpose(Purpose::Treatment)
    .with_resource("fhir:Patient")
    .with_patient(patient_pseudonym(b"deploy-key", &format!("MRN{i}")))
}

/// A ledger of `total` lookups whose checkpoint covers only the first `signed`, as a SIGTERM or
/// a crash leaves it (dropped without a checkpoint); the WAL is preallocated where the file
/// system allows, so zeros follow its records. Returns the verifier key.
fn unsigned_tail(dir: &Path, signed: u64, total: u64) -> String {
    let l = Ledger::open(dir, ORIGIN, key()).unwrap();
    l.preallocate().unwrap();
    let first: Vec<Entry> = (0..signed).map(lookup).collect();
    l.append_many(&first).unwrap();
    l.checkpoint().unwrap();
    for i in signed..total {
        l.append(&lookup(i)).unwrap();
    }
    assert_eq!(l.unsigned_entries().unwrap(), total - signed);
    l.verifier_key()
}

/// On disk, not a tmpfs `/tmp` (no `O_DIRECT`, so no preallocated zeros).
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// The WAL's records: `(byte offset, entry length)`.
fn records(wal: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 12;
    while pos + 4 <= wal.len() {
        let len = u32::from_be_bytes(wal[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push((pos, len));
        pos += 8 + len;
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Opening `dir` must fail with `Corrupt` at `offset` / `index`, naming both in the message,
/// and change neither the WAL nor the checkpoint.
fn assert_refused(dir: &Path, offset: usize, index: u64, case: &str) -> Defect {
    let wal = fs::read(dir.join("wal")).unwrap();
    let checkpoint = fs::read(dir.join("checkpoint")).unwrap();
    let err = match Ledger::open(dir, ORIGIN, key()) {
        Ok(l) => panic!(
            "{case}: opened with {} entries instead of refusing",
            l.size().unwrap()
        ),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("byte {offset}")) && msg.contains(&format!("entry {index}")),
        "{case}: `{msg}` does not name byte {offset} and entry {index}"
    );
    let LedgerError::Corrupt {
        offset: o,
        index: i,
        defect,
        ..
    } = err
    else {
        panic!("{case}: not `Corrupt`: {err:?}");
    };
    assert_eq!((o, i), (offset as u64, index), "{case}");
    assert!(
        fs::read(dir.join("wal")).unwrap() == wal,
        "{case}: the WAL was modified"
    );
    assert!(
        fs::read(dir.join("checkpoint")).unwrap() == checkpoint,
        "{case}: a checkpoint was signed over the damage"
    );
    defect
}

#[test]
fn finding_04_flipped_byte_in_unsigned_tail_refuses_open_and_keeps_bytes() {
    let d = tempdir();
    let vk = unsigned_tail(d.path(), SIGNED, TOTAL);
    let wal = d.path().join("wal");
    let mut bytes = fs::read(&wal).unwrap();
    let recs = records(&bytes);
    assert_eq!(recs.len() as u64, TOTAL);
    // One flipped bit in the body of entry 70 (unsigned), with 54 acknowledged entries after.
    let (at, len) = recs[70];
    bytes[at + 4 + len / 2] ^= 0x01;
    fs::write(&wal, &bytes).unwrap();

    let defect = assert_refused(d.path(), at, 70, "flipped byte");
    assert_eq!(defect, Defect::CheckMismatch);
    // Refused again on the next try, for the same reason: nothing was "repaired".
    assert_refused(d.path(), at, 70, "second open");
    // An independent check of the directory names the same place.
    let err = verify_dir(d.path(), &vk, None).unwrap_err();
    assert!(
        matches!(err, VerifyError::WalCorrupt { offset, index: 70, .. } if offset == at as u64),
        "{err}"
    );
}

#[test]
fn finding_04_torn_final_record_is_repaired() {
    let base = tempdir();
    let vk = unsigned_tail(base.path(), SIGNED, TOTAL);
    let good = fs::read(base.path().join("wal")).unwrap();
    let recs = records(&good);
    let (at, len) = recs[TOTAL as usize - 1];
    let end = at + 8 + len;
    let expected: Vec<Vec<u8>> = (0..TOTAL - 1)
        .map(|i| lookup(i).to_canonical_json().unwrap())
        .collect();
    // Cut inside the length, the entry and the check bytes; as a file that ends there (an
    // append that extended the file) and as zeros up to where the file ended (an append over
    // preallocated space).
    let cuts = [
        1,
        2,
        3,
        4,
        5,
        9,
        len / 2,
        len + 3,
        len + 4,
        len + 5,
        len + 6,
        len + 7,
    ];
    for cut in cuts {
        for zeros in [false, true] {
            let case = format!("cut {cut} bytes into the last record, zeros {zeros}");
            let d = tempdir();
            copy_dir(base.path(), d.path());
            let mut b = good[..at + cut].to_vec();
            if zeros {
                b.resize(good.len(), 0);
            }
            fs::write(d.path().join("wal"), &b).unwrap();
            let l = Ledger::open(d.path(), ORIGIN, key()).unwrap_or_else(|e| panic!("{case}: {e}"));
            let r = l.recovery();
            assert_eq!(r.entries, TOTAL - 1, "{case}");
            assert!(r.torn_bytes <= cut as u64, "{case}: {r:?}");
            assert_eq!(r.unsigned_entries, TOTAL - 1 - SIGNED, "{case}");
            // Every complete entry kept, and the log goes on over the repaired end.
            assert_eq!(l.append(&lookup(TOTAL - 1)).unwrap(), TOTAL - 1, "{case}");
            l.checkpoint().unwrap();
            drop(l);
            let got: Vec<Vec<u8>> = wal::read_all(&d.path().join("wal")).unwrap();
            assert_eq!(&got[..TOTAL as usize - 1], expected.as_slice(), "{case}");
            assert_eq!(got[TOTAL as usize - 1], good[at + 4..end - 4], "{case}");
            let report = verify_dir(d.path(), &vk, None).unwrap();
            assert_eq!(report.checkpoint.size, TOTAL, "{case}");
        }
    }
}

#[test]
fn finding_04_damage_anywhere_but_a_torn_final_record_refuses_open() {
    let base = tempdir();
    drop(unsigned_tail(base.path(), SIGNED, TOTAL));
    let good = fs::read(base.path().join("wal")).unwrap();
    let recs = records(&good);
    let (last, last_len) = recs[TOTAL as usize - 1];
    let end = last + 8 + last_len;
    let (mid, mid_len) = recs[100];
    let set_len = |b: &mut Vec<u8>, at: usize, len: u32| {
        b[at..at + 4].copy_from_slice(&len.to_be_bytes());
    };
    type Tamper = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Tamper, usize, u64, Defect)> = vec![
        (
            "flipped byte in the last record's entry",
            Box::new(move |b| b[last + 4 + last_len / 3] ^= 0x40),
            last,
            TOTAL - 1,
            Defect::CheckMismatch,
        ),
        (
            "flipped byte in the last record's check",
            Box::new(move |b| b[end - 4] ^= 0xff),
            last,
            TOTAL - 1,
            Defect::CheckMismatch,
        ),
        (
            "flipped byte in a signed record",
            Box::new(|b| {
                let (at, len) = records(b)[10];
                b[at + 4 + len - 2] ^= 0x02;
            }),
            recs[10].0,
            10,
            Defect::CheckMismatch,
        ),
        (
            "a middle record's length made longer",
            Box::new(move |b| set_len(b, mid, mid_len as u32 + 40)),
            mid,
            100,
            Defect::CheckMismatch,
        ),
        (
            "a middle record's length made shorter",
            Box::new(move |b| set_len(b, mid, mid_len as u32 - 1)),
            mid,
            100,
            Defect::CheckMismatch,
        ),
        (
            "the last record's length made longer (it would hide the whole record)",
            Box::new(move |b| set_len(b, last, last_len as u32 + 300)),
            last,
            TOTAL - 1,
            Defect::NotAPrefix,
        ),
        (
            "a middle record's length zeroed",
            Box::new(move |b| set_len(b, mid, 0)),
            mid,
            100,
            Defect::DataAfterEnd,
        ),
        (
            "a middle record's length out of range",
            Box::new(move |b| set_len(b, mid, 70_000)),
            mid,
            100,
            Defect::LengthOutOfRange { len: 70_000 },
        ),
        (
            "a middle record zeroed (a lost page), records after it",
            Box::new(move |b| b[mid..mid + 8 + mid_len].fill(0)),
            mid,
            100,
            Defect::DataAfterEnd,
        ),
        (
            "an impossible length after the last record",
            Box::new(move |b| {
                b.resize(b.len().max(end + 4), 0);
                b[end..end + 4].fill(0xff);
            }),
            end,
            TOTAL,
            Defect::LengthOutOfRange { len: u32::MAX },
        ),
        (
            "data after zeros after the last record",
            Box::new(move |b| {
                b.resize(b.len().max(end + 200), 0);
                b[end + 100] = b'x';
            }),
            end,
            TOTAL,
            Defect::DataAfterEnd,
        ),
        (
            "a record whose entry is not a JSON object, at the end",
            Box::new(move |b| {
                b.resize(b.len().max(end + 7), 0);
                b[end..end + 7].copy_from_slice(b"\x00\x00\x00\x05abc");
            }),
            end,
            TOTAL,
            Defect::NotAPrefix,
        ),
    ];
    for (case, tamper, offset, index, defect) in cases {
        let d = tempdir();
        copy_dir(base.path(), d.path());
        let mut b = good.clone();
        tamper(&mut b);
        fs::write(d.path().join("wal"), &b).unwrap();
        assert_eq!(
            assert_refused(d.path(), offset, index, case),
            defect,
            "{case}"
        );
    }
}

/// Every single-bit flip in the last record (and the previous record's check bytes) refuses
/// to open, except one that turns a check byte into a trailing zero of the last record: zeros
/// cannot be told from bytes a torn write never wrote (the module docs of `wal` say so), and
/// that record was then never proved whole. (The low bit everywhere and the high bit in the
/// length and check bytes: each open verifies a signature, slow in a debug build.)
#[test]
fn finding_04_every_flipped_bit_near_the_end_refuses_open_or_loses_nothing_else() {
    let base = tempdir();
    drop(unsigned_tail(base.path(), SIGNED, TOTAL));
    let good = fs::read(base.path().join("wal")).unwrap();
    let recs = records(&good);
    let (last, last_len) = recs[TOTAL as usize - 1];
    let from = last - 4;
    let end = last + 8 + last_len;
    let d = tempdir();
    copy_dir(base.path(), d.path());
    let wal = d.path().join("wal");
    let mut ambiguous = 0;
    for pos in from..end {
        let framing = pos < last + 4 || pos >= end - 4;
        for bit in [0x01u8, 0x80].into_iter().take(if framing { 2 } else { 1 }) {
            let mut b = good.clone();
            b[pos] ^= bit;
            // Only the flipped byte is written: the rest is as `good` has it.
            let f = fs::OpenOptions::new().write(true).open(&wal).unwrap();
            f.write_all_at(&b[pos..=pos], pos as u64).unwrap();
            drop(f);
            match Ledger::open(d.path(), ORIGIN, key()) {
                Err(LedgerError::Corrupt { .. }) => {
                    let f = fs::OpenOptions::new().write(true).open(&wal).unwrap();
                    f.write_all_at(&good[pos..=pos], pos as u64).unwrap();
                }
                Err(e) => panic!("byte {pos} ^ {bit:#x}: {e}"),
                Ok(l) => {
                    let trailing_zeros = b[pos..end].iter().all(|&c| c == 0);
                    assert!(
                        pos >= end - 4 && trailing_zeros,
                        "byte {pos} ^ {bit:#x} opened with {} entries",
                        l.size().unwrap()
                    );
                    assert_eq!(l.size().unwrap(), TOTAL - 1);
                    ambiguous += 1;
                    drop(l);
                    fs::remove_dir_all(d.path()).unwrap();
                    copy_dir(base.path(), d.path());
                }
            }
        }
    }
    assert!(
        fs::read(&wal).unwrap() == good,
        "a refused open modified the WAL"
    );
    assert!(ambiguous <= 2, "{ambiguous} flips opened");
}

#[test]
fn finding_04_unsigned_entries_are_counted() {
    let d = tempdir();
    let vk = unsigned_tail(d.path(), 10, 15);
    // A stop without a checkpoint: the independent check says what is unsigned.
    let report = verify_dir(d.path(), &vk, None).unwrap();
    assert_eq!(report.checkpoint.size, 10);
    assert_eq!(report.wal_entries, Some(15));
    assert_eq!(report.unsigned_entries(), 5);
    // Opening says what it found unsigned, then signs it.
    let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
    assert_eq!(l.recovery().unsigned_entries, 5);
    assert_eq!(l.recovery().checkpoint_size, 10);
    assert_eq!(l.unsigned_entries().unwrap(), 0);
    l.append(&lookup(15)).unwrap();
    assert_eq!(l.unsigned_entries().unwrap(), 1);
    l.checkpoint().unwrap();
    assert_eq!(l.unsigned_entries().unwrap(), 0);
    drop(l);
    let report = verify_dir(d.path(), &vk, None).unwrap();
    assert_eq!(report.unsigned_entries(), 0);
}

/// Lookups `from..to`, each followed by a checkpoint, as a quiet deployment signs them: every
/// size leaves its own partial tile and bundle.
fn one_checkpoint_per_entry(l: &Ledger, from: u64, to: u64) {
    for i in from..to {
        l.append(&lookup(i)).unwrap();
        l.checkpoint().unwrap();
    }
}

fn flip_bit(dir: &Path, path: &str, at: usize) {
    let p = dir.join(path);
    let mut b = fs::read(&p).unwrap_or_else(|e| panic!("`{path}`: {e}"));
    b[at] ^= 0x01;
    fs::write(&p, b).unwrap();
}

/// A ledger of 3 entries signed at sizes 1, 2 and 3: `tile/0/000.p/{1,2,3}` and
/// `tile/entries/000.p/{1,2,3}`, the latest of each named by the checkpoint.
fn three_sizes(dir: &Path) -> String {
    let l = Ledger::open(dir, ORIGIN, key()).unwrap();
    one_checkpoint_per_entry(&l, 0, 3);
    for w in 1..=3 {
        assert!(dir.join(format!("tile/0/000.p/{w}")).is_file());
        assert!(dir.join(format!("tile/entries/000.p/{w}")).is_file());
    }
    l.verifier_key()
}

#[test]
fn finding_06_flipped_bit_in_an_earlier_partial_tile_is_caught() {
    let d = tempdir();
    let vk = three_sizes(d.path());
    verify_dir(d.path(), &vk, None).unwrap();
    // The second hash's last byte: only that tile file changes.
    flip_bit(d.path(), "tile/0/000.p/1", 31);
    let err = verify_dir(d.path(), &vk, None).expect_err("a bad stale partial tile verified");
    assert!(
        matches!(&err, VerifyError::TileMismatch { path, position: 0 } if path == "tile/0/000.p/1"),
        "{err}"
    );
}

#[test]
fn finding_06_flipped_bit_in_an_earlier_partial_bundle_is_caught() {
    let d = tempdir();
    let vk = three_sizes(d.path());
    // Inside the second entry (after its two length bytes), so the bundle still decodes.
    let bundle = fs::read(d.path().join("tile/entries/000.p/2")).unwrap();
    let first_len = u16::from_be_bytes([bundle[0], bundle[1]]) as usize;
    flip_bit(d.path(), "tile/entries/000.p/2", 2 + first_len + 2 + 10);
    let err = verify_dir(d.path(), &vk, None).expect_err("a bad stale partial bundle verified");
    assert!(
        err.to_string().contains("tile/entries/000.p/2") && err.to_string().contains("entry 1"),
        "{err}"
    );
}

#[test]
fn finding_06_the_latest_partial_tile_was_already_caught() {
    // The control the finding names: the same flip in the latest partial.
    let d = tempdir();
    let vk = three_sizes(d.path());
    flip_bit(d.path(), "tile/0/000.p/3", 31);
    let err = verify_dir(d.path(), &vk, None).unwrap_err();
    assert!(err.to_string().contains("tile/0/000.p/3"), "{err}");
}

/// Partials left from before a restart (the ledger deletes only those it wrote since opening)
/// and partials of higher levels are checked too, and an untouched ledger full of them verifies.
#[test]
fn finding_06_leftover_partials_of_every_level_are_checked() {
    let d = tempdir();
    let vk = {
        let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
        let first: Vec<Entry> = (0..253).map(lookup).collect();
        l.append_many(&first).unwrap();
        one_checkpoint_per_entry(&l, 253, 255);
        l.verifier_key()
    };
    // Reopened: the partials of sizes 254 and 255 are not the new writer's to delete.
    let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
    one_checkpoint_per_entry(&l, 255, 258);
    drop(l);
    for path in [
        "tile/0/000.p/254",
        "tile/0/000.p/255",
        "tile/entries/000.p/255",
        "tile/0/001.p/1",
        "tile/1/000.p/1",
    ] {
        assert!(d.path().join(path).is_file(), "{path}");
    }
    let report = verify_dir(d.path(), &vk, None).unwrap();
    assert_eq!(report.checkpoint.size, 258);
    for (path, at) in [
        ("tile/0/000.p/254", 32 * 200),
        ("tile/entries/000.p/255", 40),
        ("tile/1/000.p/1", 5),
    ] {
        let c = tempdir();
        copy_dir(d.path(), c.path());
        flip_bit(c.path(), path, at);
        let err = verify_dir(c.path(), &vk, None).expect_err(path).to_string();
        assert!(err.contains(path), "{path}: {err}");
    }
}

/// A partial tile for entries the log does not hold (nothing can vouch for it) is refused.
#[test]
fn finding_06_a_partial_tile_beyond_the_log_is_refused() {
    let d = tempdir();
    let vk = three_sizes(d.path());
    let three = fs::read(d.path().join("tile/0/000.p/3")).unwrap();
    let mut four = three.clone();
    four.extend_from_slice(&[7u8; 32]);
    fs::write(d.path().join("tile/0/000.p/4"), four).unwrap();
    let err = verify_dir(d.path(), &vk, None).unwrap_err();
    assert!(err.to_string().contains("tile/0/000.p/4"), "{err}");
}

/// Finding 6: a rollback to an older copy passed unless someone kept a newer checkpoint. Every
/// checkpoint is now written to an export directory (storage the operator does not control),
/// and the log must extend the latest one there.
#[test]
fn finding_06_every_checkpoint_is_exported_private_and_whole() {
    use std::os::unix::fs::PermissionsExt as _;
    let d = tempdir();
    let out = tempdir();
    let export = out.path().join("checkpoints");
    let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
    // The checkpoint signed at open is exported at once.
    l.export_checkpoints(&export).unwrap();
    assert!(export.join("0").is_file());
    one_checkpoint_per_entry(&l, 0, 3);
    // Asking again for a checkpoint of the same size writes nothing new.
    l.checkpoint().unwrap();
    let mut names: Vec<String> = fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["0", "1", "2", "3"]);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&export), 0o700);
    assert_eq!(mode(&export.join("3")), 0o600);
    let v = l.verifier().clone();
    for size in 0..=3u64 {
        let text = fs::read_to_string(export.join(size.to_string())).unwrap();
        let cp = SignedCheckpoint::open(&text, &v).unwrap();
        assert_eq!(cp.checkpoint.size, size);
    }
    assert_eq!(latest_export(&export).unwrap(), Some((3, export.join("3"))));
}

#[test]
fn finding_06_a_rollback_fails_against_the_latest_exported_checkpoint() {
    let d = tempdir();
    let out = tempdir();
    let export = out.path().join("checkpoints");
    let old_copy = tempdir();
    let vk = {
        let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
        l.export_checkpoints(&export).unwrap();
        l.append_many(&(0..10).map(lookup).collect::<Vec<_>>())
            .unwrap();
        l.checkpoint().unwrap();
        // The copy someone keeps, and later puts back.
        copy_dir(d.path(), old_copy.path());
        l.append_many(&(10..20).map(lookup).collect::<Vec<_>>())
            .unwrap();
        l.checkpoint().unwrap();
        l.verifier_key()
    };
    let (size, latest) = latest_export(&export).unwrap().unwrap();
    assert_eq!(size, 20);
    let text = fs::read_to_string(&latest).unwrap();
    let source = latest.display().to_string();
    let kept = [Kept {
        source: &source,
        text: &text,
    }];
    let report = verify_dir_kept(d.path(), &vk, &kept).unwrap();
    assert_eq!(report.consistent_with, Some(20));
    // The older copy verifies on its own, as the finding says, but not against the export.
    verify_dir(old_copy.path(), &vk, None).unwrap();
    let err = verify_dir_kept(old_copy.path(), &vk, &kept).unwrap_err();
    assert!(
        matches!(&err, VerifyError::RolledBack { kept: 20, size: 10, source_name } if *source_name == source),
        "{err}"
    );
    assert!(err.to_string().contains("rolled back"), "{err}");
}

#[test]
fn finding_06_a_rewritten_log_fails_against_the_export_and_cannot_overwrite_it() {
    let d = tempdir();
    let forked = tempdir();
    let out = tempdir();
    let export = out.path().join("checkpoints");
    let vk = {
        let l = Ledger::open(d.path(), ORIGIN, key()).unwrap();
        l.export_checkpoints(&export).unwrap();
        l.append_many(&(0..20).map(lookup).collect::<Vec<_>>())
            .unwrap();
        l.checkpoint().unwrap();
        l.verifier_key()
    };
    let kept_text = fs::read_to_string(export.join("20")).unwrap();
    // The same key signs a history with entry 5 rewritten, grown past the export.
    let f = Ledger::open(forked.path(), ORIGIN, key()).unwrap();
    let mut rewritten: Vec<Entry> = (0..20).map(lookup).collect();
    rewritten[5] = lookup(999);
    f.append_many(&rewritten).unwrap();
    f.checkpoint().unwrap();
    // Exporting the forked size-20 checkpoint is refused and leaves the original in place.
    let err = f.export_checkpoints(&export).unwrap_err();
    assert!(
        matches!(err, LedgerError::ExportDiffers { size: 20, .. }),
        "{err}"
    );
    assert_eq!(fs::read_to_string(export.join("20")).unwrap(), kept_text);
    f.append(&lookup(20)).unwrap();
    // Larger sizes are new files; the kept one still convicts the fork.
    f.checkpoint().unwrap();
    drop(f);
    let kept = [Kept {
        source: "export",
        text: &kept_text,
    }];
    let err = verify_dir_kept(forked.path(), &vk, &kept).unwrap_err();
    assert!(
        matches!(err, VerifyError::Inconsistent { old: 20, new: 21 }),
        "{err}"
    );
    verify_dir_kept(d.path(), &vk, &kept).unwrap();
}
