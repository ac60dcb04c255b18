#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Regression tests for the security findings of issue 28 that concern the de-identification
//! engine, named after the finding.
//!
//! Finding 15: HL7 v2 parsing amplified memory about 250× (a 15 MB file took 3.8 GB), because
//! every message of a file was parsed into an owned tree and kept until the whole file was
//! serialised, and no message was too large to parse. The memory test runs the work in a child
//! process (this test binary, filtered to the one test) so that its peak resident set
//! (`VmHWM`) is its own and not the other tests'.

use std::process::Command;

use airlock_deid::{Crosswalk, DeidKeys, Format, Profile, deid_bytes, deid_paths};
use airlock_formats::FormatError;
use airlock_formats::hl7::{self, MAX_MESSAGE_BYTES};

/// Set in the child process: which mode to measure (`bytes` or `paths`).
const CHILD_ENV: &str = "AIRLOCK_FINDING_15_CHILD";
/// The size of the generated HL7 file, as in the finding.
const FILE_BYTES: usize = 15 * 1024 * 1024;
/// The bound: peak growth of the resident set over the baseline, as a multiple of the file.
const MAX_GROWTH: u64 = 20;

fn key() -> DeidKeys {
    DeidKeys::new(vec![15; 32]).unwrap()
}

fn safe() -> Profile {
    Profile::builtin("safe-harbor")
        .unwrap()
        .with_reference_year(2026)
}

/// A letters-only name part for number `n` (names with digits look like ids to the engine).
fn letters(mut n: usize, len: usize) -> String {
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// An ADT^A01 message shaped like `airlock-synth`'s (MSH, EVN, PID, NK1, PV1 with its empty
/// fields, DG1, OBX, NTE), for patient `i % 4000` (several encounters per patient).
fn adt(i: usize) -> String {
    let p = i % 4000;
    let family = letters(p * 7 + 3, 7);
    let given = letters(p * 13 + 5, 6);
    let rel = letters(p * 17 + 11, 6);
    let doc = letters(p % 50 + 100, 6);
    let mrn = format!("MRN{:07}", p);
    let ssn = format!("{:03}-{:02}-{:04}", 100 + p % 800, 10 + p % 80, 1000 + p);
    let phone = format!("555-{:03}-{:04}", p % 1000, (p * 7) % 10_000);
    let zip = format!("{:05}", 10_000 + (p * 37) % 89_000);
    let dob = format!("19{:02}{:02}{:02}", 30 + p % 60, 1 + p % 12, 1 + p % 28);
    let admit = format!("2024{:02}{:02}0930", 1 + i % 12, 1 + i % 28);
    let mut pv1 = vec![""; 46];
    pv1[0] = "PV1";
    pv1[1] = "1";
    pv1[2] = "I";
    let loc = format!("MED^4{:02}^A^GHH", i % 90);
    pv1[3] = &loc;
    pv1[4] = "E";
    let att = format!("{:010}^{doc}^Alex^^^Dr.^^^NPI", 1_000_000 + p % 50);
    pv1[7] = &att;
    pv1[10] = "MED";
    let visit = format!("V{i:08}^^^GHH^VN");
    pv1[19] = &visit;
    pv1[36] = "01";
    pv1[44] = &admit;
    pv1[45] = &admit;
    let pv1 = pv1.join("|");
    format!(
        "MSH|^~\\&|AIRLOCK-SYNTH|GHH|AIRLOCK|AIRLOCK|{admit}||ADT^A01^ADT_A01|{i}|P|2.5.1|||AL|NE|USA|UNICODE UTF-8\r\
         EVN|A01|{admit}\r\
         PID|1||{mrn}^^^GHH^MR~{ssn}^^^USSSA^SS~L{mrn}^^^LEGACY^MR||{family}^{given}^Q^^Mr.^^L|{rel}^Maria|{dob}|M||2106-3^White^CDCREC|{n} Oak Street^^Springfield^MA^{zip}^USA^H||{phone}^PRN^PH~^NET^Internet^{given}.{family}@example.org||||S||AN{mrn}^^^GHH^AN|{ssn}|DL{p:07}^MA||2186-5^Not Hispanic or Latino^HL70189\r\
         NK1|1|{family}^{rel}|MTH^Mother^HL70063|{n} Oak Street^^Springfield^MA^{zip}^USA^H|{phone}^PRN^PH\r\
         {pv1}\r\
         DG1|1||E11.9^Type 2 diabetes mellitus without complications^I10||{admit}|A\r\
         DG1|2||I10^Essential (primary) hypertension^I10||{admit}|F\r\
         OBX|1|NM|8867-4^Heart rate^LN||{hr}|/min|60-100|N|||F|||{admit}\r\
         OBX|2|NM|8480-6^Systolic blood pressure^LN||{sys}|mm[Hg]|90-120|N|||F|||{admit}\r\
         NTE|1||Seen by Dr {doc} on admission; patient {given} {family} stable.\r",
        n = 10 + p % 900,
        hr = 60 + i % 40,
        sys = 100 + i % 50,
    )
}

/// Messages until the file is at least `target` bytes; returns the file and the count.
fn hl7_file(target: usize) -> (Vec<u8>, usize) {
    // Sized up front so the input's own growth does not raise the peak being measured.
    let mut out = Vec::with_capacity(target + 4096);
    let mut n = 0;
    while out.len() < target {
        out.extend_from_slice(adt(n).as_bytes());
        n += 1;
    }
    (out, n)
}

/// A `/proc/self/status` figure in KiB (`VmRSS`, `VmHWM`), where the system has it.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The child's side: de-identify a generated file in `mode` and print the figures.
fn measure(mode: &str) {
    let (bytes, messages) = hl7_file(FILE_BYTES);
    let p = safe();
    let k = key();
    let mut cw = Crosswalk::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("adt.hl7");
    let out_dir = dir.path().join("out");
    let bytes = if mode == "paths" {
        std::fs::write(&input, &bytes).unwrap();
        drop(bytes);
        None
    } else {
        Some(bytes)
    };
    // Reset the high-water mark to the current resident set (Linux 4.0+); when that is not
    // allowed, the baseline is the high-water mark so far.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let baseline = if reset {
        status_kib("VmRSS").unwrap()
    } else {
        status_kib("VmHWM").unwrap()
    };
    let (records_in, quarantined) = match &bytes {
        Some(b) => {
            let (out, report) = deid_bytes(&p, &k, &mut cw, Format::Hl7v2, b).unwrap();
            assert!(!out.is_empty());
            (report.records_in, report.quarantined.len())
        }
        None => {
            let report =
                deid_paths(&p, &k, &mut cw, std::slice::from_ref(&input), &out_dir).unwrap();
            (report.records_in, report.quarantined.len())
        }
    };
    let peak = status_kib("VmHWM").unwrap();
    let len = bytes.as_ref().map_or_else(
        || std::fs::metadata(&input).unwrap().len(),
        |b| b.len() as u64,
    );
    println!(
        "finding-15 mode={mode} input_bytes={len} messages={messages} records_in={records_in} \
         quarantined={quarantined} baseline_kib={baseline} peak_kib={peak} hwm_reset={reset}"
    );
}

/// Runs this test in a child process in `mode`; returns `(input bytes, peak growth in bytes)`.
fn child(mode: &str) -> (u64, u64) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "finding_15_hl7_memory_is_bounded_by_the_largest_message",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child ({mode}) failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("finding-15 ").and_then(|i| l.get(i..)))
        .unwrap_or_else(|| panic!("no figures from the child ({mode}):\n{stdout}"));
    eprintln!("{line}");
    let get = |k: &str| -> u64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("`{k}` missing from: {line}"))
    };
    let growth = get("peak_kib").saturating_sub(get("baseline_kib")) * 1024;
    let input = get("input_bytes");
    assert_eq!(get("quarantined"), 0, "{line}");
    assert_eq!(get("records_in"), get("messages"), "{line}");
    eprintln!(
        "finding-15 mode={mode}: peak growth {} MiB for a {} MiB file ({:.1}x)",
        growth / (1 << 20),
        input / (1 << 20),
        growth as f64 / input as f64
    );
    (input, growth)
}

#[test]
fn finding_15_hl7_memory_is_bounded_by_the_largest_message() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        measure(&mode);
        return;
    }
    if status_kib("VmHWM").is_none() {
        eprintln!("skipped: no /proc/self/status on this system to read the peak resident set");
        return;
    }
    // Both modes are measured before either is judged, so a failure shows both figures.
    let figures: Vec<_> = ["bytes", "paths"].map(|m| (m, child(m))).into();
    for (mode, (input, growth)) in figures {
        assert!(
            growth < MAX_GROWTH * input,
            "{mode}: peak grew by {growth} bytes for a {input}-byte HL7 file (bound {MAX_GROWTH}x)"
        );
    }
}

#[test]
fn finding_15_oversized_hl7_message_is_refused_by_position() {
    // A value that must not appear in any error or report.
    const SECRET: &str = "Zanzibarova";
    let first = adt(0);
    let mut big = adt(1);
    while big.len() <= MAX_MESSAGE_BYTES {
        big.push_str(&format!(
            "NTE|2||{SECRET} said the pain began in the left knee\r"
        ));
    }
    let file = [first.as_str(), &big, &adt(2)].concat().into_bytes();
    let offset = first.len() as u64;
    let line = first.matches('\r').count() as u64 + 1;

    // Validation refuses the file, naming the message and its byte offset.
    let e = airlock_formats::validate(Format::Hl7v2, &file).unwrap_err();
    assert!(
        matches!(e, FormatError::Hl7MessageTooLarge { message: 1, offset: o, line: l, limit, .. }
            if o == offset && l == line && limit == MAX_MESSAGE_BYTES as u64),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("message 1") && text.contains(&format!("byte offset {offset}")));
    assert!(!text.contains(SECRET), "{text}");

    // The lazy reader yields every message as a span; only the big one is refused, and the
    // limit can be raised or lowered.
    let spans: Vec<_> = hl7::messages(&file).unwrap().collect();
    assert_eq!(spans.len(), 3);
    assert_eq!((spans[1].index, spans[1].offset), (1, offset));
    assert!(spans[0].parse().is_ok() && spans[2].parse().is_ok());
    assert!(matches!(
        spans[1].parse(),
        Err(FormatError::Hl7MessageTooLarge { message: 1, .. })
    ));
    let raised = hl7::messages(&file)
        .unwrap()
        .max_message_bytes(2 * MAX_MESSAGE_BYTES);
    assert!(raised.into_iter().all(|m| m.parse().is_ok()));
    let lowered = hl7::messages(&file).unwrap().max_message_bytes(100);
    assert!(lowered.into_iter().all(|m| m.parse().is_err()));

    // De-identification quarantines it by position and keeps the rest of the file's work.
    let (out, report) =
        deid_bytes(&safe(), &key(), &mut Crosswalk::new(), Format::Hl7v2, &file).unwrap();
    assert_eq!((report.records_in, report.records_out), (3, 2));
    assert_eq!(report.quarantined.len(), 1, "{:?}", report.quarantined);
    let q = &report.quarantined[0];
    assert_eq!((q.record, q.line, q.path.as_str()), (1, line, "message"));
    assert!(
        q.reason.contains(&format!("byte offset {offset}")),
        "{}",
        q.reason
    );
    assert!(!serde_json::to_string(&report).unwrap().contains(SECRET));
    let out_messages: Vec<_> = hl7::messages(&out).unwrap().collect();
    assert_eq!(out_messages.len(), 2);
    assert!(out_messages.iter().all(|m| m.parse().is_ok()));
    assert!(!String::from_utf8_lossy(&out).contains(SECRET));
}
